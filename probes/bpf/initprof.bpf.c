// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * initprof's timing probes: every checkpoint of a process tree's start, from
 * execve to its first HTTP request, stamped with bpf_ktime_get_ns
 * (CLOCK_MONOTONIC, the clock the targets print).
 *
 * Everything attaches system-wide and filters here, on the "tracked" map of
 * tgids: the uprobe PID filter covers one process, not a tree. The first thing
 * every program does is that one hash lookup, because a uprobe on the host's
 * ld.so traps every exec on the machine.
 *
 * Program names are "initprof_" plus at most six characters, so that the
 * kernel's 15-character object names keep them recognisable in bpftool.
 *
 * The event layout is mirrored by probes/event.go; change both together.
 */
#include "include/initprof_types.h"
#include "include/bpf_helpers.h"
#include "include/bpf_tracing.h"
#include "include/bpf_core_read.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EV_FORK 1
#define EV_EXEC 2       /* sys_enter_execve: str = filename */
#define EV_EXEC_DONE 3  /* sched_process_exec: str = filename, a0 = old pid */
#define EV_EXIT 4       /* sched_process_exit of the group leader: a0 = exit code */
#define EV_BIND 5       /* a0 fd, a1 port, a2 ret, a3 family */
#define EV_LISTEN 6     /* a0 fd, a1 backlog, a2 ret */
#define EV_CONNECT 7    /* a0 fd, a1 port, a2 ret, a3 family */
#define EV_ACCEPT 8     /* a0 fd, a2 ret (the new fd) */
#define EV_SEND 9       /* a0 fd, a1 count, a2 ret, a3 syscall (cookie), str = payload */
#define EV_RECV 10      /* a0 fd, a1 count, a2 ret, a3 syscall (cookie), str = payload */
#define EV_OPENAT 11    /* a0 dirfd, a1 flags, a2 ret, str = path */
#define EV_MMAP 12      /* a0 fd, a1 prot, a2 ret (address), a3 len, str = dentry name */
#define EV_UPROBE 13    /* cookie = checkpoint, a0 = first argument, str = link_map name */
#define EV_URETPROBE 14 /* cookie = checkpoint, a0 = return value */
#define EV_OFFCPU 15    /* ts_enter = switched out, ts = ran again, a0 = 1 if runnable */
#define EV_EXEC_FAIL 16 /* sys_exit_execve with an error: a2 ret */

#define STR_MAX 256
#define PAYLOAD_MAX 128

/* Cookie bit on a uprobe: the first argument is a struct link_map*; read l_name. */
#define COOKIE_LINKMAP (1ULL << 32)

struct ev_hdr {
	u64 ts;
	u64 ts_enter;
	u64 faults; /* user page faults of this tgid so far: deltas split them per phase */
	u64 cookie;
	s64 a[4];
	u32 pid; /* tgid */
	u32 tid;
	u16 kind;
	u16 len; /* bytes of str that are valid */
	u32 _pad;
	u64 maj_faults; /* major faults of this tgid so far (see sync_io) */
	u64 read_bytes; /* bytes this tgid caused to be read from storage so far */
};

struct ev_str {
	struct ev_hdr h;
	char str[STR_MAX];
};

struct tracked_val {
	u64 faults;
};

struct pending {
	u64 ts;
	s64 a[3];
	u32 kind;
	u32 sub;
};

struct offcpu {
	u64 ts;
	u64 runnable;
};

struct config {
	u32 watch_parent; /* children forked by this tgid are tracked; 0 = none */
	u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, struct tracked_val);
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct offcpu);
} offcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct config);
} config SEC(".maps");

/* Index 0: ring buffer reservations that failed (events lost). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

/*
 * Disk reads and major faults per process. The kernel keeps both per thread
 * (task_struct.maj_flt, and ioac.read_bytes: the bytes of the block I/O the
 * thread submitted, what /proc/PID/io calls read_bytes, counted in
 * submit_bio for faults, readahead and read(2) alike). sync_io folds a
 * thread's growth since it was last seen into its process's running totals,
 * which every event header carries like faults. It runs where the thread is
 * at hand: at each of its page faults (the previous fault has completed
 * then), when it emits an event, when it is switched in, and when it exits;
 * so a header can lag another thread's latest faults, never its own.
 * Separate maps, because Go writes "tracked" values as a bare u64.
 */
#define MAP_TYPE_LRU_HASH 9 /* BPF_MAP_TYPE_LRU_HASH; not in initprof_types.h */

struct io_count {
	u64 maj;
	u64 rd;
};

struct {
	__uint(type, MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32); /* tgid */
	__type(value, struct io_count);
} io_proc SEC(".maps");

struct {
	__uint(type, MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32); /* tid */
	__type(value, struct io_count);
} io_thread SEC(".maps");

/* The two task fields, by CO-RE (the local names drop the ___io suffix). */
struct task_io_accounting___io {
	u64 read_bytes;
} __attribute__((preserve_access_index));

struct task_struct___io {
	unsigned long maj_flt;
	struct task_io_accounting___io ioac;
} __attribute__((preserve_access_index));

static __always_inline void sync_io(u32 tgid, u32 tid, void *task)
{
	struct task_struct___io *t = task;
	struct io_count now = {.maj = BPF_CORE_READ(t, maj_flt)};
	if (bpf_core_field_exists(t->ioac))
		now.rd = BPF_CORE_READ(t, ioac.read_bytes);
	struct io_count *last = bpf_map_lookup_elem(&io_thread, &tid);
	if (!last) {
		/*
		 * First sight: a thread forked while tracked starts at zero and
		 * faults at once; one that ran before tracking began (an attached
		 * root) must not bring its history into the current phase.
		 */
		bpf_map_update_elem(&io_thread, &tid, &now, BPF_ANY);
		struct io_count zero = {};
		bpf_map_update_elem(&io_proc, &tgid, &zero, BPF_NOEXIST);
		return;
	}
	u64 dmaj = now.maj > last->maj ? now.maj - last->maj : 0;
	u64 drd = now.rd > last->rd ? now.rd - last->rd : 0;
	last->maj = now.maj;
	last->rd = now.rd;
	if (!dmaj && !drd)
		return;
	struct io_count *p = bpf_map_lookup_elem(&io_proc, &tgid);
	if (!p) {
		struct io_count zero = {};
		bpf_map_update_elem(&io_proc, &tgid, &zero, BPF_NOEXIST);
		p = bpf_map_lookup_elem(&io_proc, &tgid);
		if (!p)
			return;
	}
	__sync_fetch_and_add(&p->maj, dmaj);
	__sync_fetch_and_add(&p->rd, drd);
}

/* sync_io for the current thread, when it belongs to a tracked process. */
static __always_inline void sync_self(u32 tgid, u32 tid)
{
	sync_io(tgid, tid, (void *)bpf_get_current_task());
}

static __always_inline struct tracked_val *lookup_self(u32 *tgid, u32 *tid)
{
	u64 id = bpf_get_current_pid_tgid();
	*tgid = id >> 32;
	*tid = (u32)id;
	return bpf_map_lookup_elem(&tracked, tgid);
}

static __always_inline void count_drop(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&drops, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0
#define BPF_RB_RING_SIZE 1

/*
 * submit commits an event without waking the reader: a wakeup is an irq_work
 * on the traced thread and measured several µs per event. The reader polls
 * every few ms instead; only a ring more than a quarter full wakes it now.
 */
static __always_inline void submit(void *e)
{
	u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	bpf_ringbuf_submit(e, avail > size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline void fill_hdr(struct ev_hdr *h, u16 kind, u32 tgid, u32 tid,
				     struct tracked_val *tv, u64 ts)
{
	h->ts = ts;
	h->ts_enter = 0;
	h->faults = tv ? tv->faults : 0;
	h->cookie = 0;
	h->a[0] = 0;
	h->a[1] = 0;
	h->a[2] = 0;
	h->a[3] = 0;
	h->pid = tgid;
	h->tid = tid;
	h->kind = kind;
	h->len = 0;
	h->_pad = 0;
	h->maj_faults = 0;
	h->read_bytes = 0;
	if (tv) {
		if ((u32)bpf_get_current_pid_tgid() == tid)
			sync_self(tgid, tid);
		struct io_count *io = bpf_map_lookup_elem(&io_proc, &tgid);
		if (io) {
			h->maj_faults = io->maj;
			h->read_bytes = io->rd;
		}
	}
}

static __always_inline struct ev_hdr *reserve_small(u16 kind, u32 tgid, u32 tid,
						     struct tracked_val *tv, u64 ts)
{
	struct ev_hdr *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		count_drop();
		return 0;
	}
	fill_hdr(h, kind, tgid, tid, tv, ts);
	return h;
}

static __always_inline struct ev_str *reserve_str(u16 kind, u32 tgid, u32 tid,
						   struct tracked_val *tv, u64 ts)
{
	struct ev_str *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	fill_hdr(&e->h, kind, tgid, tid, tv, ts);
	e->str[0] = 0;
	return e;
}

static __always_inline void set_len(struct ev_str *e, long n)
{
	e->h.len = n > 0 ? (u16)n : 0;
}

/* ---- process lifecycle ---- */

SEC("tp_btf/sched_process_fork")
int BPF_PROG(initprof_fork, struct task_struct *parent, struct task_struct *child)
{
	u32 ptgid = BPF_CORE_READ(parent, tgid);
	u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid)
		return 0; /* a thread, not a process */
	struct tracked_val *tv = bpf_map_lookup_elem(&tracked, &ptgid);
	if (!tv) {
		u32 zero = 0;
		struct config *c = bpf_map_lookup_elem(&config, &zero);
		if (!c || c->watch_parent == 0 || c->watch_parent != ptgid)
			return 0;
	}
	struct tracked_val nv = {};
	bpf_map_update_elem(&tracked, &ctgid, &nv, BPF_ANY);
	struct ev_hdr *h = reserve_small(EV_FORK, ctgid, BPF_CORE_READ(child, pid), 0,
					 bpf_ktime_get_ns());
	if (!h)
		return 0;
	h->a[0] = ptgid;
	h->a[1] = ctgid;
	submit(h);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(initprof_execd, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	u64 ts = bpf_ktime_get_ns();
	u32 tgid, tid;
	struct tracked_val *tv = lookup_self(&tgid, &tid);
	if (!tv)
		return 0;
	struct ev_str *e = reserve_str(EV_EXEC_DONE, tgid, tid, tv, ts);
	if (!e)
		return 0;
	e->h.a[0] = old_pid;
	const char *fn = BPF_CORE_READ(bprm, filename);
	set_len(e, bpf_probe_read_kernel_str(e->str, sizeof(e->str), fn));
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(initprof_exit, struct task_struct *p)
{
	u64 ts = bpf_ktime_get_ns();
	u32 tgid, tid;
	struct tracked_val *tv = lookup_self(&tgid, &tid);
	if (!tv)
		return 0;
	if (tgid != tid) {
		sync_self(tgid, tid); /* a thread's last reads count for its process */
		bpf_map_delete_elem(&io_thread, &tid);
		return 0;
	}
	struct ev_hdr *h = reserve_small(EV_EXIT, tgid, tid, tv, ts);
	if (h) {
		h->a[0] = BPF_CORE_READ(p, exit_code);
		submit(h);
	}
	bpf_map_delete_elem(&tracked, &tgid);
	bpf_map_delete_elem(&io_thread, &tid);
	bpf_map_delete_elem(&io_proc, &tgid);
	return 0;
}

/* ---- scheduling and faults ---- */

static __always_inline bool task_runnable(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state) == 0;
	struct task_struct___pre514 *old = (void *)t;
	return BPF_CORE_READ(old, state) == 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(initprof_swtch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u64 ts = 0;
	u32 ptgid = BPF_CORE_READ(prev, tgid);
	if (bpf_map_lookup_elem(&tracked, &ptgid)) {
		ts = bpf_ktime_get_ns();
		u32 ptid = BPF_CORE_READ(prev, pid);
		struct offcpu oc = {.ts = ts, .runnable = preempt || task_runnable(prev)};
		bpf_map_update_elem(&offcpu, &ptid, &oc, BPF_ANY);
	}
	u32 ntgid = BPF_CORE_READ(next, tgid);
	struct tracked_val *tv = bpf_map_lookup_elem(&tracked, &ntgid);
	if (!tv)
		return 0;
	u32 ntid = BPF_CORE_READ(next, pid);
	struct offcpu *oc = bpf_map_lookup_elem(&offcpu, &ntid);
	if (!oc)
		return 0;
	if (!ts)
		ts = bpf_ktime_get_ns();
	sync_io(ntgid, ntid, next);
	struct ev_hdr *h = reserve_small(EV_OFFCPU, ntgid, ntid, tv, ts);
	if (h) {
		h->ts_enter = oc->ts;
		h->a[0] = oc->runnable;
		submit(h);
	}
	bpf_map_delete_elem(&offcpu, &ntid);
	return 0;
}

/* ---- what init touched: file-backed pages, first touch per process ---- */

/*
 * One entry per (process, file, 4 KiB page) the first time a tracked process
 * touched it: it caused the page to be added to the page cache (a read, a
 * fault or the readahead around either), or it faulted on a file-backed
 * mapping of it. Aggregated here rather than streamed: a 15 MB binary adds
 * thousands of pages, and Go reads the map once per run (Tracer.Touched).
 */
#define TOUCH_ADDED 1	     /* this process caused the page into the page cache */
#define TOUCH_FAULTED 2	     /* this process faulted on it through a file mapping */
#define TOUCH_FAULT_FIRST 4  /* ... and the fault came first (ADDED too: a major fault) */
#define TOUCH_MAX_FOLIO 1024 /* pages of one folio walked (order 10) */

struct touch_key {
	u32 tgid;
	u32 dev; /* the kernel's dev_t: major << 20 | minor */
	u64 ino;
	u64 index; /* file offset / 4096 */
};

struct touch_val {
	u64 ts; /* first touch */
	u32 flags;
	u32 tid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 17);
	__type(key, struct touch_key);
	__type(value, struct touch_val);
} touched SEC(".maps");

/* Index 0: touches lost (map full); 1: faults whose mapping could not be read. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} touch_drops SEC(".maps");

static __always_inline void count_touch_drop(u32 i)
{
	u64 *n = bpf_map_lookup_elem(&touch_drops, &i);
	if (n)
		__sync_fetch_and_add(n, 1);
}

struct folio_walk {
	struct touch_key k;
	u64 first;
	u64 ts;
	u32 tid;
};

static long add_page(u32 i, void *data)
{
	struct folio_walk *w = data;
	w->k.index = w->first + i;
	struct touch_val *v = bpf_map_lookup_elem(&touched, &w->k);
	if (v) {
		/* faulted first, then added: the fault's own page (major) */
		if (!(v->flags & TOUCH_ADDED))
			v->flags |= TOUCH_ADDED;
		return 0;
	}
	struct touch_val nv = {.ts = w->ts, .flags = TOUCH_ADDED, .tid = w->tid};
	if (bpf_map_update_elem(&touched, &w->k, &nv, BPF_NOEXIST) == -7 /* E2BIG */)
		count_touch_drop(0);
	return 0;
}

/*
 * filemap_add_folio: the current task is the one whose read, fault or
 * readahead brought the folio in. The order field is CO-RE-checked (kernels
 * before it knew only single pages in this event).
 */
SEC("tracepoint/filemap/mm_filemap_add_to_page_cache")
int initprof_pgadd(struct trace_event_raw_mm_filemap_op_page_cache *ctx)
{
	u32 tgid, tid;
	if (!lookup_self(&tgid, &tid))
		return 0;
	struct folio_walk w = {.ts = bpf_ktime_get_ns(), .tid = tid};
	w.k.tgid = tgid;
	w.k.dev = ctx->s_dev;
	w.k.ino = ctx->i_ino;
	w.first = ctx->index;
	u32 n = 1;
	if (bpf_core_field_exists(ctx->order)) {
		u32 order = ctx->order;
		n = order >= 10 ? TOUCH_MAX_FOLIO : 1U << order;
	}
	bpf_loop(n, add_page, &w, 0);
	return 0;
}

/*
 * Faults. Looking the faulting address up where the fault is announced
 * (page_fault_user, the page-fault perf event) runs with interrupts off, so
 * bpf_find_vma defers its unlock to an irq_work: a self-IPI per fault,
 * measured at +10 ms on a 9 MB Go binary's cold start in a Firecracker
 * guest. So the fault only leaves its address (last_fault, per thread), and
 * the file's own tracepoints, with interrupts on, say what was touched:
 * mm_filemap_fault names the page a fault had to find (cached or not), and
 * mm_filemap_map_pages the window fault-around mapped from the cache, in
 * which the faulting page is found by looking its address up there.
 */
struct last_fault {
	u32 tid;
	u32 _pad;
	u64 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct last_fault);
} last_fault SEC(".maps");

static __always_inline void touch_page(u32 tgid, u32 tid, u32 dev, u64 ino, u64 index)
{
	struct touch_key k = {.tgid = tgid, .dev = dev, .ino = ino, .index = index};
	struct touch_val *v = bpf_map_lookup_elem(&touched, &k);
	if (v) {
		if (!(v->flags & TOUCH_FAULTED))
			v->flags |= TOUCH_FAULTED;
		return;
	}
	struct touch_val nv = {.ts = bpf_ktime_get_ns(), .flags = TOUCH_FAULTED | TOUCH_FAULT_FIRST, .tid = tid};
	if (bpf_map_update_elem(&touched, &k, &nv, BPF_NOEXIST) == -7 /* E2BIG */)
		count_touch_drop(0);
}

SEC("tracepoint/filemap/mm_filemap_fault")
int initprof_pgfil(struct trace_event_raw_mm_filemap_fault *ctx)
{
	u32 tgid, tid;
	if (!lookup_self(&tgid, &tid))
		return 0;
	touch_page(tgid, tid, ctx->s_dev, ctx->i_ino, ctx->index);
	return 0;
}

struct vma_find {
	u64 addr;
	u32 dev;
	u32 ok;
	u64 ino;
	u64 index;
};

static long vma_file(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_find *f = data;
	struct file *file = BPF_CORE_READ(vma, vm_file);
	if (!file)
		return 0; /* anonymous */
	struct inode *ino = BPF_CORE_READ(file, f_inode);
	f->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	f->ino = BPF_CORE_READ(ino, i_ino);
	f->index = ((f->addr - BPF_CORE_READ(vma, vm_start)) >> 12) + BPF_CORE_READ(vma, vm_pgoff);
	f->ok = 1;
	return 0;
}

SEC("tracepoint/filemap/mm_filemap_map_pages")
int initprof_pgmap(struct trace_event_raw_mm_filemap_op_page_cache_range *ctx)
{
	u32 tgid, tid;
	if (!lookup_self(&tgid, &tid))
		return 0;
	u32 zero = 0;
	struct last_fault *lf = bpf_map_lookup_elem(&last_fault, &zero);
	if (!lf || lf->tid != tid)
		return 0;
	struct vma_find f = {.addr = lf->addr};
	lf->tid = 0;
	if (bpf_find_vma(bpf_get_current_task_btf(), f.addr, vma_file, &f, 0) != 0) {
		count_touch_drop(1); /* the mmap lock was busy */
		return 0;
	}
	u32 dev = ctx->s_dev;
	u64 ino = ctx->i_ino;
	if (!f.ok || f.dev != dev || f.ino != ino || f.index < ctx->index || f.index > ctx->last_index)
		return 0;
	touch_page(tgid, tid, dev, ino, f.index);
	return 0;
}

/* Set by Go when the touched pages are wanted (config would do, but Go writes it whole). */
volatile const u32 touch_faults = 0;

/* count_fault adds one user page fault to the current process's count. */
static __always_inline int count_fault(u64 addr)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	struct tracked_val *tv = bpf_map_lookup_elem(&tracked, &tgid);
	if (tv) {
		__sync_fetch_and_add(&tv->faults, 1);
		sync_self(tgid, (u32)id);
		if (touch_faults) {
			u32 zero = 0;
			struct last_fault *lf = bpf_map_lookup_elem(&last_fault, &zero);
			if (lf) {
				lf->tid = (u32)id;
				lf->addr = addr;
			}
		}
	}
	return 0;
}

/* exceptions:page_fault_user (x86 only): address, ip, error_code. */
struct pf_user_ctx {
	u64 common;
	u64 address;
	u64 ip;
	u64 error_code;
};

SEC("tracepoint/exceptions/page_fault_user")
int initprof_pgflt(struct pf_user_ctx *ctx) { return count_fault(ctx->address); }

/*
 * The same counter from a software page-fault perf event (one per CPU): the
 * fallback where exceptions:page_fault_user does not exist (it is x86-only).
 * The event's sample address is the faulting address.
 */
SEC("perf_event")
int initprof_pfev(struct perf_event_ctx *ctx) { return count_fault(ctx->addr); }

/* ---- syscalls ---- */

/*
 * Syscalls come from the raw sys_enter/sys_exit tracepoints (two BTF links,
 * which detach in microseconds, where the ~28 per-syscall perf-event links
 * took about a second to close). The enter program runs for every syscall on
 * the machine, so it returns at once for untracked processes; for tracked
 * ones, the "sysroles" array (filled by Go with this architecture's syscall
 * numbers) says what the syscall is: low 32 bits an EV_* kind, high 32 bits
 * a sub-code (for send/recv, which syscall).
 */
#define NR_SYSCALLS 512

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_SYSCALLS);
	__type(key, u32);
	__type(value, u64);
} sysroles SEC(".maps");

/* Syscall arguments in the entry registers. */
#if defined(__TARGET_ARCH_x86)
#define SYSARGS(r, a)                               \
	do {                                        \
		a[0] = BPF_CORE_READ(r, di);        \
		a[1] = BPF_CORE_READ(r, si);        \
		a[2] = BPF_CORE_READ(r, dx);        \
		a[3] = BPF_CORE_READ(r, r10);       \
		a[4] = BPF_CORE_READ(r, r8);        \
		a[5] = BPF_CORE_READ(r, r9);        \
	} while (0)
#else
#define SYSARGS(r, a)                                                 \
	do {                                                          \
		a[0] = BPF_CORE_READ(r, orig_x0);                     \
		a[1] = BPF_CORE_READ(r, regs[1]);                     \
		a[2] = BPF_CORE_READ(r, regs[2]);                     \
		a[3] = BPF_CORE_READ(r, regs[3]);                     \
		a[4] = BPF_CORE_READ(r, regs[4]);                     \
		a[5] = BPF_CORE_READ(r, regs[5]);                     \
	} while (0)
#endif

static __always_inline struct file *fd_file(s64 fd)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd < 0)
		return 0;
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if ((u64)fd >= max)
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

#define MAP_ANONYMOUS 0x20 /* the same on x86-64 and arm64 */
#define S_IFMT 00170000
#define S_IFSOCK 0140000

static __always_inline bool fd_is_socket(s64 fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return false;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	return (mode & S_IFMT) == S_IFSOCK;
}

static __always_inline void save(u32 tid, u32 kind, u32 sub, s64 a0, s64 a1, s64 a2)
{
	struct pending p = {.ts = bpf_ktime_get_ns(), .a = {a0, a1, a2}, .kind = kind, .sub = sub};
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
}

static __always_inline void on_execve(u64 *args, u32 tgid, u32 tid, struct tracked_val *tv)
{
	u64 ts = bpf_ktime_get_ns();
	struct ev_str *e = reserve_str(EV_EXEC, tgid, tid, tv, ts);
	if (e) {
		set_len(e, bpf_probe_read_user_str(e->str, sizeof(e->str), (void *)args[0]));
		submit(e);
	}
	save(tid, EV_EXEC_FAIL, 0, 0, 0, 0);
}

/* bind, connect: (fd, sockaddr*, len); listen: (fd, backlog); accept: (fd, ...). */
static __always_inline void on_sock(u64 *args, u32 tid, u32 kind)
{
	s64 port = 0, family = 0;
	if (kind == EV_BIND || kind == EV_CONNECT) {
		struct sockaddr_in sa = {};
		bpf_probe_read_user(&sa, sizeof(sa), (void *)args[1]);
		family = sa.sin_family;
		port = (u16)((sa.sin_port >> 8) | (sa.sin_port << 8));
	} else if (kind == EV_LISTEN) {
		port = args[1]; /* the backlog */
	}
	save(tid, kind, 0, args[0], port, family);
}

/* write, sendto, read, recvfrom: (fd, buf, count); sub says which. */
static __always_inline void on_io(u64 *args, u32 tid, u32 kind, u32 sub)
{
	if (!fd_is_socket(args[0]))
		return;
	save(tid, kind, sub, args[0], args[1], args[2]);
}

/* sendmsg, recvmsg: (fd, struct user_msghdr*, flags): payload from iov[0]. */
static __always_inline void on_msg(u64 *args, u32 tid, u32 kind, u32 sub)
{
	if (!fd_is_socket(args[0]))
		return;
	struct user_msghdr m = {};
	struct iovec iov = {};
	bpf_probe_read_user(&m, sizeof(m), (void *)args[1]);
	if (m.msg_iovlen > 0)
		bpf_probe_read_user(&iov, sizeof(iov), m.msg_iov);
	save(tid, kind, sub, args[0], (s64)iov.iov_base, iov.iov_len);
}

#define SUB_SENDMSG 4
#define SUB_RECVMSG 5
#define SUB_WRITEV 6
#define SUB_READV 7

/* writev, readv: (fd, struct iovec*, iovcnt): payload from iov[0]. hyper 1.x
 * (reqwest 0.12, bottlecap) writes each request as writev(headers, body). */
static __always_inline void on_iov(u64 *args, u32 tid, u32 kind, u32 sub)
{
	if (!fd_is_socket(args[0]))
		return;
	struct iovec iov = {};
	if (args[2] > 0)
		bpf_probe_read_user(&iov, sizeof(iov), (void *)args[1]);
	save(tid, kind, sub, args[0], (s64)iov.iov_base, iov.iov_len);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(initprof_sys_i, struct pt_regs *regs, long id)
{
	u32 tgid, tid;
	struct tracked_val *tv = lookup_self(&tgid, &tid);
	if (!tv)
		return 0;
	if (id < 0 || id >= NR_SYSCALLS)
		return 0;
	u32 nr = id;
	u64 *rolep = bpf_map_lookup_elem(&sysroles, &nr);
	if (!rolep || !*rolep)
		return 0;
	u64 role = *rolep;
	u32 kind = (u32)role, sub = role >> 32;
	u64 args[6];
	SYSARGS(regs, args);

	switch (kind) {
	case EV_EXEC:
		on_execve(args, tgid, tid, tv);
		break;
	case EV_BIND:
	case EV_LISTEN:
	case EV_CONNECT:
	case EV_ACCEPT:
		on_sock(args, tid, kind);
		break;
	case EV_SEND:
	case EV_RECV:
		if (sub == SUB_SENDMSG || sub == SUB_RECVMSG)
			on_msg(args, tid, kind, sub);
		else if (sub == SUB_WRITEV || sub == SUB_READV)
			on_iov(args, tid, kind, sub);
		else
			on_io(args, tid, kind, sub);
		break;
	case EV_OPENAT:
		/* a1 keeps the path pointer; the exit reads it (still mapped); the flags go in sub. */
		save(tid, EV_OPENAT, (u32)args[2], args[0], args[1], 0);
		break;
	case EV_MMAP: {
		s64 fd = (int)args[4];
		if (fd < 0 || (args[3] & MAP_ANONYMOUS))
			break; /* anonymous: Linux ignores fd then, and some callers pass 0 */
		save(tid, EV_MMAP, (u32)args[2], fd, args[1], args[5]);
		break;
	}
	}
	return 0;
}

/* One exit program for every syscall above: the pending entry says what it was. */
SEC("tp_btf/sys_exit")
int BPF_PROG(initprof_sys_o, struct pt_regs *regs, long ret)
{
	u64 ts = bpf_ktime_get_ns();
	u32 tgid, tid;
	struct tracked_val *tv = lookup_self(&tgid, &tid);
	if (!tv)
		return 0;
	struct pending *p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	struct pending pv = *p;
	bpf_map_delete_elem(&pending, &tid);

	switch (pv.kind) {
	case EV_EXEC_FAIL:
		if (ret == 0)
			return 0;
		/* fallthrough */
	case EV_BIND:
	case EV_LISTEN:
	case EV_CONNECT:
	case EV_ACCEPT: {
		struct ev_hdr *h = reserve_small(pv.kind, tgid, tid, tv, ts);
		if (!h)
			return 0;
		h->ts_enter = pv.ts;
		h->a[0] = pv.a[0];
		h->a[1] = pv.a[1];
		h->a[2] = ret;
		h->a[3] = pv.a[2];
		submit(h);
		return 0;
	}
	case EV_SEND:
	case EV_RECV: {
		if (pv.kind == EV_RECV && ret < 0)
			return 0; /* EAGAIN from non-blocking readers is noise */
		struct ev_str *e = reserve_str(pv.kind, tgid, tid, tv, ts);
		if (!e)
			return 0;
		e->h.ts_enter = pv.ts;
		e->h.a[0] = pv.a[0];
		e->h.a[1] = pv.a[2];
		e->h.a[2] = ret;
		e->h.a[3] = pv.sub;
		if (ret > 0) {
			u64 n = ret;
			if (n > PAYLOAD_MAX)
				n = PAYLOAD_MAX;
			if (bpf_probe_read_user(e->str, n & (PAYLOAD_MAX * 2 - 1), (void *)pv.a[1]) == 0)
				e->h.len = n;
		}
		submit(e);
		return 0;
	}
	case EV_OPENAT: {
		struct ev_str *e = reserve_str(EV_OPENAT, tgid, tid, tv, ts);
		if (!e)
			return 0;
		e->h.ts_enter = pv.ts;
		e->h.a[0] = pv.a[0];
		e->h.a[1] = pv.sub;
		e->h.a[2] = ret;
		set_len(e, bpf_probe_read_user_str(e->str, sizeof(e->str), (void *)pv.a[1]));
		submit(e);
		return 0;
	}
	case EV_MMAP: {
		struct ev_str *e = reserve_str(EV_MMAP, tgid, tid, tv, ts);
		if (!e)
			return 0;
		e->h.ts_enter = pv.ts;
		e->h.a[0] = pv.a[0];
		e->h.a[1] = pv.sub;
		e->h.a[2] = ret;
		e->h.a[3] = pv.a[1];
		e->h.cookie = pv.a[2]; /* file offset */
		struct file *f = fd_file(pv.a[0]);
		if (f) {
			const unsigned char *name = BPF_CORE_READ(f, f_path.dentry, d_name.name);
			set_len(e, bpf_probe_read_kernel_str(e->str, sizeof(e->str), name));
		}
		submit(e);
		return 0;
	}
	}
	return 0;
}

/* ---- uprobes: the cookie names the checkpoint (see probes/checkpoint.go) ---- */

static __always_inline int on_uprobe(struct pt_regs *ctx, u16 kind)
{
	u64 ts = bpf_ktime_get_ns();
	u32 tgid, tid;
	struct tracked_val *tv = lookup_self(&tgid, &tid);
	if (!tv)
		return 0;
	u64 cookie = bpf_get_attach_cookie(ctx);
	if (kind == EV_UPROBE && (cookie & COOKIE_LINKMAP)) {
		struct ev_str *e = reserve_str(kind, tgid, tid, tv, ts);
		if (!e)
			return 0;
		e->h.cookie = cookie;
		u64 lm = PT_REGS_PARM1(ctx);
		e->h.a[0] = lm;
		const char *name = 0;
		/* struct link_map { ElfW(Addr) l_addr; char *l_name; ... } */
		bpf_probe_read_user(&name, sizeof(name), (void *)(lm + 8));
		set_len(e, bpf_probe_read_user_str(e->str, sizeof(e->str), name));
		submit(e);
		return 0;
	}
	struct ev_hdr *h = reserve_small(kind, tgid, tid, tv, ts);
	if (!h)
		return 0;
	h->cookie = cookie;
	h->a[0] = kind == EV_UPROBE ? PT_REGS_PARM1(ctx) : PT_REGS_RC(ctx);
	submit(h);
	return 0;
}

SEC("uprobe.multi")
int initprof_um(struct pt_regs *ctx) { return on_uprobe(ctx, EV_UPROBE); }

SEC("uretprobe.multi")
int initprof_urm(struct pt_regs *ctx) { return on_uprobe(ctx, EV_URETPROBE); }

SEC("uprobe")
int initprof_u(struct pt_regs *ctx) { return on_uprobe(ctx, EV_UPROBE); }

SEC("uretprobe")
int initprof_ur(struct pt_regs *ctx) { return on_uprobe(ctx, EV_URETPROBE); }

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * initprof's CPU sampler: a perf_event program on a per-task software
 * cpu-clock event opened with inherit=1 on a sandbox's first process, so it
 * fires for that process and everything it later forks, from the first
 * instruction after exec (no "first samples dropped" as in system-wide
 * profilers that learn new PIDs late).
 *
 * For each sample it records what offline DWARF unwinding needs: the user
 * registers (from the task's saved user pt_regs, so a sample taken in the
 * kernel still carries the user state at syscall entry), a copy of the user
 * stack from SP (up to 16 KiB, page by page so the copy stops at the end of
 * the stack mapping instead of failing whole), the kernel's frame-pointer walk
 * of the user stack (a fallback for code without CFI) and the kernel stack.
 *
 * 16 KiB does not fit the 512-byte BPF stack, so the record is assembled in a
 * per-CPU scratch map and copied into the ring buffer with its used length.
 * The program returns 0: the perf event's own ring buffer then carries only
 * the side-band records (MMAP2, COMM, FORK) the host reads for mappings.
 *
 * Off-CPU samples (when the host sets samp_cfg[0]): a tp_btf/sched_switch
 * program records the same registers and stacks for a task of the followed
 * tree as it leaves the CPU (blocked, or preempted: kind 1 or 2; current is
 * still that task there, so its user memory and user pt_regs are readable),
 * and a short kind-3 record when it comes back, carrying the switch-out time.
 * The host pairs them into one sample weighted by the time off the CPU. The
 * tree is a tgid set seeded with the followed process (not recorded itself:
 * it is the platform) and grown from sched_process_fork, as the timing
 * probes do.
 *
 * The record layout is mirrored by probes/sampler.go; change both together.
 */
#include "include/initprof_types.h"
#include "include/bpf_helpers.h"
#include "include/bpf_tracing.h"
#include "include/bpf_core_read.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * A uretprobe (the timing probes put them on ld.so's _dl_map_object_deps,
 * _dl_relocate_object, ...) overwrites the return address on the stack with
 * the kernel's uprobe trampoline; the original lives in the task's
 * return_instances. Record (slot, original) pairs so the host can put the
 * real return addresses back into the stack copy before unwinding. Only the
 * fields read are declared; CO-RE relocates them by name.
 */
struct return_instance {
	unsigned long stack;
	unsigned long orig_ret_vaddr;
	struct return_instance *next;
} __attribute__((preserve_access_index));

struct uprobe_task {
	struct return_instance *return_instances;
} __attribute__((preserve_access_index));

struct task_struct___up {
	struct uprobe_task *utask;
} __attribute__((preserve_access_index));

#define URET_MAX 8

#define STACK_MAX 16384
#define FRAMES_MAX 127
#define PAGE 4096
#define BPF_F_USER_STACK (1ULL << 8)

struct samp_rec {
	u64 ts;
	u32 pid; /* tgid */
	u32 tid;
	u64 ip, sp, bp, lr;
	u32 stack_len;  /* bytes of stack[] that are valid */
	s32 ustack_len; /* bytes of ustack[] (bpf_get_stack's result, < 0: error) */
	s32 kstack_len; /* bytes of kstack[] */
	u32 nuret; /* valid pairs in uret[] */
	u32 kind;  /* REC_* */
	u32 state; /* off-CPU: the task's state as it left the CPU */
	u64 aux;   /* REC_SWITCH_IN: the switch-out time it closes */
	u64 uret[URET_MAX][2]; /* [stack slot, original return address] */
	u64 ustack[FRAMES_MAX];
	u64 kstack[FRAMES_MAX];
	u8 stack[STACK_MAX + PAGE]; /* slack: lets the verifier bound a masked offset */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct samp_rec);
} samp_scratch SEC(".maps");

/* 64 MiB: at 20 kHz a 100 ms init of two CPUs makes ~4000 records of up to 19
 * KiB; the host drains it while the run goes, and counts what did not fit. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} samp_ring SEC(".maps");

#define REC_CPU 0	 /* a cpu-clock sample */
#define REC_BLOCKED 1	 /* left the CPU to wait (sleep, I/O, futex, poll) */
#define REC_PREEMPTED 2	 /* left the CPU runnable (preempted, throttled by the CPU quota) */
#define REC_SWITCH_IN 3	 /* came back; aux = its switch-out time; header only */

/* [0] samples taken, [1] samples dropped (ring buffer full), [2] off-CPU
 * switch-outs recorded, [3] off-CPU records dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, u64);
} samp_stats SEC(".maps");

/* [0] != 0: record off-CPU samples of the tree in samp_tgids. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} samp_cfg SEC(".maps");

/* The followed tree's processes: tgid → 1 (recorded) or 2 (the followed
 * root, the platform: only its descendants are recorded, since its own
 * threads' switches are not the extension's init and would cost it time). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u8);
} samp_tgids SEC(".maps");

/* Threads off the CPU now (tid → switch-out time). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} samp_off SEC(".maps");

static __always_inline void count(u32 k)
{
	u64 *v = bpf_map_lookup_elem(&samp_stats, &k);
	if (v)
		*v += 1;
}

#define HDR_LEN ((u64)(unsigned long)&((struct samp_rec *)0)->stack)

/* fill records the current task's user registers, uretprobe hijacks, FP and
 * kernel stacks and user stack copy into r; it returns the bytes to output. */
static __always_inline u64 fill(void *ctx, struct samp_rec *r)
{
	struct pt_regs *ur = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	struct pt_regs regs = {};
	if (!ur || bpf_probe_read_kernel(&regs, sizeof(regs), ur))
		return 0;
#if defined(__TARGET_ARCH_x86)
	r->ip = regs.ip;
	r->sp = regs.sp;
	r->bp = regs.bp;
	r->lr = 0;
#else
	r->ip = regs.pc;
	r->sp = regs.sp;
	r->bp = regs.regs[29];
	r->lr = regs.regs[30];
#endif
	r->nuret = 0;
	struct task_struct___up *task = (void *)bpf_get_current_task();
	struct uprobe_task *ut = 0;
	bpf_probe_read_kernel(&ut, sizeof(ut), &task->utask);
	struct return_instance *ri = 0;
	if (ut)
		bpf_probe_read_kernel(&ri, sizeof(ri), &ut->return_instances);
#pragma unroll
	for (int i = 0; i < URET_MAX; i++) {
		if (!ri)
			break;
		bpf_probe_read_kernel(&r->uret[i][0], 8, &ri->stack);
		bpf_probe_read_kernel(&r->uret[i][1], 8, &ri->orig_ret_vaddr);
		r->nuret = i + 1;
		bpf_probe_read_kernel(&ri, sizeof(ri), &ri->next);
	}
	r->ustack_len = bpf_get_stack(ctx, r->ustack, sizeof(r->ustack), BPF_F_USER_STACK);
	r->kstack_len = bpf_get_stack(ctx, r->kstack, sizeof(r->kstack), 0);

	/* The user stack, page by page: a read crossing into an unmapped page
	 * fails whole, so the first read ends at SP's page boundary and each
	 * further one is a full page; the copy stops at the first failure. */
	u64 sp = r->sp;
	u32 n = PAGE - (u32)(sp & (PAGE - 1));
	if (sp == 0 || bpf_probe_read_user(r->stack, n, (void *)sp)) {
		n = 0;
	} else {
#pragma unroll
		for (int i = 0; i < 3; i++) {
			if (n > STACK_MAX - PAGE)
				break;
			u32 off = n & (STACK_MAX - 1);
			if (bpf_probe_read_user(r->stack + off, PAGE, (void *)(sp + off)))
				break;
			n = off + PAGE;
		}
	}
	n &= 2 * STACK_MAX - 1;
	if (n > STACK_MAX)
		n = STACK_MAX;
	r->stack_len = n;
	return HDR_LEN + n;
}

SEC("perf_event")
int initprof_sample(void *ctx)
{
	u32 zero = 0;
	struct samp_rec *r = bpf_map_lookup_elem(&samp_scratch, &zero);
	if (!r)
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	r->ts = bpf_ktime_get_ns();
	r->pid = id >> 32;
	r->tid = (u32)id;
	r->kind = REC_CPU;
	r->state = 0;
	r->aux = 0;
	count(0);
	u64 len = fill(ctx, r);
	if (len < HDR_LEN || len > HDR_LEN + STACK_MAX)
		return 0;
	if (bpf_ringbuf_output(&samp_ring, r, len, 0))
		count(1);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(initprof_sample_fork, struct task_struct *parent, struct task_struct *child)
{
	u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (!bpf_map_lookup_elem(&samp_tgids, &ptgid))
		return 0;
	u32 ctgid = BPF_CORE_READ(child, tgid);
	u8 one = 1;
	bpf_map_update_elem(&samp_tgids, &ctgid, &one, BPF_ANY);
	return 0;
}

static __always_inline u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	struct task_struct___pre514 *old = (void *)t;
	return (u32)BPF_CORE_READ(old, state);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(initprof_sample_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u32 zero = 0;
	u32 *on = bpf_map_lookup_elem(&samp_cfg, &zero);
	if (!on || !*on)
		return 0;
	u64 ts = bpf_ktime_get_ns();
	u32 ntid = BPF_CORE_READ(next, pid);
	u64 *out = bpf_map_lookup_elem(&samp_off, &ntid);
	if (out) {
		struct samp_rec *h = bpf_ringbuf_reserve(&samp_ring, HDR_LEN, 0);
		if (h) {
			h->ts = ts;
			h->pid = BPF_CORE_READ(next, tgid);
			h->tid = ntid;
			h->kind = REC_SWITCH_IN;
			h->aux = *out;
			h->state = 0;
			h->stack_len = 0;
			h->ustack_len = 0;
			h->kstack_len = 0;
			h->nuret = 0;
			bpf_ringbuf_submit(h, 0);
		} else {
			count(3);
		}
		bpf_map_delete_elem(&samp_off, &ntid);
	}
	u32 ptgid = BPF_CORE_READ(prev, tgid);
	u8 *rec = bpf_map_lookup_elem(&samp_tgids, &ptgid);
	if (!rec || *rec != 1)
		return 0;
	struct samp_rec *r = bpf_map_lookup_elem(&samp_scratch, &zero);
	if (!r)
		return 0;
	u32 st = task_state(prev);
	r->ts = ts;
	r->pid = ptgid;
	r->tid = BPF_CORE_READ(prev, pid);
	r->kind = (preempt || st == 0) ? REC_PREEMPTED : REC_BLOCKED;
	r->state = st;
	r->aux = 0;
	count(2);
	/* current is still prev here: fill reads its user state. */
	u64 len = fill(ctx, r);
	if (len < HDR_LEN || len > HDR_LEN + STACK_MAX)
		return 0;
	if (bpf_ringbuf_output(&samp_ring, r, len, 0)) {
		count(3);
		return 0;
	}
	bpf_map_update_elem(&samp_off, &r->tid, &ts, BPF_ANY);
	return 0;
}

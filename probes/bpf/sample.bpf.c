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
 * The record layout is mirrored by probes/sampler.go; change both together.
 */
#include "include/initprof_types.h"
#include "include/bpf_helpers.h"
#include "include/bpf_tracing.h"

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

/* [0] samples taken, [1] samples dropped (ring buffer full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} samp_stats SEC(".maps");

static __always_inline void count(u32 k)
{
	u64 *v = bpf_map_lookup_elem(&samp_stats, &k);
	if (v)
		*v += 1;
}

#define HDR_LEN ((u64)(unsigned long)&((struct samp_rec *)0)->stack)

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
	count(0);

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
	if (bpf_ringbuf_output(&samp_ring, r, HDR_LEN + n, 0))
		count(1);
	return 0;
}

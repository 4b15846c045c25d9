/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel types initprof's probes touch, hand-written instead of a full
 * vmlinux.h: a vmlinux.h dumped on x86 does not describe arm64's pt_regs, and
 * one header must serve both targets. Kernel structs are marked
 * preserve_access_index, so every field access is a CO-RE relocation that
 * libbpf/cilium-ebpf resolve against the running kernel's BTF; only the fields
 * used are listed and their order here does not matter.
 */
#ifndef INITPROF_TYPES_H
#define INITPROF_TYPES_H

/* Tells bpf_tracing.h that pt_regs uses the kernel field names (di, not rdi). */
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef unsigned short umode_t;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

/*
 * Register layouts are user ABI (the uprobe context), so no preserve_access_index:
 * uprobes read them at these fixed offsets. The syscall programs read the
 * kernel's pt_regs through BPF_CORE_READ, which relocates by field name anyway.
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax, ip, cs, flags, sp, ss;
};
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			__u64 regs[31];
			__u64 sp;
			__u64 pc;
			__u64 pstate;
		};
	};
	__u64 orig_x0;
};
#else
#error "initprof probes are built for amd64 and arm64 only"
#endif

struct super_block {
	u32 s_dev; /* dev_t */
} __attribute__((preserve_access_index));

struct inode {
	umode_t i_mode;
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct qstr {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry {
	struct qstr d_name;
} __attribute__((preserve_access_index));

struct path {
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	struct path f_path;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int __state;
	int exit_code;
	int pid;
	int tgid;
	struct files_struct *files;
} __attribute__((preserve_access_index));

/* Before 5.14 the field was "state" (a long); read through this flavour. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_pgoff;
	struct file *vm_file;
} __attribute__((preserve_access_index));

/* The mm_filemap_add_to_page_cache record (order: since about 6.10). */
struct trace_event_raw_mm_filemap_op_page_cache {
	unsigned long i_ino;
	unsigned long index;
	u32 s_dev;
	unsigned char order;
} __attribute__((preserve_access_index));

struct trace_event_raw_mm_filemap_fault {
	unsigned long i_ino;
	u32 s_dev;
	unsigned long index;
} __attribute__((preserve_access_index));

/* mm_filemap_get_pages and mm_filemap_map_pages (since 6.11) */
struct trace_event_raw_mm_filemap_op_page_cache_range {
	unsigned long i_ino;
	u32 s_dev;
	unsigned long index;
	unsigned long last_index;
} __attribute__((preserve_access_index));

/*
 * A perf_event program's context (uapi linux/bpf_perf_event.h): regs are
 * bpf_user_pt_regs_t (pt_regs on x86, user_pt_regs on arm64); addr is the
 * faulting address of a software page-fault event.
 */
struct perf_event_ctx {
#if defined(__TARGET_ARCH_x86)
	struct pt_regs regs;
#else
	struct user_pt_regs regs;
#endif
	__u64 sample_period;
	__u64 addr;
};

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

struct sockaddr_in {
	unsigned short sin_family;
	__be16 sin_port;
};

struct iovec {
	void *iov_base;
	unsigned long iov_len;
};

struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	unsigned long msg_iovlen;
};

#endif

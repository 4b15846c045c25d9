// Package probes watches a process tree's start with eBPF: every checkpoint
// from execve to its first HTTP request (fork, exec, the dynamic loader's
// steps, the entry point, main, bind, the Lambda API calls), plus the page
// faults and off-CPU time between them, each stamped with CLOCK_MONOTONIC ns
// (bpf_ktime_get_ns, the clock targets and the platform print).
//
// A Tracer loads and attaches everything once, because a detach is slow
// (about 1 s for the whole set: each perf-event link waits for the kernel) and
// makes the next run colder; then it follows one run after another:
//
//	t, err := probes.New(probes.Options{Executables: []string{bin}, LdSo: ldso})
//	if err != nil { ... errors.Is(err, probes.ErrPermission) → exit code 3 ... }
//	defer t.Close()
//	t.FollowChildren(os.Getpid()) // or t.Follow(pid) for an existing process
//	... start the target, wait for it ...
//	events, stats, err := t.Collect() // sorted by time; stats.Dropped > 0 = holes
//
// Everything attaches system-wide and filters in BPF on a map of tracked
// tgids that sched_process_fork extends, because the uprobe PID filter
// follows one process, not its children. Every link is a file descriptor, so
// a tracer killed by a signal leaves nothing behind.
//
// # What a start touched
//
// Tracer.Touched returns, after a run, every file-backed 4 KiB page each
// tracked process touched first, by (st_dev, inode, page index), with the
// time and how: a page it caused into the page cache (filemap:
// mm_filemap_add_to_page_cache, every page of the folio: readahead, read(2),
// faults), a fault on a page (filemap:mm_filemap_fault, and the faulting
// page among those fault-around mapped, filemap:mm_filemap_map_pages, found
// from the fault's address with bpf_find_vma). They are kept in a BPF hash
// (one entry per process and page; Stats-like drops in TouchStats), not
// streamed. The fault tracepoints need Linux 6.11 (Debian's arm64 6.12 has
// them); without them only the page-cache adds are seen. Cost: about 0.4 µs
// of BPF per page (0.9 ms for a 9 MB Go binary's 2,300 pages; see
// BenchmarkTouchedCost).
//
// # Checkpoints of a dynamically linked C program (glibc 2.36)
//
//	exec (sys_enter_execve) → exec_done (sched_process_exec)
//	→ ldso_start (ld.so's e_entry) → dl_main
//	→ deps_start → deps_loaded (_dl_map_object_deps return)
//	→ relocate/relocated (one pair per object: every DT_NEEDED library, the
//	  executable (Object ""), and ld.so itself last)
//	→ dl_start_user → dl_init (the libraries' constructors)
//	→ entry (the executable's e_entry) → exe_init (its _init)
//	→ main → connect, send "POST …/register", recv "HTTP/1.1 200", bind, …
//
// Since glibc 2.34 the executable's own constructors run from
// __libc_start_main, after entry: between exe_init and main, not in dl_init.
// A static Go binary has entry → main.main. Checkpoints that cannot be
// attached are listed by Tracer.Unavailable with the reason (a stripped ld.so
// without libc6-dbg keeps ldso_start, dl_debug_state and entry).
//
// # Cost (measured on a 2-vCPU VM, see BenchmarkOverhead)
//
// A uprobe hit costs about 10 µs of the traced thread's CPU here: the trap
// itself, which an untracked process pays too (the host's ld.so uprobes trap
// every exec on the machine while a tracer is attached; a sandbox's own ld.so
// copy confines them to the sandbox). A traced socket syscall with its event
// costs about 1.1 µs, another traced syscall about 0.4 µs, and an untracked
// process's syscalls nothing measurable. Events are submitted without waking
// the reader (a wakeup cost the traced thread several µs per event); the
// reader polls every 10 ms. A whole cext cold start (75 uprobe hits, ~260
// events) is 2–3 % slower; strace -f makes it 130 % slower.
package probes

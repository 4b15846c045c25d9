// Package container runs the platform (`initprof platform`, PID 1) and the
// extensions under test in a sandbox that behaves like a Lambda execution
// environment: a read-only root holding only what the loader will open, a
// 512 MB /tmp, its own loopback-only network with /etc/hosts naming `sandbox`
// and `sandbox.localdomain`, Lambda's variables, no capabilities, and a memory
// limit with the CPU quota Lambda derives from it (memory/1769 of a vCPU).
//
// Two sandboxes share one contract (Sandbox, Instance):
//
//   - NewOCI assembles an OCI bundle once per build under test (the
//     extensions, their ELF interpreter and DT_NEEDED closure copied from the
//     host or a --rootfs, the bootstrap) and runs each cold start with runc
//     or crun: create (the first process exists but has not exec'd, so probes
//     can attach to it), start, wait, delete. The limits are read back from
//     the cgroup after create; delete removes the cgroup on v1 and v2;
//   - NewProcess runs the same platform as a plain host process for machines
//     without an OCI runtime: no limits and no private root, and Kind says so.
//
// One run, as `initprof run` drives it:
//
//	sb, err := container.NewOCI(cfg)           // once per build
//	defer sb.Close()
//	ev, err := container.EvictPageCache(sb.Files()) // --cache cold
//	in, err := sb.Create(ctx, "r1")
//	defer in.Delete()                          // every exit path
//	// attach probes to in.PID() and its descendants
//	err = in.Start()
//	code, err := in.Wait(ctx)
//	// read in.OutDir()/timeline.jsonl, in.Overhead(), in.Limits()
//
// On SIGINT/SIGTERM call CleanupAll; at start, CleanupStaleAll removes what a
// SIGKILLed earlier run left (containers, cgroups, work dirs, VM images: all
// named after their owner pid, see stale.go).
//
// EvictPageCache drops the bundle's files from the page cache before a cold
// run and proves it with mincore, because a warm page cache hides exactly the
// load cost initprof exists to measure.
//
// Nothing here knows about BPF or the Lambda APIs: the platform is an opaque
// command line, and probes only need Instance.PID.
package container

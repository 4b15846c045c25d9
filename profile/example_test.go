package profile_test

import (
	"fmt"
	"os"

	"github.com/initprof/initprof/profile"
)

// An extension seen by eBPF from execve to its first /next, with ld.so's
// ldso_start missed: the span that covers it says so in its name.
func ExamplePhases() {
	ext := profile.Process{Name: "datadog-agent", Role: profile.RoleExtension, Checkpoints: []profile.Checkpoint{
		{Name: profile.CkExec, MonoNs: 1_000_000, Source: profile.SourceEBPF},
		{Name: profile.CkExecDone, MonoNs: 1_300_000, Source: profile.SourceEBPF},
		{Name: profile.CkDepsLoaded, MonoNs: 1_700_000, Source: profile.SourceUprobe},
		{Name: profile.CkRelocated, MonoNs: 2_500_000, Source: profile.SourceUprobe},
		{Name: profile.CkEntry, MonoNs: 2_600_000, Source: profile.SourceUprobe},
		{Name: "telemetry_subscribed", MonoNs: 9_000_000, Source: profile.SourceLog},
		{Name: profile.CkNext, MonoNs: 9_400_000, Source: profile.SourcePlatform},
	}}
	for _, s := range profile.Phases(ext) {
		fmt.Printf("%s (%s → %s): %d µs\n", s.Name, s.From, s.To, s.DurNs()/1000)
	}
	fmt.Println("missing:", profile.Missing(ext))
	// Output:
	// exec (exec → exec_done): 300 µs
	// to_ldso+load_deps (exec_done → deps_loaded): 400 µs
	// relocate (deps_loaded → relocated): 800 µs
	// constructors (relocated → entry): 100 µs
	// telemetry_subscribed (entry → telemetry_subscribed): 6400 µs
	// telemetry_subscribed_to_next (telemetry_subscribed → next): 400 µs
	// missing: [spawn ldso_start main register_sent register_ok listener_bound subscribe_sent subscribe_ok]
}

// The usual flow: runs in, report.txt and results.json out.
func ExampleAggregate() {
	run := profile.Run{Index: 0, Build: "O3", InitStartNs: 0, InitDurationMs: 180.5, InitStatus: "success",
		Processes: []profile.Process{
			{Name: "ext", Role: profile.RoleExtension, Checkpoints: []profile.Checkpoint{
				{Name: profile.CkExec, MonoNs: 100_000}, {Name: profile.CkEntry, MonoNs: 2_100_000}, {Name: profile.CkNext, MonoNs: 5_100_000}}},
			{Name: "bootstrap", Role: profile.RoleRuntime, Checkpoints: []profile.Checkpoint{
				{Name: profile.CkExec, MonoNs: 200_000}, {Name: profile.CkNext, MonoNs: 180_500_000}}},
		}}
	rep := profile.Aggregate([]profile.Run{run})
	fmt.Println(rep.Verdict)
	_ = rep.WriteJSON(os.Stderr) // results.json
	// Output:
	// load (exec→entry) is 40 % of ext's time-to-ready (2.00 ms of 5.00 ms); ext is not on the init critical path (the runtime ends init 175.40 ms later), so no change inside ext can lower Init Duration
}

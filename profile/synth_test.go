package profile

import (
	"math/rand/v2"
)

// synth builds synthetic runs: the model is pure, so hand-made checkpoints are
// legitimate input here. Times are in µs offsets from the run's initStart.
type synthSpec struct {
	build      string
	runs       int
	seed       uint64
	runtimeNs  int64   // runtime exec → next
	relocateNs int64   // extension's relocate phase
	ctorExtra  int64   // extra constructor time (the "injected delay")
	subExtra   int64   // extra time in the Telemetry subscribe round trip
	noise      float64 // relative noise on every phase
	drop       []string
}

// extPhases are the extension's nominal phase lengths in ns, in canonical order
// from exec (spawn → exec is 200 µs).
var extPhases = []struct {
	to string
	ns int64
}{
	{CkExec, 200_000}, {CkExecDone, 300_000}, {CkLdsoStart, 50_000}, {CkDepsLoaded, 400_000},
	{CkRelocated, 0 /* relocateNs */}, {CkConstructorsDone, 100_000}, {CkEntry, 20_000},
	{CkMain, 150_000}, {CkRegisterSent, 100_000}, {CkRegisterOK, 300_000},
	{CkListenerBound, 200_000}, {CkSubscribeSent, 500_000}, {CkSubscribeOK, 700_000}, {CkNext, 200_000},
}

func synthRuns(s synthSpec) []Run {
	rng := rand.New(rand.NewPCG(s.seed, 99))
	jitter := func(ns int64) int64 {
		if s.noise == 0 {
			return ns
		}
		f := 1 + s.noise*(rng.Float64()-0.5)*2 + s.noise*rng.ExpFloat64()*0.5
		return int64(float64(ns) * f)
	}
	dropped := map[string]bool{}
	for _, d := range s.drop {
		dropped[d] = true
	}
	var runs []Run
	for i := 0; i < s.runs; i++ {
		start := int64(1_000_000_000) * int64(i+1)
		ext := Process{Name: "ext", Role: RoleExtension, PID: 100 + i,
			OnCPUNs: map[string]int64{}, RunnableNs: map[string]int64{}, BlockedNs: map[string]int64{},
			Faults: map[string]int64{}, MajorFaults: map[string]int64{}}
		t := start
		ext.Checkpoints = append(ext.Checkpoints, Checkpoint{CkSpawn, t, SourcePlatform})
		for _, ph := range extPhases {
			d := ph.ns
			switch ph.to {
			case CkRelocated:
				d = s.relocateNs
			case CkConstructorsDone:
				d += s.ctorExtra
			case CkSubscribeOK:
				d += s.subExtra
			}
			t += jitter(d)
			if dropped[ph.to] {
				continue
			}
			src := SourceEBPF
			if ph.to == CkNext {
				src = SourcePlatform
			}
			ext.Checkpoints = append(ext.Checkpoints, Checkpoint{ph.to, t, src})
		}
		for _, sp := range Phases(ext) {
			ext.OnCPUNs[sp.Name] = sp.DurNs() * 6 / 10
			ext.RunnableNs[sp.Name] = sp.DurNs() / 10
			ext.BlockedNs[sp.Name] = sp.DurNs() * 3 / 10
			ext.Faults[sp.Name] = sp.DurNs() / 10_000
			ext.MajorFaults[sp.Name] = sp.DurNs() / 200_000
		}
		rtExec := start + 300_000
		rt := Process{Name: "bootstrap", Role: RoleRuntime, PID: 200 + i, Checkpoints: []Checkpoint{
			{CkSpawn, start + 250_000, SourcePlatform},
			{CkExec, rtExec, SourceEBPF},
			{CkExecDone, rtExec + jitter(250_000), SourceEBPF},
			{CkNext, rtExec + jitter(s.runtimeNs), SourcePlatform},
		}}
		end := max(t, rt.Checkpoints[3].MonoNs)
		runs = append(runs, Run{Index: i, Build: s.build, InitStartNs: start, InitEndNs: end,
			InitStatus: "success", Processes: []Process{ext, rt}})
	}
	return runs
}

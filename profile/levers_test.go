package profile

import (
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/stats"
)

func TestLevers(t *testing.T) {
	med := func(v float64) stats.Summary { return stats.Summary{N: 5, Median: v} }
	dyn := []PhaseReport{
		{Name: "load_deps", From: CkLdsoStart, Dur: med(2e6), FetchWait: med(1e6)},
		{Name: "relocate", From: CkDepsLoaded, Dur: med(210e3)},
		{Name: "constructors", From: CkRelocated, Dur: med(90e3)},
		{Name: "to_main", From: CkEntry, Dur: med(1e6), OnCPU: med(400e3), FetchWait: med(2e6)},
	}
	touched := &TouchedReport{Runs: 5, Exe: "/opt/extensions/x", ExeSize: 2200 << 10, ExeBytes: med(1 << 20), ExeChunks: med(5),
		Sections: []Share{{Name: ".text", Share: 0.7}, {Name: ".eh_frame", Share: 0.05}, {Name: ".debug_info", Share: 0.1}}}
	for _, tc := range []struct {
		name   string
		p      ProcessReport
		lever  string
		save   float64
		chunks float64
		text   string
	}{
		{"relr bound is the relocation phase", ProcessReport{Phases: dyn}, "RELR", 210e3, 0, "relocation took 210.0 µs: RELR"},
		{"lazy bound is the relocation phase", ProcessReport{Phases: dyn}, "-z lazy", 210e3, 0, "at most 210.0 µs"},
		{"static-pie bound is the loader's phases", ProcessReport{Phases: dyn}, "static-pie", 2.3e6, 0, "at most 2.30 ms"},
		{"static binary: nothing left", ProcessReport{Phases: dyn[3:]}, "static-pie", 0, 0, "nothing left to save"},
		{"opt-level: CPU after entry plus fetch wait", ProcessReport{Phases: dyn}, "opt-level z vs 3", 3.4e6, 0, "at most 3.40 ms"},
		{"orderfile: chunks beyond what the bytes need", ProcessReport{Phases: dyn, Touched: touched}, "orderfile", 3e6, 3, "at most 3 chunks"},
		{"strip: debug pages read ahead", ProcessReport{Phases: dyn, Touched: touched}, "strip/debuginfo", 0, 0, "102 KiB of debug"},
		{"UPX only costs", ProcessReport{Phases: dyn, Touched: touched}, "UPX", -1, 0, "cannot save load"},
		{"no touches: not priced", ProcessReport{Phases: dyn}, "orderfile", 0, 0, "cannot be priced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *Lever
			for _, l := range Levers(&tc.p) {
				if l.Name == tc.lever {
					l := l
					got = &l
				}
			}
			if got == nil {
				t.Fatalf("no lever %q", tc.lever)
			}
			if got.MaxSaveNs != tc.save || got.MaxSaveChunks != tc.chunks || !strings.Contains(got.Text, tc.text) {
				t.Errorf("%+v; want save %g ns, %g chunks, text containing %q", *got, tc.save, tc.chunks, tc.text)
			}
		})
	}
}

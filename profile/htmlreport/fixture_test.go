package htmlreport

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/flame"
)

// fixture describes synthetic runs. The report is a pure function of the
// runs, so hand-made checkpoints are legitimate input (as in profile's own
// synth_test.go); times are ns from the run's initStart.
type fixture struct {
	build   string
	runs    int
	exts    int // extensions; the runtime comes on top
	seed    uint64
	host    string
	arch    string
	touched bool
	// slower adds this much to every extension's relocate phase.
	slower int64
}

var extSteps = []struct {
	to string
	ns int64
}{
	{profile.CkExec, 200_000}, {profile.CkExecDone, 300_000}, {profile.CkLdsoStart, 50_000},
	{profile.CkDepsLoaded, 400_000}, {profile.CkRelocated, 900_000}, {profile.CkConstructorsDone, 100_000},
	{profile.CkEntry, 20_000}, {profile.CkMain, 150_000}, {profile.CkRegisterSent, 100_000},
	{profile.CkRegisterOK, 300_000}, {profile.CkListenerBound, 200_000}, {profile.CkSubscribeSent, 500_000},
	{profile.CkSubscribeOK, 700_000}, {profile.CkNext, 200_000},
}

func (f fixture) make() []profile.Run {
	rng := rand.New(rand.NewPCG(f.seed, 7))
	jit := func(ns int64) int64 { return int64(float64(ns) * (0.8 + 0.4*rng.Float64() + 0.2*rng.ExpFloat64())) }
	var runs []profile.Run
	for i := 0; i < f.runs; i++ {
		start := int64(1e9) * int64(i+1)
		r := profile.Run{Index: i, Build: f.build, InitStartNs: start, InitStatus: "success", Host: f.host, Arch: f.arch,
			Binaries: map[string]string{}}
		var lastReg, end int64
		for e := 0; e < f.exts; e++ {
			name := fmt.Sprintf("ext%02d", e)
			p := profile.Process{Name: name, Role: profile.RoleExtension, PID: 100 + 20*i + e, OnCPUNs: map[string]int64{}}
			t := start + int64(e)*30_000
			p.Checkpoints = append(p.Checkpoints, profile.Checkpoint{Name: profile.CkSpawn, MonoNs: t, Source: profile.SourcePlatform})
			for _, s := range extSteps {
				d := s.ns
				if s.to == profile.CkRelocated {
					d += f.slower
				}
				t += jit(d)
				p.Checkpoints = append(p.Checkpoints, profile.Checkpoint{Name: s.to, MonoNs: t, Source: profile.SourceEBPF})
				if s.to == profile.CkRegisterOK {
					lastReg = max(lastReg, t)
				}
			}
			end = max(end, t)
			for _, sp := range profile.Phases(p) {
				p.OnCPUNs[sp.Name] = sp.DurNs() / 2
			}
			if f.touched {
				p.TouchedInit = &profile.TouchedInit{
					Pages:  profile.TouchedPages{Major: 40, Minor: 200, Readahead: 2000 + int64(rng.IntN(50)), Total: 2240, Faulted: 240},
					Chunks: 19, FaultedChunks: 13,
					Files: []profile.TouchedFile{
						{Path: "/opt/extensions/" + name, Size: 9_600_000, Exe: true, Pages: profile.TouchedPages{Total: 2209, Faulted: 200}, Chunks: 19, FaultedChunks: 13,
							Sections: map[string]int64{".text": 2_800_000, ".gopclntab": 2_200_000, ".rodata": 1_500_000, ".debug_info": 1_900_000}, Owners: map[string]int64{"runtime": 400_000, "net/http": 300_000}, OwnerKind: "package"},
						{Path: "/lib/x86_64-linux-gnu/libc.so.6", Size: 1_900_000, Pages: profile.TouchedPages{Total: 31, Faulted: 31}, Chunks: 3, FaultedChunks: 2},
					}}
			}
			r.Binaries[name] = fmt.Sprintf("sha256:%064x", e+1)
			r.Processes = append(r.Processes, p)
		}
		rt := profile.Process{Name: "bootstrap", Role: profile.RoleRuntime, PID: 90 + i}
		t := lastReg + 50_000
		rt.Checkpoints = []profile.Checkpoint{{Name: profile.CkSpawn, MonoNs: t, Source: profile.SourcePlatform}}
		for _, s := range []struct {
			to string
			ns int64
		}{{profile.CkExec, 100_000}, {profile.CkExecDone, 250_000}, {profile.CkNext, 2_000_000}} {
			t += jit(s.ns)
			rt.Checkpoints = append(rt.Checkpoints, profile.Checkpoint{Name: s.to, MonoNs: t, Source: profile.SourceEBPF})
		}
		r.Processes = append(r.Processes, rt)
		r.InitEndNs = max(end, t)
		runs = append(runs, r)
	}
	return runs
}

// writeRunDir writes what initprof run would: results.json, and with
// flames a flame.svg and flame-relocate.svg rendered by profile/flame.
func writeRunDir(t testing.TB, dir string, runs []profile.Run, flames bool) *profile.Report {
	t.Helper()
	rep := profile.Aggregate(runs)
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "results.json"), b.Bytes(), 0o644))
	if flames {
		for name, f := range map[string]flame.Folded{
			"flame.svg":          folded(),
			"flame-relocate.svg": {"ext00;_dl_start;_dl_relocate_object;_dl_lookup_symbol_x": 40, "ext00;_dl_start;_dl_relocate_object;do_lookup_x": 25},
		} {
			var s bytes.Buffer
			must(t, flame.WriteSVG(&s, f, flame.Options{Title: name}))
			must(t, os.WriteFile(filepath.Join(dir, name), s.Bytes(), 0o644))
		}
	}
	return rep
}

func folded() flame.Folded {
	f := flame.Folded{}
	for i := 0; i < 40; i++ {
		f[fmt.Sprintf("ext00;_dl_start;_dl_relocate_object;sym%d", i)] = int64(1 + i%7)
		f[fmt.Sprintf("ext00;main;runtime.main;init.%d", i)] = int64(2 + i%5)
	}
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

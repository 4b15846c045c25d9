package profile

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./profile -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is intended)\n--- got ---\n%s", path, got)
	}
}

var (
	// A runtime far slower than the extension: the extension can't matter.
	slowRuntime = synthSpec{build: "a", runs: 10, seed: 1, runtimeNs: 180e6, relocateNs: 800_000, noise: 0.1}
	// A fast runtime and a slow-to-link extension: it ends init, load dominates.
	fastRuntime = synthSpec{build: "a", runs: 10, seed: 1, runtimeNs: 5e6, relocateNs: 2_800_000, noise: 0.1, drop: []string{CkLdsoStart}}
	// A fast runtime and a slow subscribe: the extension ends init, init ordering dominates.
	slowSubscribe = synthSpec{build: "a", runs: 10, seed: 1, runtimeNs: 5e6, relocateNs: 300_000, subExtra: 4e6, noise: 0.1}
)

func TestReportCriticalPathAndVerdict(t *testing.T) {
	tests := []struct {
		name       string
		spec       synthSpec
		wantLeader string
		verdict    []string
		notVerdict []string
	}{
		{"slow runtime (180 ms)", slowRuntime, RoleRuntime,
			[]string{"load (exec→entry) is ", "of ext's time-to-ready", "ext is not on the init critical path (the runtime ends init ", "later), so no change inside ext can lower Init Duration"},
			[]string{"dominates"}},
		{"fast runtime (5 ms), slow relocation", fastRuntime, "ext",
			[]string{"ext ends init in ", "after the runtime", "so load dominates", "largest load phase is relocate"},
			[]string{"not on the init critical path"}},
		{"fast runtime (5 ms), slow subscribe", slowSubscribe, "ext",
			[]string{"ext ends init in ", "so init ordering dominates: entry→/next is ", "the largest step is subscribe"},
			[]string{"load dominates", "not on the init critical path"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Aggregate(synthRuns(tc.spec))
			if rep.Critical.Leader != tc.wantLeader {
				t.Errorf("leader = %q, want %q (%v)", rep.Critical.Leader, tc.wantLeader, rep.Critical.EndedBy)
			}
			for _, s := range tc.verdict {
				if !strings.Contains(rep.Verdict, s) {
					t.Errorf("verdict lacks %q:\n%s", s, rep.Verdict)
				}
			}
			for _, s := range tc.notVerdict {
				if strings.Contains(rep.Verdict, s) {
					t.Errorf("verdict has %q:\n%s", s, rep.Verdict)
				}
			}
		})
	}
	// Side by side: how much later init ends than the extension is far larger with
	// the slow runtime than with the fast one.
	slow, fast := Aggregate(synthRuns(slowRuntime)), Aggregate(synthRuns(fastRuntime))
	if s, f := slow.Processes[0].SlackNs.Median, fast.Processes[0].SlackNs.Median; !(s > 100*math.Max(f, 1)) {
		t.Errorf("slack with slow runtime %v ns should dwarf slack with fast runtime %v ns", s, f)
	}
	if slow.InitDuration.Median <= fast.InitDuration.Median {
		t.Errorf("Init Duration: slow runtime %v ≤ fast runtime %v", slow.InitDuration.Median, fast.InitDuration.Median)
	}
}

// TestAggregateExact uses noise-free runs, where every figure is known.
func TestAggregateExact(t *testing.T) {
	spec := synthSpec{build: "x", runs: 5, seed: 3, runtimeNs: 180e6, relocateNs: 800_000}
	rep := Aggregate(synthRuns(spec))
	if rep.Schema != ResultsSchema || rep.Build != "x" {
		t.Errorf("schema %q build %q", rep.Schema, rep.Build)
	}
	if len(rep.Processes) != 2 || rep.Processes[0].Name != "ext" || rep.Processes[1].Name != RoleRuntime {
		t.Fatalf("processes = %+v, want ext then runtime", rep.Processes)
	}
	ext := rep.Processes[0]
	var ttr, load int64
	for _, ph := range extPhases[1:] {
		d := ph.ns
		if ph.to == CkRelocated {
			d = spec.relocateNs
		}
		ttr += d
		if ph.to == CkEntry {
			load = ttr
		}
	}
	if ext.TimeToReady.Median != float64(ttr) || ext.Load.Median != float64(load) || ext.TimeToReady.N != 5 {
		t.Errorf("ttr %v load %v, want %d %d", ext.TimeToReady, ext.Load, ttr, load)
	}
	if want := float64(load) / float64(ttr); math.Abs(ext.LoadShare-want) > 1e-12 {
		t.Errorf("load share %v, want %v", ext.LoadShare, want)
	}
	var reloc *PhaseReport
	for i := range ext.Phases {
		if ext.Phases[i].Name == "relocate" {
			reloc = &ext.Phases[i]
		}
	}
	if reloc == nil {
		t.Fatal("no relocate phase")
	}
	if reloc.Dur.Median != 800_000 || reloc.From != CkDepsLoaded || reloc.To != CkRelocated {
		t.Errorf("relocate = %+v", reloc)
	}
	if want := 800_000 / float64(ttr); math.Abs(reloc.Share-want) > 1e-12 {
		t.Errorf("relocate share %v, want %v", reloc.Share, want)
	}
	if reloc.OnCPU.Median != 480_000 || reloc.Blocked.Median != 240_000 || reloc.Runnable.Median != 80_000 {
		t.Errorf("relocate cpu/blocked/runnable = %v/%v/%v", reloc.OnCPU.Median, reloc.Blocked.Median, reloc.Runnable.Median)
	}
	if reloc.Faults.Median != 80 || reloc.MajorFaults.Median != 4 {
		t.Errorf("relocate faults = %v/%v", reloc.Faults.Median, reloc.MajorFaults.Median)
	}
	// Phases come out in time order.
	var got []string
	for _, ph := range ext.Phases {
		got = append(got, ph.Name)
	}
	if strings.Join(got, ",") != "spawn,exec,to_ldso,load_deps,relocate,constructors,to_entry,to_main,to_register,register,listener,to_subscribe,subscribe,to_next" {
		t.Errorf("phase order %v", got)
	}
	if ext.Phases[0].Share != 0 {
		t.Errorf("spawn is before exec, so no share of time-to-ready; got %v", ext.Phases[0].Share)
	}
	if ext.Missing != nil {
		t.Errorf("missing %v, want none", ext.Missing)
	}
	if rep.Critical.EndedBy[RoleRuntime] != 5 || rep.Critical.RunnerUp != "ext" {
		t.Errorf("critical %+v", rep.Critical)
	}
	if rep.InitStatus["success"] != 5 {
		t.Errorf("init status %v", rep.InitStatus)
	}
}

func TestAggregateDegenerate(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs []Run
		want string
	}{
		{"no runs", nil, "no extension was observed"},
		{"extension without exec or entry", []Run{{Processes: []Process{proc(RoleExtension, CkMain, 0, CkNext, 10)}}}, "could not be measured (missing: exec, entry)"},
		{"nobody reached next", []Run{{Processes: []Process{proc(RoleExtension, CkExec, 0, CkEntry, 10)}}}, "who ended init is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Aggregate(tc.runs)
			if !strings.Contains(rep.Verdict, tc.want) {
				t.Errorf("verdict %q lacks %q", rep.Verdict, tc.want)
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReportText(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec synthSpec
		mod  func(*Report)
	}{
		{"report-slow-runtime.txt", slowRuntime, func(r *Report) {
			r.Overhead = &Overhead{Method: "10 unprobed runs interleaved", InitDeltaNs: 310_000, BaselineNs: 182e6, PerEventNs: 1400}
		}},
		{"report-fast-runtime.txt", fastRuntime, func(r *Report) {
			r.Dropped = 3
			r.Notes = append(r.Notes, "synthetic runs")
		}},
		{"report-slow-subscribe.txt", slowSubscribe, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rep := Aggregate(synthRuns(tc.spec))
			if tc.mod != nil {
				tc.mod(rep)
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, want := range []string{"Init Duration", "critical path", "probe overhead", "VERDICT: " + rep.Verdict} {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q", want)
				}
			}
			if rep.Dropped > 0 && !strings.Contains(out, "!!! WARNING: 3 PROBE EVENTS WERE DROPPED") {
				t.Error("dropped events are not announced loudly")
			}
			golden(t, tc.file, buf.Bytes())
		})
	}
}

func TestReportJSON(t *testing.T) {
	runs := synthRuns(fastRuntime)
	rep := Aggregate(runs)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema string `json:"schema"`
		Runs   []struct {
			Index          int   `json:"index"`
			InitDurationNs int64 `json:"init_duration_ns"`
			Critical       struct {
				EndedBy string `json:"ended_by"`
			} `json:"critical_path"`
			Processes []struct {
				Name        string       `json:"name"`
				Checkpoints []Checkpoint `json:"checkpoints"`
				Phases      []struct {
					Name    string `json:"name"`
					StartNs int64  `json:"start_ns"`
					EndNs   int64  `json:"end_ns"`
					DurNs   int64  `json:"dur_ns"`
				} `json:"phases"`
				Missing []string `json:"missing"`
			} `json:"processes"`
		} `json:"runs"`
		Processes []struct {
			Name   string `json:"name"`
			Phases []struct {
				Name string `json:"name"`
			} `json:"phases"`
		} `json:"processes"`
		InitDuration struct {
			Median float64 `json:"median"`
		} `json:"init_duration_ns"`
		Verdict string `json:"verdict"`
		Dropped uint64 `json:"dropped_events"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("results.json does not parse: %v", err)
	}
	if doc.Schema != "initprof.results/v1" {
		t.Errorf("schema = %q", doc.Schema)
	}
	if len(doc.Runs) != len(runs) {
		t.Fatalf("%d runs in JSON, want %d", len(doc.Runs), len(runs))
	}
	for i, r := range doc.Runs {
		if r.Index != runs[i].Index || r.InitDurationNs <= 0 || r.Critical.EndedBy == "" {
			t.Errorf("run %d: %+v", i, r)
		}
		for j, p := range r.Processes {
			if !sameCheckpoints(p.Checkpoints, runs[i].Processes[j].Checkpoints) {
				t.Errorf("run %d process %s: checkpoints differ from the input", i, p.Name)
			}
			if len(p.Phases) != len(Phases(runs[i].Processes[j])) {
				t.Errorf("run %d process %s: %d phases, want %d", i, p.Name, len(p.Phases), len(Phases(runs[i].Processes[j])))
			}
			for _, ph := range p.Phases {
				if ph.DurNs != ph.EndNs-ph.StartNs {
					t.Errorf("phase %s dur_ns %d != end − start", ph.Name, ph.DurNs)
				}
			}
		}
		if got := r.Processes[0].Missing; len(got) != 1 || got[0] != CkLdsoStart {
			t.Errorf("run %d: missing %v, want [ldso_start]", i, got)
		}
	}
	if len(doc.Processes) != 2 || doc.InitDuration.Median != rep.InitDuration.Median || doc.Verdict != rep.Verdict {
		t.Errorf("summary in JSON does not match the report")
	}
}

func sameCheckpoints(a, b []Checkpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFmtDur(t *testing.T) {
	for ns, want := range map[float64]string{
		512: "512 ns", 1500: "1.5 µs", 999_949: "999.9 µs", 1_234_567: "1.23 ms", 182_310_000: "182.31 ms", 2.5e9: "2.500 s", -260_000: "-260.0 µs",
	} {
		if got := fmtDur(ns); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", ns, got, want)
		}
	}
}

func TestReportNotes(t *testing.T) {
	runs := synthRuns(synthSpec{build: "a", runs: 4, seed: 5, runtimeNs: 5e6, relocateNs: 300_000})
	runs[1].InitStatus = "error"
	runs[2].Notes = []string{"extension printed no ground-truth checkpoints"}
	runs[3].Dropped = 7
	rep := Aggregate(runs)
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"note: run 2: extension printed no ground-truth checkpoints",
		"note: init did not succeed in 1 of 4 runs (error 1, success 3)",
		"note: the probes dropped 7 events over 4 runs",
		"!!! WARNING: 7 PROBE EVENTS WERE DROPPED",
		"init status     error 1, success 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestReadResultsRoundTrip(t *testing.T) {
	rep := Aggregate(synthRuns(fastRuntime))
	rep.Overhead = &Overhead{Method: "m", InitDeltaNs: 1000, BaselineNs: 2000}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(&js)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	_ = rep.WriteText(&a)
	_ = back.WriteText(&b)
	if a.String() != b.String() {
		t.Errorf("report.txt from results.json differs:\n%s\n---\n%s", a.String(), b.String())
	}
	for _, tc := range []struct{ in, want string }{
		{"not json", "results.json: not valid JSON"},
		{`{"schema":"initprof.results/v0","runs":[]}`, `results.json: schema "initprof.results/v0", want "initprof.results/v1"`},
	} {
		if _, err := ReadResults(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadResults(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}

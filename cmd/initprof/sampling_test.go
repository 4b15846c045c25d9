package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	pprof "github.com/google/pprof/profile"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/sample"
)

// flameRun runs `initprof run --flamegraph` and returns its --out directory,
// its stderr and the parsed cpu.pb.gz.
func flameRun(t *testing.T, bin string, args ...string) (string, string, *pprof.Profile) {
	t.Helper()
	out := t.TempDir()
	_, stderr, code := runInitprof(t, bin, append([]string{"run", "--flamegraph", "--out", out}, args...)...)
	if code != exitOK {
		t.Fatalf("initprof run --flamegraph exited %d:\n%s", code, stderr)
	}
	f, err := os.Open(filepath.Join(out, "cpu.pb.gz"))
	if err != nil {
		t.Fatalf("no cpu.pb.gz: %v\n%s", err, stderr)
	}
	defer f.Close()
	p, err := pprof.Parse(f)
	if err != nil {
		t.Fatalf("cpu.pb.gz does not parse: %v", err)
	}
	return out, stderr, p
}

// stackNames is a sample's function names, leaf first.
func stackNames(s *pprof.Sample) []string {
	var names []string
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function != nil {
				names = append(names, ln.Function.Name)
			}
		}
	}
	return names
}

func containsInOrder(names []string, want ...string) bool {
	i := 0
	for _, n := range names {
		if i < len(want) && n == want[i] {
			i++
		}
	}
	return i == len(want)
}

func label(s *pprof.Sample, k string) string {
	if v := s.Label[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// TestRunFlamegraphC: the C sample's constructor (cext_hot_spin in
// libcexthot.so, built without frame pointers) appears with full frames up
// through _dl_init, the relocation phase shows the loader relocating, and
// every output file is readable by the tools it is meant for.
func TestRunFlamegraphC(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	out, stderr, p := flameRun(t, bin, "-n", "2", "--sample-hz", "5000", "--runtime-init", "5ms", testutil.Sample(t, "cext"))
	t.Logf("stderr:\n%s", lastLines(stderr, 4))

	for _, f := range []string{"cpu.pb.gz", "flame.svg", "stacks.folded", "trace.json", "report.txt"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	var hot, hotFull, reloc, cext, rooted int
	phases := map[string]bool{}
	for _, s := range p.Sample {
		// phase is absent outside the process's init (after its /next).
		for _, k := range []string{"process", "run", "build"} {
			if _, ok := s.Label[k]; !ok {
				t.Fatalf("a sample of %q lacks the label %s: %v", label(s, "process"), k, s.Label)
			}
		}
		if label(s, "process") != "cext" {
			continue
		}
		cext++
		phases[label(s, "phase")] = true
		names := stackNames(s)
		if len(names) > 0 && sample.IsRoot(names[len(names)-1]) {
			rooted++
		}
		if containsInOrder(names, "cext_hot_spin") {
			hot++
			if containsInOrder(names, "cext_hot_spin", "_dl_init") && (names[len(names)-1] == "_start" || names[len(names)-1] == "_dl_start_user") {
				hotFull++
			}
		}
		if label(s, "phase") == "relocate" && (containsInOrder(names, "_dl_relocate_object") || containsInOrder(names, "do_lookup_x")) {
			reloc++
		}
	}
	if cext == 0 || rooted*10 < cext*9 {
		t.Errorf("%d of %d cext samples unwound to a root frame; want ≥ 90 %%", rooted, cext)
	}
	t.Logf("cext: %d samples, %d (%.0f %%) unwound to a root frame, %d in cext_hot_spin", cext, rooted, 100*float64(rooted)/float64(max(cext, 1)), hot)
	if !phases["constructors"] || !phases["relocate"] {
		t.Errorf("cext samples carry the phases %v; want constructors and relocate among them", phases)
	}
	if hot < 5 || hotFull*10 < hot*9 {
		t.Errorf("%d cext samples in cext_hot_spin, %d of them with full frames through _dl_init to the root; want ≥ 5 and ≥ 90 %%", hot, hotFull)
	}
	if reloc == 0 {
		t.Errorf("no relocate-phase sample in _dl_relocate_object or do_lookup_x (phases seen: %v)", phases)
	}
	for ph := range phases {
		if ph == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, "flame-"+ph+".svg")); err != nil {
			t.Errorf("phase %s has samples but no flame-%s.svg", ph, ph)
		}
	}
	svgs, _ := filepath.Glob(filepath.Join(out, "*.svg"))
	for _, f := range svgs {
		checkXML(t, f)
	}
	checkTrace(t, filepath.Join(out, "trace.json"))

	// go tool pprof reads it, and its labels filter.
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no go tool at %s to run pprof", goTool)
	}
	top, err := exec.Command(goTool, "tool", "pprof", "-top", filepath.Join(out, "cpu.pb.gz")).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "flat") {
		t.Errorf("go tool pprof -top: %v\n%s", err, top)
	}
	focus, err := exec.Command(goTool, "tool", "pprof", "-top", "-tagfocus", "phase=relocate", filepath.Join(out, "cpu.pb.gz")).CombinedOutput()
	if err != nil || !strings.Contains(string(focus), "_dl_relocate_object") && !strings.Contains(string(focus), "do_lookup_x") {
		t.Errorf("go tool pprof -tagfocus phase=relocate shows no loader relocation: %v\n%s", err, focus)
	}
	if string(focus) == string(top) {
		t.Error("-tagfocus phase=relocate changed nothing: the phase label does not filter")
	}
}

// TestRunFlamegraphGo: Go stacks unwind deep (pclntab/frame pointers), not
// the 2–3 frames of a frame-pointer walk through C libraries.
func TestRunFlamegraphGo(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	_, _, p := flameRun(t, bin, "-n", "1", "--sample-hz", "5000", "--runtime-init", "5ms", testutil.Sample(t, "goext"))
	n, frames := 0, 0
	for _, s := range p.Sample {
		if label(s, "process") == "goext" {
			n++
			frames += len(s.Location)
		}
	}
	if n == 0 {
		t.Fatal("no goext sample")
	}
	if avg := float64(frames) / float64(n); avg <= 5 {
		t.Errorf("goext samples average %.1f frames; want > 5", avg)
	} else {
		t.Logf("goext: %d samples, %.1f frames on average", n, avg)
	}
}

func TestRunFlamegraphBadInput(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	for _, args := range [][]string{
		{"--flamegraph", "--sample-hz", "0"},
		{"--flamegraph", "--sample-hz", "500000"},
		{"--flamegraph", "--sample-runs", "-1"},
	} {
		_, stderr, code := runInitprof(t, bin, append(append([]string{"run"}, args...), "/bin/true")...)
		if code != exitBadInput || !strings.Contains(stderr, "--sample-") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming the flag", args, code, stderr)
		}
	}
}

func checkXML(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("%s is not XML: %v", filepath.Base(path), err)
			return
		}
	}
}

// checkTrace: trace.json parses and names one track (process) per PID that
// has events.
func checkTrace(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents []struct {
			Ph   string         `json:"ph"`
			Name string         `json:"name"`
			PID  int            `json:"pid"`
			Args map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("trace.json: %v", err)
	}
	named := map[int]int{}
	used := map[int]bool{}
	for _, e := range tr.TraceEvents {
		if e.Ph == "M" && e.Name == "process_name" {
			named[e.PID]++
		} else {
			used[e.PID] = true
		}
	}
	for pid := range used {
		if named[pid] != 1 {
			t.Errorf("trace.json: pid %d has events but %d process_name tracks", pid, named[pid])
		}
	}
	if len(named) < 2 {
		t.Errorf("trace.json names %d processes; want the extension and the runtime at least", len(named))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestRunOffCPU: --offcpu writes an offcpu/nanoseconds profile next to the
// CPU one. The C sample sleeps 20 ms (INITPROF_SAMPLE_INIT_DELAY_MS) between
// its subscribe and its first /next: in every sampling run that must be one
// blocked interval of its main thread in phase to_next, 20 ms long (the
// sleep, give or take scheduling), whose kernel stack starts at __schedule
// (the tracepoint and BPF frames trimmed) and runs into nanosleep, under a
// user stack from main. Where else it waited (its register request inside
// curl_easy_perform, when the answer was not there yet) is logged.
func TestRunOffCPU(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	const runs = 2
	out, stderr, _ := flameRun(t, bin, "--offcpu", "-n", "2", "--sample-runs", fmt.Sprint(runs), "--cache", "warm",
		"--env", "INITPROF_SAMPLE_INIT_DELAY_MS=20", testutil.Sample(t, "cext"))
	if !strings.Contains(stderr, "off-CPU cext:") {
		t.Errorf("no off-CPU summary for cext:\n%s", stderr)
	}
	f, err := os.Open(filepath.Join(out, "offcpu.pb.gz"))
	if err != nil {
		t.Fatalf("no offcpu.pb.gz: %v\n%s", err, stderr)
	}
	defer f.Close()
	p, err := pprof.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SampleType) != 2 || p.SampleType[1].Type != "offcpu" || p.SampleType[1].Unit != "nanoseconds" {
		t.Fatalf("sample types %v, want samples/count and offcpu/nanoseconds", p.SampleType)
	}
	sleeps := map[string]int64{} // run → the sleep's interval
	var registerWait int64
	for _, s := range p.Sample {
		if s.Value[1] <= 0 || s.Value[1] > int64(10e9) {
			t.Errorf("an off-CPU interval of %d ns", s.Value[1])
		}
		names := stackNames(s)
		if len(names) > 1 && (strings.HasPrefix(names[1], "bpf_") || strings.Contains(names[1], "traceiter")) {
			t.Errorf("the observer's frames were not trimmed: %v", names[:min(len(names), 5)])
		}
		if s.Label["process"][0] != "cext" || s.NumLabel["pid"][0] != s.NumLabel["tid"][0] {
			continue
		}
		blocked := names[0] == sample.FrameBlocked && len(names) > 1 && names[1] == "__schedule"
		switch s.Label["phase"][0] {
		case "to_next":
			if blocked && containsInOrder(names, "do_nanosleep", "main") && s.Value[1] > sleeps[s.Label["run"][0]] {
				sleeps[s.Label["run"][0]] = s.Value[1]
			}
		case "register":
			if containsInOrder(names, "curl_easy_perform", "main") {
				registerWait += s.Value[1]
			}
		}
	}
	t.Logf("cext's main thread off the CPU inside curl_easy_perform during register: %.1f µs over %d runs", float64(registerWait)/1e3, runs)
	if len(sleeps) != runs {
		t.Errorf("the 20 ms sleep before /next is in %d of %d sampling runs: %v", len(sleeps), runs, sleeps)
	}
	for run, ns := range sleeps {
		t.Logf("run %s: the sleep was off the CPU for %.3f ms", run, float64(ns)/1e6)
		if ns < 19.9e6 || ns > 200e6 {
			t.Errorf("run %s: the 20 ms sleep was off the CPU for %.3f ms", run, float64(ns)/1e6)
		}
	}
	for _, name := range []string{"offcpu.folded", "flame-offcpu.svg"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

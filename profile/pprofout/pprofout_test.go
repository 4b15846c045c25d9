package pprofout_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/pprofout"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/sampletest"
)

// TestPprofLoads writes cpu.pb.gz from a real recording and reads it with
// `go tool pprof` itself: -top lists the hot function, -tags shows the four
// labels, and -tagfocus on the phase after main keeps main's stacks and drops
// the constructors'.
func TestPprofLoads(t *testing.T) {
	goBin := testutil.RequireTool(t, "go")
	rec := sampletest.Record(t, "spin", nil, sampletest.BuildC(t))
	path := filepath.Join(t.TempDir(), "cpu.pb.gz")
	if err := pprofout.WriteFile(path, rec.Stacks, pprofout.Meta{PeriodNs: 1e9 / sampletest.Hz}); err != nil {
		t.Fatal(err)
	}
	pprof := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(goBin, append([]string{"tool", "pprof"}, append(args, path)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	top := pprof("-top", "-nodecount=10")
	if !strings.Contains(top, "spin_busy") {
		t.Errorf("pprof -top lacks spin_busy:\n%s", top)
	}
	tags := pprof("-tags")
	for _, want := range []string{"phase:", "process:", "run:", "build:", "spin"} {
		if !strings.Contains(tags, want) {
			t.Errorf("pprof -tags lacks %q:\n%s", want, tags)
		}
	}
	var afterMain string
	for _, sp := range rec.Phases {
		if sp.From == "main" {
			afterMain = sp.Name
		}
	}
	focused := pprof("-traces", "-tagfocus", "phase="+afterMain)
	if strings.Contains(focused, "spin_ctor") || strings.Contains(focused, "_dl_init") {
		t.Errorf("-tagfocus phase=%s kept constructor stacks", afterMain)
	}
	if !strings.Contains(focused, "spin_busy") {
		t.Errorf("-tagfocus phase=%s lost main's spin_busy", afterMain)
	}
	// Functions carry file names (from DWARF) for the program's own code.
	list := pprof("-list", "spin_busy")
	if !strings.Contains(list, "spin.c") {
		t.Errorf("pprof -list spin_busy does not name spin.c:\n%s", list)
	}

	// Folded from the saved profile, filtered by phase, matches the stacks.
	p, err := pprofout.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	all := pprofout.Folded(p, nil, 0)
	if all.Total() != int64(len(rec.Stacks)) {
		t.Errorf("folded total %d, want %d samples", all.Total(), len(rec.Stacks))
	}
	ph := pprofout.Folded(p, map[string]string{"phase": afterMain}, 0)
	if ph.Total() == 0 || ph.Total() >= all.Total() {
		t.Errorf("phase %s folded to %d of %d samples", afterMain, ph.Total(), all.Total())
	}
	if got := pprofout.LabelValues(p, "phase"); len(got) < 2 {
		t.Errorf("phases in the profile: %v", got)
	}
}

func TestReadRejectsNonProfiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.pb.gz")
	os.WriteFile(p, []byte("not a profile"), 0o644)
	if _, err := pprofout.Read(p); err == nil || !strings.Contains(err.Error(), "is not a pprof profile") {
		t.Errorf("Read(junk) error = %v", err)
	}
}

// TestBuildUnit checks the structure on a hand-made stack: mappings,
// locations shared between samples, kernel frames in their own mapping.
func TestBuildUnit(t *testing.T) {
	m := &sample.Mapping{Start: 0x1000, End: 0x2000, Path: "/bin/x"}
	st := sample.Stack{PID: 7, TID: 8, Phase: "relocate", Process: "x", Run: "1", Build: "a", Frames: []sample.Frame{
		{Func: "do_syscall_64", Kernel: true, Addr: 0xffffffff81000000},
		{Func: "leaf", File: "x.c", Line: 3, Addr: 0x1100, Mapping: m},
		{Func: "main", File: "x.c", Line: 9, Addr: 0x1200, Mapping: m},
	}}
	p := pprofout.Build([]sample.Stack{st, st}, pprofout.Meta{PeriodNs: 1000})
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 2 || len(p.Location) != 3 || len(p.Mapping) != 2 || len(p.Function) != 3 {
		t.Errorf("got %d samples, %d locations, %d mappings, %d functions", len(p.Sample), len(p.Location), len(p.Mapping), len(p.Function))
	}
	if v := p.Sample[0].Value; v[0] != 1 || v[1] != 1000 {
		t.Errorf("sample values %v, want [1 1000]", v)
	}
	if l := p.Sample[0].Label["phase"]; len(l) != 1 || l[0] != "relocate" {
		t.Errorf("phase label %v", l)
	}
	f := pprofout.Folded(p, map[string]string{"phase": "relocate"}, 1)
	if f["main;leaf;do_syscall_64_[k]"] != 2000 {
		t.Errorf("folded %v", f)
	}
}

// TestMainMappingFirst: pprof calls Mapping[0] the profiled binary, so the
// executable (the mapping holding main) goes first, not the kernel or ld.so.
func TestMainMappingFirst(t *testing.T) {
	ld := &sample.Mapping{Start: 0x7000, End: 0x8000, Path: "/lib64/ld-linux-x86-64.so.2"}
	exe := &sample.Mapping{Start: 0x1000, End: 0x2000, Path: "/opt/extensions/cext"}
	stacks := []sample.Stack{
		{Frames: []sample.Frame{{Func: "irq", Kernel: true}, {Func: "_dl_relocate_object", Mapping: ld}, {Func: "_dl_start", Mapping: ld}}},
		{Frames: []sample.Frame{{Func: "work", Mapping: exe}, {Func: "main", Mapping: exe}, {Func: "__libc_start_main", Mapping: ld}}},
	}
	p := pprofout.Build(stacks, pprofout.Meta{PeriodNs: 1})
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if p.Mapping[0].File != exe.Path || p.Mapping[0].ID != 1 {
		t.Errorf("Mapping[0] = %s (id %d), want the executable", p.Mapping[0].File, p.Mapping[0].ID)
	}
}

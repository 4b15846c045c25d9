package symbolize_test

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/sampletest"
)

func chain(fs []string) string { return strings.Join(fs, " <- ") }

var (
	userFrames = sampletest.UserFrames
	inOrder    = sampletest.InOrder
)

// TestCProgramUnwinds samples a -fomit-frame-pointer C program and checks that
// CFI unwinding gets full stacks: at least 90 % of samples reach a root frame,
// and the busy functions' samples show every level up to main, the
// executable's constructor, or ld.so's _dl_init for the library's constructor.
func TestCProgramUnwinds(t *testing.T) {
	rec := sampletest.Record(t, "spin", nil, sampletest.BuildC(t))
	s := sampletest.Measure(rec.Stacks)
	t.Logf("spin: %d samples, %.1f %% fully unwound, %.1f user frames per sample", s.Samples, 100*s.Rate(), s.AvgFrames())
	if s.Rate() < 0.90 {
		for _, st := range rec.Stacks {
			if !st.Complete {
				t.Logf("incomplete (%s): %s", st.Method, chain(userFrames(st)))
			}
		}
		t.Errorf("%.1f %% of samples fully unwound, want >= 90 %%", 100*s.Rate())
	}
	var fromMain, fromCtor, fromLib int
	for _, st := range rec.Stacks {
		fs := userFrames(st)
		if len(fs) == 0 || !st.Complete {
			continue
		}
		switch {
		case inOrder(fs, "spin_busy", "spin_level3", "spin_level2", "spin_level1", "main", "__libc_start_call_main", "__libc_start_main", "_start"):
			fromMain++
		// The executable's own constructors are run by __libc_start_main
		// (call_init, glibc >= 2.34), not by ld.so.
		case inOrder(fs, "spin_busy", "spin_level3", "spin_level2", "spin_level1", "spin_ctor", "__libc_start_main", "_start"):
			fromCtor++
		// A shared object's constructor is run by ld.so's _dl_init.
		case inOrder(fs, "spinlib_busy", "spinlib_ctor", "_dl_init", "_dl_start_user"):
			fromLib++
		}
	}
	t.Logf("full chains: %d from main, %d from the executable's constructor, %d from the library's constructor (via _dl_init)", fromMain, fromCtor, fromLib)
	if fromMain == 0 || fromCtor == 0 || fromLib == 0 {
		t.Errorf("want busy samples with full chains from main, the constructor and _dl_init, got %d, %d and %d", fromMain, fromCtor, fromLib)
	}
	if fromMain < fromCtor || fromMain < fromLib {
		t.Errorf("main does 3x each constructor's work but has fewer samples (%d vs %d, %d)", fromMain, fromCtor, fromLib)
	}
	// Symbolization: file and line from DWARF for the program's own frames.
	for _, st := range rec.Stacks {
		for _, f := range st.Frames {
			if f.Func == "spin_busy" && (!strings.HasSuffix(f.File, "spin.c") || f.Line == 0) {
				t.Fatalf("spin_busy frame without file:line: %+v", f)
			}
		}
	}
}

// TestCextConstructor is the acceptance check on the real sample:
// cext's constructor's hot loop appears with full frames to a root, through
// the code that runs constructors. Where that is depends on where hot_ctor
// lives: ld.so's _dl_init runs shared objects' constructors (the constructors
// phase), while glibc >= 2.34 runs the executable's own from
// __libc_start_main (call_init). The test reads cext's DT_NEEDED to know
// which chain to demand.
func TestCextConstructor(t *testing.T) {
	bin := testutil.Sample(t, "cext")
	want := []string{"cext_hot_spin", "hot_ctor", "__libc_start_main", "_start"}
	if f, err := elf.Open(bin); err == nil {
		libs, _ := f.ImportedLibraries()
		f.Close()
		for _, l := range libs {
			if strings.HasPrefix(l, "libcexthot") {
				want = []string{"cext_hot_spin", "hot_ctor", "_dl_init", "_dl_start_user"}
			}
		}
	}
	// A closed port: cext fails to register and exits, after its constructor ran.
	rec := sampletest.Record(t, "cext", []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, bin)
	s := sampletest.Measure(rec.Stacks)
	t.Logf("cext: %d samples, %.1f %% fully unwound, %.1f user frames per sample", s.Samples, 100*s.Rate(), s.AvgFrames())
	for _, st := range rec.Stacks {
		if !st.Complete {
			t.Logf("incomplete (%s): %s", st.Method, chain(userFrames(st)))
		}
	}
	hot, full := 0, 0
	var example string
	for _, st := range rec.Stacks {
		fs := userFrames(st)
		if len(fs) == 0 || fs[0] != "cext_hot_spin" {
			continue
		}
		hot++
		if inOrder(fs, want...) && st.Complete {
			full++
			example = chain(fs)
		} else {
			t.Logf("cext_hot_spin sample without its full chain: %s", chain(fs))
		}
	}
	t.Logf("cext_hot_spin: %d samples, %d with the full chain %s; e.g. %s", hot, full, chain(want), example)
	if hot == 0 {
		t.Fatal("no sample in cext_hot_spin")
	}
	if full*10 < hot*9 {
		t.Errorf("only %d of %d cext_hot_spin samples unwound as %s", full, hot, chain(want))
	}
	if s.Rate() < 0.90 {
		t.Errorf("%.1f %% of cext samples fully unwound, want >= 90 %%", 100*s.Rate())
	}
}

// TestGoProgramDeepStacks: a static pure-Go program shows more than 5 frames
// per sample on average (Go's .debug_frame or frame pointers), not the 2 a
// broken unwind gives, and Go names come from pclntab.
func TestGoProgramDeepStacks(t *testing.T) {
	rec := sampletest.Record(t, "gospin", nil, sampletest.BuildGo(t))
	s := sampletest.Measure(rec.Stacks)
	t.Logf("gospin: %d samples, %.1f %% fully unwound, %.1f user frames per sample", s.Samples, 100*s.Rate(), s.AvgFrames())
	if s.AvgFrames() <= 5 {
		t.Errorf("%.1f frames per sample, want > 5", s.AvgFrames())
	}
	deep := 0
	for _, st := range rec.Stacks {
		if inOrder(userFrames(st), "main.busy", "main.level3", "main.level2", "main.level1") {
			deep++
		}
	}
	if deep*2 < s.Samples {
		t.Errorf("only %d of %d samples show main.busy <- level3 <- level2 <- level1", deep, s.Samples)
	}
}

// TestCextRelocation: on the library-heavy sample the loader's relocation
// work shows as _dl_relocate_object / do_lookup_x frames, unwound through
// ld.so up to its root (_dl_start). Relocation takes about a millisecond, so
// the sample is run a few times at 5 kHz until enough samples land there.
func TestCextRelocation(t *testing.T) {
	bin := testutil.Sample(t, "cext")
	reloc, complete := 0, 0
	leaves := map[string]int{}
	for i := 0; i < 5 && reloc < 10; i++ {
		rec := sampletest.RecordHz(t, "cext", 5000, []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, bin)
		for _, st := range rec.Stacks {
			fs := userFrames(st)
			if !inOrder(fs, "_dl_relocate_object") && !inOrder(fs, "do_lookup_x") {
				continue
			}
			reloc++
			leaves[fs[0]]++
			if st.Complete && inOrder(fs, "_dl_relocate_object", "dl_main", "_dl_start") {
				complete++
			}
		}
	}
	t.Logf("relocation samples: %d, %d unwound to _dl_start; leaves %v", reloc, complete, leaves)
	if reloc == 0 {
		t.Fatal("no sample in _dl_relocate_object or do_lookup_x")
	}
	if complete*10 < reloc*9 {
		t.Errorf("only %d of %d relocation samples unwound through dl_main to _dl_start", complete, reloc)
	}
}

// TestRustDeepStacks: a stripped Rust release build (no frame pointers, no
// symbols but .eh_frame) unwinds by CFI to its root. rustext is built outside
// `make samples` (it needs cargo), so the test skips when it is absent.
func TestRustDeepStacks(t *testing.T) {
	bin := filepath.Join(testutil.Root(t), "build", "samples", "rustext-prod")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not built (rustext needs cargo; build it with testdata/rustext's Makefile)", bin)
	}
	var all []sample.Stack
	for i := 0; i < 3; i++ {
		all = append(all, sampletest.RecordHz(t, "rustext", 5000, []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, bin).Stacks...)
	}
	s := sampletest.Measure(all)
	t.Logf("rustext-prod: %d samples, %.1f %% fully unwound, %.1f user frames per sample", s.Samples, 100*s.Rate(), s.AvgFrames())
	if s.AvgFrames() <= 5 {
		t.Errorf("%.1f frames per sample, want > 5", s.AvgFrames())
	}
	// The benchmark target is 90 %; a few dozen samples only bound it loosely.
	if s.Rate() < 0.80 {
		t.Errorf("%.1f %% of samples fully unwound, want >= 80 %% here (90 %% over many runs)", 100*s.Rate())
	}
}

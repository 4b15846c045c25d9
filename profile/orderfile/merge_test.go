package orderfile

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/touched"
)

func TestMerge(t *testing.T) {
	st := func(name string, ns int64, off uint64) touched.SymbolTouch {
		return touched.SymbolTouch{Symbol: name, FirstNs: ns, Off: off, Section: ".text"}
	}
	runs := [][]touched.SymbolTouch{
		{st("ctor", 10, 0x100), st("main", 30, 0x200), st("retry", 35, 0x900)},
		{st("main", 25, 0x200), st("ctor", 12, 0x100), st("helper", 25, 0x180)},
		{st("ctor", 11, 0x100), st("main", 40, 0x200), st("helper", 24, 0x180)},
	}
	for _, tc := range []struct {
		name    string
		minRuns int
		want    string
	}{
		// median ctor 11, helper 24.5 (two runs), main 30; retry is in one run
		{"majority", 0, "ctor helper main"},
		{"every run", 3, "ctor main"},
		{"any run", 1, "ctor helper main retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, x := range Merge(runs, tc.minRuns) {
				names = append(names, x.Symbol)
			}
			if got := strings.Join(names, " "); got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
	m := Merge(runs, 0)
	if m[0].Runs != 3 || m[0].FirstNs != 11 || m[1].FirstNs != 24 || m[1].Runs != 2 {
		t.Errorf("ctor %+v, helper %+v: want 3 runs at 11 ns, 2 runs at 24 ns", m[0], m[1])
	}
	obj := Merge([][]touched.SymbolTouch{{{Symbol: "tbl", Section: ".rodata"}, {Symbol: "f", Section: ".text.unlikely"}}}, 1)
	for _, x := range obj {
		if x.Object != (x.Symbol == "tbl") {
			t.Errorf("%s: object %v", x.Symbol, x.Object)
		}
	}
}

func TestAdvice(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        Symbols
		f        Format
		warn     string // a substring; "" for no warning
		how      string
		noAdvice bool
	}{
		{"go", Symbols{Lang: "go", Why: "a Go binary: the Go linker lays out functions in package order"}, LLD, "Go linker", "", true},
		{"rust lld", Symbols{Lang: "rust", FunctionSections: true}, LLD, "", "-C link-arg=-Wl,--symbol-ordering-file=o.txt", false},
		{"rust gold", Symbols{Lang: "rust", FunctionSections: true}, GNU, "", "--section-ordering-file=o.txt", false},
		{"c sections", Symbols{Lang: "c", FunctionSections: true}, LLD, "", "-fuse-ld=lld -Wl,--symbol-ordering-file=o.txt", false},
		{"c no sections", Symbols{Lang: "c", Why: "not compiled with -ffunction-sections"}, LLD, "not compiled with -ffunction-sections", "-ffunction-sections", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warn, how := tc.s.Advice("o.txt", tc.f)
			if (tc.warn == "") != (warn == "") || !strings.Contains(warn, tc.warn) {
				t.Errorf("warning %q, want one containing %q", warn, tc.warn)
			}
			if tc.noAdvice != (how == "") || !strings.Contains(how, tc.how) {
				t.Errorf("advice %q, want one containing %q", how, tc.how)
			}
		})
	}
}

func TestExtend(t *testing.T) {
	syms := &Symbols{Defined: map[string]elf.SymType{"a": elf.STT_FUNC, "b": elf.STT_FUNC, "c": elf.STT_FUNC, "tbl": elf.STT_OBJECT}}
	for _, tc := range []struct {
		name, prev string
		kept       []string
		want       string
		extended   int
	}{
		// b and tbl stay first; gone (no longer defined) is dropped; c is new.
		{"keeps the previous order", "b\n# comment\ntbl\ngone\n", []string{"a", "c", "b"}, "b tbl a c", 2},
		{"empty previous file", "", []string{"c", "a"}, "c a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{}
			for _, k := range tc.kept {
				r.Kept = append(r.Kept, Touch{Symbol: k, Size: 10})
			}
			if err := r.Extend(strings.NewReader(tc.prev), syms); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, k := range r.Kept {
				names = append(names, k.Symbol)
			}
			if got := strings.Join(names, " "); got != tc.want || r.Extended != tc.extended {
				t.Errorf("order %q (%d extended), want %q (%d)", got, r.Extended, tc.want, tc.extended)
			}
			if r.Funcs+r.Objects != len(r.Kept) {
				t.Errorf("counts %d+%d for %d symbols", r.Funcs, r.Objects, len(r.Kept))
			}
		})
	}
}

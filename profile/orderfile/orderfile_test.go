package orderfile

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build compiles testdata/ordered.c with gcc and extra flags.
func build(t *testing.T, out string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("SKIP: no gcc (apt-get install build-essential)")
	}
	p := filepath.Join(t.TempDir(), out)
	args := append([]string{"-O2", "-g", "-o", p, "testdata/ordered.c"}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return p
}

func TestReadSymbols(t *testing.T) {
	tests := []struct {
		name     string
		flags    []string
		sections bool
		err      error
	}{
		{"function-sections", []string{"-ffunction-sections", "-fdata-sections"}, true, nil},
		{"plain", nil, false, nil},
		{"stripped", []string{"-s"}, false, ErrNoSymbols},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ReadSymbols(build(t, tc.name, tc.flags...))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if s.Lang != "c" || s.FunctionSections != tc.sections {
				t.Errorf("lang %s, function sections %v (%s); want c, %v", s.Lang, s.FunctionSections, s.Why, tc.sections)
			}
			for _, sym := range []string{"main", "fixture_ctor", "fixture_hot", "table"} {
				if _, ok := s.Defined[sym]; !ok {
					t.Errorf("%s not among the defined symbols", sym)
				}
			}
			if _, ok := s.Defined["printf"]; ok {
				t.Error("printf (undefined, from libc) counted as defined")
			}
		})
	}
}

func TestReadSymbolsGo(t *testing.T) {
	exe, err := os.Executable() // this test binary: a Go program with symbols
	if err != nil {
		t.Fatal(err)
	}
	s, err := ReadSymbols(exe)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lang != "go" || s.FunctionSections || !strings.Contains(s.Why, "Go linker") {
		t.Errorf("lang %s, sections %v, why %q: want go, no, the Go linker", s.Lang, s.FunctionSections, s.Why)
	}
}

func TestOrderAndWrite(t *testing.T) {
	syms := &Symbols{Defined: map[string]elf.SymType{"main": 0, "ctor": 0, "table": 0, "_ZN4core3fmt5write17h0123456789abcdefE": 0}}
	touches := []Touch{
		{Symbol: "main", FirstNs: 3e6, Size: 40, Runs: 5},
		{Symbol: "printf", FirstNs: 2e6}, // libc's: not this binary's
		{Symbol: "ctor", FirstNs: 1e6, Size: 16, Runs: 5},
		{Symbol: "table", FirstNs: 1e6, Object: true, Size: 256, Runs: 4},
		{Symbol: "main", FirstNs: 4e6}, // a later touch of the same symbol
		{Symbol: "_ZN4core3fmt5write17h0123456789abcdefE", FirstNs: 5e6, Size: 100, Runs: 1},
	}
	kept, skipped := Order(touches, syms)
	var names []string
	for _, k := range kept {
		names = append(names, k.Symbol)
	}
	if got := strings.Join(names, " "); got != "ctor table main _ZN4core3fmt5write17h0123456789abcdefE" {
		t.Errorf("order %q", got)
	}
	if len(skipped) != 1 || skipped[0] != "printf" {
		t.Errorf("skipped %v, want [printf]", skipped)
	}
	tests := []struct {
		f    Format
		want []string
	}{
		{LLD, []string{"ctor", "table", "main", "_ZN4core3fmt5write17h0123456789abcdefE"}},
		{GNU, []string{".text.ctor", ".rodata.table", ".data.table", ".bss.table", ".text.main", ".text._ZN4core3fmt5write17h0123456789abcdefE"}},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := Write(&b, tc.f, kept); err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(b.String()); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %q, want %q", tc.f, got, tc.want)
		}
	}
	var b bytes.Buffer
	if err := Write(&b, List, kept); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "core::fmt::write") || !strings.Contains(b.String(), "[_ZN4core3fmt5write17h0123456789abcdefE]") {
		t.Errorf("list lacks the demangled name and the mangled one:\n%s", b.String())
	}
	if _, err := ParseFormat("bolt"); err == nil {
		t.Error("ParseFormat accepted bolt")
	}
}

// TestLLDAcceptsIt links the fixture with lld and an orderfile of its own
// symbols: no warning, and the ordered functions come first in .text.
func TestLLDAcceptsIt(t *testing.T) {
	if _, err := exec.LookPath("ld.lld"); err != nil {
		t.Skip("SKIP: no ld.lld (apt-get install lld; .ci/deps installs it)")
	}
	dir := t.TempDir()
	order := filepath.Join(dir, "order.txt")
	var b bytes.Buffer
	if err := Write(&b, LLD, []Touch{{Symbol: "fixture_cold"}, {Symbol: "main"}, {Symbol: "fixture_ctor"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(order, b.Bytes(), 0o644)
	out := filepath.Join(dir, "ordered")
	cmd := exec.Command("gcc", "-O2", "-ffunction-sections", "-fdata-sections", "-fuse-ld=lld", "-Wl,--symbol-ordering-file="+order, "-Wl,--warn-symbol-ordering", "-o", out, "testdata/ordered.c")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, msg)
	}
	if len(bytes.TrimSpace(msg)) > 0 {
		t.Errorf("lld warned:\n%s", msg)
	}
	nm, err := exec.Command("nm", "-n", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, l := range strings.Split(string(nm), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && (f[2] == "fixture_cold" || f[2] == "main" || f[2] == "fixture_ctor") {
			seen = append(seen, f[2])
		}
	}
	if strings.Join(seen, " ") != "fixture_cold main fixture_ctor" {
		t.Errorf("address order %v, want the orderfile's: fixture_cold main fixture_ctor", seen)
	}
}

func TestReadSymbolsNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSymbols(p); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("ReadSymbols(a script) = %v, want a 'not an ELF executable' error", err)
	}
}

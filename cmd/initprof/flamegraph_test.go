package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/flame"
	"github.com/initprof/initprof/profile/pprofout"
	"github.com/initprof/initprof/profile/sample/sampletest"
)

// fixtureProfile writes a small cpu.pb.gz with two phases.
func fixtureProfile(t *testing.T, dir, name string, relocN int) string {
	t.Helper()
	stacks := sampletest.FlameStacks(name, relocN)
	p := filepath.Join(dir, name+".pb.gz")
	if err := pprofout.WriteFile(p, stacks, pprofout.Meta{PeriodNs: 250000}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlamegraphCLI(t *testing.T) {
	dir := t.TempDir()
	a := fixtureProfile(t, dir, "a", 10)
	b := fixtureProfile(t, dir, "b", 30)
	folded := filepath.Join(dir, "stacks.folded")
	os.WriteFile(folded, []byte("main;work 3\nmain;idle 1\n"), 0o644)
	for _, tc := range []struct {
		name     string
		o        flameOpts
		args     []string
		wantErr  string // substring of the error; "" for success
		contains []string
		lacks    []string
	}{
		{name: "whole profile", args: []string{a}, contains: []string{"do_lookup_x", "cext_hot_spin", "<script"}},
		{name: "one phase", o: flameOpts{phase: "relocate"}, args: []string{a}, contains: []string{"do_lookup_x"}, lacks: []string{"cext_hot_spin"}},
		{name: "diff", o: flameOpts{diff: a}, args: []string{b}, contains: []string{"vs base", "rgb(255,"}},
		{name: "folded out", o: flameOpts{folded: true, phase: "constructors"}, args: []string{a},
			contains: []string{"_dl_start_user;_dl_init;hot_ctor;cext_hot_spin 5"}, lacks: []string{"do_lookup_x"}},
		{name: "folded in", args: []string{folded}, contains: []string{"work"}},
		{name: "cpu values", o: flameOpts{value: "cpu"}, args: []string{a}, contains: []string{"ns"}},
		{name: "unknown phase", o: flameOpts{phase: "nope"}, args: []string{a}, wantErr: "phase values present: constructors, relocate"},
		{name: "phase on folded", o: flameOpts{phase: "relocate"}, args: []string{folded}, wantErr: "no labels: --phase needs a cpu.pb.gz"},
		{name: "missing file", args: []string{filepath.Join(dir, "gone.pb.gz")}, wantErr: "does not exist"},
		{name: "missing folded", args: []string{filepath.Join(dir, "stacks.folded") + "x"}, wantErr: "does not exist"},
		{name: "no args", wantErr: "exactly one PROFILE"},
		{name: "bad value", o: flameOpts{value: "bytes"}, args: []string{a}, wantErr: "want samples, time or auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.out = "-"
			if o.width == 0 {
				o.width = 1200
			}
			if o.value == "" {
				o.value = "samples"
			}
			var out bytes.Buffer
			err := runFlamegraph(o, tc.args, &out)
			if tc.wantErr != "" {
				var ee *exitError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ee) || ee.code != exitBadInput {
					t.Fatalf("error %v, want exit 2 mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := out.String()
			for _, w := range tc.contains {
				if !strings.Contains(s, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tc.lacks {
				if strings.Contains(s, w) {
					t.Errorf("output has %q", w)
				}
			}
			if !o.folded {
				if err := xml.Unmarshal(out.Bytes(), new(struct{})); err != nil {
					t.Errorf("SVG does not parse: %v", err)
				}
			}
		})
	}
	junk := filepath.Join(dir, "junk.pb.gz")
	os.WriteFile(junk, []byte{0x1f, 0x8b, 0, 1, 2}, 0o644)
	if err := runFlamegraph(flameOpts{out: "-", width: 1200, value: "samples"}, []string{junk}, new(bytes.Buffer)); err == nil ||
		!strings.Contains(err.Error(), "neither a pprof profile") {
		t.Errorf("junk profile: %v", err)
	}
}

// TestFlamegraphRealCext profiles the real cext sample (perf_event samples,
// CFI-unwound), saves cpu.pb.gz, and renders the phase before main from it
// with the CLI: cext's constructor's hot loop is there with its callers.
func TestFlamegraphRealCext(t *testing.T) {
	bin := testutil.Sample(t, "cext")
	rec := sampletest.Record(t, "cext", []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, bin)
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.pb.gz")
	if err := pprofout.WriteFile(prof, rec.Stacks, pprofout.Meta{PeriodNs: 1e9 / sampletest.Hz}); err != nil {
		t.Fatal(err)
	}
	var before string
	for _, sp := range rec.Phases {
		if sp.To == "main" {
			before = sp.Name
		}
	}
	var out bytes.Buffer
	if err := runFlamegraph(flameOpts{phase: before, folded: true, out: "-", width: 1200, value: "samples"}, []string{prof}, &out); err != nil {
		t.Fatal(err)
	}
	f, err := flame.ReadFolded(&out)
	if err != nil {
		t.Fatal(err)
	}
	var hot int64
	for stack, n := range f {
		// hot_ctor runs from ld.so's _dl_init when it lives in a shared
		// object (libcexthot.so), from __libc_start_main when in the executable.
		if strings.HasSuffix(stack, ";hot_ctor;cext_hot_spin") &&
			(strings.HasPrefix(stack, "_dl_start_user;_dl_init;") || strings.HasPrefix(stack, "_start;__libc_start_main;")) {
			hot += n
		}
	}
	if hot == 0 {
		t.Errorf("phase %s of cext has no complete ...;hot_ctor;cext_hot_spin stack:\n%v", before, f)
	}
	svg := filepath.Join(dir, "flame-"+before+".svg")
	if err := runFlamegraph(flameOpts{phase: before, out: svg, width: 1200, value: "samples"}, []string{prof}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(svg)
	if !bytes.Contains(data, []byte("cext_hot_spin")) {
		t.Error("cext_hot_spin not in the SVG")
	}
}

package pprofout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/sample/sampletest"
)

// flameFixture writes a cpu.pb.gz with relocN relocate and 5 constructors samples.
func flameFixture(t *testing.T, dir, name string, relocN int) string {
	t.Helper()
	stacks := sampletest.FlameStacks(name, relocN)
	p := filepath.Join(dir, name+".pb.gz")
	if err := WriteFile(p, stacks, Meta{PeriodNs: 250000}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFlame(t *testing.T) {
	dir := t.TempDir()
	a := flameFixture(t, dir, "a", 10)
	b := flameFixture(t, dir, "b", 30)
	folded := filepath.Join(dir, "stacks.folded")
	os.WriteFile(folded, []byte("main;work 3\nmain;idle 1\n"), 0o644)
	for _, tc := range []struct {
		name     string
		path     string
		base     string
		filters  map[string]string
		value    string
		folded   bool
		wantErr  string
		subtitle string
		title    string
		contains string
	}{
		{name: "whole", path: a, value: "samples", subtitle: "all samples — 15 samples", title: "a.pb.gz", contains: "cext_hot_spin"},
		{name: "phase", path: a, filters: map[string]string{LabelPhase: "relocate"}, subtitle: "phase=relocate — 10 samples of 15", contains: "do_lookup_x"},
		{name: "time", path: a, value: "cpu", subtitle: "all samples — 3750000 ns"},
		{name: "diff", path: b, base: a, title: "b.pb.gz vs a.pb.gz", contains: "rgb(255,"},
		{name: "folded text", path: folded, folded: true, subtitle: "all samples — 4 samples", contains: "main;work 3"},
		{name: "bad value", path: a, value: "bytes", wantErr: "want samples, time or auto"},
		{name: "unknown phase", path: a, filters: map[string]string{LabelPhase: "nope"}, wantErr: "phase values present: constructors, relocate"},
		{name: "filter on folded", path: folded, filters: map[string]string{LabelPhase: "x"}, wantErr: "no labels"},
		{name: "missing", path: filepath.Join(dir, "gone.pb.gz"), wantErr: "does not exist"},
		{name: "missing base", path: a, base: filepath.Join(dir, "gone.pb.gz"), wantErr: "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := LoadFlame(tc.path, tc.base, tc.filters, tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadFlame = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.subtitle != "" && f.Subtitle() != tc.subtitle {
				t.Errorf("Subtitle() = %q, want %q", f.Subtitle(), tc.subtitle)
			}
			if tc.title != "" && f.Title() != tc.title {
				t.Errorf("Title() = %q, want %q", f.Title(), tc.title)
			}
			var buf bytes.Buffer
			if err := f.Write(&buf, tc.folded, "", 1200); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.contains) {
				t.Errorf("output lacks %q", tc.contains)
			}
		})
	}
}

func TestFlameFileName(t *testing.T) {
	for _, tc := range []struct {
		folded, diff bool
		phase, want  string
	}{
		{false, false, "", "flame.svg"},
		{false, false, "relocate", "flame-relocate.svg"},
		{false, false, "a/b c", "flame-a_b_c.svg"},
		{false, true, "relocate", "flame-diff.svg"},
		{true, true, "relocate", "stacks.folded"},
	} {
		if got := FlameFileName(tc.folded, tc.diff, tc.phase); got != tc.want {
			t.Errorf("FlameFileName(%v, %v, %q) = %q, want %q", tc.folded, tc.diff, tc.phase, got, tc.want)
		}
	}
}

func TestFlameSave(t *testing.T) {
	dir := t.TempDir()
	a := flameFixture(t, dir, "a", 10)
	b := flameFixture(t, dir, "b", 30)
	t.Chdir(dir)
	for _, tc := range []struct {
		name     string
		base     string
		filters  map[string]string
		out      string
		folded   bool
		wantPath string
		stdout   string // in stdout; "" expects nothing there
		inFile   string // in the file written
		wantErr  string
		output   bool // the error is an *OutputError
	}{
		{name: "default name", wantPath: "flame.svg", inFile: "<svg"},
		{name: "phase default name", filters: Filters("relocate", "", "", ""), wantPath: "flame-relocate.svg", inFile: "do_lookup_x"},
		{name: "diff default name", base: a, wantPath: "flame-diff.svg", inFile: "rgb(255,"},
		{name: "folded default name", folded: true, wantPath: "stacks.folded", inFile: "cext_hot_spin"},
		{name: "named", out: filepath.Join(dir, "x.svg"), wantPath: filepath.Join(dir, "x.svg"), inFile: "<svg"},
		{name: "stdout", out: "-", folded: true, wantPath: "-", stdout: "cext_hot_spin"},
		{name: "unwritable", out: filepath.Join(dir, "no", "such", "x.svg"), wantErr: "cannot write " + filepath.Join(dir, "no", "such", "x.svg"), output: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := LoadFlame(b, tc.base, tc.filters, "samples")
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			path, err := f.Save(tc.out, &stdout, tc.folded, "", 1200)
			var oe *OutputError
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &oe) != tc.output {
					t.Fatalf("Save = %v, want an error with %q (OutputError: %v)", err, tc.wantErr, tc.output)
				}
				return
			}
			if err != nil || path != tc.wantPath {
				t.Fatalf("Save = %q, %v; want %q", path, err, tc.wantPath)
			}
			if (tc.stdout == "") != (stdout.Len() == 0) || !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout holds %d bytes, want %q", stdout.Len(), tc.stdout)
			}
			if tc.inFile != "" {
				data, err := os.ReadFile(path)
				if err != nil || !strings.Contains(string(data), tc.inFile) {
					t.Errorf("%s: %v, or it lacks %q", path, err, tc.inFile)
				}
			}
		})
	}
}

func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		phase, process, build, run string
		want                       string
	}{
		{want: "map[]"},
		{phase: "relocate", want: "map[phase:relocate]"},
		{phase: "main", process: "cext", build: "o3", run: "2", want: "map[build:o3 phase:main process:cext run:2]"},
		{run: "0", want: "map[run:0]"},
	} {
		if got := fmt.Sprint(Filters(tc.phase, tc.process, tc.build, tc.run)); got != tc.want {
			t.Errorf("Filters(%q, %q, %q, %q) = %s, want %s", tc.phase, tc.process, tc.build, tc.run, got, tc.want)
		}
	}
}

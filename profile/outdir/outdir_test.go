package outdir

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"report.txt", true},
		{"results.json", true},
		{"results-prod.json", true},
		{"bench.txt", true},
		{"flame-relocate.svg", true},
		{"flame-prod", true},
		{"diff-a-vs-b.svg", true},
		{"touched.pb.gz", true},
		{"notes.md", false},
		{"report.txt.bak", false},
		{"my.svg", false},
	} {
		if got := IsOutput(tc.name); got != tc.want {
			t.Errorf("IsOutput(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPrepare: force removes a previous run's outputs (flamegraphs included)
// and keeps what initprof did not write; without it a non-empty directory is
// refused; a new nested directory is made.
func TestPrepare(t *testing.T) {
	old := []string{"report.txt", "results.json", "flame.svg", "flame-loader.svg", "cpu.pb.gz", "stacks.folded", "trace.json"}
	used := func(t *testing.T) string {
		dir := t.TempDir()
		for _, f := range append(old, "notes.md") {
			os.WriteFile(filepath.Join(dir, f), []byte("old"), 0o644)
		}
		os.MkdirAll(filepath.Join(dir, "flame-b"), 0o755)
		return dir
	}
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		force   bool
		wantErr string   // "" for success
		left    []string // entries after success; nil: not checked
		removed int
		kept    int
		warns   []string // in the warnings, in order
	}{
		{name: "not empty", dir: used, wantErr: "--force"},
		{name: "force", dir: used, force: true, left: []string{"notes.md"}, removed: len(old) + 1, kept: 1,
			warns: []string{"warning: --force: removed the previous run's outputs from ", ": cpu.pb.gz, flame-b, flame-loader.svg, flame.svg, report.txt, results.json, stacks.folded, trace.json", "warning: --force: ", " keeps 1 file(s) initprof did not write"}},
		{name: "new nested", dir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "new", "deeper") }, left: []string{}},
		{name: "empty", dir: func(t *testing.T) string { return t.TempDir() }, force: true, left: []string{}},
		{name: "a file", dir: func(*testing.T) string { return file }, wantErr: "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			var warns []string
			res, err := Prepare(dir, tc.force, "run", func(m string) { warns = append(warns, m) })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Prepare(%s) = %v, want an error with %q", dir, err, tc.wantErr)
				}
				return
			}
			if err != nil || res.Dir != dir {
				t.Fatalf("Prepare(%s) = %+v, %v", dir, res, err)
			}
			ents, _ := os.ReadDir(dir)
			left := []string{}
			for _, e := range ents {
				left = append(left, e.Name())
			}
			if strings.Join(left, ",") != strings.Join(tc.left, ",") {
				t.Errorf("the directory holds %v, want %v", left, tc.left)
			}
			if len(res.Removed) != tc.removed || res.Kept != tc.kept {
				t.Errorf("removed %v, kept %d; want %d removed, %d kept", res.Removed, res.Kept, tc.removed, tc.kept)
			}
			all := strings.Join(warns, "\n")
			if len(tc.warns) == 0 && all != "" {
				t.Errorf("warnings %q, want none", all)
			}
			rest := all
			for _, w := range tc.warns {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("warnings %q lack %q (in order)", all, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestPrepareDefaultName(t *testing.T) {
	t.Chdir(t.TempDir())
	a, err := Prepare("", false, "run", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Prepare("", false, "run", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Dir, filepath.Join("initprof-out", "run-")) || a.Dir == b.Dir {
		t.Errorf("default directories %q and %q: want distinct initprof-out/run-TIMESTAMP[-N]", a.Dir, b.Dir)
	}
}

func TestWriteFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]func(io.Writer) error
		want    map[string]string
		wantErr string
	}{
		{"two files", map[string]func(io.Writer) error{
			"report.txt":   func(w io.Writer) error { _, err := io.WriteString(w, "report\n"); return err },
			"results.json": func(w io.Writer) error { _, err := io.WriteString(w, "{}\n"); return err },
		}, map[string]string{"report.txt": "report\n", "results.json": "{}\n"}, ""},
		{"a writer fails", map[string]func(io.Writer) error{
			"compare.txt": func(io.Writer) error { return errors.New("no builds") },
		}, nil, "compare.txt: no builds"},
		{"none", nil, map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WriteFiles(dir, tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("WriteFiles = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
					t.Errorf("%s holds %q, want %q", name, b, want)
				}
			}
		})
	}
	if err := WriteFiles(filepath.Join(t.TempDir(), "gone"), map[string]func(io.Writer) error{"x": func(io.Writer) error { return nil }}); err == nil {
		t.Error("WriteFiles into a missing directory succeeded")
	}
}

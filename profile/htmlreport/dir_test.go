package htmlreport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
)

// TestInputMarkdownAndBuildRuns reads a run's and a comparison's directory
// back (FromDir): WriteMarkdown prints what export's Markdown prints for
// them, and BuildRuns gives each build's runs.
func TestInputMarkdownAndBuildRuns(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	rep := writeRunDir(t, runDir, fixture{build: "cext", runs: 4, exts: 1, seed: 1}.make(), false)
	cmpDir := t.TempDir()
	builds := []profile.BuildRuns{
		{Build: "prod", Runs: fixture{build: "prod", runs: 5, exts: 1, seed: 2}.make()},
		{Build: "o3", Runs: fixture{build: "o3", runs: 6, exts: 1, seed: 3, slower: 600_000}.make()},
	}
	for _, b := range builds {
		var buf bytes.Buffer
		must(t, profile.Aggregate(b.Runs).WriteJSON(&buf))
		must(t, os.WriteFile(filepath.Join(cmpDir, profile.ResultsFileName(b.Build)), buf.Bytes(), 0o644))
	}
	cmp := profile.Compare(builds)
	var buf bytes.Buffer
	must(t, cmp.WriteJSON(&buf))
	must(t, os.WriteFile(filepath.Join(cmpDir, "compare.json"), buf.Bytes(), 0o644))

	for _, tc := range []struct {
		name string
		dir  string
		want func(*bytes.Buffer) error
		runs map[string]int
	}{
		{"run", runDir, func(w *bytes.Buffer) error { return export.ReportMarkdown(w, rep) }, map[string]int{"cext": 4}},
		{"compare", cmpDir, func(w *bytes.Buffer) error { return export.CompareMarkdown(w, cmp) }, map[string]int{"prod": 5, "o3": 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := FromDir(tc.dir)
			must(t, err)
			var got, want bytes.Buffer
			must(t, in.WriteMarkdown(&got))
			must(t, tc.want(&want))
			if got.String() != want.String() || !strings.Contains(got.String(), "|") {
				t.Errorf("WriteMarkdown:\n%s\nwant\n%s", got.String(), want.String())
			}
			br := in.BuildRuns()
			if len(br) != len(tc.runs) {
				t.Fatalf("BuildRuns() has %d builds, want %d", len(br), len(tc.runs))
			}
			for _, b := range br {
				if len(b.Runs) != tc.runs[b.Build] {
					t.Errorf("BuildRuns(): %s has %d runs, want %d", b.Build, len(b.Runs), tc.runs[b.Build])
				}
			}
		})
	}
	if err := (Input{}).WriteMarkdown(new(bytes.Buffer)); err == nil {
		t.Error("WriteMarkdown of an empty Input: no error")
	}
}

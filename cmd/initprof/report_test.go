package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
)

// fixtureRuns makes n runs of one extension and the runtime whose Init
// Duration is base+i·step ns, labelled with host and arch (the report and
// merge are pure functions of the runs; real runs need root and are
// TestRunWritesReportHTML's).
func fixtureRuns(build, host, arch string, n int, base, step int64) []profile.Run {
	var out []profile.Run
	for i := 0; i < n; i++ {
		s := int64(1e9) * int64(i+1)
		d := base + int64(i)*step
		ext := profile.Process{Name: "ext", Role: profile.RoleExtension, Checkpoints: []profile.Checkpoint{
			{Name: profile.CkSpawn, MonoNs: s}, {Name: profile.CkExec, MonoNs: s + 100_000}, {Name: profile.CkEntry, MonoNs: s + d/3},
			{Name: profile.CkRegisterSent, MonoNs: s + d/2}, {Name: profile.CkRegisterOK, MonoNs: s + d/2 + 50_000}, {Name: profile.CkNext, MonoNs: s + d*2/3}}}
		rt := profile.Process{Name: "bootstrap", Role: profile.RoleRuntime, Checkpoints: []profile.Checkpoint{
			{Name: profile.CkSpawn, MonoNs: s + d/2 + 60_000}, {Name: profile.CkExec, MonoNs: s + d/2 + 100_000}, {Name: profile.CkNext, MonoNs: s + d}}}
		out = append(out, profile.Run{Index: i, Build: build, InitStartNs: s, InitEndNs: s + d, InitStatus: "success",
			Host: host, Arch: arch, Binaries: map[string]string{"ext": "sha256:" + build}, Processes: []profile.Process{ext, rt}})
	}
	return out
}

func writeJSONFile(t *testing.T, path string, write func(w *bytes.Buffer) error) {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeRunResults(t *testing.T, dir string, runs []profile.Run) string {
	writeJSONFile(t, filepath.Join(dir, "results.json"), func(b *bytes.Buffer) error { return profile.Aggregate(runs).WriteJSON(b) })
	return dir
}

// TestMergeCommand: `initprof merge` of a 3-run x86_64 result and a 2-run
// arm64 result holds the 5 runs with their labels, its statistics equal a
// 5-run result of the same runs, and it writes report.html; bad inputs
// exit 2 with an actionable message.
func TestMergeCommand(t *testing.T) {
	root := t.TempDir()
	all := fixtureRuns("prod", "", "", 5, 80e6, 2e6)
	for i := range all {
		all[i].Host, all[i].Arch = "x86-ci", "x86_64"
		if i >= 3 {
			all[i].Host, all[i].Arch = "arm-ci", "aarch64"
		}
	}
	reindex := func(rs []profile.Run) []profile.Run {
		out := append([]profile.Run(nil), rs...)
		for i := range out {
			out[i].Index = i
		}
		return out
	}
	a := writeRunResults(t, filepath.Join(root, "x86"), reindex(all[:3]))
	b := writeRunResults(t, filepath.Join(root, "arm"), reindex(all[3:]))
	five := writeRunResults(t, filepath.Join(root, "five"), all)
	out := filepath.Join(root, "merged")
	if code := run([]string{"merge", "--out", out, a, b}); code != exitOK {
		t.Fatalf("merge exited %d", code)
	}
	got, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(five, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]any
	json.Unmarshal(got, &g)
	json.Unmarshal(want, &w)
	if n := len(g["runs"].([]any)); n != 5 {
		t.Fatalf("merged results.json holds %d runs, want 5", n)
	}
	for _, k := range []string{"init_duration_ns", "processes", "critical_path", "verdict"} {
		gj, _ := json.Marshal(g[k])
		wj, _ := json.Marshal(w[k])
		if string(gj) != string(wj) {
			t.Errorf("%s: merged %s\n  5-run %s", k, gj, wj)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Errorf("merge wrote no report.html: %v", err)
	}

	other := writeRunResults(t, filepath.Join(root, "other"), fixtureRuns("prod", "h", "x86_64", 2, 80e6, 1e6))
	for i := range all {
		all[i].Binaries = map[string]string{"ext": "sha256:another"}
	}
	changed := writeRunResults(t, filepath.Join(root, "changed"), all)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"different binary under one name", []string{"merge", "--out", filepath.Join(root, "m1"), other, changed}},
		{"no results.json", []string{"merge", "--out", filepath.Join(root, "m2"), a, t.TempDir()}},
		{"no --out", []string{"merge", a, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(tc.args); code != exitBadInput {
				t.Errorf("exit %d, want %d", code, exitBadInput)
			}
		})
	}
}

// TestReportMarkdown: `initprof report --format markdown` prints a
// comparison's table with its Init Duration row, and a run's table.
func TestReportMarkdown(t *testing.T) {
	cmpDir := t.TempDir()
	builds := []profile.BuildRuns{{Build: "prod", Runs: fixtureRuns("prod", "h", "x86_64", 8, 80e6, 1e5)}, {Build: "o3", Runs: fixtureRuns("o3", "h", "x86_64", 8, 85e6, 1e5)}}
	for _, b := range builds {
		writeJSONFile(t, filepath.Join(cmpDir, profile.ResultsFileName(b.Build)), func(w *bytes.Buffer) error { return profile.Aggregate(b.Runs).WriteJSON(w) })
	}
	writeJSONFile(t, filepath.Join(cmpDir, "compare.json"), func(w *bytes.Buffer) error { return profile.Compare(builds).WriteJSON(w) })
	runDir := writeRunResults(t, t.TempDir(), builds[0].Runs)
	for _, tc := range []struct {
		name, dir string
		want      *regexp.Regexp
	}{
		{"compare", cmpDir, regexp.MustCompile(`(?m)^\| \*\*Init Duration\*\* \| prod \| 80\.35 ms \|.*\n\|  \| o3 \| 85\.35 ms \| .* \| \+5\.00 ms \|`)},
		{"run", runDir, regexp.MustCompile(`(?m)^\| \*\*Init Duration\*\* \| 80\.35 ms \| `)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runReport("markdown", []string{tc.dir}, &out); err != nil {
				t.Fatal(err)
			}
			if !tc.want.MatchString(out.String()) {
				t.Errorf("markdown does not match %s:\n%s", tc.want, out.String())
			}
		})
	}
	if err := runReport("html", []string{t.TempDir()}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "neither results.json nor compare.json") {
		t.Errorf("report of an empty dir: %v", err)
	}
}

// TestRunWritesReportHTML: `initprof run --flamegraph` of the C sample
// writes report.html, which headless Chromium renders with no console
// error, showing results.json's median Init Duration, and which
// references no http(s):// resource. Needs root (BPF, the sandbox).
func TestRunWritesReportHTML(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	out, stderr, _ := flameRun(t, bin, "-n", "3", "--sample-runs", "2", testutil.Sample(t, "cext"))
	path := filepath.Join(out, "report.html")
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no report.html: %v\n%s", err, stderr)
	}
	if m := regexp.MustCompile(`(?i)https?://`).Find(html); m != nil {
		t.Errorf("report.html references %q", m)
	}
	var res struct {
		Init struct {
			Median float64 `json:"median"`
		} `json:"init_duration_ns"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	p := testutil.OpenPage(t, path)
	var shown string
	p.Eval(t, `document.getElementById("init-duration-median").textContent`, &shown)
	if want := profile.FormatDuration(res.Init.Median); shown != want {
		t.Errorf("page shows Init Duration %q, results.json's median is %s", shown, want)
	}
	var spans, graphs int
	p.Eval(t, `document.querySelectorAll("#wf-0 .span").length`, &spans)
	p.Eval(t, `document.getElementById("flame-pick").options.length`, &graphs)
	if spans == 0 || graphs == 0 {
		t.Errorf("waterfall has %d spans, flamegraph picker %d graphs", spans, graphs)
	}
	t.Logf("report.html: %d bytes, rendered in %v, %d flamegraphs", len(html), p.LoadTime, graphs)
	if errs := p.Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

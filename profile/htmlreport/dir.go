package htmlreport

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
)

// FromDir gathers a page's input from an output directory of initprof run,
// compare or merge: results.json (one build), or compare.json with its
// results-NAME.json (a comparison), and the flamegraph SVGs written there
// (flame.svg, flame-PHASE.svg, flame-offcpu.svg; per build under
// flame-NAME/ for a comparison; diff-*.svg). Errors say what is missing
// and which command makes it.
func FromDir(dir string) (Input, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return Input{}, fmt.Errorf("%s: %w", dir, unwrap(err))
	}
	if !st.IsDir() {
		return Input{}, fmt.Errorf("%s is not a directory: give the --out directory of initprof run, compare or merge", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err == nil {
		files, err := profile.LoadResults(dir)
		if err != nil {
			return Input{}, err
		}
		rep := files[0].Report
		fl, err := dirFlames(dir)
		if err != nil {
			return Input{}, err
		}
		title := "initprof run"
		if rep.Build != "" {
			title += " — " + rep.Build
		}
		return Input{Title: title, Builds: []Build{{Name: rep.Build, Report: rep, Flames: fl}}}, nil
	}
	cpath := filepath.Join(dir, "compare.json")
	fh, err := os.Open(cpath)
	if err != nil {
		return Input{}, fmt.Errorf("%s has neither results.json nor compare.json: give the --out directory of initprof run, compare or merge", dir)
	}
	cmp, err := profile.ReadComparison(fh)
	fh.Close()
	if err != nil {
		return Input{}, fmt.Errorf("%s: %w", cpath, err)
	}
	in := Input{Comparison: cmp}
	var names []string
	for _, b := range cmp.Builds {
		names = append(names, b.Name)
		if b.Err != "" {
			continue
		}
		files, err := profile.LoadResults(filepath.Join(dir, profile.ResultsFileName(b.Name)))
		if err != nil {
			return Input{}, fmt.Errorf("compare.json lists build %s: %w", b.Name, err)
		}
		fl, err := dirFlames(filepath.Join(dir, "flame-"+b.Name))
		if err != nil && !os.IsNotExist(err) {
			return Input{}, err
		}
		in.Builds = append(in.Builds, Build{Name: b.Name, Report: files[0].Report, Flames: fl})
	}
	in.Title = "initprof compare — " + strings.Join(names, " vs ")
	diffs, _ := filepath.Glob(filepath.Join(dir, "diff-*.svg"))
	sort.Strings(diffs)
	for _, d := range diffs {
		b, err := os.ReadFile(d)
		if err != nil {
			return Input{}, err
		}
		in.Diffs = append(in.Diffs, Flame{Name: strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "diff-"), ".svg"), SVG: b})
	}
	if len(in.Builds) == 0 {
		return Input{}, fmt.Errorf("%s: no build of the comparison was measured (see compare.txt)", dir)
	}
	return in, nil
}

// dirFlames reads dir's flamegraphs: flame.svg first (every phase), then
// the off-CPU graph, then one per phase in file-name order.
func dirFlames(dir string) ([]Flame, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Flame
	var phases []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasPrefix(n, "flame") || !strings.HasSuffix(n, ".svg") {
			continue
		}
		phases = append(phases, n)
	}
	sort.SliceStable(phases, func(i, j int) bool {
		return rank(phases[i]) < rank(phases[j]) || (rank(phases[i]) == rank(phases[j]) && phases[i] < phases[j])
	})
	for _, n := range phases {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		label := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(n, "flame"), "-"), ".svg")
		switch label {
		case "":
			label = "CPU, all phases"
		case "offcpu":
			label = "off-CPU (blocked and runnable), init"
		default:
			label = "CPU, phase " + label
		}
		out = append(out, Flame{Name: label, SVG: b})
	}
	return out, nil
}

func rank(name string) int {
	switch name {
	case "flame.svg":
		return 0
	case "flame-offcpu.svg":
		return 1
	}
	return 2
}

// WriteDir writes dir/report.html from what dir holds (FromDir) and
// returns its path.
func WriteDir(dir string) (string, error) {
	in, err := FromDir(dir)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, Name)
	tmp, err := os.CreateTemp(dir, ".report-*.html")
	if err != nil {
		return "", err
	}
	if err := Write(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	os.Chmod(tmp.Name(), 0o644)
	return out, os.Rename(tmp.Name(), out)
}

func unwrap(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// WriteMarkdown writes in as GitHub-flavoured Markdown for a PR comment:
// the comparison's (export.CompareMarkdown), or else the first build's
// report (export.ReportMarkdown).
func (in Input) WriteMarkdown(w io.Writer) error {
	if in.Comparison != nil {
		return export.CompareMarkdown(w, in.Comparison)
	}
	if len(in.Builds) == 0 {
		return fmt.Errorf("nothing to write: no comparison and no build")
	}
	return export.ReportMarkdown(w, in.Builds[0].Report)
}

// BuildRuns are the runs of in's builds, as profile.BuildRuns (what
// export.CI.Finish takes).
func (in Input) BuildRuns() []profile.BuildRuns {
	var builds []profile.BuildRuns
	for _, b := range in.Builds {
		builds = append(builds, profile.BuildRuns{Build: b.Name, Runs: b.Report.Runs})
	}
	return builds
}

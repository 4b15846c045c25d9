package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ResultsFile is one results.json to merge and where it was read from (for
// error messages and the labels of runs that carry none).
type ResultsFile struct {
	Path   string
	Report *Report
}

// LoadResults reads a results.json, given as the file itself or as the
// directory that holds it (what `initprof run --out` wrote). A directory
// holding only a comparison's results-NAME.json files yields all of them.
// Errors name the path and say what to give instead.
func LoadResults(path string) ([]ResultsFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	var files []string
	if st.IsDir() {
		one := filepath.Join(path, "results.json")
		if _, err := os.Stat(one); err == nil {
			files = []string{one}
		} else {
			files = comparisonFiles(path)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s has no results.json (nor a comparison's results-NAME.json): give the --out directory of 'initprof run' or 'initprof compare'", path)
		}
	} else {
		files = []string{path}
	}
	var out []ResultsFile
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, unwrapPathErr(err))
		}
		rep, err := ReadResults(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(rep.Runs) == 0 {
			return nil, fmt.Errorf("%s holds no runs", f)
		}
		out = append(out, ResultsFile{Path: f, Report: rep})
	}
	return out, nil
}

// comparisonFiles are a compare --out directory's results-NAME.json in the
// order compare.json lists the builds (the first is the baseline), else by name.
func comparisonFiles(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "results-*.json"))
	sort.Strings(files)
	fh, err := os.Open(filepath.Join(dir, "compare.json"))
	if err != nil {
		return files
	}
	defer fh.Close()
	c, err := ReadComparison(fh)
	if err != nil {
		return files
	}
	rank := map[string]int{}
	for i, b := range c.Builds {
		rank[filepath.Join(dir, ResultsFileName(b.Name))] = i + 1
	}
	sort.SliceStable(files, func(i, j int) bool {
		ri, rj := rank[files[i]], rank[files[j]]
		if ri == 0 || rj == 0 {
			return ri != 0 && rj == 0
		}
		return ri < rj
	})
	return files
}

// ResultsFileName is the file of one build's results in a directory of
// several (compare, merge): results-NAME.json, with the characters a file
// name cannot hold ('/', spaces: a run's build is named after its paths)
// replaced by '_'.
func ResultsFileName(build string) string {
	return "results-" + strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == '\t' || r == 0 {
			return '_'
		}
		return r
	}, build) + ".json"
}

// LoadAllResults reads the results of every path (LoadResults), in order:
// what merge pools.
func LoadAllResults(paths []string) ([]ResultsFile, error) {
	var files []ResultsFile
	for _, p := range paths {
		fs, err := LoadResults(p)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Merge pools the runs of several results files (from several machines or
// CI jobs) into one Report per build name, in the order the builds first
// appear. Runs are renumbered 0…N−1 in input order, so a merge of a 3-run
// and a 2-run result aggregates exactly as one 5-run result of the same
// runs would: the statistics are recomputed from the runs, never averaged
// from the inputs' summaries (medians of medians are not medians).
//
// Each run keeps its Host and Arch labels; a run without them (written
// before initprof recorded them) is labelled with its file's directory.
// Merge refuses two different binaries of one architecture under one build
// name (Binaries hashes): pooling them would report one build's figures
// made of two. The x86_64 and arm64 binaries of a build differ by nature
// and are merged, each run labelled with its Arch. The
// probe overhead is kept when every input measured the same one, else
// dropped with a note (it is a property of each machine).
func Merge(files []ResultsFile) ([]*Report, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("nothing to merge")
	}
	type group struct {
		runs     []Run
		binaries map[string]string // arch, process → hash
		from     map[string]string // arch, process → file that set the hash
		overhead []*Overhead
		unhashed []string
	}
	groups := map[string]*group{}
	var order []string
	for _, f := range files {
		if f.Report.Schema != ResultsSchema {
			return nil, fmt.Errorf("%s: schema %q, want %q: rerun it with this initprof version", f.Path, f.Report.Schema, ResultsSchema)
		}
		label := filepath.Base(filepath.Dir(f.Path))
		for _, r := range f.Report.Runs {
			g := groups[r.Build]
			if g == nil {
				g = &group{binaries: map[string]string{}, from: map[string]string{}}
				groups[r.Build] = g
				order = append(order, r.Build)
			}
			if len(r.Binaries) == 0 {
				g.unhashed = appendOnce(g.unhashed, f.Path)
			}
			for proc, h := range r.Binaries {
				// One build is one binary per architecture: the x86_64 and
				// the arm64 compile of one source are one build.
				k := r.Arch + "\x00" + proc
				if prev, ok := g.binaries[k]; ok && prev != h {
					return nil, fmt.Errorf("build %q: %s ran %s (%s) with %s, but %s ran it with %s: different binaries under one build name; give the builds different names (initprof compare NAME=PATH) or merge them separately",
						buildLabel(r.Build), f.Path, proc, orUnknown(r.Arch), short(h), g.from[k], short(prev))
				}
				g.binaries[k], g.from[k] = h, f.Path
			}
			if r.Host == "" {
				r.Host = "unlabelled (" + label + ")"
			}
			if r.Arch == "" {
				r.Arch = "unknown"
			}
			g.runs = append(g.runs, r)
		}
		for _, b := range order {
			if hasBuild(f.Report.Runs, b) {
				groups[b].overhead = append(groups[b].overhead, f.Report.Overhead)
			}
		}
	}
	var out []*Report
	for _, b := range order {
		g := groups[b]
		runs := make([]Run, len(g.runs))
		for i, r := range g.runs {
			r.Index = i
			runs[i] = r
		}
		rep := Aggregate(runs)
		rep.Overhead = sameOverhead(g.overhead)
		if rep.Overhead == nil && len(g.overhead) > 1 && g.overhead[0] != nil {
			rep.Notes = append(rep.Notes, "probe overhead: the merged results measured different overheads (one per machine); see each input's report")
		}
		if len(g.unhashed) > 0 && len(g.binaries) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("build %s: %s recorded no binary hashes, so their binaries could not be checked against the others'", buildLabel(b), strings.Join(g.unhashed, ", ")))
		}
		out = append(out, rep)
	}
	return out, nil
}

func hasBuild(runs []Run, b string) bool {
	for _, r := range runs {
		if r.Build == b {
			return true
		}
	}
	return false
}

func appendOnce(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

func orUnknown(arch string) string {
	if arch == "" {
		return "arch unknown"
	}
	return arch
}

func buildLabel(b string) string {
	if b == "" {
		return "(unnamed)"
	}
	return b
}

func short(h string) string {
	if len(h) > 19 {
		return h[:19] + "…"
	}
	return h
}

// sameOverhead is the overhead every input measured, or nil when they differ.
func sameOverhead(os []*Overhead) *Overhead {
	if len(os) == 0 || os[0] == nil {
		return nil
	}
	for _, o := range os[1:] {
		if o == nil || *o != *os[0] {
			return nil
		}
	}
	return os[0]
}

// ReadComparison reads a compare.json written by Comparison.WriteJSON. Its
// rows, verdicts and builds are as written (bench.txt's per-run lines are
// not in compare.json; the runs are in the results-NAME.json files).
func ReadComparison(r io.Reader) (*Comparison, error) {
	var c Comparison
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return nil, fmt.Errorf("compare.json: not valid JSON: %w", err)
	}
	if c.Schema != CompareSchema {
		return nil, fmt.Errorf("compare.json: schema %q, want %q (written by another initprof version?)", c.Schema, CompareSchema)
	}
	return &c, nil
}

// MergedSummary says what a merge joined, e.g. "merged 5 runs of 1
// build(s) from 2 file(s)".
func MergedSummary(reps []*Report, files int) string {
	runs := 0
	for _, r := range reps {
		runs += len(r.Runs)
	}
	return fmt.Sprintf("merged %d runs of %d build(s) from %d file(s)", runs, len(reps), files)
}

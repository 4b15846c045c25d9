package profile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/initprof/initprof/profile/stats"
)

// CompareSchema identifies compare.json's layout.
const CompareSchema = "initprof.compare/v1"

// BuildRuns is one build under comparison and its runs.
type BuildRuns struct {
	// Build is the user's name for it (the NAME of NAME=PATH).
	Build string
	Runs  []Run
	// Err, when set, says why this build could not be measured (for example it
	// failed to start in the sandbox). It is left out of the statistics and the
	// reason is printed; the other builds are still compared.
	Err string
	// Facts are static facts about the binary (size, relocations by type,
	// BIND_NOW, RELR, PIE, NEEDED …) printed side by side in compare.txt, in the
	// order of the first build that lists them.
	Facts []Fact
}

// Fact is one named static fact about a build, already formatted for print.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Comparison is the build-to-build answer: per metric, each build's distribution
// and its shift against the first (baseline) build.
type Comparison struct {
	Schema string  `json:"schema"`
	Alpha  float64 `json:"alpha"`
	// Confidence is the nominal level of the shift intervals.
	Confidence float64     `json:"confidence"`
	Builds     []BuildInfo `json:"builds"`
	// Rows: Init Duration first, then per process load, init, time-to-ready and
	// its phases.
	Rows     []CompareRow  `json:"rows"`
	Verdicts []PairVerdict `json:"verdicts"`
	Notes    []string      `json:"notes,omitempty"`
	// Seed is the seed of the shuffled per-round run order (0: not recorded).
	Seed uint64 `json:"seed,omitempty"`
	// Interrupted is set when SIGINT or SIGTERM stopped the comparison
	// early: Runs counts the rounds started, Planned is --runs.
	Interrupted *Interrupted `json:"interrupted,omitempty"`
	// builds are kept whole for bench.txt (every run).
	builds []BuildRuns
}

// BuildInfo is what the comparison says about one build as a whole.
type BuildInfo struct {
	Name string `json:"name"`
	Runs int    `json:"runs"`
	Err  string `json:"error,omitempty"`
	// Leader is who ended INIT most often in this build's runs.
	Leader  string `json:"critical_path,omitempty"`
	Dropped uint64 `json:"dropped_events,omitempty"`
	Facts   []Fact `json:"facts,omitempty"`
}

// CompareRow is one metric across builds.
type CompareRow struct {
	// Process is the process key ("runtime" or an extension name); empty for
	// Init Duration.
	Process string `json:"process,omitempty"`
	// Metric is a phase name or one of AggLoad, AggInit, AggTimeToReady,
	// AggInitDuration.
	Metric string `json:"metric"`
	// Unit is what the summaries count: "" for nanoseconds, UnitPages or
	// UnitChunks for what init touched.
	Unit  string        `json:"unit,omitempty"`
	Cells []CompareCell `json:"builds"`
}

// Units of compare rows that are not durations.
const (
	UnitPages  = "pages"  // file-backed 4 KiB pages first touched
	UnitChunks = "chunks" // distinct 512 KiB storage chunks of those pages
)

// Touched-metric names of compare rows. They sit after a process's phase
// rows: init's pages and chunks in all (exec → next), the wait for Lambda's
// lazy storage, then each phase's own share. Load on Lambda is fetching
// chunks, so a build that moves load should move these rows too; a build
// that moves none of them moved only CPU work.
const (
	MetricTouchedPages  = "touched_pages"  // exec → next
	MetricTouchedChunks = "touched_chunks" // exec → next
	MetricFetchWait     = "fetch_wait"     // exec → next, modelled lazy-storage wait
	phasePagesSuffix    = " pages"
	phaseChunksSuffix   = " chunks"
)

// rowUnit is the unit of a metric name.
func rowUnit(metric string) string {
	switch {
	case metric == MetricTouchedPages, strings.HasSuffix(metric, phasePagesSuffix):
		return UnitPages
	case metric == MetricTouchedChunks, strings.HasSuffix(metric, phaseChunksSuffix):
		return UnitChunks
	}
	return ""
}

// CompareCell is one build's distribution of a metric and, for builds after the
// first, its shift against the first.
type CompareCell struct {
	Build   string        `json:"build"`
	Summary stats.Summary `json:"summary_ns"`
	// Shift is Hodges–Lehmann(baseline, this build): positive means slower.
	Shift *stats.Shift `json:"shift_ns,omitempty"`
	Test  *stats.MWU   `json:"mann_whitney,omitempty"`
	// Mark is "~" (no significant change) or the shift in % of the baseline median.
	Mark string `json:"mark,omitempty"`
}

// PairVerdict is the one-line conclusion for the baseline against one build.
type PairVerdict struct {
	Base  string `json:"base"`
	Other string `json:"other"`
	Text  string `json:"text"`
}

type metricKey struct{ proc, metric string }

// samples collects, per metric, one value per run.
func samples(runs []Run) map[metricKey][]float64 {
	out := map[metricKey][]float64{}
	add := func(k metricKey, v int64) { out[k] = append(out[k], float64(v)) }
	for _, r := range runs {
		if d, ok := r.InitDurationNs(); ok {
			add(metricKey{"", AggInitDuration}, d)
		}
		for _, p := range r.Processes {
			if p.Role == RolePlatform {
				continue
			}
			k := processKey(p)
			if v, ok := Load(p); ok {
				add(metricKey{k, AggLoad}, v)
			}
			if v, ok := OwnInit(p); ok {
				add(metricKey{k, AggInit}, v)
			}
			if v, ok := TimeToReady(p); ok {
				add(metricKey{k, AggTimeToReady}, v)
			}
			for _, s := range Phases(p) {
				add(metricKey{k, s.Name}, s.DurNs())
			}
			if ti := p.TouchedInit; ti != nil {
				add(metricKey{k, MetricTouchedPages}, ti.Pages.Total)
				add(metricKey{k, MetricTouchedChunks}, ti.Chunks)
			}
			if p.FetchWaitNs != nil {
				var w int64
				for _, v := range p.FetchWaitNs {
					w += v
				}
				add(metricKey{k, MetricFetchWait}, w)
			}
			for ph, t := range p.Touched {
				if t != nil {
					add(metricKey{k, ph + phasePagesSuffix}, t.Pages.Total)
					add(metricKey{k, ph + phaseChunksSuffix}, t.Chunks)
				}
			}
		}
	}
	return out
}

// Compare puts builds side by side. The first build that has runs is the
// baseline. It never fails: builds with Err or without runs are listed with the
// reason, and metrics missing from a build are left blank for it.
func Compare(builds []BuildRuns) *Comparison {
	c := &Comparison{Schema: CompareSchema, Alpha: stats.Alpha, Confidence: stats.Confidence, builds: builds}
	var ok []BuildRuns
	var reports []*Report
	for _, b := range builds {
		info := BuildInfo{Name: b.Build, Runs: len(b.Runs), Err: b.Err, Facts: b.Facts}
		if b.Err == "" && len(b.Runs) == 0 {
			info.Err = "no runs"
		}
		if info.Err == "" {
			rep := Aggregate(b.Runs)
			info.Leader, info.Dropped = rep.Critical.Leader, rep.Dropped
			ok = append(ok, b)
			reports = append(reports, rep)
			if rep.Dropped > 0 {
				c.Notes = append(c.Notes, fmt.Sprintf("build %s: the probes dropped %d events; its phases may be incomplete", b.Build, rep.Dropped))
			}
		} else {
			c.Notes = append(c.Notes, fmt.Sprintf("build %s was not compared: %s", b.Build, info.Err))
		}
		c.Builds = append(c.Builds, info)
	}
	if len(ok) == 0 {
		return c
	}
	// Row order: Init Duration, then the baseline's processes and phases in its
	// report order, then anything only other builds have.
	var order []metricKey
	seen := map[metricKey]bool{}
	push := func(k metricKey) {
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	push(metricKey{"", AggInitDuration})
	for _, rep := range reports {
		for _, p := range rep.Processes {
			push(metricKey{p.Name, AggLoad})
			push(metricKey{p.Name, AggInit})
			push(metricKey{p.Name, AggTimeToReady})
			for _, ph := range p.Phases {
				push(metricKey{p.Name, ph.Name})
			}
			// What init touched, after the process's time rows: in all,
			// then per phase in phase order (rows no build has are
			// dropped below).
			push(metricKey{p.Name, MetricTouchedPages})
			push(metricKey{p.Name, MetricTouchedChunks})
			push(metricKey{p.Name, MetricFetchWait})
			for _, ph := range p.Phases {
				push(metricKey{p.Name, ph.Name + phasePagesSuffix})
				push(metricKey{p.Name, ph.Name + phaseChunksSuffix})
			}
		}
	}
	all := make([]map[metricKey][]float64, len(ok))
	for i, b := range ok {
		all[i] = samples(b.Runs)
	}
	for _, k := range order {
		row := CompareRow{Process: k.proc, Metric: k.metric, Unit: rowUnit(k.metric)}
		base := all[0][k]
		hasAny := false
		for i, b := range ok {
			xs := all[i][k]
			cell := CompareCell{Build: b.Build, Summary: stats.Summarize(xs)}
			if len(xs) > 0 {
				hasAny = true
			}
			if i > 0 && len(xs) > 0 && len(base) > 0 {
				if sh, err := stats.HodgesLehmann(base, xs); err == nil {
					cell.Shift = &sh
				}
				if t, err := stats.MannWhitneyU(base, xs); err == nil {
					cell.Test = &t
					cell.Mark = stats.Mark(cell.Shift.Estimate, stats.Median(base), t.P, c.Alpha)
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		if hasAny {
			c.Rows = append(c.Rows, row)
		}
	}
	for i := 1; i < len(ok); i++ {
		c.Verdicts = append(c.Verdicts, PairVerdict{Base: ok[0].Build, Other: ok[i].Build, Text: c.pairVerdict(reports[0], reports[i], i)})
	}
	return c
}

func (c *Comparison) row(proc, metric string) *CompareRow {
	for i := range c.Rows {
		if c.Rows[i].Process == proc && c.Rows[i].Metric == metric {
			return &c.Rows[i]
		}
	}
	return nil
}

// isPhase says whether the row is one of a process's phases (not an
// aggregate of them, and not what init touched).
func (r *CompareRow) isPhase() bool {
	switch r.Metric {
	case AggLoad, AggInit, AggTimeToReady, AggInitDuration, MetricFetchWait:
		return false
	}
	return r.Unit == ""
}

// tested returns the row's cell for the i-th compared build, if it has a test.
func (r *CompareRow) tested(i int) (*CompareCell, bool) {
	if r == nil || i >= len(r.Cells) || r.Cells[i].Test == nil {
		return nil, false
	}
	return &r.Cells[i], true
}

// pairVerdict says, for the baseline's main extension, whether the other build
// moved its load (or time-to-ready), whether Init Duration moved, and why not
// when it did not: who is on the critical path.
func (c *Comparison) pairVerdict(base, other *Report, i int) string {
	name := other.Build
	if name == "" {
		name = c.Rows[0].Cells[i].Build
	}
	ext := ""
	for _, p := range base.Processes {
		if p.Role == RoleExtension {
			ext = p.Name
			break
		}
	}
	var parts []string
	extMoved := false
	if ext != "" {
		metric, label := AggLoad, "load"
		if _, ok := c.row(ext, AggLoad).tested(i); !ok {
			metric, label = AggTimeToReady, "time-to-ready"
		}
		if cell, ok := c.row(ext, metric).tested(i); ok {
			extMoved = cell.Test.P < c.Alpha
			text := name + " " + moved(label+" of "+ext, cell, c.Alpha)
			// Name the phase that moved most, when the whole moved significantly.
			if cell.Test.P < c.Alpha {
				if gone := c.absentPhases(ext, i, metric == AggLoad); gone != "" {
					text += "; " + name + " has no " + gone
				}
				if ph := c.biggestPhaseMove(ext, i, metric == AggLoad, cell.Shift.Estimate); ph != "" {
					text += "; most of it in " + ph
				}
			}
			// Load on Lambda is fetching chunks: say when their count moved.
			if ch, ok := c.row(ext, MetricTouchedChunks).tested(i); ok && ch.Test.P < c.Alpha {
				text += fmt.Sprintf("; chunks touched %s → %s (%s, %s)", fmtCount(c.row(ext, MetricTouchedChunks).Cells[0].Summary.Median),
					fmtCount(ch.Summary.Median), c.row(ext, MetricTouchedChunks).FormatShift(ch.Shift.Estimate), stats.FormatP(ch.Test.P))
			}
			parts = append(parts, text)
		} else {
			parts = append(parts, fmt.Sprintf("%s: load and time-to-ready of %s not measured in both builds", name, ext))
		}
	}
	idPart := ""
	if cell, ok := c.row("", AggInitDuration).tested(i); ok {
		if cell.Test.P < c.Alpha {
			idPart = moved("Init Duration", cell, c.Alpha)
			if ext == "" {
				idPart = name + " " + idPart
			}
		} else {
			idPart = "Init Duration unchanged (" + stats.FormatP(cell.Test.P) + ")"
			// Why, but only when something in the extension did move:
			// otherwise there is nothing to explain.
			if lead := other.Critical.Leader; lead != "" && lead != ext && extMoved {
				idPart += ": " + whoName(lead) + " is the critical path"
			}
		}
	} else {
		idPart = "Init Duration not measured in both builds"
	}
	parts = append(parts, idPart)
	return strings.Join(parts, "; ")
}

// moved words a significant or insignificant shift: "cut load by 0.26 ms
// (p<0.001)", "added 2.01 ms to load (p<0.001)", "left load unchanged (p=0.41)".
func moved(what string, cell *CompareCell, alpha float64) string {
	p := stats.FormatP(cell.Test.P)
	if cell.Test.P >= alpha {
		return fmt.Sprintf("left %s unchanged (%s)", what, p)
	}
	d := cell.Shift.Estimate
	ci := fmt.Sprintf("95 %% CI %s … %s", fmtDur(cell.Shift.Lo), fmtDur(cell.Shift.Hi))
	if d < 0 {
		return fmt.Sprintf("cut %s by %s (%s, %s)", what, fmtDur(-d), p, ci)
	}
	return fmt.Sprintf("added %s to %s (%s, %s)", fmtDur(d), what, p, ci)
}

// absentPhases names the phases the baseline has and build i lacks, with their
// baseline medians, e.g. "load_deps, relocate (3.46 ms in the baseline)": what
// a static-pie build saves is a loader it no longer runs.
func (c *Comparison) absentPhases(proc string, i int, onlyLoad bool) string {
	var names []string
	var total float64
	for r := range c.Rows {
		row := &c.Rows[r]
		if row.Process != proc || !row.isPhase() || len(row.Cells) <= i {
			continue
		}
		base, other := row.Cells[0], row.Cells[i]
		if base.Summary.N == 0 || other.Summary.N != 0 || (onlyLoad && !c.isLoadPhase(proc, row.Metric)) {
			continue
		}
		names = append(names, row.Metric)
		total += base.Summary.Median
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s (%s in the baseline)", strings.Join(names, ", "), fmtDur(total))
}

// biggestPhaseMove names the significant phase shift with the largest magnitude
// for process proc in build i, in the direction of the total shift, e.g.
// "relocate (-0.201 ms)"; onlyLoad keeps to the phases before the entry point.
func (c *Comparison) biggestPhaseMove(proc string, i int, onlyLoad bool, total float64) string {
	best, bestAbs := "", 0.0
	for r := range c.Rows {
		row := &c.Rows[r]
		if row.Process != proc || !row.isPhase() {
			continue
		}
		cell, ok := row.tested(i)
		if !ok || cell.Test.P >= c.Alpha {
			continue
		}
		if onlyLoad && !c.isLoadPhase(proc, row.Metric) {
			continue
		}
		if (cell.Shift.Estimate < 0) != (total < 0) {
			continue
		}
		if a := math.Abs(cell.Shift.Estimate); a > bestAbs {
			best, bestAbs = fmt.Sprintf("%s (%s)", row.Metric, signedDur(cell.Shift.Estimate)), a
		}
	}
	return best
}

// isLoadPhase says whether phase of proc ends at or before entry in the baseline.
func (c *Comparison) isLoadPhase(proc, phase string) bool {
	for _, b := range c.builds {
		if b.Err != "" {
			continue
		}
		for _, r := range b.Runs {
			for _, p := range r.Processes {
				if processKey(p) != proc {
					continue
				}
				for _, s := range Phases(p) {
					if s.Name == phase {
						return loadPhase(PhaseReport{To: s.To})
					}
				}
			}
		}
	}
	return false
}

// Label is how the row is titled in compare.txt (without its process).
func (r CompareRow) Label() string {
	switch r.Metric {
	case AggInitDuration:
		return "Init Duration"
	case AggLoad:
		return "load (exec→entry)"
	case AggInit:
		return "init (entry→next)"
	case AggTimeToReady:
		return "time_to_ready (exec→next)"
	case MetricTouchedPages:
		return "pages touched (exec→next)"
	case MetricTouchedChunks:
		return "chunks touched (exec→next)"
	case MetricFetchWait:
		return "fetch wait (Lambda storage)"
	}
	return r.Metric
}

// FormatValue prints a summary value of the row in its unit: a duration, or
// a count of pages or chunks.
func (r CompareRow) FormatValue(v float64) string {
	if r.Unit == "" {
		return fmtDur(v)
	}
	return fmtCount(v)
}

// fmtCount prints a count, or an interpolated quantile of counts, to one
// decimal at most: "18", "18.3".
func fmtCount(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// FormatShift prints a signed shift in the row's unit.
func (r CompareRow) FormatShift(v float64) string {
	if r.Unit == "" {
		return signedDur(v)
	}
	if v > 0 {
		return "+" + fmtCount(v)
	}
	return fmtCount(v)
}

// WriteText writes compare.txt: the builds, the verdicts, then one block per
// process with, per metric, each build's median [p10 … p90] and the shift
// against the baseline: Hodges–Lehmann estimate, 95 % CI, Mann–Whitney p and
// the benchstat-style mark.
func (c *Comparison) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "initprof compare: %d builds\n", len(c.Builds))
	if c.Interrupted != nil {
		fmt.Fprintf(bw, "!!! INTERRUPTED after %d of %d rounds: the comparison covers those runs only !!!\n", c.Interrupted.Runs, c.Interrupted.Planned)
	}
	fmt.Fprintf(bw, "shift vs the first build: Hodges–Lehmann estimate [%.0f %% CI]; p: Mann–Whitney U, two-sided; ~ means p ≥ %.2f\n\n", 100*c.Confidence, c.Alpha)
	bt := &table{left: 3, indent: "  "}
	bt.add("build", "runs", "critical path")
	for _, b := range c.Builds {
		lead := whoName(b.Leader)
		if b.Err != "" {
			lead = "NOT COMPARED: " + b.Err
		}
		bt.add(b.Name, fmt.Sprint(b.Runs), lead)
	}
	_ = bt.write(bw)
	writeFacts(bw, c.Builds)
	for _, b := range c.Builds {
		if b.Dropped > 0 {
			fmt.Fprintf(bw, "!!! WARNING: build %s: %d PROBE EVENTS WERE DROPPED — its phases may be incomplete !!!\n", b.Name, b.Dropped)
		}
	}
	proc := "\x00"
	var t *table
	flush := func() {
		if t != nil {
			_ = t.write(bw)
		}
	}
	for _, r := range c.Rows {
		if r.Process != proc {
			flush()
			proc = r.Process
			title := "platform"
			if proc != "" {
				title = whoName(proc)
			}
			fmt.Fprintf(bw, "\n%s\n", title)
			t = &table{left: 2, indent: "  "}
			t.add("metric", "build", "median", "p10", "p90", "shift", "95 % CI", "p", "")
		}
		for i, cell := range r.Cells {
			label := r.Label()
			if i > 0 {
				label = ""
			}
			if cell.Summary.N == 0 {
				t.add(label, cell.Build, "n/a")
				continue
			}
			row := []string{label, cell.Build, r.FormatValue(cell.Summary.Median), r.FormatValue(cell.Summary.P10), r.FormatValue(cell.Summary.P90)}
			if cell.Shift != nil && cell.Test != nil {
				row = append(row, r.FormatShift(cell.Shift.Estimate), r.FormatShift(cell.Shift.Lo)+" … "+r.FormatShift(cell.Shift.Hi), stats.FormatP(cell.Test.P), cell.Mark)
			}
			t.add(row...)
		}
	}
	flush()
	if len(c.Verdicts) > 0 {
		fmt.Fprintln(bw)
	}
	for _, v := range c.Verdicts {
		fmt.Fprintf(bw, "VERDICT %s vs %s: %s\n", v.Other, v.Base, v.Text)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	return bw.Flush()
}

func signedDur(ns float64) string {
	if ns > 0 {
		return "+" + fmtDur(ns)
	}
	if ns == 0 {
		return "0"
	}
	return fmtDur(ns)
}

// WriteJSON writes compare.json (schema CompareSchema).
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// WriteBench writes bench.txt in the Go benchmark format, one line per metric per
// run, e.g.
//
//	BenchmarkInit/build=a/proc=datadog-agent/phase=relocate 1 123456 ns/op
//	BenchmarkInit/build=a/phase=init_duration 1 182310000 ns/op
//
// so golang.org/x/perf/cmd/benchstat reads it; `benchstat -col /build bench.txt`
// puts the builds side by side with its own statistics. Runs are written in the
// order given (interleaved when the caller ran them so).
func (c *Comparison) WriteBench(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "goos: linux\npkg: initprof\nnote: one line per metric per cold start; try: benchstat -col /build bench.txt\n\n")
	for _, b := range c.builds {
		if b.Err != "" {
			continue
		}
		for _, r := range b.Runs {
			if d, ok := r.InitDurationNs(); ok {
				fmt.Fprintf(bw, "BenchmarkInit/build=%s/phase=%s 1 %d ns/op\n", benchName(b.Build), AggInitDuration, d)
			}
			procs := append([]Process(nil), r.Processes...)
			sort.SliceStable(procs, func(i, j int) bool { return processKey(procs[i]) < processKey(procs[j]) })
			for _, p := range procs {
				if p.Role == RolePlatform {
					continue
				}
				prefix := fmt.Sprintf("BenchmarkInit/build=%s/proc=%s/phase=", benchName(b.Build), benchName(processKey(p)))
				for _, a := range []struct {
					name string
					f    func(Process) (int64, bool)
				}{{AggLoad, Load}, {AggInit, OwnInit}, {AggTimeToReady, TimeToReady}} {
					if v, ok := a.f(p); ok {
						fmt.Fprintf(bw, "%s%s 1 %d ns/op\n", prefix, a.name, v)
					}
				}
				for _, s := range Phases(p) {
					fmt.Fprintf(bw, "%s%s 1 %d ns/op\n", prefix, benchName(s.Name), s.DurNs())
				}
			}
		}
	}
	return bw.Flush()
}

// benchName makes a value safe inside a benchmark name: no spaces (which end the
// name) and no '/' or '=' (which separate keys).
func benchName(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '\t' || r == '/' || r == '=':
			return '_'
		}
		return r
	}, s)
}

// writeFacts prints the builds' static facts as one table, a column per build.
func writeFacts(w io.Writer, builds []BuildInfo) {
	var order []string
	seen := map[string]bool{}
	for _, b := range builds {
		for _, f := range b.Facts {
			if !seen[f.Name] {
				seen[f.Name] = true
				order = append(order, f.Name)
			}
		}
	}
	if len(order) == 0 {
		return
	}
	t := &table{left: 1, indent: "  "}
	head := []string{"binary"}
	for _, b := range builds {
		head = append(head, b.Name)
	}
	t.add(head...)
	for _, name := range order {
		row := []string{name}
		for _, b := range builds {
			v := "–"
			for _, f := range b.Facts {
				if f.Name == name {
					v = f.Value
				}
			}
			row = append(row, v)
		}
		t.add(row...)
	}
	fmt.Fprintln(w)
	_ = t.write(w)
}

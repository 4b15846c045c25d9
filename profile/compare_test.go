package profile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// The injected-delay comparison: build b's constructors take 2 ms longer, build
// c is identical to a; 30 noisy runs each, the runtime (180 ms) ends init.
func injected() []BuildRuns {
	base := synthSpec{runs: 30, runtimeNs: 180e6, relocateNs: 800_000, noise: 0.1}
	a, b, c := base, base, base
	a.build, a.seed = "a", 1
	b.build, b.seed, b.ctorExtra = "b", 2, 2e6
	c.build, c.seed = "c", 3
	facts := func(size, relr string) []Fact {
		return []Fact{{"size", size}, {"BIND_NOW", "yes"}, {"RELR", relr}}
	}
	return []BuildRuns{
		{Build: "a", Runs: synthRuns(a), Facts: facts("15.2 MB", "no")},
		{Build: "b", Runs: synthRuns(b), Facts: facts("15.2 MB", "no")},
		{Build: "c", Runs: synthRuns(c), Facts: []Fact{{"size", "15.2 MB"}}},
		{Build: "relr", Err: "the extension exited at once (DT_RELR needs glibc ≥ 2.36)", Facts: facts("14.1 MB", "yes")},
	}
}

func cellOf(t *testing.T, c *Comparison, proc, metric, build string) CompareCell {
	t.Helper()
	r := c.row(proc, metric)
	if r == nil {
		t.Fatalf("no row %s/%s", proc, metric)
	}
	for _, cell := range r.Cells {
		if cell.Build == build {
			return cell
		}
	}
	t.Fatalf("row %s/%s has no build %s", proc, metric, build)
	return CompareCell{}
}

func TestCompareInjectedShift(t *testing.T) {
	c := Compare(injected())
	const shift = 2e6
	for _, metric := range []string{"constructors", AggLoad, AggTimeToReady} {
		cell := cellOf(t, c, "ext", metric, "b")
		if cell.Test == nil || cell.Shift == nil {
			t.Fatalf("%s: no test for b", metric)
		}
		if cell.Test.P >= 0.01 {
			t.Errorf("%s: 2 ms shift has p = %v, want < 0.01", metric, cell.Test.P)
		}
		if !(cell.Shift.Lo <= shift && shift <= cell.Shift.Hi) {
			t.Errorf("%s: CI [%v, %v] does not contain 2 ms", metric, cell.Shift.Lo, cell.Shift.Hi)
		}
		if cell.Mark == "~" || !strings.HasPrefix(cell.Mark, "+") {
			t.Errorf("%s: mark %q, want a +%%", metric, cell.Mark)
		}
	}
	// Identical builds come out "~" on every aggregate and the phase that moved in b.
	for _, k := range []struct{ proc, metric string }{{"ext", AggLoad}, {"ext", AggTimeToReady}, {"ext", "constructors"}, {"", AggInitDuration}} {
		if cell := cellOf(t, c, k.proc, k.metric, "c"); cell.Mark != "~" {
			t.Errorf("identical build c: %s/%s mark %q (p=%v), want ~", k.proc, k.metric, cell.Mark, cell.Test.P)
		}
	}
	// The runtime is the critical path, so Init Duration does not move for b either.
	if cell := cellOf(t, c, "", AggInitDuration, "b"); cell.Mark != "~" {
		t.Errorf("b: Init Duration mark %q, want ~ (the runtime ends init)", cell.Mark)
	}
	// The baseline carries no shift.
	if cell := cellOf(t, c, "ext", AggLoad, "a"); cell.Shift != nil || cell.Test != nil || cell.Mark != "" {
		t.Errorf("baseline cell has a shift: %+v", cell)
	}
	if len(c.Verdicts) != 2 {
		t.Fatalf("%d verdicts, want 2 (b and c vs a; relr not compared)", len(c.Verdicts))
	}
	vb, vc := c.Verdicts[0].Text, c.Verdicts[1].Text
	for _, want := range []string{"b added 2.0", "ms to load of ext (p<0.001, 95 % CI", "most of it in constructors", "Init Duration unchanged (p=", "the runtime is the critical path"} {
		if !strings.Contains(vb, want) {
			t.Errorf("verdict b lacks %q:\n%s", want, vb)
		}
	}
	for _, want := range []string{"c left load of ext unchanged (p=", "Init Duration unchanged"} {
		if !strings.Contains(vc, want) {
			t.Errorf("verdict c lacks %q:\n%s", want, vc)
		}
	}
	if strings.Contains(vc, "most of it") {
		t.Errorf("verdict c names a phase although load did not move:\n%s", vc)
	}
	if c.Builds[3].Err == "" || !strings.Contains(strings.Join(c.Notes, "\n"), "build relr was not compared: the extension exited at once") {
		t.Errorf("the failed build is not explained: %+v %v", c.Builds[3], c.Notes)
	}
}

// When the extension ends init (fast runtime), its load reaches Init Duration.
func TestCompareReachesInitDuration(t *testing.T) {
	base := synthSpec{runs: 20, runtimeNs: 5e6, relocateNs: 2_800_000, noise: 0.05}
	a, b := base, base
	a.build, a.seed = "pie", 1
	b.build, b.seed, b.relocateNs = "static-pie", 2, 800_000
	c := Compare([]BuildRuns{{Build: "pie", Runs: synthRuns(a)}, {Build: "static-pie", Runs: synthRuns(b)}})
	v := c.Verdicts[0].Text
	for _, want := range []string{"static-pie cut load of ext by", "most of it in relocate", "cut Init Duration by"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict lacks %q:\n%s", want, v)
		}
	}
	if cell := cellOf(t, c, "", AggInitDuration, "static-pie"); cell.Test.P >= 0.01 || cell.Shift.Estimate >= 0 {
		t.Errorf("Init Duration: p=%v shift=%v, want a significant cut", cell.Test.P, cell.Shift.Estimate)
	}
}

func TestCompareDegenerate(t *testing.T) {
	c := Compare([]BuildRuns{{Build: "a", Err: "missing file"}, {Build: "b"}})
	if len(c.Rows) != 0 || len(c.Verdicts) != 0 || len(c.Notes) != 2 {
		t.Errorf("no usable build: rows %d verdicts %d notes %v", len(c.Rows), len(c.Verdicts), c.Notes)
	}
	var buf bytes.Buffer
	for _, w := range []func() error{func() error { return c.WriteText(&buf) }, func() error { return c.WriteJSON(&buf) }, func() error { return c.WriteBench(&buf) }} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompareOutputs(t *testing.T) {
	c := Compare(injected())
	var txt bytes.Buffer
	if err := c.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	golden(t, "compare.txt", txt.Bytes())

	var js bytes.Buffer
	if err := c.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema string `json:"schema"`
		Builds []struct {
			Name string `json:"name"`
			Err  string `json:"error"`
		} `json:"builds"`
		Rows []struct {
			Process string `json:"process"`
			Metric  string `json:"metric"`
			Builds  []struct {
				Build   string `json:"build"`
				Summary struct {
					Median float64 `json:"median"`
				} `json:"summary_ns"`
				Shift *struct {
					Estimate, Lo, Hi float64
				} `json:"shift_ns"`
				Test *struct {
					P float64 `json:"p"`
				} `json:"mann_whitney"`
				Mark string `json:"mark"`
			} `json:"builds"`
		} `json:"rows"`
		Verdicts []PairVerdict `json:"verdicts"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("compare.json does not parse: %v", err)
	}
	if doc.Schema != CompareSchema || len(doc.Builds) != 4 || doc.Builds[3].Err == "" || len(doc.Verdicts) != 2 {
		t.Errorf("compare.json header: %+v", doc)
	}
	if len(doc.Rows) != len(c.Rows) || doc.Rows[0].Metric != AggInitDuration {
		t.Errorf("compare.json rows: %d, first %q", len(doc.Rows), doc.Rows[0].Metric)
	}
	if b := doc.Rows[0].Builds[1]; b.Shift == nil || b.Test == nil || b.Mark == "" {
		t.Errorf("compare.json: b's Init Duration has no shift/test/mark: %+v", b)
	}
}

var benchLine = regexp.MustCompile(`^BenchmarkInit/build=[^ /=]+(/proc=[^ /=]+)?/phase=[^ /=]+ 1 [0-9]+ ns/op$`)

func TestBenchFormat(t *testing.T) {
	builds := injected()
	c := Compare(builds)
	var buf bytes.Buffer
	if err := c.WriteBench(&buf); err != nil {
		t.Fatal(err)
	}
	// One line per metric per run: Init Duration, then per process its
	// aggregates and phases.
	want := 0
	for _, b := range builds {
		for _, r := range b.Runs {
			want++ // init_duration
			for _, p := range r.Processes {
				for _, f := range []func(Process) (int64, bool){Load, OwnInit, TimeToReady} {
					if _, ok := f(p); ok {
						want++
					}
				}
				want += len(Phases(p))
			}
		}
	}
	got := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		got++
		if !benchLine.MatchString(line) {
			t.Errorf("not a benchmark line benchstat reads: %q", line)
		}
		if strings.Contains(line, "build=relr") {
			t.Errorf("a build that was not measured has lines: %q", line)
		}
	}
	if got != want {
		t.Errorf("%d benchmark lines, want %d", got, want)
	}
	if s := benchName("a b/c=d"); s != "a_b_c_d" {
		t.Errorf("benchName = %q", s)
	}
}

// TestBenchstatReadsBench installs benchstat from the Go module proxy and holds
// its reading of bench.txt against ours: it must find every build and, since it
// runs the same Mann–Whitney U test, print the same p-values.
func TestBenchstatReadsBench(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: installing benchstat needs the Go module proxy")
	}
	goBin := testutil.RequireTool(t, "go")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, goBin, "install", "golang.org/x/perf/cmd/benchstat@latest")
	install.Dir = dir
	install.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("cannot install benchstat from the module proxy (%v): %s", err, out)
	}
	c := Compare(injected())
	bench := filepath.Join(dir, "bench.txt")
	var buf bytes.Buffer
	if err := c.WriteBench(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bench, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "benchstat"), "-col", "/build", bench).CombinedOutput()
	if err != nil {
		t.Fatalf("benchstat failed on bench.txt: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"│      a      │", "proc=ext/phase=constructors", "proc=runtime/phase=time_to_ready", "phase=init_duration"} {
		if !strings.Contains(text, want) {
			t.Errorf("benchstat output lacks %q:\n%s", want, text)
		}
	}
	for _, k := range []struct{ proc, metric, name string }{
		{"ext", AggLoad, "Init/proc=ext/phase=load "}, {"ext", "constructors", "Init/proc=ext/phase=constructors "},
		{"", AggInitDuration, "Init/phase=init_duration "},
	} {
		line := ""
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, k.name) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("benchstat has no row %q:\n%s", k.name, text)
			continue
		}
		for _, build := range []string{"b", "c"} {
			p := cellOf(t, c, k.proc, k.metric, build).Test.P
			if want := fmt.Sprintf("(p=%.3f n=30)", p); !strings.Contains(line, want) {
				t.Errorf("benchstat row %q lacks our %s p-value %s", line, build, want)
			}
		}
	}
}

// withTouched gives every run's extension what init touched: chunks in
// exec and in relocate, pages 8 per chunk, and a fetch wait of 3 ms a chunk.
func withTouched(runs []Run, execChunks, relocChunks int64) []Run {
	for i := range runs {
		for j := range runs[i].Processes {
			p := &runs[i].Processes[j]
			if p.Name != "ext" {
				continue
			}
			jitter := int64(i % 2) // counts vary a little from run to run
			ex, rl := execChunks+jitter, relocChunks
			p.Touched = map[string]*Touched{
				"exec":     {Pages: TouchedPages{Total: 8 * ex}, Chunks: ex},
				"relocate": {Pages: TouchedPages{Total: 8 * rl}, Chunks: rl},
			}
			p.TouchedInit = &TouchedInit{Pages: TouchedPages{Total: 8 * (ex + rl)}, Chunks: ex + rl}
			p.FetchWaitNs = map[string]int64{"exec": 3e6 * ex, "relocate": 3e6 * rl}
		}
	}
	return runs
}

func TestCompareTouchedRows(t *testing.T) {
	spec := synthSpec{runs: 20, runtimeNs: 180e6, relocateNs: 800_000, noise: 0.05}
	a, b := spec, spec
	a.build, a.seed = "a", 1
	b.build, b.seed, b.ctorExtra = "b", 2, 2e6
	c := Compare([]BuildRuns{
		{Build: "a", Runs: withTouched(synthRuns(a), 10, 4)},
		{Build: "b", Runs: withTouched(synthRuns(b), 6, 4)},
	})
	for _, tc := range []struct {
		metric, unit string
		base, other  float64 // medians
		moved        bool
	}{
		{MetricTouchedChunks, UnitChunks, 14.5, 10.5, true},
		{MetricTouchedPages, UnitPages, 116, 84, true},
		{"exec" + phaseChunksSuffix, UnitChunks, 10.5, 6.5, true},
		{"relocate" + phaseChunksSuffix, UnitChunks, 4, 4, false},
		{MetricFetchWait, "", 43.5e6, 31.5e6, true},
	} {
		r := c.row("ext", tc.metric)
		if r == nil {
			t.Errorf("no row %s", tc.metric)
			continue
		}
		if r.Unit != tc.unit {
			t.Errorf("%s: unit %q, want %q", tc.metric, r.Unit, tc.unit)
		}
		base, other := cellOf(t, c, "ext", tc.metric, "a"), cellOf(t, c, "ext", tc.metric, "b")
		if base.Summary.Median != tc.base || other.Summary.Median != tc.other {
			t.Errorf("%s: medians %v, %v, want %v, %v", tc.metric, base.Summary.Median, other.Summary.Median, tc.base, tc.other)
		}
		if other.Test == nil || (other.Test.P < c.Alpha) != tc.moved {
			t.Errorf("%s: test %+v, want moved=%v", tc.metric, other.Test, tc.moved)
		}
	}
	// The touched rows are not phases: the verdict's phase that moved most
	// is still constructors, and it names the chunk count's move.
	v := c.Verdicts[0].Text
	for _, want := range []string{"most of it in constructors", "chunks touched 14.5 → 10.5 (-4, p<0.001)"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict lacks %q:\n%s", want, v)
		}
	}
	var txt bytes.Buffer
	if err := c.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"chunks touched (exec→next)", "pages touched (exec→next)", "fetch wait (Lambda storage)", "exec chunks"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("compare.txt lacks %q:\n%s", want, txt.String())
		}
	}
}

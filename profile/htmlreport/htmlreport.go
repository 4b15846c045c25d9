// Package htmlreport writes report.html: one self-contained page (inline CSS
// and JavaScript, no network access, readable offline and attachable to a
// ticket) that shows what report.txt, compare.txt and the flamegraph SVGs
// say separately, as pictures: the init waterfall of every process on the
// shared initStart timeline with the critical path, per-phase medians with
// their p10–p90 bands, what each binary's init touched of its files, the
// flamegraphs (zoom and search work as in the SVGs), and for a comparison
// the shift table and one waterfall per build.
//
// Tables and figures are rendered here, in Go, with the same formatting as
// the text reports, so a number on the page is the number in results.json
// printed the same way; JavaScript only draws the waterfall of the run the
// reader picks and switches flamegraphs.
package htmlreport

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
	"github.com/initprof/initprof/profile/stats"
)

//go:embed report.html.tmpl
var pageTemplate string

//go:embed report.css
var pageCSS string

//go:embed report.js
var pageJS string

// Name is the file initprof writes.
const Name = "report.html"

// Input is what one page shows: one build (run, merge) or several with
// their Comparison (compare).
type Input struct {
	// Title heads the page, e.g. "initprof run — cext".
	Title  string
	Builds []Build
	// Comparison is the compare result; nil for a single build.
	Comparison *profile.Comparison
	// Diffs are the differential flamegraphs of a comparison.
	Diffs []Flame
	// Generated is when the page was made (zero: now).
	Generated time.Time
}

// Build is one build's report and its flamegraphs.
type Build struct {
	Name   string
	Report *profile.Report
	Flames []Flame
}

// Flame is one flamegraph SVG as profile/flame wrote it (flame.svg,
// flame-relocate.svg, flame-offcpu.svg ...).
type Flame struct {
	// Name labels it in the picker: "all phases", "relocate", "off-CPU".
	Name string
	SVG  []byte
}

// Write renders the page.
func Write(w io.Writer, in Input) error {
	if len(in.Builds) == 0 {
		return fmt.Errorf("report.html: no build to show")
	}
	v, err := view(in)
	if err != nil {
		return err
	}
	t, err := template.New("report").Funcs(funcs).Parse(pageTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

var funcs = template.FuncMap{
	"dur":  func(ns float64) string { return profile.FormatDuration(ns) },
	"sdur": func(ns float64) string { return profile.FormatSignedDuration(ns) },
	"pval": stats.FormatP,
	"pct": func(f float64) string {
		if math.IsNaN(f) {
			return "n/a"
		}
		return fmt.Sprintf("%.0f %%", 100*f)
	},
	"bytes":  profile.FormatBytes,
	"ns":     func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"label":  export.RowLabel,
	"mul100": func(f float64) float64 { return 100 * f },
	"f64":    func(n int64) float64 { return float64(n) },
	"css":    func(f float64) template.CSS { return template.CSS(fmt.Sprintf("%.3f%%", f)) },
}

// page is the template's data.
type page struct {
	Title      string
	Generated  string
	CSS        template.CSS
	JS         template.JS
	Data       template.JS
	Builds     []buildView
	Comparison *profile.Comparison
	Machines   []export.Machine
	HasDiffs   bool
	HasFlames  bool
}

type buildView struct {
	Index    int
	Name     string
	Report   *profile.Report
	Runs     int
	Procs    []procView
	Critical string
	Overhead string
	Machines []export.Machine
}

type procView struct {
	profile.ProcessReport
	Phases  []phaseView
	Touched *touchedView
}

// phaseView is one phase row with its bar: the p10–p90 band and the
// median tick, in % of the process's longest p90.
type phaseView struct {
	profile.PhaseReport
	Left, Width, Tick float64
}

type touchedView struct {
	profile.TouchedReport
	Line     string
	Files    []fileView
	Sections []shareView
}

type fileView struct {
	Path                      string
	Size                      int64
	Bytes                     float64
	Chunks, TotalChunks       int64
	FaultedChunks             int64
	BytePct, ChunkPct, FltPct float64
}

type shareView struct {
	Name  string
	Share float64
	Color template.CSS
}

func view(in Input) (*page, error) {
	gen := in.Generated
	if gen.IsZero() {
		gen = time.Now()
	}
	p := &page{Title: in.Title, Generated: gen.UTC().Format(time.RFC3339), CSS: template.CSS(pageCSS), JS: template.JS(pageJS), Comparison: in.Comparison, HasDiffs: len(in.Diffs) > 0}
	var all []profile.Run
	d := data{Diffs: flames(in.Diffs)}
	for i, b := range in.Builds {
		if b.Report == nil {
			return nil, fmt.Errorf("report.html: build %q has no report", b.Name)
		}
		bv := buildView{Index: i, Name: b.Name, Report: b.Report, Runs: len(b.Report.Runs), Critical: b.Report.CriticalPathText(), Overhead: b.Report.OverheadText()}
		if ms := export.ByMachine(b.Report.Runs); len(ms) > 1 {
			bv.Machines = ms
		}
		for _, pr := range b.Report.Processes {
			bv.Procs = append(bv.Procs, procOf(pr, b.Report.Runs))
		}
		p.Builds = append(p.Builds, bv)
		all = append(all, b.Report.Runs...)
		bd := buildData{Name: b.Name, Flames: flames(b.Flames), Median: medianRun(b.Report.Runs)}
		for _, r := range b.Report.Runs {
			bd.Runs = append(bd.Runs, runOf(r))
		}
		p.HasFlames = p.HasFlames || len(b.Flames) > 0
		d.Builds = append(d.Builds, bd)
	}
	js, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	// No "http://" or "https://" may appear in the page, not even as the
	// SVG namespace inside a flamegraph: the file must be seen to load
	// nothing from anywhere. "\/" is JSON's own escape of "/".
	p.Data = template.JS(strings.ReplaceAll(string(js), "://", `:\/\/`))
	return p, nil
}

func procOf(pr profile.ProcessReport, runs []profile.Run) procView {
	v := procView{ProcessReport: pr}
	scale := 0.0
	for _, ph := range pr.Phases {
		scale = math.Max(scale, ph.Dur.P90)
	}
	for _, ph := range pr.Phases {
		pv := phaseView{PhaseReport: ph}
		if scale > 0 && ph.Dur.N > 0 {
			pv.Left = 100 * ph.Dur.P10 / scale
			pv.Width = math.Max(0.5, 100*(ph.Dur.P90-ph.Dur.P10)/scale)
			pv.Tick = 100 * ph.Dur.Median / scale
		}
		v.Phases = append(v.Phases, pv)
	}
	if pr.Touched != nil {
		v.Touched = touchedOf(pr, runs)
	}
	return v
}

// touchedOf is a process's touched map: per file of its median run (by
// bytes touched), the bytes and the 512 KiB chunks touched of the file's
// size, and the executable's touched bytes by section. results.json keeps
// counts per file and section, not page offsets, so the map is drawn as
// proportions, never as invented page positions.
func touchedOf(pr profile.ProcessReport, runs []profile.Run) *touchedView {
	t := &touchedView{TouchedReport: *pr.Touched, Line: pr.Touched.TouchedLine()}
	var inits []*profile.TouchedInit
	for _, r := range runs {
		for _, p := range r.Processes {
			if p.Name == pr.Name || (pr.Role == profile.RoleRuntime && p.Role == profile.RoleRuntime) {
				if p.TouchedInit != nil {
					inits = append(inits, p.TouchedInit)
				}
			}
		}
	}
	if len(inits) > 0 {
		sort.SliceStable(inits, func(i, j int) bool { return inits[i].Pages.Total < inits[j].Pages.Total })
		med := inits[len(inits)/2]
		for _, f := range med.Files {
			fv := fileView{Path: f.Path, Size: f.Size, Bytes: math.Min(float64(f.Pages.Bytes()), float64(f.Size)), Chunks: f.Chunks, FaultedChunks: f.FaultedChunks}
			fv.TotalChunks = (f.Size + profile.ChunkSize - 1) / profile.ChunkSize
			if f.Size > 0 {
				fv.BytePct = 100 * fv.Bytes / float64(f.Size)
			}
			if fv.TotalChunks > 0 {
				fv.ChunkPct = 100 * math.Min(1, float64(f.Chunks)/float64(fv.TotalChunks))
				fv.FltPct = 100 * math.Min(1, float64(f.FaultedChunks)/float64(fv.TotalChunks))
			}
			t.Files = append(t.Files, fv)
		}
		sort.SliceStable(t.Files, func(i, j int) bool { return t.Files[i].Bytes > t.Files[j].Bytes })
	}
	for _, s := range pr.Touched.Sections {
		t.Sections = append(t.Sections, shareView{Name: s.Name, Share: s.Share, Color: template.CSS(colorOf(s.Name))})
	}
	return t
}

// colorOf gives a name a stable colour (the waterfall's phases use the same
// hash in report.js).
func colorOf(name string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return fmt.Sprintf("hsl(%d,60%%,62%%)", h%360)
}

// data is what report.js draws: every run's spans, relative to its
// initStart, so the reader can pick any run's waterfall.
type data struct {
	Builds []buildData `json:"builds"`
	Diffs  []flameData `json:"diffs,omitempty"`
}

type buildData struct {
	Name   string      `json:"name"`
	Median int         `json:"median"` // index in Runs of the run with the median Init Duration
	Runs   []runData   `json:"runs"`
	Flames []flameData `json:"flames,omitempty"`
}

type runData struct {
	Index   int    `json:"i"`
	InitNs  int64  `json:"init"`
	EndedBy string `json:"ended"`
	Host    string `json:"host,omitempty"`
	Arch    string `json:"arch,omitempty"`
	// GateNs is when the last extension registered: Lambda starts the
	// runtime only then. GateBy names it.
	GateNs int64      `json:"gate"`
	GateBy string     `json:"gateBy,omitempty"`
	Procs  []procData `json:"procs"`
}

type procData struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Spans are [phase, start, duration] in ns from initStart; Crit marks
	// (by index) the spans on the init critical path.
	Spans [][3]any `json:"spans"`
	Crit  []int    `json:"crit,omitempty"`
}

type flameData struct {
	Name string `json:"name"`
	SVG  string `json:"svg"`
}

func flames(fs []Flame) []flameData {
	var out []flameData
	for _, f := range fs {
		out = append(out, flameData{Name: f.Name, SVG: string(f.SVG)})
	}
	return out
}

// medianRun is the index of the run whose Init Duration is the median (the
// lower one of an even count): the waterfall shown first is a real run,
// not a composite of medians that no run had.
func medianRun(runs []profile.Run) int {
	type rd struct {
		i int
		d int64
	}
	var ds []rd
	for i, r := range runs {
		if d, ok := r.InitDurationNs(); ok {
			ds = append(ds, rd{i, d})
		}
	}
	if len(ds) == 0 {
		return 0
	}
	sort.SliceStable(ds, func(a, b int) bool { return ds[a].d < ds[b].d })
	return ds[(len(ds)-1)/2].i
}

func key(p profile.Process) string {
	if p.Role == profile.RoleRuntime {
		return profile.RoleRuntime
	}
	return p.Name
}

// runOf lays out one run. The critical path: when the runtime ended init,
// it is the last-registering extension's spawn → register_ok (Lambda
// starts the runtime only after every extension registered) followed by
// the runtime's spans; when an extension ended it, that extension's spans.
func runOf(r profile.Run) runData {
	origin := r.InitStartNs
	if origin == 0 {
		origin = math.MaxInt64
		for _, p := range r.Processes {
			for _, c := range p.Checkpoints {
				origin = min(origin, c.MonoNs)
			}
		}
		if origin == math.MaxInt64 {
			origin = 0
		}
	}
	rd := runData{Index: r.Index, Host: r.Host, Arch: r.Arch}
	rd.InitNs, _ = r.InitDurationNs()
	rc, _ := profile.CriticalPath(r)
	rd.EndedBy = rc.EndedBy
	var gate int64
	for _, p := range r.Processes {
		if p.Role != profile.RoleExtension {
			continue
		}
		t, ok := p.Checkpoint(profile.CkRegisterOK)
		if !ok {
			t, ok = p.Checkpoint(profile.CkRegisterSent)
		}
		if ok && t > gate {
			gate, rd.GateBy = t, p.Name
		}
	}
	if gate > 0 {
		rd.GateNs = gate - origin
	}
	for _, p := range r.Processes {
		if p.Role == profile.RolePlatform {
			continue
		}
		pd := procData{Name: p.Name, Role: p.Role, Spans: [][3]any{}}
		k := key(p)
		for i, s := range profile.Phases(p) {
			pd.Spans = append(pd.Spans, [3]any{s.Name, s.StartNs - origin, s.DurNs()})
			switch {
			case k == rd.EndedBy:
				pd.Crit = append(pd.Crit, i)
			case rd.EndedBy == profile.RoleRuntime && p.Name == rd.GateBy && s.EndNs <= gate:
				pd.Crit = append(pd.Crit, i)
			}
		}
		rd.Procs = append(rd.Procs, pd)
	}
	return rd
}

package pprofout

import (
	"fmt"
	"io"
	"path"

	"github.com/google/pprof/profile"

	ip "github.com/initprof/initprof/profile"
)

// Label keys of touched.pb.gz besides phase, process, run and build.
const (
	LabelSection = "section"
	LabelKind    = "kind" // major, minor or readahead
)

// Touched builds touched.pb.gz from the runs' Process.Touched rows: sample
// types touched/bytes (every first-touched 4 KiB page of a file, split over
// the symbols it holds) and chunks/count (each 512 KiB chunk credited to the
// symbol of the page that first touched it). A stack is file → crate or
// package → symbol (the leaf), or file → symbol where the file is the owner
// (C); bytes no symbol covers are a "(SECTION)" leaf under the file. Every sample has the labels section, kind, phase,
// process, run and build. A symbol's Function.Filename is its crate or
// package (else its file), so `go tool pprof -top -files touched.pb.gz`
// ranks the crates and files,
// `-top` the symbols, `-tagfocus section=.rodata` one section.
func Touched(runs []ip.Run) *profile.Profile {
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: "touched", Unit: "bytes"}, {Type: "chunks", Unit: "count"}},
		DefaultSampleType: "touched",
		PeriodType:        &profile.ValueType{Type: "touched", Unit: "bytes"},
		Period:            ip.PageSize,
		Comments:          []string{"initprof: file-backed pages first touched during init (exec → next), by phase; chunks are Lambda's 512 KiB storage chunks"},
	}
	type fkey struct{ name, file string }
	funcs := map[fkey]*profile.Function{}
	locs := map[fkey]*profile.Location{}
	loc := func(name, file string) *profile.Location {
		k := fkey{name, file}
		if l, ok := locs[k]; ok {
			return l
		}
		fn := funcs[k]
		if fn == nil {
			fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: file}
			funcs[k] = fn
			p.Function = append(p.Function, fn)
		}
		l := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
		locs[k] = l
		p.Location = append(p.Location, l)
		return l
	}
	for _, r := range runs {
		for _, pr := range r.Processes {
			for phase, t := range pr.Touched {
				if t == nil {
					continue
				}
				for _, row := range t.Rows {
					fileLoc := loc(row.File, row.File)
					var stack []*profile.Location
					if row.Symbol == "" {
						stack = []*profile.Location{loc("("+row.Section+")", row.File), fileLoc}
					} else {
						if row.Owner != "" && row.Owner != path.Base(row.File) {
							stack = []*profile.Location{loc(row.Symbol, row.Owner), loc(row.Owner, row.Owner)}
						} else {
							// C: the file is the owner, and -files groups by it
							stack = []*profile.Location{loc(row.Symbol, row.File)}
						}
						stack = append(stack, fileLoc)
					}
					p.Sample = append(p.Sample, &profile.Sample{
						Location: stack,
						Value:    []int64{row.Bytes, row.Chunks},
						Label: map[string][]string{
							LabelSection: {row.Section}, LabelKind: {row.Kind}, LabelPhase: {phase},
							LabelProcess: {pr.Name}, LabelRun: {fmt.Sprint(r.Index + 1)}, LabelBuild: {r.Build},
						},
					})
				}
			}
		}
	}
	return p
}

// WriteTouched writes Touched(runs), gzipped, to w.
func WriteTouched(w io.Writer, runs []ip.Run) error {
	return Touched(runs).Write(w)
}

// HasTouched says whether any run measured what init touched.
func HasTouched(runs []ip.Run) bool {
	for _, r := range runs {
		for _, p := range r.Processes {
			if len(p.Touched) > 0 {
				return true
			}
		}
	}
	return false
}

package pprofout

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/initprof/initprof/profile/flame"
)

// Flame is a saved profile made ready to draw (`initprof flamegraph`): its
// folded stacks after the label filters, and a base profile's for a
// differential graph.
type Flame struct {
	Path, BasePath string // BasePath "" draws a plain flamegraph
	Cur, Base      flame.Folded
	// Total is the profile's samples (or ns) before filtering.
	Total   int64
	Filters map[string]string
	// Value is the value index the frames are weighted by (UnitName).
	Value int
}

// LoadFlame reads the profile at path (a cpu.pb.gz, offcpu.pb.gz or
// stacks.folded), and base when not "", keeping the samples that match
// filters (label → value). value weights the frames: "samples" (counts),
// "time" ("cpu" and "offcpu" too: the profile's nanoseconds), or "auto" (or
// ""): samples for a CPU profile, time for an off-CPU one. Every error is
// the caller's input: a missing or unreadable profile, a filter that
// matches nothing, a filter on folded text, an unknown value.
func LoadFlame(path, base string, filters map[string]string, value string) (*Flame, error) {
	vi := 0
	switch value {
	case "samples":
	case "cpu", "offcpu", "time":
		vi = 1
	case "auto", "":
		vi = -1
	default:
		return nil, fmt.Errorf("--value %q: want samples, time or auto", value)
	}
	f := &Flame{Path: path, BasePath: base, Filters: filters}
	var err error
	if f.Cur, f.Total, f.Value, err = LoadFolded(path, filters, vi); err != nil {
		return nil, err
	}
	if base != "" {
		if f.Base, _, _, err = LoadFolded(base, filters, f.Value); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Unit names what the frames are weighted by.
func (f *Flame) Unit() string { return UnitName(f.Value) }

// Subtitle says what the graph holds: the filters and how much of the
// profile they kept, e.g. "phase=relocate — 10 samples of 15".
func (f *Flame) Subtitle() string {
	sub := DescribeFilters(f.Filters)
	if sub == "" {
		sub = "all samples"
	}
	sub += fmt.Sprintf(" — %d %s", f.Cur.Total(), f.Unit())
	if f.Total > f.Cur.Total() {
		sub += fmt.Sprintf(" of %d", f.Total)
	}
	return sub
}

// Title is the graph's default title: the profile's file name, "A vs B"
// for a differential graph.
func (f *Flame) Title() string {
	if f.BasePath != "" {
		return fmt.Sprintf("%s vs %s", filepath.Base(f.Path), filepath.Base(f.BasePath))
	}
	return filepath.Base(f.Path)
}

// Write draws f to w: folded text when folded, else an SVG flamegraph,
// differential when f has a base. title "" is f.Title().
func (f *Flame) Write(w io.Writer, folded bool, title string, width int) error {
	if title == "" {
		title = f.Title()
	}
	switch {
	case folded:
		return f.Cur.Write(w)
	case f.BasePath != "":
		return flame.WriteDiffSVG(w, f.Base, f.Cur, flame.Options{Title: title, Subtitle: f.Subtitle() + fmt.Sprintf("; base %d", f.Base.Total()), Width: width, Unit: f.Unit()})
	default:
		return flame.WriteSVG(w, f.Cur, flame.Options{Title: title, Subtitle: f.Subtitle(), Width: width, Unit: f.Unit()})
	}
}

// OutputError is a flamegraph that could not be written to its file: the
// caller's input (Flame.Save).
type OutputError struct {
	Path string
	Err  error
}

func (e *OutputError) Error() string { return fmt.Sprintf("cannot write %s: %v", e.Path, e.Err) }
func (e *OutputError) Unwrap() error { return e.Err }

// Save draws f (Write) into the file out, or to stdout when out is "-",
// and returns where it went. out "" is FlameFileName's default for f (its
// phase filter, its base). A file that cannot be written is an
// *OutputError; nothing is written when drawing fails.
func (f *Flame) Save(out string, stdout io.Writer, folded bool, title string, width int) (string, error) {
	if out == "" {
		out = FlameFileName(folded, f.BasePath != "", f.Filters[LabelPhase])
	}
	var buf bytes.Buffer
	if err := f.Write(&buf, folded, title, width); err != nil {
		return "", err
	}
	if out == "-" {
		_, err := stdout.Write(buf.Bytes())
		return out, err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", &OutputError{Path: out, Err: err}
	}
	return out, nil
}

// Filters are the label filters of `initprof flamegraph`'s --phase,
// --process, --build and --run; "" filters nothing.
func Filters(phase, process, build, run string) map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{LabelPhase: phase, LabelProcess: process, LabelBuild: build, LabelRun: run} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// FlameFileName is the default output file of `initprof flamegraph`:
// stacks.folded, flame-diff.svg, flame-PHASE.svg or flame.svg.
func FlameFileName(folded, diff bool, phase string) string {
	switch {
	case folded:
		return "stacks.folded"
	case diff:
		return "flame-diff.svg"
	case phase != "":
		return "flame-" + sanitize(phase) + ".svg"
	}
	return "flame.svg"
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

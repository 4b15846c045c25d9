// Package outputs is the one call a sampling run needs after the fact: unwind
// and symbolize the raw samples, label each with its process, phase, run and
// build, and write every sampling output into the run's --out directory
// (cpu.pb.gz, stacks.folded, flame.svg, flame-<phase>.svg, trace.json).
package outputs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/flame"
	"github.com/initprof/initprof/profile/pprofout"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/symbolize"
	"github.com/initprof/initprof/profile/trace"
	"github.com/initprof/initprof/profile/unwind"
)

// Resolver unwinds and symbolizes samples; keep one per invocation so files
// are parsed once across all runs.
type Resolver struct {
	U *unwind.Unwinder
	S *symbolize.Symbolizer
}

// NewResolver returns a Resolver reading files through pathFor (nil: host
// paths as recorded), e.g. to look inside a container's rootfs.
func NewResolver(pathFor func(sample.Mapping) string) *Resolver {
	r := &Resolver{U: unwind.New(), S: symbolize.New()}
	r.U.PathFor, r.S.PathFor = pathFor, pathFor
	return r
}

// Stacks unwinds, symbolizes and labels the raw samples of one run: Process
// and Phase come from the run's process with the sample's PID (its phases by
// profile.Phases), Run is the run index, Build the run's build, Weight
// 1e9/hz.
func (r *Resolver) Stacks(raws []sample.RawSample, maps map[uint32][]sample.Mapping, run profile.Run, hz int) []sample.Stack {
	stacks := symbolize.Resolve(r.U, r.S, raws, maps)
	Label(stacks, run, hz)
	return stacks
}

// Label fills the labels of stacks from run (see Resolver.Stacks). Samples of
// a PID not in run keep Process "pid N" and no phase.
func Label(stacks []sample.Stack, run profile.Run, hz int) {
	type proc struct {
		name  string
		spans []profile.Span
	}
	byPID := map[uint32]proc{}
	for _, p := range run.Processes {
		byPID[uint32(p.PID)] = proc{p.Name, profile.Phases(p)}
	}
	var w int64
	if hz > 0 {
		w = 1e9 / int64(hz)
	}
	for i := range stacks {
		st := &stacks[i]
		if p, ok := byPID[st.PID]; ok {
			st.Process = p.name
			st.Phase = profile.PhaseAt(p.spans, st.MonoNs)
		} else {
			st.Process = "pid " + strconv.Itoa(int(st.PID))
		}
		st.Run = strconv.Itoa(run.Index)
		st.Build = run.Build
		if st.Weight == 0 {
			st.Weight = w
		}
	}
}

// Input is what Write needs.
type Input struct {
	Stacks []sample.Stack
	// Processes and Slices go into trace.json (phases, API calls).
	Processes []trace.Process
	Slices    []trace.Slice
	Meta      pprofout.Meta
	// Title heads the flamegraphs, e.g. "cext (build a), 10 runs at 1 kHz".
	Title string
	// OriginNs is time zero of trace.json (e.g. INIT start); 0: earliest.
	OriginNs int64
	// OffCPU are off-CPU stacks (each weighted by its time off the CPU);
	// when present they get their own offcpu.pb.gz, offcpu.folded and
	// flame-offcpu.svg.
	OffCPU []sample.Stack
}

// Write writes cpu.pb.gz, stacks.folded, flame.svg, one flame-<phase>.svg per
// phase present in the labels, and trace.json into dir, and returns the paths
// written.
func Write(dir string, in Input) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s: %w", dir, err)
	}
	var written []string
	file := func(name string, write func(path string) error) error {
		p := filepath.Join(dir, name)
		if err := write(p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, p)
		return nil
	}
	if err := file("cpu.pb.gz", func(p string) error { return pprofout.WriteFile(p, in.Stacks, in.Meta) }); err != nil {
		return written, err
	}
	all := flame.FromStacks(in.Stacks, nil)
	if err := file("stacks.folded", func(p string) error { return writeWith(p, all.Write) }); err != nil {
		return written, err
	}
	sub := fmt.Sprintf("%d samples, %.1f %% unwound to a root frame", len(in.Stacks), 100*completeShare(in.Stacks))
	if err := file("flame.svg", func(p string) error {
		return writeWith(p, func(f io.Writer) error {
			return flame.WriteSVG(f, all, flame.Options{Title: orDefault(in.Title, "init") + " — whole init", Subtitle: sub})
		})
	}); err != nil {
		return written, err
	}
	for _, ph := range phases(in.Stacks) {
		ph := ph
		f := flame.FromStacks(in.Stacks, func(s sample.Stack) bool { return s.Phase == ph })
		name := "flame-" + safe(ph) + ".svg"
		if err := file(name, func(p string) error {
			return writeWith(p, func(w io.Writer) error {
				return flame.WriteSVG(w, f, flame.Options{Title: orDefault(in.Title, "init") + " — phase " + ph,
					Subtitle: fmt.Sprintf("%d of %d samples", f.Total(), len(in.Stacks))})
			})
		}); err != nil {
			return written, err
		}
	}
	if len(in.OffCPU) > 0 {
		if err := writeOffCPU(in, file); err != nil {
			return written, err
		}
	}
	if err := file("trace.json", func(p string) error {
		return trace.WriteFile(p, trace.Trace{OriginNs: in.OriginNs, Processes: in.Processes, Slices: in.Slices, Samples: in.Stacks})
	}); err != nil {
		return written, err
	}
	return written, nil
}

// writeOffCPU writes the off-CPU outputs: pprof with sample type
// offcpu/nanoseconds, folded stacks weighted in ns and one flamegraph whose
// widths are time off the CPU, the leaf frame saying blocked or runnable.
func writeOffCPU(in Input, file func(string, func(string) error) error) error {
	meta := in.Meta
	meta.Value = "offcpu"
	meta.PeriodNs = 1
	if err := file("offcpu.pb.gz", func(p string) error { return pprofout.WriteFile(p, in.OffCPU, meta) }); err != nil {
		return err
	}
	f := flame.FromStacksWeighted(in.OffCPU, nil) // ns
	if err := file("offcpu.folded", func(p string) error { return writeWith(p, f.Write) }); err != nil {
		return err
	}
	var blocked, runnable int64
	for _, s := range in.OffCPU {
		if len(s.Frames) > 0 && s.Frames[0].Func == sample.FrameRunnable {
			runnable += s.Weight
		} else {
			blocked += s.Weight
		}
	}
	sub := fmt.Sprintf("%d off-CPU intervals: %.2f ms blocked, %.2f ms runnable (widths are time off the CPU)",
		len(in.OffCPU), float64(blocked)/1e6, float64(runnable)/1e6)
	return file("flame-offcpu.svg", func(p string) error {
		return writeWith(p, func(w io.Writer) error {
			return flame.WriteSVG(w, f, flame.Options{Title: orDefault(in.Title, "init") + " — off-CPU", Subtitle: sub, Unit: "ns off-CPU"})
		})
	})
}

func writeWith(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func phases(stacks []sample.Stack) []string {
	seen := map[string]bool{}
	for _, s := range stacks {
		if s.Phase != "" {
			seen[s.Phase] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func completeShare(stacks []sample.Stack) float64 {
	if len(stacks) == 0 {
		return 0
	}
	n := 0
	for _, s := range stacks {
		if s.Complete {
			n++
		}
	}
	return float64(n) / float64(len(stacks))
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '+', r == '.':
			return r
		}
		return '_'
	}, s)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

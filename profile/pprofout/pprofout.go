// Package pprofout writes symbolized CPU stacks as a google/pprof profile
// (cpu.pb.gz), the format `go tool pprof`, Grafana Pyroscope, Speedscope and
// most profilers read. Each sample carries the labels phase, process, run and
// build, so `go tool pprof -tagfocus phase=relocate cpu.pb.gz` shows one phase
// of init, and `-tagfocus build=b` one build of a comparison.
package pprofout

import (
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/initprof/initprof/profile/flame"
	"github.com/initprof/initprof/profile/sample"
)

// Label keys of every sample.
const (
	LabelPhase   = "phase"
	LabelProcess = "process"
	LabelRun     = "run"
	LabelBuild   = "build"
)

// Meta describes the sampling.
type Meta struct {
	// PeriodNs is the time one sample stands for (1e9 / sampling Hz); it is
	// used for stacks whose Weight is 0.
	PeriodNs int64
	// StartNs and DurationNs bound the profile (CLOCK_MONOTONIC ns).
	StartNs, DurationNs int64
	Comments            []string
	// Value names the time sample type: "cpu" (default) or "offcpu" (time
	// off the CPU, each sample weighted by its interval).
	Value string
}

type mkey struct {
	pid   uint32
	start uint64
	path  string
}

// Build turns stacks into a pprof profile: sample types samples/count and
// cpu/nanoseconds, one pprof mapping per process mapping, locations with their
// function, file and line, and the four labels plus numeric pid and tid.
func Build(stacks []sample.Stack, meta Meta) *profile.Profile {
	value := meta.Value
	if value == "" {
		value = "cpu"
	}
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: value, Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: value, Unit: "nanoseconds"},
		Period:        meta.PeriodNs,
		TimeNanos:     monoToWall(meta.StartNs),
		DurationNanos: meta.DurationNs,
		Comments:      meta.Comments,
	}
	type lkey struct {
		mapping uint64
		addr    uint64
		fn      string
	}
	type fkey struct{ name, file string }
	maps := map[mkey]*profile.Mapping{}
	locs := map[lkey]*profile.Location{}
	funcs := map[fkey]*profile.Function{}
	var kernel *profile.Mapping
	mappingFor := func(pid uint32, fr sample.Frame) *profile.Mapping {
		if fr.Kernel {
			if kernel == nil {
				kernel = &profile.Mapping{ID: uint64(len(p.Mapping) + 1), File: "[kernel.kallsyms]", Limit: ^uint64(0), HasFunctions: true}
				p.Mapping = append(p.Mapping, kernel)
			}
			return kernel
		}
		m := fr.Mapping
		if m == nil {
			return nil
		}
		k := mkey{pid, m.Start, m.Path}
		if pm, ok := maps[k]; ok {
			return pm
		}
		pm := &profile.Mapping{ID: uint64(len(p.Mapping) + 1), Start: m.Start, Limit: m.End, Offset: m.Offset,
			File: m.Path, BuildID: m.BuildID, HasFunctions: true, HasFilenames: true, HasLineNumbers: true}
		maps[k] = pm
		p.Mapping = append(p.Mapping, pm)
		return pm
	}
	function := func(fr sample.Frame) *profile.Function {
		name := fr.Name()
		k := fkey{name, fr.File}
		if f, ok := funcs[k]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: fr.File}
		funcs[k] = f
		p.Function = append(p.Function, f)
		return f
	}
	for _, st := range stacks {
		w := st.Weight
		if w == 0 {
			w = meta.PeriodNs
		}
		s := &profile.Sample{Value: []int64{1, w}, Label: map[string][]string{}, NumLabel: map[string][]int64{
			"pid": {int64(st.PID)}, "tid": {int64(st.TID)},
		}}
		for k, v := range map[string]string{LabelPhase: st.Phase, LabelProcess: st.Process, LabelRun: st.Run, LabelBuild: st.Build} {
			if v != "" {
				s.Label[k] = []string{v}
			}
		}
		for _, fr := range st.Frames {
			pm := mappingFor(st.PID, fr)
			var mid uint64
			if pm != nil {
				mid = pm.ID
			}
			k := lkey{mid, fr.Addr, fr.Name()}
			loc, ok := locs[k]
			if !ok {
				loc = &profile.Location{ID: uint64(len(p.Location) + 1), Mapping: pm, Address: fr.Addr,
					Line: []profile.Line{{Function: function(fr), Line: int64(fr.Line)}}}
				locs[k] = loc
				p.Location = append(p.Location, loc)
			}
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	mainFirst(p, stacks, maps)
	return p
}

// mainFirst moves the main executable's mapping to the front: pprof treats
// Mapping[0] as the profiled binary (its "File:" line, -symbolize). The
// executable is the one holding main, or else the outermost user frame.
func mainFirst(p *profile.Profile, stacks []sample.Stack, maps map[mkey]*profile.Mapping) {
	var exe *sample.Mapping
	var pid uint32
	best := 0
	consider := func(m *sample.Mapping, p uint32, score int) {
		if score > best {
			exe, pid, best = m, p, score
		}
	}
	for _, st := range stacks {
		outer := true
		for i := len(st.Frames) - 1; i >= 0 && best < 3; i-- {
			fr := st.Frames[i]
			if fr.Kernel || fr.Mapping == nil {
				continue
			}
			switch {
			case fr.Func == "main" || fr.Func == "main.main":
				consider(fr.Mapping, st.PID, 3)
			case outer && !strings.Contains(fr.Mapping.Path, "ld-linux"):
				consider(fr.Mapping, st.PID, 2)
			case outer:
				consider(fr.Mapping, st.PID, 1)
			}
			outer = false
		}
		if best == 3 {
			break
		}
	}
	if exe == nil {
		return
	}
	first, ok := maps[mkey{pid, exe.Start, exe.Path}]
	if !ok {
		return
	}
	out := []*profile.Mapping{first}
	for _, m := range p.Mapping {
		if m != first {
			out = append(out, m)
		}
	}
	for i, m := range out {
		m.ID = uint64(i + 1)
	}
	p.Mapping = out
}

// Write writes stacks as a gzipped pprof profile to w.
func Write(w io.Writer, stacks []sample.Stack, meta Meta) error {
	p := Build(stacks, meta)
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("building pprof profile: %w", err)
	}
	return p.Write(w)
}

// WriteFile writes cpu.pb.gz (or any path).
func WriteFile(path string, stacks []sample.Stack, meta Meta) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, stacks, meta); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read parses a pprof profile (gzipped or not) from path, with an error that
// names the file when it is not one.
func Read(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s is not a pprof profile: %v", path, err)
	}
	return p, nil
}

// Folded folds p's samples into FlameGraph stacks, keeping only samples whose
// string labels match every key=value of want (e.g. {"phase": "relocate"}),
// weighted by the sample value at index vi (0: sample counts). Inlined
// functions in one location become separate frames, as in pprof's own views.
func Folded(p *profile.Profile, want map[string]string, vi int) flame.Folded {
	out := flame.Folded{}
	for _, s := range p.Sample {
		if !matches(s, want) {
			continue
		}
		var names []string
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			kernel := loc.Mapping != nil && strings.HasPrefix(loc.Mapping.File, "[kernel")
			for j := len(loc.Line) - 1; j >= 0; j-- {
				n := "??"
				if loc.Line[j].Function != nil {
					n = loc.Line[j].Function.Name
				}
				n = strings.ReplaceAll(n, ";", ":")
				if kernel {
					n += flame.KernelSuffix
				}
				names = append(names, n)
			}
			if len(loc.Line) == 0 {
				names = append(names, fmt.Sprintf("0x%x", loc.Address))
			}
		}
		if len(names) == 0 || vi >= len(s.Value) {
			continue
		}
		out[strings.Join(names, ";")] += s.Value[vi]
	}
	return out
}

func matches(s *profile.Sample, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, x := range s.Label[k] {
			if x == v {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// LabelValues lists the distinct values of a string label in p, sorted
// (e.g. the phases present, for an error message that says which exist).
func LabelValues(p *profile.Profile, key string) []string {
	seen := map[string]bool{}
	for _, s := range p.Sample {
		for _, v := range s.Label[key] {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// monoToWall turns a CLOCK_MONOTONIC stamp from this boot into Unix time, so
// pprof prints when the profile was taken rather than a date in 1970. 0 stays 0.
func monoToWall(mono int64) int64 {
	if mono == 0 {
		return 0
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return mono
	}
	return time.Now().UnixNano() - (ts.Nano() - mono)
}

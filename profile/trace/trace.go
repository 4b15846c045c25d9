// Package trace writes a cold start as Chrome/Perfetto trace-event JSON
// (trace.json): open it in ui.perfetto.dev or chrome://tracing to see each
// process of a run as its own track, its init phases as slices, the Lambda API
// calls as slices, and every CPU sample as an instant named after its leaf
// frame — the timeline and the flamegraph in one view.
//
// The format is the JSON Object Format of the Trace Event Format document:
// {"traceEvents":[...], "displayTimeUnit":"ns"}, timestamps in microseconds.
package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/sample"
)

// Slice is a generic span on a process's track: an API call, a syscall, a
// user checkpoint range.
type Slice struct {
	PID            int
	Name, Cat      string
	StartNs, EndNs int64
	Args           map[string]any
}

// Process is one process of the run.
type Process struct {
	PID    int
	Name   string // extension name, "runtime", "platform"
	Phases []profile.Span
}

// Trace is everything one trace.json shows.
type Trace struct {
	// OriginNs is CLOCK_MONOTONIC time zero of the trace (e.g. initStart);
	// 0 means the earliest timestamp present.
	OriginNs  int64
	Processes []Process
	Slices    []Slice
	Samples   []sample.Stack
	// StackDepth is how many frames of each sample go into its instant's args
	// (10 when 0).
	StackDepth int
}

// Event is one trace event (exported so tests and tools can decode a file).
type Event struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`
	Dur  *float64       `json:"dur,omitempty"`
	PID  int            `json:"pid"`
	TID  int            `json:"tid"`
	S    string         `json:"s,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// File is the JSON object format.
type File struct {
	TraceEvents     []Event `json:"traceEvents"`
	DisplayTimeUnit string  `json:"displayTimeUnit"`
}

// Virtual thread ids for a process's phases and API calls: slices on one
// track must nest, and API calls straddle phase boundaries, so each kind gets
// its own track inside the process.
func phaseTID(pid int) int { return 1<<30 + 2*pid }
func apiTID(pid int) int   { return 1<<30 + 2*pid + 1 }

// Build turns t into trace events.
func Build(t Trace) File {
	origin := t.OriginNs
	if origin == 0 {
		origin = earliest(t)
	}
	us := func(ns int64) float64 { return float64(ns-origin) / 1e3 }
	depth := t.StackDepth
	if depth == 0 {
		depth = 10
	}
	var ev []Event
	named := map[int]bool{}
	meta := func(pid int, name string) {
		if named[pid] {
			return
		}
		named[pid] = true
		ev = append(ev,
			Event{Name: "process_name", Ph: "M", PID: pid, TID: pid, Args: map[string]any{"name": fmt.Sprintf("%s (pid %d)", name, pid)}},
			Event{Name: "process_sort_index", Ph: "M", PID: pid, TID: pid, Args: map[string]any{"sort_index": len(named)}},
		)
	}
	procs := append([]Process(nil), t.Processes...)
	sort.SliceStable(procs, func(i, j int) bool { return firstNs(procs[i]) < firstNs(procs[j]) })
	for _, p := range procs {
		meta(p.PID, p.Name)
		if len(p.Phases) > 0 {
			ev = append(ev, Event{Name: "thread_name", Ph: "M", PID: p.PID, TID: phaseTID(p.PID), Args: map[string]any{"name": "phases"}})
		}
		for _, s := range p.Phases {
			d := float64(s.EndNs-s.StartNs) / 1e3
			ev = append(ev, Event{Name: s.Name, Cat: "phase", Ph: "X", Ts: us(s.StartNs), Dur: &d, PID: p.PID, TID: phaseTID(p.PID),
				Args: map[string]any{"from": s.From, "to": s.To}})
		}
	}
	apiNamed := map[int]bool{}
	for _, s := range t.Slices {
		meta(s.PID, fmt.Sprintf("pid %d", s.PID))
		if !apiNamed[s.PID] {
			apiNamed[s.PID] = true
			ev = append(ev, Event{Name: "thread_name", Ph: "M", PID: s.PID, TID: apiTID(s.PID), Args: map[string]any{"name": "calls"}})
		}
		d := float64(s.EndNs-s.StartNs) / 1e3
		ev = append(ev, Event{Name: s.Name, Cat: orDefault(s.Cat, "api"), Ph: "X", Ts: us(s.StartNs), Dur: &d, PID: s.PID, TID: apiTID(s.PID), Args: s.Args})
	}
	threadNamed := map[[2]int]bool{}
	for _, st := range t.Samples {
		pid, tid := int(st.PID), int(st.TID)
		meta(pid, orDefault(st.Process, fmt.Sprintf("pid %d", pid)))
		if !threadNamed[[2]int{pid, tid}] {
			threadNamed[[2]int{pid, tid}] = true
			ev = append(ev, Event{Name: "thread_name", Ph: "M", PID: pid, TID: tid, Args: map[string]any{"name": fmt.Sprintf("samples (tid %d)", tid)}})
		}
		leaf := "??"
		var frames []string
		for _, fr := range st.Frames {
			if leaf == "??" && !fr.Kernel {
				leaf = fr.Name()
			}
			if len(frames) < depth {
				frames = append(frames, fr.Name())
			}
		}
		if leaf == "??" && len(st.Frames) > 0 {
			leaf = st.Frames[0].Name()
		}
		args := map[string]any{"stack": strings.Join(frames, " <- "), "complete": st.Complete}
		if st.Phase != "" {
			args["phase"] = st.Phase
		}
		ev = append(ev, Event{Name: leaf, Cat: "sample", Ph: "i", S: "t", Ts: us(st.MonoNs), PID: pid, TID: tid, Args: args})
	}
	return File{TraceEvents: ev, DisplayTimeUnit: "ns"}
}

// Write writes t as trace-event JSON.
func Write(w io.Writer, t Trace) error {
	enc := json.NewEncoder(w)
	return enc.Encode(Build(t))
}

// WriteFile writes trace.json (or any path).
func WriteFile(path string, t Trace) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, t); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func firstNs(p Process) int64 {
	if len(p.Phases) == 0 {
		return 1<<63 - 1
	}
	return p.Phases[0].StartNs
}

func earliest(t Trace) int64 {
	var m int64 = 1<<63 - 1
	for _, p := range t.Processes {
		for _, s := range p.Phases {
			m = min(m, s.StartNs)
		}
	}
	for _, s := range t.Slices {
		m = min(m, s.StartNs)
	}
	for _, s := range t.Samples {
		m = min(m, s.MonoNs)
	}
	if m == 1<<63-1 {
		return 0
	}
	return m
}

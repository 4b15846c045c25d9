package profile

import (
	"encoding/json"
	"fmt"
	"io"
)

// jsonSpan is a Span with its duration spelled out for readers without arithmetic.
type jsonSpan struct {
	Span
	DurNs int64 `json:"dur_ns"`
}

type jsonProcess struct {
	Process
	Phases     []jsonSpan `json:"phases"`
	Missing    []string   `json:"missing,omitempty"`
	OutOfOrder []string   `json:"out_of_order,omitempty"`
}

type jsonRun struct {
	Run
	InitDurationNs int64         `json:"init_duration_ns"`
	Critical       *RunCritical  `json:"critical_path,omitempty"`
	Processes      []jsonProcess `json:"processes"`
}

type jsonResults struct {
	*Report
	Runs []jsonRun `json:"runs"`
}

// WriteJSON writes results.json: the summary fields of the Report plus every run
// with every checkpoint and every phase. Field names are stable within
// ResultsSchema ("schema" says which); times are nanoseconds.
func (r *Report) WriteJSON(w io.Writer) error {
	out := jsonResults{Report: r, Runs: make([]jsonRun, 0, len(r.Runs))}
	for _, run := range r.Runs {
		jr := jsonRun{Run: run, Processes: make([]jsonProcess, 0, len(run.Processes))}
		jr.InitDurationNs, _ = run.InitDurationNs()
		if rc, ok := CriticalPath(run); ok {
			jr.Critical = &rc
		}
		for _, p := range run.Processes {
			jp := jsonProcess{Process: p, Phases: []jsonSpan{}, Missing: Missing(p), OutOfOrder: OutOfOrder(p)}
			if jp.Checkpoints == nil {
				jp.Checkpoints = []Checkpoint{}
			}
			for _, s := range Phases(p) {
				jp.Phases = append(jp.Phases, jsonSpan{Span: s, DurNs: s.DurNs()})
			}
			jr.Processes = append(jr.Processes, jp)
		}
		out.Runs = append(out.Runs, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// ReadResults reads a results.json written by WriteJSON back into a Report (the
// runs are re-aggregated, so a newer initprof recomputes every figure; the
// measured probe overhead and the notes are kept). It fails with a one-line error naming the
// problem: not JSON, or another schema.
func ReadResults(r io.Reader) (*Report, error) {
	var doc struct {
		Schema   string    `json:"schema"`
		Overhead *Overhead `json:"probe_overhead"`
		Notes    []string  `json:"notes"`
		Runs     []struct {
			Run
			Processes []Process `json:"processes"`
		} `json:"runs"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("results.json: not valid JSON: %w", err)
	}
	if doc.Schema != ResultsSchema {
		return nil, fmt.Errorf("results.json: schema %q, want %q (written by another initprof version?)", doc.Schema, ResultsSchema)
	}
	runs := make([]Run, 0, len(doc.Runs))
	for _, jr := range doc.Runs {
		run := jr.Run
		run.Processes = jr.Processes
		runs = append(runs, run)
	}
	rep := Aggregate(runs)
	rep.Overhead = doc.Overhead
	// The engine's notes (the CPU and storage models, the sandbox) are
	// not in the runs: keep them, after the ones re-aggregation made.
	have := map[string]bool{}
	for _, n := range rep.Notes {
		have[n] = true
	}
	for _, n := range doc.Notes {
		if !have[n] {
			rep.Notes = append(rep.Notes, n)
		}
	}
	return rep, nil
}

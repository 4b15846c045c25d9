package export

import (
	"encoding/json"
	"io"
	"math"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/stats"
)

// HyperfineResult is one entry of hyperfine's --export-json "results":
// the fields hyperfine writes, in seconds, so that scripts written for
// hyperfine (its plot_*.py, advanced_statistics.py, CI trackers) read
// initprof's builds as commands. What differs, because a cold start is
// not a command line:
//
//   - command is the build's name (NAME of NAME=PATH), not a shell command;
//   - times, mean, median, min, max and stddev are Lambda's Init Duration
//     (initStart → the last /next), not the wall time of a process;
//     stddev is the sample standard deviation (n−1), null with one run, as
//     hyperfine writes it;
//   - user is the mean on-CPU time of every process of the sandbox during
//     init (the probes' sched accounting, user and kernel time together)
//     and system is 0: the probes do not split the two;
//   - exit_codes is 0 for a run whose init succeeded, 1 otherwise.
type HyperfineResult struct {
	Command   string    `json:"command"`
	Mean      float64   `json:"mean"`
	Stddev    *float64  `json:"stddev"`
	Median    float64   `json:"median"`
	User      float64   `json:"user"`
	System    float64   `json:"system"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Times     []float64 `json:"times"`
	ExitCodes []int     `json:"exit_codes"`
}

// Hyperfine builds the hyperfine results of builds (those with an error or
// no runs with an Init Duration are left out, as hyperfine leaves out a
// command that failed).
func Hyperfine(builds []profile.BuildRuns) []HyperfineResult {
	out := []HyperfineResult{}
	for _, b := range builds {
		if b.Err != "" {
			continue
		}
		h := HyperfineResult{Command: b.Build, Times: []float64{}, ExitCodes: []int{}}
		var cpu float64
		for _, r := range b.Runs {
			d, ok := r.InitDurationNs()
			if !ok {
				continue
			}
			h.Times = append(h.Times, float64(d)/1e9)
			code := 0
			if r.InitStatus != "" && r.InitStatus != "success" {
				code = 1
			}
			h.ExitCodes = append(h.ExitCodes, code)
			for _, p := range r.Processes {
				for _, ns := range p.OnCPUNs {
					cpu += float64(ns)
				}
			}
		}
		if len(h.Times) == 0 {
			continue
		}
		s := stats.Summarize(h.Times)
		h.Mean, h.Median, h.Min, h.Max = s.Mean, s.Median, s.Min, s.Max
		h.User = cpu / float64(len(h.Times)) / 1e9
		if len(h.Times) > 1 {
			var ss float64
			for _, t := range h.Times {
				ss += (t - s.Mean) * (t - s.Mean)
			}
			sd := math.Sqrt(ss / float64(len(h.Times)-1))
			h.Stddev = &sd
		}
		out = append(out, h)
	}
	return out
}

// WriteHyperfine writes {"results": [...]} as hyperfine --export-json does.
func WriteHyperfine(w io.Writer, builds []profile.BuildRuns) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Results []HyperfineResult `json:"results"`
	}{Hyperfine(builds)})
}

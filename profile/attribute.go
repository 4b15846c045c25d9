package profile

import "sort"

// Interval is a half-open time range [StartNs, EndNs) in CLOCK_MONOTONIC ns, for
// example a stretch a thread spent on CPU, runnable or blocked.
type Interval struct {
	StartNs int64 `json:"start_ns"`
	EndNs   int64 `json:"end_ns"`
}

// PhaseAt returns the name of the span that contains t (StartNs ≤ t < EndNs),
// or "" when t is outside every span. spans must be ordered and contiguous as
// Phases returns them. It is how CPU samples get their `phase` pprof label.
func PhaseAt(spans []Span, t int64) string {
	i := sort.Search(len(spans), func(i int) bool { return spans[i].EndNs > t })
	if i < len(spans) && spans[i].StartNs <= t {
		return spans[i].Name
	}
	return ""
}

// TimePerPhase sums, per span name, how much of the intervals overlaps each span:
// the way on-CPU, runnable and blocked time are split into phases
// (Process.OnCPUNs and friends). Time outside every span is not counted.
// Overlapping intervals are counted as often as they overlap.
func TimePerPhase(spans []Span, ivs []Interval) map[string]int64 {
	out := map[string]int64{}
	for _, iv := range ivs {
		if iv.EndNs <= iv.StartNs {
			continue
		}
		// First span that ends after the interval starts.
		i := sort.Search(len(spans), func(i int) bool { return spans[i].EndNs > iv.StartNs })
		for ; i < len(spans) && spans[i].StartNs < iv.EndNs; i++ {
			lo, hi := max(iv.StartNs, spans[i].StartNs), min(iv.EndNs, spans[i].EndNs)
			if hi > lo {
				out[spans[i].Name] += hi - lo
			}
		}
	}
	return out
}

// CountPerPhase counts instants (page faults, say) per span name; instants
// outside every span are not counted.
func CountPerPhase(spans []Span, at []int64) map[string]int64 {
	out := map[string]int64{}
	for _, t := range at {
		if n := PhaseAt(spans, t); n != "" {
			out[n]++
		}
	}
	return out
}

package orderfile

import (
	"sort"

	"github.com/initprof/initprof/profile/touched"
)

// Merge turns the symbol first touches of several cold starts (one slice
// per run, as touched.SymbolTouches gives them) into one order: each
// symbol at the median of its first-touch times, kept when at least
// minRuns runs touched it (minRuns <= 0: most runs, more than half).
//
// Why the median and a quorum: one cold start's order has noise (which
// thread ran first, a readahead that happened to arrive early), and a
// symbol only one run touched (a retry, a timer) is not init's; putting it
// among the hot ones would spread them over more pages.
func Merge(runs [][]touched.SymbolTouch, minRuns int) []Touch {
	if minRuns <= 0 {
		minRuns = len(runs)/2 + 1
	}
	type acc struct {
		times []int64
		t     touched.SymbolTouch
	}
	by := map[string]*acc{}
	for _, run := range runs {
		seen := map[string]bool{}
		for _, st := range run {
			if seen[st.Symbol] {
				continue
			}
			seen[st.Symbol] = true
			a := by[st.Symbol]
			if a == nil {
				a = &acc{t: st}
				by[st.Symbol] = a
			}
			a.times = append(a.times, st.FirstNs)
		}
	}
	var out []Touch
	for name, a := range by {
		if len(a.times) < minRuns {
			continue
		}
		sort.Slice(a.times, func(i, j int) bool { return a.times[i] < a.times[j] })
		n := len(a.times)
		med := a.times[n/2]
		if n%2 == 0 {
			med = (a.times[n/2-1] + a.times[n/2]) / 2
		}
		out = append(out, Touch{Symbol: name, FirstNs: med, Size: a.t.Size, Runs: n, Off: a.t.Off,
			Object: a.t.Section != "" && !isText(a.t.Section)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FirstNs != out[j].FirstNs {
			return out[i].FirstNs < out[j].FirstNs
		}
		if out[i].Off != out[j].Off {
			return out[i].Off < out[j].Off
		}
		return out[i].Symbol < out[j].Symbol
	})
	return out
}

// isText says whether a section holds code (".text", ".text.hot", ".init").
func isText(sec string) bool {
	switch sec {
	case ".init", ".fini", ".plt", ".plt.got", ".plt.sec":
		return true
	}
	return len(sec) >= 5 && sec[:5] == ".text"
}

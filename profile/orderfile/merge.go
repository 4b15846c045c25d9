package orderfile

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"sort"
	"strings"

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

// Result is an orderfile made from cold starts: what Make kept and why.
type Result struct {
	Kept    []Touch  // in first-touch order: the file's lines
	Skipped []string // touched but not defined by the binary to relink
	Runs    int      // cold starts merged
	MinRuns int      // touched in at least this many to be kept
	// Funcs and Objects count Kept by kind; Bytes sums their sizes.
	Funcs, Objects int
	Bytes          uint64
	// Extended counts the symbols that came first from a previous
	// orderfile (Extend).
	Extended int
}

// Make merges the runs' first touches (Merge) and keeps the symbols syms
// defines (Order).
func Make(runs [][]touched.SymbolTouch, syms *Symbols, minRuns int) *Result {
	if minRuns <= 0 {
		minRuns = len(runs)/2 + 1
	}
	r := &Result{Runs: len(runs), MinRuns: minRuns}
	r.Kept, r.Skipped = Order(Merge(runs, minRuns), syms)
	for _, k := range r.Kept {
		if k.Object {
			r.Objects++
		} else {
			r.Funcs++
		}
		r.Bytes += k.Size
	}
	return r
}

// Summary is one line for people: how much init touched and was kept.
func (r *Result) Summary() string {
	s := fmt.Sprintf("%d symbols in first-touch order (%d functions, %d data objects, %.1f KiB), each touched by init in at least %d of %d cold starts",
		len(r.Kept), r.Funcs, r.Objects, float64(r.Bytes)/1024, r.MinRuns, r.Runs)
	if r.Extended > 0 {
		s += fmt.Sprintf("; the first %d from the previous orderfile, %d new", r.Extended, len(r.Kept)-r.Extended)
	}
	if len(r.Skipped) > 0 {
		s += fmt.Sprintf("; %d touched symbols skipped (not defined by the binary to relink)", len(r.Skipped))
	}
	return s
}

// Extend puts the symbols of a previous orderfile (lld format: one symbol a
// line) first, in their order, and this profile's new ones after them.
//
// Why: the probes see the pages a process faulted on, and fault-around
// maps up to 16 cached pages around each fault without further faults, so
// one profile misses functions init ran on those pages. Profiling the
// relinked build (with symbols) finds the ones it missed, now faulted on
// away from the hot ones; extending the previous file with them, round
// after round, converges on what init runs. Symbols of prev the binary no
// longer defines are dropped.
func (r *Result) Extend(prev io.Reader, syms *Symbols) error {
	var head []Touch
	seen := map[string]bool{}
	sc := bufio.NewScanner(prev)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") || seen[name] {
			continue
		}
		seen[name] = true
		typ, ok := syms.Defined[name]
		if !ok {
			continue
		}
		head = append(head, Touch{Symbol: name, Object: typ == elf.STT_OBJECT, FirstNs: -1})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the previous orderfile: %w", err)
	}
	byName := map[string]Touch{}
	var tail []Touch
	for _, k := range r.Kept {
		if seen[k.Symbol] {
			byName[k.Symbol] = k
			continue
		}
		tail = append(tail, k)
	}
	for i, h := range head {
		if k, ok := byName[h.Symbol]; ok {
			head[i] = k // this profile's figures where it touched the symbol too
		}
	}
	r.Extended = len(head)
	r.Kept = append(head, tail...)
	r.Funcs, r.Objects, r.Bytes = 0, 0, 0
	for _, k := range r.Kept {
		if k.Object {
			r.Objects++
		} else {
			r.Funcs++
		}
		r.Bytes += k.Size
	}
	return nil
}

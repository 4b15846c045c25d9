package profile

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile/stats"
)

// WriteText writes report.txt: Init Duration and the critical path first (what
// Lambda bills and who decides it), then one phase table per process, then the
// verdict. Dropped events are announced at the top, loudly, because they make
// every number below suspect.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := "initprof run"
	if r.Build != "" {
		title += " — build " + r.Build
	}
	fmt.Fprintf(bw, "%s: %d runs\n", title, len(r.Runs))
	fmt.Fprintf(bw, "figures are median [p10 … p90] over runs; CLOCK_MONOTONIC\n\n")
	if r.Interrupted != nil {
		fmt.Fprintf(bw, "!!! INTERRUPTED after %d of %d runs: the figures below cover those runs only !!!\n\n", r.Interrupted.Runs, r.Interrupted.Planned)
	}
	if r.Dropped > 0 {
		fmt.Fprintf(bw, "!!! WARNING: %d PROBE EVENTS WERE DROPPED — checkpoints and phases below may be incomplete !!!\n\n", r.Dropped)
	}

	t := &table{left: 2}
	t.add("Init Duration", summaryCell(r.InitDuration))
	if len(r.InitStatus) > 0 {
		t.add("init status", countsCell(r.InitStatus))
	}
	t.add("critical path", criticalCell(r))
	if o := r.Overhead; o != nil {
		t.add("probe overhead", overheadCell(o))
	} else {
		t.add("probe overhead", "not measured")
	}
	_ = t.write(bw)

	for _, p := range r.Processes {
		fmt.Fprintln(bw)
		writeProcessText(bw, &p)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "\nnote: %s\n", n)
	}
	fmt.Fprintf(bw, "\nVERDICT: %s\n", r.Verdict)
	for _, p := range r.Processes {
		if p.Verdict != "" && p.Verdict != r.Verdict {
			fmt.Fprintf(bw, "VERDICT (%s): %s\n", p.Name, p.Verdict)
		}
	}
	return bw.Flush()
}

func writeProcessText(w io.Writer, p *ProcessReport) {
	label := p.Role + " " + p.Name
	if p.Role == RoleRuntime {
		label = "runtime"
	}
	fmt.Fprintf(w, "%s (%d runs)\n", label, p.Runs)
	hasCPU, hasFaults, hasMajor, hasRead, hasFetch := false, false, false, false, false
	for _, ph := range p.Phases {
		hasFetch = hasFetch || ph.FetchChunks.N > 0
		hasCPU = hasCPU || ph.OnCPU.N > 0 || ph.Runnable.N > 0 || ph.Blocked.N > 0
		hasFaults = hasFaults || ph.Faults.N > 0
		hasMajor = hasMajor || ph.MajorFaults.N > 0
		hasRead = hasRead || ph.BytesRead.N > 0
	}
	t := &table{left: 2, indent: "  "}
	head := []string{"phase", "from → to", "median", "p10", "p90", "share"}
	if hasCPU {
		head = append(head, "on-CPU", "runnable", "blocked")
	}
	if hasFaults {
		head = append(head, "faults")
	}
	if hasMajor {
		head = append(head, "majflt")
	}
	if hasRead {
		head = append(head, "read")
	}
	if hasFetch {
		head = append(head, "chunks", "fetch")
	}
	t.add(head...)
	for _, ph := range p.Phases {
		row := []string{ph.Name, ph.From + " → " + ph.To, fmtDur(ph.Dur.Median), fmtDur(ph.Dur.P10), fmtDur(ph.Dur.P90), shareCell(ph.Share, ph.Dur.N)}
		if hasCPU {
			row = append(row, durOrDash(ph.OnCPU), durOrDash(ph.Runnable), durOrDash(ph.Blocked))
		}
		if hasFaults {
			row = append(row, countOrDash(ph.Faults))
		}
		if hasMajor {
			row = append(row, countOrDash(ph.MajorFaults))
		}
		if hasRead {
			row = append(row, bytesOrDash(ph.BytesRead))
		}
		if hasFetch {
			row = append(row, countOrDash(ph.FetchChunks), durOrDash(ph.FetchWait))
		}
		t.add(row...)
	}
	t.add("")
	for _, a := range []struct {
		name, span string
		s          stats.Summary
	}{{AggLoad, "exec → entry", p.Load}, {AggInit, "entry → next", p.Init}, {AggTimeToReady, "exec → next", p.TimeToReady}} {
		if a.s.N == 0 {
			t.add(a.name, a.span, "n/a")
			continue
		}
		share := ""
		if a.name == AggLoad && p.TimeToReady.N > 0 {
			share = pct(p.LoadShare)
		}
		t.add(a.name, a.span, fmtDur(a.s.Median), fmtDur(a.s.P10), fmtDur(a.s.P90), share)
	}
	if p.LazyLoad.N > 0 && p.Load.N > 0 {
		// Lambda's lazy loader: code and data first touched after entry
		// are fetched then, so they are load too.
		t.add("lazy_load", "fetches after entry", fmtDur(p.LazyLoad.Median), fmtDur(p.LazyLoad.P10), fmtDur(p.LazyLoad.P90), "")
		t.add("lambda_load", "load + lazy_load", "", "", "", pct(p.LambdaLoadShare))
	}
	_ = t.write(w)
	writeTouchedText(w, p)
	if len(p.Levers) > 0 {
		fmt.Fprintf(w, "  levers, priced from these medians (the most each can change; compare measures it):\n")
		for _, l := range p.Levers {
			fmt.Fprintf(w, "    %-16s %s\n", l.Name, l.Text)
		}
	}
	if len(p.Missing) > 0 {
		fmt.Fprintf(w, "  missing checkpoints: %s\n", missingCell(p.Missing, p.Runs))
	}
	if len(p.OutOfOrder) > 0 {
		fmt.Fprintf(w, "  out of canonical order: %s\n", missingCell(p.OutOfOrder, p.Runs))
	}
	if p.Role == RoleExtension && p.SlackNs.N > 0 {
		fmt.Fprintf(w, "  ended init in %d of %d runs", p.EndedInit, p.Runs)
		if p.SlackNs.Median > 0 {
			fmt.Fprintf(w, "; init ended %s [%s … %s] after its /next", fmtDur(p.SlackNs.Median), fmtDur(p.SlackNs.P10), fmtDur(p.SlackNs.P90))
		}
		fmt.Fprintln(w)
	}
}

func summaryCell(s stats.Summary) string {
	if s.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s [%s … %s]  min %s  max %s  n=%d", fmtDur(s.Median), fmtDur(s.P10), fmtDur(s.P90), fmtDur(s.Min), fmtDur(s.Max), s.N)
}

func shareCell(share float64, n int) string {
	if n == 0 || share == 0 {
		return "–"
	}
	return pct(share)
}

func durOrDash(s stats.Summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmtDur(s.Median)
}

func countOrDash(s stats.Summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", s.Median)
}

// bytesOrDash is the median of a byte count in KiB or MiB (binary units, as
// page sizes are), "0" when nothing was read, "–" when not measured.
func bytesOrDash(s stats.Summary) string {
	if s.N == 0 {
		return "–"
	}
	return fmtBytes(s.Median)
}

func fmtBytes(b float64) string {
	switch {
	case b < 0.5:
		return "0"
	case b < 1<<20:
		return fmt.Sprintf("%.0f KiB", math.Max(1, math.Round(b/(1<<10))))
	default:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
}

func countsCell(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// missingCell lists "name (k of n runs)" ordered canonically, then by name.
func missingCell(m map[string]int, runs int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, iok := canonRank[keys[i]]
		rj, jok := canonRank[keys[j]]
		if iok && jok {
			return ri < rj
		}
		if iok != jok {
			return iok
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s (%d of %d runs)", k, m[k], runs)
	}
	return strings.Join(parts, ", ")
}

func criticalCell(r *Report) string {
	c := r.Critical
	if c.Leader == "" {
		return "unknown: no process's /next was seen"
	}
	who := whoName(c.Leader)
	s := fmt.Sprintf("%s ended init in %d of %d runs", who, c.EndedBy[c.Leader], len(c.Runs))
	if c.MarginNs.N > 0 {
		s += fmt.Sprintf(", %s [%s … %s] after %s", fmtDur(c.MarginNs.Median), fmtDur(c.MarginNs.P10), fmtDur(c.MarginNs.P90), whoName(c.RunnerUp))
	}
	if len(c.EndedBy) > 1 {
		s += " (" + countsCell(c.EndedBy) + ")"
	}
	return s
}

func overheadCell(o *Overhead) string {
	s := fmt.Sprintf("%+.3f ms median Init Duration", o.InitDeltaNs/1e6)
	if o.BaselineNs > 0 {
		s += fmt.Sprintf(" (%+.1f %%)", 100*o.InitDeltaNs/o.BaselineNs)
	}
	if o.PerEventNs > 0 {
		s += fmt.Sprintf(", %s per probe hit", fmtDur(o.PerEventNs))
	}
	if o.Method != "" {
		s += "; " + o.Method
	}
	return s
}

// whoName is how prose names a process key: "the runtime" or the extension's name.
func whoName(key string) string {
	switch key {
	case RoleRuntime:
		return "the runtime"
	case "":
		return "the next process"
	}
	return key
}

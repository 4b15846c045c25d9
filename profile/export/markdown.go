// Package export writes initprof's results in the formats other tools and
// people already read: GitHub-flavoured Markdown for a PR comment, and
// hyperfine's JSON for the scripts that plot or track hyperfine results.
// Like hyperfine's src/export, each format is one small file over one
// result type, and none of them measures anything.
package export

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/stats"
)

// CompareMarkdown writes c as a PR comment: a table of Init Duration and
// each process's load, init and time-to-ready per build (median, p10, p90,
// shift against the baseline with its CI, p-value and mark), the phases in
// a collapsed table below it, then the verdict lines. GitHub renders it
// as-is; it is plain Markdown elsewhere.
func CompareMarkdown(w io.Writer, c *profile.Comparison) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "### initprof compare: %d builds\n\n", len(c.Builds))
	if c.Interrupted != nil {
		fmt.Fprintf(bw, "> **Interrupted** after %d of %d rounds: the figures cover those runs only.\n\n", c.Interrupted.Runs, c.Interrupted.Planned)
	}
	for _, b := range c.Builds {
		if b.Err != "" {
			fmt.Fprintf(bw, "> build `%s` was not compared: %s\n\n", b.Name, cell(b.Err))
		}
	}
	var main, phases []profile.CompareRow
	for _, r := range c.Rows {
		switch r.Metric {
		case profile.AggInitDuration, profile.AggLoad, profile.AggInit, profile.AggTimeToReady:
			main = append(main, r)
		default:
			phases = append(phases, r)
		}
	}
	writeCompareTable(bw, c, main)
	fmt.Fprintf(bw, "\nshift vs `%s`: Hodges–Lehmann estimate, %.0f %% CI; p: Mann–Whitney U, two-sided; ~ means p ≥ %.2f\n", baseline(c), 100*c.Confidence, c.Alpha)
	if len(c.Verdicts) > 0 {
		fmt.Fprintln(bw)
	}
	for _, v := range c.Verdicts {
		fmt.Fprintf(bw, "**VERDICT** %s vs %s: %s\n\n", v.Other, v.Base, cell(v.Text))
	}
	if len(phases) > 0 {
		fmt.Fprintf(bw, "\n<details><summary>phases (%d rows)</summary>\n\n", len(phases))
		writeCompareTable(bw, c, phases)
		fmt.Fprintf(bw, "\n</details>\n")
	}
	if len(c.Notes) > 0 {
		fmt.Fprintf(bw, "\n<details><summary>notes</summary>\n\n")
		for _, n := range c.Notes {
			fmt.Fprintf(bw, "- %s\n", cell(n))
		}
		fmt.Fprintf(bw, "\n</details>\n")
	}
	return bw.Flush()
}

func baseline(c *profile.Comparison) string {
	for _, b := range c.Builds {
		if b.Err == "" {
			return b.Name
		}
	}
	return "the first build"
}

func writeCompareTable(bw *bufio.Writer, c *profile.Comparison, rows []profile.CompareRow) {
	fmt.Fprintf(bw, "| metric | build | median | p10 | p90 | shift | %.0f %% CI | p | |\n", 100*c.Confidence)
	fmt.Fprintf(bw, "|---|---|--:|--:|--:|--:|:-:|--:|--:|\n")
	for _, r := range rows {
		for i, cl := range r.Cells {
			label := ""
			if i == 0 {
				label = RowLabel(r)
				if r.Metric == profile.AggInitDuration {
					label = "**" + label + "**"
				}
			}
			if cl.Summary.N == 0 {
				fmt.Fprintf(bw, "| %s | %s | n/a | | | | | | |\n", label, cell(cl.Build))
				continue
			}
			shift, ci, p, mark := "", "", "", ""
			if cl.Shift != nil && cl.Test != nil {
				shift = r.FormatShift(cl.Shift.Estimate)
				ci = r.FormatShift(cl.Shift.Lo) + " … " + r.FormatShift(cl.Shift.Hi)
				p, mark = stats.FormatP(cl.Test.P), cl.Mark
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, cell(cl.Build),
				r.FormatValue(cl.Summary.Median), r.FormatValue(cl.Summary.P10), r.FormatValue(cl.Summary.P90),
				shift, ci, p, cell(mark))
		}
	}
}

// RowLabel names a comparison row as compare.txt does, with its process:
// "Init Duration", "datadog-agent load (exec→entry)", "runtime relocate".
func RowLabel(r profile.CompareRow) string {
	if r.Metric == profile.AggInitDuration {
		return "Init Duration"
	}
	return r.Process + " " + r.Label()
}

// ReportMarkdown writes one build's report (a run, or a merge of runs from
// several machines) as a PR comment: Init Duration and each process's
// load, init and time-to-ready, Init Duration per host and architecture
// when the runs came from more than one, and the verdict.
func ReportMarkdown(w io.Writer, r *profile.Report) error {
	bw := bufio.NewWriter(w)
	title := "initprof run"
	if r.Build != "" {
		title += ": " + r.Build
	}
	fmt.Fprintf(bw, "### %s (%d runs)\n\n", cell(title), len(r.Runs))
	if r.Interrupted != nil {
		fmt.Fprintf(bw, "> **Interrupted**: %s.\n\n", r.Interrupted)
	}
	fmt.Fprintf(bw, "| metric | median | p10 | p90 | runs |\n|---|--:|--:|--:|--:|\n")
	row := func(label string, s stats.Summary) {
		if s.N == 0 {
			fmt.Fprintf(bw, "| %s | n/a | | | 0 |\n", label)
			return
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %d |\n", label, profile.FormatDuration(s.Median), profile.FormatDuration(s.P10), profile.FormatDuration(s.P90), s.N)
	}
	row("**Init Duration**", r.InitDuration)
	for _, p := range r.Processes {
		row(cell(p.Name)+" load (exec→entry)", p.Load)
		row(cell(p.Name)+" init (entry→next)", p.Init)
		row(cell(p.Name)+" time_to_ready (exec→next)", p.TimeToReady)
	}
	if groups := ByMachine(r.Runs); len(groups) > 1 {
		fmt.Fprintf(bw, "\n| host | arch | runs | Init Duration median | p10 | p90 |\n|---|---|--:|--:|--:|--:|\n")
		for _, g := range groups {
			s := g.InitDuration
			fmt.Fprintf(bw, "| %s | %s | %d | %s | %s | %s |\n", cell(g.Host), cell(g.Arch), len(g.Runs),
				profile.FormatDuration(s.Median), profile.FormatDuration(s.P10), profile.FormatDuration(s.P90))
		}
	}
	fmt.Fprintf(bw, "\n**VERDICT**: %s\n", cell(r.Verdict))
	for _, p := range r.Processes {
		if p.Verdict != "" && p.Verdict != r.Verdict {
			fmt.Fprintf(bw, "\n**VERDICT** (%s): %s\n", cell(p.Name), cell(p.Verdict))
		}
	}
	return bw.Flush()
}

// Machine is the runs of one host and architecture.
type Machine struct {
	Host, Arch   string
	Runs         []profile.Run
	InitDuration stats.Summary
}

// ByMachine groups runs by their Host and Arch labels, sorted by arch then
// host: merged results keep apart what only a pooled median would hide.
func ByMachine(runs []profile.Run) []Machine {
	idx := map[[2]string]int{}
	var out []Machine
	for _, r := range runs {
		k := [2]string{r.Host, r.Arch}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Machine{Host: r.Host, Arch: r.Arch})
		}
		out[i].Runs = append(out[i].Runs, r)
	}
	for i := range out {
		var xs []float64
		for _, r := range out[i].Runs {
			if d, ok := r.InitDurationNs(); ok {
				xs = append(xs, float64(d))
			}
		}
		out[i].InitDuration = stats.Summarize(xs)
		if out[i].Host == "" {
			out[i].Host = "(unlabelled)"
		}
		if out[i].Arch == "" {
			out[i].Arch = "(unlabelled)"
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Arch != out[j].Arch {
			return out[i].Arch < out[j].Arch
		}
		return out[i].Host < out[j].Host
	})
	return out
}

// cell makes text safe inside a Markdown table cell: a '|' would end the
// cell and a newline the row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

package profile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/initprof/initprof/profile/stats"
)

// FailIf is one regression gate of `initprof compare --fail-if`, written
// METRIC>THRESHOLD:
//
//	init_duration>+5%           Init Duration's shift above 5 % of the baseline median
//	init_duration>+2ms          ... above 2 ms
//	datadog-agent:load>+10%     one process's load (exec→entry)
//	runtime:time_to_ready>0     any slowdown of the runtime's exec→next
//	datadog-agent:relocate>+500us   one phase
//
// METRIC is init_duration, or PROCESS:NAME where NAME is load, init,
// time_to_ready or a phase name (compare.txt's rows). THRESHOLD is a
// percentage of the baseline's median or a duration (Go syntax: ns, us, µs,
// ms, s); the sign is optional. Only slowdowns trip a gate, and only
// significant ones (Mann–Whitney p < alpha): a shift inside the noise never
// fails a build, whatever its estimate, so CI does not flake on noise.
type FailIf struct {
	// Text is the condition as the user wrote it.
	Text    string
	Process string // "" for init_duration
	Metric  string
	// Percent is the threshold in % of the baseline median when IsPercent,
	// else Ns is the threshold in nanoseconds.
	Percent   float64
	Ns        float64
	IsPercent bool
}

// ParseFailIf parses a comma-separated list of conditions (see FailIf).
func ParseFailIf(s string) ([]FailIf, error) {
	var out []FailIf
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		metric, thr, ok := strings.Cut(part, ">")
		metric, thr = strings.TrimSpace(metric), strings.TrimSpace(thr)
		if !ok || metric == "" || thr == "" {
			return nil, fmt.Errorf("--fail-if %q: want METRIC>THRESHOLD, e.g. 'init_duration>+5%%' or 'datadog-agent:load>+2ms'", part)
		}
		f := FailIf{Text: part, Metric: metric}
		if proc, m, ok := strings.Cut(metric, ":"); ok {
			f.Process, f.Metric = proc, m
		} else if metric != AggInitDuration {
			return nil, fmt.Errorf("--fail-if %q: metric %q: use init_duration, or PROCESS:METRIC such as datadog-agent:load", part, metric)
		}
		num := strings.TrimPrefix(thr, "+")
		if strings.HasPrefix(num, "-") {
			return nil, fmt.Errorf("--fail-if %q: a negative threshold would fail on improvements; gates only catch slowdowns", part)
		}
		switch {
		case strings.HasSuffix(num, "%"):
			v, err := strconv.ParseFloat(strings.TrimSuffix(num, "%"), 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("--fail-if %q: %q is not a percentage like +5%%", part, thr)
			}
			f.Percent, f.IsPercent = v, true
		case num == "0":
		default:
			d, err := time.ParseDuration(strings.Replace(num, "µ", "u", 1))
			if err != nil {
				return nil, fmt.Errorf("--fail-if %q: %q is neither a percentage (+5%%) nor a duration (+2ms)", part, thr)
			}
			f.Ns = float64(d.Nanoseconds())
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--fail-if %q: no condition given", s)
	}
	return out, nil
}

// Regressions checks the gates against c: one line per build and gate
// that tripped, empty when none did. A gate naming a metric c does not
// have is an error listing the metrics it has, so a typo never passes
// silently.
func (c *Comparison) Regressions(gates []FailIf) ([]string, error) {
	var out []string
	for _, g := range gates {
		row := c.row(g.Process, g.Metric)
		if row == nil {
			return nil, fmt.Errorf("--fail-if %q: the comparison has no such metric; it has %s", g.Text, strings.Join(c.metricNames(), ", "))
		}
		for i := 1; i < len(row.Cells); i++ {
			cell, ok := row.tested(i)
			if !ok || cell.Shift == nil {
				continue
			}
			base := row.Cells[0].Summary.Median
			limit := g.Ns
			if g.IsPercent {
				limit = base * g.Percent / 100
			}
			if cell.Test.P < c.Alpha && cell.Shift.Estimate > limit {
				out = append(out, fmt.Sprintf("REGRESSION %s: %s vs %s: %s %s (%s of the baseline's %s; %.0f %% CI %s … %s, %s) passes %s",
					g.Text, cell.Build, row.Cells[0].Build, row.Label(), row.FormatShift(cell.Shift.Estimate),
					pctSigned(cell.Shift.Estimate, base), row.FormatValue(base), 100*c.Confidence,
					row.FormatShift(cell.Shift.Lo), row.FormatShift(cell.Shift.Hi), stats.FormatP(cell.Test.P), thresholdText(g)))
			}
		}
	}
	return out, nil
}

func thresholdText(g FailIf) string {
	if g.IsPercent {
		return fmt.Sprintf("+%g %%", g.Percent)
	}
	return signedDur(g.Ns)
}

func pctSigned(shift, base float64) string {
	if base == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f %%", 100*shift/base)
}

// metricNames are the gate names of c's rows, for an error message.
func (c *Comparison) metricNames() []string {
	var names []string
	for _, r := range c.Rows {
		if r.Process == "" {
			names = append(names, r.Metric)
		} else {
			names = append(names, r.Process+":"+r.Metric)
		}
	}
	sort.Strings(names)
	return names
}

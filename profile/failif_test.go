package profile

import (
	"strings"
	"testing"
)

func TestParseFailIf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []FailIf
		err  string
	}{
		{in: "init_duration>+5%", want: []FailIf{{Metric: AggInitDuration, Percent: 5, IsPercent: true}}},
		{in: "init_duration>2ms", want: []FailIf{{Metric: AggInitDuration, Ns: 2e6}}},
		{in: "ext:load>+500µs, runtime:time_to_ready>0", want: []FailIf{{Process: "ext", Metric: AggLoad, Ns: 5e5}, {Process: "runtime", Metric: AggTimeToReady}}},
		{in: "init_duration", err: "want METRIC>THRESHOLD"},
		{in: "load>+5%", err: "use init_duration, or PROCESS:METRIC"},
		{in: "init_duration>-5%", err: "negative threshold"},
		{in: "init_duration>fast", err: "neither a percentage"},
		{in: " , ", err: "no condition"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFailIf(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				got[i].Text = ""
				if got[i] != tc.want[i] {
					t.Errorf("condition %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestRegressions: a real 2 ms constructor slowdown trips a 5 % gate on
// the extension's load (+118 %) but not a 200 % one, an identical build trips
// nothing, and a gate on a metric the comparison lacks is an error.
func TestRegressions(t *testing.T) {
	spec := synthSpec{runs: 20, runtimeNs: 1_000_000, relocateNs: 800_000, noise: 0.05}
	base, same, slow := spec, spec, spec
	base.build, base.seed = "base", 1
	same.build, same.seed = "same", 2
	slow.build, slow.seed, slow.ctorExtra = "slow", 3, 2_000_000
	c := Compare([]BuildRuns{{Build: "base", Runs: synthRuns(base)}, {Build: "same", Runs: synthRuns(same)}, {Build: "slow", Runs: synthRuns(slow)}})
	for _, tc := range []struct {
		gate string
		want []string // builds that regress
		err  string
	}{
		{gate: "ext:load>+5%", want: []string{"slow"}},
		{gate: "ext:load>+200%"},
		{gate: "ext:constructors>+1ms", want: []string{"slow"}},
		{gate: "init_duration>+1%", want: []string{"slow"}},
		{gate: "ext:nonsense>+1%", err: "no such metric"},
	} {
		t.Run(tc.gate, func(t *testing.T) {
			g, err := ParseFailIf(tc.gate)
			if err != nil {
				t.Fatal(err)
			}
			regs, err := c.Regressions(g)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(regs) != len(tc.want) {
				t.Fatalf("got %d regressions %q, want builds %v", len(regs), regs, tc.want)
			}
			for i, b := range tc.want {
				if !strings.Contains(regs[i], ": "+b+" vs base:") {
					t.Errorf("regression %q does not name %s", regs[i], b)
				}
			}
		})
	}
}

package export

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile"
)

// runs makes n runs of one extension whose Init Duration is base+i·step ns.
func runs(build string, n int, base, step int64) []profile.Run {
	var out []profile.Run
	for i := 0; i < n; i++ {
		s := int64(1e9) * int64(i+1)
		d := base + int64(i)*step
		p := profile.Process{Name: "ext", Role: profile.RoleExtension, OnCPUNs: map[string]int64{"x": 1_000_000}, Checkpoints: []profile.Checkpoint{
			{Name: profile.CkSpawn, MonoNs: s}, {Name: profile.CkExec, MonoNs: s + 100_000},
			{Name: profile.CkEntry, MonoNs: s + d/2}, {Name: profile.CkNext, MonoNs: s + d}}}
		out = append(out, profile.Run{Index: i, Build: build, InitStartNs: s, InitEndNs: s + d, InitStatus: "success", Processes: []profile.Process{p}})
	}
	return out
}

func TestCompareMarkdown(t *testing.T) {
	c := profile.Compare([]profile.BuildRuns{{Build: "prod", Runs: runs("prod", 10, 80e6, 1e5)}, {Build: "o3", Runs: runs("o3", 10, 90e6, 1e5)}})
	var b bytes.Buffer
	if err := CompareMarkdown(&b, c); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| metric | build | median | p10 | p90 | shift |",
		"| **Init Duration** | prod | 80.45 ms |",
		"|  | o3 | 90.45 ms |",
		"| ext load (exec→entry) | prod |",
		"**VERDICT** o3 vs prod:",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for i, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "|") && strings.Count(l, "|")-strings.Count(l, `\|`) != 10 {
			t.Errorf("line %d has a cell count other than 9: %s", i+1, l)
		}
	}
}

func TestReportMarkdownByMachine(t *testing.T) {
	rs := runs("prod", 4, 80e6, 1e6)
	rs[0].Host, rs[1].Host, rs[2].Host, rs[3].Host = "a", "a", "b", "b"
	rs[0].Arch, rs[1].Arch, rs[2].Arch, rs[3].Arch = "x86_64", "x86_64", "aarch64", "aarch64"
	var b bytes.Buffer
	if err := ReportMarkdown(&b, profile.Aggregate(rs)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| **Init Duration** | 81.50 ms |", "| b | aarch64 | 2 | 82.50 ms |", "| a | x86_64 | 2 | 80.50 ms |", "**VERDICT**"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

// TestHyperfine: the shape hyperfine --export-json writes, in seconds.
func TestHyperfine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		stddev *float64
	}{
		{"three runs", 3, ptr(0.001)},
		{"one run: stddev null, as hyperfine writes it", 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteHyperfine(&b, []profile.BuildRuns{{Build: "prod", Runs: runs("prod", tc.n, 80e6, 1e6)}, {Build: "bad", Err: "failed"}}); err != nil {
				t.Fatal(err)
			}
			var doc map[string][]map[string]any
			if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			res := doc["results"]
			if len(res) != 1 {
				t.Fatalf("want one result (the failed build left out), got %d:\n%s", len(res), b.String())
			}
			r := res[0]
			for _, k := range []string{"command", "mean", "stddev", "median", "user", "system", "min", "max", "times", "exit_codes"} {
				if _, ok := r[k]; !ok {
					t.Errorf("no %q in %v", k, r)
				}
			}
			if r["command"] != "prod" || r["min"] != 0.08 || len(r["times"].([]any)) != tc.n {
				t.Errorf("got %v", r)
			}
			if math.Abs(r["user"].(float64)-0.001) > 1e-12 {
				t.Errorf("user = %v, want the mean on-CPU time 0.001 s", r["user"])
			}
			switch {
			case tc.stddev == nil && r["stddev"] != nil:
				t.Errorf("stddev = %v, want null", r["stddev"])
			case tc.stddev != nil && math.Abs(r["stddev"].(float64)-*tc.stddev) > 1e-12:
				t.Errorf("stddev = %v, want %v", r["stddev"], *tc.stddev)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

package main

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
)

// BenchmarkRunThroughput is issue 5's benchmark: 30 back-to-back cold starts
// of the C sample in the OCI sandbox (cold cache, the default), reporting the
// wall time per run, the sandbox's own overhead per run (create + start +
// delete) and cold starts per minute. Run it with `make bench`.
func BenchmarkRunThroughput(b *testing.B) {
	testutil.RequireRoot(b)
	bin := testutil.BuildInitprof(b)
	const n = 30
	for i := 0; i < b.N; i++ {
		out := b.TempDir()
		t0 := time.Now()
		stdout, stderr, code := runInitprof(b, bin, "run", "-n", "30", "--out", out, testutil.Sample(b, "cext"))
		wall := time.Since(t0)
		if code != exitOK {
			b.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		f, err := os.Open(filepath.Join(out, "results.json"))
		if err != nil {
			b.Fatal(err)
		}
		rep, err := profile.ReadResults(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		var over []float64
		for _, r := range rep.Runs {
			if r.Sandbox != nil {
				over = append(over, float64(r.Sandbox.CreateNs+r.Sandbox.StartNs+r.Sandbox.DeleteNs))
			}
		}
		sort.Float64s(over)
		perRun := wall / n
		b.ReportMetric(float64(perRun.Microseconds())/1e3, "ms-wall/run")
		b.ReportMetric(over[len(over)/2]/1e6, "ms-sandbox/run")
		b.ReportMetric(float64(n)/wall.Minutes(), "coldstarts/min")
		b.Logf("%d cold starts in %.1f s (setup included): %.1f ms per run, sandbox overhead median %.1f ms, %.0f cold starts/min, Init Duration median %.2f ms",
			n, wall.Seconds(), float64(perRun.Microseconds())/1e3, over[len(over)/2]/1e6, float64(n)/wall.Minutes(), rep.InitDuration.Median/1e6)
	}
}

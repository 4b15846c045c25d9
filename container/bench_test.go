package container

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// BenchmarkSandboxOverhead measures what the OCI sandbox itself costs per
// cold start: create + start + delete of a container whose PID 1 exits at
// once, 30 runs back to back per iteration (with the eviction of a cold run).
// It reports medians in ms and the sandbox-bound ceiling in runs per minute.
func BenchmarkSandboxOverhead(b *testing.B) {
	requireOCI(b, "runc")
	sb, err := NewOCI(probeConfig(b, "runc", 1024, "exit", "0"))
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	const runs = 30
	var create, start, del, evict, wall []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < runs; r++ {
			o, ev, w := coldRun(b, sb, "bench"+itoa(r))
			evict, wall = append(evict, ev), append(wall, w)
			create, start, del = append(create, o.Create), append(start, o.Start), append(del, o.Delete)
		}
	}
	b.StopTimer()
	ms := medianMS
	b.ReportMetric(ms(create), "create-ms")
	b.ReportMetric(ms(start), "start-ms")
	b.ReportMetric(ms(del), "delete-ms")
	b.ReportMetric(ms(evict), "evict-ms")
	b.ReportMetric(ms(wall), "run-ms")
	b.ReportMetric(60000/ms(wall), "runs/min")
}

// BenchmarkPlatformColdStart runs the real platform (`initprof platform`, sim
// runtime, 1 invoke) with the C sample (libcurl/OpenSSL) 30 times back to
// back, each cold (bundle evicted), and reports the wall time per run, the
// sandbox's share, and cold starts per minute. No probes are attached.
func BenchmarkPlatformColdStart(b *testing.B) {
	requireOCI(b, "runc")
	bin := initprofWithPlatform(b)
	sb, err := NewOCI(Config{
		Extensions:   []Extension{{Name: "cext", Path: testutil.Sample(b, "cext")}},
		Initprof:     bin,
		PlatformArgs: []string{"--invokes", "1"},
		WorkDir:      workTemp(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	const runs = 30
	var wall, over []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < runs; r++ {
			o, _, w := coldRun(b, sb, "cold"+itoa(r))
			wall, over = append(wall, w), append(over, o.Total())
		}
	}
	b.StopTimer()
	b.ReportMetric(medianMS(wall), "run-ms")
	b.ReportMetric(medianMS(over), "sandbox-ms")
	b.ReportMetric(60000/medianMS(wall), "runs/min")
}

// coldRun is one cold run as both benchmarks time it: evict the sandbox's
// files from the page cache, then create, start, wait for exit 0 and delete.
// evict is the eviction alone; wall is all of it, eviction included.
func coldRun(b *testing.B, sb Sandbox, runID string) (o Overhead, evict, wall time.Duration) {
	b.Helper()
	t0 := time.Now()
	if _, err := EvictPageCache(sb.Files()); err != nil {
		b.Fatal(err)
	}
	evict = time.Since(t0)
	in, err := sb.Create(context.Background(), runID)
	if err != nil {
		b.Fatal(err)
	}
	if err := in.Start(); err != nil {
		b.Fatal(err)
	}
	if code, err := in.Wait(context.Background()); err != nil || code != 0 {
		b.Fatalf("run %s: exit %d, %v\n%s", runID, code, err, in.Output())
	}
	if err := in.Delete(); err != nil {
		b.Fatal(err)
	}
	return in.Overhead(), evict, time.Since(t0)
}

func medianMS(d []time.Duration) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2]) / 1e6
}

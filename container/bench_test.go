package container

import (
	"context"
	"sort"
	"testing"
	"time"
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
			t0 := time.Now()
			if _, err := EvictPageCache(sb.Files()); err != nil {
				b.Fatal(err)
			}
			evict = append(evict, time.Since(t0))
			in, err := sb.Create(context.Background(), "bench"+itoa(r))
			if err != nil {
				b.Fatal(err)
			}
			if err := in.Start(); err != nil {
				b.Fatal(err)
			}
			if code, err := in.Wait(context.Background()); err != nil || code != 0 {
				b.Fatalf("wait = %d, %v\n%s", code, err, in.Output())
			}
			if err := in.Delete(); err != nil {
				b.Fatal(err)
			}
			wall = append(wall, time.Since(t0))
			o := in.Overhead()
			create, start, del = append(create, o.Create), append(start, o.Start), append(del, o.Delete)
		}
	}
	b.StopTimer()
	ms := func(d []time.Duration) float64 {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[len(s)/2]) / 1e6
	}
	b.ReportMetric(ms(create), "create-ms")
	b.ReportMetric(ms(start), "start-ms")
	b.ReportMetric(ms(del), "delete-ms")
	b.ReportMetric(ms(evict), "evict-ms")
	b.ReportMetric(ms(wall), "run-ms")
	b.ReportMetric(60000/ms(wall), "runs/min")
}

package coldstart_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/internal/testutil"
)

// storageSubject is one function (or extension) the storage benchmarks run.
type storageSubject struct {
	name    string
	runtime string // a bootstrap path, or "sim"
	exts    []container.Extension
}

func storageSubjects(b *testing.B) []storageSubject {
	if out, err := exec.Command("make", "-C", "..", "fidelity").CombinedOutput(); err != nil {
		b.Skipf("building the fidelity fixtures failed (make fidelity): %v\n%s", err, out)
	}
	subs := []storageSubject{
		{name: "go-bootstrap", runtime: "../build/fidelity/go-bootstrap"},
		{name: "rust-bootstrap", runtime: "../build/fidelity/rust-bootstrap"},
	}
	if p := testutil.Root(b) + "/build/samples/goext"; fileExists(p) {
		subs = append(subs, storageSubject{name: "goext+sim", runtime: "sim", exts: []container.Extension{{Name: "goext", Path: p}}})
	}
	return subs
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

type storageCell struct {
	label  string
	series *coldstart.Series
	init   []float64 // ms
	chunks []float64
	svc    []float64 // ms, FUSE server's own time
}

// BenchmarkStorageOverhead measures what the FUSE layer itself costs a cold
// start: --storage lambda with every tier latency zero against --storage
// local, interleaved run by run (INITPROF_STORAGE_RUNS, default 10), for the
// fidelity functions and the Go sample extension.
//
//	go test -run '^$' -bench StorageOverhead -benchtime 1x ./coldstart/
func BenchmarkStorageOverhead(b *testing.B) {
	testutil.RequireRoot(b)
	if err := lazyfs.Check(); err != nil {
		b.Skipf("no FUSE: %v", err)
	}
	runs := envInt("INITPROF_STORAGE_RUNS", 10)
	zero, err := lazyfs.ModelFrom("worker=0,az=0,s3=0", "", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	for _, sub := range storageSubjects(b) {
		// local (cold: the disk), lambda at zero latency (FUSE over a backing
		// tree whose own pages stay cached: the disk is what the model
		// replaces), and local with a warm cache (no disk, no FUSE): the
		// FUSE layer's own cost is lambda-zero minus local-warm.
		cells := []*storageCell{{label: "local"}, {label: "lambda, zero latency"}, {label: "local, --cache warm"}}
		for i, c := range cells {
			cfg := coldstart.Config{Runtime: sub.runtime, Storage: container.StorageLocal}
			switch i {
			case 1:
				cfg.Storage, cfg.StorageModel = container.StorageLambda, &zero
			case 2:
				cfg.Warm = true
			}
			c.series = openSeries(b, cfg, sub)
		}
		interleave(b, cells, runs)
		fmt.Fprintf(&out, "\n%s, Init Duration over %d interleaved cold starts (median [p10 … p90]):\n", sub.name, runs)
		for _, c := range cells {
			fmt.Fprintf(&out, "  %-22s %s", c.label, dist(c.init, "ms"))
			if len(c.chunks) > 0 {
				fmt.Fprintf(&out, "   chunks %s   FUSE server time %s", dist(c.chunks, ""), dist(c.svc, "ms"))
			}
			out.WriteString("\n")
		}
		d := median(cells[1].init) - median(cells[0].init)
		w := median(cells[1].init) - median(cells[2].init)
		fmt.Fprintf(&out, "  lambda at zero latency vs local: %+.2f ms median Init Duration; vs local warm (the FUSE layer's own cost): %+.2f ms\n", d, w)
		b.ReportMetric(d, "vs-local-ms/"+sub.name)
		b.ReportMetric(w, "vs-warm-ms/"+sub.name)
	}
	fmt.Print(out.String())
	os.WriteFile("../build/fidelity/"+b.Name()+".txt", []byte(out.String()), 0o644)
}

// BenchmarkStorageReadahead counts the chunks a cold start touches with
// the mount's readahead at 128 KiB (Lambda's guest default) and larger, and
// shows how stable the count is run to run (min … max).
//
//	go test -run '^$' -bench StorageReadahead -benchtime 1x ./coldstart/
func BenchmarkStorageReadahead(b *testing.B) {
	testutil.RequireRoot(b)
	if err := lazyfs.Check(); err != nil {
		b.Skipf("no FUSE: %v", err)
	}
	runs := envInt("INITPROF_STORAGE_RUNS", 10)
	zero, _ := lazyfs.ModelFrom("worker=0,az=0,s3=0", "", "", 0)
	var out strings.Builder
	for _, sub := range storageSubjects(b) {
		var cells []*storageCell
		for _, ra := range []int{128, 512, 2048} {
			cfg := coldstart.Config{Runtime: sub.runtime, Storage: container.StorageLambda, StorageModel: &zero, ReadAhead: ra << 10}
			c := &storageCell{label: fmt.Sprintf("readahead %d KiB", ra)}
			c.series = openSeries(b, cfg, sub)
			cells = append(cells, c)
		}
		interleave(b, cells, runs)
		fmt.Fprintf(&out, "\n%s, chunks fetched per cold start over %d runs:\n", sub.name, runs)
		for _, c := range cells {
			fmt.Fprintf(&out, "  %-18s chunks %s (min %.0f, max %.0f)   Init Duration %s\n", c.label, dist(c.chunks, ""), minOf(c.chunks), maxOf(c.chunks), dist(c.init, "ms"))
			b.ReportMetric(median(c.chunks), "chunks/"+sub.name+"/"+strings.ReplaceAll(c.label, " ", ""))
		}
		if r := cells[0].series.Runs(); len(r) > 0 && r[0].Storage != nil {
			fmt.Fprintf(&out, "  per file (128 KiB, run 1): %s\n", perFile(r[0].Storage.Chunks))
		}
	}
	fmt.Print(out.String())
	os.WriteFile("../build/fidelity/"+b.Name()+".txt", []byte(out.String()), 0o644)
}

func openSeries(b *testing.B, cfg coldstart.Config, sub storageSubject) *coldstart.Series {
	eng, err := coldstart.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	s, err := eng.NewSeries(sub.name, sub.exts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

func interleave(b *testing.B, cells []*storageCell, runs int) {
	for i := 0; i < b.N; i++ {
		for r := 0; r < runs; r++ {
			for _, c := range cells {
				run, err := c.series.Run(context.Background(), r)
				if err != nil {
					b.Fatal(err)
				}
				if d, ok := run.InitDurationNs(); ok && run.InitStatus == "success" {
					c.init = append(c.init, float64(d)/1e6)
				}
				if st := run.Storage; st != nil {
					c.chunks = append(c.chunks, float64(st.TotalChunks))
					c.svc = append(c.svc, float64(st.ServiceNs)/1e6)
				}
			}
		}
	}
}

func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func dist(x []float64, unit string) string {
	f := "%.2f"
	if unit == "" {
		f = "%.0f"
	}
	return fmt.Sprintf(f+"%s ["+f+" … "+f+"]", median(x), unit, quantile(x, 0.1), quantile(x, 0.9))
}

func minOf(x []float64) float64 { return quantile(x, 0) }
func maxOf(x []float64) float64 { return quantile(x, 1) }

func perFile(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

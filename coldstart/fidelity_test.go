package coldstart_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/profile"
)

// published are lambda-perf's medians of 10 cold starts per function,
// runtime and memory size (maxday/lambda-perf data/last.json, generated
// 2026-08-22; LAMBDA-FIDELITY.md §1), x86_64, zip packages, no extensions,
// Init Duration in ms. The model must reproduce them with one parameter set.
var published = []struct {
	fixture, runtime string
	memoryMB         int
	initMs           float64
}{
	{"go-bootstrap", "go (provided.al2023)", 128, 49.4},
	{"go-bootstrap", "go (provided.al2023)", 1024, 50.6},
	{"rust-bootstrap", "rust (provided.al2023)", 128, 15.7},
	{"rust-bootstrap", "rust (provided.al2023)", 1024, 15.3},
}

// BenchmarkFidelity reproduces LAMBDA-FIDELITY.md's table with the default
// model: each published function built as its publisher builds it (make
// fidelity), cold-started as the runtime with no extension, 10 times per
// memory size and view, its median Init Duration held against the published
// one. Three views per cell: this machine as it is (--storage local), the FUSE
// storage layer at zero fetch latency (its own cost), and the model. It writes the README's "How close to Lambda" table to
// build/fidelity/how-close.md.
//
// INITPROF_FIDELITY_RUNS changes the runs per cell; INITPROF_FIDELITY_INIT_CPU
// and the storage variables of applyStorageEnv change the model's view (to
// fit it).
func BenchmarkFidelity(b *testing.B) {
	runs := envInt("INITPROF_FIDELITY_RUNS", 10)
	if out, err := exec.Command("make", "-C", "..", "fidelity").CombinedOutput(); err != nil {
		b.Skipf("building the fidelity fixtures failed (make fidelity): %v\n%s", err, out)
	}
	initCPU, _ := strconv.ParseFloat(os.Getenv("INITPROF_FIDELITY_INIT_CPU"), 64)
	views := []struct {
		name string
		cfg  func(c *coldstart.Config)
	}{
		{"local", func(c *coldstart.Config) { c.Storage = "local" }},
		{"fuse0", func(c *coldstart.Config) {
			c.Storage = "lambda"
			m, _ := lazyfs.ModelFrom("worker=0,az=0,s3=0,host=0", "", "", 0)
			c.StorageModel = &m
		}},
		{"model", applyStorageEnv},
	}
	if v := os.Getenv("INITPROF_FIDELITY_VIEWS"); v != "" { // debugging aid: a subset
		keep := views[:0]
		for _, w := range views {
			if strings.Contains(v, w.name) {
				keep = append(keep, w)
			}
		}
		views = keep
	}
	got := make([][][]float64, len(published)) // Init Durations (ms) by cell and view
	for i := range got {
		got[i] = make([][]float64, len(views))
	}
	var rep *profile.Report // the last model series', for its notes
	// One engine at a time, as one `initprof run` is. Every open engine's
	// probes run on every tracepoint hit of the machine (they filter by
	// PID inside the program), so engines left open slow everyone's page
	// faults and syscalls: with twelve open, the FUSE layer's own cost
	// at zero latency grew from 2-4 ms to 9-12 ms per cold start.
	cold := func(i, v int) {
		p := published[i]
		c := coldstart.Config{MemoryMB: p.memoryMB, Runtime: "../build/fidelity/" + p.fixture, InitCPU: initCPU}
		views[v].cfg(&c)
		eng, err := coldstart.Open(c)
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		s, err := eng.NewSeries(p.fixture, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for r := 0; r < runs; r++ {
			run, err := s.Run(context.Background(), r)
			if err != nil {
				b.Fatal(err)
			}
			if st := run.Storage; st != nil && os.Getenv("INITPROF_FIDELITY_DEBUG") != "" {
				ops := ""
				for k, o := range st.Ops {
					ops += fmt.Sprintf(" %s=%d/%.2fms", k, o.Count, float64(o.ServiceNs)/1e6)
				}
				d, _ := run.InitDurationNs()
				b.Logf("%s %s: init %.1f ms, %d requests, service %.2f ms:%s", p.fixture, views[v].name, float64(d)/1e6, st.Requests, float64(st.ServiceNs)/1e6, ops)
			}
			if d, ok := run.InitDurationNs(); ok && run.InitStatus == "success" {
				got[i][v] = append(got[i][v], float64(d)/1e6)
			}
		}
		if views[v].name == "model" {
			rep = s.Report()
		}
	}
	for b.Loop() {
		for i := range got {
			for v := range views {
				cold(i, v)
			}
		}
	}
	var t strings.Builder
	fmt.Fprintf(&t, "| function | memory | Lambda (lambda-perf) | initprof | residual | this machine (--storage local) | FUSE layer, no fetch cost |\n|---|---|---|---|---|---|---|\n")
	for i, p := range published {
		med := func(name string) float64 {
			for v, w := range views {
				if w.name == name {
					return median(got[i][v])
				}
			}
			return math.NaN() // left out by INITPROF_FIDELITY_VIEWS
		}
		local, fuse0, model := med("local"), med("fuse0"), med("model")
		res := (model - p.initMs) / p.initMs
		fmt.Fprintf(&t, "| %s | %d MB | %.1f ms | %.1f ms | %+.0f %% | %.1f ms (%+.0f %%) | %.1f ms (%+.1f ms) |\n",
			p.runtime, p.memoryMB, p.initMs, model, 100*res, local, 100*(local-p.initMs)/p.initMs, fuse0, fuse0-local)
		fix := strings.TrimSuffix(p.fixture, "-bootstrap")
		b.ReportMetric(100*res, fmt.Sprintf("residual%%/%s-%d", fix, p.memoryMB))
		b.ReportMetric(fuse0-local, fmt.Sprintf("fuse-ms/%s-%d", fix, p.memoryMB))
	}
	fmt.Fprintf(&t, "\nMedians of %d cold starts per cell; one engine open at a time, as in one initprof run (BenchmarkFidelity, make fidelity-bench).", runs)
	for _, n := range notesOf(rep) {
		if strings.HasPrefix(n, "model:") {
			fmt.Fprintf(&t, "\n\n%s", n)
		}
	}
	t.WriteString("\n")
	b.Log("\n" + t.String())
	os.WriteFile("../build/fidelity/how-close.md", []byte(t.String()), 0o644)
}

// applyStorageEnv sets the storage model from the environment, for fitting:
//
//	INITPROF_FIDELITY_STORAGE        lambda (the default) or local
//	INITPROF_FIDELITY_CHUNK_LATENCY  e.g. worker=1.6ms,az=6.4ms,s3=48ms
//	INITPROF_FIDELITY_CHUNK_MIX      e.g. worker=67%,az=32.9%,s3=0.1%
//	INITPROF_FIDELITY_BASE_MIX       e.g. worker=100%
//	INITPROF_FIDELITY_READAHEAD_KIB  e.g. 128
//
// A bad value panics: a fit must not silently run the default model.
func applyStorageEnv(c *coldstart.Config) {
	c.Storage = os.Getenv("INITPROF_FIDELITY_STORAGE")
	m, err := lazyfs.ModelFrom(os.Getenv("INITPROF_FIDELITY_CHUNK_LATENCY"), os.Getenv("INITPROF_FIDELITY_CHUNK_MIX"), os.Getenv("INITPROF_FIDELITY_BASE_MIX"), 0)
	if err != nil {
		panic("INITPROF_FIDELITY_*: " + err.Error())
	}
	c.StorageModel = &m
	c.ReadAhead = envInt("INITPROF_FIDELITY_READAHEAD_KIB", 0) << 10
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func notesOf(r *profile.Report) []string {
	if r == nil {
		return nil
	}
	return r.Notes
}

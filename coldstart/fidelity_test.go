package coldstart_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container/lazyfs"
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
// memory size, interleaved, and its median Init Duration held against the
// published one. It writes the README's "How close to Lambda" table to
// build/fidelity/how-close.md.
//
// INITPROF_FIDELITY_RUNS changes the runs per cell; INITPROF_FIDELITY_STORAGE
// and INITPROF_FIDELITY_INIT_CPU the model (to fit it, or to show the raw
// local view: storage local, init CPU -1).
func BenchmarkFidelity(b *testing.B) {
	runs := envInt("INITPROF_FIDELITY_RUNS", 10)
	if out, err := exec.Command("make", "-C", "..", "fidelity").CombinedOutput(); err != nil {
		b.Skipf("building the fidelity fixtures failed (make fidelity): %v\n%s", err, out)
	}
	initCPU, _ := strconv.ParseFloat(os.Getenv("INITPROF_FIDELITY_INIT_CPU"), 64)
	type cell struct {
		series *coldstart.Series
		got    []float64
	}
	cells := make([]cell, len(published))
	for i, p := range published {
		eng, err := coldstart.Open(fidelityConfig(p.memoryMB, "../build/fidelity/"+p.fixture, initCPU))
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		s, err := eng.NewSeries(p.fixture, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		cells[i].series = s
	}
	for b.Loop() {
		for r := 0; r < runs; r++ {
			for i := range cells {
				run, err := cells[i].series.Run(context.Background(), r)
				if err != nil {
					b.Fatal(err)
				}
				if d, ok := run.InitDurationNs(); ok && run.InitStatus == "success" {
					cells[i].got = append(cells[i].got, float64(d)/1e6)
				}
			}
		}
	}
	var t strings.Builder
	fmt.Fprintf(&t, "| function | memory | published Init | initprof (median of %d) | residual |\n|---|---|---|---|---|\n", runs)
	for i, p := range published {
		m := median(cells[i].got)
		res := (m - p.initMs) / p.initMs
		fmt.Fprintf(&t, "| %s | %d MB | %.1f ms | %.1f ms | %+.0f %% |\n", p.runtime, p.memoryMB, p.initMs, m, 100*res)
		b.ReportMetric(100*res, fmt.Sprintf("residual%%/%s-%d", strings.TrimSuffix(p.fixture, "-bootstrap"), p.memoryMB))
	}
	rep := cells[0].series.Report()
	for _, n := range rep.Notes {
		if strings.HasPrefix(n, "model:") {
			fmt.Fprintf(&t, "\n%s\n", n)
		}
	}
	b.Log("\n" + t.String())
	os.WriteFile("../build/fidelity/how-close.md", []byte(t.String()), 0o644)
}

func fidelityConfig(memoryMB int, runtime string, initCPU float64) coldstart.Config {
	c := coldstart.Config{MemoryMB: memoryMB, Runtime: runtime, InitCPU: initCPU}
	applyStorageEnv(&c)
	return c
}

// applyStorageEnv sets the storage model from the environment, for fitting:
//
//	INITPROF_FIDELITY_STORAGE        lambda (the default) or local
//	INITPROF_FIDELITY_CHUNK_LATENCY  e.g. worker=1ms,az=4ms,s3=30ms
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

package coldstart

import (
	"fmt"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
)

// Costs are per-event probe costs and where they come from.
type Costs struct {
	probes.Costs
	Source string // "calibrated here: …" or why the fallback is used
	// Concurrent are the other initprof processes running when the costs
	// were calibrated: another run's probes and cold starts distort the
	// figures (a uprobe hit priced at 0.3 µs instead of 12–25 µs).
	Concurrent []int
}

func (c *Costs) String() string {
	return fmt.Sprintf("uprobe hit %.1f µs, traced socket syscall %.2f µs, other traced event %.2f µs (%s)",
		c.UprobeHitNs/1e3, c.SocketEventNs/1e3, c.TracepointNs/1e3, c.Source)
}

// Per-event costs measured on the development VM (2 vCPU, kernel 6.18) by the
// probes package's BenchmarkOverhead: the fallback when calibration cannot
// run (a stripped initprof has no calibration symbol).
const (
	devUprobeHitNs   = 10300.0
	devSocketEventNs = 1120.0
	devTracepointNs  = 380.0
)

func defaultCosts(why string) *Costs {
	return &Costs{Costs: probes.Costs{UprobeHitNs: devUprobeHitNs, SocketEventNs: devSocketEventNs, TracepointNs: devTracepointNs},
		Source: "the development VM's figures: " + why}
}

// calibrationLoops and calibrationReps size the calibration: 2000 uprobe hits
// take ~20 ms at the development VM's 10 µs, ~0.2 s under qemu TCG.
const (
	calibrationLoops = 2000
	calibrationReps  = 3
)

// calibrate measures the per-event costs with tr (once per engine, before
// the first run), falling back to the development VM's figures.
func calibrate(tr *probes.Tracer, self string) *Costs {
	c, err := tr.Calibrate(self, calibrationLoops, calibrationReps)
	if err != nil {
		return defaultCosts(err.Error())
	}
	out := &Costs{Costs: c, Source: fmt.Sprintf("calibrated here: medians of %d×%d loops", calibrationReps, calibrationLoops)}
	if others := container.OtherLiveOwners(); len(others) > 0 {
		out.Concurrent = others
		out.Source += fmt.Sprintf("; UNRELIABLE: another initprof (pid %v) was running", others)
	}
	return out
}

// hitCount is how many probe events of each cost class one run produced.
type hitCount struct{ uprobes, sockets, tracepoints int }

func countHits(evs []probes.Event) hitCount {
	var h hitCount
	for _, e := range evs {
		switch e.Kind {
		case probes.KindUprobe, probes.KindUretprobe:
			h.uprobes++
		case probes.KindSend, probes.KindRecv:
			h.sockets++
		default:
			h.tracepoints++
		}
	}
	return h
}

// probeOverhead states what the probes cost, from what they counted: each
// run's uprobe hits, socket events and other events at the per-event costs
// measured on this machine (calibrate).
func probeOverhead(runs []profile.Run, hits []hitCount, c *Costs) *profile.Overhead {
	if len(runs) == 0 || len(hits) == 0 {
		return nil
	}
	if c == nil {
		c = defaultCosts("no calibration")
	}
	var base, up, so, tp float64
	for _, r := range runs {
		base += r.InitDurationMs * 1e6
	}
	for _, h := range hits {
		up += float64(h.uprobes)
		so += float64(h.sockets)
		tp += float64(h.tracepoints)
	}
	n := float64(len(hits))
	up, so, tp = up/n, so/n, tp/n
	cost := up*c.UprobeHitNs + so*c.SocketEventNs + tp*c.TracepointNs
	method := fmt.Sprintf("estimated per run: %.0f uprobe hits × %.1f µs + %.0f socket events × %.1f µs + %.0f other events × %.1f µs (%s)",
		up, c.UprobeHitNs/1e3, so, c.SocketEventNs/1e3, tp, c.TracepointNs/1e3, c.Source)
	if c.UprobeReturnNs > 0 {
		method += fmt.Sprintf("; uprobe times +%.1f µs, the calibrated return of the trap to the program", c.UprobeReturnNs/1e3)
	}
	return &profile.Overhead{
		Method:         method,
		UprobeReturnNs: c.UprobeReturnNs,
		InitDeltaNs:    cost,
		BaselineNs:     base/float64(len(runs)) - cost,
		PerEventNs:     c.UprobeHitNs,
	}
}

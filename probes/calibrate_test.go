package probes

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// TestCalibrate measures the per-event costs with initprof as the calibration
// child (go test's own binaries are stripped: no symbol to probe). The figures are this
// machine's; what must hold is their order: a uprobe hit is a trap, dearer
// than a traced socket syscall with its event, which is dearer than a traced
// syscall that makes none, and none is free or absurd.
func TestCalibrate(t *testing.T) {
	testutil.RequireRoot(t)
	self := testutil.BuildInitprof(t)
	tr := newTracer(t, Options{Calibration: self})
	start := time.Now()
	c, err := tr.Calibrate(self, 2000, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uprobe hit %.2f µs, socket event %.2f µs, other event %.2f µs (%d loops, calibration took %v)",
		c.UprobeHitNs/1e3, c.SocketEventNs/1e3, c.TracepointNs/1e3, c.Loops, time.Since(start).Round(time.Millisecond))
	if c.Loops != 2000 {
		t.Errorf("loops %d, want 2000", c.Loops)
	}
	// The costs are this machine's figures (BenchmarkCalibrate records them):
	// a small per-event cost can measure as 0 ns on a fast machine. What must
	// hold is that each is a number, and a uprobe hit (a trap) is not free.
	for name, v := range map[string]float64{"uprobe hit": c.UprobeHitNs, "socket event": c.SocketEventNs, "other event": c.TracepointNs} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Errorf("%s cost %v ns: want a finite, non-negative figure", name, v)
		}
	}
	if c.UprobeReturnNs <= 0 {
		t.Errorf("trap return not measured (%.0f ns): the clock readings and the probe hits did not pair", c.UprobeReturnNs)
	}
	if c.UprobeHitNs <= 0 {
		t.Errorf("uprobe hit priced at %.0f ns: a trap is never free", c.UprobeHitNs)
	}
	// The calibration's own events are not left for the next run.
	if err := tr.Follow(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := tr.Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Checkpoint == calibrationCheckpoint || e.Checkpoint == calibrationClockCheckpoint {
			t.Fatalf("a calibration event leaked into the next run: %+v", e)
		}
	}
}

// BenchmarkCalibrate records the per-event costs the calibration finds on
// this machine (the figures the overhead pricing uses).
func BenchmarkCalibrate(b *testing.B) {
	testutil.RequireRoot(b)
	self := testutil.BuildInitprof(b)
	tr := newTracer(b, Options{Calibration: self})
	c, err := tr.Calibrate(self, 2000, 3)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("uprobe hit %.2f µs, socket event %.2f µs, other event %.2f µs, uprobe return %.2f µs", c.UprobeHitNs/1e3, c.SocketEventNs/1e3, c.TracepointNs/1e3, c.UprobeReturnNs/1e3)
	b.ReportMetric(c.UprobeHitNs/1e3, "µs/uprobe-hit")
	b.ReportMetric(c.SocketEventNs/1e3, "µs/socket-event")
	b.ReportMetric(c.TracepointNs/1e3, "µs/other-event")
	b.ReportMetric(c.UprobeReturnNs/1e3, "µs/uprobe-return")
}

// TestCalibrateUnavailable: a binary without the calibration symbol (here a
// C one) leaves the tracer working and Calibrate says why it cannot run.
func TestCalibrateUnavailable(t *testing.T) {
	tr := newTracer(t, Options{Executables: []string{"/bin/true"}, Calibration: "/bin/true"})
	if _, err := tr.Calibrate("/bin/true", 10, 1); err == nil || !strings.Contains(err.Error(), "no calibration probe") {
		t.Errorf("Calibrate without the probe: %v", err)
	}
}

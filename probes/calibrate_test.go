package probes

import (
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
	if c.UprobeHitNs < 100 || c.UprobeHitNs > 1e6 {
		t.Errorf("uprobe hit %.0f ns: outside 0.1 µs … 1 ms", c.UprobeHitNs)
	}
	if c.SocketEventNs <= 0 || c.SocketEventNs >= c.UprobeHitNs {
		t.Errorf("socket event %.0f ns, want > 0 and below a uprobe hit (%.0f ns)", c.SocketEventNs, c.UprobeHitNs)
	}
	if c.TracepointNs >= c.SocketEventNs {
		t.Errorf("a traced syscall without an event (%.0f ns) costs no less than one with (%.0f ns)", c.TracepointNs, c.SocketEventNs)
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
		if e.Checkpoint == calibrationCheckpoint {
			t.Fatalf("a calibration event leaked into the next run: %+v", e)
		}
	}
}

// TestCalibrateUnavailable: a binary without the calibration symbol (here a
// C one) leaves the tracer working and Calibrate says why it cannot run.
func TestCalibrateUnavailable(t *testing.T) {
	tr := newTracer(t, Options{Executables: []string{"/bin/true"}, Calibration: "/bin/true"})
	if _, err := tr.Calibrate("/bin/true", 10, 1); err == nil || !strings.Contains(err.Error(), "no calibration probe") {
		t.Errorf("Calibrate without the probe: %v", err)
	}
}

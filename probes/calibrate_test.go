package probes

import (
	"math"
	"os"
	"sort"
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

// BenchmarkCalibrateStability makes ten consecutive calibrations with the
// engine's sizes and reports, per cost, the largest deviation from their
// median (issue 15's bar: within ±25 %).
func BenchmarkCalibrateStability(b *testing.B) {
	testutil.RequireRoot(b)
	self := testutil.BuildInitprof(b)
	tr := newTracer(b, Options{Calibration: self})
	const n = 10
	var up, so, tp []float64
	for i := 0; i < n; i++ {
		c, err := tr.Calibrate(self, 2000, 3)
		if err != nil {
			b.Fatal(err)
		}
		up, so, tp = append(up, c.UprobeHitNs), append(so, c.SocketEventNs), append(tp, c.TracepointNs)
	}
	for _, m := range []struct {
		name string
		v    []float64
	}{{"uprobe-hit", up}, {"socket-event", so}, {"other-event", tp}} {
		s := append([]float64(nil), m.v...)
		sort.Float64s(s)
		med := s[len(s)/2]
		dev := 0.0
		for _, x := range s {
			if med > 0 {
				dev = max(dev, math.Abs(x-med)/med)
			}
		}
		b.Logf("%s: median %.3f µs, min %.3f, max %.3f, largest deviation %.0f %%", m.name, med/1e3, s[0]/1e3, s[len(s)-1]/1e3, 100*dev)
		b.ReportMetric(100*dev, "maxdev%/"+m.name)
	}
}

func TestLoopTimesParse(t *testing.T) {
	tests := []struct {
		line               string
		probed, sock, null float64
		err                bool
	}{
		// Four blocks; one spoiled block (an interrupt) in each loop moves
		// nothing: medians of paired differences, lower quartiles.
		{"CALIB probed=110,110,900,110 twin=10,10,10,10 sock=50,50,50,400 null=20,300,20,20 acc=7", 400, 200, 80, false},
		{"CALIB probed=10,20 twin=1,2 sock=5,5 null=1,1 acc=1", 36, 10, 2, false},
		{"CALIB probed=1,2 twin=1 sock=1,1 null=1,1 acc=1", 0, 0, 0, true},
		{"CALIB probed=x twin=1 sock=1 null=1 acc=1", 0, 0, 0, true},
		{"garbage", 0, 0, 0, true},
	}
	for _, tc := range tests {
		var l loopTimes
		err := l.parse(tc.line)
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v, want error %v", tc.line, err, tc.err)
			continue
		}
		if err == nil && (l.probed != tc.probed || l.sock != tc.sock || l.null != tc.null) {
			t.Errorf("%q: probed %g sock %g null %g, want %g %g %g", tc.line, l.probed, l.sock, l.null, tc.probed, tc.sock, tc.null)
		}
	}
}

// TestCalibrationChild: the child's main runs the loops after a line on
// stdin and prints one CALIB line; a missing or bad count is exit code 1.
func TestCalibrationChild(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // prefix of stdout
		err  string // in stderr
	}{
		{[]string{"3"}, 0, "CALIB ", ""},
		{nil, 1, "", "initprof calibration:"},
		{[]string{"zero"}, 1, "", "0 loops"},
	} {
		var stdout, stderr strings.Builder
		code := CalibrationChild(tc.args, strings.NewReader("go\n"), &stdout, &stderr)
		if code != tc.code || !strings.HasPrefix(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("CalibrationChild(%q) = %d, stdout %q, stderr %q; want %d, %q…, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
		}
	}
}

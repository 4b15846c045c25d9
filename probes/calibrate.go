package probes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Calibration measures what the probes cost on this machine, so that a run's
// report turns its event counts into an overhead with this machine's prices
// rather than constants from another one: a uprobe trap costs ~10 µs on the
// development VM, ~1–2 µs on bare metal and far more under qemu TCG.
//
// A child process (the calling program itself, re-executed: see
// RunCalibrationLoops) runs three loops, timed by its thread CPU clock:
//   - calls to calibProbed, on which the tracer puts a uprobe, beside calls to
//     its unprobed twin: the difference is one uprobe hit;
//   - 1-byte writes and reads on a UNIX socketpair: syscall tracepoints plus a
//     socket event with its payload when the child is followed;
//   - 1-byte writes to /dev/null: syscall tracepoints, no event.
//
// The child runs followed and not followed, interleaved, several times; the
// medians' differences are the per-event costs.

// calibProbedSym is calibProbed's symbol in the Go binary.
const calibProbedSym = "github.com/initprof/initprof/probes.calibProbed"

// calibrationCheckpoint is the user checkpoint name its hits carry.
const calibrationCheckpoint = UserCheckpointPrefix + "calibration"

//go:noinline
func calibProbed(x int) int { return x + 1 }

//go:noinline
func calibTwin(x int) int { return x + 1 }

// Costs are per-event probe costs in ns of the probed thread's CPU time.
type Costs struct {
	UprobeHitNs   float64 // one uprobe (or uretprobe) hit: the trap and the program
	SocketEventNs float64 // one traced socket syscall with its payload event
	TracepointNs  float64 // one traced syscall that makes no event
	Loops         int     // iterations per loop
}

// CalibrationArg is the argument that makes a program call RunCalibrationLoops
// (see Calibrate's argv).
const CalibrationArg = "__initprof-calibrate"

// RunCalibrationLoops is the child's side of Calibrate: after a line on
// stdin (the parent follows it first), it runs the loops n times each and
// writes one line "CALIB probed=… twin=… sock=… null=…" of thread CPU ns.
func RunCalibrationLoops(n int, stdin io.Reader, stdout io.Writer) error {
	if n < 1 {
		return fmt.Errorf("calibration: %d loops", n)
	}
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	null, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	one, buf := []byte("x"), make([]byte, 64)
	acc := 0
	timed := func(f func()) int64 {
		t0 := threadCPU()
		f()
		return threadCPU() - t0
	}
	probed := timed(func() {
		for i := 0; i < n; i++ {
			acc = calibProbed(acc)
		}
	})
	twin := timed(func() {
		for i := 0; i < n; i++ {
			acc = calibTwin(acc)
		}
	})
	var ioErr error
	sock := timed(func() {
		for i := 0; i < n && ioErr == nil; i++ {
			if _, ioErr = unix.Write(sv[0], one); ioErr == nil {
				_, ioErr = unix.Read(sv[1], buf)
			}
		}
	})
	nul := timed(func() {
		for i := 0; i < n && ioErr == nil; i++ {
			_, ioErr = unix.Write(null, one)
		}
	})
	if ioErr != nil {
		return ioErr
	}
	_, err = fmt.Fprintf(stdout, "CALIB probed=%d twin=%d sock=%d null=%d acc=%d\n", probed, twin, sock, nul, acc)
	return err
}

// threadCPU is this thread's CPU time in ns. The loops run on one goroutine
// with no blocking call, so they stay on one thread.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// Calibrate measures Costs with t, which must have been created with
// Options.Calibration = exe: it runs `exe CalibrationArg n` (whose main calls
// RunCalibrationLoops) reps times followed and reps times not, interleaved.
// It leaves t stopped: call Follow for the next run.
func (t *Tracer) Calibrate(exe string, n, reps int) (Costs, error) {
	if !t.calibrated {
		return Costs{}, errors.New("probes: calibration: the tracer has no calibration probe (Options.Calibration)")
	}
	if n < 1 {
		return Costs{}, fmt.Errorf("probes: calibration: %d loops", n)
	}
	reps = max(reps, 1)
	argv := []string{exe, CalibrationArg, fmt.Sprint(n)}
	var on, off []loopTimes
	for i := 0; i < 2*reps; i++ {
		follow := i%2 == 0
		l, err := t.calibrationChild(argv, follow)
		if err != nil {
			return Costs{}, err
		}
		if follow {
			on = append(on, l)
		} else {
			off = append(off, l)
		}
	}
	if err := t.Stop(); err != nil {
		return Costs{}, err
	}
	med := func(ls []loopTimes, f func(loopTimes) float64) float64 {
		v := make([]float64, len(ls))
		for i, l := range ls {
			v[i] = f(l)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	probed := med(on, func(l loopTimes) float64 { return l.probed - l.twin })
	sockOn, sockOff := med(on, func(l loopTimes) float64 { return l.sock }), med(off, func(l loopTimes) float64 { return l.sock })
	nullOn, nullOff := med(on, func(l loopTimes) float64 { return l.null }), med(off, func(l loopTimes) float64 { return l.null })
	return Costs{
		UprobeHitNs: max(probed, 0) / float64(n),
		// A socket iteration is two traced syscalls (write, read), each an event.
		SocketEventNs: max(sockOn-sockOff, 0) / float64(2*n),
		TracepointNs:  max(nullOn-nullOff, 0) / float64(n),
		Loops:         n,
	}, nil
}

// loopTimes are one child's loop times in thread CPU ns.
type loopTimes struct{ probed, twin, sock, null float64 }

// calibrationChild runs the loops once, followed or not, and parses its line.
func (t *Tracer) calibrationChild(argv []string, follow bool) (l loopTimes, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w, err := cmd.StdinPipe()
	if err != nil {
		return l, err
	}
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		return l, fmt.Errorf("probes: calibration child: %w", err)
	}
	if follow {
		err = t.Follow(cmd.Process.Pid)
	} else {
		err = t.Stop()
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return l, err
	}
	fmt.Fprintln(w, "go")
	w.Close()
	if err := cmd.Wait(); err != nil {
		return l, fmt.Errorf("probes: calibration child: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if follow {
		// Drain its events: they are the calibration's, not a run's.
		if _, _, err := t.Collect(); err != nil {
			return l, err
		}
	}
	var acc int
	if _, err := fmt.Sscanf(strings.TrimSpace(out.String()), "CALIB probed=%f twin=%f sock=%f null=%f acc=%d",
		&l.probed, &l.twin, &l.sock, &l.null, &acc); err != nil {
		return l, fmt.Errorf("probes: calibration child printed %q: %v", out.String(), err)
	}
	return l, nil
}

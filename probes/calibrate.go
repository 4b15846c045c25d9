package probes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
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
//   - 1-byte writes to /dev/null: syscall tracepoints, no event;
//   - calls to calibProbedClock, also probed, which reads CLOCK_MONOTONIC as
//     its first act: the reading minus the probe's timestamp is how long the
//     trap takes to return to the program after the probe's clock read. That
//     latency is why an entry checkpoint (main) came out 7–130 µs before the
//     program's own first clock reading, depending on the machine; the tracer
//     adds it to every uprobe time once calibrated (Costs.UprobeReturnNs).
//
// The child runs followed and not followed, interleaved, several times; the
// medians' differences are the per-event costs.

// calibProbedSym is calibProbed's symbol in the Go binary.
const calibProbedSym = "github.com/initprof/initprof/probes.calibProbed"

// calibrationCheckpoint is the user checkpoint name its hits carry.
const calibrationCheckpoint = UserCheckpointPrefix + "calibration"

//go:noinline
func calibProbed(x int) int { return x + 1 }

// calibClockSym is calibProbedClock's symbol in the Go binary.
const calibClockSym = "github.com/initprof/initprof/probes.calibProbedClock"

// calibrationClockCheckpoint is the checkpoint name of calibProbedClock's hits.
const calibrationClockCheckpoint = UserCheckpointPrefix + "calibration-clock"

// calibClockCalls is how many calibProbedClock readings a child makes.
const calibClockCalls = 200

// calibProbedClock reads CLOCK_MONOTONIC (the clock of the probes' timestamps)
// with a raw syscall, so no first-call vDSO cost is in the reading.
//
//go:noinline
func calibProbedClock() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

//go:noinline
func calibTwin(x int) int { return x + 1 }

// Costs are per-event probe costs in ns of the probed thread's CPU time.
type Costs struct {
	UprobeHitNs   float64 // one uprobe (or uretprobe) hit: the trap and the program
	SocketEventNs float64 // one traced socket syscall with its payload event
	TracepointNs  float64 // one traced syscall that makes no event
	// UprobeReturnNs is the median time from a uprobe's timestamp to the
	// probed function's first clock reading (wall ns): the trap's return.
	// 0 when it could not be measured.
	UprobeReturnNs float64
	Loops          int // iterations per loop
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
	// The loops run in calibBlocks rounds, each loop once per round, so
	// an interrupt or a migration spoils one block, not a whole figure, and
	// slow drift hits every loop alike; the host takes robust statistics
	// over the blocks.
	m := max(n/calibBlocks, 1)
	var probed, twin, sock, nul []string
	var ioErr error
	for b := 0; b < calibBlocks && ioErr == nil; b++ {
		probed = append(probed, fmt.Sprint(timed(func() {
			for i := 0; i < m; i++ {
				acc = calibProbed(acc)
			}
		})))
		twin = append(twin, fmt.Sprint(timed(func() {
			for i := 0; i < m; i++ {
				acc = calibTwin(acc)
			}
		})))
		sock = append(sock, fmt.Sprint(timed(func() {
			for i := 0; i < m && ioErr == nil; i++ {
				if _, ioErr = unix.Write(sv[0], one); ioErr == nil {
					_, ioErr = unix.Read(sv[1], buf)
				}
			}
		})))
		nul = append(nul, fmt.Sprint(timed(func() {
			for i := 0; i < m && ioErr == nil; i++ {
				_, ioErr = unix.Write(null, one)
			}
		})))
	}
	if ioErr != nil {
		return ioErr
	}
	clocks := make([]string, calibClockCalls)
	for i := range clocks {
		clocks[i] = fmt.Sprint(calibProbedClock())
	}
	_, err = fmt.Fprintf(stdout, "CALIB probed=%s twin=%s sock=%s null=%s acc=%d\nCLOCK %s\n",
		strings.Join(probed, ","), strings.Join(twin, ","), strings.Join(sock, ","), strings.Join(nul, ","), acc, strings.Join(clocks, " "))
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
	var returns []float64
	for i := 0; i < 2*reps; i++ {
		follow := i%2 == 0
		l, err := t.calibrationChild(argv, follow)
		if err != nil {
			return Costs{}, err
		}
		if follow {
			on = append(on, l)
			returns = append(returns, l.returns...)
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
	var ret float64
	if len(returns) > 0 {
		sort.Float64s(returns)
		ret = max(returns[len(returns)/2], 0)
	}
	t.uprobeReturnNs = int64(ret)
	return Costs{
		UprobeReturnNs: ret,
		UprobeHitNs:    max(probed, 0) / float64(n),
		// A socket iteration is two traced syscalls (write, read), each an event.
		SocketEventNs: max(sockOn-sockOff, 0) / float64(2*n),
		TracepointNs:  max(nullOn-nullOff, 0) / float64(n),
		Loops:         n,
	}, nil
}

// loopTimes are one child's loop times in thread CPU ns.
// calibBlocks is how many rounds a calibration child splits its loops into.
const calibBlocks = 8

// parse reads a child's "CALIB probed=B,B,… twin=… sock=… null=… acc=N"
// line (thread CPU ns per block) into robust per-loop totals: the median
// over blocks of probed−twin (paired, so a spoiled block costs one pair),
// and the lower quartile of the socket and null loops (interference only
// ever adds time). Totals are scaled back to all the child's iterations.
func (l *loopTimes) parse(line string) error {
	f := strings.Fields(line)
	if len(f) != 6 || f[0] != "CALIB" {
		return errors.New("want CALIB probed=… twin=… sock=… null=… acc=…")
	}
	var cols [4][]float64
	for i, key := range []string{"probed=", "twin=", "sock=", "null="} {
		v, ok := strings.CutPrefix(f[1+i], key)
		if !ok {
			return fmt.Errorf("field %d: want %s", i+1, key)
		}
		for _, x := range strings.Split(v, ",") {
			n, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return err
			}
			cols[i] = append(cols[i], n)
		}
	}
	b := len(cols[0])
	if b == 0 || len(cols[1]) != b || len(cols[2]) != b || len(cols[3]) != b {
		return errors.New("the loops have different block counts")
	}
	diff := make([]float64, b)
	for i := range diff {
		diff[i] = cols[0][i] - cols[1][i]
	}
	scale := float64(b)
	l.probed, l.twin = quantile(diff, 0.5)*scale, 0
	l.sock, l.null = quantile(cols[2], 0.25)*scale, quantile(cols[3], 0.25)*scale
	return nil
}

// quantile is the q-quantile of v (nearest rank; v is not modified).
func quantile(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

type loopTimes struct {
	probed, twin, sock, null float64
	returns                  []float64 // per calibProbedClock call: reading − probe time, ns
}

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
	var hits []uint64 // calibProbedClock's probe times, in call order
	if follow {
		// Drain its events: they are the calibration's, not a run's.
		evs, _, err := t.collect(false)
		if err != nil {
			return l, err
		}
		for _, e := range evs {
			if e.Kind == KindUprobe && e.Checkpoint == calibrationClockCheckpoint {
				hits = append(hits, e.Time)
			}
		}
	}
	first, rest, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	if err := l.parse(first); err != nil {
		return l, fmt.Errorf("probes: calibration child printed %q: %v", out.String(), err)
	}
	clocks := strings.Fields(strings.TrimPrefix(rest, "CLOCK "))
	// Pair the readings with the hits only when none was lost.
	if follow && len(hits) == len(clocks) {
		for i, c := range clocks {
			v, err := strconv.ParseInt(c, 10, 64)
			if err != nil {
				return l, fmt.Errorf("probes: calibration child printed clock %q: %v", c, err)
			}
			l.returns = append(l.returns, float64(v-int64(hits[i])))
		}
	}
	return l, nil
}

// CalibrationChild is the main of a program started with CalibrationArg:
// args are what follows it (the loop count). It runs RunCalibrationLoops
// and returns the exit code, saying on stderr what went wrong.
func CalibrationChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	n := 0
	if len(args) == 1 {
		fmt.Sscan(args[0], &n)
	}
	if err := RunCalibrationLoops(n, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "initprof calibration:", err)
		return 1
	}
	return 0
}

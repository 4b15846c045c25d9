package probes

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
	"golang.org/x/sys/unix"
)

func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func median(xs []float64) float64 {
	a := append([]float64(nil), xs...)
	sort.Float64s(a)
	if len(a) == 0 {
		return 0
	}
	if len(a)%2 == 1 {
		return a[len(a)/2]
	}
	return (a[len(a)/2-1] + a[len(a)/2]) / 2
}

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("INITPROF_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 50
}

// BenchmarkOverhead measures what the timing probes cost a cold start, next
// to strace -f and perf trace on the same runs. The metric is the time from
// the harness starting the process (CLOCK_MONOTONIC just before fork) to the
// sample's own "before_next" checkpoint (just before it writes its first
// GET /next), the same ruler in every mode; the CPU time of the run (the
// target, plus strace or perf themselves, from rusage) is reported beside it
// because it is less sensitive to other load on the machine. Modes run interleaved so drift
// hits all of them. It reports numbers; it asserts nothing about them.
//
// Set INITPROF_BENCH_N to change the number of runs per mode (default 50), and
// INITPROF_BENCH_NO_MULTI=1 to measure perf-event uprobes instead of uprobe_multi.
func BenchmarkOverhead(b *testing.B) {
	testutil.RequireRoot(b)
	bin := testutil.Sample(b, "cext-now")
	api := startPlatform(b)
	env := append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+api)
	noMulti := os.Getenv("INITPROF_BENCH_NO_MULTI") != "" // compare perf-event uprobes
	tr := newTracer(b, Options{Executables: []string{bin}, LdSo: hostLdSo, RingBytes: 64 << 20, NoUprobeMulti: noMulti})

	type mode struct {
		name  string
		cmd   func() *exec.Cmd
		setup func()
		after func()
	}
	var uprobeHits, events []float64
	var drops uint64
	modes := []mode{
		{name: "none", cmd: func() *exec.Cmd { return exec.Command(bin) }},
		{name: "initprof", cmd: func() *exec.Cmd { return exec.Command(bin) },
			setup: func() { tr.FollowChildren(os.Getpid()) },
			after: func() {
				evs, st, err := tr.Collect()
				if err != nil {
					b.Fatal(err)
				}
				drops += st.Dropped
				n := 0
				for _, e := range evs {
					if e.Kind == KindUprobe || e.Kind == KindUretprobe {
						n++
					}
				}
				uprobeHits = append(uprobeHits, float64(n))
				events = append(events, float64(len(evs)))
				tr.Stop() // follow nothing until the next initprof run
			}},
	}
	if p, err := exec.LookPath("strace"); err == nil {
		modes = append(modes, mode{name: "strace -f", cmd: func() *exec.Cmd { return exec.Command(p, "-f", "-qq", "-o", "/dev/null", bin) }})
	}
	if p, err := exec.LookPath("perf"); err == nil {
		if exec.Command(p, "trace", "-o", "/dev/null", "--", "/bin/true").Run() == nil {
			modes = append(modes, mode{name: "perf trace", cmd: func() *exec.Cmd { return exec.Command(p, "trace", "-o", "/dev/null", "--", bin) }})
		} else {
			b.Log("perf trace does not run here; skipping that mode")
		}
	}

	n := benchRuns()
	results := map[string][]float64{}
	mainToNext := map[string][]float64{}
	cpu := map[string][]float64{} // CPU time of the whole run (target + tracer tool's children)
	for i := 0; i < n+2; i++ {    // two warm-up rounds, not counted
		for _, m := range modes {
			if m.setup != nil {
				m.setup()
			}
			cmd := m.cmd()
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout = &out
			t0 := monoNow()
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v\n%s", m.name, err, out.String())
			}
			if m.after != nil {
				m.after()
			}
			cps := parseCheckpoints(out.String())
			next, ok := cps["before_next"]
			if !ok {
				b.Fatalf("%s: no before_next checkpoint in\n%s", m.name, out.String())
			}
			if i >= 2 {
				st := cmd.ProcessState
				cpu[m.name] = append(cpu[m.name], float64(st.UserTime()+st.SystemTime())/1e3)
				results[m.name] = append(results[m.name], float64(next-t0)/1e3)
				mainToNext[m.name] = append(mainToNext[m.name], float64(next-cps["main"])/1e3)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &load[0], &load[1], &load[2])
	}
	b.Logf("load average %.2f (other work on the machine inflates every mode)", load[0])
	base, baseCPU := median(results["none"]), median(cpu["none"])
	for _, m := range modes {
		med, c := median(results[m.name]), median(cpu[m.name])
		b.Logf("%-10s start→first /next median %8.0f µs (%+6.1f%%)   CPU %7.0f µs (%+6.1f%%)   main→/next %6.0f µs   n=%d",
			m.name, med, 100*(med-base)/base, c, 100*(c-baseCPU)/baseCPU, median(mainToNext[m.name]), len(results[m.name]))
	}
	b.Logf("initprof: %.0f uprobe hits and %.0f events per run (median), %d dropped", median(uprobeHits), median(events), drops)
	b.ReportMetric(100*(median(results["initprof"])-base)/base, "overhead-%")

	loopCosts(b, tr, noMulti)
}

func parseCheckpoints(out string) map[string]uint64 {
	cps := map[string]uint64{}
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, "INIT | checkpoint=")
		if !ok {
			continue
		}
		name, ns, _ := strings.Cut(rest, " mono_ns=")
		if v, err := strconv.ParseUint(ns, 10, 64); err == nil {
			cps[name] = v
		}
	}
	return cps
}

// loopCosts measures the cost of one uprobe hit and one tracepoint event with
// probes/testdata/loop.c, traced and untraced.
func loopCosts(b *testing.B, main *Tracer, noMulti bool) {
	if _, err := exec.LookPath("gcc"); err != nil {
		b.Log("no gcc: skipping the per-probe costs")
		return
	}
	dir := b.TempDir()
	loop := filepath.Join(dir, "loop")
	if out, err := exec.Command("gcc", "-O2", "-o", loop, "testdata/loop.c").CombinedOutput(); err != nil {
		b.Fatalf("gcc loop.c: %v\n%s", err, out)
	}
	// Detach the cext tracer: its system-wide tracepoints would add to both sides.
	main.Close()
	const iters = 100000
	var tr *Tracer
	runLoop := func(mode string, state int) float64 { // 0 no tracer, 1 attached, 2 following
		var samples []float64
		for i := 0; i < 7; i++ {
			switch state {
			case 1:
				tr.Stop()
			case 2:
				tr.FollowChildren(os.Getpid())
			}
			out, err := exec.Command(loop, mode, strconv.Itoa(iters)).Output()
			if err != nil {
				b.Fatalf("loop %s: %v", mode, err)
			}
			var ns uint64
			fmt.Sscanf(string(out), "LOOP ns=%d", &ns)
			if state == 2 {
				_, st, err := tr.Collect()
				if err != nil {
					b.Fatal(err)
				}
				if st.Dropped > 0 {
					b.Logf("loop %s: %d events dropped", mode, st.Dropped)
				}
			}
			samples = append(samples, float64(ns)/iters)
		}
		return median(samples)
	}
	cases := []struct {
		mode, what string
		per        float64 // probed operations per iteration
	}{
		{"call", "uprobe hit", 1},
		{"sock", "socket syscall (enter+exit tracepoints, event with payload)", 2},
		{"null", "non-socket write (enter+exit tracepoints, no event)", 1},
	}
	base := map[string]float64{}
	for _, c := range cases {
		base[c.mode] = runLoop(c.mode, 0)
	}
	tr = newTracer(b, Options{UserProbes: []string{loop + ":probe_me"}, RingBytes: 256 << 20, NoUprobeMulti: noMulti})
	for _, c := range cases {
		untracked := runLoop(c.mode, 1)
		tracked := runLoop(c.mode, 2)
		b.Logf("cost per %-58s traced %6.2f µs, untraced process %6.2f µs (base %.3f µs)",
			c.what, (tracked-base[c.mode])/c.per/1e3, (untracked-base[c.mode])/c.per/1e3, base[c.mode]/c.per/1e3)
	}
}

package probes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// TestMain doubles as the helper process of the cleanup and privilege tests:
// they re-run this binary with INITPROF_PROBES_HELPER set.
func TestMain(m *testing.M) {
	switch os.Getenv("INITPROF_PROBES_HELPER") {
	case "":
		os.Exit(m.Run())
	case "new":
		helperNew()
	case "hold":
		helperHold()
	}
}

// helperNew tries to load the probes and reports how it failed.
func helperNew() {
	t, err := New(Options{Executables: []string{"/bin/true"}, LdSo: hostLdSo})
	if err == nil {
		t.Close()
		fmt.Println("NEW OK")
		os.Exit(0)
	}
	fmt.Printf("ErrPermission=%v\n%v\n", errors.Is(err, ErrPermission), err)
	os.Exit(1)
}

// helperHold attaches everything, follows a sleeping child, says READY and
// waits to be killed: nothing calls Close.
func helperHold() {
	t, err := New(Options{Executables: []string{"/bin/sleep"}, LdSo: hostLdSo})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	_ = t.FollowChildren(os.Getpid())
	cmd := exec.Command("/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ids, _ := json.Marshal(t.ids())
	fmt.Println("READY", cmd.Process.Pid, string(ids))
	cmd.Wait()
	os.Exit(0)
}

// expectedOrder is the checkpoint sequence every dynamically linked sample
// must show, each step strictly after the previous one.
var cOrder = []struct {
	name string
	pred func(*Event) bool
}{
	{"exec", isKind(KindExec)},
	{"exec_done", isKind(KindExecDone)},
	{"ldso_start", isCheckpoint(KindUprobe, CheckpointLdsoStart)},
	{"dl_main", isCheckpoint(KindUprobe, CheckpointDlMain)},
	{"deps_start", isCheckpoint(KindUprobe, CheckpointDepsStart)},
	{"deps_loaded", isCheckpoint(KindUretprobe, CheckpointDepsLoaded)},
	{"relocate", isCheckpoint(KindUprobe, CheckpointRelocate)},
	{"relocated", isCheckpoint(KindUretprobe, CheckpointRelocateDone)},
	{"dl_start_user", isCheckpoint(KindUprobe, CheckpointDlStartUser)},
	{"dl_init", isCheckpoint(KindUprobe, CheckpointDlInit)},
	{"entry", isCheckpoint(KindUprobe, CheckpointEntry)},
	{"exe_init", isCheckpoint(KindUprobe, CheckpointExeInit)},
	{"main", isCheckpoint(KindUprobe, CheckpointMain)},
	{"connect", isKind(KindConnect)},
	{"register sent", isSend("POST /2020-01-01/extension/register ")},
	{"register answered", isRecv("HTTP/1.1 200")},
	{"bind", isKind(KindBind)},
	{"listen", isKind(KindListen)},
	{"subscribe sent", isSend("PUT /2022-07-01/telemetry ")},
	{"next sent", isSend("GET /2020-01-01/extension/event/next ")},
	{"exit", isKind(KindExit)},
}

func TestCheckpointsC(t *testing.T) {
	testutil.RequireRoot(t)
	for _, name := range []string{"cext-now", "cext-lazy"} {
		t.Run(name, func(t *testing.T) {
			bin := testutil.Sample(t, name)
			api := startPlatform(t)
			tr := newTracer(t, Options{Executables: []string{bin}, LdSo: hostLdSo})
			if m := tr.Unavailable(); len(m) > 0 {
				t.Fatalf("unavailable checkpoints on a host with libc6-dbg: %v", m)
			}
			r := traceRun(t, tr, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + api})

			var last uint64
			for _, step := range cOrder {
				e, ok := r.first(step.pred)
				if !ok {
					t.Fatalf("checkpoint %s missing; timeline:\n%s", step.name, r.dump())
				}
				if e.Time <= last {
					t.Errorf("checkpoint %s at %d is not after the previous one (%d)", step.name, e.Time, last)
				}
				last = e.Time
			}
			// The relocation span lies between deps_loaded and dl_start_user.
			deps, _ := r.first(isCheckpoint(KindUretprobe, CheckpointDepsLoaded))
			su, _ := r.first(isCheckpoint(KindUprobe, CheckpointDlStartUser))
			var objs []string
			var enters, returns int
			for _, e := range r.of() {
				if e.Checkpoint != CheckpointRelocate && e.Checkpoint != CheckpointRelocateDone {
					continue
				}
				if e.Time < deps.Time || e.Time > su.Time {
					t.Errorf("relocation event outside deps_loaded..dl_start_user: %s", e.String())
				}
				if e.Kind == KindUprobe {
					enters++
					objs = append(objs, e.Object)
				} else {
					returns++
				}
			}
			want := ldTraceObjects(t, bin)
			want = append(want, "") // the executable: its link_map l_name is ""
			sort.Strings(want)
			sort.Strings(objs)
			if !slices.Equal(objs, want) {
				t.Errorf("relocated objects differ from the loaded objects (ld.so's list + the executable):\n got %d %q\nwant %d %q", len(objs), objs, len(want), want)
			}
			if returns != enters {
				t.Errorf("%d _dl_relocate_object entries but %d returns", enters, returns)
			}

			start, _ := r.first(isCheckpoint(KindUprobe, CheckpointLdsoStart))
			exit, _ := r.first(isKind(KindExit))
			if exit.Faults == 0 || deps.Faults <= start.Faults {
				t.Errorf("page faults not counted: ldso_start %d, deps_loaded %d, exit %d", start.Faults, deps.Faults, exit.Faults)
			}
			if exit.ExitCode != 0 {
				t.Errorf("exit code %d, want 0", exit.ExitCode)
			}
			bind, _ := r.first(isKind(KindBind))
			if bind.Ret != 0 || bind.Family != syscall.AF_INET || bind.Start == 0 || bind.Start > bind.Time {
				t.Errorf("bind event incomplete: %+v", bind)
			}
			// mmaps of code are named after their file's full path (from openat).
			var libc bool
			for _, e := range r.of() {
				if e.Exec() && strings.HasSuffix(e.Path, "/libc.so.6") && strings.HasPrefix(e.Path, "/") {
					libc = true
				}
			}
			if !libc {
				t.Errorf("no PROT_EXEC mmap of libc.so.6 with its full path")
			}
		})
	}
}

// ldTraceObjects lists the objects ld.so itself says it loads for bin (what
// ldd prints), without the vDSO: the ground truth for the relocation count.
func ldTraceObjects(t *testing.T, bin string) []string {
	t.Helper()
	cmd := exec.Command(hostLdSo, bin)
	cmd.Env = []string{"LD_TRACE_LOADED_OBJECTS=1"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("LD_TRACE_LOADED_OBJECTS=1 %s: %v", bin, err)
	}
	var objs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>":
			objs = append(objs, f[2])
		case len(f) == 2 && strings.HasPrefix(f[0], "/"):
			objs = append(objs, f[0]) // ld.so itself
		}
	}
	return objs
}

func TestOffCPUSplitsBlockedTime(t *testing.T) {
	tr := newTracer(t, Options{})
	r := traceRun(t, tr, "/bin/sleep", nil, "0.02")
	var blocked uint64
	for _, e := range r.of() {
		if e.Kind != KindOffCPU {
			continue
		}
		if e.Start == 0 || e.Start >= e.Time {
			t.Errorf("bad off-CPU interval %+v", e)
		}
		if !e.Runnable {
			blocked += e.Time - e.Start
		}
	}
	// The sleep is off the CPU and not runnable: blocked, however long.
	if blocked == 0 {
		t.Errorf("sleep 0.02 shows no blocked interval; timeline:\n%s", r.dump())
	}
}

// TestCheckpointsAgainstTargetClock: the probes' main and bind events exist,
// come in the order the program printed its own clock readings, and each is
// attributed to the run's process. How close they are is a figure, not a
// behaviour: BenchmarkAccuracy measures it.
func TestCheckpointsAgainstTargetClock(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.Sample(t, "cext-now")
	api := startPlatform(t)
	tr := newTracer(t, Options{Executables: []string{bin}, LdSo: hostLdSo})
	r := traceRun(t, tr, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + api})
	m, ok1 := r.first(isCheckpoint(KindUprobe, CheckpointMain))
	b, ok2 := r.first(isKind(KindBind))
	pm, ok3 := r.checkpoints["main"]
	pb, ok4 := r.checkpoints["listener_bound"]
	if !ok1 || !ok2 || !ok3 || !ok4 {
		t.Fatalf("missing main or bind (probe %v %v, printed %v %v); timeline:\n%s", ok1, ok2, ok3, ok4, r.dump())
	}
	if m.PID != r.pid || b.PID != r.pid {
		t.Errorf("main in pid %d, bind in pid %d, want the run's %d", m.PID, b.PID, r.pid)
	}
	if !(m.Time < b.Time) || !(pm < pb) {
		t.Errorf("main %d before bind %d (printed %d before %d): want main first in both", m.Time, b.Time, pm, pb)
	}
	// Each probe event falls between the printed readings around it.
	if b.Time < pm {
		t.Errorf("bind probed at %d, before the program printed main (%d)", b.Time, pm)
	}
}

// BenchmarkAccuracy holds the probes against the target's own clock readings:
// the C sample reads CLOCK_MONOTONIC as the first statement of main and right
// after bind returns. It reports the median signed error (probe − program) of
// main, of main as the program reads it with a raw syscall before its first
// vDSO read (main_sys), and of bind. main_sys − main is the reference clock's
// own first-call cost, not the probe's error.
func BenchmarkAccuracy(b *testing.B) {
	testutil.RequireRoot(b)
	bin := testutil.Sample(b, "cext-now")
	self := testutil.BuildInitprof(b)
	api := startPlatform(b)
	tr := newTracer(b, Options{Executables: []string{bin}, LdSo: hostLdSo, Calibration: self})
	c, err := tr.Calibrate(self, 2000, 3)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("calibrated uprobe return %.1f µs (added to uprobe times; 'raw' is without it)", c.UprobeReturnNs/1e3)
	runs := benchRuns()
	errs := map[string][]float64{}
	for i := 0; i < runs; i++ {
		r := traceRun(b, tr, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + api, "INITPROF_SAMPLE_CLOCK_SYSCALL=1"})
		m, ok1 := r.first(isCheckpoint(KindUprobe, CheckpointMain))
		bd, ok2 := r.first(isKind(KindBind))
		pm, ok3 := r.checkpoints["main"]
		pb, ok4 := r.checkpoints["listener_bound"]
		ps, ok5 := r.checkpoints["main_sys"]
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			b.Fatalf("run %d: missing main or bind (probe %v %v, printed %v %v %v)", i, ok1, ok2, ok3, ok4, ok5)
		}
		raw := m.Time - uint64(r.stats.UprobeReturnNs)
		errs["main-raw"] = append(errs["main-raw"], float64(int64(raw-pm))/1e3)
		errs["main"] = append(errs["main"], float64(int64(m.Time-pm))/1e3)
		errs["main_sys-raw"] = append(errs["main_sys-raw"], float64(int64(raw-ps))/1e3)
		errs["main_sys"] = append(errs["main_sys"], float64(int64(m.Time-ps))/1e3)
		errs["bind"] = append(errs["bind"], float64(int64(bd.Time-pb))/1e3)
	}
	for _, name := range []string{"main-raw", "main", "main_sys-raw", "main_sys", "bind"} {
		e := errs[name]
		b.Logf("%-12s median error %+6.1f µs, median |error| %5.1f µs over %d runs (signed µs: %.1f)", name, median(e), medianAbs(e), runs, e)
		b.ReportMetric(median(e), "µs-err-"+name)
	}
}

func medianAbs(xs []float64) float64 {
	a := make([]float64, len(xs))
	for i, x := range xs {
		if x < 0 {
			x = -x
		}
		a[i] = x
	}
	sort.Float64s(a)
	n := len(a)
	if n%2 == 1 {
		return a[n/2]
	}
	return (a[n/2-1] + a[n/2]) / 2
}

func TestGoTarget(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.Sample(t, "goext")
	api := startPlatform(t)
	tr := newTracer(t, Options{Executables: []string{bin}})
	if m := tr.Unavailable(); len(m) > 0 {
		t.Errorf("unavailable: %v", m)
	}
	r := traceRun(t, tr, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + api})
	var last uint64
	for _, step := range []struct {
		name string
		pred func(*Event) bool
	}{
		{"exec", isKind(KindExec)},
		{"entry", isCheckpoint(KindUprobe, CheckpointEntry)},
		{"main.main", isCheckpoint(KindUprobe, CheckpointGoMain)},
		{"register sent", isSend("POST /2020-01-01/extension/register ")},
		{"register answered", isRecv("HTTP/1.1 200")},
		{"subscribe sent", isSend("PUT /2022-07-01/telemetry ")},
		{"next sent", isSend("GET /2020-01-01/extension/event/next ")},
		{"exit", isKind(KindExit)},
	} {
		e, ok := r.first(step.pred)
		if !ok {
			t.Fatalf("%s missing; timeline:\n%s", step.name, r.dump())
		}
		if e.Time < last {
			t.Errorf("%s at %d is before the previous checkpoint (%d)", step.name, e.Time, last)
		}
		last = e.Time
	}
	// The probe sits past the stack-bound check (goPrologueSkip), so it fires
	// once, as main.main starts, after the runtime's entry (the order above). BenchmarkGoMainAccuracy measures how close.
	n := 0
	for _, e := range r.of() {
		if isCheckpoint(KindUprobe, CheckpointGoMain)(&e) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("main.main probed %d times, want once", n)
	}
}

// BenchmarkGoMainAccuracy holds the main.main probe against the Go sample's own
// clock reading as main.main's first statement (median signed error, probe −
// program). On the stack-bound check itself the error was ~27 µs.
func BenchmarkGoMainAccuracy(b *testing.B) {
	testutil.RequireRoot(b)
	bin := testutil.Sample(b, "goext")
	api := startPlatform(b)
	tr := newTracer(b, Options{Executables: []string{bin}})
	runs := benchRuns()
	var errs []float64
	for i := 0; i < runs; i++ {
		r := traceRun(b, tr, bin, []string{"AWS_LAMBDA_RUNTIME_API=" + api})
		m, ok1 := r.first(isCheckpoint(KindUprobe, CheckpointGoMain))
		pm, ok2 := r.checkpoints["main"]
		if !ok1 || !ok2 {
			b.Fatalf("run %d: main.main probe %v, printed main %v", i, ok1, ok2)
		}
		errs = append(errs, float64(int64(m.Time-pm))/1e3)
	}
	b.Logf("main.main: median error %+.1f µs, median |error| %.1f µs over %d runs (signed µs: %.1f)", median(errs), medianAbs(errs), runs, errs)
	b.ReportMetric(median(errs), "µs-err-main.main")
}

func TestGoPrologueSkip(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want uint64
	}{
		{"JBE rel8", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x70, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83}, 6},
		{"JBE rel32", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x10, 0x01, 0x00, 0x00, 0x55, 0x48}, 10},
		{"large frame: LEAQ first", []byte{0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10}, 0},
		{"no PUSHQ BP after the check", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x70, 0x48, 0x83, 0xec, 0x18, 0x90, 0x90}, 0},
		{"C function", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x41, 0x57, 0x41, 0x56, 0x41, 0x55, 0x41, 0x54}, 0},
		{"too short", []byte{0x49, 0x3b, 0x66, 0x10, 0x76}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := goPrologueSkip(tc.code); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPerfEventFallback(t *testing.T) {
	tr := newTracer(t, Options{Executables: []string{"/bin/true"}, LdSo: hostLdSo, NoUprobeMulti: true})
	r := traceRun(t, tr, "/bin/true", nil)
	if r.stats.Multi {
		t.Fatal("NoUprobeMulti ignored")
	}
	for _, cp := range []string{CheckpointLdsoStart, CheckpointDlMain, CheckpointDlInit, CheckpointEntry} {
		if _, ok := r.first(isCheckpoint(KindUprobe, cp)); !ok {
			t.Errorf("%s missing with perf-event uprobes; timeline:\n%s", cp, r.dump())
		}
	}
}

// kernelObjects is what bpftool sees loaded: program IDs (with names) and
// link IDs (with the program each holds).
type kernelObjects struct {
	progs map[uint32]string
	links map[uint32]uint32
}

func bpftoolObjects(t *testing.T) kernelObjects {
	t.Helper()
	ko := kernelObjects{progs: map[uint32]string{}, links: map[uint32]uint32{}}
	var progs []struct {
		ID   uint32 `json:"id"`
		Name string `json:"name"`
	}
	var links []struct {
		ID     uint32 `json:"id"`
		ProgID uint32 `json:"prog_id"`
	}
	for _, c := range []struct {
		kind string
		v    any
	}{{"prog", &progs}, {"link", &links}} {
		out, err := exec.Command("bpftool", "-j", c.kind, "show").Output()
		if err != nil {
			t.Fatalf("bpftool -j %s show: %v", c.kind, err)
		}
		if err := json.Unmarshal(out, c.v); err != nil {
			t.Fatalf("bpftool -j %s show: %v\n%s", c.kind, err, out)
		}
	}
	for _, p := range progs {
		ko.progs[p.ID] = p.Name
	}
	for _, l := range links {
		ko.links[l.ID] = l.ProgID
	}
	return ko
}

// ownIDs are the kernel object IDs of one tracer: IDs are allocated
// cyclically, so checking these exact IDs is immune to other tracers that run
// on the machine at the same time.
type ownIDs struct {
	Progs []uint32 `json:"progs"`
	Links []uint32 `json:"links"`
}

func (t *Tracer) ids() ownIDs {
	var o ownIDs
	for _, p := range t.coll.Programs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				o.Progs = append(o.Progs, uint32(id))
			}
		}
	}
	for _, l := range t.links {
		if info, err := l.Info(); err == nil {
			o.Links = append(o.Links, uint32(info.ID))
		}
	}
	return o
}

// remaining lists which of ids bpftool still shows, by program name.
func remaining(t *testing.T, ids ownIDs) []string {
	ko := bpftoolObjects(t)
	var left []string
	for _, id := range ids.Progs {
		if name, ok := ko.progs[id]; ok {
			left = append(left, fmt.Sprintf("prog %d %s", id, name))
		}
	}
	for _, id := range ids.Links {
		if prog, ok := ko.links[id]; ok {
			left = append(left, fmt.Sprintf("link %d (prog %d %s)", id, prog, ko.progs[prog]))
		}
	}
	return left
}

func uprobeEvents(t *testing.T) string {
	for _, p := range []string{"/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"} {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	t.Skip("no tracefs uprobe_events (mount tracefs on /sys/kernel/tracing)")
	return ""
}

// waitGone polls until none of ids is loaded: the kernel frees programs
// after an RCU grace period, so allow a few seconds.
func waitGone(t *testing.T, ids ownIDs, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := remaining(t, ids)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: BPF objects remain:\n%s", when, strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkVisible fails unless bpftool shows every one of ids under an
// initprof_ name: otherwise the "gone" checks would prove nothing.
func checkVisible(t *testing.T, ids ownIDs) {
	t.Helper()
	if len(ids.Progs) < 8 || len(ids.Links) < 8 {
		t.Fatalf("too few objects to check: %+v", ids)
	}
	left := remaining(t, ids)
	if len(left) != len(ids.Progs)+len(ids.Links) {
		t.Fatalf("bpftool shows %d of the tracer's %d programs and %d links", len(left), len(ids.Progs), len(ids.Links))
	}
	for _, l := range left {
		if !strings.Contains(l, "initprof_") {
			t.Errorf("object without the initprof_ prefix: %s", l)
		}
	}
}

func TestCleanup(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "bpftool")
	before := uprobeEvents(t)

	t.Run("Close", func(t *testing.T) {
		tr, err := New(Options{Executables: []string{"/bin/true"}, LdSo: hostLdSo})
		if err != nil {
			t.Fatal(err)
		}
		ids := tr.ids()
		checkVisible(t, ids)
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, _, err := tr.Collect(); err == nil {
			t.Error("Collect after Close succeeded")
		}
		waitGone(t, ids, "after Close")
		if after := uprobeEvents(t); after != before {
			t.Errorf("uprobe_events changed:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("SIGINT", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "INITPROF_PROBES_HELPER=hold")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		var child int
		var idsJSON string
		if _, err := fmt.Sscanf(line, "READY %d %s", &child, &idsJSON); err != nil {
			t.Fatalf("helper: %q", line)
		}
		defer syscall.Kill(child, syscall.SIGKILL) // the helper's sleep outlives it
		var ids ownIDs
		if err := json.Unmarshal([]byte(idsJSON), &ids); err != nil {
			t.Fatalf("helper ids %q: %v", idsJSON, err)
		}
		checkVisible(t, ids)
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("helper was not killed by SIGINT: %v", err)
		}
		waitGone(t, ids, "after SIGINT")
		if after := uprobeEvents(t); after != before {
			t.Errorf("uprobe_events changed:\nbefore %q\nafter  %q", before, after)
		}
		// A second tracer attaches right after and sees a full run.
		tr := newTracer(t, Options{Executables: []string{"/bin/true"}, LdSo: hostLdSo})
		r := traceRun(t, tr, "/bin/true", nil)
		if _, ok := r.first(isCheckpoint(KindUprobe, CheckpointEntry)); !ok {
			t.Errorf("second tracer saw no entry; timeline:\n%s", r.dump())
		}
	})
}

func TestNoPrivileges(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	// The test binary lives in a 0700 directory; copy it where nobody can run it.
	dir, err := os.MkdirTemp("", "initprof-probes-nopriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probes.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		caps string // ambient capabilities kept by the nobody user
		want []string
	}{
		{"none", "", []string{"ErrPermission=true", "lacks CAP_BPF and CAP_PERFMON", "setcap cap_bpf,cap_perfmon+ep"}},
		{"no perfmon", "+bpf", []string{"ErrPermission=true", "lacks CAP_PERFMON", "setcap"}},
		{"no bpf", "+perfmon", []string{"ErrPermission=true", "lacks CAP_BPF", "setcap"}},
		{"the advised set", "+bpf,+perfmon", []string{"NEW OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
			if tc.caps == "" {
				args = append(args, "--inh-caps=-all", "--bounding-set=-all")
			} else {
				args = append(args, "--inh-caps="+tc.caps, "--ambient-caps="+tc.caps)
			}
			cmd := exec.Command(setpriv, append(args, bin, "-test.run=^$")...)
			cmd.Env = append(os.Environ(), "INITPROF_PROBES_HELPER=new")
			out, err := cmd.CombinedOutput()
			s := string(out)
			if tc.want[0] == "NEW OK" {
				if err != nil {
					t.Fatalf("the advised capabilities are not enough: %v\n%s", err, s)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded with capabilities %q:\n%s", tc.caps, s)
			}
			for _, want := range tc.want {
				if !strings.Contains(s, want) {
					t.Errorf("error output lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

// TestPageFaultPerfEventFallback counts faults the arm64 way (software perf
// events per CPU) and checks the count matches the tracepoint's.
func TestPageFaultPerfEventFallback(t *testing.T) {
	counts := map[bool]uint64{}
	for _, noTP := range []bool{false, true} {
		tr := newTracer(t, Options{Executables: []string{"/bin/true"}, NoFaultTracepoint: noTP})
		r := traceRun(t, tr, "/bin/true", nil)
		exit, ok := r.first(isKind(KindExit))
		if !ok {
			t.Fatalf("no exit event; timeline:\n%s", r.dump())
		}
		counts[noTP] = exit.Faults
		for _, m := range tr.Unavailable() {
			if m.Checkpoint == "page_faults" {
				t.Errorf("page faults unavailable: %s", m)
			}
		}
		tr.Close()
	}
	t.Logf("page faults of /bin/true: tracepoint %d, perf event %d", counts[false], counts[true])
	if counts[true] == 0 || counts[false] == 0 {
		t.Fatalf("no faults counted: %v", counts)
	}
	if d := int64(counts[true]) - int64(counts[false]); d > int64(counts[false])/4 || -d > int64(counts[false])/4 {
		t.Errorf("perf-event count %d and tracepoint count %d differ by more than 25%%", counts[true], counts[false])
	}
}

// TestStrippedLoaderFallback: without ld.so's debug file the run still has the
// loader entry, _dl_debug_state and the executable entry, and says what is missing.
func TestStrippedLoaderFallback(t *testing.T) {
	tr := newTracer(t, Options{Executables: []string{"/bin/true"}, LdSo: hostLdSo, DebugDir: t.TempDir()})
	var reasons []string
	for _, m := range tr.Unavailable() {
		reasons = append(reasons, m.String())
	}
	if !strings.Contains(strings.Join(reasons, "\n"), "libc6-dbg") {
		t.Skipf("ld.so has its own symbols here; nothing to fall back from: %v", reasons)
	}
	r := traceRun(t, tr, "/bin/true", nil)
	var last uint64
	for _, cp := range []string{CheckpointLdsoStart, CheckpointDlDebugState, CheckpointEntry} {
		e, ok := r.first(isCheckpoint(KindUprobe, cp))
		if !ok {
			t.Fatalf("%s missing; timeline:\n%s", cp, r.dump())
		}
		if e.Time <= last {
			t.Errorf("%s out of order", cp)
		}
		last = e.Time
	}
}

// TestUserProbe: a --uprobe FILE:SYMBOL fires once per call.
func TestUserProbe(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "gcc")
	loop := filepath.Join(t.TempDir(), "loop")
	if out, err := exec.Command("gcc", "-O2", "-o", loop, "testdata/loop.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	tr := newTracer(t, Options{Executables: []string{loop}, UserProbes: []string{"probe_me", loop + ":main"}})
	r := traceRun(t, tr, loop, nil, "call", "3")
	calls := 0
	for _, e := range r.of() {
		if e.Kind == KindUprobe && e.Checkpoint == UserCheckpointPrefix+"probe_me" {
			calls++
			if e.File != loop {
				t.Errorf("probe file %q, want %q", e.File, loop)
			}
		}
	}
	if calls != 3 {
		t.Errorf("uprobe:probe_me fired %d times, want 3; timeline:\n%s", calls, r.dump())
	}
	m, ok1 := r.first(isCheckpoint(KindUprobe, CheckpointMain))
	um, ok2 := r.first(isCheckpoint(KindUprobe, UserCheckpointPrefix+"main"))
	if !ok1 || !ok2 || m.Time > um.Time+1000 || um.Time > m.Time+1000 {
		t.Errorf("main (%v) and uprobe:main (%v) should fire together", ok1, ok2)
	}
}

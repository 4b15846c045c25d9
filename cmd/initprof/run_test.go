package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
)

// runResults runs `initprof run` and reads back its results.json.
func runResults(t *testing.T, bin string, args ...string) (*profile.Report, string, string) {
	t.Helper()
	out := t.TempDir()
	args = append([]string{"run", "--out", out}, args...)
	stdout, stderr, code := runInitprof(t, bin, args...)
	if code != exitOK {
		t.Fatalf("initprof %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	rep := readResults(t, out)
	if _, err := os.Stat(filepath.Join(out, "report.txt")); err != nil {
		t.Errorf("report.txt: %v", err)
	}
	return rep, stdout, stderr
}

func requireRunEnv(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	if testing.Short() {
		t.Skip("end-to-end profiling runs are skipped in -short mode")
	}
}

// TestRunEndToEnd profiles the Go and C samples in both sandboxes and holds
// initprof's checkpoints against the samples' own CLOCK_MONOTONIC prints.
func TestRunEndToEnd(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	sandboxes := []string{"process"}
	if _, err := exec.LookPath("runc"); err == nil {
		sandboxes = append([]string{"oci"}, sandboxes...)
	} else {
		t.Log("runc not on PATH: the OCI sandbox case is skipped (install runc)")
	}
	for _, sb := range sandboxes {
		for _, sample := range []string{"cext", "goext"} {
			t.Run(sb+"/"+sample, func(t *testing.T) {
				// A warm cache: with a cold one, the page faults between a
				// function's entry (the uprobe) and the sample's first clock
				// read are real time the sample's own print does not see.
				rep, stdout, _ := runResults(t, bin, "-n", "9", "--sandbox", sb, "--cache", "warm", "--runtime-init", "5ms", testutil.Sample(t, sample))
				if !strings.Contains(stdout, "Init Duration") {
					t.Errorf("report lacks Init Duration:\n%s", stdout)
				}
				// The overhead is priced with this machine's calibrated costs.
				if rep.Overhead == nil || !strings.Contains(rep.Overhead.Method, "calibrated here") || rep.Overhead.PerEventNs <= 0 {
					t.Errorf("probe overhead not from this machine's calibration: %+v", rep.Overhead)
				}
				want := []string{profile.CkSpawn, profile.CkExec, profile.CkExecDone, profile.CkEntry, profile.CkMain,
					profile.CkRegisterSent, profile.CkRegisterOK, profile.CkListenerBound, profile.CkSubscribeSent, profile.CkSubscribeOK, profile.CkNext}
				if sample == "cext" {
					want = append(want, profile.CkLdsoStart, profile.CkDepsLoaded, profile.CkRelocated)
				}
				errs := map[string][]float64{}
				for _, r := range rep.Runs {
					if r.InitStatus != "success" {
						t.Errorf("run %d: init status %q", r.Index, r.InitStatus)
					}
					ext := findProc(r, sample)
					if ext == nil {
						t.Fatalf("run %d: no process %s in %+v", r.Index, sample, r.Processes)
					}
					for _, ck := range want {
						if _, ok := ext.Checkpoint(ck); !ok {
							t.Errorf("run %d: checkpoint %s missing (have %v)", r.Index, ck, ext.Checkpoints)
						}
					}
					// Accuracy against the sample's own prints.
					for _, pair := range [][2]string{{"main", profile.CkMain}, {"listener_bound", profile.CkListenerBound}} {
						truth, ok := reference(r, sample, pair[0])
						got, ok2 := ext.Checkpoint(pair[1])
						if ok && ok2 {
							errs[pair[0]] = append(errs[pair[0]], math.Abs(float64(got-truth)))
						}
					}
					// Init Duration is the platform's initReport figure.
					if d, ok := r.InitDurationNs(); !ok || d <= 0 {
						t.Errorf("run %d: no Init Duration", r.Index)
					}
				}
				for name, e := range errs {
					sort.Float64s(e)
					med := e[len(e)/2]
					// A figure, not a bound (probes' BenchmarkAccuracy records it).
					t.Logf("%s: median |error| vs the sample's own clock %.1f µs over %d runs", name, med/1e3, len(e))
				}
				if len(errs) < 2 {
					t.Errorf("accuracy: could not pair main and listener_bound with the sample's own prints (%v)", errs)
				}
			})
		}
	}
}

func findProc(r profile.Run, name string) *profile.Process {
	for i := range r.Processes {
		if r.Processes[i].Name == name {
			return &r.Processes[i]
		}
	}
	return nil
}

func reference(r profile.Run, proc, name string) (int64, bool) {
	for _, c := range r.Reference {
		if c.Name == proc+":"+name {
			return c.MonoNs, true
		}
	}
	return 0, false
}

// TestRunCriticalPath: with a slow runtime (180 ms) the runtime ends init;
// with a fast one (5 ms) and an extension that spends 120 ms in its own init,
// the extension does.
func TestRunCriticalPath(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	for _, c := range []struct {
		init, env, want string
	}{{"180ms", "INITPROF_SAMPLE_INIT_DELAY_MS=0", "runtime"}, {"5ms", "INITPROF_SAMPLE_INIT_DELAY_MS=120", "cext"}} {
		t.Run(c.init, func(t *testing.T) {
			rep, _, _ := runResults(t, bin, "-n", "3", "--sandbox", "process", "--cache", "warm", "--runtime-init", c.init, "--env", c.env, testutil.Sample(t, "cext"))
			for _, r := range rep.Runs {
				if r.EndedBy != c.want {
					t.Errorf("runtime-init %s, run %d: init ended by %q, want %q", c.init, r.Index, r.EndedBy, c.want)
				}
			}
			if rep.Critical.Leader != c.want {
				t.Errorf("critical path leader %q, want %q", rep.Critical.Leader, c.want)
			}
		})
	}
}

// TestRunColdCache: a cold page cache costs the C sample major faults that a
// warm one does not.
func TestRunColdCache(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	majflt := func(cache string) int64 {
		rep, _, _ := runResults(t, bin, "-n", "3", "--sandbox", "process", "--cache", cache, testutil.Sample(t, "cext"))
		var v []int64
		for _, r := range rep.Runs {
			if r.Sandbox == nil {
				t.Fatalf("run %d has no sandbox cost", r.Index)
			}
			v = append(v, r.Sandbox.MajorFaults)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	warm, cold := majflt("warm"), majflt("cold")
	t.Logf("major faults per run: warm %d, cold %d", warm, cold)
	if cold <= warm {
		t.Errorf("cold cache gave %d major faults, warm %d: want more when cold", cold, warm)
	}
}

// TestRunBadInput: each bad input gets a clear one-line reason, the
// documented exit code, and leaves nothing behind.
func TestRunBadInput(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("just notes, not a program\n"), 0o755) // a #! script is an extension: TestScriptExtensions
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing", []string{filepath.Join(dir, "nope")}, exitBadInput, "nope"},
		{"not ELF", []string{text}, exitBadInput, "not an ELF"},
		{"no args", nil, exitBadInput, "no extension"},
		{"bad memory", []string{"--memory", "64", text}, exitBadInput, "128 to 10240"},
		{"bad sandbox", []string{"--sandbox", "vm2", text}, exitBadInput, "--sandbox"},
		{"no OCI runtime", []string{"--oci-runtime", filepath.Join(dir, "no-runc"), testutil.Sample(t, "cmini")}, exitBadInput, "--sandbox process"},
	}
	if arm := armBinary(t); arm != "" {
		cases = append(cases, struct {
			name string
			args []string
			code int
			want string
		}{"wrong arch", []string{arm}, exitBadInput, "--arch arm64"})
	}
	if lib := unresolvable(t); lib != "" {
		cases = append(cases, struct {
			name string
			args []string
			code int
			want string
		}{"unresolvable library", []string{lib}, exitBadInput, "libinitprofgone.so"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runInitprof(t, bin, append([]string{"run", "--out", t.TempDir()}, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr %q", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q lacks %q", stderr, c.want)
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panic: %s", stderr)
			}
		})
	}
}

func armBinary(t *testing.T) string {
	out := filepath.Join(t.TempDir(), "goext-arm64")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/samples/goext")
	cmd.Dir = testutil.Root(t)
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Logf("cannot build an arm64 binary (%v): %s", err, b)
		return ""
	}
	return out
}

// unresolvable builds a binary linked against a library that is then removed.
func unresolvable(t *testing.T) string {
	if _, err := exec.LookPath("gcc"); err != nil {
		return ""
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "l.c"), []byte("int gone(void){return 1;}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.c"), []byte("int gone(void);int main(void){return gone();}\n"), 0o644)
	for _, a := range [][]string{
		{"-shared", "-fPIC", "-o", filepath.Join(dir, "libinitprofgone.so"), filepath.Join(dir, "l.c")},
		{"-o", filepath.Join(dir, "uses-gone"), filepath.Join(dir, "m.c"), "-L" + dir, "-linitprofgone"},
	} {
		if b, err := exec.Command("gcc", a...).CombinedOutput(); err != nil {
			t.Logf("gcc: %v %s", err, b)
			return ""
		}
	}
	os.Remove(filepath.Join(dir, "libinitprofgone.so"))
	return filepath.Join(dir, "uses-gone")
}

// TestRunFailingExtensions: extensions that exit at once, never register or
// never call /next fail init with exit code 4, the report is still written,
// and no container, cgroup or probe is left.
func TestRunFailingExtensions(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	for _, c := range []struct {
		name string
		env  string
		want string
	}{
		{"exits at once", "INITPROF_SAMPLE_CRASH=register", "error"},
		{"never calls next", "INITPROF_SAMPLE_NONEXT=1", "timeout"},
		{"never registers", "INITPROF_SAMPLE_NOREGISTER=1", "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := progsBefore()
			out := t.TempDir()
			_, stderr, code := runInitprof(t, bin, "run", "--out", out, "-n", "1", "--init-timeout", "1s", "--env", c.env, testutil.Sample(t, "cmini"))
			if code != exitInitFailed {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitInitFailed, stderr)
			}
			b, err := os.ReadFile(filepath.Join(out, "results.json"))
			if err != nil {
				t.Fatalf("the report must still be written: %v", err)
			}
			var res struct {
				Runs []struct {
					InitStatus string `json:"init_status"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(b, &res); err != nil || len(res.Runs) != 1 {
				t.Fatalf("results.json: %v %s", err, b)
			}
			if res.Runs[0].InitStatus != c.want {
				t.Errorf("init status %q, want %q", res.Runs[0].InitStatus, c.want)
			}
			assertNothingLeft(t, before)
		})
	}
}

// TestRunSIGINT interrupts a run series and checks nothing is left behind.
func TestRunSIGINT(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	before := progsBefore()
	cmd := exec.Command(bin, "run", "--out", t.TempDir(), "-n", "50", "--runtime-init", "100ms", testutil.Sample(t, "cmini"))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "run 5/50") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Errorf("after SIGINT: %v, want exit %d; stderr:\n%s", err, exitInterrupted, errb.String())
	}
	assertNothingLeft(t, before)
}

// initprofProgs lists the loaded BPF programs named initprof_*, by id.
func initprofProgs() map[int]string {
	out := map[int]string{}
	bt, err := exec.LookPath("bpftool")
	if err != nil {
		return out
	}
	b, err := exec.Command(bt, "prog", "show", "-j").Output()
	var progs []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	if err == nil && json.Unmarshal(b, &progs) == nil {
		for _, p := range progs {
			if strings.HasPrefix(p.Name, "initprof") {
				out[p.ID] = p.Name
			}
		}
	}
	return out
}

// progsBefore snapshots the initprof BPF programs loaded before a test runs.
func progsBefore() map[int]bool {
	m := map[int]bool{}
	for id := range initprofProgs() {
		m[id] = true
	}
	return m
}

// assertNothingLeft checks that no initprof container, cgroup or BPF program
// (beyond those loaded before the test) remains on the machine.
func assertNothingLeft(t *testing.T, before map[int]bool) {
	t.Helper()
	if rc, err := exec.LookPath("runc"); err == nil {
		out, _ := exec.Command(rc, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			if strings.HasPrefix(id, "initprof-") {
				t.Errorf("container %s left behind", id)
			}
		}
	}
	for _, ctl := range []string{"memory", "cpu", "pids"} {
		ms, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctl, "initprof*", "initprof-*"))
		for _, m := range ms {
			t.Errorf("cgroup %s left behind", m)
		}
	}
	// BPF objects die with their last fd; the kernel frees them
	// asynchronously (after an RCU grace period), so give it a moment. Only
	// programs that appeared since the test began count: another tracer on
	// this machine is not ours to judge.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = left[:0]
		for id, name := range initprofProgs() {
			if !before[id] {
				left = append(left, name)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("BPF programs left behind 5 s after initprof exited: %v", left)
	}
	if b, err := os.ReadFile("/sys/kernel/tracing/uprobe_events"); err == nil && strings.Contains(string(b), "initprof") {
		t.Errorf("uprobe_events still lists initprof probes:\n%s", b)
	}
}

// TestRunRustListener: the bottlecap-shaped Rust sample binds 8125 (UDP),
// 8124 and 8126 before its telemetry listener on 8999, which it subscribes
// to. listener_bound must be that 8999 bind: the probe (bind's return) comes
// before the sample's own listener_bound print, which it takes right after
// the bind returns, and after its print of the step before.
func TestRunRustListener(t *testing.T) {
	requireRunEnv(t)
	ext := filepath.Join(testutil.Root(t), "build", "samples", "rustext-prod")
	if _, err := os.Stat(ext); err != nil {
		t.Skipf("rustext-prod not built (make rust-samples): %v", err)
	}
	bin := testutil.BuildInitprof(t)
	out := t.TempDir()
	const runs = 7
	stdout, stderr, code := runInitprof(t, bin, "run", "-n", fmt.Sprint(runs), "--cache", "warm", "--name", "datadog-agent", "--out", out, ext)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readResults(t, out)
	var errs []float64
	for _, r := range rep.Runs {
		p := findProc(r, "datadog-agent")
		if p == nil {
			t.Fatalf("run %d: no datadog-agent process", r.Index)
		}
		got, ok := p.Checkpoint(profile.CkListenerBound)
		if !ok {
			t.Fatalf("run %d: no listener_bound; checkpoints %v", r.Index, p.Checkpoints)
		}
		for _, c := range r.Reference {
			if c.Name == "datadog-agent:listener_bound" {
				errs = append(errs, math.Abs(float64(got-c.MonoNs)))
				if got > c.MonoNs {
					t.Errorf("run %d: listener_bound probed at %d, after the sample printed it (%d)", r.Index, got, c.MonoNs)
				}
			}
		}
	}
	if len(errs) != runs {
		t.Fatalf("%d printed listener_bound references for %d runs", len(errs), runs)
	}
	sort.Float64s(errs)
	med := errs[len(errs)/2]
	t.Logf("listener_bound vs the sample's print: median |error| %.1f µs (max %.1f µs)", med/1e3, errs[len(errs)-1]/1e3)
}

// readResults parses DIR/results.json, the file run writes (and the microVM
// brings back).
func readResults(t *testing.T, dir string) *profile.Report {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatalf("results.json: %v", err)
	}
	defer f.Close()
	rep, err := profile.ReadResults(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRunBottlecap: the bottlecap-sized Rust sample (crates.io dependency
// set, ~8 MB stripped; `make demo` builds it before `make test` in CI)
// initialises in every run, and its bottlecap-style `INIT | phase=` lines
// become checkpoints through --checkpoint, in the order it prints them.
func TestRunBottlecap(t *testing.T) {
	requireRunEnv(t)
	ext := filepath.Join(testutil.Root(t), "build", "samples", "rustext-bottlecap-prod")
	if _, err := os.Stat(ext); err != nil {
		t.Skipf("SKIP: rustext-bottlecap-prod not built (make demo or make rust-bottlecap-samples builds it, ~7 min): %v", err)
	}
	bin := testutil.BuildInitprof(t)
	out := t.TempDir()
	const runs = 3
	stdout, stderr, code := runInitprof(t, bin, "run", "-n", fmt.Sprint(runs), "--name", "datadog-agent", "--checkpoint", `INIT \| phase=(\w+)`, "--out", out, ext)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	want := []string{"config_loaded", "runtime_started", "http_clients_built", "listeners_started", "registered", "telemetry_subscribed"}
	rep := readResults(t, out)
	for _, r := range rep.Runs {
		if r.InitStatus != "success" {
			t.Errorf("run %d: init %s", r.Index, r.InitStatus)
		}
		p := findProc(r, "datadog-agent")
		if p == nil {
			t.Fatalf("run %d: no datadog-agent process", r.Index)
		}
		prev := int64(0)
		for _, w := range want {
			at, ok := p.Checkpoint("log:" + w)
			if !ok {
				t.Errorf("run %d: no checkpoint log:%s; checkpoints %v", r.Index, w, p.Checkpoints)
				continue
			}
			if at < prev {
				t.Errorf("run %d: log:%s at %d, before the phase printed before it (%d)", r.Index, w, at, prev)
			}
			prev = at
		}
	}
}

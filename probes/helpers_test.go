package probes

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// hostLdSo is the loader the host's binaries use; the samples' PT_INTERP.
const hostLdSo = "/lib64/ld-linux-x86-64.so.2"

var (
	platformOnce sync.Once
	platformBin  string
	platformErr  error
)

// startPlatform builds probes/testdata/fakeplatform once and runs it as a
// separate process for the test; it returns its host:port.
func startPlatform(t testing.TB) string {
	t.Helper()
	platformOnce.Do(func() {
		dir, err := os.MkdirTemp("", "initprof-probes-platform")
		if err != nil {
			platformErr = err
			return
		}
		platformBin = filepath.Join(dir, "fakeplatform")
		cmd := exec.Command("go", "build", "-o", platformBin, "./testdata/fakeplatform")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			platformErr = fmt.Errorf("go build fakeplatform: %v\n%s", err, out)
		}
	})
	if platformErr != nil {
		t.Fatal(platformErr)
	}
	cmd := exec.Command(platformBin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting fakeplatform: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LISTEN ") {
		t.Fatalf("fakeplatform did not start: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "LISTEN "))
}

// run is one traced run of a target.
type run struct {
	events      []Event
	stats       Stats
	checkpoints map[string]uint64 // the target's own "INIT | checkpoint=NAME mono_ns=N" lines
	pid         uint32            // the process that exec'd the target
	stdout      string
}

// traceRun starts bin under tr (following the test process's children),
// waits for it to exit and collects the run.
func traceRun(t testing.TB, tr *Tracer, bin string, env []string, args ...string) *run {
	t.Helper()
	if err := tr.FollowChildren(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", bin, err, out.String(), errb.String())
	}
	events, st, err := tr.Collect()
	if err != nil {
		t.Fatal(err)
	}
	r := &run{events: events, stats: st, checkpoints: map[string]uint64{}, pid: uint32(cmd.Process.Pid), stdout: out.String()}
	for _, l := range strings.Split(out.String(), "\n") {
		rest, ok := strings.CutPrefix(l, "INIT | checkpoint=")
		if !ok {
			continue
		}
		name, ns, _ := strings.Cut(rest, " mono_ns=")
		if v, err := strconv.ParseUint(ns, 10, 64); err == nil {
			r.checkpoints[name] = v
		}
	}
	if st.Dropped > 0 {
		t.Errorf("%d events dropped", st.Dropped)
	}
	return r
}

// of returns the events of the target process only.
func (r *run) of() []Event {
	var out []Event
	for _, e := range r.events {
		if e.PID == r.pid {
			out = append(out, e)
		}
	}
	return out
}

// first returns the first event of the target matching pred.
func (r *run) first(pred func(*Event) bool) (Event, bool) {
	for _, e := range r.of() {
		if pred(&e) {
			return e, true
		}
	}
	return Event{}, false
}

func isCheckpoint(kind Kind, name string) func(*Event) bool {
	return func(e *Event) bool { return e.Kind == kind && e.Checkpoint == name }
}

func isKind(kind Kind) func(*Event) bool {
	return func(e *Event) bool { return e.Kind == kind }
}

func isSend(prefix string) func(*Event) bool {
	return func(e *Event) bool { return e.Kind == KindSend && bytes.HasPrefix(e.Data, []byte(prefix)) }
}

func isRecv(prefix string) func(*Event) bool {
	return func(e *Event) bool { return e.Kind == KindRecv && bytes.HasPrefix(e.Data, []byte(prefix)) }
}

func (r *run) dump() string {
	var b strings.Builder
	for _, e := range r.events {
		if e.Kind == KindOffCPU || e.Kind == KindMmap || e.Kind == KindOpen {
			continue
		}
		fmt.Fprintf(&b, "  %d %s\n", e.Time, e.String())
	}
	return b.String()
}

// newTracer skips without root and closes the tracer at the end of the test.
func newTracer(t testing.TB, opts Options) *Tracer {
	t.Helper()
	testutil.RequireRoot(t)
	tr, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		start := time.Now()
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		t.Logf("Close took %v", time.Since(start))
	})
	return tr
}

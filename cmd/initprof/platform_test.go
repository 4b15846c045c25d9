package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/internal/testutil"
)

// extDir installs sample extensions into a fresh directory.
func extDir(t *testing.T, samples ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range samples {
		if err := os.Symlink(testutil.Sample(t, s), filepath.Join(dir, s)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runInitprof(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestPlatformCommand(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	dir := extDir(t, "goext", "cext")
	tlPath := filepath.Join(t.TempDir(), "timeline.jsonl")

	t.Run("success", func(t *testing.T) {
		out, errs, code := runInitprof(t, bin, "platform", "--extensions", dir, "--runtime", "sim", "--runtime-init", "60ms",
			"--addr", "127.0.0.1:0", "--timeline", tlPath, "--invokes", "2")
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		for _, want := range []string{"Init Duration:", "status: success", "goext", "cext", "runtime", "Invokes: 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		}
		f, err := os.Open(tlPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		es, err := extension.ReadTimeline(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := extension.Summarize(es)
		if err != nil {
			t.Fatal(err)
		}
		// The printed Init Duration is the timeline's.
		var b bytes.Buffer
		s.WriteText(&b)
		first := strings.SplitN(b.String(), "\n", 2)[0]
		if !strings.Contains(out, first) {
			t.Errorf("printed summary %q does not match the timeline's %q", out, first)
		}
		if s.RuntimeInit <= 0 || !s.Runtime.FirstNext.OK {
			t.Errorf("sim runtime never reached /next: %+v", s.Runtime)
		}
	})

	t.Run("init timeout exits 4", func(t *testing.T) {
		out, errs, code := runInitprof(t, bin, "platform", "--extensions", dir, "--addr", "127.0.0.1:0",
			"--init-timeout", "1s", "--env", "INITPROF_SAMPLE_NONEXT=1")
		if code != exitInitFailed {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, exitInitFailed, out, errs)
		}
		if !strings.Contains(out, "status: timeout") || !strings.Contains(errs, "init timeout") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", out, errs)
		}
	})

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"missing dir", []string{"--extensions", filepath.Join(dir, "nope")}, "not a directory"},
		{"bad runtime", []string{"--runtime", filepath.Join(dir, "nope")}, "not an executable"},
		{"bad env", []string{"--env", "NOEQUALS"}, "KEY=VALUE"},
		{"bad memory", []string{"--memory", "64"}, "128 to 10240"},
		{"bad timeline", []string{"--timeline", "fd:999"}, "not open"},
		{"bad wait-fd", []string{"--addr", "127.0.0.1:0", "--wait-fd", "999"}, "not an open file descriptor"},
		{"stray argument", []string{"ext"}, "unexpected argument"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runInitprof(t, bin, append([]string{"platform"}, tc.args...)...)
			if code != exitBadInput || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, exitBadInput, tc.want)
			}
		})
	}
}

// TestPlatformWaitFD: nothing happens until the wait fd is closed.
func TestPlatformWaitFD(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tl := filepath.Join(t.TempDir(), "t.jsonl")
	cmd := exec.Command(bin, "platform", "--addr", "127.0.0.1:0", "--wait-fd", "3", "--timeline", tl)
	cmd.ExtraFiles = []*os.File{r}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// Give it ample time to start and serve; the timeline must stay empty.
	time.Sleep(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("platform finished while the wait fd was open: %v\n%s", err, out.String())
	default:
	}
	if b, _ := os.ReadFile(tl); len(b) != 0 {
		t.Fatalf("timeline written before the wait fd was released: %s", b)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatalf("platform: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "status: success") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestPlatformSIGTERM: the container runtime stops the sandbox with SIGTERM;
// the platform must kill its children and exit, not hang in init.
func TestPlatformSIGTERM(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	dir := extDir(t, "goext")
	tl := filepath.Join(t.TempDir(), "t.jsonl")
	cmd := exec.Command(bin, "platform", "--extensions", dir, "--addr", "127.0.0.1:0", "--init-timeout", "60s",
		"--env", "INITPROF_SAMPLE_NONEXT=1", "--timeline", tl)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := waitForSpawn(t, tl, "goext")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Errorf("after SIGTERM: %v, want exit %d", err, exitInterrupted)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("platform ignored SIGTERM")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("extension pid %d outlived the platform", pid)
	}
}

// waitForSpawn polls the timeline file until NAME was spawned, returning its pid.
func waitForSpawn(t *testing.T, path, name string) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		if f, err := os.Open(path); err == nil {
			es, _ := extension.ReadTimeline(f)
			f.Close()
			for _, e := range es {
				if e.Kind == extension.KindSpawn && e.Name == name && e.PID > 0 {
					// Let it get as far as registering.
					time.Sleep(200 * time.Millisecond)
					return e.PID
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never spawned", name)
	return 0
}

// TestPlatformAsPID1 runs the platform as PID 1 of a new pid namespace, as
// in the sandbox: it must still run init to success and reap orphans that
// get reparented to it (a runtime that leaves a background child behind).
func TestPlatformAsPID1(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	bin := testutil.BuildInitprof(t)
	dir := extDir(t, "goext")
	rt := filepath.Join(t.TempDir(), "bootstrap")
	// The orphan: a subshell's sleep whose parent exits at once.
	script := "#!/bin/sh\n(sleep 0.1 &)\nexec " + bin + "\n"
	if err := os.WriteFile(rt, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", bin, "platform", "--extensions", dir,
		"--runtime", rt, "--addr", "127.0.0.1:0", "--env", "INITPROF_SIM_RUNTIME=1", "--env", "INITPROF_SIM_INIT=600ms")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Mid-init (the runtime spends 600ms before /next), the orphan has
	// exited: PID 1 must have reaped it, so no zombie hangs off it.
	time.Sleep(400 * time.Millisecond)
	if z := zombiesUnder(cmd.Process.Pid); len(z) > 0 {
		t.Errorf("zombies under the PID-1 platform: %v", z)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("platform as PID 1: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "status: success") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// zombiesUnder lists zombie descendants of pid (walking /proc children files).
func zombiesUnder(pid int) []string {
	var z []string
	var walk func(p int, depth int)
	walk = func(p int, depth int) {
		if depth > 6 {
			return
		}
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/*/children")
		for _, tf := range tasks {
			b, _ := os.ReadFile(tf)
			for _, c := range strings.Fields(string(b)) {
				cp, _ := strconv.Atoi(c)
				st, _ := os.ReadFile("/proc/" + c + "/stat")
				if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(st) > 0 && len(f) > 0 && f[0] == "Z" {
					z = append(z, c+" "+string(st[:bytes.IndexByte(st, ')')+1]))
				}
				walk(cp, depth+1)
			}
		}
	}
	walk(pid, 0)
	return z
}

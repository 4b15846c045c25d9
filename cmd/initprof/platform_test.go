package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

func runInitprof(t *testing.T, bin string, args ...string) (string, string, int) {
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

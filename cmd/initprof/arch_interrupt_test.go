package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/testutil"
)

// TestRunARM64InterruptKeepsResults: SIGINT to `run --arch arm64` reaches
// the job in the microVM, which writes its partial results; they come back
// to --out and say "interrupted after k of n runs", as on x86.
func TestRunARM64InterruptKeepsResults(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-aarch64")
	if k, err := doctor.ARM64KernelPath(); err != nil {
		t.Skipf("no arm64 kernel: %v", err)
	} else if _, err := os.Stat(k); err != nil {
		t.Skipf("no arm64 kernel for the microVM (%v): run make arm64-kernel", err)
	}
	root := testutil.Root(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "initprof")
	ext := filepath.Join(dir, "goext-arm64")
	for _, b := range []struct{ out, pkg, arch string }{
		{bin, "./cmd/initprof", ""}, {bin + "-arm64", "./cmd/initprof", "arm64"}, {ext, "./testdata/samples/goext", "arm64"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b.arch != "" {
			cmd.Env = append(cmd.Env, "GOARCH="+b.arch)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s (%s): %v\n%s", b.pkg, b.arch, err, out)
		}
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bin, "run", "--arch", "arm64", "-n", "40", "--runtime-init", "50ms", "--out", out, ext)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Minute); !strings.Contains(errb.String(), "arm64 guest: run 3/40"); {
		select {
		case err := <-exited:
			t.Fatalf("exited (%v) before run 3:\n%s", err, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no guest progress:\n%s", errb.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after SIGINT: %v, want exit %d\n%s", err, exitInterrupted, errb.String())
	}
	rep, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil {
		t.Fatalf("no report.txt came back: %v\n%s", err, errb.String())
	}
	if !strings.Contains(string(rep), "INTERRUPTED after ") || !strings.Contains(string(rep), " of 40 runs") {
		t.Errorf("report.txt does not say it was interrupted:\n%s", firstLines(string(rep), 6))
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Interrupted *struct{ Runs, Planned int } `json:"interrupted"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Interrupted == nil || res.Interrupted.Planned != 40 || res.Interrupted.Runs < 3 {
		t.Errorf("results.json interrupted = %+v", res.Interrupted)
	}
}

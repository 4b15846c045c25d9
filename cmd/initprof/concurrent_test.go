package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// TestConcurrentRunIsFlagged: a run made while another initprof is running
// says its figures are unreliable and names the other process.
func TestConcurrentRunIsFlagged(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildInitprof(t)
	ext := testutil.Sample(t, "cmini")
	dir := t.TempDir()
	other := exec.Command(bin, "run", "-n", "500", "--cache", "warm", "--runtime-init", "100ms", "--out", filepath.Join(dir, "other"), ext)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { other.Wait(); close(exited) }()
	defer func() {
		other.Process.Signal(syscall.SIGINT)
		<-exited
	}()
	pid := other.Process.Pid
	for deadline := time.Now().Add(5 * time.Minute); ; {
		if m, _ := filepath.Glob("/var/tmp/initprof-sandbox-" + strconv.Itoa(pid) + "-*"); len(m) > 0 {
			break
		}
		select {
		case <-exited:
			t.Fatal("the other run exited before it made its sandbox")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the other run made no sandbox directory")
		}
	}
	out := filepath.Join(dir, "mine")
	b, err := exec.Command(bin, "run", "-n", "2", "--cache", "warm", "--out", out, ext).CombinedOutput()
	if err != nil {
		t.Fatalf("initprof run: %v\n%s", err, b)
	}
	rep, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rep), "UNRELIABLE: another initprof (pid "+strconv.Itoa(pid)) {
		t.Errorf("report.txt does not flag the concurrent run (pid %d):\n%s", pid, rep)
	}
}

package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// buildForker compiles testdata/forker.c: an extension that forks a helper
// in its process group and a daemon in its own session, records their pids
// in pidfile, then execs real. mark is in both helpers' argv.
func buildForker(t *testing.T, real string) (bin, pidfile, mark string) {
	t.Helper()
	gcc := testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	bin = filepath.Join(dir, "forker")
	pidfile = filepath.Join(dir, "pids")
	mark = fmt.Sprintf("86400.%09d", rand.Intn(1e9))
	src, _ := filepath.Abs(filepath.Join("testdata", "forker.c"))
	cmd := exec.Command(gcc, "-O1", "-Wall", "-o", bin,
		`-DMARK="`+mark+`"`, `-DPIDFILE="`+pidfile+`"`, `-DREAL="`+real+`"`, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc forker.c: %v\n%s", err, b)
	}
	return bin, pidfile, mark
}

// checkNoHelpers fails when a helper recorded in pidfile is still running.
func checkNoHelpers(t *testing.T, pidfile, mark string, out []byte) {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the extension recorded no helpers (%v): it did not run?\n%s", err, out)
	}
	pids := strings.Fields(string(b))
	if len(pids) < 2 {
		t.Fatalf("the extension recorded %d helpers, want 2 or more:\n%s", len(pids), out)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cl), mark) {
			continue // gone (or the pid is someone else's now)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 && len(st) > i+2 && st[i+2] == 'Z' {
			continue // dead, not yet reaped by its new parent
		}
		exec.Command("kill", "-9", p).Run()
		t.Errorf("helper pid %d (%s) outlived the run", pid, strings.ReplaceAll(string(cl), "\x00", " "))
	}
}

// TestPlatformKillsLeftovers: `initprof platform` ends every process the
// extensions forked, in their process group or double-forked out of it.
func TestPlatformKillsLeftovers(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	forker, pidfile, mark := buildForker(t, testutil.Sample(t, "cmini"))
	exts := t.TempDir()
	if b, err := os.ReadFile(forker); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(exts, "forker"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "platform", "--extensions", exts, "--addr", "127.0.0.1:0", "--runtime", "sim").CombinedOutput()
	if err != nil {
		t.Fatalf("initprof platform: %v\n%s", err, out)
	}
	checkNoHelpers(t, pidfile, mark, out)
}

// TestProcessSandboxKillsLeftovers: after `initprof run --sandbox process`,
// nothing the extension forked is still running.
func TestProcessSandboxKillsLeftovers(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildInitprof(t)
	forker, pidfile, mark := buildForker(t, testutil.Sample(t, "cmini"))
	out, err := exec.Command(bin, "run", "--sandbox", "process", "-n", "2", "--cache", "warm",
		"--out", filepath.Join(t.TempDir(), "out"), forker).CombinedOutput()
	if err != nil {
		t.Fatalf("initprof run --sandbox process: %v\n%s", err, out)
	}
	checkNoHelpers(t, pidfile, mark, out)
}

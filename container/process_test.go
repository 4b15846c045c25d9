package container

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessSandbox runs the probe as the process sandbox's first process:
// it must wait for Start, run in its own network namespace (as root), and
// leave nothing behind.
func TestProcessSandbox(t *testing.T) {
	p := probeBinary(t)
	cfg := Config{
		Extensions: []Extension{{Name: "probe-ext", Path: p}},
		Init:       []string{p, "check"},
		WorkDir:    workTemp(t),
	}
	sb, err := NewProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	root := os.Geteuid() == 0
	if !strings.HasPrefix(sb.Kind(), "process (no isolation") || strings.Contains(sb.Kind(), "own network namespace") != root {
		t.Errorf("Kind() = %q: want it to say there is no isolation, and whether it has its own netns", sb.Kind())
	}
	in, err := sb.Create(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Delete()
	if syscall.Kill(in.PID(), 0) != nil {
		t.Fatalf("first process %d does not exist after Create", in.PID())
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(in.OutDir(), "out.json")); err == nil {
		t.Fatalf("the probe ran before Start: the wait fd did not hold it")
	}
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	code, err := in.Wait(context.Background())
	if err != nil || code != 0 {
		t.Fatalf("wait = %d, %v\n%s", code, err, in.Output())
	}
	var f probeFacts
	readJSON(t, filepath.Join(in.OutDir(), "out.json"), &f)
	if f.MemoryEnv != "1024" {
		t.Errorf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE = %q, want the default 1024", f.MemoryEnv)
	}
	if root {
		if !strings.Contains(f.DialExternal, "network is unreachable") {
			t.Errorf("connecting out gave %q: want network is unreachable in the private netns", f.DialExternal)
		}
		if len(f.Interfaces) != 1 || !strings.HasPrefix(f.Interfaces[0], "lo:up") {
			t.Errorf("interfaces = %v, want only lo, up", f.Interfaces)
		}
		// Without root there is no private /etc/hosts naming sandbox.
		if !f.LoopbackOK {
			t.Errorf("loopback connect to sandbox:9001 failed")
		}
	}
	if err := in.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := in.Delete(); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if Live() != 0 {
		t.Errorf("%d instances still registered", Live())
	}
}

// TestProcessSandboxKillsTheGroup deletes a run whose first process has a
// child, and checks both are gone.
func TestProcessSandboxKillsTheGroup(t *testing.T) {
	p := probeBinary(t)
	sb, err := NewProcess(Config{Extensions: []Extension{{Name: "probe-ext", Path: p}}, Init: []string{p, "sleep"}, WorkDir: workTemp(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	in, err := sb.Create(context.Background(), "kill")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	for i := 0; i < 100 && child == 0; i++ {
		time.Sleep(20 * time.Millisecond)
		if c := childrenOf(in.PID()); len(c) > 0 {
			child = c[0]
		}
	}
	if child == 0 {
		t.Fatalf("the probe never forked its child; output:\n%s", in.Output())
	}
	if err := in.Delete(); err != nil {
		t.Fatal(err)
	}
	code, _ := in.Wait(context.Background())
	if code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code after delete = %d, want 137", code)
	}
	time.Sleep(50 * time.Millisecond)
	if b, err := os.ReadFile(filepath.Join("/proc", itoa(child), "stat")); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Errorf("child %d survived Delete: %s", child, b)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// childrenOf lists the processes whose parent is pid (from every thread:
// /proc/PID/task/TID/children is per thread, and Go forks from any).
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == itoa(pid) {
				out = append(out, n)
			}
		}
	}
	return out
}

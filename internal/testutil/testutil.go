// Package testutil holds the few helpers every package's tests share: finding the
// repository root, building the sample extensions once, and skipping with a reason
// when a test needs root, BPF or a tool this machine lacks.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var samplesOnce sync.Once
var samplesErr error
var samplesOut []byte

// Sample returns the path of a built sample extension (build/samples/NAME),
// running `make samples` once per test binary: make is incremental, so this
// costs nothing when the samples are up to date and rebuilds stale ones.
func Sample(t testing.TB, name string) string {
	t.Helper()
	root := Root(t)
	p := filepath.Join(root, "build", "samples", name)
	samplesOnce.Do(func() {
		cmd := exec.Command("make", "-C", root, "samples")
		samplesOut, samplesErr = cmd.CombinedOutput()
	})
	if samplesErr != nil {
		t.Fatalf("make samples: %v\n%s", samplesErr, samplesOut)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("sample %s was not built by make samples: %v", name, err)
	}
	return p
}

// RequireRoot skips the test unless it runs as root. CI runs as root, so these
// tests run there; elsewhere they skip and say why.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF, perf events, cgroups); CI runs as root")
	}
}

// RequireTool skips the test when an executable is not on PATH.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("needs %s on PATH (install it with .ci/deps)", name)
	}
	return p
}

// BuildInitprof builds the initprof binary into a temp dir and returns its path.
// CGO_ENABLED=0, as the sandbox needs.
func BuildInitprof(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "initprof")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/initprof")
	cmd.Dir = Root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build initprof: %v\n%s", err, b)
	}
	return out
}

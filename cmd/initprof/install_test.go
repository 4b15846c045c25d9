package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/internal/testutil"
)

// TestGoInstall: the binary a Go user gets from `go install` (cgo on, so
// dynamically linked where gcc exists), alone in its directory and run from
// /tmp, profiles an extension in the OCI sandbox and, on the arm64 microVM,
// a static arm64 extension: it finds or builds the static initprof the
// sandbox needs (internal/selfbin) and needs no checkout-relative path.
func TestGoInstall(t *testing.T) {
	requireRunEnv(t)
	if testing.Short() {
		t.Skip("-short: builds initprof twice")
	}
	root := testutil.Root(t)
	gobin := t.TempDir()
	install := exec.Command("go", "install", "./cmd/initprof")
	install.Dir = root
	install.Env = append(os.Environ(), "CGO_ENABLED=1", "GOBIN="+gobin)
	if b, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, b)
	}
	bin := filepath.Join(gobin, "initprof")
	static := selfbin.IsStatic(bin, runtime.GOARCH)
	t.Logf("go install (cgo on) gave a static binary: %v", static)
	if _, err := exec.LookPath("gcc"); err == nil && static {
		t.Errorf("with gcc present, a cgo build should be dynamic; the test would prove nothing")
	}
	ext := testutil.Sample(t, "cext")
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = "/tmp"
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s (from /tmp): %v\n%s", bin, strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	t.Run("oci", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		log := run(t, "run", "-n", "1", "--sandbox", "oci", "--out", out, ext)
		rep := readResults(t, out)
		if len(rep.Runs) != 1 || rep.Runs[0].InitStatus != "success" {
			t.Fatalf("want one successful run:\n%s", log)
		}
	})
	t.Run("arm64", func(t *testing.T) {
		if r := doctor.ARM64Kernel(); r.Status != doctor.OK {
			t.Skipf("no arm64 kernel cached (%s): make arm64-kernel or initprof doctor --fix", r.Detail)
		}
		testutil.RequireTool(t, "qemu-system-aarch64")
		goext := filepath.Join(t.TempDir(), "goext-arm64")
		b := exec.Command("go", "build", "-trimpath", "-o", goext, "./testdata/samples/goext")
		b.Dir = root
		b.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
		if o, err := b.CombinedOutput(); err != nil {
			t.Fatalf("build goext for arm64: %v\n%s", err, o)
		}
		out := filepath.Join(t.TempDir(), "out")
		log := run(t, "run", "--arch", "arm64", "-n", "1", "--out", out, goext)
		rep := readResults(t, out)
		if len(rep.Runs) != 1 || rep.Runs[0].InitStatus != "success" {
			t.Fatalf("want one successful arm64 run:\n%s", log)
		}
	})
}

package container

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// initprofWithPlatform builds the initprof binary and skips unless it has
// the platform subcommand the sandbox runs as PID 1.
func initprofWithPlatform(t testing.TB) string {
	t.Helper()
	bin := testutil.BuildInitprof(t)
	if out, err := exec.Command(bin, "platform", "--help").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("--wait-fd")) {
		t.Skipf("this initprof has no `platform` subcommand with --wait-fd yet (%v)", err)
	}
	return bin
}

// TestPlatformEndToEnd runs the real platform as PID 1 with the Go and C
// sample extensions, in both sandboxes, and checks that init completed and
// the timeline reached the host through OutDir.
func TestPlatformEndToEnd(t *testing.T) {
	testutil.RequireRoot(t)
	bin := initprofWithPlatform(t)
	tests := []struct {
		sandbox string
		sample  string
	}{
		{"oci", "cext"},
		{"oci", "goext"},
		{"process", "cext"},
		{"process", "goext"},
	}
	for _, tc := range tests {
		t.Run(tc.sandbox+"/"+tc.sample, func(t *testing.T) {
			cfg := Config{
				Extensions:   []Extension{{Name: tc.sample, Path: testutil.Sample(t, tc.sample)}},
				Initprof:     bin,
				PlatformArgs: []string{"--invokes", "1", "--runtime-init", "5ms"},
				WorkDir:      workTemp(t),
			}
			var sb Sandbox
			var err error
			if tc.sandbox == "oci" {
				requireOCI(t, "runc")
				sb, err = NewOCI(cfg)
			} else {
				sb, err = NewProcess(cfg)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			if _, err := EvictPageCache(sb.Files()); err != nil {
				t.Fatal(err)
			}
			in, err := sb.Create(context.Background(), "e2e")
			if err != nil {
				t.Fatal(err)
			}
			defer in.Delete()
			if err := in.Start(); err != nil {
				t.Fatal(err)
			}
			code, err := in.Wait(context.Background())
			if err != nil || code != 0 {
				t.Fatalf("platform exit = %d, %v\n%s", code, err, in.Output())
			}
			tl, err := os.ReadFile(filepath.Join(in.OutDir(), TimelineName))
			if err != nil {
				t.Fatalf("no timeline from the platform: %v\n%s", err, in.Output())
			}
			for _, ev := range []string{`"initStart"`, `"init_end"`, `"status":"success"`, `"kind":"spawn","name":"` + tc.sample + `"`} {
				if !strings.Contains(string(tl), ev) {
					t.Errorf("timeline lacks %s:\n%s", ev, tl)
				}
			}
			if err := in.Delete(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: overhead %+v; timeline %d lines", sb.Kind(), in.Overhead(), bytes.Count(tl, []byte("\n")))
		})
	}
}

// TestPlatformCrashedExtension runs the platform with an extension that
// exits at once: the run must end (no hang) and leave nothing behind.
func TestPlatformCrashedExtension(t *testing.T) {
	rt := requireOCI(t, "runc")
	bin := initprofWithPlatform(t)
	sb, err := NewOCI(Config{
		// The probe with no mode prints a usage line and exits 2.
		Extensions:   []Extension{{Name: "crasher", Path: probeBinary(t)}},
		Initprof:     bin,
		PlatformArgs: []string{"--invokes", "1", "--init-timeout", "3s"},
		WorkDir:      workTemp(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	in, err := sb.Create(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Delete()
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := in.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v\n%s", err, in.Output())
	}
	t.Logf("platform exit code %d with a crashing extension; output:\n%s", code, in.Output())
	if code != 4 { // cmd/initprof's exitInitFailed
		t.Errorf("platform exit code %d, want 4 (an extension failed its init)", code)
	}
	oi := in.(*ociInstance)
	if err := in.Delete(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, rt, oi.ContainerID(), oi.CgroupPath(), oi.PID())
}

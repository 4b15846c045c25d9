package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// TestBadInputFailsBeforeTheFirstColdStart runs run and compare with one bad
// flag or unusable --out each: every one exits 2, says what is wrong, and
// makes no sandbox.
func TestBadInputFailsBeforeTheFirstColdStart(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	ext := testutil.Sample(t, "cext")
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	used := filepath.Join(tmp, "used")
	os.MkdirAll(used, 0o755)
	os.WriteFile(filepath.Join(used, "report.txt"), []byte("old"), 0o644)
	ro := ""
	if os.Geteuid() == 0 {
		ro = filepath.Join(tmp, "ro")
		os.MkdirAll(ro, 0o755)
		if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
			t.Logf("no read-only mount (%v): that case is skipped", err)
			ro = ""
		} else {
			t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
		}
	}
	fresh := func() string { d, _ := os.MkdirTemp(tmp, "out-"); os.Remove(d); return d }

	cases := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"init-timeout zero", []string{"run", "--init-timeout", "0", ext}, "--init-timeout"},
		{"init-timeout negative", []string{"run", "--init-timeout", "-1s", ext}, "--init-timeout"},
		{"compare init-timeout zero", []string{"compare", "--init-timeout", "0", "a=" + ext, "b=" + ext}, "--init-timeout"},
		{"runs zero", []string{"run", "-n", "0", ext}, "--runs"},
		{"memory too small", []string{"run", "--memory", "64", ext}, "--memory"},
		{"invokes negative", []string{"run", "--invokes", "-1", ext}, "--invokes"},
		{"runtime-init negative", []string{"run", "--runtime-init", "-5ms", ext}, "--runtime-init"},
		{"bad checkpoint regexp", []string{"run", "--checkpoint", "(", ext}, "--checkpoint"},
		{"env without =", []string{"run", "--env", "FOO", ext}, "--env"},
		{"missing runtime", []string{"run", "--runtime", filepath.Join(tmp, "nope"), ext}, "--runtime"},
		{"runtime not executable", []string{"run", "--runtime", file, ext}, "not an executable"},
		{"bad sandbox", []string{"run", "--sandbox", "vm", ext}, "--sandbox"},
		{"bad cache", []string{"run", "--cache", "lukewarm", ext}, "--cache"},
		{"bad sample-hz", []string{"run", "--flamegraph", "--sample-hz", "0", ext}, "--sample-hz"},
		{"name with a path", []string{"run", "--name", "../../etc/passwd", ext}, "--name"},
		{"name too long", []string{"run", "--name", strings.Repeat("n", 300), ext}, "too long"},
		{"missing extension", []string{"run", filepath.Join(tmp, "no-such-ext")}, "no-such-ext"},
		{"out is a file", []string{"run", "--out", file, ext}, "not a directory"},
		{"out not empty", []string{"run", "--out", used, ext}, "--force"},
		{"compare out not empty", []string{"compare", "--out", used, "a=" + ext, "b=" + ext}, "--force"},
		{"out read-only", []string{"run", "--out", filepath.Join(ro, "sub"), ext}, "--out"},
		{"out read-only existing", []string{"run", "--out", ro, ext}, "not writable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.Contains(strings.Join(c.args, " "), "--out ") && ro == "" && strings.Contains(c.name, "read-only") {
				t.Skip("needs root for a read-only mount")
			}
			args := c.args
			hasOut := false
			for _, a := range args {
				hasOut = hasOut || a == "--out"
			}
			out := ""
			if !hasOut {
				out = fresh()
				args = append([]string{args[0], "--out", out}, args[1:]...)
			}
			cmd := exec.Command(bin, args...)
			b, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitBadInput {
				t.Fatalf("initprof %s: %v, want exit code %d\n%s", strings.Join(args, " "), err, exitBadInput, b)
			}
			if !strings.Contains(string(b), c.want) {
				t.Errorf("the error does not mention %q:\n%s", c.want, b)
			}
			if strings.Contains(string(b), ": sandbox ") || strings.Contains(string(b), "probe costs") {
				t.Errorf("a sandbox was made before the bad input was refused:\n%s", b)
			}
			if out != "" {
				if ents, _ := os.ReadDir(out); len(ents) > 0 {
					t.Errorf("--out %s got files: %v", out, ents)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(used, "report.txt")); string(b) != "old" {
		t.Errorf("a refused run touched the non-empty --out's report.txt")
	}
}

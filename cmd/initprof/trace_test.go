package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// TestTrace runs the real binary: a timeline with the loader checkpoints and
// the phase summary for a host command, and the documented exit codes.
func TestTrace(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildInitprof(t)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out), 0
	}

	out, code := run("trace", "--", "/bin/true")
	if code != 0 {
		t.Fatalf("trace /bin/true: exit %d\n%s", code, out)
	}
	for _, want := range []string{"exec /bin/true", "exec_done", "uprobe ldso_start", "uprobe entry", "# phases of pid", "exec (kernel)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	if out, code := run("trace"); code != exitBadInput || !strings.Contains(out, "no command given") {
		t.Errorf("no command: exit %d, want %d\n%s", code, exitBadInput, out)
	}
	if out, code := run("trace", "--", "/no/such/cmd"); code != exitBadInput {
		t.Errorf("missing command: exit %d, want %d\n%s", code, exitBadInput, out)
	}

	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return
	}
	// Unprivileged: exit code 3 and the capability named. The binary's
	// directory is 0700; copy it where nobody can run it.
	dir, err := os.MkdirTemp("", "initprof-trace-nopriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	b, _ := os.ReadFile(bin)
	nb := filepath.Join(dir, "initprof")
	os.WriteFile(nb, b, 0o755)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", nb, "trace", "--", "/bin/true")
	o, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitPrivileges || !strings.Contains(string(o), "CAP_BPF") {
		t.Errorf("unprivileged trace: %v, want exit %d naming CAP_BPF\n%s", err, exitPrivileges, o)
	}
}

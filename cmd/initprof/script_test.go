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

// TestScriptExtensions: #! extensions run, with their interpreter (and its
// libraries) brought into the sandbox.
func TestScriptExtensions(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildInitprof(t)
	cmini := testutil.Sample(t, "cmini")
	// The sandbox mounts an empty /tmp, as Lambda does: an interpreter the
	// script names must live elsewhere (a clone under /tmp puts the sample
	// there).
	copyTo := func(parent string) string {
		dir, err := os.MkdirTemp(parent, "initprof-script-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		b, err := os.ReadFile(cmini)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "cmini")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	interp, tmpInterp := copyTo("/var/tmp"), copyTo("/tmp")
	write := func(name, body string) string {
		d := t.TempDir()
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		sandbox string
		script  string
		code    int
		report  string // in report.txt
	}{
		// The extension registers under its file name: a script named
		// cmini whose interpreter is the sample itself.
		{"interpreter is the extension", "oci", "#!" + interp + "\n", exitOK, "extension cmini"},
		// An interpreter under /tmp is hidden by the sandbox's empty /tmp.
		{"interpreter under /tmp", "oci", "#!" + tmpInterp + "\n", exitBadInput, "which the sandbox (like Lambda) mounts empty at start"},
		// /bin/sh and libc come along: the script runs and says so in the
		// diagnosis of its failed init.
		{"sh in the container", "oci", "#!/bin/sh\necho \"sh ran as $0\" >&2\nexit 3\n", exitInitFailed, "sh ran as /opt/extensions/cmini"},
		{"env sh in the container", "oci", "#!/usr/bin/env sh\necho \"env sh ran\" >&2\nexit 3\n", exitInitFailed, "env sh ran"},
		{"sh wrapper in the process sandbox", "process", "#!/bin/sh\nexec " + cmini + " \"$@\"\n", exitOK, "extension cmini"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ext := write("cmini", c.script)
			out := filepath.Join(t.TempDir(), "out")
			b, err := exec.Command(bin, "run", "--sandbox", c.sandbox, "-n", "1", "--cache", "warm", "--init-timeout", "3s", "--out", out, ext).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s", code, c.code, b)
			}
			if c.code == exitBadInput {
				if !strings.Contains(string(b), c.report) {
					t.Errorf("output lacks %q:\n%s", c.report, b)
				}
				return
			}
			rep, err := os.ReadFile(filepath.Join(out, "report.txt"))
			if err != nil {
				t.Fatalf("no report: %v\n%s", err, b)
			}
			if !strings.Contains(string(rep), c.report) {
				t.Errorf("report.txt lacks %q:\n%s", c.report, rep)
			}
		})
	}
}

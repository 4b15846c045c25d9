package container

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveScript(t *testing.T) {
	dir := t.TempDir()
	w := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o755)
		return p
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	for _, c := range []struct {
		name, body, inside string
		bad                bool
	}{
		{"sh", "#!/bin/sh\necho hi\n", "/bin/sh", false},
		{"sh -e", "#! /bin/sh -e\n", "/bin/sh", false},
		{"env sh", "#!/usr/bin/env sh\n", "/usr/bin/sh", false},
		{"env -S sh", "#!/usr/bin/env -S sh -e\n", "/usr/bin/sh", false},
		{"missing", "#!/no/such/interp\n", "", true},
		{"env missing", "#!/usr/bin/env no-such-prog-initprof\n", "", true},
		{"empty", "#!\n", "", true},
		{"not a script", "\x7fELF", "", true},
	} {
		inside, host, err := ResolveScript(w(c.name, c.body), "")
		if c.bad {
			if err == nil || !IsBadInput(err) {
				t.Errorf("%s: %q, %v; want bad input", c.name, inside, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if _, err := os.Stat("/usr/bin/sh"); err != nil && c.inside == "/usr/bin/sh" {
			continue // no usrmerge: env finds /bin/sh
		}
		if inside != c.inside {
			t.Errorf("%s: inside %q, want %q", c.name, inside, c.inside)
		}
		if h, _ := filepath.EvalSymlinks(host); h != sh {
			t.Errorf("%s: host %q, want %s", c.name, host, sh)
		}
	}
}

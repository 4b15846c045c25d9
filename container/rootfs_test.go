package container

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initprof/initprof/elfinfo"
)

// TestBuildRootfsHostClosure assembles a rootfs for a libcurl-linked binary
// and a #! script, and checks that the loader's every path (through the
// host's symlinks, like /lib64 -> usr/lib64) resolves inside it to a copy.
func TestBuildRootfsHostClosure(t *testing.T) {
	curl, _, _ := libcurlBinary(t)
	dir := workTemp(t)
	script := filepath.Join(dir, "script-ext")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Extensions: []Extension{{Name: "datadog-agent", Path: curl}, {Name: "zz-script", Path: script}}}
	root := filepath.Join(dir, "rootfs")
	lay, err := buildRootfs(cfg, root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := elfinfo.ResolveClosure(curl, "")
	if err != nil {
		t.Fatal(err)
	}
	inRoot := newTree(root, "") // dry: resolves paths within the rootfs
	want := append([]string{c.Interp, "/opt/extensions/datadog-agent", "/opt/extensions/zz-script", "/bin/sh", "/etc/hosts", "/etc/ld.so.cache"}, libPaths(c)...)
	for _, p := range want {
		host, err := inRoot.materialize(p)
		if err != nil {
			t.Errorf("%s does not resolve inside the rootfs: %v", p, err)
			continue
		}
		if !strings.HasPrefix(host, root+"/") {
			t.Errorf("%s resolves outside the rootfs: %s", p, host)
		}
	}
	st, err := os.Stat(filepath.Join(root, "opt/extensions/datadog-agent"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("extension mode = %v, %v; want 0755", st.Mode(), err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	if !strings.Contains(string(b), "127.0.0.1\tsandbox.localdomain sandbox") {
		t.Errorf("/etc/hosts lacks the sandbox names:\n%s", b)
	}
	// Files lists copies only: regular files inside the rootfs.
	if len(lay.files) < len(c.Libs)+3 {
		t.Errorf("Files() has %d entries, want at least the %d libraries, the interpreter and both extensions", len(lay.files), len(c.Libs))
	}
	for _, f := range lay.files {
		st, err := os.Lstat(f)
		if err != nil || !st.Mode().IsRegular() || !strings.HasPrefix(f, root+"/") {
			t.Errorf("Files() entry %s is not a regular file in the rootfs (%v)", f, err)
		}
	}

	// The same build from a user rootfs (the one just made) gives the same
	// files: symlinks there resolve within it, never on the host. Make one of
	// them absolute, as some images have, to prove it.
	if target, err := os.Readlink(filepath.Join(root, "lib64")); err == nil && !filepath.IsAbs(target) {
		os.Remove(filepath.Join(root, "lib64"))
		if err := os.Symlink("/"+target, filepath.Join(root, "lib64")); err != nil {
			t.Fatal(err)
		}
	}
	root2 := filepath.Join(dir, "rootfs2")
	lay2, err := buildRootfs(&Config{Extensions: cfg.Extensions, Rootfs: root}, root2)
	if err != nil {
		t.Fatalf("building from a user rootfs: %v", err)
	}
	if a, b := rel(root, lay.files), rel(root2, lay2.files); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("rootfs from --rootfs differs:\n%v\nvs\n%v", a, b)
	}
}

func libPaths(c *elfinfo.Closure) []string {
	var out []string
	for _, l := range c.Libs {
		out = append(out, l.Path)
	}
	return out
}

func rel(root string, files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimPrefix(f, root))
	}
	sort.Strings(out)
	return out
}

// TestBadInputs holds every user mistake to a one-line error that names the
// file and the problem. They are caught before any sandbox exists.
func TestBadInputs(t *testing.T) {
	p := probeBinary(t)
	dir := workTemp(t)
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("just text\n"), 0o755)
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("\x7fELF"), 0o644)
	arm := filepath.Join(dir, "probe-arm64")
	if err := goBuild(arm, "arm64"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"missing file", Config{Extensions: []Extension{{"x", filepath.Join(dir, "nope")}}}, []string{"extension x", "nope", "no such file"}},
		{"directory", Config{Extensions: []Extension{{"x", dir}}}, []string{"is a directory"}},
		{"not executable", Config{Extensions: []Extension{{"x", noexec}}}, []string{"not executable"}},
		{"not ELF", Config{Extensions: []Extension{{"x", text}}}, []string{"notes.txt", "not an ELF executable or a #! script"}},
		{"wrong architecture", Config{Extensions: []Extension{{"x", arm}}}, []string{"built for aarch64", "x86_64"}},
		{"empty name", Config{Extensions: []Extension{{"", p}}}, []string{"not a plain file name"}},
		{"slash in name", Config{Extensions: []Extension{{"a/b", p}}}, []string{`"a/b"`, "not a plain file name"}},
		{"duplicate names", Config{Extensions: []Extension{{"x", p}, {"x", p}}}, []string{`two extensions are named "x"`}},
		{"no extension", Config{}, []string{"no extension given"}},
		{"memory too small", Config{Extensions: []Extension{{"x", p}}, MemoryMB: 64}, []string{"memory 64 MB", "128-10240"}},
		{"bad env", Config{Extensions: []Extension{{"x", p}}, Env: []string{"NOEQUALS"}}, []string{`"NOEQUALS"`, "KEY=VALUE"}},
		{"missing bootstrap", Config{Extensions: []Extension{{"x", p}}, Bootstrap: filepath.Join(dir, "boot")}, []string{"bootstrap", "no such file"}},
		{"rootfs not a dir", Config{Extensions: []Extension{{"x", p}}, Rootfs: text}, []string{"rootfs", "not a directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Initprof == "" {
				cfg.Initprof = p
			}
			cfg.WorkDir = workTemp(t)
			sb, err := NewProcess(cfg)
			if err == nil {
				sb.Close()
				t.Fatalf("no error")
			}
			msg := err.Error()
			if !IsBadInput(err) {
				t.Errorf("IsBadInput(%q) = false", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestUnresolvableLibrary builds a binary against a shared library, deletes
// the library, and expects both sandboxes to refuse it, naming the soname.
func TestUnresolvableLibrary(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build a binary with a missing library")
	}
	dir := workTemp(t)
	lib, ext := filepath.Join(dir, "libinitproftest.c"), filepath.Join(dir, "ext.c")
	os.WriteFile(lib, []byte("int initprof_test_fn(void) { return 42; }\n"), 0o644)
	os.WriteFile(ext, []byte("int initprof_test_fn(void);\nint main(void) { return initprof_test_fn() - 42; }\n"), 0o644)
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", filepath.Join(dir, "libinitproftest.so"), lib},
		{"-o", filepath.Join(dir, "ext"), ext, "-L" + dir, "-linitproftest"},
	} {
		if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
	}
	os.Remove(filepath.Join(dir, "libinitproftest.so"))
	p := probeBinary(t)
	cfg := Config{Extensions: []Extension{{"broken", filepath.Join(dir, "ext")}}, Initprof: p}
	tests := []struct {
		name string
		make func(Config) (Sandbox, error)
		oci  bool
	}{
		{"process", NewProcess, false},
		{"oci", NewOCI, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.oci {
				requireOCI(t, "runc")
			}
			c := cfg
			c.WorkDir = workTemp(t)
			sb, err := tc.make(c)
			if err == nil {
				sb.Close()
				t.Fatal("no error for a binary whose library is gone")
			}
			if !IsBadInput(err) {
				t.Errorf("IsBadInput(%q) = false", err)
			}
			for _, w := range []string{"extension broken", "cannot resolve libinitproftest.so", "install the missing libraries or pass --rootfs"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(c.WorkDir); len(ents) != 0 {
				t.Errorf("a failed build left %d entries in the work dir", len(ents))
			}
		})
	}
}

package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/internal/testutil"
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
		{"missing file", Config{Extensions: []Extension{{Name: "x", Path: filepath.Join(dir, "nope")}}}, []string{"extension x", "nope", "no such file"}},
		{"directory", Config{Extensions: []Extension{{Name: "x", Path: dir}}}, []string{"is a directory"}},
		{"not executable", Config{Extensions: []Extension{{Name: "x", Path: noexec}}}, []string{"not executable"}},
		{"not ELF", Config{Extensions: []Extension{{Name: "x", Path: text}}}, []string{"notes.txt", "not an ELF executable or a #! script"}},
		{"wrong architecture", Config{Extensions: []Extension{{Name: "x", Path: arm}}}, []string{"built for aarch64", "x86_64"}},
		{"empty name", Config{Extensions: []Extension{{Name: "", Path: p}}}, []string{"not a plain file name"}},
		{"slash in name", Config{Extensions: []Extension{{Name: "a/b", Path: p}}}, []string{`"a/b"`, "not a plain file name"}},
		{"duplicate names", Config{Extensions: []Extension{{Name: "x", Path: p}, {Name: "x", Path: p}}}, []string{`two extensions are named "x"`}},
		{"no extension", Config{}, []string{"no extension given"}},
		{"memory too small", Config{Extensions: []Extension{{Name: "x", Path: p}}, MemoryMB: 64}, []string{"memory 64 MB", "128-10240"}},
		{"bad env", Config{Extensions: []Extension{{Name: "x", Path: p}}, Env: []string{"NOEQUALS"}}, []string{`"NOEQUALS"`, "KEY=VALUE"}},
		{"missing bootstrap", Config{Extensions: []Extension{{Name: "x", Path: p}}, Bootstrap: filepath.Join(dir, "boot")}, []string{"bootstrap", "no such file"}},
		{"rootfs not a dir", Config{Extensions: []Extension{{Name: "x", Path: p}}, Rootfs: text}, []string{"rootfs", "not a directory"}},
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
	cfg := Config{Extensions: []Extension{{Name: "broken", Path: filepath.Join(dir, "ext")}}, Initprof: p}
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

// originApp builds a Lambda-layer-like pair under dir/layer: bin/app, whose
// RUNPATH is $ORIGIN/../lib, and lib/libhello.so (hello() returns answer).
// app prints hello()'s value and the path libhello is mapped from.
func originApp(t *testing.T, dir string, answer int) string {
	t.Helper()
	gcc := testutil.RequireTool(t, "gcc")
	bin, lib := filepath.Join(dir, "layer/bin"), filepath.Join(dir, "layer/lib")
	for _, d := range []string{bin, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := func(out, src string, args ...string) {
		t.Helper()
		c := out + ".c"
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(gcc, append([]string{"-O2", "-o", out, c}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", out, err, b)
		}
	}
	build(filepath.Join(lib, "libhello.so"), fmt.Sprintf("int hello(void){return %d;}\n", answer), "-shared", "-fPIC", "-Wl,-soname,libhello.so")
	app := filepath.Join(bin, "app")
	build(app, `#include <stdio.h>
#include <string.h>
int hello(void);
int main(void) {
	printf("hello=%d\n", hello());
	char l[4096];
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(l, sizeof l, f))
		if (strstr(l, "libhello") && strchr(l, '/')) {
			printf("mapped=%s", strchr(l, '/'));
			break;
		}
	return 0;
}
`, "-L"+lib, "-lhello", "-Wl,-rpath,$ORIGIN/../lib", "-Wl,--enable-new-dtags")
	return app
}

// TestOriginLibraries: a library the extension finds through RUNPATH
// $ORIGIN/../lib must be where that path points once the extension is
// /opt/extensions/NAME, i.e. /opt/lib (as a Lambda layer lays it out), not at
// its host path. The app runs in both sandboxes and must load it from there.
func TestOriginLibraries(t *testing.T) {
	dir := workTemp(t)
	app := originApp(t, dir, 42)
	hostLib := filepath.Join(dir, "layer/lib/libhello.so")

	// The rootfs layout, for the extension and for the bootstrap.
	root := filepath.Join(dir, "rootfs")
	lay, err := buildRootfs(&Config{Extensions: []Extension{{Name: "app", Path: app}}, Bootstrap: app}, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/opt/lib/libhello.so", "/var/lib/libhello.so"} {
		if !containsString(lay.files, filepath.Join(root, want)) {
			t.Errorf("rootfs files lack %s (libhello.so for $ORIGIN/../lib): %v", want, rel(root, lay.files))
		}
	}
	if _, err := os.Stat(filepath.Join(root, hostLib)); err == nil {
		t.Errorf("libhello.so was also copied to its host path %s in the rootfs", hostLib)
	}

	// Two extensions wanting different files at /opt/lib/libhello.so is an
	// error that names the path; the same file twice is fine.
	other := originApp(t, filepath.Join(dir, "other"), 7)
	_, err = buildRootfs(&Config{Extensions: []Extension{{Name: "a", Path: app}, {Name: "b", Path: other}}}, filepath.Join(dir, "rootfs-clash"))
	if err == nil || !strings.Contains(err.Error(), "/opt/lib/libhello.so") || !strings.Contains(err.Error(), "differ") {
		t.Errorf("two different /opt/lib/libhello.so: err = %v, want one naming the path", err)
	}
	if _, err := buildRootfs(&Config{Extensions: []Extension{{Name: "a", Path: app}, {Name: "b", Path: app}}}, filepath.Join(dir, "rootfs-same")); err != nil {
		t.Errorf("the same library for two extensions: %v", err)
	}

	for _, kind := range []string{"oci", "process"} {
		t.Run(kind, func(t *testing.T) {
			cfg := Config{
				Extensions: []Extension{{Name: "app", Path: app}},
				Init:       []string{"/opt/extensions/app"},
				WorkDir:    workTemp(t),
			}
			var sb Sandbox
			var err error
			wantMapped := "/opt/lib/libhello.so"
			if kind == "oci" {
				cfg.OCIRuntime = requireOCI(t, "runc")
				sb, err = NewOCI(cfg)
			} else {
				sb, err = NewProcess(cfg)
				if err == nil {
					// The process sandbox runs Init on the host: start the copy,
					// once Start closes the wait pipe on fd 3 (as the platform's
					// --wait-fd does; the namespaces are set up before that).
					ps := sb.(*processSandbox)
					ps.cfg.Init = []string{"/bin/sh", "-c", `read x <&3; exec "$0"`, ps.HostPath("/opt/extensions/app")}
					wantMapped = ps.HostPath("/opt/lib/libhello.so")
					if !strings.HasPrefix(wantMapped, ps.base+"/") {
						t.Errorf("HostPath(/opt/lib/libhello.so) = %s, want the copy under %s", wantMapped, ps.base)
					}
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			in, code := runOnce(t, sb, "origin")
			out := string(in.Output())
			if code != 0 {
				t.Fatalf("app exit code %d (127: the loader did not find libhello.so)\n%s", code, out)
			}
			if !strings.Contains(out, "hello=42\n") || !strings.Contains(out, "mapped="+wantMapped+"\n") {
				t.Errorf("app output %q: want hello=42 and libhello mapped from %s", out, wantMapped)
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

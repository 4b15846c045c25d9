package selfbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goBuild builds a trivial program into dir/name with the given cgo setting.
func goBuild(t *testing.T, dir, name, cgo, goarch string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte("package main\nimport \"os/user\"\nfunc main() { user.Current() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOARCH="+goarch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func TestIsStatic(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	dir := t.TempDir()
	static := goBuild(t, dir, "static", "0", runtime.GOARCH)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	for _, tc := range []struct {
		name, path, goarch string
		want               bool
	}{
		{"static Go", static, runtime.GOARCH, true},
		{"static Go, other arch asked", static, other, false},
		{"dynamic (/bin/true)", "/bin/true", runtime.GOARCH, false},
		{"not an ELF", text, runtime.GOARCH, false},
		{"missing", filepath.Join(dir, "nope"), runtime.GOARCH, false},
	} {
		if got := IsStatic(tc.path, tc.goarch); got != tc.want {
			t.Errorf("%s: IsStatic = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStaticLookupOrder: self when static, else the sibling initprof-GOARCH,
// else the cache entry for this binary's hash; with NoBuild and none of them,
// an error that says what to run.
func TestStaticLookupOrder(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc for a dynamically linked (cgo) binary")
	}
	dir := t.TempDir()
	static := goBuild(t, dir, "static", "0", runtime.GOARCH)
	dyn := goBuild(t, dir, "initprof", "1", runtime.GOARCH)
	if IsStatic(dyn, runtime.GOARCH) {
		t.Skip("cgo build came out static; nothing to test")
	}
	cache := t.TempDir()
	o := Options{Self: static, CacheDir: cache, NoBuild: true}
	if got, err := Static(runtime.GOARCH, o); err != nil || got != static {
		t.Errorf("static self: %q, %v; want itself", got, err)
	}
	o.Self = dyn
	if _, err := Static(runtime.GOARCH, o); err == nil || !strings.Contains(err.Error(), "doctor --fix") {
		t.Errorf("nothing found, NoBuild: %v; want an error naming 'initprof doctor --fix'", err)
	}
	key, err := fileKey(dyn)
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, key, "initprof-linux-"+runtime.GOARCH)
	os.MkdirAll(filepath.Dir(cached), 0o755)
	if b, err := os.ReadFile(static); err != nil || os.WriteFile(cached, b, 0o755) != nil {
		t.Fatal(err)
	}
	if got, err := Static(runtime.GOARCH, o); err != nil || got != cached {
		t.Errorf("cached: %q, %v; want %q", got, err, cached)
	}
	sib := filepath.Join(dir, "initprof-"+runtime.GOARCH)
	if err := os.Link(static, sib); err != nil {
		t.Fatal(err)
	}
	if got, err := Static(runtime.GOARCH, o); err != nil || got != sib {
		t.Errorf("sibling: %q, %v; want %q (before the cache)", got, err, sib)
	}
	if _, err := Static("riscv64", o); err == nil {
		t.Error("riscv64: want an error")
	}
}

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"module github.com/initprof/initprof\n\ngo 1.26\n": "github.com/initprof/initprof",
		"// c\nmodule \"example.com/x\"\n":                 "example.com/x",
		"go 1.26\n":                                        "",
	} {
		if got := modulePath([]byte(in)); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", in, got, want)
		}
	}
}

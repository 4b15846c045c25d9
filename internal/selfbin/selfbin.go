// Package selfbin finds, or builds once, the static initprof binaries that run
// where the host's initprof cannot: PID 1 of the OCI sandbox runs in a foreign
// root filesystem, so it must need no interpreter and no library, and the
// arm64 microVM's /init must be an arm64 build of the same source.
//
// A user who ran `go install .../cmd/initprof` (cgo on, the default where gcc
// exists) has a dynamically linked amd64 binary and no arm64 one. Rather than
// bring the host's ld.so and libc into every sandbox (they would share page
// cache and loader uprobes with the extension under test), selfbin builds the
// static twin with the Go toolchain that made the binary, from the same
// source, and caches it under ${XDG_CACHE_HOME:-~/.cache}/initprof/bin/KEY/,
// where KEY is a hash of the running executable: a rebuilt initprof never
// picks up a stale twin.
package selfbin

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Options tune Static. The zero value is the normal use.
type Options struct {
	// Progress receives one line before a build starts and one when it ends
	// (a first build takes tens of seconds). nil is silent.
	Progress func(string)
	// Self is the running initprof; "" reads /proc/self/exe.
	Self string
	// CacheDir is where built binaries are kept; "" is CacheDir().
	CacheDir string
	// Go is the go command; "" looks on PATH, then /usr/local/go/bin/go.
	Go string
	// NoBuild makes Static fail instead of building.
	NoBuild bool
}

// machines maps GOARCH to the ELF machine a binary for it has.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// CacheDir is the per-user cache of built binaries.
func CacheDir() (string, error) { return UserCache("bin") }

// UserCache is initprof's per-user cache directory for part:
// ${XDG_CACHE_HOME:-~/.cache}/initprof/PART.
func UserCache(part string) (string, error) {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no $XDG_CACHE_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "initprof", part), nil
}

// cachePath is where the build of goarch for the running binary self is
// kept: CACHE/PREFIX<hash of self>/initprof-linux-GOARCH.
func cachePath(o Options, self, prefix, goarch string) (string, error) {
	cache := o.CacheDir
	if cache == "" {
		var err error
		if cache, err = CacheDir(); err != nil {
			return "", err
		}
	}
	key, err := fileKey(self)
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, prefix+key, "initprof-linux-"+goarch), nil
}

// IsStatic reports whether path is an ELF executable for goarch with no
// interpreter (static or static-pie).
func IsStatic(path, goarch string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if f.Machine != machines[goarch] {
		return false
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// Static returns a static linux/goarch initprof of the same source as the
// running one, in this order: the running binary itself when it already is
// one; initprof-GOARCH next to it (what `make build-arm64` writes); the
// cache; a fresh build into the cache.
func Static(goarch string, o Options) (string, error) {
	if _, ok := machines[goarch]; !ok {
		return "", fmt.Errorf("no initprof build for GOARCH %q: amd64 and arm64 are supported", goarch)
	}
	self := o.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return "", fmt.Errorf("locating the running initprof: %w", err)
		}
	}
	if IsStatic(self, goarch) {
		return self, nil
	}
	if sib := filepath.Join(filepath.Dir(self), "initprof-"+goarch); IsStatic(sib, goarch) {
		return sib, nil
	}
	dst, err := cachePath(o, self, "", goarch)
	if err != nil {
		return "", err
	}
	if IsStatic(dst, goarch) {
		return dst, nil
	}
	why := "this initprof is dynamically linked (cgo)"
	if goarch != runtime.GOARCH {
		why = "no static " + goarch + " initprof next to this one"
	}
	if o.NoBuild {
		return "", fmt.Errorf("%s and none is cached in %s: run 'initprof doctor --fix', or build one with 'make build-%s' (CGO_ENABLED=0 GOARCH=%s go build)", why, filepath.Dir(dst), goarch, goarch)
	}
	src, err := Source()
	if err != nil {
		return "", fmt.Errorf("%s, and it cannot be rebuilt: %w", why, err)
	}
	gobin, err := goCommand(o.Go)
	if err != nil {
		return "", fmt.Errorf("%s, and it cannot be rebuilt: %w", why, err)
	}
	if o.Progress != nil {
		o.Progress(fmt.Sprintf("%s: building a static linux/%s initprof from %s (first use only; cached in %s)", why, goarch, src, filepath.Dir(dst)))
	}
	t0 := time.Now()
	if err := build(gobin, src, goarch, dst); err != nil {
		return "", err
	}
	if o.Progress != nil {
		o.Progress(fmt.Sprintf("built %s in %.1f s", dst, time.Since(t0).Seconds()))
	}
	return dst, nil
}

// CommandPkg is initprof's main package, the program the sandbox runs.
const CommandPkg = "github.com/initprof/initprof/cmd/initprof"

// IsInitprof says whether the running program is initprof's command (and not
// another program that imports the engine, such as a user's test binary).
func IsInitprof() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && bi.Path == CommandPkg
}

// Command returns a static linux/goarch initprof command for a program that
// is not initprof itself: a Go test in a user's module that imports the
// engine. It builds CommandPkg with the module in the current directory
// (which requires initprof, so the same version is built), once per running
// binary, into the cache.
func Command(goarch string, o Options) (string, error) {
	if _, ok := machines[goarch]; !ok {
		return "", fmt.Errorf("no initprof build for GOARCH %q: amd64 and arm64 are supported", goarch)
	}
	self := o.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return "", fmt.Errorf("locating the running program: %w", err)
		}
	}
	dst, err := cachePath(o, self, "cmd-", goarch)
	if err != nil {
		return "", err
	}
	if IsStatic(dst, goarch) {
		return dst, nil
	}
	if o.NoBuild {
		return "", fmt.Errorf("no static initprof built for %s: give the engine one (Config.Self), or build it with 'CGO_ENABLED=0 go build %s'", self, CommandPkg)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	gobin, err := goCommand(o.Go)
	if err != nil {
		return "", fmt.Errorf("building initprof for this program: %w", err)
	}
	if o.Progress != nil {
		o.Progress(fmt.Sprintf("building the static initprof the sandbox runs (%s, in %s; cached in %s)", CommandPkg, wd, filepath.Dir(dst)))
	}
	if err := build(gobin, Src{Dir: wd, Pkg: CommandPkg}, goarch, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// fileKey names the running binary's build: the first 16 hex digits of its
// SHA-256.
func fileKey(path string) (string, error) {
	h, err := SHA256File(path)
	if err != nil {
		return "", err
	}
	return h[:16], nil
}

// SHA256File is the hex SHA-256 of a file's contents.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Src is where a build of the running initprof comes from: a module
// directory (a checkout it was built in) or a module version to fetch.
type Src struct {
	Dir     string // a directory holding the module's go.mod, or ""
	Module  string // the main module's path
	Version string // its version when Dir is "" (from the module proxy)
	Pkg     string // the main package's import path
}

func (s Src) String() string {
	if s.Dir != "" {
		return s.Dir
	}
	return s.Module + "@" + s.Version
}

// Source finds the source of the running binary. The file paths compiled
// into this package name it, unless the build used -trimpath: a checkout for
// `go build` or `go install ./cmd/initprof`, the module cache for `go install
// module@version`. Failing that, a released version is fetched through the
// module proxy.
func Source() (Src, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Src{}, errors.New("the binary carries no build information")
	}
	s := Src{Module: bi.Main.Path, Pkg: bi.Path}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		for dir := filepath.Dir(file); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
				if modulePath(b) == s.Module {
					s.Dir = dir
					return s, nil
				}
				break
			}
		}
	}
	// Go stamps a checkout's build with a pseudo-version (+dirty when the
	// tree was modified); neither is on a proxy.
	if v := bi.Main.Version; v != "" && v != "(devel)" && !strings.Contains(v, "+") {
		s.Version = v
		return s, nil
	}
	return Src{}, fmt.Errorf("it was built from a checkout (version %s) that is gone or was built with -trimpath: build the static binaries next to it with 'make build build-arm64', or reinstall with 'go install'", bi.Main.Version)
}

func modulePath(gomod []byte) string {
	for _, l := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

func goCommand(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "/usr/local/go/bin/go"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("no Go toolchain (go on PATH or /usr/local/go/bin/go)")
}

// build compiles src for linux/goarch with cgo off into dst, under a lock so
// that two initprofs starting at once build it once.
func build(gobin string, src Src, goarch, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(dst+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if IsStatic(dst, goarch) { // another initprof built it while we waited
		return nil
	}
	tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid())
	defer os.Remove(tmp)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	run := func(dir string, args ...string) error {
		cmd := exec.Command(gobin, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if src.Dir != "" {
		err = run(src.Dir, "build", "-trimpath", "-o", tmp, src.Pkg)
	} else {
		// A throw-away module that requires the version this binary was
		// built from, as `go install module@version` resolves it.
		var mod string
		if mod, err = os.MkdirTemp("", "initprof-build-"); err != nil {
			return err
		}
		defer os.RemoveAll(mod)
		env = append(env, "GOFLAGS=-mod=mod")
		if err = run(mod, "mod", "init", "initprof-build"); err == nil {
			if err = run(mod, "get", src.Module+"@"+src.Version); err == nil {
				err = run(mod, "build", "-trimpath", "-o", tmp, src.Pkg)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("building a static linux/%s initprof: %w", goarch, err)
	}
	if !IsStatic(tmp, goarch) {
		return fmt.Errorf("building a static linux/%s initprof: %s came out dynamically linked or for another machine", goarch, tmp)
	}
	return os.Rename(tmp, dst)
}

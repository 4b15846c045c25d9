package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/initprof/initprof/internal/selfbin"
)

// toolVersion runs "path --version" and returns its first line. A tool that
// hangs or fails still counts as found; the version then says why.
func toolVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && line == "" {
		return "version unknown: " + err.Error()
	}
	return line
}

// OCIRuntime finds runc or crun, which the default (OCI) sandbox drives.
// Without either, `--sandbox process` still works, so this is not required.
func OCIRuntime() Result {
	r := Result{Name: "runc/crun"}
	var found []string
	for _, name := range []string{"runc", "crun"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		found = append(found, fmt.Sprintf("%s (%s)", p, toolVersion(p)))
	}
	if len(found) == 0 {
		r.Status = Missing
		r.Detail = "neither found on PATH"
		r.Fix = "apt-get install runc (or use --sandbox process)"
		return r
	}
	r.Status = OK
	r.Detail = strings.Join(found, "; ")
	return r
}

// QEMU finds qemu-system-aarch64, which runs the arm64 microVM.
func QEMU() Result {
	r := Result{Name: "arm64 qemu"}
	p, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		r.Status = Warn
		r.Detail = "qemu-system-aarch64 not on PATH: the arm64 microVM cannot run"
		r.Fix = "apt-get install qemu-system-arm"
		return r
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("%s (%s)", p, toolVersion(p))
	return r
}

// ARM64KernelPath is where the arm64 microVM's kernel is cached:
// $XDG_CACHE_HOME/initprof/arm64/vmlinuz, else ~/.cache/initprof/arm64/vmlinuz.
// `make arm64-kernel` and `initprof doctor --fix` put it there.
func ARM64KernelPath() (string, error) {
	dir, err := arm64Cache()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "vmlinuz"), nil
}

// ARM64SysrootPath is where Debian's arm64 libraries (libc, ld.so and its
// debug file, runc, crun, libcurl) are cached for the microVM:
// $XDG_CACHE_HOME/initprof/arm64/sysroot. Only a dynamically linked arm64
// extension or --sandbox oci in the microVM needs it; `make arm64-sysroot`
// and `initprof doctor --fix` fill it.
func ARM64SysrootPath() (string, error) {
	dir, err := arm64Cache()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "sysroot"), nil
}

// ARM64SysrootReady reports whether dir holds a complete sysroot: the stamp
// scripts/arm64-sysroot.sh writes last.
func ARM64SysrootReady(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, ".initprof-sysroot"))
	return err == nil && st.Size() > 0
}

func arm64Cache() (string, error) { return selfbin.UserCache("arm64") }

// ARM64Sysroot checks the cached arm64 sysroot.
func ARM64Sysroot() Result {
	r := Result{Name: "arm64 sysroot", Status: Warn, Fix: "initprof doctor --fix (or give --rootfs DIR with arm64 libraries)"}
	p, err := ARM64SysrootPath()
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	if !ARM64SysrootReady(p) {
		r.Detail = fmt.Sprintf("no arm64 libraries in %s: a static arm64 extension runs without them; a dynamically linked one, and --sandbox oci in the microVM, need them", p)
		return r
	}
	r.Status, r.Fix = OK, ""
	r.Detail = p
	return r
}

// ARM64Guest checks for the static arm64 initprof that is the microVM's
// /init: next to this binary, or in the cache.
func ARM64Guest() Result {
	r := Result{Name: "arm64 initprof"}
	p, err := selfbin.Static("arm64", selfbin.Options{NoBuild: true})
	if err == nil {
		r.Status, r.Detail = OK, p
		return r
	}
	r.Status, r.Detail = Warn, err.Error()
	if _, serr := selfbin.Source(); serr != nil {
		r.Detail += "; it cannot be built here: " + serr.Error()
		r.Fix = "make build-arm64 (in a checkout of initprof)"
	} else {
		r.Fix = "initprof doctor --fix (builds it once; 'initprof run --arch arm64' also does on first use)"
	}
	return r
}

// ARM64Kernel checks the cached arm64 kernel for the microVM.
func ARM64Kernel() Result {
	p, err := ARM64KernelPath()
	if err != nil {
		return Result{Name: "arm64 kernel", Status: Warn, Detail: err.Error(), Fix: "set XDG_CACHE_HOME, then initprof doctor --fix"}
	}
	return arm64KernelAt(p)
}

// arm64ImageMagic is "ARM\x64" at offset 0x38 of an arm64 kernel Image
// (Documentation/arch/arm64/booting.rst), which qemu -kernel boots directly.
var arm64ImageMagic = []byte("ARM\x64")

func arm64KernelAt(path string) Result {
	r := Result{Name: "arm64 kernel", Status: Warn, Fix: "initprof doctor --fix (or make arm64-kernel)"}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			r.Detail = fmt.Sprintf("no kernel at %s: the arm64 microVM cannot run", path)
		} else {
			r.Detail = fmt.Sprintf("%s: %v", path, err)
		}
		return r
	}
	defer f.Close()
	hdr := make([]byte, 0x40)
	if _, err := io.ReadFull(f, hdr); err != nil {
		r.Detail = fmt.Sprintf("%s is too short to be a kernel Image (%v)", path, err)
		return r
	}
	if !bytes.Equal(hdr[0x38:0x3c], arm64ImageMagic) {
		r.Detail = fmt.Sprintf("%s is not an arm64 kernel Image (no ARM\\x64 magic at 0x38)", path)
		return r
	}
	r.Status, r.Fix = OK, ""
	r.Detail = path + " (arm64 Image)"
	return r
}

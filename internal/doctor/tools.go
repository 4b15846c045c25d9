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
// `make arm64-kernel` puts it there.
func ARM64KernelPath() (string, error) {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no $XDG_CACHE_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "initprof", "arm64", "vmlinuz"), nil
}

// ARM64Kernel checks the cached arm64 kernel for the microVM.
func ARM64Kernel() Result {
	p, err := ARM64KernelPath()
	if err != nil {
		return Result{Name: "arm64 kernel", Status: Warn, Detail: err.Error(), Fix: "set XDG_CACHE_HOME, then make arm64-kernel"}
	}
	return arm64KernelAt(p)
}

// arm64ImageMagic is "ARM\x64" at offset 0x38 of an arm64 kernel Image
// (Documentation/arch/arm64/booting.rst), which qemu -kernel boots directly.
var arm64ImageMagic = []byte("ARM\x64")

func arm64KernelAt(path string) Result {
	r := Result{Name: "arm64 kernel", Status: Warn, Fix: "make arm64-kernel"}
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

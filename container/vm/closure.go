package vm

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/internal/doctor"
)

// ClosureFiles returns the files that make binary runnable in the guest at
// guestPath: the binary itself, its ELF interpreter and its DT_NEEDED closure,
// resolved by elfinfo.ResolveClosure inside sysroot (an arm64 root file system,
// e.g. build/arm64-sysroot from scripts/arm64-sysroot.sh), each placed at the
// path the loader will look for it. The interpreter's build-id debug file
// (Debian's libc6-dbg) comes along when the sysroot has it, because the loader
// checkpoints attach uprobes to ld.so's internal symbols, which the stripped
// ld.so lacks. A static binary returns just itself.
func ClosureFiles(binary, guestPath, sysroot string) ([]File, error) {
	if !path.IsAbs(guestPath) {
		return nil, fmt.Errorf("guest path %q for %s: want an absolute path", guestPath, binary)
	}
	files := []File{{GuestPath: guestPath, HostPath: binary, Mode: 0o755}}
	if info, err := elfinfo.Open(binary); err == nil && info.Interp == "" && len(info.Needed) == 0 {
		return files, nil // static: no sysroot needed, none read
	}
	cl, err := elfinfo.ResolveClosure(binary, sysroot)
	if err != nil {
		return nil, fmt.Errorf("closure of %s in %s: %w", binary, sysroot, err)
	}
	if len(cl.Missing) > 0 {
		return nil, fmt.Errorf("closure of %s: %s not found in %s: fetch the arm64 libraries with scripts/arm64-sysroot.sh",
			binary, strings.Join(cl.Missing, ", "), sysroot)
	}
	if cl.Interp != "" {
		files = append(files, File{GuestPath: cl.Interp, HostPath: cl.InterpHost, Mode: 0o755})
		if id, err := doctor.BuildID(cl.InterpHost); err == nil {
			dbg := doctor.DebugFile(filepath.Join(sysroot, "usr/lib/debug"), id)
			if _, err := os.Stat(dbg); err == nil {
				rel, _ := filepath.Rel(sysroot, dbg)
				files = append(files, File{GuestPath: "/" + filepath.ToSlash(rel), HostPath: dbg, Mode: 0o644})
			}
		}
	}
	// Libraries found through the binary's $ORIGIN keep their place relative
	// to it once it sits at guestPath (a layer's /opt/lib next to
	// /opt/extensions); the others stay where the sysroot has them.
	placed := cl.PlacedAt(guestPath)
	for i, l := range cl.Libs {
		// The interpreter is also a DT_NEEDED of libc: list each path once.
		if l.Path != cl.Interp {
			files = append(files, File{GuestPath: placed[i], HostPath: l.HostPath, Mode: 0o755})
		}
	}
	return files, nil
}

package doctor

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DebugRoot is where distributions install build-id debug files
// (/usr/lib/debug/.build-id/ab/cdef….debug).
const DebugRoot = "/usr/lib/debug"

// loaderSymbols are the ld.so functions the probes put checkpoints on. Debian
// strips them from ld.so; only the libc6-dbg debug file has them.
var loaderSymbols = []string{"dl_main", "_dl_map_object_deps", "_dl_relocate_object", "_dl_init"}

// interpSources are executables whose PT_INTERP names the host's loader;
// /proc/self/exe is not one of them because initprof is built static.
var interpSources = []string{"/bin/sh", "/usr/bin/env", "/bin/ls"}

const loaderFallback = "probes fall back to ld.so's entry, _dl_debug_state and the executable's _start/main: " +
	"no dl_main, deps_loaded (_dl_map_object_deps), relocated (_dl_relocate_object) or constructors_done (_dl_init) checkpoints"

// LoaderSymbols checks that the host's dynamic loader has symbols for the
// loader checkpoints, in the loader itself or in its build-id debug file.
func LoaderSymbols() Result {
	interp, err := HostInterpreter()
	if err != nil {
		return Result{Name: "ld.so symbols", Status: Warn, Detail: err.Error() + "; " + loaderFallback,
			Fix: "install a dynamically linked /bin/sh (apt-get install dash)"}
	}
	return loaderSymbolsAt(interp, DebugRoot)
}

// HostInterpreter returns the ELF interpreter (PT_INTERP) of the first
// dynamically linked executable among /bin/sh, /usr/bin/env and /bin/ls.
func HostInterpreter() (string, error) {
	var errs []string
	for _, p := range interpSources {
		interp, err := Interpreter(p)
		if err == nil {
			return interp, nil
		}
		errs = append(errs, err.Error())
	}
	return "", fmt.Errorf("no dynamically linked executable to learn ld.so from (%s)", strings.Join(errs, "; "))
}

// Interpreter returns the PT_INTERP path of an ELF executable.
func Interpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("%s: reading PT_INTERP: %w", path, err)
		}
		return string(bytes.TrimRight(b, "\x00")), nil
	}
	return "", fmt.Errorf("%s: statically linked (no PT_INTERP)", path)
}

// BuildID returns the hex GNU build-id of an ELF file, from its
// .note.gnu.build-id section or, when sections are stripped, its PT_NOTE
// segments.
func BuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var notes [][]byte
	if s := f.Section(".note.gnu.build-id"); s != nil {
		if b, err := s.Data(); err == nil {
			notes = append(notes, b)
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			if b, err := io.ReadAll(p.Open()); err == nil {
				notes = append(notes, b)
			}
		}
	}
	for _, n := range notes {
		if id, ok := findBuildIDNote(n, f.ByteOrder); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("%s: no GNU build-id note", path)
}

// findBuildIDNote walks ELF notes (namesz, descsz, type, name, desc; name and
// desc padded to 4 bytes) for NT_GNU_BUILD_ID (3) owned by "GNU".
func findBuildIDNote(b []byte, bo binary.ByteOrder) (string, bool) {
	const ntGNUBuildID = 3
	align := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b[0:]), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if align(namesz) > len(b) {
			return "", false
		}
		name := b[:namesz]
		b = b[align(namesz):]
		if align(descsz) > len(b) {
			return "", false
		}
		desc := b[:descsz]
		b = b[align(descsz):]
		if typ == ntGNUBuildID && string(bytes.TrimRight(name, "\x00")) == "GNU" && len(desc) > 0 {
			return hex.EncodeToString(desc), true
		}
	}
	return "", false
}

// DebugFile returns the build-id debug file path for a build-id under root
// (normally DebugRoot).
func DebugFile(root, buildID string) string {
	if len(buildID) < 3 {
		return ""
	}
	return filepath.Join(root, ".build-id", buildID[:2], buildID[2:]+".debug")
}

// missingSymbols returns which of want an ELF file's .symtab lacks.
func missingSymbols(path string, want []string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, err
	}
	have := make(map[string]bool, len(syms))
	for _, s := range syms {
		have[s.Name] = true
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	return missing, nil
}

// loaderSymbolsAt judges the loader interp with debug files under root.
func loaderSymbolsAt(interp, root string) Result {
	r := Result{Name: "ld.so symbols", Status: Warn, Fix: "apt-get install libc6-dbg"}
	// The loader itself may carry a symbol table (not on Debian, which strips it).
	if miss, err := missingSymbols(interp, loaderSymbols); err == nil && len(miss) == 0 {
		r.Status, r.Fix = OK, ""
		r.Detail = fmt.Sprintf("%s is not stripped: has %s", interp, strings.Join(loaderSymbols, ", "))
		return r
	}
	id, err := BuildID(interp)
	if err != nil {
		r.Detail = fmt.Sprintf("%v; %s", err, loaderFallback)
		return r
	}
	dbg := DebugFile(root, id)
	miss, err := missingSymbols(dbg, loaderSymbols)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.Detail = fmt.Sprintf("%s is stripped and its debug file %s is absent; %s", interp, dbg, loaderFallback)
	case err != nil:
		r.Detail = fmt.Sprintf("%s: %v; %s", dbg, err, loaderFallback)
	case len(miss) > 0:
		r.Detail = fmt.Sprintf("%s lacks %s; %s", dbg, strings.Join(miss, ", "), loaderFallback)
	default:
		r.Status, r.Fix = OK, ""
		r.Detail = fmt.Sprintf("%s (build-id %s…): %s has %s", interp, id[:8], dbg, strings.Join(loaderSymbols, ", "))
	}
	return r
}

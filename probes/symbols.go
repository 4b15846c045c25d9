package probes

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultDebugDir is where distributions install split debug files, keyed by
// build ID (Debian's libc6-dbg puts ld.so's symbols there: ld.so itself is stripped).
const DefaultDebugDir = "/usr/lib/debug"

// symbols is what a uprobe needs from one ELF file: its entry point and the
// functions it names, all as FILE OFFSETS (the kernel keys uprobes on inode and
// file offset, and UprobeOptions.Address is a file offset, not a vaddr).
type symbols struct {
	path    string
	entry   uint64            // file offset of e_entry; 0 if it maps to no PT_LOAD
	offsets map[string]uint64 // function name → file offset
	full    bool              // a .symtab was found (in the file or its debug file)
	debug   string            // the debug file used, "" if none
	buildID string            // hex, "" if the file has no build-ID note
	// mainFromStart says main was found by decoding _start, not by name.
	mainFromStart bool
	// goMainSite is the file offset the main.main checkpoint probes: past
	// the stack-bound check on amd64 (see goPrologueSkip); 0: none.
	goMainSite uint64
	// calibClockSite is where the calibration's clock probe goes: past the
	// same prologue, so it traps on the instruction class main.main's probe
	// does (on amd64 an emulated push, not a single-stepped compare, whose
	// trap returns ~15 µs later on a Firecracker guest).
	calibClockSite uint64
}

// goSite is the file offset to probe a Go function at: past its stack-bound
// check on amd64 (goPrologueSkip), its entry elsewhere.
func goSite(path string, m elf.Machine, off uint64) uint64 {
	if m != elf.EM_X86_64 {
		return off
	}
	code := make([]byte, 16)
	fh, err := os.Open(path)
	if err != nil {
		return off
	}
	defer fh.Close()
	if n, _ := fh.ReadAt(code, int64(off)); n == len(code) {
		return off + goPrologueSkip(code)
	}
	return off
}

// loadSymbols reads path's entry point and every defined function from its
// .symtab, its .dynsym and, when the file is stripped, its build-ID debug file
// under debugDir. Debug files carry no .dynsym and their program headers may not
// match, so addresses are always converted through the real file's PT_LOADs.
func loadSymbols(path, debugDir string) (s *symbols, err error) {
	defer func() {
		// debug/elf can panic on hostile input; a bad file is an error, not a crash.
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%s: malformed ELF file (%v)", path, r)
		}
	}()
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable ELF file: %w", path, err)
	}
	defer f.Close()

	s = &symbols{path: path, offsets: map[string]uint64{}}
	var loads []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p)
		}
	}
	toOffset := func(vaddr uint64) (uint64, bool) {
		for _, p := range loads {
			if vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
				return vaddr - p.Vaddr + p.Off, true
			}
		}
		return 0, false
	}
	if off, ok := toOffset(f.Entry); ok {
		s.entry = off
	}
	add := func(syms []elf.Symbol) {
		for _, sym := range syms {
			t := elf.ST_TYPE(sym.Info)
			if sym.Value == 0 || sym.Section == elf.SHN_UNDEF || (t != elf.STT_FUNC && t != elf.STT_NOTYPE && t != elf.STT_GNU_IFUNC) {
				continue
			}
			if _, dup := s.offsets[sym.Name]; dup {
				continue
			}
			if off, ok := toOffset(sym.Value); ok {
				s.offsets[sym.Name] = off
			}
		}
	}
	if syms, err := f.Symbols(); err == nil && len(syms) > 0 {
		s.full = true
		add(syms)
	}
	if syms, err := f.DynamicSymbols(); err == nil {
		add(syms)
	}
	s.buildID = buildID(f)
	if !s.full && s.buildID != "" && len(s.buildID) > 2 && debugDir != "" {
		dbg := filepath.Join(debugDir, ".build-id", s.buildID[:2], s.buildID[2:]+".debug")
		if df, err := elf.Open(dbg); err == nil {
			if syms, err := df.Symbols(); err == nil && len(syms) > 0 {
				s.full = true
				s.debug = dbg
				add(syms)
			}
			df.Close()
		}
	}
	if off, ok := s.offsets["main.main"]; ok {
		s.goMainSite = goSite(path, f.Machine, off)
	}
	if off, ok := s.offsets[calibClockSym]; ok {
		s.calibClockSite = goSite(path, f.Machine, off)
	}
	// A stripped executable (a release build, as extensions ship) still
	// names main to __libc_start_main in its _start.
	_, haveMain := s.offsets["main"]
	_, haveGoMain := s.offsets["main.main"]
	if !haveMain && !haveGoMain && (f.Type == elf.ET_DYN || f.Type == elf.ET_EXEC) {
		if va, err := mainFromStart(f); err == nil {
			if off, ok := toOffset(va); ok {
				s.offsets["main"] = off
				s.mainFromStart = true
			}
		}
	}
	return s, nil
}

// goPrologueSkip returns how far into an amd64 Go function the first
// instruction after its stack-bound check lies, or 0. A Go function starts
// with CMPQ SP, 0x10(R14) and JBE morestack, then PUSHQ BP. The kernel
// cannot emulate the CMPQ, so a uprobe on it single-steps it out of line: a
// second trap of several µs before the function goes on, which delays the
// code after the probe (main.main's own clock read came 27 µs after the
// probe's, against 4–7 µs for C's main, whose first instruction is a push
// the kernel emulates). PUSHQ BP is emulated; the CMPQ and the untaken JBE
// before it take nanoseconds. When the JBE is taken (the stack grows), the
// function restarts from its entry and the probe still fires once, at the
// push.
func goPrologueSkip(code []byte) uint64 {
	cmp := []byte{0x49, 0x3b, 0x66, 0x10} // CMPQ SP, 0x10(R14)
	if len(code) < 11 || string(code[:4]) != string(cmp) {
		return 0
	}
	switch {
	case code[4] == 0x76 && code[6] == 0x55: // JBE rel8; PUSHQ BP
		return 6
	case code[4] == 0x0f && code[5] == 0x86 && code[10] == 0x55: // JBE rel32; PUSHQ BP
		return 10
	}
	return 0
}

// debugPath is where the build-ID debug file would be; for error messages.
func (s *symbols) debugPath(debugDir string) string {
	if len(s.buildID) <= 2 {
		return ""
	}
	return filepath.Join(debugDir, ".build-id", s.buildID[:2], s.buildID[2:]+".debug")
}

// buildID returns the GNU build ID note of f as hex, or "".
func buildID(f *elf.File) string {
	var data []byte
	if sec := f.Section(".note.gnu.build-id"); sec != nil {
		data, _ = sec.Data()
	}
	if data == nil {
		for _, p := range f.Progs {
			if p.Type != elf.PT_NOTE || p.Filesz > 1<<16 {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				if id := parseBuildIDNotes(b, f.ByteOrder); id != "" {
					return id
				}
			}
		}
		return ""
	}
	return parseBuildIDNotes(data, f.ByteOrder)
}

func parseBuildIDNotes(b []byte, bo binary.ByteOrder) string {
	align4 := func(n uint32) uint32 { return (n + 3) &^ 3 }
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if uint64(align4(namesz))+uint64(align4(descsz)) > uint64(len(b)) {
			return ""
		}
		name := b[:namesz]
		desc := b[align4(namesz) : align4(namesz)+descsz]
		b = b[align4(namesz)+align4(descsz):]
		if typ == 3 /* NT_GNU_BUILD_ID */ && bytes.Equal(bytes.TrimRight(name, "\x00"), []byte("GNU")) {
			return hex.EncodeToString(desc)
		}
	}
	return ""
}

// interpreter returns the PT_INTERP path of an executable, "" for a static one.
func interpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not a readable ELF file: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", fmt.Errorf("%s: reading PT_INTERP: %w", path, err)
			}
			return string(bytes.TrimRight(b, "\x00")), nil
		}
	}
	return "", nil
}

var errNotRegular = errors.New("not a regular file")

func checkFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %w", path, errNotRegular)
	}
	return nil
}

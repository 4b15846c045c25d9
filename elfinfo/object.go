// Package elfinfo reads the load-cost facts of an ELF binary: how it links, what
// the dynamic loader must find and relocate before main runs, and which toolchain
// built it. It also resolves the DT_NEEDED closure the way ld.so would, so that a
// sandbox can be assembled with exactly the files the loader will open.
//
// Everything here reads files only; nothing is executed. Malformed input yields an
// error naming the file, never a panic: debug/elf is guarded with recover and every
// offset taken from the file is range-checked before use.
package elfinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxDynEntries bounds how many dynamic entries we read, so a corrupt PT_DYNAMIC
// size cannot make us allocate gigabytes. Real binaries have well under 100.
const maxDynEntries = 1 << 16

// object is an opened ELF file with its dynamic section parsed from the program
// headers (PT_DYNAMIC), not from section headers: ld.so uses only the program
// headers, and a binary stripped of its section headers still loads.
type object struct {
	path string
	f    *os.File
	ef   *elf.File
	size int64
	dyn  []dynEntry
	// dynstr is the DT_STRTAB contents (bounded by DT_STRSZ), nil if absent.
	dynstr []byte
}

type dynEntry struct {
	tag elf.DynTag
	val uint64
}

// inputError is a problem with the file itself (not ELF, truncated, wrong class...).
type inputError struct {
	path string
	msg  string
}

func (e *inputError) Error() string { return e.path + ": " + e.msg }

// IsBadInput reports whether err is about the input file itself (missing, not a
// regular file, not a usable ELF) rather than an I/O failure of this machine.
func IsBadInput(err error) bool {
	var ie *inputError
	return errors.As(err, &ie)
}

func badFile(path, format string, args ...any) error {
	return &inputError{path: path, msg: fmt.Sprintf(format, args...)}
}

// openObject opens path as a 64-bit ELF and parses its dynamic section. It never
// panics: debug/elf panics on some malformed inputs in older releases, and the
// recover turns those into an error.
func openObject(path string) (o *object, err error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, badFile(path, "no such file")
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, badFile(path, "permission denied")
		}
		return nil, badFile(path, "%v", unwrapPathError(err))
	}
	if st.IsDir() {
		return nil, badFile(path, "is a directory, not an ELF file")
	}
	if !st.Mode().IsRegular() {
		return nil, badFile(path, "not a regular file (%s)", st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, badFile(path, "%v", unwrapPathError(err))
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	size := st.Size()
	if size == 0 {
		return nil, badFile(path, "empty file, not an ELF file")
	}
	var head [64]byte
	n, _ := f.ReadAt(head[:], 0)
	if n < 4 || !bytes.Equal(head[:4], []byte(elf.ELFMAG)) {
		return nil, badFile(path, "not an ELF file (starts with %s)", strconv.Quote(string(head[:min(n, 5)])))
	}
	if n < 5 {
		return nil, badFile(path, "truncated ELF file (%d bytes)", size)
	}
	switch elf.Class(head[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
	case elf.ELFCLASS32:
		return nil, badFile(path, "32-bit ELF file; only 64-bit binaries (x86_64, aarch64) are supported")
	default:
		return nil, badFile(path, "invalid ELF class %d", head[elf.EI_CLASS])
	}
	if n < 64 {
		return nil, badFile(path, "truncated ELF file (%d bytes, the ELF64 header alone is 64)", size)
	}
	// Check the header tables against the file size first, so a cut-off file is
	// reported as truncated rather than as debug/elf's bare "EOF".
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(head[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	for _, tab := range []struct {
		what      string
		off       uint64
		num, size uint64
	}{
		{"program headers", bo.Uint64(head[32:]), uint64(bo.Uint16(head[56:])), uint64(bo.Uint16(head[54:]))},
		{"section headers", bo.Uint64(head[40:]), uint64(bo.Uint16(head[60:])), uint64(bo.Uint16(head[58:]))},
	} {
		if tab.num == 0 || tab.off == 0 {
			continue
		}
		if end := tab.num * tab.size; tab.off > uint64(size) || end > uint64(size)-tab.off {
			return nil, badFile(path, "truncated ELF file (%d bytes): its %s (%d bytes at offset %d) are past the end", size, tab.what, end, tab.off)
		}
	}
	ef, err := safeNewFile(f)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, badFile(path, "truncated ELF file (%d bytes): %v", size, err)
	}
	if err != nil {
		return nil, badFile(path, "malformed ELF file: %v", err)
	}
	o = &object{path: path, f: f, ef: ef, size: size}
	// Program headers must lie inside the file: debug/elf does not check that.
	for i, p := range ef.Progs {
		if p.Type == elf.PT_LOAD || p.Type == elf.PT_DYNAMIC || p.Type == elf.PT_INTERP {
			if p.Off > uint64(size) || p.Filesz > uint64(size)-p.Off {
				return nil, badFile(path, "truncated ELF file: program header %d (%s) covers %d bytes at offset %d, but the file has %d", i, p.Type, p.Filesz, p.Off, size)
			}
		}
	}
	if err := o.parseDynamic(); err != nil {
		return nil, badFile(path, "malformed dynamic section: %v", err)
	}
	return o, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func safeNewFile(r io.ReaderAt) (ef *elf.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			ef, err = nil, fmt.Errorf("debug/elf panicked: %v", p)
		}
	}()
	return elf.NewFile(r)
}

func (o *object) Close() error { return o.f.Close() }

// prog returns the first program header of type t, or nil.
func (o *object) prog(t elf.ProgType) *elf.Prog {
	for _, p := range o.ef.Progs {
		if p.Type == t {
			return p
		}
	}
	return nil
}

// readAt reads n bytes at file offset off, checking the range against the file.
func (o *object) readAt(off, n uint64) ([]byte, error) {
	if off > uint64(o.size) || n > uint64(o.size)-off {
		return nil, fmt.Errorf("range [%d, +%d) is outside the file (%d bytes)", off, n, o.size)
	}
	b := make([]byte, n)
	if _, err := o.f.ReadAt(b, int64(off)); err != nil {
		return nil, err
	}
	return b, nil
}

// vaddrToOff maps a virtual address range to a file offset through the PT_LOAD
// segments, as the loader's mapping would. ok is false when the range is not
// backed by file contents.
func (o *object) vaddrToOff(vaddr, n uint64) (uint64, bool) {
	for _, p := range o.ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if vaddr >= p.Vaddr && vaddr-p.Vaddr <= p.Filesz && n <= p.Filesz-(vaddr-p.Vaddr) {
			return p.Off + (vaddr - p.Vaddr), true
		}
	}
	return 0, false
}

// readVaddr reads n bytes of the file image at virtual address vaddr.
func (o *object) readVaddr(vaddr, n uint64) ([]byte, error) {
	off, ok := o.vaddrToOff(vaddr, n)
	if !ok {
		return nil, fmt.Errorf("address %#x (+%d) is not in any PT_LOAD segment's file contents", vaddr, n)
	}
	return o.readAt(off, n)
}

func (o *object) parseDynamic() error {
	p := o.prog(elf.PT_DYNAMIC)
	if p == nil {
		return nil
	}
	const entSize = 16
	cnt := p.Filesz / entSize
	if cnt > maxDynEntries {
		return fmt.Errorf("PT_DYNAMIC has %d entries", cnt)
	}
	b, err := o.readAt(p.Off, cnt*entSize)
	if err != nil {
		return err
	}
	bo := o.ef.ByteOrder
	for i := uint64(0); i < cnt; i++ {
		tag := elf.DynTag(int64(bo.Uint64(b[i*entSize:])))
		val := bo.Uint64(b[i*entSize+8:])
		if tag == elf.DT_NULL {
			break
		}
		o.dyn = append(o.dyn, dynEntry{tag, val})
	}
	if strtab, ok := o.dynVal(elf.DT_STRTAB); ok {
		strsz, _ := o.dynVal(elf.DT_STRSZ)
		if strsz > uint64(o.size) {
			return fmt.Errorf("DT_STRSZ %d is larger than the file", strsz)
		}
		if o.dynstr, err = o.readVaddr(strtab, strsz); err != nil {
			return fmt.Errorf("DT_STRTAB: %v", err)
		}
	}
	return nil
}

// dynVal returns the first value of tag.
func (o *object) dynVal(tag elf.DynTag) (uint64, bool) {
	for _, d := range o.dyn {
		if d.tag == tag {
			return d.val, true
		}
	}
	return 0, false
}

func (o *object) hasDyn(tag elf.DynTag) bool {
	_, ok := o.dynVal(tag)
	return ok
}

// dynStrings returns the strings of every entry with tag (DT_NEEDED, DT_RUNPATH...).
func (o *object) dynStrings(tag elf.DynTag) []string {
	var out []string
	for _, d := range o.dyn {
		if d.tag != tag {
			continue
		}
		if s, ok := o.str(d.val); ok {
			out = append(out, s)
		}
	}
	return out
}

func (o *object) str(off uint64) (string, bool) {
	if off >= uint64(len(o.dynstr)) {
		return "", false
	}
	b := o.dynstr[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), true
}

// interp returns the PT_INTERP path, "" if none.
func (o *object) interp() (string, error) {
	p := o.prog(elf.PT_INTERP)
	if p == nil {
		return "", nil
	}
	if p.Filesz > 4096 {
		return "", fmt.Errorf("PT_INTERP is %d bytes long", p.Filesz)
	}
	b, err := o.readAt(p.Off, p.Filesz)
	if err != nil {
		return "", fmt.Errorf("PT_INTERP: %v", err)
	}
	return strings.TrimRight(string(b), "\x00"), nil
}

// archName is the uname -m style name of an ELF machine.
func archName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_386:
		return "i386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_PPC64:
		return "ppc64"
	case elf.EM_S390:
		return "s390x"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

package elfinfo

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Schema names the JSON layout of Info. It changes only when a field changes
// meaning or is removed; new fields may be added within a version.
const Schema = "initprof.inspect/v1"

// PageSize is the page size used to count relocated pages. Both x86_64 and
// Debian's / Amazon Linux's aarch64 kernels use 4 KiB pages.
const PageSize = 4096

// AL2023Glibc is the glibc of Amazon Linux 2023, the OS of current Lambda
// runtimes: a binary that needs a newer glibc will not load there.
const AL2023Glibc = "2.34"

// Constants debug/elf lacks (from the gABI and glibc's elf.h).
const (
	dtRELRSZ     elf.DynTag      = 35
	dtRELR       elf.DynTag      = 36
	dtRELRENT    elf.DynTag      = 37
	shtRELR      elf.SectionType = 19
	stbGNUUnique elf.SymBind     = 10
)

// Info holds the load-cost facts of one ELF binary.
type Info struct {
	Schema   string `json:"schema"`
	Path     string `json:"path"`
	FileSize int64  `json:"file_size"`
	Arch     string `json:"arch"`  // uname -m style: x86_64, aarch64
	Class    string `json:"class"` // ELF64 (ELF32 is refused)
	Type     string `json:"type"`  // EXEC, DYN
	// Linkage is static, static-pie, dynamic-pie, dynamic (non-PIE), or
	// shared-library (ET_DYN without an interpreter or DF_1_PIE).
	Linkage string `json:"linkage"`
	Interp  string `json:"interp,omitempty"`

	// BindNow is DT_BIND_NOW or DF_BIND_NOW in DT_FLAGS; DF1Now is DF_1_NOW in
	// DT_FLAGS_1. Either makes ld.so resolve every PLT slot before main.
	BindNow bool `json:"bind_now"`
	DF1Now  bool `json:"df_1_now"`
	DF1PIE  bool `json:"df_1_pie"`
	// LazyBinding is true when PLT slots are resolved on first call instead.
	LazyBinding bool     `json:"lazy_binding"`
	Flags       []string `json:"flags"`   // DT_FLAGS names
	Flags1      []string `json:"flags_1"` // DT_FLAGS_1 names
	// RELRO is none (no PT_GNU_RELRO), partial, or full (RELRO + immediate binding).
	RELRO    string `json:"relro"`
	Relr     bool   `json:"relr"` // DT_RELR or an SHT_RELR section
	GNUHash  bool   `json:"gnu_hash"`
	SysVHash bool   `json:"sysv_hash"`

	Needed       []string `json:"needed"`
	Closure      *Closure `json:"closure,omitempty"`
	ClosureError string   `json:"closure_error,omitempty"`
	// ClosureCost sums the load-time work of every library in the closure (the
	// binary itself excluded): ld.so relocates them all before main.
	ClosureCost *ClosureCost `json:"closure_cost,omitempty"`

	Relocs Relocs `json:"relocs"`
	// RelocPages is the number of distinct PageSize pages that load-time
	// relocations (RELA/REL, RELR and JUMP_SLOT) write to: each is a
	// copy-on-write fault and a dirty private page.
	RelocPages int `json:"reloc_pages"`
	PageSize   int `json:"page_size"`

	ImportedSymbols int `json:"imported_symbols"` // undefined in .dynsym
	ExportedSymbols int `json:"exported_symbols"` // defined global/weak in .dynsym

	Segments Segments `json:"segments"`

	BuildID   string `json:"build_id,omitempty"`
	Stripped  bool   `json:"stripped"`   // no .symtab
	DebugInfo bool   `json:"debug_info"` // .debug_info in the file itself
	// DebugFile is the build-id debug file under /usr/lib/debug/.build-id, if any.
	DebugFile string `json:"debug_file,omitempty"`

	Toolchain Toolchain `json:"toolchain"`

	// GlibcRequired is the highest GLIBC_x.y version the binary needs (from
	// .gnu.version_r), "" when it needs none.
	GlibcRequired string   `json:"glibc_required,omitempty"`
	Warnings      []string `json:"warnings,omitempty"`
}

// Relocs counts the relocations the loader applies at startup, by kind.
type Relocs struct {
	Relative int `json:"relative"` // base + addend; includes RELR-encoded ones
	// RelrRelative is how many of Relative come packed in DT_RELR.
	RelrRelative int `json:"relr_relative"`
	GlobDat      int `json:"glob_dat"`  // symbol lookups for GOT entries
	JumpSlot     int `json:"jump_slot"` // PLT slots (lookups now, or on first call if lazy)
	Other        int `json:"other"`
	// OtherByType breaks Other down, e.g. {"IRELATIVE": 12, "TPOFF64": 1}.
	OtherByType map[string]int `json:"other_by_type,omitempty"`
	Total       int            `json:"total"`
	RelrBytes   uint64         `json:"relr_bytes"` // size of the RELR table
}

// ClosureCost is the sum over the closure's libraries (interpreter included when
// it is a DT_NEEDED, as libc's is).
type ClosureCost struct {
	Libs       int    `json:"libs"`
	FileSize   int64  `json:"file_size"`
	Relocs     Relocs `json:"relocs"`
	RelocPages int    `json:"reloc_pages"`
	// Unreadable lists libraries that could not be inspected (left out of the sums).
	Unreadable []string `json:"unreadable,omitempty"`
}

// Segments are byte sizes of the loadable parts.
type Segments struct {
	Text   uint64 `json:"text"`   // executable PT_LOAD memsz
	Rodata uint64 `json:"rodata"` // read-only, non-executable PT_LOAD memsz
	Data   uint64 `json:"data"`   // writable PT_LOAD file size
	Relro  uint64 `json:"relro"`  // PT_GNU_RELRO memsz
	BSS    uint64 `json:"bss"`    // writable PT_LOAD memsz - filesz
	// LoadAlign is the largest PT_LOAD p_align (64 KiB on many aarch64 builds).
	LoadAlign uint64 `json:"load_align"`
}

// Toolchain is what the binary says about how it was built.
type Toolchain struct {
	Language string  `json:"language,omitempty"` // go, rust, c (best guess)
	Go       *GoInfo `json:"go,omitempty"`
	Rustc    string  `json:"rustc,omitempty"` // e.g. "rustc version 1.95.0 (...)"
	GCC      string  `json:"gcc,omitempty"`   // e.g. "GCC: (Debian 12.2.0-14) 12.2.0"
	Clang    string  `json:"clang,omitempty"`
	Linker   string  `json:"linker,omitempty"` // e.g. "Linker: LLD 19.1.7"
	// Comment is every distinct string of .comment.
	Comment []string `json:"comment,omitempty"`
}

// GoInfo is the Go build information embedded by the Go linker.
type GoInfo struct {
	Version    string `json:"version"`
	Path       string `json:"path"`   // main package path
	Module     string `json:"module"` // main module path
	CgoEnabled string `json:"cgo_enabled,omitempty"`
	BuildMode  string `json:"buildmode,omitempty"`
	LDFlags    string `json:"ldflags,omitempty"`
}

// Open reads every fact of the ELF file at path. It does not resolve the
// closure: call (*Info).ResolveClosure or ResolveClosure for that.
func Open(path string) (*Info, error) {
	o, err := openObject(path)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	info, err := safeFacts(o)
	if err != nil {
		return nil, badFile(path, "%v", err)
	}
	return info, nil
}

// Interp is the PT_INTERP (the dynamic loader) of the ELF file at path, ""
// for a static binary or a file that is not ELF at all: unlike Open, it
// reads nothing else, so any ELF will do (32-bit, foreign, stripped).
func Interp(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

// OpenAll opens every path (Open) and resolves its closure under rootfs
// ("" for this host's /): the facts of the usable binaries, in order, and
// an error for each file that is not one.
func OpenAll(paths []string, rootfs string) ([]*Info, []error) {
	var infos []*Info
	var errs []error
	for _, p := range paths {
		info, err := Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info.ResolveClosure(rootfs)
		infos = append(infos, info)
	}
	return infos, errs
}

// Inspect is OpenAll for `initprof inspect`: err refuses the command up
// front, when rootfs ("" for this host's /) is not a directory or the one
// path given is not a usable binary; otherwise errs has an error for each
// bad file among several, which the caller reports beside the others.
func Inspect(paths []string, rootfs string) (infos []*Info, errs []error, err error) {
	if rootfs != "" {
		if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("--rootfs %s: not a directory", rootfs)
		}
	}
	infos, errs = OpenAll(paths, rootfs)
	if len(paths) == 1 && len(errs) == 1 {
		return nil, nil, errs[0]
	}
	return infos, errs, nil
}

// ResolveClosure fills Closure (or ClosureError) for the binary under rootfs.
func (i *Info) ResolveClosure(rootfs string) {
	if i.Linkage == "static" || i.Linkage == "static-pie" {
		return
	}
	c, err := ResolveClosure(i.Path, rootfs)
	if err != nil {
		i.ClosureError = err.Error()
		return
	}
	i.Closure = c
	i.ClosureCost = closureCost(c)
	if len(c.Missing) > 0 {
		w := fmt.Sprintf("unresolved in the closure: %s (the binary will not start there)", strings.Join(c.Missing, ", "))
		if host := hostArch(); rootfs == "" && host != "" && host != i.Arch {
			w += fmt.Sprintf("; this is an %s binary on an %s host: pass --rootfs with an %s root filesystem", i.Arch, host, i.Arch)
		}
		i.Warnings = append(i.Warnings, w)
	}
}

func hostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return ""
}

func closureCost(c *Closure) *ClosureCost {
	cc := &ClosureCost{}
	for _, l := range c.Libs {
		li, err := Open(l.HostPath)
		if err != nil {
			cc.Unreadable = append(cc.Unreadable, l.Soname)
			continue
		}
		cc.Libs++
		cc.FileSize += li.FileSize
		cc.RelocPages += li.RelocPages
		r := &cc.Relocs
		r.Relative += li.Relocs.Relative
		r.RelrRelative += li.Relocs.RelrRelative
		r.GlobDat += li.Relocs.GlobDat
		r.JumpSlot += li.Relocs.JumpSlot
		r.Other += li.Relocs.Other
		r.Total += li.Relocs.Total
		r.RelrBytes += li.Relocs.RelrBytes
		for k, v := range li.Relocs.OtherByType {
			if r.OtherByType == nil {
				r.OtherByType = map[string]int{}
			}
			r.OtherByType[k] += v
		}
	}
	return cc
}

func safeFacts(o *object) (info *Info, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed ELF file (%v)", p)
		}
	}()
	return facts(o)
}

func facts(o *object) (*Info, error) {
	ef := o.ef
	i := &Info{
		Schema:   Schema,
		Path:     o.path,
		FileSize: o.size,
		Arch:     archName(ef.Machine),
		Class:    "ELF64",
		Type:     strings.TrimPrefix(ef.Type.String(), "ET_"),
		PageSize: PageSize,
		Flags:    []string{},
		Flags1:   []string{},
		Needed:   o.dynStrings(elf.DT_NEEDED),
	}
	if i.Needed == nil {
		i.Needed = []string{}
	}
	interp, err := o.interp()
	if err != nil {
		return nil, err
	}
	i.Interp = interp

	flags, _ := o.dynVal(elf.DT_FLAGS)
	flags1, _ := o.dynVal(elf.DT_FLAGS_1)
	i.Flags = flagNames(flags, dtFlagNames)
	i.Flags1 = flagNames(flags1, df1Names)
	i.BindNow = o.hasDyn(elf.DT_BIND_NOW) || flags&uint64(elf.DF_BIND_NOW) != 0
	i.DF1Now = flags1&uint64(elf.DF_1_NOW) != 0
	i.DF1PIE = flags1&uint64(elf.DF_1_PIE) != 0
	i.GNUHash = o.hasDyn(elf.DT_GNU_HASH)
	i.SysVHash = o.hasDyn(elf.DT_HASH)

	switch {
	case ef.Type == elf.ET_EXEC && interp == "":
		i.Linkage = "static"
	case ef.Type == elf.ET_EXEC:
		i.Linkage = "dynamic"
	case ef.Type == elf.ET_DYN && interp != "":
		i.Linkage = "dynamic-pie"
	case ef.Type == elf.ET_DYN && i.DF1PIE:
		i.Linkage = "static-pie"
	case ef.Type == elf.ET_DYN && len(i.Needed) == 0 && !o.hasDyn(elf.DT_SONAME) && ef.Entry != 0:
		// static-pie from linkers that do not set DF_1_PIE
		i.Linkage = "static-pie"
	case ef.Type == elf.ET_DYN:
		i.Linkage = "shared-library"
	default:
		return nil, fmt.Errorf("ELF type %s is not an executable or shared library", ef.Type)
	}

	if err := i.readRelocs(o); err != nil {
		return nil, err
	}
	immediate := i.BindNow || i.DF1Now
	i.LazyBinding = !immediate && i.Relocs.JumpSlot > 0
	switch {
	case o.prog(elf.PT_GNU_RELRO) == nil:
		i.RELRO = "none"
	case immediate:
		// The usual definition (checksec, readelf users): RELRO plus immediate
		// binding, so the GOT's PLT part is read-only too.
		i.RELRO = "full"
	default:
		i.RELRO = "partial"
	}

	i.readSegments(o)
	i.readSymbols(o)
	i.readNotes(o)
	i.readDebug(o)
	i.readToolchain(o)
	if err := i.readVersions(o); err != nil {
		return nil, err
	}
	i.warn()
	return i, nil
}

func (i *Info) warn() {
	dynamic := i.Linkage == "dynamic" || i.Linkage == "dynamic-pie"
	if i.Relr && dynamic {
		i.Warnings = append(i.Warnings, "DT_RELR needs glibc >= 2.36 (GLIBC_ABI_DT_RELR): it will not load on Amazon Linux 2023 (glibc "+AL2023Glibc+")")
	} else if i.GlibcRequired != "" && versionLess(AL2023Glibc, i.GlibcRequired) {
		i.Warnings = append(i.Warnings, fmt.Sprintf("needs glibc %s: it will not load on Amazon Linux 2023 (glibc %s)", i.GlibcRequired, AL2023Glibc))
	}
}

// relocKind classifies a relocation type of machine m.
func relocKind(m elf.Machine, t uint32) (kind string, name string) {
	switch m {
	case elf.EM_X86_64:
		switch elf.R_X86_64(t) {
		case elf.R_X86_64_RELATIVE:
			return "relative", ""
		case elf.R_X86_64_GLOB_DAT:
			return "glob_dat", ""
		case elf.R_X86_64_JMP_SLOT:
			return "jump_slot", ""
		}
		return "other", strings.TrimPrefix(elf.R_X86_64(t).String(), "R_X86_64_")
	case elf.EM_AARCH64:
		switch elf.R_AARCH64(t) {
		case elf.R_AARCH64_RELATIVE:
			return "relative", ""
		case elf.R_AARCH64_GLOB_DAT:
			return "glob_dat", ""
		case elf.R_AARCH64_JUMP_SLOT:
			return "jump_slot", ""
		}
		return "other", strings.TrimPrefix(elf.R_AARCH64(t).String(), "R_AARCH64_")
	}
	return "other", strconv.FormatUint(uint64(t), 10)
}

type relocTable struct {
	name           string
	off, size, ent uint64
	rela           bool
	relr           bool
}

// readRelocs counts what ld.so (or, in a static binary, libc's self-relocation)
// applies: the tables named by the dynamic section, or the SHT_RELA/SHT_REL/
// SHT_RELR sections when there is no dynamic section (static non-PIE binaries
// carry their IRELATIVE relocations in .rela.plt).
func (i *Info) readRelocs(o *object) error {
	var tabs []relocTable
	addDyn := func(name string, addrTag, sizeTag, entTag elf.DynTag, rela, relr bool, defEnt uint64) error {
		addr, ok := o.dynVal(addrTag)
		if !ok {
			return nil
		}
		size, _ := o.dynVal(sizeTag)
		ent := defEnt
		if e, ok := o.dynVal(entTag); ok && entTag != 0 {
			ent = e
		}
		if size == 0 {
			return nil
		}
		off, ok := o.vaddrToOff(addr, size)
		if !ok {
			return fmt.Errorf("%s table at %#x (+%d) is outside the file", name, addr, size)
		}
		tabs = append(tabs, relocTable{name: name, off: off, size: size, ent: ent, rela: rela, relr: relr})
		return nil
	}
	if o.prog(elf.PT_DYNAMIC) != nil && len(o.dyn) > 0 {
		if err := addDyn("DT_RELA", elf.DT_RELA, elf.DT_RELASZ, elf.DT_RELAENT, true, false, 24); err != nil {
			return err
		}
		if err := addDyn("DT_REL", elf.DT_REL, elf.DT_RELSZ, elf.DT_RELENT, false, false, 16); err != nil {
			return err
		}
		if pltrel, _ := o.dynVal(elf.DT_PLTREL); true {
			rela := pltrel != uint64(elf.DT_REL)
			ent := uint64(24)
			if !rela {
				ent = 16
			}
			if err := addDyn("DT_JMPREL", elf.DT_JMPREL, elf.DT_PLTRELSZ, 0, rela, false, ent); err != nil {
				return err
			}
		}
		if err := addDyn("DT_RELR", dtRELR, dtRELRSZ, dtRELRENT, false, true, 8); err != nil {
			return err
		}
		// Some linkers make DT_RELASZ cover .rela.plt too; ld.so then skips the
		// overlap, and so do we.
		tabs = dropOverlap(tabs)
	}
	haveRelr := false
	for _, t := range tabs {
		haveRelr = haveRelr || t.relr
	}
	if len(tabs) == 0 || !haveRelr {
		for _, s := range o.ef.Sections {
			isRelr := s.Type == shtRELR
			if len(tabs) > 0 && !isRelr {
				continue // the dynamic section already names these
			}
			if s.Type != elf.SHT_RELA && s.Type != elf.SHT_REL && !isRelr {
				continue
			}
			if s.Flags&elf.SHF_ALLOC == 0 {
				continue // relocations for a .o-style debug section, not applied at load
			}
			ent := s.Entsize
			if ent == 0 {
				ent = map[elf.SectionType]uint64{elf.SHT_RELA: 24, elf.SHT_REL: 16, shtRELR: 8}[s.Type]
			}
			tabs = append(tabs, relocTable{name: s.Name, off: s.Offset, size: s.Size, ent: ent, rela: s.Type == elf.SHT_RELA, relr: isRelr})
		}
	}

	pages := map[uint64]bool{}
	bo := o.ef.ByteOrder
	for _, t := range tabs {
		if t.relr {
			i.Relr = true
			if t.ent != 8 {
				return fmt.Errorf("%s entry size %d, want 8", t.name, t.ent)
			}
			b, err := o.readAt(t.off, t.size-t.size%8)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			i.Relocs.RelrBytes += t.size
			n := decodeRelr(b, bo, func(addr uint64) { pages[addr/PageSize] = true })
			i.Relocs.Relative += n
			i.Relocs.RelrRelative += n
			continue
		}
		want := uint64(24)
		if !t.rela {
			want = 16
		}
		if t.ent != want {
			return fmt.Errorf("%s entry size %d, want %d", t.name, t.ent, want)
		}
		b, err := o.readAt(t.off, t.size-t.size%t.ent)
		if err != nil {
			return fmt.Errorf("%s: %v", t.name, err)
		}
		for p := 0; p+int(t.ent) <= len(b); p += int(t.ent) {
			off := bo.Uint64(b[p:])
			typ := uint32(bo.Uint64(b[p+8:]))
			if typ == 0 { // R_*_NONE
				continue
			}
			pages[off/PageSize] = true
			kind, name := relocKind(o.ef.Machine, typ)
			switch kind {
			case "relative":
				i.Relocs.Relative++
			case "glob_dat":
				i.Relocs.GlobDat++
			case "jump_slot":
				i.Relocs.JumpSlot++
			default:
				i.Relocs.Other++
				if i.Relocs.OtherByType == nil {
					i.Relocs.OtherByType = map[string]int{}
				}
				i.Relocs.OtherByType[name]++
			}
		}
	}
	i.Relocs.Total = i.Relocs.Relative + i.Relocs.GlobDat + i.Relocs.JumpSlot + i.Relocs.Other
	i.RelocPages = len(pages)
	if !i.Relr {
		for _, s := range o.ef.Sections {
			if s.Type == shtRELR {
				i.Relr = true
			}
		}
	}
	return nil
}

// dropOverlap removes from DT_RELA/DT_REL the part that DT_JMPREL also covers.
func dropOverlap(tabs []relocTable) []relocTable {
	var jmp *relocTable
	for k := range tabs {
		if tabs[k].name == "DT_JMPREL" {
			jmp = &tabs[k]
		}
	}
	if jmp == nil {
		return tabs
	}
	for k := range tabs {
		t := &tabs[k]
		if t.name != "DT_RELA" && t.name != "DT_REL" {
			continue
		}
		if jmp.off >= t.off && jmp.off < t.off+t.size && jmp.off+jmp.size == t.off+t.size {
			t.size = jmp.off - t.off
		}
	}
	return tabs
}

// decodeRelr walks a RELR table, calling fn for every address it relocates, and
// returns how many there are. An even entry is an address; an odd entry is a
// bitmap of the 63 words after the previous address.
func decodeRelr(b []byte, bo interface{ Uint64([]byte) uint64 }, fn func(uint64)) int {
	n := 0
	var base uint64
	for p := 0; p+8 <= len(b); p += 8 {
		e := bo.Uint64(b[p:])
		if e&1 == 0 {
			fn(e)
			n++
			base = e + 8
			continue
		}
		for bit := uint64(1); bit < 64; bit++ {
			if e&(1<<bit) != 0 {
				fn(base + (bit-1)*8)
				n++
			}
		}
		base += 63 * 8
	}
	return n
}

func (i *Info) readSegments(o *object) {
	for _, p := range o.ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Align > i.Segments.LoadAlign {
				i.Segments.LoadAlign = p.Align
			}
			switch {
			case p.Flags&elf.PF_X != 0:
				i.Segments.Text += p.Memsz
			case p.Flags&elf.PF_W != 0:
				i.Segments.Data += p.Filesz
				if p.Memsz > p.Filesz {
					i.Segments.BSS += p.Memsz - p.Filesz
				}
			default:
				i.Segments.Rodata += p.Memsz
			}
		case elf.PT_GNU_RELRO:
			i.Segments.Relro += p.Memsz
		}
	}
}

func (i *Info) readSymbols(o *object) {
	syms, err := o.ef.DynamicSymbols()
	if err != nil {
		return
	}
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Section == elf.SHN_UNDEF {
			if s.Name != "" {
				i.ImportedSymbols++
			}
			continue
		}
		vis := elf.ST_VISIBILITY(s.Other)
		if (bind == elf.STB_GLOBAL || bind == elf.STB_WEAK || bind == stbGNUUnique) &&
			(vis == elf.STV_DEFAULT || vis == elf.STV_PROTECTED) && s.Name != "" {
			i.ExportedSymbols++
		}
	}
}

// readNotes finds NT_GNU_BUILD_ID in the PT_NOTE segments (present even when
// section headers are stripped), then in SHT_NOTE sections: the Go linker puts
// .note.gnu.build-id outside any PT_NOTE.
func (i *Info) readNotes(o *object) {
	for _, p := range o.ef.Progs {
		if p.Type == elf.PT_NOTE && i.BuildID == "" {
			i.BuildID = findBuildID(o, p.Off, p.Filesz, p.Align)
		}
	}
	for _, s := range o.ef.Sections {
		if s.Type == elf.SHT_NOTE && i.BuildID == "" {
			i.BuildID = findBuildID(o, s.Offset, s.Size, s.Addralign)
		}
	}
}

func findBuildID(o *object, off, size, align uint64) string {
	if size > 1<<20 {
		return ""
	}
	b, err := o.readAt(off, size)
	if err != nil {
		return ""
	}
	if align != 8 {
		align = 4
	}
	bo := o.ef.ByteOrder
	for len(b) >= 12 {
		namesz, descsz, typ := uint64(bo.Uint32(b)), uint64(bo.Uint32(b[4:])), bo.Uint32(b[8:])
		if namesz > uint64(len(b)) || descsz > uint64(len(b)) {
			break
		}
		nameEnd := 12 + namesz
		descOff := roundUp(nameEnd, align)
		descEnd := descOff + descsz
		if descEnd > uint64(len(b)) {
			break
		}
		name := string(bytes.TrimRight(b[12:nameEnd], "\x00"))
		if name == "GNU" && typ == 3 && descsz > 0 { // NT_GNU_BUILD_ID
			return hex.EncodeToString(b[descOff:descEnd])
		}
		next := roundUp(descEnd, align)
		if next > uint64(len(b)) {
			break
		}
		b = b[next:]
	}
	return ""
}

func roundUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

func (i *Info) readDebug(o *object) {
	i.Stripped = o.ef.Section(".symtab") == nil
	i.DebugInfo = o.ef.Section(".debug_info") != nil || o.ef.Section(".zdebug_info") != nil
	if len(i.BuildID) > 2 {
		p := filepath.Join("/usr/lib/debug/.build-id", i.BuildID[:2], i.BuildID[2:]+".debug")
		if _, err := os.Stat(p); err == nil {
			i.DebugFile = p
		}
	}
}

func (i *Info) readToolchain(o *object) {
	tc := &i.Toolchain
	if s := o.ef.Section(".comment"); s != nil && s.Type != elf.SHT_NOBITS && s.Size < 1<<20 {
		if b, err := o.readAt(s.Offset, s.Size); err == nil {
			seen := map[string]bool{}
			for _, c := range bytes.Split(b, []byte{0}) {
				str := strings.TrimSpace(string(c))
				if str == "" || seen[str] {
					continue
				}
				seen[str] = true
				tc.Comment = append(tc.Comment, str)
				switch {
				case strings.HasPrefix(str, "rustc version"):
					tc.Rustc = str
				case strings.HasPrefix(str, "GCC:"):
					if tc.GCC == "" || str > tc.GCC {
						tc.GCC = str
					}
				case strings.Contains(str, "clang version"):
					tc.Clang = str
				case strings.HasPrefix(str, "Linker:"):
					tc.Linker = str
				}
			}
		}
	}
	if bi, err := safeBuildInfo(o); err == nil && bi != nil {
		g := &GoInfo{Version: bi.GoVersion, Path: bi.Path, Module: bi.Main.Path}
		for _, s := range bi.Settings {
			switch s.Key {
			case "CGO_ENABLED":
				g.CgoEnabled = s.Value
			case "-buildmode":
				g.BuildMode = s.Value
			case "-ldflags":
				g.LDFlags = s.Value
			}
		}
		tc.Go = g
	}
	switch {
	case tc.Go != nil:
		tc.Language = "go"
	case tc.Rustc != "" || o.ef.Section(".rustc") != nil || hasRustSymbols(o):
		tc.Language = "rust"
	case tc.GCC != "" || tc.Clang != "":
		tc.Language = "c"
	}
}

func hasRustSymbols(o *object) bool {
	syms, err := o.ef.Symbols()
	if err != nil {
		return false
	}
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "_ZN4core") || strings.HasPrefix(s.Name, "_RNv") {
			return true
		}
	}
	return false
}

func safeBuildInfo(o *object) (bi *buildinfo.BuildInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			bi, err = nil, fmt.Errorf("debug/buildinfo panicked: %v", p)
		}
	}()
	return buildinfo.Read(o.f)
}

// readVersions walks DT_VERNEED for the highest GLIBC_x.y the binary needs.
func (i *Info) readVersions(o *object) error {
	addr, ok := o.dynVal(elf.DT_VERNEED)
	if !ok {
		return nil
	}
	num, _ := o.dynVal(elf.DT_VERNEEDNUM)
	if num > 4096 {
		return fmt.Errorf("DT_VERNEEDNUM is %d", num)
	}
	off, ok := o.vaddrToOff(addr, 16)
	if !ok {
		return fmt.Errorf("DT_VERNEED at %#x is outside the file", addr)
	}
	bo := o.ef.ByteOrder
	var best string
	steps := 0
	for n := uint64(0); n < num; n++ {
		vn, err := o.readAt(off, 16)
		if err != nil {
			return fmt.Errorf("DT_VERNEED: %v", err)
		}
		cnt, aux, next := uint64(bo.Uint16(vn[2:])), uint64(bo.Uint32(vn[8:])), uint64(bo.Uint32(vn[12:]))
		a := off + aux
		for k := uint64(0); k < cnt; k++ {
			if steps++; steps > 1<<16 {
				return fmt.Errorf("DT_VERNEED is too long")
			}
			va, err := o.readAt(a, 16)
			if err != nil {
				return fmt.Errorf("DT_VERNEED aux: %v", err)
			}
			if name, ok := o.str(uint64(bo.Uint32(va[8:]))); ok {
				if v, ok := strings.CutPrefix(name, "GLIBC_"); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
					if best == "" || versionLess(best, v) {
						best = v
					}
				}
				if name == "GLIBC_ABI_DT_RELR" && (best == "" || versionLess(best, "2.36")) {
					best = "2.36" // the glibc release that added DT_RELR support
				}
			}
			vnaNext := uint64(bo.Uint32(va[12:]))
			if vnaNext == 0 {
				break
			}
			a += vnaNext
		}
		if next == 0 {
			break
		}
		off += next
	}
	i.GlibcRequired = best
	return nil
}

// versionLess compares dotted numeric versions: 2.9 < 2.34.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for k := 0; k < len(as) || k < len(bs); k++ {
		var x, y int
		if k < len(as) {
			x, _ = strconv.Atoi(as[k])
		}
		if k < len(bs) {
			y, _ = strconv.Atoi(bs[k])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

var dtFlagNames = []struct {
	bit  uint64
	name string
}{
	{uint64(elf.DF_ORIGIN), "ORIGIN"},
	{uint64(elf.DF_SYMBOLIC), "SYMBOLIC"},
	{uint64(elf.DF_TEXTREL), "TEXTREL"},
	{uint64(elf.DF_BIND_NOW), "BIND_NOW"},
	{uint64(elf.DF_STATIC_TLS), "STATIC_TLS"},
}

var df1Names = []struct {
	bit  uint64
	name string
}{
	{uint64(elf.DF_1_NOW), "NOW"},
	{uint64(elf.DF_1_GLOBAL), "GLOBAL"},
	{uint64(elf.DF_1_GROUP), "GROUP"},
	{uint64(elf.DF_1_NODELETE), "NODELETE"},
	{uint64(elf.DF_1_LOADFLTR), "LOADFLTR"},
	{uint64(elf.DF_1_INITFIRST), "INITFIRST"},
	{uint64(elf.DF_1_NOOPEN), "NOOPEN"},
	{uint64(elf.DF_1_ORIGIN), "ORIGIN"},
	{uint64(elf.DF_1_DIRECT), "DIRECT"},
	{uint64(elf.DF_1_INTERPOSE), "INTERPOSE"},
	{uint64(elf.DF_1_NODEFLIB), "NODEFLIB"},
	{uint64(elf.DF_1_NODUMP), "NODUMP"},
	{uint64(elf.DF_1_CONFALT), "CONFALT"},
	{uint64(elf.DF_1_ENDFILTEE), "ENDFILTEE"},
	{uint64(elf.DF_1_DISPRELDNE), "DISPRELDNE"},
	{uint64(elf.DF_1_DISPRELPND), "DISPRELPND"},
	{uint64(elf.DF_1_NODIRECT), "NODIRECT"},
	{uint64(elf.DF_1_IGNMULDEF), "IGNMULDEF"},
	{uint64(elf.DF_1_NOKSYMS), "NOKSYMS"},
	{uint64(elf.DF_1_NOHDR), "NOHDR"},
	{uint64(elf.DF_1_EDITED), "EDITED"},
	{uint64(elf.DF_1_NORELOC), "NORELOC"},
	{uint64(elf.DF_1_SYMINTPOSE), "SYMINTPOSE"},
	{uint64(elf.DF_1_GLOBAUDIT), "GLOBAUDIT"},
	{uint64(elf.DF_1_SINGLETON), "SINGLETON"},
	{uint64(elf.DF_1_PIE), "PIE"},
}

func flagNames(v uint64, names []struct {
	bit  uint64
	name string
}) []string {
	out := []string{}
	for _, n := range names {
		if v&n.bit != 0 {
			out = append(out, n.name)
			v &^= n.bit
		}
	}
	if v != 0 {
		out = append(out, fmt.Sprintf("%#x", v))
	}
	sort.Strings(out)
	return out
}

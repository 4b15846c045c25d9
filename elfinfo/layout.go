package elfinfo

import (
	"debug/elf"
	"fmt"
	"os"
	"sort"
)

// Layout is where things lie in an ELF file by file offset: its sections
// and its symbols. It answers "what is at this offset of the file", the
// question a page of the file in the page cache asks.
type Layout struct {
	Path string
	Size int64
	// Sections with file contents (not SHT_NOBITS), by offset.
	Sections []Range
	// Symbols are functions and data objects with a size, from .symtab
	// (else .dynsym), st_value converted to a file offset through the
	// PT_LOAD program headers; sorted by offset, with no two overlapping
	// (dropOverlaps).
	Symbols []Range
	// Stripped: the file has no .symtab, so Symbols come from .dynsym
	// (exported names only) or are empty.
	Stripped bool
	// Go: the file carries a Go runtime (.gopclntab or .go.buildinfo).
	Go bool
}

// Range is a named file-offset range [Off, Off+Size).
type Range struct {
	Name string
	Off  uint64
	Size uint64
}

// End is the first offset after the range.
func (r Range) End() uint64 { return r.Off + r.Size }

// OpenLayout reads the section headers and symbol tables of the ELF file
// at path. A file that is not ELF is an error (IsBadInput).
func OpenLayout(path string) (l *Layout, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, badFile(path, "malformed ELF: %v", r)
		}
	}()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, badFile(path, "not an ELF file: %v", err)
	}
	l = &Layout{Path: path, Size: st.Size()}
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL || s.Size == 0 || s.Offset >= uint64(l.Size) {
			continue
		}
		size := min(s.Size, uint64(l.Size)-s.Offset)
		l.Sections = append(l.Sections, Range{s.Name, s.Offset, size})
		if s.Name == ".gopclntab" || s.Name == ".go.buildinfo" {
			l.Go = true
		}
	}
	sort.Slice(l.Sections, func(i, j int) bool { return l.Sections[i].Off < l.Sections[j].Off })

	syms, serr := ef.Symbols()
	if serr != nil || len(syms) == 0 {
		l.Stripped = true
		syms, _ = ef.DynamicSymbols()
	}
	var loads []*elf.Prog
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p)
		}
	}
	toOff := func(v uint64) (uint64, bool) {
		for _, p := range loads {
			if v >= p.Vaddr && v < p.Vaddr+p.Filesz {
				return v - p.Vaddr + p.Off, true
			}
		}
		return 0, false
	}
	seen := map[uint64]bool{}
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if s.Size == 0 || s.Section == elf.SHN_UNDEF || (t != elf.STT_FUNC && t != elf.STT_OBJECT) {
			continue
		}
		off, ok := toOff(s.Value)
		if !ok || seen[off] {
			continue // outside the file (.bss), or an alias of one already kept
		}
		seen[off] = true
		l.Symbols = append(l.Symbols, Range{s.Name, off, s.Size})
	}
	sort.Slice(l.Symbols, func(i, j int) bool {
		if l.Symbols[i].Off != l.Symbols[j].Off {
			return l.Symbols[i].Off < l.Symbols[j].Off
		}
		return l.Symbols[i].Size < l.Symbols[j].Size
	})
	l.Symbols = dropOverlaps(l.Symbols)
	return l, nil
}

// dropOverlaps makes every offset belong to at most one symbol (sorted by
// offset, the smaller first at equal offsets): a symbol overlapping the one
// before is clipped to what lies after it, or dropped.
func dropOverlaps(s []Range) []Range {
	out := s[:0]
	for _, r := range s {
		if k := len(out) - 1; k >= 0 && r.Off < out[k].End() {
			prev := out[k].End()
			if r.End() <= prev {
				continue
			}
			r.Size, r.Off = r.End()-prev, prev
		}
		out = append(out, r)
	}
	return out
}

// Part is one piece of a file range: the section and symbol it lies in
// ("" where there is none).
type Part struct {
	Section string
	Symbol  string
	Bytes   uint64
}

// Split cuts [off, off+n) into the parts that lie in each section and
// symbol, in offset order. Bytes outside every section have Section "".
func (l *Layout) Split(off, n uint64) []Part {
	var parts []Part
	add := func(sec, sym string, b uint64) {
		if b == 0 {
			return
		}
		if k := len(parts) - 1; k >= 0 && parts[k].Section == sec && parts[k].Symbol == sym {
			parts[k].Bytes += b
			return
		}
		parts = append(parts, Part{sec, sym, b})
	}
	end := off + n
	si := sort.Search(len(l.Sections), func(i int) bool { return l.Sections[i].End() > off })
	yi := sort.Search(len(l.Symbols), func(i int) bool { return l.Symbols[i].End() > off })
	for pos := off; pos < end; {
		// the section at pos, or the gap until the next one
		for si < len(l.Sections) && l.Sections[si].End() <= pos {
			si++
		}
		sec, secEnd := "", end
		if si < len(l.Sections) {
			if s := l.Sections[si]; s.Off <= pos {
				sec, secEnd = s.Name, min(end, s.End())
			} else {
				secEnd = min(end, s.Off)
			}
		}
		for pos < secEnd {
			for yi < len(l.Symbols) && l.Symbols[yi].End() <= pos {
				yi++
			}
			if yi < len(l.Symbols) && l.Symbols[yi].Off <= pos {
				e := min(secEnd, l.Symbols[yi].End())
				add(sec, l.Symbols[yi].Name, e-pos)
				pos = e
				continue
			}
			e := secEnd
			if yi < len(l.Symbols) && l.Symbols[yi].Off < e {
				e = l.Symbols[yi].Off
			}
			add(sec, "", e-pos)
			pos = e
		}
	}
	return parts
}

// String is a short description for logs.
func (l *Layout) String() string {
	return fmt.Sprintf("%s: %d sections, %d symbols (stripped %v)", l.Path, len(l.Sections), len(l.Symbols), l.Stripped)
}

// Package orderfile writes linker symbol-ordering files from the order in
// which a cold start first touched a binary's functions and data objects.
//
// Laid out in that order, the code and data init needs share 4 KiB pages and
// 512 KiB chunks, so fewer of them are read at load: on Lambda, fewer chunks
// fetched from the lazy loader. The formats are those the linkers read: lld's
// --symbol-ordering-file (one symbol a line, as the linker names it) and GNU
// gold's --section-ordering-file (section-name patterns, which need
// -ffunction-sections / -fdata-sections input), plus an annotated list for
// people.
package orderfile

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ianlancetaylor/demangle"
)

// Format is an output format.
type Format string

const (
	LLD  Format = "lld"  // lld --symbol-ordering-file
	GNU  Format = "gnu"  // gold --section-ordering-file
	List Format = "list" // annotated, for people
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case LLD, GNU, List:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want lld, gnu or list", s)
}

// Touch is one symbol's first touch during init.
type Touch struct {
	Symbol  string // as in the symbol table (mangled)
	FirstNs int64  // since the run's initStart (the order key)
	Object  bool   // a data object, not a function
	Size    uint64
	Runs    int // in how many runs it was touched
	// Off is its file offset in the profiled build: symbols first touched
	// at the same time (on one page) keep their address order.
	Off uint64
}

// Symbols is what a binary defines: its function and object symbols.
type Symbols struct {
	Defined map[string]elf.SymType
	// Lang is "go", "rust", "c" (anything else).
	Lang string
	// FunctionSections says whether the binary's code was compiled one
	// function per section (required for the linker to reorder it), and
	// Why how that was told.
	FunctionSections bool
	Why              string
}

// ErrNoSymbols: a stripped binary names no symbol to order.
var ErrNoSymbols = errors.New("the binary has no symbol table (it is stripped): build it with symbols (Rust: -C strip=none; C: no -s) to make an orderfile, then strip the relinked build")

// ReadSymbols reads the defined function and object symbols of path and
// tells whether it can be reordered at link time.
func ReadSymbols(path string) (*Symbols, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("not an ELF executable (%v): give the extension's binary", err)
		}
		return nil, err
	}
	defer f.Close()
	s := &Symbols{Defined: map[string]elf.SymType{}, Lang: "c"}
	if f.Section(".gopclntab") != nil || f.Section(".go.buildinfo") != nil {
		s.Lang, s.Why = "go", "a Go binary: the Go linker lays out functions in package order and takes no ordering file, so an orderfile cannot be applied"
		return s, nil
	}
	syms, err := f.Symbols()
	if err != nil || len(syms) == 0 {
		return nil, ErrNoSymbols
	}
	rust := false
	for _, sym := range syms {
		t := elf.ST_TYPE(sym.Info)
		if sym.Section == elf.SHN_UNDEF || (t != elf.STT_FUNC && t != elf.STT_OBJECT) || sym.Name == "" {
			continue
		}
		s.Defined[sym.Name] = t
		if strings.HasPrefix(sym.Name, "_R") || (strings.HasPrefix(sym.Name, "_ZN") && strings.Contains(sym.Name, "17h")) {
			rust = true
		}
	}
	switch {
	case rust:
		s.Lang, s.FunctionSections, s.Why = "rust", true, "a Rust binary: rustc emits one section per function by default"
	default:
		s.FunctionSections, s.Why = producerFlags(f)
	}
	return s, nil
}

// producerFlags looks for -ffunction-sections in the DWARF producer strings
// (GCC records its flags there by default: -grecord-gcc-switches).
func producerFlags(f *elf.File) (bool, string) {
	d, err := f.DWARF()
	if err != nil {
		return false, "no DWARF to tell how it was compiled: build with -ffunction-sections -fdata-sections (and -g) and link with -fuse-ld=lld -Wl,--symbol-ordering-file=FILE"
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if p, ok := e.Val(dwarf.AttrProducer).(string); ok {
			if strings.Contains(p, "-ffunction-sections") {
				return true, "compiled with -ffunction-sections (DWARF producer)"
			}
		}
		r.SkipChildren()
	}
	return false, "not compiled with -ffunction-sections (its DWARF producer does not say so): the linker cannot move its functions; build with -ffunction-sections -fdata-sections and link with -fuse-ld=lld -Wl,--symbol-ordering-file=FILE"
}

// Order sorts touches by first touch (ties by name) and keeps the ones the
// binary defines; skipped are the others (from another file, or gone from
// this build).
func Order(touches []Touch, syms *Symbols) (kept []Touch, skipped []string) {
	t := append([]Touch(nil), touches...)
	sort.SliceStable(t, func(i, j int) bool {
		if t[i].FirstNs != t[j].FirstNs {
			return t[i].FirstNs < t[j].FirstNs
		}
		if t[i].Off != t[j].Off {
			return t[i].Off < t[j].Off
		}
		return t[i].Symbol < t[j].Symbol
	})
	seen := map[string]bool{}
	for _, x := range t {
		if seen[x.Symbol] {
			continue
		}
		seen[x.Symbol] = true
		typ, ok := syms.Defined[x.Symbol]
		if !ok {
			skipped = append(skipped, x.Symbol)
			continue
		}
		x.Object = x.Object || typ == elf.STT_OBJECT
		kept = append(kept, x)
	}
	return kept, skipped
}

// Write writes the ordered touches (from Order) in format f.
func Write(w io.Writer, f Format, touches []Touch) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	switch f {
	case LLD:
		for _, t := range touches {
			p("%s\n", t.Symbol)
		}
	case GNU:
		for _, t := range touches {
			if t.Object {
				p(".rodata.%s\n.data.%s\n.bss.%s\n", t.Symbol, t.Symbol, t.Symbol)
			} else {
				p(".text.%s\n", t.Symbol)
			}
		}
	case List:
		p("# rank  first touch (ms since initStart)  kind  size  runs  symbol  [mangled]\n")
		for i, t := range touches {
			kind := "func"
			if t.Object {
				kind = "data"
			}
			name := demangle.Filter(t.Symbol, demangle.NoParams)
			if name == t.Symbol {
				p("%5d %10.3f %s %7d %3d  %s\n", i+1, float64(t.FirstNs)/1e6, kind, t.Size, t.Runs, name)
			} else {
				p("%5d %10.3f %s %7d %3d  %s  [%s]\n", i+1, float64(t.FirstNs)/1e6, kind, t.Size, t.Runs, name, t.Symbol)
			}
		}
	default:
		return fmt.Errorf("orderfile: unknown format %q", f)
	}
	return err
}

// Advice says how to link a build of the binary with the orderfile at file
// in format f, and warns when the file cannot be applied as it is (a Go
// binary; C compiled without function sections). Why it is here, not in
// the command: a user's own tool calling this package needs the same words.
func (s *Symbols) Advice(file string, f Format) (warn, how string) {
	switch {
	case s.Lang == "go":
		return "WARNING: " + s.Why, ""
	case s.Lang == "rust":
		if f == GNU {
			return "", fmt.Sprintf("relink with gold: -C link-arg=-fuse-ld=gold -C link-arg=-Wl,--section-ordering-file=%s (cargo rustc --release -- FLAGS, or RUSTFLAGS)", file)
		}
		return "", fmt.Sprintf("relink with lld: -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--symbol-ordering-file=%s (cargo rustc --release -- FLAGS, or RUSTFLAGS); add -C link-arg=-Wl,--no-warn-symbol-ordering when the profiled build's symbol hashes differ from the relinked one's", file)
	}
	how = fmt.Sprintf("compile with -ffunction-sections -fdata-sections and link with -fuse-ld=lld -Wl,--symbol-ordering-file=%s", file)
	if f == GNU {
		how = fmt.Sprintf("compile with -ffunction-sections -fdata-sections and link with -fuse-ld=gold -Wl,--section-ordering-file=%s", file)
	}
	if !s.FunctionSections {
		warn = "WARNING: " + s.Why
	}
	return warn, how
}

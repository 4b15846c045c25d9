// Package touched attributes the file-backed pages a cold start touched:
// each 4 KiB page of a file to the phase of the process that touched it
// first, to the 512 KiB chunk Lambda's storage would fetch for it, and to
// the ELF section, symbol and Rust crate or Go package it holds. It fills
// profile.Process's Touched and TouchedInit; how the pages were observed
// (probes.Tracer.Touched) is the caller's business.
package touched

import (
	"path"
	"sort"
	"strings"

	"github.com/ianlancetaylor/demangle"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/profile"
)

// Page is one page a process touched first.
type Page struct {
	PID   int
	File  string // the path the process saw (inside the sandbox)
	Index uint64 // file offset / 4096
	Time  int64  // CLOCK_MONOTONIC ns
	Kind  string // profile.TouchMajor, TouchMinor or TouchReadahead
	// Faulted: the process faulted on the page (at first touch, or later
	// for a readahead page it used).
	Faulted bool
}

// File is what the attribution knows of one file.
type File struct {
	Path string // inside the sandbox
	Size int64
	// Layout is its ELF layout; nil for a file that is not ELF (or could
	// not be read): its pages then have no section.
	Layout *elfinfo.Layout
}

// Attributor splits pages over files' sections and symbols. Files are
// looked up by path with Lookup, once each.
type Attributor struct {
	Lookup func(path string) *File
	files  map[string]*File
	owners map[string]string
}

func (a *Attributor) file(p string) *File {
	if a.files == nil {
		a.files, a.owners = map[string]*File{}, map[string]string{}
	}
	f, ok := a.files[p]
	if !ok {
		if a.Lookup != nil {
			f = a.Lookup(p)
		}
		if f == nil {
			f = &File{Path: p}
		}
		a.files[p] = f
	}
	return f
}

type rowKey struct{ file, section, owner, symbol, kind string }

type chunkKey struct {
	file  string
	chunk uint64
}

// Process fills p.Touched (per phase) and p.TouchedInit from the pages of
// p.PID that were touched between its exec (else its first checkpoint) and
// its next (else its last checkpoint). exe is the path of p's executable
// (its exec_done filename), "" if unknown. Pages outside every phase are
// ignored; with no phases, p is left alone.
func (a *Attributor) Process(p *profile.Process, pages []Page, exe string) {
	spans := profile.Phases(*p)
	if len(spans) == 0 {
		return
	}
	from, to := spans[0].StartNs, spans[len(spans)-1].EndNs
	if t, ok := p.Checkpoint(profile.CkExec); ok && t > from {
		from = t
	}
	if t, ok := p.Checkpoint(profile.CkNext); ok && t < to {
		to = t
	}
	var mine []Page
	for _, pg := range pages {
		if pg.PID == p.PID && pg.Time >= from && pg.Time < to {
			mine = append(mine, pg)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].Time < mine[j].Time })

	type phaseAcc struct {
		t    *profile.Touched
		rows map[rowKey]*profile.TouchedRow
	}
	phases := map[string]*phaseAcc{}
	files := map[string]*profile.TouchedFile{}
	seenChunk, seenFaulted := map[chunkKey]bool{}, map[chunkKey]bool{}
	init := &profile.TouchedInit{}
	si := 0
	for _, pg := range mine {
		for si < len(spans) && (spans[si].EndNs <= pg.Time || spans[si].StartNs < from) {
			si++
		}
		if si == len(spans) {
			break
		}
		sp := spans[si]
		if pg.Time < sp.StartNs {
			continue
		}
		acc := phases[sp.Name]
		if acc == nil {
			acc = &phaseAcc{t: &profile.Touched{}, rows: map[rowKey]*profile.TouchedRow{}}
			phases[sp.Name] = acc
		}
		f := a.file(pg.File)
		tf := files[pg.File]
		if tf == nil {
			tf = &profile.TouchedFile{Path: pg.File, Size: f.Size, Exe: pg.File == exe, Sections: map[string]int64{}, Owners: map[string]int64{}}
			if l := f.Layout; l != nil {
				tf.Stripped = l.Stripped
				tf.OwnerKind = ownerKind(l)
			}
			files[pg.File] = tf
		}
		acc.t.Pages.Add(pg.Kind, 1)
		init.Pages.Add(pg.Kind, 1)
		tf.Pages.Add(pg.Kind, 1)
		ck := chunkKey{pg.File, pg.Index * profile.PageSize / profile.ChunkSize}
		if pg.Faulted {
			acc.t.Pages.Faulted++
			init.Pages.Faulted++
			tf.Pages.Faulted++
			if !seenFaulted[ck] {
				seenFaulted[ck] = true
				acc.t.FaultedChunks++
				init.FaultedChunks++
				tf.FaultedChunks++
			}
		}
		newChunk := !seenChunk[ck]
		if newChunk {
			seenChunk[ck] = true
			acc.t.Chunks++
			init.Chunks++
			tf.Chunks++
		}
		var best *profile.TouchedRow
		var bestBytes int64
		for _, part := range a.split(f, pg.Index) {
			k := rowKey{pg.File, part.section, part.owner, part.symbol, pg.Kind}
			r := acc.rows[k]
			if r == nil {
				r = &profile.TouchedRow{File: pg.File, Section: part.section, Owner: part.owner, Symbol: part.symbol, Kind: pg.Kind}
				acc.rows[k] = r
			}
			r.Bytes += part.bytes
			tf.Sections[part.section] += part.bytes
			if part.owner != "" && part.symbol != "" {
				tf.Owners[part.owner] += part.bytes
			}
			if part.bytes > bestBytes {
				best, bestBytes = r, part.bytes
			}
		}
		if newChunk && best != nil {
			best.Chunks++
		}
	}
	if len(phases) == 0 {
		return
	}
	p.Touched = map[string]*profile.Touched{}
	for name, acc := range phases {
		for _, r := range acc.rows {
			acc.t.Rows = append(acc.t.Rows, *r)
		}
		sortRows(acc.t.Rows)
		p.Touched[name] = acc.t
	}
	for _, tf := range files {
		if len(tf.Owners) == 0 {
			tf.Owners = nil
		}
		init.Files = append(init.Files, *tf)
	}
	sort.Slice(init.Files, func(i, j int) bool {
		if init.Files[i].Pages.Total != init.Files[j].Pages.Total {
			return init.Files[i].Pages.Total > init.Files[j].Pages.Total
		}
		return init.Files[i].Path < init.Files[j].Path
	})
	p.TouchedInit = init
}

func sortRows(rows []profile.TouchedRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Symbol != b.Symbol {
			return a.Symbol < b.Symbol
		}
		if a.Section != b.Section {
			return a.Section < b.Section
		}
		return a.Kind < b.Kind
	})
}

type part struct {
	section, owner, symbol string
	bytes                  int64
}

// NoSection names the bytes of a file outside every section (ELF and
// program headers, padding) or of a file that is not ELF.
const NoSection = "(no section)"

// split is the page's parts: the bytes of each symbol it overlaps, the rest
// by section. Pages past the end of the file count whole, as the page
// cache holds them whole.
func (a *Attributor) split(f *File, index uint64) []part {
	if f.Layout == nil {
		return []part{{section: NoSection, bytes: profile.PageSize}}
	}
	var out []part
	var sum int64
	for _, ps := range f.Layout.Split(index*profile.PageSize, profile.PageSize) {
		sec := ps.Section
		if sec == "" {
			sec = NoSection
		}
		pt := part{section: sec, bytes: int64(ps.Bytes)}
		if ps.Symbol != "" {
			pt.symbol = ps.Symbol
			pt.owner = a.owner(f, ps.Symbol)
		}
		out = append(out, pt)
		sum += pt.bytes
	}
	if sum < profile.PageSize {
		out = append(out, part{section: NoSection, bytes: profile.PageSize - sum})
	}
	return out
}

// owner is sym's crate or package, else the base name of f as the
// process named it (C).
func (a *Attributor) owner(f *File, sym string) string {
	k := f.Path + "\x00" + sym
	if o, ok := a.owners[k]; ok {
		return o
	}
	o := Owner(sym, f.Layout.Go)
	if o == "" {
		o = path.Base(f.Path)
	}
	a.owners[k] = o
	return o
}

// ownerKind is what a file's owners are: Go packages, Rust crates, or
// neither (C: the owner is the file).
func ownerKind(l *elfinfo.Layout) string {
	if l.Go {
		return "package"
	}
	n := 0
	for _, s := range l.Symbols {
		if strings.HasPrefix(s.Name, "_R") || (strings.HasPrefix(s.Name, "_ZN") && strings.Contains(s.Name, "17h") && strings.HasSuffix(s.Name, "E")) {
			n++
			if n >= 10 {
				return "crate"
			}
		}
	}
	return ""
}

// Owner is the Rust crate or Go package of a symbol: the first path
// component of a demangled Rust (v0 or legacy) or C++ name, the import
// path of a Go one (goSym). "" when the name has neither (C).
func Owner(sym string, goSym bool) string {
	if goSym {
		return goPackage(sym)
	}
	if strings.HasPrefix(sym, "_R") || strings.HasPrefix(sym, "_Z") {
		d := demangle.Filter(sym, demangle.NoParams, demangle.NoTemplateParams, demangle.NoClones)
		if d != sym {
			return firstComponent(d)
		}
	}
	return ""
}

// firstComponent is "tokio" for "tokio::runtime::Runtime::new",
// "<tokio::x::Y as core::ops::Drop>::drop" and "&mut tokio::x".
func firstComponent(d string) string {
	for {
		t := strings.TrimLeft(d, "<&*[( ")
		for _, p := range []string{"mut ", "const ", "dyn ", "impl "} {
			t = strings.TrimPrefix(t, p)
		}
		if t == d {
			break
		}
		d = t
	}
	if i := strings.Index(d, "::"); i > 0 {
		d = d[:i]
	}
	if i := strings.IndexAny(d, "<> ,()[]"); i >= 0 {
		d = d[:i]
	}
	if rustPrimitive[d] {
		return "core" // <str as core::fmt::Display>::fmt: impls on primitives live in core
	}
	return d
}

var rustPrimitive = map[string]bool{"str": true, "bool": true, "char": true, "u8": true, "u16": true, "u32": true, "u64": true, "u128": true, "usize": true,
	"i8": true, "i16": true, "i32": true, "i64": true, "i128": true, "isize": true, "f32": true, "f64": true}

// goPackage is the import path of a Go symbol: "net/http" for
// "net/http.(*Client).Do", "golang.org/x/net/http2" for
// "golang.org/x/net/http2.(*Framer).ReadFrame". Linker-made data is named
// by its kind: "go:string", "go:itab", "type:".
func goPackage(sym string) string {
	if strings.HasPrefix(sym, "type:") {
		return "type:"
	}
	if strings.HasPrefix(sym, "go:") {
		if i := strings.IndexAny(sym, ".*"); i > 0 {
			return sym[:i]
		}
		return sym
	}
	s := sym
	if i := strings.IndexAny(s, "[("); i >= 0 {
		s = s[:i] // type parameters and receivers may hold other paths
	}
	slash := strings.LastIndex(s, "/")
	if i := strings.Index(s[slash+1:], "."); i >= 0 {
		return s[:slash+1+i]
	}
	return s
}

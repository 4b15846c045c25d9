package touched

import (
	"sort"

	"github.com/initprof/initprof/elfinfo"
)

// SymbolTouch is when a cold start first touched one symbol of a file: the
// first touch of any page the symbol lies on. An orderfile is made of these
// (profile/orderfile): laid out in this order, what init needs shares pages.
type SymbolTouch struct {
	Symbol  string // as in the symbol table (mangled)
	Section string // the section it lies in (".text", ".rodata", ...)
	Off     uint64 // file offset: the tie-break between symbols of one page
	Size    uint64
	// FirstNs is the first touch of its first-touched page, in ns since
	// the origin SymbolTouches was given (the process's exec).
	FirstNs int64
}

// SymbolTouches is, for each symbol of l on a page in pages, the time of the
// first touch of any of its pages, relative to origin; sorted by that time,
// then by file offset (symbols first touched on one page keep their address
// order: the page is all the probes can tell apart).
//
// Only faulted pages count when faultedOnly is set: a page that readahead
// (128 KiB on Lambda's block device) or fault-around brought in without the
// process faulting on it was not necessarily used, and ordering every
// symbol readahead happened to bring in would order most of the file.
func SymbolTouches(l *elfinfo.Layout, pages []Page, origin int64, faultedOnly bool) []SymbolTouch {
	if l == nil {
		return nil
	}
	ps := append([]Page(nil), pages...)
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Time != ps[j].Time {
			return ps[i].Time < ps[j].Time
		}
		return ps[i].Index < ps[j].Index
	})
	seen := map[string]bool{}
	var out []SymbolTouch
	for _, pg := range ps {
		if faultedOnly && !pg.Faulted {
			continue
		}
		off := pg.Index * 4096
		i := sort.Search(len(l.Symbols), func(i int) bool { return l.Symbols[i].End() > off })
		for ; i < len(l.Symbols) && l.Symbols[i].Off < off+4096; i++ {
			s := l.Symbols[i]
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			out = append(out, SymbolTouch{Symbol: s.Name, Section: sectionAt(l, s.Off), Off: s.Off, Size: s.Size, FirstNs: pg.Time - origin})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].FirstNs != out[j].FirstNs {
			return out[i].FirstNs < out[j].FirstNs
		}
		return out[i].Off < out[j].Off
	})
	return out
}

// sectionAt names the section holding file offset off ("" outside every one).
func sectionAt(l *elfinfo.Layout, off uint64) string {
	i := sort.Search(len(l.Sections), func(i int) bool { return l.Sections[i].End() > off })
	if i < len(l.Sections) && l.Sections[i].Off <= off {
		return l.Sections[i].Name
	}
	return ""
}

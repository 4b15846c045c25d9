package elfinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// row is one fact across binaries. num, when set, makes the cells numeric so
// that later columns show their difference from the first.
type row struct {
	name string
	str  func(*Info) string
	num  func(*Info) int64
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var inspectRows = []row{
	{name: "arch", str: func(i *Info) string { return i.Arch }},
	{name: "linkage", str: func(i *Info) string { return i.Linkage }},
	{name: "interp", str: func(i *Info) string { return orDash(i.Interp) }},
	{name: "BIND_NOW", str: func(i *Info) string { return yesNo(i.BindNow) }},
	{name: "DF_1_NOW", str: func(i *Info) string { return yesNo(i.DF1Now) }},
	{name: "DF_1_PIE", str: func(i *Info) string { return yesNo(i.DF1PIE) }},
	{name: "lazy binding", str: func(i *Info) string { return yesNo(i.LazyBinding) }},
	{name: "RELRO", str: func(i *Info) string { return i.RELRO }},
	{name: "DT_RELR", str: func(i *Info) string { return yesNo(i.Relr) }},
	{name: "hash", str: func(i *Info) string {
		var h []string
		if i.GNUHash {
			h = append(h, "gnu")
		}
		if i.SysVHash {
			h = append(h, "sysv")
		}
		return orDash(strings.Join(h, "+"))
	}},
	{name: "DT_NEEDED", num: func(i *Info) int64 { return int64(len(i.Needed)) }},
	{name: "closure libs", num: func(i *Info) int64 {
		if i.Closure == nil {
			return 0
		}
		return int64(len(i.Closure.Libs))
	}},
	{name: "closure missing", num: func(i *Info) int64 {
		if i.Closure == nil {
			return 0
		}
		return int64(len(i.Closure.Missing))
	}},
	{name: "closure relocs", num: func(i *Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return int64(i.ClosureCost.Relocs.Total)
	}},
	{name: "closure reloc pages", num: func(i *Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return int64(i.ClosureCost.RelocPages)
	}},
	{name: "closure file bytes", num: func(i *Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return i.ClosureCost.FileSize
	}},
	{name: "relocs RELATIVE", num: func(i *Info) int64 { return int64(i.Relocs.Relative) }},
	{name: "  of which RELR", num: func(i *Info) int64 { return int64(i.Relocs.RelrRelative) }},
	{name: "relocs GLOB_DAT", num: func(i *Info) int64 { return int64(i.Relocs.GlobDat) }},
	{name: "relocs JUMP_SLOT", num: func(i *Info) int64 { return int64(i.Relocs.JumpSlot) }},
	{name: "relocs other", num: func(i *Info) int64 { return int64(i.Relocs.Other) }},
	{name: "  other types", str: func(i *Info) string {
		var parts []string
		for k, v := range i.Relocs.OtherByType {
			parts = append(parts, fmt.Sprintf("%s:%d", k, v))
		}
		sort.Strings(parts)
		return orDash(strings.Join(parts, " "))
	}},
	{name: "relocs total", num: func(i *Info) int64 { return int64(i.Relocs.Total) }},
	{name: "RELR table bytes", num: func(i *Info) int64 { return int64(i.Relocs.RelrBytes) }},
	{name: "relocated pages", num: func(i *Info) int64 { return int64(i.RelocPages) }},
	{name: "page size", num: func(i *Info) int64 { return int64(i.PageSize) }},
	{name: "load align", num: func(i *Info) int64 { return int64(i.Segments.LoadAlign) }},
	{name: "imported symbols", num: func(i *Info) int64 { return int64(i.ImportedSymbols) }},
	{name: "exported symbols", num: func(i *Info) int64 { return int64(i.ExportedSymbols) }},
	{name: "file size", num: func(i *Info) int64 { return i.FileSize }},
	{name: "text", num: func(i *Info) int64 { return int64(i.Segments.Text) }},
	{name: "rodata", num: func(i *Info) int64 { return int64(i.Segments.Rodata) }},
	{name: "data", num: func(i *Info) int64 { return int64(i.Segments.Data) }},
	{name: "relro", num: func(i *Info) int64 { return int64(i.Segments.Relro) }},
	{name: "bss", num: func(i *Info) int64 { return int64(i.Segments.BSS) }},
	{name: "build-id", str: func(i *Info) string {
		if len(i.BuildID) > 16 {
			return i.BuildID[:16] + "…" // the full id is in --json
		}
		return orDash(i.BuildID)
	}},
	{name: "stripped", str: func(i *Info) string { return yesNo(i.Stripped) }},
	{name: "debug info", str: func(i *Info) string { return yesNo(i.DebugInfo) }},
	{name: "debug file", str: func(i *Info) string { return orDash(i.DebugFile) }},
	{name: "language", str: func(i *Info) string { return orDash(i.Toolchain.Language) }},
	{name: "go", str: func(i *Info) string {
		g := i.Toolchain.Go
		if g == nil {
			return "-"
		}
		s := g.Version
		if g.CgoEnabled != "" {
			s += " CGO_ENABLED=" + g.CgoEnabled
		}
		return s
	}},
	{name: "go module", str: func(i *Info) string {
		if i.Toolchain.Go == nil {
			return "-"
		}
		return orDash(i.Toolchain.Go.Module)
	}},
	{name: "rustc", str: func(i *Info) string { return orDash(strings.TrimPrefix(i.Toolchain.Rustc, "rustc version ")) }},
	{name: "gcc", str: func(i *Info) string { return orDash(strings.TrimPrefix(i.Toolchain.GCC, "GCC: ")) }},
	{name: "clang", str: func(i *Info) string { return orDash(i.Toolchain.Clang) }},
	{name: "glibc required", str: func(i *Info) string { return orDash(i.GlibcRequired) }},
}

// FormatDiff renders v with its difference from base, e.g. "1333 (-456)".
func FormatDiff(v, base int64) string {
	s := strconv.FormatInt(v, 10)
	if d := v - base; d != 0 {
		s += fmt.Sprintf(" (%+d)", d)
	}
	return s
}

// columnNames are the binaries' names: base names, or the shortest unique path
// suffixes when base names repeat.
func columnNames(infos []*Info) []string {
	names := make([]string, len(infos))
	count := map[string]int{}
	for k, i := range infos {
		names[k] = filepath.Base(i.Path)
		count[names[k]]++
	}
	for k, i := range infos {
		if count[names[k]] > 1 {
			names[k] = i.Path
		}
	}
	return names
}

// WriteTable prints the load-cost facts of infos side by side, one row per
// fact; numeric facts in later columns show their difference from the first
// (`initprof inspect`).
func WriteTable(w io.Writer, infos []*Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	names := columnNames(infos)
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(names, "\t"))
	for _, r := range inspectRows {
		cells := make([]string, len(infos))
		for k, i := range infos {
			if r.num != nil {
				v := r.num(i)
				if k == 0 {
					cells[k] = strconv.FormatInt(v, 10)
				} else {
					cells[k] = FormatDiff(v, r.num(infos[0]))
				}
			} else {
				cells[k] = r.str(i)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", r.name, strings.Join(cells, "\t"))
	}
	tw.Flush()

	for k, i := range infos {
		if len(i.Needed) == 0 && i.Closure == nil && i.ClosureError == "" && len(i.Warnings) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", names[k])
		if len(i.Needed) > 0 {
			fmt.Fprintf(w, "  DT_NEEDED: %s\n", strings.Join(i.Needed, " "))
		}
		if i.ClosureError != "" {
			fmt.Fprintf(w, "  closure: %s\n", i.ClosureError)
		}
		if c := i.Closure; c != nil {
			if c.Interp != "" {
				fmt.Fprintf(w, "  interp  %s", c.Interp)
				if c.InterpHost != "" && c.InterpHost != c.Interp {
					fmt.Fprintf(w, " -> %s", c.InterpHost)
				}
				fmt.Fprintln(w)
			}
			for _, l := range c.Libs {
				fmt.Fprintf(w, "  lib     %-24s %s\n", l.Soname, l.Path)
			}
			for _, m := range c.Missing {
				fmt.Fprintf(w, "  MISSING %s\n", m)
			}
		}
		for _, warn := range i.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
	}
}

// WriteJSON writes infos as an indented JSON array (schema Schema); none is
// "[]", not null.
func WriteJSON(w io.Writer, infos []*Info) error {
	if infos == nil {
		infos = []*Info{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(infos)
}

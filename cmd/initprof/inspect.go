package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/elfinfo"
)

func init() {
	register(&command{
		name:    "inspect",
		summary: "show what in a binary will cost load time (linkage, relocations, closure)",
		usage:   "[--json] [--rootfs DIR] BINARY...",
		long: `inspect reads ELF binaries (nothing is run) and prints, one column per binary,
the facts that decide how long the kernel and the dynamic loader work before
main. With two or more binaries every number after the first column shows its
difference from the first, e.g. "1333 (-456)".

What the rows mean for load cost:
  linkage          static: no loader at all. static-pie: no loader, but the
                   binary relocates itself (RELATIVE only). dynamic-pie /
                   dynamic: ld.so maps every library of the closure, then
                   relocates and binds symbols before main.
  interp           the ELF interpreter the kernel maps first (ld.so).
  BIND_NOW, DF_1_NOW
                   resolve every PLT slot before main instead of on first call.
                   Costs symbol lookups up front; nothing changes when there are
                   few JUMP_SLOT relocations to defer (rustc already links with
                   BIND_NOW, so "-z now" changes nothing for Rust).
  RELRO            partial or full: after relocation ld.so mprotects the RELRO
                   region read-only (one mprotect per object).
  DT_RELR          RELATIVE relocations packed ~1 bit each instead of 24 bytes:
                   a smaller table to page in. Needs glibc >= 2.36, so such a
                   binary will not load on Amazon Linux 2023 (glibc 2.34).
  hash             GNU hash makes each symbol lookup cheaper than SysV hash.
  DT_NEEDED, closure
                   every library is an open, mmaps, relocations and a symbol
                   scope to search: the closure is what ld.so really loads
                   (resolved on this host, or under --rootfs DIR).
  relocs           RELATIVE: base + addend, cheap but one write each.
                   GLOB_DAT, JUMP_SLOT: a symbol lookup through the whole
                   closure each (JUMP_SLOT lazily unless BIND_NOW).
                   other: IRELATIVE (an ifunc resolver call each), TLS, COPY...
  closure relocs, closure reloc pages, closure file bytes
                   the same, summed over every library of the closure: for a
                   small binary linked against big libraries most of the load
                   work is there, not in the binary.
  relocated pages  distinct 4 KiB pages the relocations write to: each is a
                   copy-on-write page fault at load and a private dirty page.
                   The best static predictor of relocation cost.
  page size, load align
                   the page size the page counts use (4 KiB on x86_64 and on
                   Debian/AL2023 arm64) and the largest PT_LOAD alignment.
  imported / exported symbols
                   undefined / defined symbols in .dynsym: imports are lookups.
  sizes            file, text (executable), rodata, data (file-backed,
                   writable), relro, bss (zero-filled): what gets mapped and
                   paged in.
  build-id, stripped, debug info
                   whether profiles can be symbolized (a build-id debug file
                   under /usr/lib/debug/.build-id counts).
  toolchain        Go build info (version, module, CGO_ENABLED), rustc, GCC or
                   clang from .comment.
  glibc required   the highest GLIBC_x.y symbol version it needs; above 2.34 it
                   will not load on Amazon Linux 2023.

Exit status is 2 if any file is not a usable 64-bit ELF binary; the others are
still printed.

Examples:
  initprof inspect ./my-extension
  initprof inspect build/samples/cext-lazy build/samples/cext-now
  initprof inspect --rootfs /tmp/al2023-rootfs ./my-extension
  initprof inspect --json ./a ./b | jq '.[].relocs'`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			jsonOut := fs.Bool("json", false, "print a JSON array of facts (schema "+elfinfo.Schema+")")
			rootfs := fs.String("rootfs", "", "resolve the DT_NEEDED closure under `DIR` instead of this host's /")
			return func(args []string) error {
				return runInspect(os.Stdout, os.Stderr, args, *jsonOut, *rootfs)
			}
		},
	})
}

func runInspect(stdout, stderr io.Writer, args []string, jsonOut bool, rootfs string) error {
	if len(args) == 0 {
		return badInput("no binary given; usage: initprof inspect [--json] [--rootfs DIR] BINARY...")
	}
	if rootfs != "" {
		if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
			return badInput("--rootfs %s: not a directory", rootfs)
		}
	}
	var infos []*elfinfo.Info
	bad := 0
	for _, p := range args {
		info, err := elfinfo.Open(p)
		if err != nil {
			if len(args) == 1 {
				return badInput("%v", err)
			}
			fmt.Fprintf(stderr, "initprof inspect: %v\n", err)
			bad++
			continue
		}
		info.ResolveClosure(rootfs)
		infos = append(infos, info)
	}
	if jsonOut {
		if infos == nil {
			infos = []*elfinfo.Info{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(infos); err != nil {
			return err
		}
	} else if len(infos) > 0 {
		writeInspectTable(stdout, infos)
	}
	if bad > 0 {
		// Each bad file already has its own line on stderr.
		return badInput("%d of %d files could not be inspected", bad, len(args))
	}
	return nil
}

// row is one fact across binaries. num, when set, makes the cells numeric so
// that later columns show their difference from the first.
type row struct {
	name string
	str  func(*elfinfo.Info) string
	num  func(*elfinfo.Info) int64
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
	{name: "arch", str: func(i *elfinfo.Info) string { return i.Arch }},
	{name: "linkage", str: func(i *elfinfo.Info) string { return i.Linkage }},
	{name: "interp", str: func(i *elfinfo.Info) string { return orDash(i.Interp) }},
	{name: "BIND_NOW", str: func(i *elfinfo.Info) string { return yesNo(i.BindNow) }},
	{name: "DF_1_NOW", str: func(i *elfinfo.Info) string { return yesNo(i.DF1Now) }},
	{name: "DF_1_PIE", str: func(i *elfinfo.Info) string { return yesNo(i.DF1PIE) }},
	{name: "lazy binding", str: func(i *elfinfo.Info) string { return yesNo(i.LazyBinding) }},
	{name: "RELRO", str: func(i *elfinfo.Info) string { return i.RELRO }},
	{name: "DT_RELR", str: func(i *elfinfo.Info) string { return yesNo(i.Relr) }},
	{name: "hash", str: func(i *elfinfo.Info) string {
		var h []string
		if i.GNUHash {
			h = append(h, "gnu")
		}
		if i.SysVHash {
			h = append(h, "sysv")
		}
		return orDash(strings.Join(h, "+"))
	}},
	{name: "DT_NEEDED", num: func(i *elfinfo.Info) int64 { return int64(len(i.Needed)) }},
	{name: "closure libs", num: func(i *elfinfo.Info) int64 {
		if i.Closure == nil {
			return 0
		}
		return int64(len(i.Closure.Libs))
	}},
	{name: "closure missing", num: func(i *elfinfo.Info) int64 {
		if i.Closure == nil {
			return 0
		}
		return int64(len(i.Closure.Missing))
	}},
	{name: "closure relocs", num: func(i *elfinfo.Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return int64(i.ClosureCost.Relocs.Total)
	}},
	{name: "closure reloc pages", num: func(i *elfinfo.Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return int64(i.ClosureCost.RelocPages)
	}},
	{name: "closure file bytes", num: func(i *elfinfo.Info) int64 {
		if i.ClosureCost == nil {
			return 0
		}
		return i.ClosureCost.FileSize
	}},
	{name: "relocs RELATIVE", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.Relative) }},
	{name: "  of which RELR", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.RelrRelative) }},
	{name: "relocs GLOB_DAT", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.GlobDat) }},
	{name: "relocs JUMP_SLOT", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.JumpSlot) }},
	{name: "relocs other", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.Other) }},
	{name: "  other types", str: func(i *elfinfo.Info) string {
		var parts []string
		for k, v := range i.Relocs.OtherByType {
			parts = append(parts, fmt.Sprintf("%s:%d", k, v))
		}
		sort.Strings(parts)
		return orDash(strings.Join(parts, " "))
	}},
	{name: "relocs total", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.Total) }},
	{name: "RELR table bytes", num: func(i *elfinfo.Info) int64 { return int64(i.Relocs.RelrBytes) }},
	{name: "relocated pages", num: func(i *elfinfo.Info) int64 { return int64(i.RelocPages) }},
	{name: "page size", num: func(i *elfinfo.Info) int64 { return int64(i.PageSize) }},
	{name: "load align", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.LoadAlign) }},
	{name: "imported symbols", num: func(i *elfinfo.Info) int64 { return int64(i.ImportedSymbols) }},
	{name: "exported symbols", num: func(i *elfinfo.Info) int64 { return int64(i.ExportedSymbols) }},
	{name: "file size", num: func(i *elfinfo.Info) int64 { return i.FileSize }},
	{name: "text", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.Text) }},
	{name: "rodata", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.Rodata) }},
	{name: "data", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.Data) }},
	{name: "relro", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.Relro) }},
	{name: "bss", num: func(i *elfinfo.Info) int64 { return int64(i.Segments.BSS) }},
	{name: "build-id", str: func(i *elfinfo.Info) string {
		if len(i.BuildID) > 16 {
			return i.BuildID[:16] + "…" // the full id is in --json
		}
		return orDash(i.BuildID)
	}},
	{name: "stripped", str: func(i *elfinfo.Info) string { return yesNo(i.Stripped) }},
	{name: "debug info", str: func(i *elfinfo.Info) string { return yesNo(i.DebugInfo) }},
	{name: "debug file", str: func(i *elfinfo.Info) string { return orDash(i.DebugFile) }},
	{name: "language", str: func(i *elfinfo.Info) string { return orDash(i.Toolchain.Language) }},
	{name: "go", str: func(i *elfinfo.Info) string {
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
	{name: "go module", str: func(i *elfinfo.Info) string {
		if i.Toolchain.Go == nil {
			return "-"
		}
		return orDash(i.Toolchain.Go.Module)
	}},
	{name: "rustc", str: func(i *elfinfo.Info) string { return orDash(strings.TrimPrefix(i.Toolchain.Rustc, "rustc version ")) }},
	{name: "gcc", str: func(i *elfinfo.Info) string { return orDash(strings.TrimPrefix(i.Toolchain.GCC, "GCC: ")) }},
	{name: "clang", str: func(i *elfinfo.Info) string { return orDash(i.Toolchain.Clang) }},
	{name: "glibc required", str: func(i *elfinfo.Info) string { return orDash(i.GlibcRequired) }},
}

// formatDiff renders v with its difference from base, e.g. "1333 (-456)".
func formatDiff(v, base int64) string {
	s := strconv.FormatInt(v, 10)
	if d := v - base; d != 0 {
		s += fmt.Sprintf(" (%+d)", d)
	}
	return s
}

// columnNames are the binaries' names: base names, or the shortest unique path
// suffixes when base names repeat.
func columnNames(infos []*elfinfo.Info) []string {
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

func writeInspectTable(w io.Writer, infos []*elfinfo.Info) {
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
					cells[k] = formatDiff(v, r.num(infos[0]))
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

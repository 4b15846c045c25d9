package main

import (
	"fmt"
	"io"
	"os"

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
	infos, errs, err := elfinfo.Inspect(args, rootfs)
	if err != nil {
		return badInput("%v", err)
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "initprof inspect: %v\n", err)
	}
	if jsonOut {
		if err := elfinfo.WriteJSON(stdout, infos); err != nil {
			return err
		}
	} else if len(infos) > 0 {
		elfinfo.WriteTable(stdout, infos)
	}
	if len(errs) > 0 {
		// Each bad file already has its own line on stderr.
		return badInput("%d of %d files could not be inspected", len(errs), len(args))
	}
	return nil
}

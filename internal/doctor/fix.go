package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/scripts"
)

// WriteTable prints one aligned line per result:
//
//	OK       kernel        6.18.44 (BTF: /sys/kernel/btf/vmlinux)
//	MISSING  runc/crun     neither found on PATH — fix: apt-get install runc (or use --sandbox process)
func WriteTable(w io.Writer, results []Result) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	for _, r := range results {
		line := fmt.Sprintf("%-8s %-*s %s", r.Status, width+1, r.Name, r.Detail)
		if r.Status != OK && r.Fix != "" {
			line += " — fix: " + r.Fix
		}
		fmt.Fprintln(w, line)
	}
}

// WriteJSON prints results as an indented JSON array of {name, status,
// detail, fix, required, privileges}.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// Write prints results as JSON (WriteJSON) or as a table (WriteTable).
func Write(w io.Writer, results []Result, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, results)
	}
	WriteTable(w, results)
	return nil
}

// FixARM64 fills the per-user cache with the arm64 microVM's pieces that
// results reports missing, with the scripts a checkout's Makefile runs
// (embedded in the binary) and selfbin's build.
func FixARM64(results []Result, progress func(string)) error {
	for _, r := range results {
		if r.Status == OK {
			continue
		}
		var err error
		switch r.Name {
		case "arm64 kernel":
			progress("fetching Debian's arm64 cloud kernel")
			err = scripts.Run(os.Stderr, "arm64-kernel.sh")
		case "arm64 sysroot":
			var dir string
			if dir, err = ARM64SysrootPath(); err == nil {
				progress("fetching Debian's arm64 libraries into " + dir)
				err = scripts.Run(os.Stderr, "arm64-sysroot.sh", dir)
			}
		case "arm64 initprof":
			_, err = selfbin.Static("arm64", selfbin.Options{Progress: progress})
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("doctor --fix: %s: %w", r.Name, err)
		}
	}
	return nil
}

package profile

import (
	"fmt"
	"math"
	"strings"
)

// Lever is one build change a team asks about, priced from what a run
// measured: the most it can change, never an estimate of what it will.
// Why bounds: after "load dominates" the question is which flag to try; a
// lever whose bound is below the noise is not worth a build, and a bound
// is all one build's measurement can honestly give (compare measures the
// effect itself).
type Lever struct {
	Name string `json:"name"`
	// MaxSaveNs is the most it can save of this process's time to ready
	// (ns, medians of this run); 0 when it can save nothing measurable, -1
	// when it can only cost.
	MaxSaveNs float64 `json:"max_save_ns"`
	// MaxSaveChunks is the most 512 KiB chunks of the executable it can
	// spare the cold start (0 for levers that do not move the layout).
	MaxSaveChunks float64 `json:"max_save_chunks,omitempty"`
	Text          string  `json:"text"`
}

// Levers prices each lever for one extension from its medians. Where the
// probes did not measure what a bound needs (no loader phases, no page
// touches) the lever says so instead of guessing.
func Levers(p *ProcessReport) []Lever {
	ph := func(name string) (float64, bool) {
		for _, x := range p.Phases {
			if x.Name == name && x.Dur.N > 0 {
				return x.Dur.Median, true
			}
		}
		return 0, false
	}
	var onCPUInit, fetch float64
	afterEntry := false
	for _, x := range p.Phases {
		fetch += x.FetchWait.Median
		if x.From == CkEntry {
			afterEntry = true
		}
		if afterEntry {
			onCPUInit += x.OnCPU.Median
		}
	}
	deps, okDeps := ph("load_deps")
	reloc, okReloc := ph("relocate")
	ctors, _ := ph("constructors")
	var out []Lever
	add := func(name string, save, chunks float64, format string, args ...any) {
		out = append(out, Lever{Name: name, MaxSaveNs: save, MaxSaveChunks: chunks, Text: fmt.Sprintf(format, args...)})
	}

	if okDeps || okReloc {
		b := deps + reloc + ctors
		add("static-pie", b, 0, "the dynamic loader's phases took %s (load_deps %s, relocate %s, constructors %s): static-pie can save at most %s (it still relocates itself and runs its constructors)",
			fmtDur(b), fmtDur(deps), fmtDur(reloc), fmtDur(ctors), fmtDur(b))
	} else {
		add("static-pie", 0, 0, "no dynamic loader phases were measured (a static binary, or its loader is not probed): static-pie has nothing left to save")
	}
	if okReloc {
		add("-z lazy", reloc, 0, "relocation took %s: -z lazy can save at most %s, and moves the binding of each PLT slot it defers into init", fmtDur(reloc), fmtDur(reloc))
		add("RELR", reloc, 0, "relocation took %s: RELR (-z pack-relative-relocs) can save at most %s; it packs the RELATIVE relocations, applying them and writing their pages remain", fmtDur(reloc), fmtDur(reloc))
	} else {
		add("-z lazy", 0, 0, "no relocation phase was measured: -z now vs lazy has nothing measured to save")
		add("RELR", 0, 0, "no relocation phase was measured: RELR has nothing measured to save")
	}
	codeBound := onCPUInit + fetch
	for _, l := range []string{"opt-level z vs 3", "LTO", "codegen-units"} {
		add(l, codeBound, 0, "init ran %s on CPU after entry and waited %s for chunk fetches: %s changes code speed and size, either way; it can save at most %s (compare measures the effect)",
			fmtDur(onCPUInit), fmtDur(fetch), l, fmtDur(codeBound))
	}

	t := p.Touched
	if t == nil || t.Runs == 0 || t.Exe == "" {
		for _, l := range []string{"strip/debuginfo", "panic=abort", "UPX", "orderfile"} {
			add(l, 0, 0, "what init touched was not measured (no page-touch probes): %s cannot be priced", l)
		}
		return out
	}
	exeBytes := t.ExeBytes.Median
	share := func(match func(string) bool) float64 {
		var s float64
		for _, x := range t.Sections {
			if match(x.Name) {
				s += x.Share
			}
		}
		return s * exeBytes
	}
	debug := share(func(s string) bool {
		return strings.HasPrefix(s, ".debug") || s == ".symtab" || s == ".strtab" || s == ".comment"
	})
	if debug >= PageSize { // a page at least: .comment shares a page with data
		add("strip/debuginfo", 0, 0, "init touched %s of debug and symbol-table sections (read ahead beside the code; never used): stripping spares those reads, at most the chunks holding nothing else", kib(debug))
	} else {
		add("strip/debuginfo", 0, 0, "init touched no debug or symbol-table page (they are not loaded): stripping saves nothing in init, only download size")
	}
	eh := share(func(s string) bool { return s == ".eh_frame" || s == ".eh_frame_hdr" || s == ".gcc_except_table" })
	add("panic=abort", 0, 0, "init touched %s of unwind tables (.eh_frame, .gcc_except_table): panic=abort can spare at most those pages (and the landing pads' code in .text)", kib(eh))
	add("UPX", -1, 0, "UPX cannot save load: it decompresses all %s of the binary at every start, where init touched %s of it; expect load to grow",
		kib(float64(t.ExeSize)), kib(exeBytes))
	chunks := t.ExeChunks.Median
	minChunks := math.Max(1, math.Ceil(exeBytes/ChunkSize))
	save := math.Max(0, chunks-minChunks)
	bound := 0.0
	if save > 0 {
		bound = fetch // a strict bound: no more than all the fetch wait
	}
	add("orderfile", bound, save, "init touched %.0f of the binary's %.0f chunks (%s, readahead included, would fit in %.0f): an orderfile can save at most %.0f chunks, and no more than the %s of fetch wait",
		chunks, math.Ceil(float64(t.ExeSize)/ChunkSize), kib(exeBytes), minChunks, save, fmtDur(fetch))
	return out
}

func kib(b float64) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", b/1024)
}

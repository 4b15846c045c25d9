package profile

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile/stats"
)

// PageSize and ChunkSize are the units of what init touched: the page
// cache's 4 KiB pages, and the 512 KiB chunks Lambda's storage fetches on
// first read (LAMBDA-FIDELITY.md §3).
const (
	PageSize  = 4096
	ChunkSize = 512 << 10
)

// Kinds of first touch (TouchedRow.Kind).
const (
	TouchMajor     = "major"     // faulted, and the fault read the page in
	TouchMinor     = "minor"     // faulted on a page already cached
	TouchReadahead = "readahead" // read in by read(2) or readahead, not faulted first
)

// TouchedPages counts file-backed 4 KiB pages by how the process first
// touched them.
type TouchedPages struct {
	Major     int64 `json:"major"`
	Minor     int64 `json:"minor"`
	Readahead int64 `json:"readahead"`
	Total     int64 `json:"total"`
	// Faulted counts the pages (of Total) the process faulted on through a
	// mapping: every major and minor one, and the readahead pages it used.
	// Readahead pages it never faulted on were read for nothing, or by read(2).
	Faulted int64 `json:"faulted"`
}

// Add counts one page of kind k.
func (t *TouchedPages) Add(k string, n int64) {
	switch k {
	case TouchMajor:
		t.Major += n
	case TouchMinor:
		t.Minor += n
	case TouchReadahead:
		t.Readahead += n
	}
	t.Total += n
}

// Touched is what a process touched of its files in one phase: the pages
// it touched first then, and the distinct 512 KiB chunks they lie in (a
// chunk touched again in a later phase counts in the first one only).
type Touched struct {
	Pages  TouchedPages `json:"pages"`
	Chunks int64        `json:"chunks"`
	// FaultedChunks are the chunks (of Chunks) holding a page the process
	// faulted on: what its code and data needed, whatever readahead did.
	FaultedChunks int64 `json:"faulted_chunks"`
	// Rows split the phase's bytes (Pages.Total × PageSize) over file,
	// section, owner and symbol: a page's bytes go to the symbols it
	// overlaps, the rest of it to its section (or "(no section)"). Each
	// chunk is credited to the row that holds the most of the page that
	// first touched it: what made Lambda fetch it. Thousands per run (every
	// symbol of libcrypto), so they go to touched.pb.gz, not results.json.
	Rows []TouchedRow `json:"-"`
}

// TouchedRow is one (file, section, owner, symbol, kind) share of a phase.
type TouchedRow struct {
	File    string `json:"file"` // the path inside the sandbox
	Section string `json:"section"`
	// Owner is the symbol's Rust crate or Go package; for other code, and
	// for bytes no symbol covers, the file's base name.
	Owner  string `json:"owner"`
	Symbol string `json:"symbol,omitempty"`
	Kind   string `json:"kind"`
	Bytes  int64  `json:"bytes"`
	Chunks int64  `json:"chunks,omitempty"`
}

// TouchedInit is what a process touched over all of its init, exec → next
// (the sum of its phases' Touched), file by file.
type TouchedInit struct {
	Pages         TouchedPages  `json:"pages"`
	Chunks        int64         `json:"chunks"`
	FaultedChunks int64         `json:"faulted_chunks"`
	Files         []TouchedFile `json:"files"`
}

// TouchedFile is one file's part of TouchedInit.
type TouchedFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Exe marks the process's own executable.
	Exe           bool         `json:"exe,omitempty"`
	Pages         TouchedPages `json:"pages"`
	Chunks        int64        `json:"chunks"`
	FaultedChunks int64        `json:"faulted_chunks"`
	// Sections and Owners are bytes by ELF section and by crate/package.
	Sections map[string]int64 `json:"sections,omitempty"`
	Owners   map[string]int64 `json:"owners,omitempty"`
	// Stripped: the file has no symbol table, so only sections are known.
	Stripped bool `json:"stripped,omitempty"`
	// OwnerKind is "crate" (Rust), "package" (Go) or "" (other code).
	OwnerKind string `json:"owner_kind,omitempty"`
}

// Bytes is the pages' size.
func (t TouchedPages) Bytes() int64 { return t.Total * PageSize }

// TouchedReport is what one process touched, over runs (medians).
type TouchedReport struct {
	// Runs is how many runs measured it.
	Runs      int           `json:"runs"`
	Bytes     stats.Summary `json:"bytes"` // all files
	Pages     stats.Summary `json:"pages"`
	Major     stats.Summary `json:"major"`
	Minor     stats.Summary `json:"minor"`
	Readahead stats.Summary `json:"readahead"`
	Chunks    stats.Summary `json:"chunks"`
	Faulted   stats.Summary `json:"faulted"`
	// FaultedChunks are the chunks holding a page the process faulted on.
	FaultedChunks stats.Summary `json:"faulted_chunks"`
	Files         stats.Summary `json:"files"`
	// Exe is the executable's part: its path and size, bytes and chunks
	// touched, and its sections' and owners' shares of those bytes
	// (medians over runs, largest first).
	Exe       string        `json:"exe,omitempty"`
	ExeSize   int64         `json:"exe_size,omitempty"`
	ExeBytes  stats.Summary `json:"exe_bytes"`
	ExeChunks stats.Summary `json:"exe_chunks"`
	// ExeFaultedChunks are the executable's chunks holding a faulted page.
	ExeFaultedChunks stats.Summary `json:"exe_faulted_chunks"`
	Sections         []Share       `json:"sections,omitempty"`
	Owners           []Share       `json:"owners,omitempty"`
	OwnerKind        string        `json:"owner_kind,omitempty"`
	Stripped         bool          `json:"stripped,omitempty"`
}

// Share is a named part of a whole, as a fraction (median over runs).
type Share struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"`
}

// aggregateTouched summarizes the runs' TouchedInit of one process (nil when
// none measured it).
func aggregateTouched(ts []*TouchedInit) *TouchedReport {
	if len(ts) == 0 {
		return nil
	}
	r := &TouchedReport{Runs: len(ts)}
	var bytes, pages, maj, mnr, ra, chunks, files, exeB, exeC, flt, fltC, exeFC []float64
	secs, owners := map[string][]float64{}, map[string][]float64{}
	for _, t := range ts {
		bytes = append(bytes, float64(t.Pages.Bytes()))
		pages = append(pages, float64(t.Pages.Total))
		maj = append(maj, float64(t.Pages.Major))
		mnr = append(mnr, float64(t.Pages.Minor))
		ra = append(ra, float64(t.Pages.Readahead))
		chunks = append(chunks, float64(t.Chunks))
		files = append(files, float64(len(t.Files)))
		flt = append(flt, float64(t.Pages.Faulted))
		fltC = append(fltC, float64(t.FaultedChunks))
		for _, f := range t.Files {
			if !f.Exe {
				continue
			}
			r.Exe, r.ExeSize, r.Stripped, r.OwnerKind = f.Path, f.Size, f.Stripped, f.OwnerKind
			exeB = append(exeB, float64(f.Pages.Bytes()))
			exeC = append(exeC, float64(f.Chunks))
			exeFC = append(exeFC, float64(f.FaultedChunks))
			total := float64(f.Pages.Bytes())
			if total == 0 {
				continue
			}
			for k, v := range f.Sections {
				secs[k] = append(secs[k], float64(v)/total)
			}
			for k, v := range f.Owners {
				owners[k] = append(owners[k], float64(v)/total)
			}
		}
	}
	r.Bytes, r.Pages, r.Major, r.Minor, r.Readahead = stats.Summarize(bytes), stats.Summarize(pages), stats.Summarize(maj), stats.Summarize(mnr), stats.Summarize(ra)
	r.Chunks, r.Files = stats.Summarize(chunks), stats.Summarize(files)
	r.ExeBytes, r.ExeChunks, r.ExeFaultedChunks = stats.Summarize(exeB), stats.Summarize(exeC), stats.Summarize(exeFC)
	r.Faulted, r.FaultedChunks = stats.Summarize(flt), stats.Summarize(fltC)
	r.Sections = shares(secs, len(exeB))
	r.Owners = shares(owners, len(exeB))
	return r
}

// shares are the medians of each name's fractions over n runs (a run
// without the name counts as 0), largest first.
func shares(m map[string][]float64, n int) []Share {
	var out []Share
	for k, v := range m {
		for len(v) < n {
			v = append(v, 0)
		}
		if s := stats.Median(v); s > 0 {
			out = append(out, Share{k, s})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Share != out[j].Share {
			return out[i].Share > out[j].Share
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// TouchedLine is report.txt's one-line summary of what a process's init
// touched: "init touched 3.1 MiB of 15.0 MiB of datadog-agent: 41 chunks of
// 512 KiB; .text 62 %, .rodata 21 %; top crates: tokio 18 %, rustls 11 %".
func (t *TouchedReport) TouchedLine() string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	if t.Exe != "" {
		name := t.Exe[strings.LastIndex(t.Exe, "/")+1:]
		// The last page of a file is whole in the page cache, not in the file.
		fmt.Fprintf(&b, "init touched %s of %s of %s: %.0f chunks of 512 KiB (%.0f holding pages it faulted on)", fmtBytes(math.Min(t.ExeBytes.Median, float64(t.ExeSize))), fmtBytes(float64(t.ExeSize)), name, t.ExeChunks.Median, t.ExeFaultedChunks.Median)
		if secs := topShares(t.Sections, 3, 0.01); secs != "" {
			b.WriteString("; " + secs)
		}
		switch {
		case t.Stripped:
			b.WriteString("; stripped: sections only")
		case t.OwnerKind != "":
			if o := topShares(t.Owners, 4, 0.01); o != "" {
				fmt.Fprintf(&b, "; top %ss: %s", t.OwnerKind, o)
			}
		}
		b.WriteString("; ")
	} else {
		b.WriteString("init touched ")
	}
	fmt.Fprintf(&b, "all files: %s in %.0f chunks of %.0f files (pages: %.0f major, %.0f minor, %.0f readahead; %.0f faulted on, in %.0f chunks)",
		fmtBytes(t.Bytes.Median), t.Chunks.Median, t.Files.Median, t.Major.Median, t.Minor.Median, t.Readahead.Median, t.Faulted.Median, t.FaultedChunks.Median)
	return b.String()
}

func topShares(s []Share, n int, minShare float64) string {
	var parts []string
	for _, x := range s {
		if len(parts) == n || x.Share < minShare {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f %%", x.Name, 100*x.Share))
	}
	return strings.Join(parts, ", ")
}

// writeTouchedText writes a process's touched line and, per phase, the
// pages and chunks first touched in it.
func writeTouchedText(w io.Writer, p *ProcessReport) {
	if p.Touched == nil {
		return
	}
	fmt.Fprintf(w, "  %s\n", p.Touched.TouchedLine())
	t := &table{left: 1, indent: "    "}
	t.add("touched in", "pages", "major", "minor", "readahead", "faulted", "chunks", "faulted chunks")
	for _, ph := range p.Phases {
		if ph.TouchedPages.N == 0 {
			continue
		}
		t.add(ph.Name, countOrDash(ph.TouchedPages), countOrDash(ph.TouchedMajor), countOrDash(ph.TouchedMinor), countOrDash(ph.TouchedReadahead), countOrDash(ph.TouchedFaulted), countOrDash(ph.TouchedChunks), countOrDash(ph.TouchedFaultedChunks))
	}
	if len(t.rows) > 1 {
		_ = t.write(w)
	}
}

// Package flame writes CPU stacks as FlameGraph folded text (stacks.folded)
// and as self-contained SVG flamegraphs (flame.svg, flame-<phase>.svg, and
// differential ones) that work offline in any browser: hover for details,
// click to zoom, Ctrl-F or the Search button to highlight a function.
//
// The folded format is the lingua franca of flamegraph tools (one line per
// distinct stack, root first, frames separated by ';', then a count), so a
// profile written here also opens in speedscope, inferno or flamegraph.pl.
package flame

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/initprof/initprof/profile/sample"
)

// Folded maps a stack (root first, frames joined by ';') to its weight
// (samples, unless a caller chose another unit).
type Folded map[string]int64

// KernelSuffix marks kernel frames, as flamegraph.pl's --kernel convention
// does, so they get their own colour.
const KernelSuffix = "_[k]"

// FrameName is how a frame appears in folded stacks: its name with ';' (the
// separator) and newlines replaced, kernel frames suffixed with KernelSuffix.
func FrameName(f sample.Frame) string {
	n := strings.NewReplacer(";", ":", "\n", " ", "\r", " ").Replace(f.Name())
	if f.Kernel {
		n += KernelSuffix
	}
	return n
}

// FromStacks folds stacks; keep, if not nil, selects which are counted (e.g.
// one phase). Each stack counts 1, so the numbers are samples.
func FromStacks(stacks []sample.Stack, keep func(sample.Stack) bool) Folded {
	f := Folded{}
	for _, st := range stacks {
		if keep != nil && !keep(st) {
			continue
		}
		if len(st.Frames) == 0 {
			continue
		}
		names := make([]string, len(st.Frames))
		for i, fr := range st.Frames {
			names[len(st.Frames)-1-i] = FrameName(fr)
		}
		f[strings.Join(names, ";")]++
	}
	return f
}

// FromStacksWeighted folds stacks weighted by each one's Weight (e.g. ns off
// the CPU) instead of counting them.
func FromStacksWeighted(stacks []sample.Stack, keep func(sample.Stack) bool) Folded {
	f := Folded{}
	for _, st := range stacks {
		if (keep != nil && !keep(st)) || len(st.Frames) == 0 || st.Weight <= 0 {
			continue
		}
		names := make([]string, len(st.Frames))
		for i, fr := range st.Frames {
			names[len(st.Frames)-1-i] = FrameName(fr)
		}
		f[strings.Join(names, ";")] += st.Weight
	}
	return f
}

// Total is the sum of all weights.
func (f Folded) Total() int64 {
	var t int64
	for _, v := range f {
		t += v
	}
	return t
}

// Write writes f in folded format, sorted by stack so the output is
// deterministic (and diffs cleanly).
func (f Folded) Write(w io.Writer) error {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bw := bufio.NewWriter(w)
	for _, k := range keys {
		if _, err := fmt.Fprintf(bw, "%s %d\n", k, f[k]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadFolded parses folded text. Blank lines and lines starting with '#' are
// skipped; a malformed line is an error naming its number.
func ReadFolded(r io.Reader) (Folded, error) {
	f := Folded{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return nil, fmt.Errorf("folded line %d: want \"frame;frame;... COUNT\", got %q", n, clip(line))
		}
		v, err := strconv.ParseInt(line[i+1:], 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("folded line %d: count %q is not a non-negative integer", n, clip(line[i+1:]))
		}
		f[line[:i]] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading folded stacks: %w", err)
	}
	return f, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

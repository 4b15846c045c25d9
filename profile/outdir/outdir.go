// Package outdir settles the directory that run and compare write their
// reports, results and flamegraphs into: before the first cold start, so
// that a typo or a read-only file system costs nothing.
package outdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Patterns are the files (and compare's per-build flame-NAME directories)
// that run and compare write into --out. Prepare with force removes these
// before reusing a directory, so that a new run's results never sit beside
// a previous run's flamegraphs.
var Patterns = []string{
	"report.txt", "report.html", "results.json", "results-*.json",
	"compare.txt", "compare.json", "compare.md", "bench.txt",
	"cpu.pb.gz", "offcpu.pb.gz", "touched.pb.gz", "offcpu.folded", "stacks.folded", "trace.json",
	"flame.svg", "flame-*.svg", "flame-*", "diff-*.svg",
}

// IsOutput reports whether name is one of initprof's outputs (Patterns).
func IsOutput(name string) bool {
	for _, p := range Patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Result is the directory Prepare settled, and what it did to a reused one.
type Result struct {
	Dir string
	// Removed are the previous run's outputs that force removed, sorted.
	Removed []string
	// Kept counts the entries of a reused directory initprof did not write.
	Kept int
}

// Prepare makes the output directory (default initprof-out/KIND-TIMESTAMP,
// with -2, -3… when that exists), proves it writable by creating a file
// there, and refuses a non-empty one unless force is set; with force it
// removes the previous run's outputs (Patterns) and keeps the rest, and
// tells warn (nil: nobody) what it removed and how many other files it
// kept. Every error is the caller's input to fix; the messages name the
// --out flag.
func Prepare(out string, force bool, kind string, warn func(string)) (Result, error) {
	if out == "" {
		base := filepath.Join("initprof-out", kind+"-"+time.Now().Format("20060102-150405"))
		out = base
		for i := 2; ; i++ {
			if _, err := os.Lstat(out); errors.Is(err, os.ErrNotExist) {
				break
			}
			out = fmt.Sprintf("%s-%d", base, i)
		}
	}
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return Result{}, fmt.Errorf("--out %s: exists and is not a directory", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Result{}, fmt.Errorf("--out %s: %v", out, err)
	}
	f, err := os.CreateTemp(out, ".initprof-write-check-*")
	if err != nil {
		return Result{}, fmt.Errorf("--out %s is not writable: %v", out, UnwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	ents, err := os.ReadDir(out)
	if err != nil {
		return Result{}, fmt.Errorf("--out %s: %v", out, err)
	}
	res := Result{Dir: out}
	if len(ents) == 0 {
		return res, nil
	}
	if !force {
		names := make([]string, 0, 3)
		for _, e := range ents[:min(3, len(ents))] {
			names = append(names, e.Name())
		}
		more := ""
		if len(ents) > 3 {
			more = fmt.Sprintf(" and %d more", len(ents)-3)
		}
		return Result{}, fmt.Errorf("--out %s is not empty (%s%s): give --force to reuse it (initprof's previous outputs there are removed), or another --out", out, strings.Join(names, ", "), more)
	}
	for _, e := range ents {
		if !IsOutput(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(out, e.Name())); err != nil {
			return Result{}, fmt.Errorf("--out %s: removing the previous %s: %v", out, e.Name(), UnwrapPath(err))
		}
		res.Removed = append(res.Removed, e.Name())
	}
	sort.Strings(res.Removed)
	res.Kept = len(ents) - len(res.Removed)
	if warn != nil && len(res.Removed) > 0 {
		warn(fmt.Sprintf("warning: --force: removed the previous run's outputs from %s: %s", res.Dir, strings.Join(res.Removed, ", ")))
	}
	if warn != nil && res.Kept > 0 {
		warn(fmt.Sprintf("warning: --force: %s keeps %d file(s) initprof did not write", res.Dir, res.Kept))
	}
	return res, nil
}

// UnwrapPath drops the *os.PathError's operation and path from err, for a
// message that already names the file.
func UnwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteFiles writes each named file into dir with its writer (a report's
// WriteText, WriteJSON...). An error names the file.
func WriteFiles(dir string, files map[string]func(io.Writer) error) error {
	for name, write := range files {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := write(fh); err != nil {
			fh.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// outputPatterns are the files (and compare's per-build flame-NAME
// directories) that run and compare write into --out. --force removes these
// before reusing a directory, so that a new run's results never sit beside
// a previous run's flamegraphs.
var outputPatterns = []string{
	"report.txt", "report.html", "results.json", "results-*.json",
	"compare.txt", "compare.json", "compare.md", "bench.txt",
	"cpu.pb.gz", "offcpu.pb.gz", "touched.pb.gz", "offcpu.folded", "stacks.folded", "trace.json",
	"flame.svg", "flame-*.svg", "flame-*", "diff-*.svg",
}

func isOutput(name string) bool {
	for _, p := range outputPatterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// outDir settles the output directory before the first cold start, so that
// a typo or a read-only file system costs nothing: it makes the directory
// (default initprof-out/KIND-TIMESTAMP), proves it writable by creating a
// file there, and refuses a non-empty one unless force is set; with force it
// removes the previous run's outputs and says which. All failures are bad
// input (exit code 2).
func outDir(out string, force bool, kind string) (string, error) {
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
		return "", badInput("--out %s: exists and is not a directory", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", badInput("--out %s: %v", out, err)
	}
	f, err := os.CreateTemp(out, ".initprof-write-check-*")
	if err != nil {
		return "", badInput("--out %s is not writable: %v", out, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	ents, err := os.ReadDir(out)
	if err != nil {
		return "", badInput("--out %s: %v", out, err)
	}
	if len(ents) == 0 {
		return out, nil
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
		return "", badInput("--out %s is not empty (%s%s): give --force to reuse it (initprof's previous outputs there are removed), or another --out", out, strings.Join(names, ", "), more)
	}
	var removed []string
	for _, e := range ents {
		if !isOutput(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(out, e.Name())); err != nil {
			return "", badInput("--out %s: removing the previous %s: %v", out, e.Name(), unwrapPath(err))
		}
		removed = append(removed, e.Name())
	}
	sort.Strings(removed)
	if len(removed) > 0 {
		progressf("warning: --force: removed the previous run's outputs from %s: %s", out, strings.Join(removed, ", "))
	}
	if kept := len(ents) - len(removed); kept > 0 {
		progressf("warning: --force: %s keeps %d file(s) initprof did not write", out, kept)
	}
	return out, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

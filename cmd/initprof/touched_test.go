package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gpprof "github.com/google/pprof/profile"

	"github.com/initprof/initprof/internal/testutil"
)

// TestRunTouched: `initprof run` writes touched.pb.gz beside results.json,
// report.txt has the "init touched" line, and the profile's bytes are the
// results' (every process, every run).
func TestRunTouched(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	out := t.TempDir()
	stdout, stderr, code := runInitprof(t, bin, "run", "--out", out, "-n", "2", testutil.Sample(t, "goext"))
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "init touched ") || !strings.Contains(stdout, "of goext:") {
		t.Errorf("report lacks the touched line:\n%s", stdout)
	}
	rep := readResults(t, out)
	var total int64
	for _, r := range rep.Runs {
		for _, p := range r.Processes {
			if p.TouchedInit != nil {
				total += p.TouchedInit.Pages.Bytes()
			}
		}
	}
	f, err := os.Open(filepath.Join(out, "touched.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := gpprof.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, s := range p.Sample {
		sum += s.Value[0]
	}
	if total == 0 || sum != total {
		t.Errorf("touched.pb.gz: %d bytes, results.json: %d", sum, total)
	}
}

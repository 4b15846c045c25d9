package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// TestChattyExtensionInitialises: an extension that writes 50 MB to stdout
// before it registers initialises, its out directory stays small, and the
// report counts what it wrote.
func TestChattyExtensionInitialises(t *testing.T) {
	testutil.RequireRoot(t)
	gcc := testutil.RequireTool(t, "gcc")
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	ext := filepath.Join(dir, "chatty")
	src, _ := filepath.Abs(filepath.Join("testdata", "chatty.c"))
	// The process sandbox: there host paths are visible, so the chatty
	// binary can exec the sample after writing.
	real := testutil.Sample(t, "cmini")
	if b, err := exec.Command(gcc, "-O2", "-o", ext, "-DMB=50", `-DREAL="`+real+`"`, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc chatty.c: %v\n%s", err, b)
	}
	out := filepath.Join(dir, "out")
	b, err := exec.Command(bin, "run", "--sandbox", "process", "-n", "1", "--cache", "warm", "--out", out, ext).CombinedOutput()
	if err != nil {
		t.Fatalf("initprof run: %v\n%s", err, b)
	}
	var size int64
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if i, err := d.Info(); err == nil {
				size += i.Size()
			}
		}
		return nil
	})
	t.Logf("out directory: %.1f MB", float64(size)/1e6)
	if size > 20e6 {
		t.Errorf("the out directory holds %.1f MB, want under 20 MB", float64(size)/1e6)
	}
	f, err := os.Open(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res struct {
		Runs []struct {
			InitStatus string   `json:"init_status"`
			Notes      []string `json:"notes"`
		} `json:"runs"`
	}
	if err := json.NewDecoder(f).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].InitStatus != "success" {
		t.Fatalf("runs %+v, want one with init_status success\n%s", res.Runs, b)
	}
	if notes := strings.Join(res.Runs[0].Notes, "\n"); !strings.Contains(notes, "chatty: wrote 49") || !strings.Contains(notes, "(50.0 MB) to stdout during init") {
		t.Errorf("the run's notes do not count the output: %q", res.Runs[0].Notes)
	}
}

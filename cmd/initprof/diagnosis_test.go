package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// TestReportCarriesTheDiagnosis: an extension that dies at load the way an
// unresolvable library makes ld.so die gets its last stderr lines in
// report.txt, once for all the runs it failed.
func TestReportCarriesTheDiagnosis(t *testing.T) {
	testutil.RequireRoot(t)
	gcc := testutil.RequireTool(t, "gcc")
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	ext := filepath.Join(dir, "ldsofail")
	src := ext + ".c"
	os.WriteFile(src, []byte(`#include <stdio.h>
int main(void) {
	fputs("starting\n", stdout);
	fputs("/opt/extensions/ldsofail: error while loading shared libraries: libgone.so.1: cannot open shared object file: No such file or directory\n", stderr);
	return 127;
}
`), 0o644)
	if b, err := exec.Command(gcc, "-o", ext, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	out := filepath.Join(dir, "out")
	b, err := exec.Command(bin, "run", "-n", "2", "--cache", "warm", "--init-timeout", "2s", "--out", out, ext).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInitFailed {
		t.Fatalf("initprof run: %v, want exit %d\n%s", err, exitInitFailed, b)
	}
	rep, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rep), "cannot open shared object file") {
		t.Errorf("report.txt lacks the loader's message:\n%s", rep)
	}
	if !strings.Contains(string(rep), "runs 0–1 (2 of 2): ldsofail: last output:") {
		t.Errorf("report.txt does not quote the last output once for both runs:\n%s", rep)
	}
}

// syncBuf is a bytes buffer safe to read while a process writes to it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInterruptedRunSaysSo: SIGINT after a few runs writes report.txt and
// results.json that say "interrupted after k of n runs".
func TestInterruptedRunSaysSo(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildInitprof(t)
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "run", "--out", out, "-n", "50", "--cache", "warm", "--runtime-init", "100ms", testutil.Sample(t, "cmini"))
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); !strings.Contains(errb.String(), "run 5/50") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after SIGINT: %v, want exit %d\n%s", err, exitInterrupted, errb.String())
	}
	rep, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil {
		t.Fatalf("no report.txt after the interrupt: %v\n%s", err, errb.String())
	}
	if !strings.Contains(string(rep), "INTERRUPTED after ") || !strings.Contains(string(rep), " of 50 runs") {
		t.Errorf("report.txt does not say it was interrupted:\n%s", firstLines(string(rep), 6))
	}
	f, err := os.Open(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res struct {
		Interrupted *struct{ Runs, Planned int } `json:"interrupted"`
	}
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Interrupted == nil || res.Interrupted.Planned != 50 || res.Interrupted.Runs < 5 || res.Interrupted.Runs >= 50 {
		t.Errorf("results.json interrupted = %+v, want 5 ≤ runs < 50 of 50", res.Interrupted)
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

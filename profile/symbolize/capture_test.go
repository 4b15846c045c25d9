package symbolize_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/perfrec"
	"github.com/initprof/initprof/profile/symbolize"
	"github.com/initprof/initprof/profile/unwind"
)

// captureHz is the sampling rate of the test recordings: high enough for a few
// hundred samples of a ~60 ms program.
const captureHz = 4000

// record runs bin under perfrec and returns its symbolized stacks.
func record(t *testing.T, env []string, bin string, args ...string) []sample.Stack {
	t.Helper()
	testutil.RequireRoot(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	rec, err := perfrec.Run(cmd, captureHz)
	if err != nil {
		t.Skipf("cannot sample with perf_event_open here: %v", err)
	}
	if len(rec.Samples) == 0 {
		t.Fatalf("no samples of %s (lost %d)", bin, rec.Lost)
	}
	stacks := symbolize.Resolve(unwind.New(), symbolize.New(), rec.Samples, rec.Mappings)
	t.Logf("%s: %d samples, %d lost", filepath.Base(bin), len(stacks), rec.Lost)
	return stacks
}

// buildC compiles testdata/spin.c the way the issue asks: no frame pointers,
// so only CFI gets full stacks.
func buildC(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	out := filepath.Join(dir, "spin")
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", filepath.Join(dir, "libspinlib.so"), "testdata/spinlib.c"},
		{"-o", out, "testdata/spin.c", "-L" + dir, "-lspinlib", "-Wl,-rpath," + dir},
	} {
		args = append([]string{"-O2", "-fomit-frame-pointer", "-g"}, args...)
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	return out
}

func buildGo(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gospin")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/gospin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build gospin: %v\n%s", err, b)
	}
	return out
}

// userFrames returns the names of the user frames of st, leaf first.
func userFrames(st sample.Stack) []string {
	var out []string
	for _, f := range st.Frames {
		if !f.Kernel {
			out = append(out, f.Name())
		}
	}
	return out
}

type stats struct {
	n, complete, frames int
}

func measure(stacks []sample.Stack) stats {
	var s stats
	for _, st := range stacks {
		s.n++
		if st.Complete {
			s.complete++
		}
		s.frames += len(userFrames(st))
	}
	return s
}

func (s stats) rate() float64   { return float64(s.complete) / float64(s.n) }
func (s stats) avg() float64    { return float64(s.frames) / float64(s.n) }
func chain(fs []string) string { return strings.Join(fs, " <- ") }

// contains says whether want appears in fs in order (each after the previous),
// each element matched exactly.
func inOrder(fs []string, want ...string) bool {
	i := 0
	for _, f := range fs {
		if i < len(want) && f == want[i] {
			i++
		}
	}
	return i == len(want)
}

// Package sampletest records real CPU samples of real programs for the tests
// of the unwinder, the symbolizer and every output format: a
// -fomit-frame-pointer C program with a library constructor (testdata/spin.c,
// testdata/spinlib.c), a static Go program (testdata/gospin) and the repo's
// sample extensions. No BPF is needed: perfrec samples with perf_event_open.
//
// Each recording comes with the checkpoints the program printed
// ("INIT | checkpoint=NAME mono_ns=N", CLOCK_MONOTONIC like the samples), the
// moment the test released it (spawn) and the moment it exited (exit), so
// samples get genuine phase labels.
package sampletest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/perfrec"
	"github.com/initprof/initprof/profile/symbolize"
	"github.com/initprof/initprof/profile/unwind"
)

// Hz is the sampling rate of the recordings: a few hundred samples for the
// ~60 ms spin program.
const Hz = 4000

// Recording is one sampled run, symbolized and labelled.
type Recording struct {
	Raw     *perfrec.Recording
	Stacks  []sample.Stack
	Process profile.Process // checkpoints: spawn, what the program printed, exit
	Phases  []profile.Span
}

func monoNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

var checkpointRe = regexp.MustCompile(`INIT \| checkpoint=(\S+) mono_ns=(\d+)`)

// Record samples bin (with extra env) and returns its symbolized stacks, with
// labels process=name, run="1", build=filepath.Base(bin) and phase from the
// checkpoints. It skips the test without root or perf events.
func Record(t testing.TB, name string, env []string, bin string, args ...string) *Recording {
	t.Helper()
	return RecordHz(t, name, Hz, env, bin, args...)
}

// RecordHz is Record at another sampling rate.
func RecordHz(t testing.TB, name string, hz uint64, env []string, bin string, args ...string) *Recording {
	t.Helper()
	testutil.RequireRoot(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	spawn := monoNs()
	raw, err := perfrec.Run(cmd, hz)
	exit := monoNs()
	if err != nil {
		t.Skipf("cannot sample with perf_event_open here: %v", err)
	}
	if len(raw.Samples) == 0 {
		t.Fatalf("no samples of %s (lost %d)", bin, raw.Lost)
	}
	proc := profile.Process{Name: name, Role: profile.RoleExtension, Checkpoints: []profile.Checkpoint{
		{Name: profile.CkSpawn, MonoNs: spawn, Source: profile.SourcePlatform},
	}}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if m := checkpointRe.FindStringSubmatch(sc.Text()); m != nil {
			ns, _ := strconv.ParseInt(m[2], 10, 64)
			proc.Checkpoints = append(proc.Checkpoints, profile.Checkpoint{Name: m[1], MonoNs: ns, Source: profile.SourceLog})
		}
	}
	proc.Checkpoints = append(proc.Checkpoints, profile.Checkpoint{Name: "exit", MonoNs: exit, Source: profile.SourcePlatform})
	spans := profile.Phases(proc)
	stacks := symbolize.Resolve(unwind.New(), symbolize.New(), raw.Samples, raw.Mappings)
	for i := range stacks {
		proc.PID = int(stacks[i].PID)
		stacks[i].Process = name
		stacks[i].Run = "1"
		stacks[i].Build = filepath.Base(bin)
		stacks[i].Phase = profile.PhaseAt(spans, stacks[i].MonoNs)
		stacks[i].Weight = int64(time.Second) / int64(hz)
	}
	t.Logf("%s: %d samples, %d lost, phases %s", name, len(stacks), raw.Lost, spanNames(spans))
	return &Recording{Raw: raw, Stacks: stacks, Process: proc, Phases: spans}
}

func spanNames(spans []profile.Span) string {
	var s []string
	for _, sp := range spans {
		s = append(s, fmt.Sprintf("%s=%.1fms", sp.Name, float64(sp.DurNs())/1e6))
	}
	return strings.Join(s, " ")
}

func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// BuildC compiles testdata/spin.c and its library testdata/spinlib.c with
// -O2 -fomit-frame-pointer -g, so only CFI unwinding gets full stacks.
func BuildC(t testing.TB) string {
	t.Helper()
	testutil.RequireTool(t, "gcc")
	d := t.TempDir()
	out := filepath.Join(d, "spin")
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", filepath.Join(d, "libspinlib.so"), filepath.Join(dir(), "spinlib.c")},
		{"-o", out, filepath.Join(dir(), "spin.c"), "-L" + d, "-lspinlib", "-Wl,-rpath," + d},
	} {
		args = append([]string{"-O2", "-fomit-frame-pointer", "-g"}, args...)
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	return out
}

// BuildGo builds testdata/gospin as a static pure-Go binary.
func BuildGo(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gospin")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(dir(), "gospin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build gospin: %v\n%s", err, b)
	}
	return out
}

// UserFrames returns the names of the user frames of st, leaf first.
func UserFrames(st sample.Stack) []string {
	var out []string
	for _, f := range st.Frames {
		if !f.Kernel {
			out = append(out, f.Name())
		}
	}
	return out
}

// InOrder says whether want appears in fs in order (not necessarily adjacent).
func InOrder(fs []string, want ...string) bool {
	i := 0
	for _, f := range fs {
		if i < len(want) && f == want[i] {
			i++
		}
	}
	return i == len(want)
}

// Stats are the unwinding figures the issue asks for.
type Stats struct {
	Samples, Complete, Frames int
}

// Measure counts complete stacks and user frames.
func Measure(stacks []sample.Stack) Stats {
	var s Stats
	for _, st := range stacks {
		s.Samples++
		if st.Complete {
			s.Complete++
		}
		s.Frames += len(UserFrames(st))
	}
	return s
}

// Rate is the share of samples unwound to a root frame.
func (s Stats) Rate() float64 { return float64(s.Complete) / float64(max(s.Samples, 1)) }

// AvgFrames is the mean number of user frames per sample.
func (s Stats) AvgFrames() float64 { return float64(s.Frames) / float64(max(s.Samples, 1)) }

// FlameStacks are the stacks of a small CPU profile of build name, for the
// flamegraph tests: relocN samples in relocate (ld.so's symbol lookup) and 5
// in constructors (a hot constructor).
func FlameStacks(name string, relocN int) []sample.Stack {
	m := &sample.Mapping{Start: 0x1000, End: 0x9000, Path: "/lib64/ld-linux-x86-64.so.2"}
	fr := func(n string) sample.Frame { return sample.Frame{Func: n, Mapping: m, Addr: 0x1000 + uint64(len(n))} }
	var stacks []sample.Stack
	for i := 0; i < relocN; i++ {
		stacks = append(stacks, sample.Stack{Phase: "relocate", Process: "cext", Run: "1", Build: name,
			Frames: []sample.Frame{fr("do_lookup_x"), fr("_dl_relocate_object"), fr("dl_main"), fr("_dl_start")}})
	}
	for i := 0; i < 5; i++ {
		stacks = append(stacks, sample.Stack{Phase: "constructors", Process: "cext", Run: "1", Build: name,
			Frames: []sample.Frame{fr("cext_hot_spin"), fr("hot_ctor"), fr("_dl_init"), fr("_dl_start_user")}})
	}
	return stacks
}

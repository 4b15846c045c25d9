package probes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/outputs"
)

// sampleCommand runs script under /bin/sh, which first waits on stdin, so the
// sampler follows the shell before anything of interest runs; like a
// container's first process between create and start.
func sampleCommand(t *testing.T, s *Sampler, script string, args ...string) *Capture {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", "read _ && " + script}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Follow(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	fmt.Fprintln(w, "go")
	w.Close()
	cmd.Wait() // cext exits 1: no platform to register with; its init ran
	c, err := s.Collect()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func resolve(c *Capture) []sample.Stack {
	r := outputs.NewResolver(nil)
	var out []sample.Stack
	for _, g := range c.Groups() {
		out = append(out, r.Stacks(g.Samples, g.Maps, profile.Run{}, 1000)...)
	}
	return out
}

func hasChain(st sample.Stack, names ...string) bool {
	i := 0
	for _, f := range st.Frames {
		if i < len(names) && f.Func == names[i] {
			i++
		}
	}
	return i == len(names)
}

// TestSamplerCext samples the C sample (its constructor spins in
// cext_hot_spin for milliseconds, built without frame pointers) run directly
// and forked from a shell: the inherited event must cover the child, the
// mappings exec creates must be known, and stacks must unwind through
// _dl_init to the root.
func TestSamplerCext(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.Sample(t, "cext")
	s, err := NewSampler(SamplerOptions{Hz: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ name, script string }{
		{"exec", `exec "$0"`},
		{"fork", `"$0"; "$0"; true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sampleCommand(t, s, tc.script, bin)
			if c.Dropped > 0 || c.LostSide > 0 {
				t.Errorf("dropped %d samples, lost %d side-band records", c.Dropped, c.LostSide)
			}
			pids := map[uint32]bool{}
			var hot, hotFull, cextN, complete int
			for _, st := range resolve(c) {
				if c.Comms[st.PID] != "cext" {
					continue
				}
				pids[st.PID] = true
				cextN++
				if st.Complete {
					complete++
				}
				if hasChain(st, "cext_hot_spin") {
					hot++
					if hasChain(st, "cext_hot_spin", "_dl_init") && st.Complete {
						hotFull++
					}
				}
			}
			want := 1
			if tc.name == "fork" {
				want = 2
			}
			if len(pids) != want {
				t.Errorf("samples from %d cext processes, want %d (comms %v)", len(pids), want, c.Comms)
			}
			if hot < 5 || hotFull*10 < hot*9 {
				t.Errorf("%d samples in cext_hot_spin, %d of them complete through _dl_init; want ≥ 5 and ≥ 90 %%", hot, hotFull)
			}
			if cextN == 0 || complete*10 < cextN*9 {
				t.Errorf("%d of %d cext samples fully unwound; want ≥ 90 %%", complete, cextN)
			}
			t.Logf("%d samples taken, %d cext samples, %d complete, %d in cext_hot_spin; images %d", c.Taken, cextN, complete, hot, len(c.Images))
		})
	}
}

// TestSamplerCleanup: after Collect no perf event of the sampler is open in
// this process, and after Close its program is gone from the kernel.
func TestSamplerCleanup(t *testing.T) {
	testutil.RequireRoot(t)
	s, err := NewSampler(SamplerOptions{Hz: 1000})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.ProgramID()
	if err != nil {
		t.Fatal(err)
	}
	sampleCommand(t, s, "true")
	if n := perfFDs(t); n != 0 {
		t.Errorf("%d perf event fds open after Collect", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if progExists(id) {
		t.Errorf("sampling program %d still loaded after Close", id)
	}
}

func perfFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(l, "perf_event") {
			n++
		}
	}
	return n
}

func TestSamplerBadInput(t *testing.T) {
	for _, hz := range []int{0, -5, 200000} {
		if _, err := NewSampler(SamplerOptions{Hz: hz}); err == nil || !strings.Contains(err.Error(), "Hz") {
			t.Errorf("Hz %d: err %v, want a rate error", hz, err)
		}
	}
}

// progExists says whether program id is still loaded, allowing the kernel a
// moment for its deferred frees.
func progExists(id ebpf.ProgramID) bool {
	for i := 0; i < 50; i++ {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return false
		}
		p.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestSamplerOffCPU: a forked child that sleeps 50 ms (nanosleep) and then
// spins must give off-CPU samples: a blocked one of about 50 ms whose stacks
// unwind (kernel: the nanosleep path; user: through libc to the root), for
// the child the shell forked after Follow (the tgid set grows on fork). A
// shell before the sampler follows it is not recorded.
func TestSamplerOffCPU(t *testing.T) {
	testutil.RequireRoot(t)
	s, err := NewSampler(SamplerOptions{Hz: 1000, OffCPU: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := sampleCommand(t, s, "/bin/sleep 0.05")
	if c.OffCPUTaken == 0 || len(c.OffCPU) == 0 {
		t.Fatalf("no off-CPU samples: taken %d, paired %d", c.OffCPUTaken, len(c.OffCPU))
	}
	if c.OffCPUDropped > 0 {
		t.Errorf("%d off-CPU records dropped", c.OffCPUDropped)
	}
	comm := func(pid uint32) string { return c.Comms[pid] }
	var longest sample.RawSample
	var total int64
	for _, r := range c.OffCPU {
		if r.OffCPUNs <= 0 {
			t.Errorf("off-CPU sample with %d ns", r.OffCPUNs)
		}
		if comm(r.PID) == "sleep" {
			total += r.OffCPUNs
			if r.OffCPUNs > longest.OffCPUNs {
				longest = r
			}
		}
	}
	t.Logf("%d off-CPU samples; sleep: longest %.2f ms (runnable %v), total %.2f ms", len(c.OffCPU),
		float64(longest.OffCPUNs)/1e6, longest.Runnable, float64(total)/1e6)
	if longest.OffCPUNs < 45e6 || longest.OffCPUNs > 500e6 || longest.Runnable {
		t.Fatalf("sleep's longest off-CPU interval %.2f ms (runnable %v), want ~50 ms blocked", float64(longest.OffCPUNs)/1e6, longest.Runnable)
	}
	r := outputs.NewResolver(nil)
	var st []sample.Stack
	for _, g := range c.GroupsOf([]sample.RawSample{longest}) {
		st = append(st, r.Stacks(g.Samples, g.Maps, profile.Run{}, 1000)...)
	}
	if len(st) != 1 {
		t.Fatalf("%d stacks for one sample", len(st))
	}
	var names []string
	kernelSleep, userRoot := false, st[0].Complete
	for _, f := range st[0].Frames {
		names = append(names, f.Name())
		if f.Kernel && strings.Contains(f.Func, "nanosleep") {
			kernelSleep = true
		}
	}
	if !st[0].OffCPU || st[0].Weight != longest.OffCPUNs || st[0].Frames[0].Func != sample.FrameBlocked {
		t.Errorf("stack: off-CPU %v weight %d leaf %q", st[0].OffCPU, st[0].Weight, st[0].Frames[0].Func)
	}
	if !kernelSleep || !userRoot {
		t.Errorf("the 50 ms sleep's stack: kernel nanosleep frame %v, unwound to the root %v:\n%s", kernelSleep, userRoot, strings.Join(names, "\n"))
	}
}

package probes

import (
	"bytes"

	"github.com/cilium/ebpf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/internal/testutil"
)

func TestKernelDev(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{254, 0}, {8, 1}, {0, 35}, {259, 300}, {4095, 1 << 19}} {
		if got, want := kernelDev(c.major<<20|c.minor), unix.Mkdev(c.major, c.minor); got != want {
			t.Errorf("kernelDev(%d:%d) = %#x, want %#x", c.major, c.minor, got, want)
		}
	}
}

func TestTouchKind(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		want  TouchKind
	}{
		{touchAdded, TouchReadahead},
		{touchAdded | touchFaulted, TouchReadahead},
		{touchFaulted | touchFaultFirst, TouchMinor},
		{touchAdded | touchFaulted | touchFaultFirst, TouchMajor},
	} {
		if got := touchKind(c.flags); got != c.want {
			t.Errorf("touchKind(%b) = %v, want %v", c.flags, got, c.want)
		}
	}
}

// TestTouched runs a copy of a binary with a cold page cache, reading a cold
// data file: the copy's own pages are faulted in (major), the data file's
// come through read(2) and its readahead, and every page the probes report
// added must be resident afterwards.
func TestTouched(t *testing.T) {
	testutil.RequireRoot(t)
	tr, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !tr.touchTP {
		t.Skip("no filemap:mm_filemap_add_to_page_cache on this kernel")
	}
	dir := t.TempDir()
	// This test binary: large enough (megabytes) that its faults read
	// pages in, where exec's readahead brings all of a small program.
	bin := filepath.Join(dir, "self")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, bin, self, 0o755)
	data := filepath.Join(dir, "data")
	buf := make([]byte, 3<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	if err := os.WriteFile(data, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bin, data} {
		evict(t, p)
	}
	if err := tr.FollowChildren(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestTouchedHelper$")
	cmd.Env = append(os.Environ(), "INITPROF_TOUCH_READ="+data)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pages, st, err := tr.Touched()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Available || st.Dropped > 0 {
		t.Fatalf("stats %+v", st)
	}
	pid := uint32(cmd.Process.Pid)
	count := map[string]map[TouchKind]int{}
	for _, path := range []string{bin, data} {
		var s syscall.Stat_t
		if err := syscall.Stat(path, &s); err != nil {
			t.Fatal(err)
		}
		count[path] = map[TouchKind]int{}
		faulted := 0
		res := residentSet(t, path)
		for _, p := range pages {
			if p.PID != pid || p.Dev != s.Dev || p.Ino != s.Ino {
				continue
			}
			count[path][p.Kind]++
			if p.Faulted {
				faulted++
			}
			if p.Kind != TouchMinor && !res[p.Index] {
				t.Errorf("%s page %d: added by the probes' account, not resident", path, p.Index)
			}
		}
		t.Logf("%s: %v, faulted %d", filepath.Base(path), count[path], faulted)
	}
	if count[bin][TouchMajor] == 0 {
		t.Errorf("no major fault on the cold copy of cat: %v", count[bin])
	}
	if n := count[data][TouchReadahead]; n != len(buf)/4096 {
		t.Errorf("data file: %d pages read, want %d (all of it)", n, len(buf)/4096)
	}
}

// TestTouchedHelper is TestTouched's target: it reads the file it is given.
func TestTouchedHelper(t *testing.T) {
	p := os.Getenv("INITPROF_TOUCH_READ")
	if p == "" {
		t.Skip("only TestTouched runs this")
	}
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
}

func residentSet(t *testing.T, p string) map[uint64]bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (st.Size()+4095)/4096)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	out := map[uint64]bool{}
	for i, v := range vec {
		if v&1 != 0 {
			out[uint64(i)] = true
		}
	}
	return out
}

// BenchmarkTouchedCost measures what the page-touch probes
// (filemap:mm_filemap_add_to_page_cache and the fault-address lookup) cost a
// cold start: the samples goext and cext, each a fresh copy evicted from the
// page cache, run alternately under a tracer with them and one without
// (neither has uprobes, so only the kernel programs differ). The metric is
// fork → the sample's own before_next checkpoint. It reports; it asserts
// nothing. INITPROF_BENCH_N sets the runs per mode (default 50).
func BenchmarkTouchedCost(b *testing.B) {
	testutil.RequireRoot(b)
	api := startPlatform(b)
	env := append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+api)
	on := newTracer(b, Options{RingBytes: 64 << 20})
	offOpts := Options{RingBytes: 64 << 20, NoTouched: true}
	if os.Getenv("INITPROF_BENCH_ADDS_ONLY") != "" {
		offOpts = Options{RingBytes: 64 << 20, NoTouchFaults: true} // "off" keeps the adds: the fault lookup's cost
	}
	off := newTracer(b, offOpts)
	if !on.TouchAvailable() {
		b.Skip("no filemap:mm_filemap_add_to_page_cache on this kernel")
	}
	// The programs' own run time (kernel.bpf_stats_enabled) is the cost
	// without the noise of a whole cold start.
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	} else {
		b.Logf("no BPF run-time statistics: %v", err)
	}
	progTime := func() (ns float64, runs uint64) {
		for _, name := range []string{"initprof_pgadd", "initprof_pgfil", "initprof_pgmap"} {
			if p := on.coll.Programs[name]; p != nil {
				if s, err := p.Stats(); err == nil {
					ns += float64(s.Runtime.Nanoseconds())
					runs += s.RunCount
				}
			}
		}
		return ns, runs
	}
	n := benchRuns()
	for _, sample := range []string{"goext", "cext"} {
		// The sample in place: cext finds its library through $ORIGIN/../lib.
		// Its host libraries (libcurl, OpenSSL) are evicted too, but those
		// other processes keep mapped stay cached.
		bin := testutil.Sample(b, sample)
		files := []string{bin}
		if sample == "cext" {
			out, _ := exec.Command("ldd", bin).Output()
			for _, l := range strings.Split(string(out), "\n") {
				if _, rest, ok := strings.Cut(l, "=> "); ok {
					if p, _, ok := strings.Cut(rest, " ("); ok && strings.HasPrefix(p, "/") {
						files = append(files, p)
					}
				}
			}
		}
		res := map[string][]float64{}
		var pages, progNs, progRuns []float64
		for i := 0; i < n+2; i++ {
			modes := []struct {
				name string
				tr   *Tracer
			}{{"off", off}, {"on", on}}
			if i%2 == 1 {
				modes[0], modes[1] = modes[1], modes[0] // neither always goes first
			}
			if os.Getenv("INITPROF_BENCH_AA") != "" {
				modes[1].tr = modes[0].tr // an A/A run: the harness's own bias
			}
			for _, m := range modes {
				for _, f := range files {
					evictTB(b, f)
				}
				if err := m.tr.FollowChildren(os.Getpid()); err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command(bin)
				cmd.Env = env
				var out bytes.Buffer
				cmd.Stdout = &out
				ns0, r0 := progTime()
				t0 := monoNow()
				if err := cmd.Run(); err != nil {
					b.Fatalf("%s: %v\n%s", sample, err, out.String())
				}
				if m.name == "on" {
					ns1, r1 := progTime()
					progNs = append(progNs, ns1-ns0)
					progRuns = append(progRuns, float64(r1-r0))
					ps, _, err := on.Touched()
					if err != nil {
						b.Fatal(err)
					}
					pages = append(pages, float64(len(ps)))
				}
				m.tr.Stop()
				next, ok := parseCheckpoints(out.String())["before_next"]
				if !ok {
					b.Fatalf("%s: no before_next checkpoint in\n%s", sample, out.String())
				}
				if i >= 2 {
					res[m.name] = append(res[m.name], float64(next-t0)/1e3)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		base, with := median(res["off"]), median(res["on"])
		b.Logf("%s (cold): start→before_next median off %.0f µs, on %.0f µs (%+.0f µs, %+.1f %%); %.0f pages recorded per run; n=%d",
			sample, base, with, with-base, 100*(with-base)/base, median(pages), len(res["on"]))
		b.Logf("%s: the page-touch programs ran %.0f times per cold start, for %.0f µs in all (median; kernel.bpf_stats_enabled; all processes' events, filtered in BPF)",
			sample, median(progRuns), median(progNs)/1e3)
		b.ReportMetric(with-base, sample+"-µs")
		b.ReportMetric(median(progNs)/1e3, sample+"-bpf-µs")
	}
}

func evictTB(t testing.TB, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Sync()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

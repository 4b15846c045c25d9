package probes

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
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

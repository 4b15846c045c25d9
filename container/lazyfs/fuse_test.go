package lazyfs_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/internal/testutil"
	"golang.org/x/sys/unix"
)

// requireFUSE skips, saying why, unless this machine can mount FUSE.
func requireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lazyfs server mounts with mount(2) (no fusermount)")
	}
	if err := lazyfs.Check(); err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
}

var initprofBin string

func initprof(t testing.TB) string {
	if initprofBin == "" {
		initprofBin = testutil.BuildInitprof(t)
		// BuildInitprof's temp dir goes with the first test; keep a copy.
		dir, err := os.MkdirTemp("", "lazyfs-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(dir, "initprof")
		b, err := os.ReadFile(initprofBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		initprofBin = cp
	}
	return initprofBin
}

// serve starts a server over a fresh backing dir filled by fill.
func serve(t testing.TB, m lazyfs.Model, readAhead int, fill func(dir string)) (*lazyfs.Client, string) {
	t.Helper()
	requireFUSE(t)
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fill(backing)
	c, err := lazyfs.Start(initprof(t), lazyfs.ServeOptions{Backing: backing, Mount: mnt, Model: m, ReadAhead: readAhead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		assertUnmounted(t, mnt)
	})
	return c, mnt
}

func assertUnmounted(t testing.TB, mnt string) {
	t.Helper()
	for _, l := range lazyfs.Mounts() {
		if l.Mount == mnt {
			t.Errorf("%s is still mounted", mnt)
		}
	}
}

func zeroModel() lazyfs.Model {
	m, err := lazyfs.ModelFrom("worker=0,az=0,s3=0", "", "", 1)
	if err != nil {
		panic(err)
	}
	return m
}

func writeSized(t testing.TB, p string, size int) {
	b := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileStats(t testing.TB, c *lazyfs.Client, p string) lazyfs.FileStats {
	t.Helper()
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Files {
		if f.Path == p {
			return f
		}
	}
	return lazyfs.FileStats{Path: p}
}

func evict(t testing.TB, p string) {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

func TestFUSEChunkCountsExactReads(t *testing.T) {
	const size = 5*lazyfs.ChunkSize + 1000 // 6 chunks
	c, mnt := serve(t, zeroModel(), 0, func(d string) { writeSized(t, filepath.Join(d, "opt/extensions/ext"), size) })
	p := filepath.Join(mnt, "opt/extensions/ext")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1)
	for _, step := range []struct {
		off    int64
		chunks int
	}{
		{0, 1},                           // chunk 0 (readahead stays inside it)
		{10, 1},                          // page cache
		{2*lazyfs.ChunkSize + 10, 2},     // chunk 2
		{2*lazyfs.ChunkSize + 100000, 2}, // inside the readahead of chunk 2
		{5 * lazyfs.ChunkSize, 3},        // the last, short chunk
	} {
		if _, err := f.ReadAt(buf, step.off); err != nil {
			t.Fatal(err)
		}
		if got := fileStats(t, c, "/opt/extensions/ext").Chunks; got != step.chunks {
			t.Errorf("after reading 1 byte at %d: %d chunks fetched, want %d", step.off, got, step.chunks)
		}
	}
	// The whole file, sequentially: every chunk.
	all, err := os.ReadFile(p)
	if err != nil || len(all) != size {
		t.Fatalf("read %d bytes, %v", len(all), err)
	}
	fs := fileStats(t, c, "/opt/extensions/ext")
	if fs.Chunks != 6 {
		t.Errorf("whole file: %d chunks, want 6", fs.Chunks)
	}
	if fs.Class != "function" {
		t.Errorf("class %q, want function", fs.Class)
	}
	// Keep-cache: a new open rereads nothing; reset + evict fetches afresh.
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	if got := fileStats(t, c, "/opt/extensions/ext"); got.Chunks != 6 || got.Requests != fs.Requests {
		t.Errorf("second open: %d chunks, %d reads; want 6 and %d (page cache kept)", got.Chunks, got.Requests, fs.Requests)
	}
	if err := c.Reset(2); err != nil {
		t.Fatal(err)
	}
	evict(t, p)
	if _, err := f.ReadAt(buf, lazyfs.ChunkSize+5); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != 1 || st.Seed != 2 {
		t.Errorf("after reset+evict, one read: %d chunks (seed %d), want 1 (seed 2)", st.Chunks, st.Seed)
	}
	if st.Requests == 0 || st.ServiceNs <= 0 {
		t.Errorf("service accounts empty: %d requests, %d ns", st.Requests, st.ServiceNs)
	}
}

func TestFUSEExecAndMmap(t *testing.T) {
	self := initprof(t)
	m := lazyfs.DefaultModel()
	// Tiny latencies: the sleeps are real but the test stays fast.
	if err := m.ParseLatencies("worker=100us,az=200us,s3=1ms"); err != nil {
		t.Fatal(err)
	}
	c, mnt := serve(t, m, 0, func(d string) {
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(d, "var/runtime"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "var/runtime/bootstrap"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		writeSized(t, filepath.Join(d, "lib/data.bin"), 4*lazyfs.ChunkSize)
	})
	out, err := exec.Command(filepath.Join(mnt, "var/runtime/bootstrap"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "initprof") {
		t.Fatalf("exec through the mount: %v: %s", err, out)
	}
	st := fileStats(t, c, "/var/runtime/bootstrap")
	size, _ := os.Stat(self)
	total := int((size.Size() + lazyfs.ChunkSize - 1) / lazyfs.ChunkSize)
	if st.Chunks == 0 || st.Chunks > total {
		t.Errorf("exec fetched %d chunks of %d", st.Chunks, total)
	}
	if st.WaitNs <= 0 {
		t.Errorf("exec: no modelled wait (%d ns)", st.WaitNs)
	}
	t.Logf("exec of a %d-byte binary: %d of %d chunks, %d reads, modelled %v", size.Size(), st.Chunks, total, st.Requests, time.Duration(st.WaitNs))

	// mmap: a page fault in the middle of chunk 3 fetches chunk 3 only (a
	// fault reads around the page, half the readahead before it: a fault
	// near a chunk's start also fetches the chunk before).
	f, err := os.Open(filepath.Join(mnt, "lib/data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4*lazyfs.ChunkSize, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	if got := mem[3*lazyfs.ChunkSize+lazyfs.ChunkSize/2+7]; got != "0123456789abcdef"[7] {
		t.Errorf("mmap read %q", got)
	}
	ds := fileStats(t, c, "/lib/data.bin")
	if ds.Chunks != 1 || ds.Class != "base" {
		t.Errorf("one page fault mid chunk 3: %d chunks (class %s), want 1 (base)", ds.Chunks, ds.Class)
	}
	if ds.Tiers["host"] != 1 {
		t.Errorf("base chunk tiers %v, want host only", ds.Tiers)
	}
}

// If the profiler dies, the server sees EOF on its stdin and unmounts.
func TestFUSEParentGoneUnmounts(t *testing.T) {
	requireFUSE(t)
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "b"), filepath.Join(base, "m")
	os.MkdirAll(backing, 0o755)
	os.MkdirAll(mnt, 0o755)
	writeSized(t, filepath.Join(backing, "f"), 100)
	args, err := lazyfs.Args(lazyfs.ServeOptions{Backing: backing, Mount: mnt, Model: zeroModel(), Owner: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(initprof(t), args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 6)
	if _, err := stdout.Read(line); err != nil || string(line) != "ready " {
		t.Fatalf("no ready line: %q %v", line, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "f")); err != nil {
		t.Fatalf("not served: %v", err)
	}
	stdin.Close() // what the kernel does when the parent dies
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("server did not exit on stdin EOF")
	}
	assertUnmounted(t, mnt)
}

func BenchmarkFUSERead(b *testing.B) {
	for _, ra := range []int{128 << 10, 512 << 10, 2 << 20} {
		b.Run(fmt.Sprintf("readahead=%dKiB", ra>>10), func(b *testing.B) {
			const size = 8 << 20
			c, mnt := serve(b, zeroModel(), ra, func(d string) { writeSized(b, filepath.Join(d, "opt/f"), size) })
			p := filepath.Join(mnt, "opt/f")
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				c.Reset(uint64(i + 1))
				evict(b, p)
				if _, err := os.ReadFile(p); err != nil {
					b.Fatal(err)
				}
			}
			st, _ := c.Stats()
			b.ReportMetric(float64(st.Reads), "reads/op")
			b.ReportMetric(float64(st.ServiceNs)/1e3, "service-µs/op")
		})
	}
}

// The readahead option is what the kernel applies (read back from the
// mount's bdi), and a larger one fetches chunks further ahead.
func TestFUSEReadAheadApplies(t *testing.T) {
	for _, tc := range []struct{ ra int }{{128 << 10}, {2 << 20}} {
		t.Run(fmt.Sprintf("%dKiB", tc.ra>>10), func(t *testing.T) {
			c, mnt := serve(t, zeroModel(), tc.ra, func(d string) { writeSized(t, filepath.Join(d, "opt/f"), 8*lazyfs.ChunkSize) })
			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.ReadAhead != tc.ra {
				t.Fatalf("effective readahead %d, want %d", st.ReadAhead, tc.ra)
			}
			f, err := os.Open(filepath.Join(mnt, "opt/f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Sequential 4 KiB reads of the first 4 MiB, as a loader's
			// read() of headers would not do but readahead ramps on.
			buf := make([]byte, 4096)
			for off := int64(0); off < 4*lazyfs.ChunkSize; off += 4096 {
				f.ReadAt(buf, off)
			}
			got := fileStats(t, c, "/opt/f")
			t.Logf("readahead %d KiB: %d chunks after reading 2 MiB in 4 KiB steps, %d FUSE reads", tc.ra>>10, got.Chunks, got.Requests)
			if tc.ra > 128<<10 && got.Chunks <= 4 {
				t.Errorf("readahead %d KiB fetched only %d chunks reading the first 4", tc.ra>>10, got.Chunks)
			}
		})
	}
}

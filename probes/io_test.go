package probes

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/internal/testutil"
)

// evict drops a file's pages from the page cache, so the next reader goes to
// the disk (posix_fadvise DONTNEED writes nothing back: the file is synced).
func evict(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise(DONTNEED) %s: %v", path, err)
	}
}

func copyFile(t testing.TB, dst, src string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadBytesAndMajorFaults runs a private copy of cat over a 4 MiB file,
// both evicted from the page cache, then again with both cached: the cold run
// must show the file's bytes read from storage and major faults on cat's own
// text, the warm run neither (compared side by side, not to constants).
func TestReadBytesAndMajorFaults(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is on tmpfs: nothing is read from storage there", dir)
	}
	cat := filepath.Join(dir, "cat")
	copyFile(t, cat, "/bin/cat", 0o755)
	const size = 4 << 20
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("initprof"), size/8), 0o644); err != nil {
		t.Fatal(err)
	}

	tr := newTracer(t, Options{})
	exitOf := func(r *run) Event {
		e, ok := r.first(isKind(KindExit))
		if !ok {
			t.Fatalf("no exit event; timeline:\n%s", r.dump())
		}
		return e
	}
	evict(t, cat)
	evict(t, data)
	cold := exitOf(traceRun(t, tr, cat, nil, data))
	warm := exitOf(traceRun(t, tr, cat, nil, data))
	t.Logf("cold: %d bytes read, %d major faults; warm: %d bytes read, %d major faults",
		cold.ReadBytes, cold.MajFaults, warm.ReadBytes, warm.MajFaults)
	if cold.ReadBytes < size {
		t.Errorf("cold run read %d bytes from storage, want ≥ the file's %d", cold.ReadBytes, size)
	}
	if warm.ReadBytes >= cold.ReadBytes/4 {
		t.Errorf("warm run read %d bytes, not well below the cold run's %d", warm.ReadBytes, cold.ReadBytes)
	}
	if cold.MajFaults == 0 || warm.MajFaults >= cold.MajFaults {
		t.Errorf("major faults: cold %d, warm %d; want cold > warm", cold.MajFaults, warm.MajFaults)
	}
}

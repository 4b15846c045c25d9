package container

import (
	"fmt"
	"os"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileResidency is how much of one file sits in the page cache.
type FileResidency struct {
	Path     string
	Pages    int // pages in the file
	Resident int // of which in the page cache
}

// Eviction reports one cold-cache preparation: the pages resident before and
// after posix_fadvise(DONTNEED), counted with mincore.
type Eviction struct {
	Files    int
	Bytes    int64
	Pages    int // total pages of all files
	Before   int // resident pages before eviction
	After    int // resident pages after eviction
	PageSize int
	// Residual lists the files that kept resident pages, most first. DONTNEED
	// cannot drop pages a running process has mapped (a host library every
	// process uses, for example), nor dirty pages still being written back.
	Residual []FileResidency
}

// String is a one-line summary for logs and reports.
func (e Eviction) String() string {
	s := fmt.Sprintf("evicted %d files (%d KiB): %d of %d pages resident before, %d after",
		e.Files, e.Bytes>>10, e.Before, e.Pages, e.After)
	if len(e.Residual) > 0 {
		s += fmt.Sprintf(" (most in %s: %d pages, still mapped or in use)", e.Residual[0].Path, e.Residual[0].Resident)
	}
	return s
}

// EvictPageCache drops every file in paths from the page cache, so the next
// run reads them from disk as a real cold start does, and verifies it with
// mincore. Each file is fdatasync'ed first: dirty pages cannot be dropped.
// A file that cannot be opened is an error; the eviction itself is best
// effort, and what stayed resident is reported, never hidden.
func EvictPageCache(paths []string) (Eviction, error) {
	ev := Eviction{PageSize: os.Getpagesize()}
	for _, p := range paths {
		before, pages, size, err := evictOne(p)
		if err != nil {
			return ev, err
		}
		after, _, err := Residency(p)
		if err != nil {
			return ev, err
		}
		ev.Files++
		ev.Bytes += size
		ev.Pages += pages
		ev.Before += before
		ev.After += after
		if after > 0 {
			ev.Residual = append(ev.Residual, FileResidency{Path: p, Pages: pages, Resident: after})
		}
	}
	sort.Slice(ev.Residual, func(i, j int) bool { return ev.Residual[i].Resident > ev.Residual[j].Resident })
	return ev, nil
}

func evictOne(p string) (before, pages int, size int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evicting %s from the page cache: %v", p, err)
	}
	defer f.Close()
	before, pages, err = residency(f)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("mincore %s: %v", p, err)
	}
	st, _ := f.Stat()
	size = st.Size()
	// Our file is opened read-only; fdatasync on it still flushes the inode's
	// dirty pages, which a fresh copy into the bundle has.
	_ = unix.Fdatasync(int(f.Fd()))
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, 0, 0, fmt.Errorf("posix_fadvise(DONTNEED) %s: %v", p, err)
	}
	return before, pages, size, nil
}

// Residency counts the pages of the file at p that are in the page cache,
// using mincore on a read-only mapping (which faults nothing in).
func Residency(p string) (resident, pages int, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return residency(f)
}

func residency(f *os.File) (resident, pages int, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, 0, nil
	}
	ps := int64(os.Getpagesize())
	pages = int((size + ps - 1) / ps)
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, pages, err
	}
	defer unix.Munmap(m)
	vec := make([]byte, pages)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, pages, e
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, pages, nil
}

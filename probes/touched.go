package probes

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
)

// TouchKind says how a process first touched a file-backed page.
type TouchKind uint8

const (
	// TouchMajor: the process faulted on the page and the fault read it
	// into the page cache.
	TouchMajor TouchKind = iota + 1
	// TouchMinor: the process faulted on a file mapping of a page that was
	// already cached (another process, or an earlier run, had read it).
	TouchMinor
	// TouchReadahead: the process caused the page into the page cache
	// without faulting on it first: read(2), or the readahead and
	// fault-around read-around of its faults and reads. It may be faulted on
	// later (Faulted).
	TouchReadahead
)

func (k TouchKind) String() string {
	switch k {
	case TouchMajor:
		return "major"
	case TouchMinor:
		return "minor"
	case TouchReadahead:
		return "readahead"
	}
	return fmt.Sprintf("touch(%d)", uint8(k))
}

// PageTouch is the first touch of one 4 KiB page of a file by one process.
type PageTouch struct {
	PID   uint32 // thread group id
	TID   uint32 // the thread that touched it first
	Dev   uint64 // st_dev of the file, in the user-space encoding (unix.Mkdev)
	Ino   uint64
	Index uint64 // file offset / 4096
	Time  uint64 // CLOCK_MONOTONIC ns of the first touch
	Kind  TouchKind
	// Faulted says the process faulted on the page through a mapping (a
	// readahead page it used later, as well as every major and minor one).
	Faulted bool
}

// TouchStats counts what the page-touch maps lost in a run.
type TouchStats struct {
	// Available is false when the kernel lacks filemap:mm_filemap_add_to_page_cache
	// (or Options.NoTouched): then Touched returns nothing.
	Available bool
	// Dropped counts touches not recorded because the map was full.
	Dropped uint64
	// Unmapped counts faults whose mapping could not be looked up
	// (bpf_find_vma: an unmapped address, or the mmap lock was busy).
	Unmapped uint64
}

// touch flags, as initprof.bpf.c sets them.
const (
	touchAdded      = 1
	touchFaulted    = 2
	touchFaultFirst = 4
)

// kernelDev converts the kernel's internal dev_t (major << 20 | minor) to the
// encoding stat(2) returns.
func kernelDev(d uint32) uint64 {
	major, minor := uint64(d>>20), uint64(d&(1<<20-1))
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
}

func touchKind(flags uint32) TouchKind {
	switch {
	case flags&touchFaultFirst != 0 && flags&touchAdded != 0:
		return TouchMajor
	case flags&touchFaultFirst != 0:
		return TouchMinor
	}
	return TouchReadahead
}

// Touched returns the file-backed pages each tracked process touched first
// since the last Follow, sorted by time. Pages are recorded in BPF (one map
// entry per process and page), not streamed, so a run costs one map read.
func (t *Tracer) Touched() ([]PageTouch, TouchStats, error) {
	if t.coll == nil {
		return nil, TouchStats{}, errors.New("probes: tracer is closed")
	}
	st := TouchStats{Available: t.touchTP}
	if !t.touchTP {
		return nil, st, nil
	}
	var out []PageTouch
	var k initprofTouchKey
	var v initprofTouchVal
	it := t.coll.Maps["touched"].Iterate()
	for it.Next(&k, &v) {
		out = append(out, PageTouch{PID: k.Tgid, TID: v.Tid, Dev: kernelDev(k.Dev), Ino: k.Ino, Index: k.Index,
			Time: v.Ts, Kind: touchKind(v.Flags), Faulted: v.Flags&touchFaulted != 0})
	}
	if err := it.Err(); err != nil {
		return nil, st, fmt.Errorf("probes: reading the touched pages: %w", err)
	}
	d := t.touchDrops()
	st.Dropped, st.Unmapped = d[0]-t.touchBase[0], d[1]-t.touchBase[1]
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time < out[j].Time
		}
		return out[i].Index < out[j].Index
	})
	return out, st, nil
}

func (t *Tracer) touchDrops() [2]uint64 {
	var r [2]uint64
	m := t.coll.Maps["touch_drops"]
	if m == nil {
		return r
	}
	for i := range r {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err == nil {
			for _, v := range per {
				r[i] += v
			}
		}
	}
	return r
}

// clearTouched empties the page map for a new run.
func (t *Tracer) clearTouched() error {
	m := t.coll.Maps["touched"]
	if m == nil || !t.touchTP {
		return nil
	}
	var keys []initprofTouchKey
	var k initprofTouchKey
	var v initprofTouchVal
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		if _, err := m.BatchDelete(keys, nil); err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return err
			}
			for _, k := range keys {
				if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return err
				}
			}
		}
	}
	t.touchBase = t.touchDrops()
	return nil
}

// TouchAvailable says whether the page-touch probes are attached.
func (t *Tracer) TouchAvailable() bool { return t.touchTP }

package probes

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/profile/sample"
)

func TestRestoreReturns(t *testing.T) {
	const sp = 0x7ffe0000
	const tramp = 0x7fffffffe000
	stack := func() []byte {
		b := make([]byte, 64)
		binary.LittleEndian.PutUint64(b[16:], tramp)
		return b
	}
	pair := func(slot, orig uint64) []byte {
		b := make([]byte, 16*sampUretMax)
		binary.LittleEndian.PutUint64(b, slot)
		binary.LittleEndian.PutUint64(b[8:], orig)
		return b
	}
	for _, tc := range []struct {
		name string
		arch sample.Arch
		slot uint64
		n    int
		want uint64
	}{
		{"slot in the copy", sample.AMD64, sp + 16, 1, 0x401234},
		{"no pairs", sample.AMD64, sp + 16, 0, tramp},
		{"slot below SP (stale)", sample.AMD64, sp - 8, 1, tramp},
		{"slot past the copy", sample.AMD64, sp + 64, 1, tramp},
		{"arm64 keeps its copy", sample.ARM64, sp + 16, 1, tramp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample.RawSample{Arch: tc.arch, Regs: sample.Regs{SP: sp}, Stack: stack()}
			restoreReturns(&r, pair(tc.slot, 0x401234), tc.n)
			if got := binary.LittleEndian.Uint64(r.Stack[16:]); got != tc.want {
				t.Errorf("slot holds %#x, want %#x", got, tc.want)
			}
		})
	}
}

// TestBuildImages replays side-band records: a fork copies the parent's
// image, an exec starts an empty one, mappings land in the current image,
// threads change nothing, and Groups pairs each sample with its image.
func TestBuildImages(t *testing.T) {
	m := func(path string, start uint64) sample.Mapping {
		return sample.Mapping{Start: start, End: start + 0x1000, Path: path}
	}
	side := []sideRecord{
		{kind: unix.PERF_RECORD_MMAP2, ts: 30, pid: 2, tid: 2, m: m("/opt/extensions/ext", 0x5000)},
		{kind: unix.PERF_RECORD_FORK, ts: 10, pid: 2, ppid: 1, tid: 2},
		{kind: unix.PERF_RECORD_COMM, ts: 20, pid: 2, tid: 2, exec: true, comm: "ext"},
		{kind: unix.PERF_RECORD_FORK, ts: 25, pid: 2, ppid: 2, tid: 3}, // a thread
		{kind: unix.PERF_RECORD_COMM, ts: 26, pid: 2, tid: 3, comm: "worker"},
	}
	comms := map[uint32]string{}
	images := buildImages(1, []sample.Mapping{m("/platform", 0x400000)}, side, comms)
	if len(images) != 3 {
		t.Fatalf("%d images, want 3 (root, fork copy, exec): %+v", len(images), images)
	}
	if images[1].PID != 2 || len(images[1].Maps) != 1 || images[1].Maps[0].Path != "/platform" {
		t.Errorf("fork image %+v, want pid 2 with the parent's /platform", images[1])
	}
	if images[2].FromNs != 20 || len(images[2].Maps) != 1 || images[2].Maps[0].Path != "/opt/extensions/ext" {
		t.Errorf("exec image %+v, want from 20 with /opt/extensions/ext only", images[2])
	}
	if comms[2] != "ext" {
		t.Errorf("comm of pid 2 %q, want ext (a thread's name is not the process's)", comms[2])
	}
	c := Capture{Images: images, Samples: []sample.RawSample{{PID: 2, MonoNs: 15}, {PID: 2, MonoNs: 40}, {PID: 1, MonoNs: 5}}}
	g := c.Groups()
	// Group k holds each PID's k-th image: pid 1's only image and pid 2's
	// fork copy in 0, pid 2's exec image in 1.
	if len(g) != 2 || len(g[0].Samples) != 2 || g[0].Maps[2][0].Path != "/platform" ||
		len(g[1].Samples) != 1 || g[1].Samples[0].MonoNs != 40 || g[1].Maps[2][0].Path != "/opt/extensions/ext" {
		t.Errorf("groups %+v: want pid 1's sample and pid 2's pre-exec one (with /platform) in 0, its post-exec one (with ext) in 1", g)
	}
}

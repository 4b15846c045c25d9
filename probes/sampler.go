package probes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/capture"
)

// SampleStackBytes is how much user stack each sample copies from SP: enough
// for the deepest init stacks seen (ld.so relocating from _dl_init, the Go
// runtime's scheduler, tokio's builder) while a sample stays under 19 KiB.
const SampleStackBytes = 16384

// Record kinds (REC_* in bpf/sample.bpf.c).
const (
	recCPU       = 0
	recBlocked   = 1
	recPreempted = 2
	recSwitchIn  = 3
)

// Layout of struct samp_rec in bpf/sample.bpf.c.
const (
	sampFrames    = 127
	sampUretMax   = 8
	sampKindOff   = 64 // kind, state (u32 each), then aux (u64)
	sampAuxOff    = 72
	sampUretOff   = 80
	sampUstackOff = sampUretOff + 16*sampUretMax
	sampKstackOff = sampUstackOff + 8*sampFrames
	sampHdrLen    = sampKstackOff + 8*sampFrames // fixed part before the stack bytes
)

// Sampler samples the CPU of one process tree per run: a per-task software
// cpu-clock perf_event with inherit=1 opened on the tree's first process, so
// every thread and child it later forks is sampled from its first instruction
// after exec, with the BPF program initprof_sample recording registers, a copy
// of the user stack and the kernel's FP and kernel stacks into a ring buffer.
//
// Mappings come from the same perf event's own mmap ring buffer, which the
// kernel fills with PERF_RECORD_MMAP2 (every executable mapping, including
// the executable and interpreter exec maps without an mmap syscall), COMM
// (exec) and FORK records, timestamped on CLOCK_MONOTONIC like the samples.
// That is how perf record learns mappings, and it beats reading
// /proc/PID/maps on events: a short-lived process can exit before the host
// reads its maps, and a library mapped and used between two reads is missed.
//
// Load the program once per build (NewSampler), then Follow and Collect once
// per run.
type Sampler struct {
	hz     int
	offCPU bool
	objs   samplerObjects
	rd     *ringbuf.Reader
	// The off-CPU programs' links (global tracepoints), when offCPU.
	swLinks []link.Link

	// Per run.
	fds     []int
	lnks    []link.Link
	mems    [][]byte
	side    []sideRecord
	raws    []capture.RawSample
	outs    []capture.RawSample // off-CPU switch-outs, waiting for their switch-in
	ins     map[switchKey]int64
	initial []capture.Mapping
	root    uint32
	lost    uint64
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
}

// SamplerOptions configure a Sampler.
type SamplerOptions struct {
	// Hz is the sampling rate per thread on CPU (cpu-clock period 1e9/Hz ns).
	Hz int
	// OffCPU also records off-CPU samples: each time a thread of a process
	// the followed one forks (directly or not; the followed one itself is the
	// platform and is left out) leaves the CPU, its stacks, weighted by how
	// long it stayed off (sched_switch, both ways).
	OffCPU bool
}

// switchKey pairs a switch-in with the switch-out it ends.
type switchKey struct {
	tid uint32
	out int64
}

// Capture is what one sampled run recorded.
type Capture struct {
	// Root is the followed process (a sandbox's first process: the platform).
	Root    uint32
	Samples []capture.RawSample
	// OffCPU are the off-CPU samples (SamplerOptions.OffCPU), in time order:
	// each a switch-out paired with its switch-in. A thread still off the
	// CPU when sampling stopped has none.
	OffCPU []capture.RawSample
	// Images are the memory maps of every process, one per exec (or fork),
	// in time order per PID; ImagesAt pairs samples with them.
	Images []Image
	Comms  map[uint32]string
	// Taken counts the samples the program ran for; Dropped those that did
	// not fit the ring buffer; LostSide the side-band records (mappings) the
	// perf ring lost. OffCPUTaken and OffCPUDropped count switch-outs.
	Taken, Dropped, LostSide   uint64
	OffCPUTaken, OffCPUDropped uint64
}

// Image is the executable mappings of process PID from FromNs until its next
// Image: a process image after exec, or the parent's copy after fork.
type Image struct {
	PID    uint32
	FromNs int64
	Maps   []capture.Mapping
}

// Group is samples that share one memory map per PID.
type Group struct {
	Samples []capture.RawSample
	Maps    map[uint32][]capture.Mapping
}

// Groups splits the samples so each is unwound against the image its process
// had when it was taken: the k-th group holds, for every PID, the samples
// taken during its k-th image. A child between fork and exec runs its
// parent's code, and after exec the same PID runs another binary.
func (c *Capture) Groups() []Group { return c.GroupsOf(c.Samples) }

// GroupsOf is Groups for other samples of the same capture (c.OffCPU).
func (c *Capture) GroupsOf(samples []capture.RawSample) []Group {
	byPID := map[uint32][]Image{}
	for _, im := range c.Images {
		byPID[im.PID] = append(byPID[im.PID], im)
	}
	var groups []Group
	for _, s := range samples {
		ims := byPID[s.PID]
		k := 0
		for i, im := range ims {
			if im.FromNs <= s.MonoNs {
				k = i
			}
		}
		for len(groups) <= k {
			groups = append(groups, Group{Maps: map[uint32][]capture.Mapping{}})
		}
		g := &groups[k]
		g.Samples = append(g.Samples, s)
		if _, ok := g.Maps[s.PID]; !ok && k < len(ims) {
			g.Maps[s.PID] = ims[k].Maps
		}
	}
	return groups
}

// NewSampler loads the sampling program. It needs CAP_BPF and CAP_PERFMON.
func NewSampler(opts SamplerOptions) (*Sampler, error) {
	if opts.Hz < 1 || opts.Hz > 100000 {
		return nil, fmt.Errorf("probes: sampling rate %d Hz: use 1 to 100000", opts.Hz)
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return nil, fmt.Errorf("probes: sampling is built for amd64 and arm64, not %s", runtime.GOARCH)
	}
	_ = rlimit.RemoveMemlock()
	s := &Sampler{hz: opts.Hz, offCPU: opts.OffCPU}
	if err := loadSamplerObjects(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if !errors.As(err, &ve) && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
			return nil, fmt.Errorf("%w: loading the sampler: %v", ErrPermission, err)
		}
		return nil, fmt.Errorf("probes: loading the sampler: %w", err)
	}
	rd, err := ringbuf.NewReader(s.objs.SampRing)
	if err != nil {
		s.objs.Close()
		return nil, fmt.Errorf("probes: sampler ring buffer: %w", err)
	}
	s.rd = rd
	if opts.OffCPU {
		// Attached once per build; they do nothing until Follow sets
		// samp_cfg[0] and a tgid.
		for _, p := range []*ebpf.Program{s.objs.InitprofSampleFork, s.objs.InitprofSampleSwitch} {
			l, err := link.AttachTracing(link.TracingOptions{Program: p})
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("probes: attaching the off-CPU sampler (tp_btf): %w", err)
			}
			s.swLinks = append(s.swLinks, l)
		}
	}
	return s, nil
}

// Hz is the sampling rate.
func (s *Sampler) Hz() int { return s.hz }

// ProgramID is the kernel ID of the sampling program (for leak checks).
func (s *Sampler) ProgramID() (ebpf.ProgramID, error) {
	info, err := s.objs.InitprofSample.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return id, nil
}

const sideRingPages = 256 // 1 MiB of side-band records: thousands of mappings

// Follow starts sampling pid and everything it forks from now on. Call it
// before the process runs the code to profile (e.g. between create and start
// of a container); its current mappings are read from /proc now.
//
// The event is opened once per CPU (pid, cpu, inherit=1), as perf record
// does: the kernel refuses to mmap an inherited event that spans all CPUs,
// and the mmap ring is where the mappings arrive.
func (s *Sampler) Follow(pid int) (err error) {
	if s.fds != nil {
		return errors.New("probes: the sampler already follows a process; Collect first")
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("probes: counting CPUs: %w", err)
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_CPU_CLOCK,
		Sample:      uint64(1e9 / s.hz),
		Sample_type: unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME,
		Bits: unix.PerfBitInherit | unix.PerfBitMmap | unix.PerfBitMmap2 | unix.PerfBitComm |
			unix.PerfBitCommExec | unix.PerfBitTask | unix.PerfBitSampleIDAll | unix.PerfBitUseClockID,
		Clockid: unix.CLOCK_MONOTONIC,
		Wakeup:  1,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	page := os.Getpagesize()
	s.fds = []int{}
	// Every thread that exists now (a process sandbox's platform is a Go
	// program with threads already running; a container's first process has
	// one): inherit covers only what a followed thread creates later. The
	// first thread's event on each CPU owns that CPU's ring, the others write
	// into it (PERF_EVENT_IOC_SET_OUTPUT).
	// A thread created while this runs, by a thread not yet opened, would
	// escape inherit: list the threads again until a pass finds none new.
	ring := map[int]int{} // cpu → fd owning the ring
	opened := map[int]bool{}
	for pass := 0; pass < 100; pass++ {
		var tids []int
		for _, tid := range threadsOf(pid) {
			if !opened[tid] {
				tids = append(tids, tid)
				opened[tid] = true
			}
		}
		if len(tids) == 0 {
			break
		}
		for _, tid := range tids {
			for cpu := 0; cpu < ncpu; cpu++ {
				fd, err := unix.PerfEventOpen(&attr, tid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
				if errors.Is(err, unix.ENODEV) {
					continue // an offline CPU
				}
				if errors.Is(err, unix.ESRCH) && tid != pid {
					break // the thread exited meanwhile
				}
				if err != nil {
					if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
						return fmt.Errorf("%w: perf_event_open(cpu-clock) on pid %d: %v", ErrPermission, pid, err)
					}
					return fmt.Errorf("probes: perf_event_open(cpu-clock) on pid %d, cpu %d: %w", tid, cpu, err)
				}
				s.fds = append(s.fds, fd)
				if owner, ok := ring[cpu]; ok {
					if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, owner); err != nil {
						return fmt.Errorf("probes: sharing the perf ring of cpu %d: %w", cpu, err)
					}
				} else {
					mem, err := unix.Mmap(fd, 0, page*(1+sideRingPages), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
					if err != nil {
						return fmt.Errorf("probes: mapping the sampler's perf ring (cpu %d): %w", cpu, err)
					}
					s.mems = append(s.mems, mem)
					ring[cpu] = fd
				}
				l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: s.objs.InitprofSample, Attach: ebpf.AttachPerfEvent})
				if err != nil {
					return fmt.Errorf("probes: attaching the sampler to pid %d: %w", pid, err)
				}
				s.lnks = append(s.lnks, l)
			}
		}
	}
	if len(s.fds) == 0 {
		return errors.New("probes: no online CPU accepted a cpu-clock perf event")
	}
	s.root = uint32(pid)
	s.initial, _ = capture.ReadProcMaps(pid)
	s.side, s.raws, s.outs, s.ins, s.lost = nil, nil, nil, map[switchKey]int64{}, 0
	s.resetStats()
	if s.offCPU {
		if err := s.followOffCPU(uint32(pid)); err != nil {
			return err
		}
	}
	s.stop = make(chan struct{})
	s.wg.Add(2)
	go s.readSamples()
	go s.readSide()
	return nil
}

// followOffCPU seeds the off-CPU tree with pid, whose own switches are not
// recorded (it is the platform; its descendants are the extensions and the
// runtime), and switches recording on.
func (s *Sampler) followOffCPU(pid uint32) error {
	if err := clearMap(s.objs.SampTgids); err != nil {
		return fmt.Errorf("probes: off-CPU sampler: %w", err)
	}
	if err := clearMap(s.objs.SampOff); err != nil {
		return fmt.Errorf("probes: off-CPU sampler: %w", err)
	}
	if err := s.objs.SampTgids.Put(pid, uint8(2)); err != nil {
		return fmt.Errorf("probes: off-CPU sampler: %w", err)
	}
	return s.objs.SampCfg.Put(uint32(0), uint32(1))
}

// threadsOf lists the threads of pid (just pid when /proc says nothing).
func threadsOf(pid int) []int {
	tids := []int{pid}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		var tid int
		if _, err := fmt.Sscan(e.Name(), &tid); err == nil && tid != pid {
			tids = append(tids, tid)
		}
	}
	return tids
}

// release closes the per-run links, rings and perf events.
func (s *Sampler) release() error {
	var errs []error
	for _, l := range s.lnks {
		errs = append(errs, l.Close())
	}
	for _, m := range s.mems {
		errs = append(errs, unix.Munmap(m))
	}
	for _, fd := range s.fds {
		errs = append(errs, unix.Close(fd))
	}
	s.fds, s.mems, s.lnks = nil, nil, nil
	return errors.Join(errs...)
}

func (s *Sampler) resetStats() {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return
	}
	zero := make([]uint64, ncpu)
	for k := uint32(0); k < 4; k++ {
		_ = s.objs.SampStats.Put(k, zero)
	}
}

// stats sums the per-CPU counters: samples taken and dropped, off-CPU
// switch-outs taken and dropped.
func (s *Sampler) stats() (c [4]uint64) {
	var vals []uint64
	for k := range c {
		if s.objs.SampStats.Lookup(uint32(k), &vals) == nil {
			for _, v := range vals {
				c[k] += v
			}
		}
	}
	return c
}

// readSamples drains the BPF ring buffer while the run goes, so a long init
// at a high rate does not fill it.
func (s *Sampler) readSamples() {
	defer s.wg.Done()
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		r, kind, ok := parseSampleRecord(rec.RawSample)
		if !ok {
			continue
		}
		s.mu.Lock()
		switch kind {
		case recCPU:
			s.raws = append(s.raws, r)
		case recBlocked, recPreempted:
			r.Runnable = kind == recPreempted
			s.outs = append(s.outs, r)
		case recSwitchIn:
			// r.MonoNs is the switch-in; OffCPUNs carries the switch-out.
			s.ins[switchKey{r.TID, r.OffCPUNs}] = r.MonoNs
		}
		s.mu.Unlock()
	}
}

func (s *Sampler) readSide() {
	defer s.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.drainSide()
			return
		case <-t.C:
			s.drainSide()
		}
	}
}

// Collect stops sampling (closing the perf event, whose inherited copies go
// with it) and returns what the run recorded.
func (s *Sampler) Collect() (*Capture, error) {
	if s.fds == nil {
		return nil, errors.New("probes: the sampler follows no process")
	}
	var lerr error
	for _, l := range s.lnks {
		lerr = errors.Join(lerr, l.Close())
	}
	s.lnks = nil
	if s.offCPU {
		lerr = errors.Join(lerr, s.objs.SampCfg.Put(uint32(0), uint32(0)))
	}
	close(s.stop)
	// Everything written before the links closed is in the ring: read to empty.
	_ = s.rd.Flush()
	s.wg.Wait()
	cerr := s.release()
	c := &Capture{Root: s.root, Comms: map[uint32]string{}, LostSide: s.lost}
	st := s.stats()
	c.Taken, c.Dropped, c.OffCPUTaken, c.OffCPUDropped = st[0], st[1], st[2], st[3]
	c.Samples = s.raws
	sort.SliceStable(c.Samples, func(i, j int) bool { return c.Samples[i].MonoNs < c.Samples[j].MonoNs })
	c.OffCPU = pairOffCPU(s.outs, s.ins)
	c.Images = buildImages(s.root, s.initial, s.side, c.Comms)
	s.raws, s.side, s.outs, s.ins = nil, nil, nil, nil
	return c, errors.Join(lerr, cerr)
}

// pairOffCPU gives each switch-out the time until its switch-in, in time
// order; a switch-out without one (the thread was still off the CPU, or
// exited, when sampling stopped) is left out: its length is unknown.
func pairOffCPU(outs []capture.RawSample, ins map[switchKey]int64) []capture.RawSample {
	var done []capture.RawSample
	for _, r := range outs {
		if in, ok := ins[switchKey{r.TID, r.MonoNs}]; ok && in > r.MonoNs {
			r.OffCPUNs = in - r.MonoNs
			done = append(done, r)
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].MonoNs < done[j].MonoNs })
	return done
}

// Close unloads the program. Collect a followed run first.
func (s *Sampler) Close() error {
	var errs []error
	if s.fds != nil {
		_, err := s.Collect()
		errs = append(errs, err)
	}
	for _, l := range s.swLinks {
		errs = append(errs, l.Close())
	}
	s.swLinks = nil
	errs = append(errs, s.rd.Close(), s.objs.Close())
	return errors.Join(errs...)
}

// parseSampleRecord decodes one ring record and its kind (rec*). A switch-in
// record carries its switch-out time in OffCPUNs.
func parseSampleRecord(b []byte) (capture.RawSample, int, bool) {
	le := binary.LittleEndian
	if len(b) < sampUretOff {
		return capture.RawSample{}, 0, false
	}
	kind := int(le.Uint32(b[sampKindOff:]))
	r := capture.RawSample{
		MonoNs: int64(le.Uint64(b)),
		PID:    le.Uint32(b[8:]),
		TID:    le.Uint32(b[12:]),
		Arch:   capture.Arch(runtime.GOARCH),
		Regs:   capture.Regs{IP: le.Uint64(b[16:]), SP: le.Uint64(b[24:]), BP: le.Uint64(b[32:]), LR: le.Uint64(b[40:])},
	}
	if kind == recSwitchIn {
		r.OffCPUNs = int64(le.Uint64(b[sampAuxOff:]))
		return r, kind, true
	}
	if len(b) < sampHdrLen {
		return capture.RawSample{}, 0, false
	}
	n := int(le.Uint32(b[48:]))
	if n > len(b)-sampHdrLen {
		n = len(b) - sampHdrLen
	}
	r.Stack = append([]byte(nil), b[sampHdrLen:sampHdrLen+n]...)
	restoreReturns(&r, b[sampUretOff:sampUstackOff], int(le.Uint32(b[60:])))
	r.FPStack = frames(b[sampUstackOff:sampKstackOff], int32(le.Uint32(b[52:])))
	r.KStack = frames(b[sampKstackOff:sampHdrLen], int32(le.Uint32(b[56:])))
	return r, kind, true
}

// restoreReturns undoes the uretprobes' hijack in the stack copy: each pair
// is the stack slot where the probed function's return address was, now the
// uprobe trampoline's address, and the return address it replaced. That is
// where x86-64 keeps a return address at function entry; on arm64 the hijack
// is of LR, which the function spills wherever its prologue chooses, so it is
// not restored (unwinding stops at the trampoline there).
func restoreReturns(r *capture.RawSample, b []byte, n int) {
	if r.Arch != capture.AMD64 {
		return
	}
	le := binary.LittleEndian
	for i := 0; i < n && i < sampUretMax; i++ {
		slot, orig := le.Uint64(b[16*i:]), le.Uint64(b[16*i+8:])
		if slot >= r.Regs.SP && slot+8 > slot && slot+8 <= r.Regs.SP+uint64(len(r.Stack)) {
			le.PutUint64(r.Stack[slot-r.Regs.SP:], orig)
		}
	}
}

func frames(b []byte, n int32) []uint64 {
	if n <= 0 {
		return nil
	}
	if int(n) > len(b) {
		n = int32(len(b))
	}
	out := make([]uint64, 0, n/8)
	for i := 0; i+8 <= int(n); i += 8 {
		if a := binary.LittleEndian.Uint64(b[i:]); a != 0 {
			out = append(out, a)
		}
	}
	return out
}

// sideRecord is one side-band record of the perf ring: what buildImages needs.
type sideRecord struct {
	kind     uint32
	ts       int64
	pid, tid uint32
	ppid     uint32 // fork
	exec     bool   // comm from exec
	comm     string
	m        capture.Mapping
}

const (
	miscCommExec = 1 << 13
	miscBuildID  = 1 << 14
)

func (s *Sampler) drainSide() {
	for _, m := range s.mems {
		s.drainRing(m)
	}
}

func (s *Sampler) drainRing(mem []byte) {
	meta, data := mem[:os.Getpagesize()], mem[os.Getpagesize():]
	headp := (*uint64)(unsafe.Pointer(&meta[1024]))
	tailp := (*uint64)(unsafe.Pointer(&meta[1032]))
	head := atomic.LoadUint64(headp)
	tail := atomic.LoadUint64(tailp)
	size := uint64(len(data))
	read := func(off, n uint64) []byte {
		out := make([]byte, n)
		start := off % size
		k := copy(out, data[start:])
		if uint64(k) < n {
			copy(out[k:], data[:n-uint64(k)])
		}
		return out
	}
	for tail < head {
		hdr := read(tail, 8)
		typ := binary.LittleEndian.Uint32(hdr)
		misc := binary.LittleEndian.Uint16(hdr[4:])
		sz := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if sz < 8 || tail+sz > head {
			break
		}
		if r, ok := parseSide(typ, misc, read(tail+8, sz-8)); ok {
			s.side = append(s.side, r)
		} else if typ == unix.PERF_RECORD_LOST {
			if b := read(tail+8, sz-8); len(b) >= 16 {
				s.lost += binary.LittleEndian.Uint64(b[8:])
			}
		}
		tail += sz
	}
	atomic.StoreUint64(tailp, tail)
}

// parseSide decodes MMAP2, COMM and FORK records. Each ends with the
// sample_id trailer of sample_type TID|TIME: pid, tid, time.
func parseSide(typ uint32, misc uint16, b []byte) (sideRecord, bool) {
	le := binary.LittleEndian
	if len(b) < 24 {
		return sideRecord{}, false
	}
	r := sideRecord{kind: typ, ts: int64(le.Uint64(b[len(b)-8:]))}
	cstr := func(x []byte) string {
		for i, c := range x {
			if c == 0 {
				return string(x[:i])
			}
		}
		return string(x)
	}
	switch typ {
	case unix.PERF_RECORD_MMAP2:
		if len(b) < 64+16 {
			return r, false
		}
		r.pid, r.tid = le.Uint32(b), le.Uint32(b[4:])
		addr, ln, pgoff := le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])
		r.m = capture.Mapping{Start: addr, End: addr + ln, Offset: pgoff}
		if misc&miscBuildID != 0 {
			n := int(b[32])
			if n > 20 {
				n = 20
			}
			r.m.BuildID = fmt.Sprintf("%x", b[36:36+n])
		} else {
			r.m.Inode = le.Uint64(b[40:])
		}
		if le.Uint32(b[56:])&unix.PROT_EXEC == 0 {
			return r, false
		}
		r.m.Path = cstr(b[64 : len(b)-16])
		if len(r.m.Path) == 0 || r.m.Path[0] != '/' || strings.HasPrefix(r.m.Path, "/dev/") {
			return r, false // anonymous, [vdso] or a device: no file to read
		}
	case unix.PERF_RECORD_COMM:
		r.pid, r.tid = le.Uint32(b), le.Uint32(b[4:])
		r.exec = misc&miscCommExec != 0
		r.comm = cstr(b[8 : len(b)-16])
	case unix.PERF_RECORD_FORK:
		if len(b) < 24+16 {
			return r, false
		}
		r.pid, r.ppid, r.tid = le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
		r.ts = int64(le.Uint64(b[16:]))
	default:
		return r, false
	}
	return r, true
}

// buildImages replays the side-band records in time order into each process's
// succession of images: the root's mappings as read at Follow, a fork's copy
// of its parent's, a fresh one at each exec, then its MMAP2 records.
func buildImages(root uint32, initial []capture.Mapping, side []sideRecord, comms map[uint32]string) []Image {
	sort.SliceStable(side, func(i, j int) bool { return side[i].ts < side[j].ts })
	var images []Image
	cur := map[uint32]int{} // pid → index in images of its current image
	images = append(images, Image{PID: root, Maps: initial})
	cur[root] = 0
	for _, r := range side {
		switch r.kind {
		case unix.PERF_RECORD_FORK:
			if r.pid == r.ppid {
				continue // a thread
			}
			var maps []capture.Mapping
			if i, ok := cur[r.ppid]; ok {
				maps = append(maps, images[i].Maps...)
			}
			images = append(images, Image{PID: r.pid, FromNs: r.ts, Maps: maps})
			cur[r.pid] = len(images) - 1
			if c, ok := comms[r.ppid]; ok {
				comms[r.pid] = c
			}
		case unix.PERF_RECORD_COMM:
			if r.pid != r.tid {
				continue // a thread's name
			}
			comms[r.pid] = r.comm
			if r.exec {
				images = append(images, Image{PID: r.pid, FromNs: r.ts})
				cur[r.pid] = len(images) - 1
			}
		case unix.PERF_RECORD_MMAP2:
			i, ok := cur[r.pid]
			if !ok {
				images = append(images, Image{PID: r.pid, FromNs: r.ts})
				i = len(images) - 1
				cur[r.pid] = i
			}
			images[i].Maps = append(images[i].Maps, r.m)
		}
	}
	return images
}

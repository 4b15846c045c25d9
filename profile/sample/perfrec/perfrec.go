// Package perfrec captures real CPU samples of a command with a software
// cpu-clock perf_event (perf_event_open and its mmap ring buffer), in exactly
// the form the BPF sampler produces: user registers, a copy of the user stack,
// the kernel's frame-pointer callchain, and the process's executable mappings
// (PERF_RECORD_MMAP2). It needs no BPF, so the unwinder, symbolizer and every
// output can be tested on genuine stacks, and it is a fallback sampler where
// BPF is unavailable.
//
// The command is started under /bin/sh, which waits on a pipe; the event is
// opened on that shell with enable_on_exec, and the shell then execs the
// command, so sampling starts at the command's first instruction (in ld.so).
package perfrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/profile/sample"
)

// StackBytes is how much user stack each sample copies.
const StackBytes = 16384

// Recording is what a run captured.
type Recording struct {
	Samples  []sample.RawSample
	Mappings map[uint32][]sample.Mapping // by pid
	Comms    map[uint32]string           // process names by pid
	Lost     uint64                      // samples the ring buffer dropped
	Err      error                       // the command's exit status
}

type archRegs struct {
	mask           uint64
	ip, sp, bp, lr int // index in the sampled register list; -1 absent
	arch           sample.Arch
}

func regsForArch() (archRegs, error) {
	switch runtime.GOARCH {
	case "amd64":
		// PERF_REG_X86_BP=6, SP=7, IP=8: sampled in bit order BP, SP, IP.
		return archRegs{mask: 1<<6 | 1<<7 | 1<<8, bp: 0, sp: 1, ip: 2, lr: -1, arch: sample.AMD64}, nil
	case "arm64":
		// PERF_REG_ARM64_X29=29, LR=30, SP=31, PC=32.
		return archRegs{mask: 1<<29 | 1<<30 | 1<<31 | 1<<32, bp: 0, lr: 1, sp: 2, ip: 3, arch: sample.ARM64}, nil
	}
	return archRegs{}, fmt.Errorf("perfrec: unsupported architecture %s", runtime.GOARCH)
}

// Run runs cmd (not yet started; Stdout/Stderr/Env are honoured) and samples
// it at hz until it exits. It needs CAP_PERFMON or perf_event_paranoid <= 1.
func Run(cmd *exec.Cmd, hz uint64) (*Recording, error) {
	ar, err := regsForArch()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"-c", `read _ && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
	sh := exec.Command("/bin/sh", argv...)
	sh.Env, sh.Dir, sh.Stdout, sh.Stderr = cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr
	w, err := sh.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := sh.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	pid := sh.Process.Pid
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Sample: hz,
		Sample_type: unix.PERF_SAMPLE_IP | unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME |
			unix.PERF_SAMPLE_CALLCHAIN | unix.PERF_SAMPLE_REGS_USER | unix.PERF_SAMPLE_STACK_USER,
		Bits: unix.PerfBitDisabled | unix.PerfBitEnableOnExec | unix.PerfBitFreq |
			unix.PerfBitMmap | unix.PerfBitMmap2 | unix.PerfBitComm | unix.PerfBitCommExec |
			unix.PerfBitUseClockID,
		Sample_regs_user:  ar.mask,
		Sample_stack_user: StackBytes,
		Clockid:           unix.CLOCK_MONOTONIC,
		Wakeup:            1,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, pid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		_ = sh.Process.Kill()
		_ = sh.Wait()
		return nil, fmt.Errorf("perf_event_open on pid %d: %w (needs root or perf_event_paranoid <= 1)", pid, err)
	}
	defer unix.Close(fd)
	page := os.Getpagesize()
	const dataPages = 4096 // 16 MiB: ~1000 samples of 16 KiB between drains
	mem, err := unix.Mmap(fd, 0, page*(1+dataPages), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = sh.Process.Kill()
		_ = sh.Wait()
		return nil, fmt.Errorf("mmap perf ring buffer: %w", err)
	}
	defer unix.Munmap(mem)
	rec := &Recording{Mappings: map[uint32][]sample.Mapping{}, Comms: map[uint32]string{}}
	rb := ring{meta: mem[:page], data: mem[page:]}
	if _, err := w.Write([]byte("go\n")); err != nil {
		return nil, fmt.Errorf("release %s: %w", cmd.Path, err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	for {
		select {
		case err := <-done:
			rb.drain(rec, ar)
			rec.Err = err
			return rec, nil
		case <-time.After(2 * time.Millisecond):
			rb.drain(rec, ar)
		}
	}
}

type ring struct {
	meta, data []byte
}

func (r *ring) drain(rec *Recording, ar archRegs) {
	headp := (*uint64)(unsafe.Pointer(&r.meta[1024]))
	tailp := (*uint64)(unsafe.Pointer(&r.meta[1032]))
	head := atomic.LoadUint64(headp)
	tail := atomic.LoadUint64(tailp)
	size := uint64(len(r.data))
	for tail < head {
		hdr := r.read(tail, 8)
		typ := binary.LittleEndian.Uint32(hdr)
		sz := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if sz < 8 || sz > size {
			break
		}
		body := r.read(tail+8, sz-8)
		switch typ {
		case unix.PERF_RECORD_SAMPLE:
			if s, err := parseSample(body, ar); err == nil {
				rec.Samples = append(rec.Samples, s)
			}
		case unix.PERF_RECORD_MMAP2:
			if pid, m, ok := parseMmap2(body, binary.LittleEndian.Uint16(hdr[4:])); ok {
				rec.Mappings[pid] = append(rec.Mappings[pid], m)
			}
		case unix.PERF_RECORD_COMM:
			if len(body) > 8 {
				pid := binary.LittleEndian.Uint32(body)
				name := body[8:]
				for i, c := range name {
					if c == 0 {
						name = name[:i]
						break
					}
				}
				rec.Comms[pid] = string(name)
			}
		case unix.PERF_RECORD_LOST:
			if len(body) >= 16 {
				rec.Lost += binary.LittleEndian.Uint64(body[8:])
			}
		}
		tail += sz
	}
	atomic.StoreUint64(tailp, tail)
}

func (r *ring) read(off, n uint64) []byte {
	size := uint64(len(r.data))
	start := off % size
	out := make([]byte, n)
	if start+n <= size {
		copy(out, r.data[start:start+n])
	} else {
		k := copy(out, r.data[start:])
		copy(out[k:], r.data[:n-uint64(k)])
	}
	return out
}

var errShort = errors.New("short sample record")

const contextMax = ^uint64(0) - 4095 // PERF_CONTEXT_MAX
const (
	contextKernel = ^uint64(0) - 127 // PERF_CONTEXT_KERNEL (-128)
	contextUser   = ^uint64(0) - 511 // PERF_CONTEXT_USER (-512)
)

func parseSample(b []byte, ar archRegs) (sample.RawSample, error) {
	var s sample.RawSample
	s.Arch = ar.arch
	le := binary.LittleEndian
	p := 0
	need := func(n int) bool { return p+n <= len(b) }
	u64 := func() uint64 { v := le.Uint64(b[p:]); p += 8; return v }
	if !need(8 + 8 + 8 + 8) {
		return s, errShort
	}
	_ = u64() // ip
	s.PID = le.Uint32(b[p:])
	s.TID = le.Uint32(b[p+4:])
	p += 8
	s.MonoNs = int64(u64())
	nr := int(u64())
	if nr < 0 || !need(8*nr) {
		return s, errShort
	}
	ctx := uint64(0)
	for i := 0; i < nr; i++ {
		ip := u64()
		if ip >= contextMax {
			ctx = ip
			continue
		}
		switch ctx {
		case contextKernel:
			s.KStack = append(s.KStack, ip)
		case contextUser:
			s.FPStack = append(s.FPStack, ip)
		}
	}
	if !need(8) {
		return s, errShort
	}
	abi := u64()
	if abi != 0 {
		n := bits.OnesCount64(ar.mask)
		if !need(8 * n) {
			return s, errShort
		}
		regs := make([]uint64, n)
		for i := range regs {
			regs[i] = u64()
		}
		s.Regs.IP, s.Regs.SP, s.Regs.BP = regs[ar.ip], regs[ar.sp], regs[ar.bp]
		if ar.lr >= 0 {
			s.Regs.LR = regs[ar.lr]
		}
	}
	if !need(8) {
		return s, errShort
	}
	size := int(u64())
	if size > 0 {
		if !need(size + 8) {
			return s, errShort
		}
		data := b[p : p+size]
		p += size
		dyn := int(u64())
		if dyn < len(data) {
			data = data[:dyn]
		}
		s.Stack = append([]byte(nil), data...)
	}
	return s, nil
}

const miscMmapBuildID = 1 << 14

func parseMmap2(b []byte, misc uint16) (uint32, sample.Mapping, bool) {
	le := binary.LittleEndian
	if len(b) < 8+24+24+8+1 {
		return 0, sample.Mapping{}, false
	}
	pid := le.Uint32(b)
	addr, ln, pgoff := le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])
	m := sample.Mapping{Start: addr, End: addr + ln, Offset: pgoff}
	u := b[32:56]
	if misc&miscMmapBuildID != 0 {
		n := int(u[0])
		if n > 20 {
			n = 20
		}
		m.BuildID = fmt.Sprintf("%x", u[4:4+n])
	} else {
		m.Inode = le.Uint64(u[8:])
	}
	prot := le.Uint32(b[56:])
	name := b[64:]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	m.Path = string(name)
	if prot&unix.PROT_EXEC == 0 {
		return 0, m, false
	}
	return pid, m, true
}

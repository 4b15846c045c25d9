// Package capture defines the records initprof's probes capture from the
// kernel before any modelling: CPU and off-CPU samples with their registers
// and stack copies, and the executable mappings of the process they came
// from. It sits below both the capture side (probes) and the model
// (profile/sample aliases these types), so neither depends on the other, as
// google/pprof keeps its driver and its profile format apart.
package capture

// Arch names the register set of a sample.
type Arch string

// Architectures whose stacks can be unwound.
const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// Regs are the user registers at the moment of the sample: exactly the ones
// unwinding needs. On amd64 IP, SP and BP are used; on arm64 PC (in IP), SP,
// FP (x29, in BP) and LR (x30).
type Regs struct {
	IP, SP, BP uint64
	LR         uint64 // arm64 only
}

// RawSample is one CPU sample as captured, before unwinding.
type RawSample struct {
	MonoNs   int64 // CLOCK_MONOTONIC ns (bpf_ktime_get_ns)
	PID, TID uint32
	Arch     Arch // empty means amd64
	Regs     Regs
	// Stack is a copy of the user stack starting at Regs.SP (8–16 KiB). Reads
	// outside it end the unwind: the memory is gone once the process exits.
	Stack []byte
	// FPStack is the user stack walked by frame pointers in the kernel
	// (bpf_get_stack / perf callchain), leaf first. Used when CFI fails.
	FPStack []uint64
	// KStack holds the kernel instruction pointers, leaf first.
	KStack []uint64
	// OffCPUNs makes this an off-CPU sample: the thread left the CPU at
	// MonoNs, with these registers and stacks, for OffCPUNs ns. 0: a CPU
	// sample.
	OffCPUNs int64
	// Runnable marks an off-CPU sample whose thread was preempted, still
	// runnable (CPU contention, the cgroup's CPU quota), not waiting.
	Runnable bool
}

// Mapping is one executable mapping of a process, captured while the process
// is alive (from /proc/PID/maps at exec and mmap time, or PERF_RECORD_MMAP2), so
// that symbols still resolve after it exits.
type Mapping struct {
	Start, End, Offset uint64
	Path               string
	BuildID            string // hex GNU build-id, when known
	Inode              uint64
}

// Contains says whether addr falls inside the mapping.
func (m Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.End }

// Find returns the mapping holding addr, or nil. Later mappings win, so a
// list built from mmap events in order reflects remaps.
func Find(maps []Mapping, addr uint64) *Mapping {
	for i := len(maps) - 1; i >= 0; i-- {
		if maps[i].Contains(addr) {
			return &maps[i]
		}
	}
	return nil
}

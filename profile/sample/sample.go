// Package sample defines what a CPU sample is on its way from the kernel to a
// flamegraph: the raw capture the BPF sampler (or a perf_event ring buffer)
// fills, the memory map of the process it came from, and the symbolized stack
// the outputs consume. It is a package of its own so the capture side
// (probes), the unwinder and every output agree on one format without
// depending on each other.
package sample

import "strings"

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

// Frame is one symbolized stack frame.
type Frame struct {
	Addr    uint64 // the instruction address (for callers, the return address)
	Func    string // demangled function name; "" when unknown
	File    string // source file, when known
	Line    int    // source line, when known
	Module  string // path of the ELF file, "[kernel]" for kernel frames
	Kernel  bool
	Inlined bool // this frame was inlined into the next (caller) frame
	Mapping *Mapping
	Offset  uint64 // address relative to the ELF file (for unknown symbols)
}

// Name is the frame's display name: its function, or module+offset when the
// symbol is unknown, so an unknown frame still tells where it was.
func (f Frame) Name() string {
	if f.Func != "" {
		return f.Func
	}
	if f.Module != "" {
		base := f.Module
		if i := strings.LastIndexByte(base, '/'); i >= 0 {
			base = base[i+1:]
		}
		return base + "+0x" + hex(f.Offset)
	}
	return "0x" + hex(f.Addr)
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b [16]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[i:])
}

// Stack is one symbolized sample with the labels every output carries.
type Stack struct {
	MonoNs   int64
	PID, TID uint32
	// Frames, leaf first: kernel frames (if any), then user frames.
	Frames []Frame
	// Complete says the user stack unwound to a root frame: a known entry
	// function (IsRoot) or a frame whose CFI marks the return address
	// undefined (the ABI's outermost-frame marker, which stripped binaries keep).
	Complete bool
	// Method says how the user stack was unwound: "cfi", "fp", "fp-kernel" or "".
	Method string
	// Labels, copied into pprof sample labels.
	Process string // process name (extension name, "runtime")
	Phase   string // phase name at MonoNs (profile.PhaseAt)
	Run     string // run index
	Build   string // build name
	// Weight is the time the sample stands for, in ns (1e9 / sampling rate;
	// an off-CPU sample's time off the CPU).
	Weight int64
	// OffCPU marks an off-CPU sample (its leaf frame says blocked or runnable).
	OffCPU bool
}

// Leaf frames an off-CPU stack gets above its kernel frames, so flamegraphs
// tell waiting from being preempted.
const (
	FrameBlocked  = "[off-CPU: blocked]"
	FrameRunnable = "[off-CPU: runnable]"
)

// roots are the functions where a thread's stack begins. A stack whose
// outermost frame is one of them was unwound completely.
var roots = map[string]bool{
	"_start":                 true,
	"__libc_start_main":      true,
	"__libc_start_call_main": true,
	"_dl_start_user":         true,
	"_dl_start":              true,
	"runtime.goexit":         true,
	"runtime.rt0_go":         true,
	"runtime.mstart":         true,
	"runtime.mstart0":        true,
	"start_thread":           true,
	"clone3":                 true,
	"__clone3":               true,
	"clone":                  true,
	"__clone":                true,
	"_rt0_amd64_linux":       true,
	"_rt0_arm64_linux":       true,
}

// IsRoot says whether fn is a frame a thread's stack starts from.
func IsRoot(fn string) bool { return roots[fn] }

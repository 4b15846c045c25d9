// Package sample defines what a CPU sample is on its way from the kernel to a
// flamegraph: the raw capture the BPF sampler (or a perf_event ring buffer)
// fills, the memory map of the process it came from, and the symbolized stack
// the outputs consume. It is a package of its own so the capture side
// (probes), the unwinder and every output agree on one format without
// depending on each other.
package sample

import (
	"strings"

	"github.com/initprof/initprof/capture"
)

// The capture records, as the probes return them (package capture).
type (
	Arch      = capture.Arch
	Regs      = capture.Regs
	RawSample = capture.RawSample
	Mapping   = capture.Mapping
)

// Architectures whose stacks can be unwound.
const (
	AMD64 = capture.AMD64
	ARM64 = capture.ARM64
)

// Find returns the mapping holding addr, or nil (capture.Find).
func Find(maps []Mapping, addr uint64) *Mapping { return capture.Find(maps, addr) }

// ReadProcMaps reads the executable mappings of a live process (capture.ReadProcMaps).
func ReadProcMaps(pid int) ([]Mapping, error) { return capture.ReadProcMaps(pid) }

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

package doctor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// namedCaps are the capabilities that decide what initprof may do with BPF
// and perf: CAP_BPF and CAP_PERFMON (5.8+) are enough for tracing programs
// and perf events; CAP_SYS_ADMIN implies both.
var namedCaps = []struct {
	name string
	bit  uint
}{
	{"CAP_BPF", unix.CAP_BPF},
	{"CAP_PERFMON", unix.CAP_PERFMON},
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN},
}

// EffectiveCaps returns the CapEff mask of the calling process, read from
// /proc/self/status.
func EffectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCapEff(f)
}

func parseCapEff(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return parseCapMask(v)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/self/status has no CapEff line")
}

// parseCapMask parses the hex mask after "CapEff:".
func parseCapMask(s string) (uint64, error) {
	m, err := strconv.ParseUint(strings.TrimSpace(s), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(s), err)
	}
	return m, nil
}

// describeCaps says which of the BPF-relevant capabilities a mask holds, e.g.
// "CapEff has CAP_BPF CAP_PERFMON CAP_SYS_ADMIN" or "CapEff lacks CAP_BPF ...".
func describeCaps(mask uint64) string {
	var have, lack []string
	for _, c := range namedCaps {
		if mask&(1<<c.bit) != 0 {
			have = append(have, c.name)
		} else {
			lack = append(lack, c.name)
		}
	}
	var parts []string
	if len(have) > 0 {
		parts = append(parts, "CapEff has "+strings.Join(have, " "))
	}
	if len(lack) > 0 {
		prefix := "lacks "
		if len(have) == 0 {
			prefix = "CapEff lacks "
		}
		parts = append(parts, prefix+strings.Join(lack, " "))
	}
	return strings.Join(parts, ", ")
}

// readSysctl returns the trimmed content of a /proc/sys file, or "?" with the
// reason when it cannot be read.
func readSysctl(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// isPermission reports whether err is the kernel refusing for lack of
// privilege.
func isPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// loadTrivialProgram loads "r0 = 0; exit" as a kprobe-type program, the type
// initprof's uprobes use. A socket filter would not do: with
// unprivileged_bpf_disabled=0 anyone may load one, which says nothing about
// tracing.
func loadTrivialProgram() (*ebpf.Program, error) {
	// No rlimit.RemoveMemlock: every supported kernel (5.15+) charges BPF
	// memory to the cgroup, and importing rlimit would put a BPF map probe in
	// the init of every initprof process.
	return ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         "initprof_doctor",
		Type:         ebpf.Kprobe,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}, ebpf.ProgramOptions{LogDisabled: true})
}

// BPF loads a trivial tracing program and reports the capabilities and
// sysctls that decided the outcome.
func BPF() Result {
	r := Result{Name: "bpf", Required: true}
	why := bpfContext()
	prog, err := loadTrivialProgram()
	if err == nil {
		prog.Close()
		r.Status = OK
		r.Detail = "loaded a kprobe-type program; " + why
		return r
	}
	r.Status = Missing
	r.Privileges = true
	switch {
	case isPermission(err):
		r.Detail = "loading a kprobe-type program: operation not permitted; " + why
		r.Fix = setcapFix()
	case errors.Is(err, unix.ENOSYS):
		r.Detail = "the bpf() syscall is not available; " + why
		r.Fix = "boot a kernel built with CONFIG_BPF_SYSCALL=y"
	default:
		r.Detail = fmt.Sprintf("loading a kprobe-type program: %v; %s", err, why)
		r.Fix = "boot a kernel with CONFIG_BPF_SYSCALL=y and CONFIG_BPF_EVENTS=y, and " + setcapFix()
	}
	return r
}

func bpfContext() string {
	caps := "CapEff unreadable"
	if m, err := EffectiveCaps(); err == nil {
		caps = describeCaps(m)
	}
	return fmt.Sprintf("%s; unprivileged_bpf_disabled=%s", caps,
		readSysctl("/proc/sys/kernel/unprivileged_bpf_disabled"))
}

// Perf opens a software cpu-clock sampling event on this process, kernel
// included (initprof samples page faults and mmap in the kernel too), then
// closes it. This is the event initprof's CPU sampler attaches to.
func Perf() Result {
	r := Result{Name: "perf", Required: true}
	paranoid := "perf_event_paranoid=" + readSysctl("/proc/sys/kernel/perf_event_paranoid")
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_CPU_CLOCK,
		Sample:      1000, // Hz, with PerfBitFreq
		Sample_type: unix.PERF_SAMPLE_IP | unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME,
		Bits:        unix.PerfBitFreq | unix.PerfBitDisabled,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
		r.Status = OK
		r.Detail = "opened a cpu-clock sampling event on this process (user+kernel); " + paranoid
		return r
	}
	r.Status = Missing
	r.Detail = fmt.Sprintf("perf_event_open(cpu-clock, user+kernel): %v; %s", err, paranoid)
	switch {
	case isPermission(err):
		r.Privileges = true
		r.Fix = setcapFix()
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		r.Fix = "boot a kernel built with CONFIG_PERF_EVENTS=y"
	default:
		r.Fix = "check dmesg for why perf_event_open failed; " + setcapFix()
	}
	return r
}

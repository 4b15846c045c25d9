package doctor

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// tracepoints are the tracefs events initprof's probes attach to by id; if
// these two exist, the syscall and sched groups are there.
var tracepoints = [][2]string{
	{"syscalls", "sys_enter_execve"},
	{"sched", "sched_process_exec"},
}

const tracefsFix = "mount -t tracefs nodev /sys/kernel/tracing"

// FindTracefs returns where tracefs is mounted, looking the way cilium/ebpf
// does (so the answer matches what the probes will find): a tracefs entry in
// /proc/self/mountinfo, then a debugfs mount with a tracing/ directory, then
// statfs on the two canonical paths.
func FindTracefs() (string, error) {
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		defer f.Close()
		if p := findTracefsInMountinfo(f); p != "" {
			return p, nil
		}
	}
	for _, c := range []struct {
		path  string
		magic int64
	}{
		{"/sys/kernel/tracing", unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.DEBUGFS_MAGIC},
	} {
		var st unix.Statfs_t
		if unix.Statfs(c.path, &st) == nil && int64(st.Type) == c.magic {
			return c.path, nil
		}
	}
	return "", errors.New("tracefs is not mounted (not in /proc/self/mountinfo, not at /sys/kernel/tracing or /sys/kernel/debug/tracing)")
}

// findTracefsInMountinfo returns the first tracefs mount point whose root is
// "/", else a debugfs mount's tracing/ directory, else "".
func findTracefsInMountinfo(r io.Reader) string {
	type entry struct{ root, point, fstype string }
	var entries []entry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 1 {
			continue
		}
		entries = append(entries, entry{unescapeMount(pf[3]), unescapeMount(pf[4]), sf[0]})
	}
	for _, e := range entries {
		if e.fstype == "tracefs" && e.root == "/" {
			return e.point
		}
	}
	for _, e := range entries {
		if e.fstype == "debugfs" && e.root == "/" {
			p := filepath.Join(e.point, "tracing")
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p
			}
		}
	}
	return ""
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Tracefs checks that tracefs is mounted and that the tracepoints initprof
// attaches to by id are there and readable.
func Tracefs() Result {
	r := Result{Name: "tracefs", Required: true}
	dir, err := FindTracefs()
	if err != nil {
		r.Status = Missing
		r.Detail = err.Error() + "; the syscall tracepoints need it"
		r.Fix = tracefsFix
		return r
	}
	return tracepointsResult(dir)
}

// tracepointsResult checks the tracepoints under a tracefs directory.
func tracepointsResult(dir string) Result {
	r := Result{Name: "tracefs", Required: true}
	var found []string
	for _, tp := range tracepoints {
		name := tp[0] + ":" + tp[1]
		_, err := os.ReadFile(filepath.Join(dir, "events", tp[0], tp[1], "id"))
		switch {
		case err == nil:
			found = append(found, name)
			continue
		case isPermission(err):
			r.Status = Missing
			r.Privileges = true
			r.Detail = fmt.Sprintf("mounted at %s, but %s is not readable: %v", dir, name, err)
			r.Fix = "run as root (tracefs is readable by root only)"
		case errors.Is(err, fs.ErrNotExist):
			r.Status = Missing
			r.Detail = fmt.Sprintf("mounted at %s, but the kernel has no %s tracepoint", dir, name)
			r.Fix = "boot a kernel built with CONFIG_FTRACE_SYSCALLS=y and CONFIG_TRACEPOINTS=y"
		default:
			r.Status = Missing
			r.Detail = fmt.Sprintf("mounted at %s, but reading %s: %v", dir, name, err)
			r.Fix = tracefsFix
		}
		return r
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("mounted at %s; %s present", dir, strings.Join(found, ", "))
	return r
}

// UprobePMUType returns the perf PMU type of the kernel's uprobe PMU, which
// cilium/ebpf prefers over tracefs uprobe_events.
func UprobePMUType() (int, error) {
	b, err := os.ReadFile("/sys/bus/event_source/devices/uprobe/type")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// uprobeSupport says how the kernel offers uprobes, or "" when it doesn't.
func uprobeSupport() string {
	if t, err := UprobePMUType(); err == nil {
		return fmt.Sprintf("uprobe PMU (type %d)", t)
	}
	if dir, err := FindTracefs(); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "uprobe_events")); err == nil {
			return "tracefs " + filepath.Join(dir, "uprobe_events")
		}
	}
	return ""
}

// Uprobes attaches a real uprobe (filtered to this process) at the ELF entry
// point of the running binary, which runs once at start and never again,
// then detaches it. The detach costs about 0.1 s; that is the price of
// knowing rather than guessing.
func Uprobes() Result {
	r := Result{Name: "uprobes", Required: true}
	how := uprobeSupport()
	if how == "" {
		r.Status = Missing
		r.Detail = "no uprobe PMU (/sys/bus/event_source/devices/uprobe) and no tracefs uprobe_events"
		r.Fix = "boot a kernel built with CONFIG_UPROBE_EVENTS=y"
		return r
	}
	prog, err := loadTrivialProgram()
	if err != nil {
		r.Status = Missing
		r.Privileges = true
		r.Detail = fmt.Sprintf("kernel has the %s, but loading the probe program failed: %v", how, err)
		r.Fix = setcapFix()
		return r
	}
	defer prog.Close()
	if err := attachSelfUprobe(prog); err != nil {
		r.Status = Missing
		r.Detail = fmt.Sprintf("kernel has the %s, but attaching a uprobe failed: %v", how, err)
		if isPermission(err) {
			r.Privileges = true
			r.Fix = setcapFix()
		} else {
			r.Fix = "boot a kernel built with CONFIG_UPROBE_EVENTS=y, or " + tracefsFix
		}
		return r
	}
	r.Status = OK
	r.Detail = "attached and detached a uprobe on this binary via the " + how
	return r
}

// attachSelfUprobe attaches prog at the file offset of /proc/self/exe's entry
// point for this pid only, and closes the link.
func attachSelfUprobe(prog *ebpf.Program) error {
	const self = "/proc/self/exe"
	off, err := entryFileOffset(self)
	if err != nil {
		return err
	}
	ex, err := link.OpenExecutable(self)
	if err != nil {
		return err
	}
	l, err := ex.Uprobe("initprof_doctor", prog, &link.UprobeOptions{Address: off, PID: os.Getpid()})
	if err != nil {
		return err
	}
	return l.Close()
}

// entryFileOffset converts an executable's entry address to a file offset,
// which is what a uprobe address is.
func entryFileOffset(path string) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Filesz {
			return f.Entry - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("%s: entry point %#x is in no executable segment", path, f.Entry)
}

// UprobeMulti asks cilium/ebpf whether the kernel has uprobe_multi links
// (6.6+). initprof works without them, but falls back to one perf-event
// uprobe per symbol, and those are slow to detach.
func UprobeMulti() Result {
	r := Result{Name: "uprobe_multi"}
	err := features.HaveBPFLinkUprobeMulti()
	switch {
	case err == nil:
		r.Status = OK
		r.Detail = "the kernel accepts uprobe_multi links"
	case errors.Is(err, ebpf.ErrNotSupported):
		r.Status = Warn
		r.Detail = "the kernel has no uprobe_multi links (6.6+): probes fall back to one perf-event uprobe per symbol, about 0.1 s each to detach"
		r.Fix = "boot a 6.6 or later kernel"
	case isPermission(err):
		r.Status = Warn
		r.Privileges = true
		r.Detail = "cannot tell: probing uprobe_multi needs BPF privileges"
		r.Fix = setcapFix()
	default:
		r.Status = Warn
		r.Detail = fmt.Sprintf("cannot tell: %v", err)
		r.Fix = "boot a 6.6 or later kernel"
	}
	return r
}

// Kprobes is informational: initprof never uses kprobes (some kernels, like
// this project's CI machine, have none), so their absence is fine.
func Kprobes() Result {
	r := Result{Name: "kprobes", Status: OK}
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe"); err == nil {
		r.Detail = "not required (present); initprof attaches with tracepoints, tp_btf and uprobes only"
	} else {
		r.Detail = "not required (absent on this kernel); initprof attaches with tracepoints, tp_btf and uprobes only"
	}
	return r
}

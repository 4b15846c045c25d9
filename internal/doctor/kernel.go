package doctor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BTFPath is where the kernel exposes its own type information. CO-RE
// programs and tp_btf attach points (sched_process_exec and friends) need it.
const BTFPath = "/sys/kernel/btf/vmlinux"

// minKernel is the oldest kernel initprof supports: attaching a BPF program
// to a perf event (CPU sampling) through a BPF link needs 5.15.
var minKernel = [2]int{5, 15}

// Kernel reports the kernel release and whether BTF is present.
func Kernel() Result {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Result{Name: "kernel", Status: Missing, Required: true,
			Detail: fmt.Sprintf("uname: %v", err), Fix: "check that /proc and the uname syscall are available"}
	}
	return kernelResult(unix.ByteSliceToString(u.Release[:]), BTFPath)
}

// kernelResult judges a release string and a BTF path; split from Kernel so
// tests can feed it other releases and a missing BTF file.
func kernelResult(release, btf string) Result {
	r := Result{Name: "kernel", Required: true}
	major, minor, ok := parseRelease(release)
	if !ok {
		r.Status = Missing
		r.Detail = fmt.Sprintf("cannot parse kernel release %q", release)
		r.Fix = fmt.Sprintf("run on Linux %d.%d or later", minKernel[0], minKernel[1])
		return r
	}
	if major < minKernel[0] || (major == minKernel[0] && minor < minKernel[1]) {
		r.Status = Missing
		r.Detail = fmt.Sprintf("%s is older than %d.%d (BPF links on perf events)", release, minKernel[0], minKernel[1])
		r.Fix = fmt.Sprintf("boot a kernel >= %d.%d with CONFIG_DEBUG_INFO_BTF=y", minKernel[0], minKernel[1])
		return r
	}
	if _, err := os.Stat(btf); err != nil {
		r.Status = Missing
		r.Detail = fmt.Sprintf("%s, but no BTF: %v", release, err)
		r.Fix = "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's stock kernels have it)"
		return r
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("%s (BTF: %s)", release, btf)
	return r
}

// parseRelease reads "6.18.44-fc-v657" as 6, 18.
func parseRelease(s string) (major, minor int, ok bool) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorStr := parts[1]
	if i := strings.IndexFunc(minorStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorStr = minorStr[:i]
	}
	minor, err2 := strconv.Atoi(minorStr)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// Package doctor answers "can this machine profile?" before anything is
// profiled. Each check looks at one requirement of `initprof run` (or of an
// optional feature such as the OCI sandbox or the arm64 microVM) and returns a
// Result that says what it found and the exact command that fixes it.
//
// Checks do the real thing where that is cheap (load a BPF program, attach a
// uprobe, open a perf event) instead of inferring from sysctls, because the
// kernel is the only authority on what it will allow. They leave nothing
// behind: every program, link and event is closed before the check returns.
package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Status is the verdict of one check.
type Status string

const (
	// OK: the requirement is met.
	OK Status = "OK"
	// Missing: the requirement is absent. For a Required result, `initprof
	// run` cannot work; otherwise a whole optional feature is unavailable
	// (the OCI sandbox without runc/crun).
	Missing Status = "MISSING"
	// Warn: an optional item is absent; initprof works in a degraded mode
	// (fewer loader checkpoints, slower detach, no arm64 microVM).
	Warn Status = "WARN"
)

// Result is what one check found.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found, in words a user can verify.
	Detail string `json:"detail"`
	// Fix is the exact command (or action) that turns the result OK. Empty when OK.
	Fix string `json:"fix"`
	// Required is true when `initprof run` cannot work without it.
	Required bool `json:"required"`
	// Privileges is true when the kernel refused for lack of a capability
	// (EPERM/EACCES) or refused BPF itself. Running as root is then the
	// first fix, and other checks may look worse than they are until then.
	Privileges bool `json:"privileges,omitempty"`
}

// Check is one named check. Checks are independent: they can run in any
// order and concurrently.
type Check struct {
	Name string
	Run  func() Result
}

// Checks returns every check, in the order they are printed.
func Checks() []Check {
	return []Check{
		{"kernel", Kernel},
		{"bpf", BPF},
		{"perf", Perf},
		{"tracefs", Tracefs},
		{"uprobes", Uprobes},
		{"uprobe_multi", UprobeMulti},
		{"kprobes", Kprobes},
		{"ld.so symbols", LoaderSymbols},
		{"cgroup", Cgroup},
		{"runc/crun", OCIRuntime},
		{"arm64 qemu", QEMU},
		{"arm64 kernel", ARM64Kernel},
		{"arm64 initprof", ARM64Guest},
		{"arm64 sysroot", ARM64Sysroot},
	}
}

// Run runs every check concurrently and returns their results in the order
// of Checks. The slowest check (a real uprobe attach and detach, about
// 150 ms) bounds the total.
func Run() []Result {
	checks := Checks()
	out := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.Run()
		}()
	}
	wg.Wait()
	return out
}

// Verdict summarizes results for the exit code: ready is false when any
// Required result is not OK; privileges is true when at least one of those
// failures is a privilege refusal (fix that first: as non-root several other
// checks cannot see what they need to).
func Verdict(results []Result) (ready, privileges bool) {
	ready = true
	for _, r := range results {
		if !r.Required || r.Status == OK {
			continue
		}
		ready = false
		if r.Privileges {
			privileges = true
		}
	}
	return ready, privileges
}

// Failing returns the names of the Required results that are not OK.
func Failing(results []Result) []string {
	var names []string
	for _, r := range results {
		if r.Required && r.Status != OK {
			names = append(names, r.Name)
		}
	}
	return names
}

// setcapFix is the fix for a missing BPF or perf privilege. It names the
// running binary when that is a stable file (not `go run`'s temp copy).
func setcapFix() string {
	bin := "bin/initprof"
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") &&
		!strings.HasSuffix(exe, ".test") && filepath.Base(exe) == "initprof" {
		bin = exe
	}
	return "run as root or grant CAP_BPF+CAP_PERFMON (setcap cap_bpf,cap_perfmon+ep " + bin + ")"
}

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:    "doctor",
		summary: "check that this machine can profile, and say how to fix what is missing",
		usage:   "[--json] [--fix]",
		long: `doctor checks every requirement of 'initprof run' on this machine and prints
one line per item: OK, MISSING or WARN, what it found, and the exact command
that fixes it. It does the real thing where it can: it loads a BPF program,
attaches and detaches a uprobe on itself, and opens a cpu-clock perf event, so
an OK means the kernel really allowed it. Nothing stays attached.

Required for 'initprof run': a 5.15+ kernel with BTF, BPF privileges (root, or
CAP_BPF+CAP_PERFMON), tracefs with the syscall tracepoints, uprobes and
cpu-clock perf sampling. kprobes are not required. Optional: uprobe_multi
links (faster detach), ld.so debug symbols (libc6-dbg: more loader
checkpoints), cgroup memory and cpu controllers, runc or crun (the OCI
sandbox; '--sandbox process' works without), qemu-system-aarch64 and a cached
arm64 kernel (the arm64 microVM).

--fix fills the per-user cache (${XDG_CACHE_HOME:-~/.cache}/initprof) with
what the arm64 microVM needs and a checkout is not there to provide: Debian's
arm64 cloud kernel and arm64 libraries (downloaded with a private apt state;
nothing is installed), and a static arm64 initprof built from this binary's
source with its Go toolchain. Then it checks again. Other fixes are system
packages or privileges: it prints them and leaves them to you.

Exit status: 0 when 'initprof run' can work here, 3 when a privilege or BPF
itself is the problem (fix that first: without it other checks see less), 1
when another requirement is missing. Optional items never change it.

Examples:
  initprof doctor
  initprof doctor --fix
  sudo initprof doctor --json | jq '.[] | select(.status != "OK")'
  sudo setcap cap_bpf,cap_perfmon+ep bin/initprof && bin/initprof doctor`,
		setup: func(fs *pflag.FlagSet) func(args []string) error {
			asJSON := fs.Bool("json", false, "print [{name, status, detail, fix, required, privileges}] instead of a table")
			fix := fs.Bool("fix", false, "fetch the arm64 kernel and libraries and build the arm64 initprof into the per-user cache, then check")
			return func(args []string) error {
				if len(args) > 0 {
					return badInput("doctor takes no arguments, got %q", strings.Join(args, " "))
				}
				if *fix {
					if err := doctor.FixARM64(doctor.Run(), func(m string) { progressf("%s", m) }); err != nil {
						return err
					}
				}
				results := append(doctor.Run(), doctor.Leftovers())
				if err := doctor.Write(os.Stdout, results, *asJSON); err != nil {
					return err
				}
				return doctorError(results)
			}
		},
	})
}

// doctorExitCode maps results to the process exit code: exitPrivileges when
// a missing requirement is a privilege (or BPF) refusal, exitFailure for any
// other missing requirement, exitOK otherwise.
func doctorExitCode(results []doctor.Result) int {
	ready, privileges := doctor.Verdict(results)
	switch {
	case ready:
		return exitOK
	case privileges:
		return exitPrivileges
	default:
		return exitFailure
	}
}

// doctorError is the error main prints (and exits with) when 'initprof run'
// cannot work here; nil when it can.
func doctorError(results []doctor.Result) error {
	code := doctorExitCode(results)
	if code == exitOK {
		return nil
	}
	return withCode(code, fmt.Errorf("'initprof run' cannot work here: missing %s (see the fixes above)",
		strings.Join(doctor.Failing(results), ", ")))
}

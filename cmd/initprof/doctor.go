package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/scripts"
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
					if err := fixARM64(doctor.Run()); err != nil {
						return err
					}
				}
				results := append(doctor.Run(), staleResult())
				if *asJSON {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(results); err != nil {
						return err
					}
				} else {
					writeDoctorTable(os.Stdout, results)
				}
				return doctorError(results)
			}
		},
	})
}

// writeDoctorTable prints one aligned line per result:
//
//	OK       kernel        6.18.44 (BTF: /sys/kernel/btf/vmlinux)
//	MISSING  runc/crun     neither found on PATH — fix: apt-get install runc (or use --sandbox process)
func writeDoctorTable(w io.Writer, results []doctor.Result) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	for _, r := range results {
		line := fmt.Sprintf("%-8s %-*s %s", r.Status, width+1, r.Name, r.Detail)
		if r.Status != doctor.OK && r.Fix != "" {
			line += " — fix: " + r.Fix
		}
		fmt.Fprintln(w, line)
	}
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

// fixARM64 fills the per-user cache with the arm64 microVM's pieces that
// results reports missing, with the scripts a checkout's Makefile runs
// (embedded in the binary) and selfbin's build.
func fixARM64(results []doctor.Result) error {
	for _, r := range results {
		if r.Status == doctor.OK {
			continue
		}
		var err error
		switch r.Name {
		case "arm64 kernel":
			progressf("fetching Debian's arm64 cloud kernel")
			err = scripts.Run(os.Stderr, "arm64-kernel.sh")
		case "arm64 sysroot":
			var dir string
			if dir, err = doctor.ARM64SysrootPath(); err == nil {
				progressf("fetching Debian's arm64 libraries into %s", dir)
				err = scripts.Run(os.Stderr, "arm64-sysroot.sh", dir)
			}
		case "arm64 initprof":
			_, err = selfbin.Static("arm64", selfbin.Options{Progress: func(s string) { progressf("%s", s) }})
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("doctor --fix: %s: %w", r.Name, err)
		}
	}
	return nil
}

package main

import (
	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/internal/doctor"
)

// cleanupStale removes what initprof processes that died without cleaning
// up (SIGKILL, a crash) left behind, and says what it removed. Every command
// that creates sandboxes calls it first; a failure to remove something is
// reported and never stops the command.
func cleanupStale(ociRuntime string) container.Stale {
	st, err := container.CleanupStaleAll(ociRuntime)
	if !st.Empty() {
		progressf("removed what dead initprof processes left behind: %s", st)
	}
	if err != nil {
		progressf("warning: could not remove everything dead initprof processes left behind: %v", err)
	}
	return st
}

// staleResult is doctor's line for the debris of dead initprof processes,
// which it removes as it looks.
func staleResult() doctor.Result {
	st, err := container.CleanupStaleAll("")
	r := doctor.Result{Name: "leftovers", Status: doctor.OK, Detail: "no containers, cgroups, sandbox directories or VM images of dead initprof processes"}
	if !st.Empty() {
		r.Status = doctor.Warn
		r.Detail = "removed what dead initprof processes left behind: " + st.String()
	}
	if err != nil {
		r.Status = doctor.Warn
		r.Detail += "; could not remove: " + err.Error()
		r.Fix = "runc list; runc delete --force ID; rmdir /sys/fs/cgroup/*/initprof-PID-*; rm -rf /var/tmp/initprof-sandbox-PID-*"
	}
	return r
}

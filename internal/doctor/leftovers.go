package doctor

import "github.com/initprof/initprof/container"

// Leftovers is doctor's line for the debris of dead initprof processes
// (containers, cgroups, sandbox directories, VM images): it removes them as
// it looks, and warns about what it found or could not remove.
func Leftovers() Result {
	st, err := container.CleanupStaleAll("")
	r := Result{Name: "leftovers", Status: OK, Detail: "no containers, cgroups, sandbox directories or VM images of dead initprof processes"}
	if !st.Empty() {
		r.Status = Warn
		r.Detail = "removed what dead initprof processes left behind: " + st.String()
	}
	if err != nil {
		r.Status = Warn
		r.Detail += "; could not remove: " + err.Error()
		r.Fix = "runc list; runc delete --force ID; rmdir /sys/fs/cgroup/*/initprof-PID-*; rm -rf /var/tmp/initprof-sandbox-PID-*"
	}
	return r
}

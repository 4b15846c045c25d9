package main

import "github.com/initprof/initprof/container"

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

package main

import "github.com/initprof/initprof/coldstart"

// cleanupStale removes what initprof processes that died without cleaning
// up (SIGKILL, a crash) left behind, and says what it removed
// (coldstart.CleanupStale). Every command that creates sandboxes calls it
// first; a failure to remove something is reported and never stops the
// command.
func cleanupStale(ociRuntime string) {
	coldstart.CleanupStale(ociRuntime, func(m string) { progressf("%s", m) })
}

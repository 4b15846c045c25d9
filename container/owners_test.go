package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestOtherLiveOwners: a sandbox directory of a live process names another
// initprof; one of a dead process does not, nor does our own.
func TestOtherLiveOwners(t *testing.T) {
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Process.Kill()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	base := staleTempDirs()[0]
	var made []string
	for _, pid := range []int{live.Process.Pid, dead.Process.Pid, os.Getpid()} {
		d, err := os.MkdirTemp(base, fmt.Sprintf("initprof-sandbox-%d-", pid))
		if err != nil {
			t.Skipf("cannot make a directory in %s: %v", base, err)
		}
		made = append(made, d)
	}
	defer func() {
		for _, d := range made {
			os.RemoveAll(d)
		}
	}()
	got := OtherLiveOwners()
	if !slices.Contains(got, live.Process.Pid) {
		t.Errorf("OtherLiveOwners() = %v, lacks the live owner %d (%s)", got, live.Process.Pid, filepath.Base(made[0]))
	}
	if slices.Contains(got, dead.Process.Pid) || slices.Contains(got, os.Getpid()) {
		t.Errorf("OtherLiveOwners() = %v, holds the dead owner %d or ourselves %d", got, dead.Process.Pid, os.Getpid())
	}
}

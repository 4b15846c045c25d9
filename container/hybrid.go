package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// unifiedMount is where a hybrid cgroup host (systemd's "hybrid" layout, and
// this project's CI machine) mounts its cgroup v2 hierarchy beside the v1
// controllers.
const unifiedMount = "/sys/fs/cgroup/unified"

// crunNeedsV1View reports whether rt is crun on a hybrid host whose v2
// hierarchy holds a controller. crun refuses that layout outright ("cgroups in
// hybrid mode not supported, drop all controllers from cgroupv2") although
// every controller the sandbox limits (memory, cpu) is a v1 one. runc accepts
// it.
func crunNeedsV1View(rt string) bool {
	if !strings.Contains(filepath.Base(rt), "crun") || CgroupVersion() != "v1" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(unifiedMount, "cgroup.controllers"))
	return err == nil && strings.TrimSpace(string(b)) != ""
}

// startInV1View starts cmd in a private mount namespace in which the v2
// hierarchy is unmounted, so crun sees a plain cgroup v1 host and applies the
// limits through the v1 memory and cpu controllers, as runc does here. Only
// the runtime's own view changes: the host's mounts are untouched, and the
// container gets its own mount namespace from the spec anyway.
//
// The unshare happens on a locked OS thread that is then thrown away (the
// goroutine returns without unlocking it, so the Go runtime ends the thread):
// a child forked from that thread inherits its mount namespace, and no other
// goroutine ever runs in it. This needs no helper binary and keeps cmd's pid
// the runtime's own, so timeouts and signals reach crun directly.
func startInV1View(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread's mount namespace is
		// not the process's, so the thread must die with this goroutine.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("crun on a hybrid cgroup host: unshare(CLONE_NEWNS): %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("crun on a hybrid cgroup host: making / private: %v", err)
			return
		}
		if err := unix.Unmount(unifiedMount, unix.MNT_DETACH); err != nil {
			errc <- fmt.Errorf("crun on a hybrid cgroup host: hiding %s from crun: %v", unifiedMount, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// startRuntime starts an OCI runtime command, in the v1 view when crun needs
// it.
func startRuntime(rt string, cmd *exec.Cmd) error {
	if crunNeedsV1View(rt) {
		return startInV1View(cmd)
	}
	return cmd.Start()
}

// runRuntime is cmd.Run through startRuntime.
func runRuntime(rt string, cmd *exec.Cmd) error {
	if err := startRuntime(rt, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// outputRuntime is cmd.Output through startRuntime.
func outputRuntime(rt string, cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := runRuntime(rt, cmd)
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return []byte(out.String()), err
}

// rootIsInitramfs reports whether / is the kernel's initial rootfs (an
// initramfs, as in initprof's arm64 microVM and in Firecracker-style VMs).
// pivot_root(2) cannot move that mount, so the runtime must enter the
// container's root with --no-pivot (MS_MOVE and chroot) instead.
func rootIsInitramfs() bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return mountinfoRootIsInitramfs(string(b))
}

// mountinfoRootIsInitramfs looks for the mount of "/" in mountinfo text and
// checks its file system type ("rootfs" for the initial ramfs or tmpfs).
func mountinfoRootIsInitramfs(mountinfo string) bool {
	initramfs := false
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || f[4] != "/" {
			continue
		}
		// The last mount on / is the one in use (it hides earlier ones).
		if t := strings.Fields(post); len(t) > 0 {
			initramfs = t[0] == "rootfs"
		}
	}
	return initramfs
}

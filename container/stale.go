package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/initprof/initprof/container/lazyfs"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every resource initprof creates carries its owner's pid in its name, so
// that a later initprof can tell the debris of a dead owner (SIGKILL, a
// crash, a power cut: nothing ran CleanupAll or Close) from the resources of
// a run still in progress:
//
//	container IDs and cgroups   initprof-<pid>-...
//	sandbox work directories    /var/tmp/initprof-sandbox-<pid>-*
//	arm64 VM images             $TMPDIR/initprof-vm-<pid>-*.cpio.gz
var (
	// staleRE matches the container IDs (and cgroup directories) Create makes.
	staleRE = regexp.MustCompile(`^initprof-(\d+)-`)
	// staleDirRE matches the work directories workDir makes.
	staleDirRE = regexp.MustCompile(`^initprof-sandbox-(\d+)-`)
	// staleVMRE matches the VM images container/vm writes.
	staleVMRE = regexp.MustCompile(`^initprof-vm-(\d+)-.*\.cpio\.gz$`)
)

// SandboxDirPattern is the os.MkdirTemp pattern of a work directory owned by
// this process.
func SandboxDirPattern() string { return fmt.Sprintf("initprof-sandbox-%d-", os.Getpid()) }

// VMImagePattern is the os.CreateTemp pattern of an arm64 VM image owned by
// this process.
func VMImagePattern() string { return fmt.Sprintf("initprof-vm-%d-*.cpio.gz", os.Getpid()) }

// Stale is what CleanupStaleAll found and removed.
type Stale struct {
	Containers []string // container IDs (runtime: id)
	Cgroups    []string // cgroup directories
	Dirs       []string // sandbox work directories
	Files      []string // VM images
	Mounts     []string // lazyfs mounts (the lambda storage model)
	Bytes      int64    // disk space freed by Dirs and Files
}

// Empty reports whether nothing was found.
func (s Stale) Empty() bool {
	return len(s.Containers)+len(s.Cgroups)+len(s.Dirs)+len(s.Files)+len(s.Mounts) == 0
}

// String is one line for a user, e.g. "1 container (runc: initprof-77-1-x),
// 10 cgroup directories, 1 sandbox directory (9.4 MB)".
func (s Stale) String() string {
	if s.Empty() {
		return "nothing"
	}
	var parts []string
	add := func(n int, one, many string, list []string) {
		if n == 0 {
			return
		}
		w := many
		if n == 1 {
			w = one
		}
		shown := list
		if len(shown) > 3 {
			shown = append(append([]string{}, shown[:3]...), fmt.Sprintf("and %d more", len(list)-3))
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", n, w, strings.Join(shown, ", ")))
	}
	add(len(s.Containers), "container", "containers", s.Containers)
	add(len(s.Cgroups), "cgroup directory", "cgroup directories", s.Cgroups)
	add(len(s.Mounts), "lazyfs mount", "lazyfs mounts", s.Mounts)
	add(len(s.Dirs), "sandbox directory", "sandbox directories", s.Dirs)
	add(len(s.Files), "VM image", "VM images", s.Files)
	out := strings.Join(parts, ", ")
	if s.Bytes > 0 {
		out += fmt.Sprintf("; %.1f MB freed", float64(s.Bytes)/1e6)
	}
	return out
}

// ownerDead reports whether the pid in a resource's name belongs to no
// process. When it can't tell (a pid of 0, EPERM) the owner counts as alive:
// the resource is not ours to touch.
func ownerDead(pidStr string) bool {
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// staleTempDirs are where workDir and container/vm put their files.
func staleTempDirs() []string {
	dirs := []string{"/var/tmp"}
	if t := os.TempDir(); t != "/var/tmp" {
		dirs = append(dirs, t)
	}
	return dirs
}

// CleanupStaleAll removes what initprof processes that died without
// cleaning up left behind: their containers (with every OCI runtime found on
// PATH, and runtime too when it names another), their cgroup directories in
// every hierarchy, their sandbox work directories and their VM images.
// Resources whose owner is alive are left alone, so it is safe to call at
// the start of every command, beside a concurrent run. It returns what it
// removed, and the errors of what it could not remove.
//
// It does nothing in PID 1 (the platform inside a container): there every
// host pid looks dead.
func CleanupStaleAll(runtime string) (Stale, error) {
	var st Stale
	if os.Getpid() == 1 {
		return st, nil
	}
	var errs []error
	if os.Geteuid() == 0 {
		seen := map[string]bool{}
		names := []string{"runc", "crun"}
		if runtime != "" {
			names = append(names, runtime)
		}
		for _, n := range names {
			rt, err := exec.LookPath(n)
			if err != nil {
				continue
			}
			if abs, err := filepath.EvalSymlinks(rt); err == nil {
				rt = abs
			}
			if seen[rt] {
				continue
			}
			seen[rt] = true
			ids, err := cleanupStaleContainers(rt)
			for _, id := range ids {
				st.Containers = append(st.Containers, filepath.Base(rt)+": "+id)
			}
			errs = append(errs, err)
		}
		cg, err := cleanupStaleCgroups()
		st.Cgroups = cg
		errs = append(errs, err)
		// Before the directories: a sandbox dir may hold a live mount.
		mnts, err := cleanupStaleMounts()
		st.Mounts = mnts
		errs = append(errs, err)
	}
	for _, base := range staleTempDirs() {
		ents, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(base, e.Name())
			switch {
			case e.IsDir() && matchDead(staleDirRE, e.Name()):
				n := duBytes(p)
				if err := os.RemoveAll(p); err != nil {
					errs = append(errs, err)
					continue
				}
				st.Dirs = append(st.Dirs, p)
				st.Bytes += n
			case e.Type().IsRegular() && matchDead(staleVMRE, e.Name()):
				n := duBytes(p)
				if err := os.Remove(p); err != nil {
					errs = append(errs, err)
					continue
				}
				st.Files = append(st.Files, p)
				st.Bytes += n
			}
		}
	}
	return st, errors.Join(errs...)
}

func matchDead(re *regexp.Regexp, name string) bool {
	m := re.FindStringSubmatch(name)
	return m != nil && ownerDead(m[1])
}

// duBytes is the size of the regular files under p (without following links).
func duBytes(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// cleanupStaleCgroups removes the top-level initprof-<pid>-* cgroup
// directories of dead owners in every hierarchy, killing what is still in
// them first. A container the runtime deleted may still leave these (runc
// delete killed mid-way), and cleanupStaleContainers only removes the
// cgroups of containers the runtime still lists.
func cleanupStaleCgroups() ([]string, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range ms {
		ents, err := os.ReadDir(m.dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !matchDead(staleRE, e.Name()) {
				continue
			}
			d := filepath.Join(m.dir, e.Name())
			if err := removeCgroupTree(d); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, d)
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// removeCgroupTree kills every process in the cgroup directory d and its
// children, then removes them deepest first.
func removeCgroupTree(d string) error {
	var dirs []string
	filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, p := range dirs {
		if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	var left []string
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 100; try++ {
			err = syscall.Rmdir(dirs[i])
			if err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", dirs[i], err))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("stale cgroup directories could not be removed: %s", strings.Join(left, ", "))
	}
	return nil
}

// CleanupStale deletes the containers (and their cgroups) of initprof
// processes that died without cleaning up: a SIGKILL or a crash can't run
// CleanupAll. Containers whose owner is still alive are left alone, so it is
// safe to call at the start of every `initprof run`. runtime is as
// Config.OCIRuntime. It returns the IDs it removed. CleanupStaleAll does this
// for every runtime and also removes cgroups, directories and VM images.
func CleanupStale(runtime string) ([]string, error) {
	rt, err := FindRuntime(runtime)
	if err != nil {
		return nil, err
	}
	ids, err := cleanupStaleContainers(rt)
	if os.Getpid() != 1 && os.Geteuid() == 0 {
		// The containers of a dead owner ran on its lazyfs mounts; their
		// servers unmount when the owner dies, and this catches the rest.
		_, merr := cleanupStaleMounts()
		err = errors.Join(err, merr)
	}
	return ids, err
}

// cleanupStaleMounts lazily unmounts the lazyfs mounts (container/lazyfs)
// whose owning initprof is dead.
func cleanupStaleMounts() ([]string, error) {
	return lazyfs.CleanupStale(func(pid int) bool { return ownerDead(strconv.Itoa(pid)) })
}

func cleanupStaleContainers(rt string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := outputRuntime(rt, exec.CommandContext(ctx, rt, "list", "--format", "json"))
	if err != nil {
		return nil, fmt.Errorf("%s list: %v", filepath.Base(rt), err)
	}
	var list []struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
	}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("%s list: %v", filepath.Base(rt), err)
		}
	}
	var removed []string
	var errs []error
	for _, c := range list {
		if !matchDead(staleRE, c.ID) {
			continue // its owner lives (or we can't tell): not ours to touch
		}
		var buf bytes.Buffer
		cmd := exec.CommandContext(ctx, rt, "delete", "--force", c.ID)
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := runRuntime(rt, cmd)
		b := buf.Bytes()
		if err != nil && !notExist(b) {
			errs = append(errs, fmt.Errorf("%s delete %s: %s", filepath.Base(rt), c.ID, firstLine(b, err)))
			continue
		}
		if c.PID > 0 {
			// If we are a subreaper, the orphaned first process became our child.
			var ws syscall.WaitStatus
			for i := 0; i < 100; i++ {
				if p, err := syscall.Wait4(c.PID, &ws, syscall.WNOHANG, nil); p != 0 || err != nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if err := removeCgroups("/" + c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, c.ID)
	}
	return removed, errors.Join(errs...)
}

// OtherLiveOwners lists the pids of the other initprof processes running on
// this machine now, from the sandbox directories and cgroups they own. Their
// cold starts and calibrations compete with ours for the CPUs: a concurrent
// run makes the Init Durations and the probe-cost calibration unreliable.
func OtherLiveOwners() []int {
	seen := map[int]bool{}
	check := func(re *regexp.Regexp, name string) {
		m := re.FindStringSubmatch(name)
		if m == nil {
			return
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 || pid == os.Getpid() || seen[pid] {
			return
		}
		if syscall.Kill(pid, 0) != syscall.ESRCH {
			seen[pid] = true
		}
	}
	for _, base := range staleTempDirs() {
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			check(staleDirRE, e.Name())
		}
	}
	if ms, err := cgroupMounts(); err == nil {
		for _, m := range ms {
			ents, _ := os.ReadDir(m.dir)
			for _, e := range ents {
				check(staleRE, e.Name())
			}
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

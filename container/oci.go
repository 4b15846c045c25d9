package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/initprof/initprof/elfinfo"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoRuntime is wrapped by NewOCI's error when no OCI runtime can be found.
var ErrNoRuntime = errors.New("no OCI runtime")

// FindRuntime resolves cfg.OCIRuntime ("runc", "crun", a path, or "" for runc
// then crun on PATH) to an executable path.
func FindRuntime(name string) (string, error) {
	if name != "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%w: OCI runtime %q not found or not executable: install it (apt-get install runc) or use --sandbox process", ErrNoRuntime, name)
		}
		return p, nil
	}
	for _, n := range []string{"runc", "crun"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: neither runc nor crun is on PATH: install one (apt-get install runc) or use --sandbox process", ErrNoRuntime)
}

// ociSandbox is the OCI sandbox: one rootfs, one runtime, many runs.
type ociSandbox struct {
	lifecycle
	cfg     Config
	runtime string
	kind    string
	rootfs  *rootfsLayout
	timeout time.Duration
}

// NewOCI builds the bundle's root filesystem once for this build under test
// and finds the OCI runtime. It needs root. It makes this process a child
// subreaper (process-wide and permanent) so that each container's first
// process becomes our child when `runc create` exits: that is how Wait gets
// its real exit status and resource usage.
func NewOCI(cfg Config) (Sandbox, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rt, err := FindRuntime(cfg.OCIRuntime)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the OCI sandbox needs root (it creates namespaces and cgroups): run as root or use --sandbox process", ErrPrivileges)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("becoming a child subreaper: %v", err)
	}
	work, owned, err := workDir(&cfg)
	if err != nil {
		return nil, err
	}
	s := &ociSandbox{lifecycle: lifecycle{work: work, owned: owned}, cfg: cfg, runtime: rt, timeout: cfg.RuntimeTimeout}
	if s.timeout == 0 {
		s.timeout = 30 * time.Second
	}
	s.kind = "oci (" + runtimeVersion(rt) + ", cgroup " + CgroupVersion() + ")"
	if crunNeedsV1View(rt) {
		s.kind = "oci (" + runtimeVersion(rt) + ", cgroup v1; " + unifiedMount + " hidden from crun)"
	}
	bundle, err := os.MkdirTemp(work, "bundle-")
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.cfg.Storage.Lambda() {
		s.rootfs, err = buildRootfs(&s.cfg, filepath.Join(bundle, "backing"))
		if err == nil {
			// The bundle's root is the lazyfs mount of the tree built as
			// usual; the initprof binary is still bind-mounted from the host
			// (Lambda's platform is not function code).
			s.lazy, err = serveLazy(&s.cfg, s.rootfs.dir, filepath.Join(bundle, "rootfs"))
			if err == nil {
				// Every file of the image is evicted (the generated /etc
				// files too), so each cold start fetches the same chunks.
				s.rootfs = &rootfsLayout{dir: s.lazy.mount, files: s.lazy.throughAll(regularFiles(s.rootfs.dir))}
				s.kind += "; " + s.cfg.Storage.String()
			}
		}
	} else {
		s.rootfs, err = buildRootfs(&s.cfg, filepath.Join(bundle, "rootfs"))
	}
	if err != nil {
		if owned {
			os.RemoveAll(work)
		} else {
			os.RemoveAll(bundle)
		}
		return nil, err
	}
	return s, nil
}

var versionRE = regexp.MustCompile(`(?m)^(runc|crun) version (\S+)`)

// runtimeVersion is e.g. "runc 1.1.5+ds1", or the base name when unknown.
func runtimeVersion(rt string) string {
	out, _ := exec.Command(rt, "--version").Output()
	if m := versionRE.FindSubmatch(out); m != nil {
		return string(m[1]) + " " + string(m[2])
	}
	return filepath.Base(rt)
}

func (s *ociSandbox) Kind() string { return s.kind }

func (s *ociSandbox) Files() []string { return append([]string(nil), s.rootfs.files...) }

func (s *ociSandbox) Extensions() []Extension { return s.cfg.allExtensions() }

func (s *ociSandbox) RuntimePath() string { return s.cfg.runtimePath() }

// HostPath resolves inside within the bundle's rootfs.
func (s *ociSandbox) HostPath(inside string) string {
	if p, err := elfinfo.ResolveInRoot(s.rootfs.dir, inside); err == nil {
		return p
	}
	return filepath.Join(s.rootfs.dir, inside)
}

// Close removes the bundle. Runs still alive are deleted first.
func (s *ociSandbox) Close() error {
	bundle := ""
	if s.rootfs != nil {
		bundle = filepath.Dir(s.rootfs.dir)
	}
	return s.close(s, bundle)
}

// Create runs `runc create`: the container's first process exists, stopped
// before exec, with its limits applied and read back.
func (s *ociSandbox) Create(ctx context.Context, runID string) (Instance, error) {
	n, name, err := s.nextRun(runID)
	if err != nil {
		return nil, err
	}
	// The owner's pid lets CleanupStale find orphans; the counter keeps IDs
	// unique when a caller reuses a run ID.
	id := fmt.Sprintf("initprof-%d-%d-%s", os.Getpid(), n, name)
	runDir := filepath.Join(s.work, "runs", id)
	if err := os.MkdirAll(filepath.Join(runDir, "out"), 0o755); err != nil {
		return nil, err
	}
	in := &ociInstance{
		sb:     s,
		id:     id,
		runDir: runDir,
		outDir: filepath.Join(runDir, "out"),
		cgroup: "/" + id,
		done:   make(chan struct{}),
		out:    newTail(64 << 10),
	}
	args := s.cfg.Init
	if len(args) == 0 {
		args = s.cfg.platformArgs(InitprofPath, ExtensionsDir, s.cfg.runtimePath(), OutMount+"/"+TimelineName)
		if s.cfg.switchesCPU() {
			quota, period := CPUQuota(s.cfg.memoryMB())
			if in.cpu, err = startCPUSwitch(in.outDir, in.cgroup, quota, period); err != nil {
				return nil, err
			}
			args = append(args, "--init-end-notify", OutMount+"/"+InitEndSocket)
		}
	}
	spec := ociSpec(&s.cfg, s.rootfs.dir, in.outDir, in.cgroup, args)
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(runDir, "config.json"), b, 0o644); err != nil {
		return nil, err
	}
	if s.lazy != nil {
		if err := s.lazy.reset(n); err != nil {
			return nil, err
		}
	}
	register(in)
	if err := in.create(ctx); err != nil {
		in.Delete()
		return nil, err
	}
	return in, nil
}

// ociInstance is one container.
type ociInstance struct {
	sb     *ociSandbox
	id     string
	runDir string
	outDir string
	cgroup string
	pid    int
	limits Limits
	cpu    *cpuSwitch // nil: the quota does not change at the end of init

	out    *tail
	outEOF chan struct{}

	done     chan struct{} // closed when the first process has been reaped
	status   int
	rusage   syscall.Rusage
	waitErr  error
	over     Overhead
	started  bool
	delOnce  sync.Once
	delErr   error
	muStart  sync.Mutex
	createOK bool
	storage  *StorageStats
}

// runtimeCmd runs one OCI runtime subcommand, bounded by the sandbox timeout.
func (in *ociInstance) runtimeCmd(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, in.sb.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, in.sb.runtime, args...)
	cmd.SysProcAttr = ownGroup()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := runRuntime(in.sb.runtime, cmd)
	return buf.Bytes(), err
}

func (in *ociInstance) create(ctx context.Context) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	in.outEOF = make(chan struct{})
	go func() {
		defer close(in.outEOF)
		defer r.Close()
		in.out.copyFrom(r, in.sb.cfg.Output)
	}()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return err
	}
	defer devnull.Close()
	pidFile := filepath.Join(in.runDir, "pid")
	ctx2, cancel := context.WithTimeout(ctx, in.sb.timeout)
	defer cancel()
	// Detached, pass-through stdio: the container's first process inherits the
	// runtime's stdin/stdout/stderr, so both go to our pipe. The runtime's own
	// error messages land there too, which is what the error below shows.
	args := []string{"create", "--bundle", in.runDir, "--pid-file", pidFile}
	if rootIsInitramfs() {
		args = append(args, "--no-pivot")
	}
	cmd := exec.CommandContext(ctx2, in.sb.runtime, append(args, in.id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, w, w
	cmd.SysProcAttr = ownGroup()
	t0 := time.Now()
	err = runRuntime(in.sb.runtime, cmd)
	in.over.Create = time.Since(t0)
	w.Close()
	if err != nil {
		select {
		case <-in.outEOF:
		case <-time.After(2 * time.Second):
		}
		msg := strings.TrimSpace(string(in.out.bytes()))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s create %s: %s", filepath.Base(in.sb.runtime), in.id, msg)
	}
	in.createOK = true
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("%s create wrote no pid file: %v", filepath.Base(in.sb.runtime), err)
	}
	in.pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || in.pid <= 0 {
		return fmt.Errorf("%s create: bad pid file %q", filepath.Base(in.sb.runtime), b)
	}
	go in.reap()
	in.limits, err = readLimits(in.cgroup)
	if err != nil {
		return fmt.Errorf("reading back the limits of cgroup %s: %v", in.cgroup, err)
	}
	if err := checkLimits(in.limits, &in.sb.cfg); err != nil {
		return fmt.Errorf("%s did not apply the limits: %v", filepath.Base(in.sb.runtime), err)
	}
	return nil
}

// ownGroup puts a runtime command (and so the container's first process) in
// its own process group: a Ctrl-C at the terminal reaches only initprof,
// which then cleans up in order, instead of killing runc mid-create.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// reap waits for the first process. It is our child because we are a child
// subreaper and `runc create` has exited; if it is not (ECHILD), we fall back to
// watching it through a pidfd, and the exit status is then unknown (-1).
func (in *ociInstance) reap() {
	defer close(in.done)
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(in.pid, &ws, 0, &in.rusage)
		if err == syscall.EINTR {
			continue
		}
		if err == nil {
			in.status = exitCode(ws)
			return
		}
		if err == syscall.ECHILD {
			in.status = -1
			in.waitErr = waitPidfd(in.pid)
			if in.waitErr == nil {
				in.waitErr = fmt.Errorf("container process %d was not our child: exit status unknown", in.pid)
			}
			return
		}
		in.status, in.waitErr = -1, err
		return
	}
}

// exitCode maps a wait status to a shell-style exit code.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// waitPidfd blocks until pid exits, without being its parent.
func waitPidfd(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

func (in *ociInstance) PID() int { return in.pid }

// Storage is the run's account (after Delete), nil with local storage.
func (in *ociInstance) Storage() *StorageStats {
	if in.storage == nil && in.sb.lazy != nil {
		return in.sb.lazy.stats() // so far
	}
	return in.storage
}

func (in *ociInstance) OutDir() string { return in.outDir }
func (in *ociInstance) Output() []byte { return in.out.bytes() }

// Overhead is valid after Delete returns (Delete's own time is filled then).
func (in *ociInstance) Overhead() Overhead { return in.over }

// Limits are the limits read back from the cgroup after create.
func (in *ociInstance) Limits() Limits {
	l := in.limits
	if in.cpu != nil {
		l.InitCPUQuotaUS = l.CPUQuotaUS
		l.CPUQuotaUS, _ = CPUQuota(in.sb.cfg.memoryMB())
		at, err := in.cpu.result()
		l.SwitchMonoNs = at
		if err != nil {
			l.SwitchErr = err.Error()
		}
	}
	return l
}

// Rusage is the first process's resource usage (with its reaped children's),
// valid once Wait has returned.
func (in *ociInstance) Rusage() syscall.Rusage {
	<-in.done
	return in.rusage
}

// ContainerID is the runtime's name for this run (for runc list/state).
func (in *ociInstance) ContainerID() string { return in.id }

// CgroupPath is the run's cgroup path, relative to each hierarchy's root.
func (in *ociInstance) CgroupPath() string { return in.cgroup }

func (in *ociInstance) Start() error {
	in.muStart.Lock()
	defer in.muStart.Unlock()
	if in.started {
		return fmt.Errorf("container %s already started", in.id)
	}
	in.started = true
	t0 := time.Now()
	out, err := in.runtimeCmd(context.Background(), "start", in.id)
	in.over.Start = time.Since(t0)
	if err != nil {
		return fmt.Errorf("%s start %s: %s", filepath.Base(in.sb.runtime), in.id, firstLine(out, err))
	}
	return nil
}

func (in *ociInstance) Wait(ctx context.Context) (int, error) {
	select {
	case <-in.done:
		// Let the output drain: PID 1 exiting kills the whole pid namespace, so
		// every holder of the pipe is going away.
		select {
		case <-in.outEOF:
		case <-time.After(time.Second):
		}
		return in.status, in.waitErr
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Delete kills and deletes the container and removes its cgroups; safe to
// call many times and from a signal handler goroutine.
func (in *ociInstance) Delete() error {
	in.delOnce.Do(func() {
		t0 := time.Now()
		in.delErr = in.delete()
		in.over.Delete = time.Since(t0)
		if in.sb.lazy != nil {
			in.storage = in.sb.lazy.stats()
		}
		unregister(in)
	})
	return in.delErr
}

func (in *ociInstance) delete() error {
	var errs []string
	if in.cpu != nil {
		in.cpu.close()
	}
	members := cgroupProcs(in.cgroup)
	if in.createOK || in.pid == 0 {
		out, err := in.runtimeCmd(context.Background(), "delete", "--force", in.id)
		if err != nil && !notExist(out) {
			errs = append(errs, fmt.Sprintf("%s delete %s: %s", filepath.Base(in.sb.runtime), in.id, firstLine(out, err)))
		}
	}
	if in.pid > 0 {
		select {
		case <-in.done:
		case <-time.After(100 * time.Millisecond):
			// The runtime failed to kill it (or never knew it): do it ourselves.
			syscall.Kill(in.pid, syscall.SIGKILL)
			select {
			case <-in.done:
			case <-time.After(5 * time.Second):
				errs = append(errs, fmt.Sprintf("container process %d did not exit after SIGKILL", in.pid))
			}
		}
	}
	// With HostPIDs, the run's other processes were orphaned to us (the
	// subreaper) when PID 1 died; reap them so they don't stay zombies.
	reapOrphans(members, in.pid)
	if in.outEOF != nil {
		select {
		case <-in.outEOF:
		case <-time.After(2 * time.Second):
		}
	}
	if err := removeCgroups(in.cgroup); err != nil {
		errs = append(errs, err.Error())
	}
	os.Remove(filepath.Join(in.runDir, "config.json"))
	os.Remove(filepath.Join(in.runDir, "pid"))
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// reapOrphans reaps those of pids that are our children, waiting briefly for
// each to die; others (not ours: ECHILD) are skipped at once.
func reapOrphans(pids []int, skip int) {
	deadline := time.Now().Add(time.Second)
	for _, p := range pids {
		if p == skip {
			continue
		}
		for {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
			if got != 0 || err != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// notExist reports whether a runtime's error says the container is gone
// already, which is success for a delete.
func notExist(out []byte) bool {
	s := strings.ToLower(string(out))
	return strings.Contains(s, "does not exist") || strings.Contains(s, "not found") || strings.Contains(s, "no such file")
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return err.Error()
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processSandbox runs the platform as a plain host process: for machines with
// no OCI runtime (or no root). There is no private root, no memory limit and
// no CPU quota, and the loader reads the host's libraries; as root, the
// platform still gets its own network namespace so port 9001 never collides.
type processSandbox struct {
	lifecycle
	cfg  Config
	base string // stands in for / : base/opt/extensions, base/var/runtime
	// moved are the inside paths of the libraries copied into base because
	// the loader finds them through $ORIGIN (e.g. /opt/lib/libcexthot.so).
	moved map[string]bool
	files []string
	netns bool
	// backing is base's real directory when base is its lazyfs mount
	// (--storage lambda), else "".
	backing string
}

// NewProcess prepares the process sandbox: the extensions are copied into a
// directory that acts as /opt/extensions. It needs no OCI runtime. As root
// the platform gets its own network namespace (loopback only, so port 9001
// never collides) and mount namespace (with Lambda's /etc/hosts); without
// root it shares the host's, and Kind says so.
func NewProcess(cfg Config) (Sandbox, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	work, owned, err := workDir(&cfg)
	if err != nil {
		return nil, err
	}
	s := &processSandbox{lifecycle: lifecycle{work: work, owned: owned}, cfg: cfg, netns: os.Geteuid() == 0}
	s.base, err = os.MkdirTemp(work, "process-")
	if err != nil {
		return nil, err
	}
	if err := s.layout(); err != nil {
		s.Close()
		return nil, err
	}
	if s.cfg.Storage.Lambda() {
		// The extensions and the runtime (and $ORIGIN libraries) are served
		// lazily; the loader and the host's libraries are not.
		s.backing = s.base
		s.lazy, err = serveLazy(&s.cfg, s.backing, s.backing+".lazy")
		if err != nil {
			s.Close()
			return nil, err
		}
		s.base = s.lazy.mount
		s.files = s.lazy.throughAll(s.files)
	}
	return s, nil
}

// layout copies the extensions and the bootstrap and lists the files a cold
// run evicts: the copies plus the host libraries they load (which other host
// processes may keep resident: the eviction report shows what stayed).
// Libraries the loader finds through $ORIGIN are copied too, to the same place
// relative to the copy (base/opt/lib for $ORIGIN/../lib of
// base/opt/extensions/NAME), as in the OCI rootfs.
func (s *processSandbox) layout() error {
	t := newTree("/", s.base)
	host := newTree("/", "") // dry: the host files the loader will read
	add := func(from, inside, what string) error {
		if err := t.place(from, inside, 0o755); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		// Fail now, not inside the run, when a library is missing.
		return addLoadable(host, t, "", from, inside, what, 0)
	}
	if s.cfg.Image != "" {
		return badInput("--image needs --sandbox oci: an image is a root filesystem, and the process sandbox runs on this machine's")
	}
	zipped, err := layOutZips(&s.cfg, s.base)
	if err != nil {
		return err
	}
	t.record(zipped)
	if err := checkPlaced(&s.cfg); err != nil {
		return err
	}
	for _, e := range s.cfg.Extensions {
		if err := add(e.Path, filepath.Join(ExtensionsDir, e.Name), "extension "+e.Name); err != nil {
			return err
		}
	}
	for _, e := range s.cfg.placed {
		if err := add(e.Path, filepath.Join(ExtensionsDir, e.Name), "extension "+e.Name+" (from "+filepath.Base(e.Layer)+")"); err != nil {
			return err
		}
	}
	if s.cfg.Function != "" {
		if err := add(inRoot(s.base, s.cfg.runtimePath()), s.cfg.runtimePath(), "bootstrap (from "+filepath.Base(s.cfg.Function)+")"); err != nil {
			return err
		}
	}
	if s.cfg.Bootstrap != "" {
		if err := add(s.cfg.Bootstrap, BootstrapPath, "bootstrap"); err != nil {
			return err
		}
	}
	s.files = append(t.Files(), host.Files()...)
	s.moved = map[string]bool{}
	for _, f := range t.Files() {
		if rel, err := filepath.Rel(s.base, f); err == nil {
			if in := "/" + filepath.ToSlash(rel); !strings.HasPrefix(in, ExtensionsDir+"/") && !strings.HasPrefix(in, "/var/runtime/") {
				s.moved[in] = true
			}
		}
	}
	return writeFile(s.base, "/etc/hosts", etcHosts, 0o644)
}

func (s *processSandbox) Kind() string {
	k := s.kind()
	if s.lazy != nil {
		k += "; " + s.cfg.Storage.String() + " for the extensions and the runtime only: the ELF interpreter and the host's libraries are read from this machine's disk, not lazily"
	}
	return k
}

func (s *processSandbox) kind() string {
	if s.netns {
		return "process (no isolation: host root filesystem and libraries, no memory limit or CPU quota; own network namespace and /etc/hosts)"
	}
	return "process (no isolation: host root filesystem, libraries and network, no memory limit or CPU quota)"
}

func (s *processSandbox) Files() []string { return append([]string(nil), s.files...) }

func (s *processSandbox) Extensions() []Extension { return s.cfg.allExtensions() }

func (s *processSandbox) RuntimePath() string { return s.cfg.runtimePath() }

// HostPath maps /opt/extensions, /var/runtime and the libraries found through
// $ORIGIN into the stand-in base directory; every other path (the interpreter,
// the host's libraries) is the host's own.
func (s *processSandbox) HostPath(inside string) string {
	p := inside
	if strings.HasPrefix(inside, ExtensionsDir+"/") || strings.HasPrefix(inside, "/var/runtime/") || s.moved[path.Clean(inside)] || s.unpacked(inside) {
		p = filepath.Join(s.base, inside)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// unpacked says whether inside is where the layers or the function zip
// were unpacked in the stand-in base (/opt, /var/task).
func (s *processSandbox) unpacked(inside string) bool {
	if len(s.cfg.Layers) == 0 && s.cfg.Function == "" {
		return false
	}
	return strings.HasPrefix(inside, "/opt/") || strings.HasPrefix(inside, "/var/task/")
}

// Close removes the stand-in base directory. Runs still alive are deleted
// first.
func (s *processSandbox) Close() error { return s.close(s, s.base, s.backing) }

// Create starts the platform as a child process that blocks on fd 3 (its
// --wait-fd) until Start closes the other end of the pipe. Unlike the OCI
// sandbox, the platform binary has already been exec'd when PID is known.
func (s *processSandbox) Create(ctx context.Context, runID string) (Instance, error) {
	n, name, err := s.nextRun(runID)
	if err != nil {
		return nil, err
	}
	if s.lazy != nil {
		if err := s.lazy.reset(n); err != nil {
			return nil, err
		}
	}
	runDir := filepath.Join(s.work, "runs", fmt.Sprintf("process-%d-%s", os.Getpid(), name))
	in := &procInstance{sb: s, outDir: filepath.Join(runDir, "out"), done: make(chan struct{}), out: newTail(64 << 10)}
	if err := os.MkdirAll(in.outDir, 0o755); err != nil {
		return nil, err
	}
	args := s.cfg.Init
	if len(args) == 0 {
		boot := ""
		if p := s.cfg.runtimePath(); p != "" {
			boot = filepath.Join(s.base, p)
		}
		args = append(s.cfg.platformArgs(s.cfg.Initprof, filepath.Join(s.base, ExtensionsDir), boot, filepath.Join(in.outDir, TimelineName)), "--wait-fd", "3")
	}
	waitR, waitW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		waitR.Close()
		waitW.Close()
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = in.outDir
	cmd.Env = append(s.cfg.env(), "INITPROF_OUT_DIR="+in.outDir)
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{waitR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own session (and process group): Delete kills every process
		// of the session, so what an extension forked (in the extension's
		// own process group, or double-forked away from it) goes too, as
		// on Lambda, which discards the whole environment.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL, // and the kernel does if we die first
	}
	if s.netns {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
		// Unshareflags (not Cloneflags) for the mount namespace: Go then makes
		// it private (MS_REC|MS_PRIVATE), so our bind mount can't leak out.
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	register(in)
	t0 := time.Now()
	err = startOnForkThread(cmd)
	waitR.Close()
	outW.Close()
	if err != nil {
		waitW.Close()
		outR.Close()
		unregister(in)
		return nil, fmt.Errorf("starting %s: %v", args[0], err)
	}
	in.cmd, in.wait = cmd, waitW
	in.outEOF = make(chan struct{})
	go func() {
		defer close(in.outEOF)
		defer outR.Close()
		in.out.copyFrom(outR, s.cfg.Output)
	}()
	go func() {
		defer close(in.done)
		err := cmd.Wait()
		in.state = cmd.ProcessState
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			in.waitErr = err
		}
	}()
	if s.netns {
		if err := enterAndSetup(cmd.Process.Pid, filepath.Join(s.base, "etc", "hosts")); err != nil {
			in.Delete()
			return nil, fmt.Errorf("preparing the process sandbox's namespaces: %v", err)
		}
	}
	in.over.Create = time.Since(t0)
	return in, nil
}

// forkThread runs every cmd.Start of the process sandbox on one OS thread
// that never exits. Pdeathsig fires when the *thread* that forked the child
// exits, and Go discards threads (enterAndSetup's, for one), so without this
// the platform could be SIGKILLed mid-run for no reason.
var forkThread struct {
	once sync.Once
	reqs chan func()
}

func startOnForkThread(cmd *exec.Cmd) error {
	forkThread.once.Do(func() {
		forkThread.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // forever
			for f := range forkThread.reqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	forkThread.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// enterAndSetup prepares the namespaces of the first process (pid), which is
// blocked on its wait fd: loopback up in its network namespace, and the
// sandbox's /etc/hosts bind-mounted over the host's in its (private) mount
// namespace, so `sandbox` and `sandbox.localdomain` resolve as on Lambda.
// setns applies to one thread, and a thread that joined another mount
// namespace can't come back, so this runs on a locked OS thread that is
// discarded (the goroutine ends still locked).
func enterAndSetup(pid int, hosts string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		errc <- func() error {
			// A thread shares its fs_struct with the whole process; joining a
			// mount namespace needs its own.
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare(CLONE_FS): %v", err)
			}
			for _, ns := range []struct {
				name string
				flag int
			}{{"net", unix.CLONE_NEWNET}, {"mnt", unix.CLONE_NEWNS}} {
				f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
				if err != nil {
					return err
				}
				err = unix.Setns(int(f.Fd()), ns.flag)
				f.Close()
				if err != nil {
					return fmt.Errorf("setns %s of pid %d: %v", ns.name, pid, err)
				}
			}
			if err := setLinkUp("lo"); err != nil {
				return err
			}
			if err := unix.Mount(hosts, "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mounting the sandbox's /etc/hosts: %v", err)
			}
			return nil
		}()
	}()
	return <-errc
}

func setLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %v", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %v", name, err)
	}
	return nil
}

// reapGroup reaps members of process group pgid that were reparented to us
// (we are a child subreaper once an OCI sandbox exists), so that killed
// extensions don't linger as zombies. Call it only after the leader is reaped.
func reapGroup(pgid int) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if err != nil { // ECHILD: none of ours left in the group
			return
		}
		if pid == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// procInstance is one run of the process sandbox.
type procInstance struct {
	sb      *processSandbox
	cmd     *exec.Cmd
	wait    *os.File // write end of the --wait-fd pipe
	outDir  string
	out     *tail
	outEOF  chan struct{}
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
	over    Overhead
	startMu sync.Mutex
	started bool
	delOnce sync.Once
	delErr  error
	storage *StorageStats
}

func (in *procInstance) PID() int           { return in.cmd.Process.Pid }
func (in *procInstance) OutDir() string     { return in.outDir }
func (in *procInstance) Output() []byte     { return in.out.bytes() }
func (in *procInstance) Overhead() Overhead { return in.over }

// Limits is empty: the process sandbox sets none.
func (in *procInstance) Limits() Limits { return Limits{MemoryBytes: -1, CPUQuotaUS: -1} }

// Rusage is the first process's resource usage, valid once Wait has returned.
func (in *procInstance) Rusage() syscall.Rusage {
	<-in.done
	if in.state == nil {
		return syscall.Rusage{}
	}
	if ru, ok := in.state.SysUsage().(*syscall.Rusage); ok {
		return *ru
	}
	return syscall.Rusage{}
}

func (in *procInstance) Start() error {
	in.startMu.Lock()
	defer in.startMu.Unlock()
	if in.started {
		return fmt.Errorf("process sandbox run already started")
	}
	in.started = true
	t0 := time.Now()
	err := in.wait.Close()
	in.over.Start = time.Since(t0)
	return err
}

func (in *procInstance) Wait(ctx context.Context) (int, error) {
	select {
	case <-in.done:
		select {
		case <-in.outEOF:
		case <-time.After(time.Second):
		}
		if in.state == nil {
			return -1, in.waitErr
		}
		return exitCode(in.state.Sys().(syscall.WaitStatus)), in.waitErr
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Delete kills the platform's whole session (the platform, the extensions,
// the runtime and anything they forked) and reaps it. Idempotent.
func (in *procInstance) Delete() error {
	in.delOnce.Do(func() {
		t0 := time.Now()
		if in.cmd != nil && in.cmd.Process != nil {
			pid := in.cmd.Process.Pid
			syscall.Kill(-pid, syscall.SIGKILL) // the group: platform and extensions
			killSession(pid)                    // and whatever they forked
			select {
			case <-in.done:
			case <-time.After(5 * time.Second):
				in.delErr = fmt.Errorf("process sandbox pid %d did not exit after SIGKILL", pid)
			}
			reapGroup(pid)
			if left := killSession(pid); left > 0 {
				// Forked while we were killing: once more, then report.
				time.Sleep(10 * time.Millisecond)
				if left = killSession(pid); left > 0 && in.delErr == nil {
					in.delErr = fmt.Errorf("process sandbox session %d: %d processes still alive after SIGKILL", pid, left)
				}
			}
			if in.wait != nil {
				in.wait.Close()
			}
			select {
			case <-in.outEOF:
			case <-time.After(2 * time.Second):
			}
		}
		in.over.Delete = time.Since(t0)
		if in.sb.lazy != nil {
			in.storage = in.sb.lazy.stats()
		}
		unregister(in)
	})
	return in.delErr
}

// Storage is the run's account (after Delete), nil with local storage.
func (in *procInstance) Storage() *StorageStats {
	if in.storage == nil && in.sb.lazy != nil {
		return in.sb.lazy.stats() // so far
	}
	return in.storage
}

// killSession SIGKILLs every process whose session is sid (the process
// sandbox's platform is a session leader) and returns how many it signalled.
func killSession(sid int) int {
	n := 0
	for _, pid := range sessionMembers(sid) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// sessionMembers lists the live (not zombie) processes of session sid, from
// /proc/PID/stat.
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 4 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if s, err := strconv.Atoi(f[3]); err == nil && s == sid {
			out = append(out, pid)
		}
	}
	return out
}

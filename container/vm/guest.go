package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The guest half. The initramfs holds the static arm64 initprof as /init; the
// kernel starts it as PID 1. cmd/initprof calls IsGuestInit from an init()
// and then GuestMain, which never returns.
//
// PID 1 prepares the machine (mounts, loopback) and then runs the job as a
// fresh child process: cilium/ebpf probes /proc/self/mountinfo in a package
// init() and caches the failure, and in PID 1 that init() ran before /proc
// was mounted. The child starts with everything in place.

// jobPath is where the initramfs holds the job description.
const jobPath = "/initprof-vm-job.json"

// job is what the guest runs: /init (initprof) with Argv, in Env, and the
// files of OutDir are sent back.
type job struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	OutDir string   `json:"out_dir"`
	Stdout string   `json:"stdout,omitempty"` // guest file for the job's stdout; "" = console
}

// IsGuestInit reports whether this process is initprof started by the
// kernel as /init of a microVM built by this package: PID 1, invoked as
// /init, with a job description present.
func IsGuestInit() bool {
	if os.Getpid() != 1 || len(os.Args) == 0 || os.Args[0] != "/init" {
		return false
	}
	_, err := os.Stat(jobPath)
	return err == nil
}

// GuestMain is PID 1 of the microVM: it mounts the kernel file systems the
// probes need, runs the job as a child, streams the job's output directory
// back over the console, prints the result marker and powers the VM off. It
// never returns.
func GuestMain() {
	console := io.Writer(os.Stdout)
	code := guestRun(console)
	fmt.Fprintf(console, "%s exit=%d run_ns=%d\n", markResult, code.exit, code.runNS)
	unix.Sync()
	// -no-reboot makes qemu exit on the guest's power-off (PSCI SYSTEM_OFF).
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Power-off failed: PID 1 exiting panics the kernel, and panic=-1 with
	// -no-reboot ends qemu all the same.
	os.Exit(1)
}

type guestResult struct {
	exit  int
	runNS int64
}

// guestExitSetup is the exit code when the guest could not start the job.
const guestExitSetup = 125

func guestRun(console io.Writer) guestResult {
	logf := func(format string, args ...any) {
		fmt.Fprintf(console, "initprof-vm: "+format+"\n", args...)
	}
	for _, m := range guestMounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil && !m.optional {
			logf("mkdir %s: %v", m.dir, err)
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			if m.optional {
				continue
			}
			logf("mount %s on %s: %v", m.fstype, m.dir, err)
		}
	}
	if err := loopbackUp(); err != nil {
		logf("bring lo up: %v", err)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Fprintf(console, "%s mono=%d kernel=%s machine=%s\n", markBooted, monoNow(),
		unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Machine[:]))

	b, err := os.ReadFile(jobPath)
	if err != nil {
		logf("read job: %v", err)
		return guestResult{exit: guestExitSetup}
	}
	var j job
	if err := json.Unmarshal(b, &j); err != nil {
		logf("job %s: %v", jobPath, err)
		return guestResult{exit: guestExitSetup}
	}
	if j.OutDir != "" {
		if err := os.MkdirAll(j.OutDir, 0o755); err != nil {
			logf("out dir: %v", err)
			return guestResult{exit: guestExitSetup}
		}
	}
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TMPDIR=/tmp", guestEnv + "=1"}, j.Env...)
	start := monoNow()
	stdout := os.Stdout
	if j.Stdout != "" {
		f, err := os.OpenFile(j.Stdout, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			logf("job stdout: %v", err)
			return guestResult{exit: guestExitSetup}
		}
		defer f.Close()
		stdout = f
	}
	var jobPID atomic.Int64
	watchInterrupt(logf, &jobPID)
	code, err := runChild(append([]string{"/init"}, j.Argv...), env, stdout, &jobPID)
	runNS := monoNow() - start
	if err != nil {
		logf("run job: %v", err)
		return guestResult{exit: guestExitSetup, runNS: runNS}
	}
	// Whatever the job left running (extensions, a stuck runtime) must not
	// write into the result frames.
	_ = unix.Kill(-1, unix.SIGKILL)
	reapAll()
	// Quiet the kernel's console while files stream: only emergencies print.
	_ = os.WriteFile("/proc/sys/kernel/printk", []byte("1"), 0)
	if j.OutDir != "" {
		if err := sendDir(console, j.OutDir); err != nil {
			logf("send results: %v", err)
			if code == 0 {
				code = guestExitSetup
			}
		}
	}
	return guestResult{exit: code, runNS: runNS}
}

type guestMount struct {
	fstype, dir string
	flags       uintptr
	data        string
	optional    bool
}

// guestMounts are what the probes and the platform need: /proc (cilium/ebpf,
// process trees), /sys with tracefs (uprobes, tracepoints) and bpffs, cgroup2
// (the sandbox's limits, doctor's cgroup check), devtmpfs, and a tmpfs /tmp.
var guestMounts = []guestMount{
	{fstype: "proc", dir: "/proc", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{fstype: "sysfs", dir: "/sys", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{fstype: "devtmpfs", dir: "/dev", flags: unix.MS_NOSUID, data: "mode=0755"},
	{fstype: "tracefs", dir: "/sys/kernel/tracing"},
	{fstype: "debugfs", dir: "/sys/kernel/debug", optional: true},
	{fstype: "bpf", dir: "/sys/fs/bpf", data: "mode=0700"},
	{fstype: "cgroup2", dir: "/sys/fs/cgroup", optional: true},
	{fstype: "tmpfs", dir: "/tmp", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777"},
	{fstype: "tmpfs", dir: "/run", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755"},
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// loopbackUp sets IFF_UP on lo; the kernel then gives it 127.0.0.1/8, which
// the platform's API (127.0.0.1:9001) listens on.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// runChild starts argv with the console as stdio and reaps every child (PID 1
// inherits orphans) until argv's own process exits. It returns its exit code,
// 128+signal when it was killed.
func runChild(argv, env []string, stdout *os.File, pid *atomic.Int64) (int, error) {
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{os.Stdin, stdout, os.Stderr},
	})
	if err != nil {
		return 0, err
	}
	pid.Store(int64(p.Pid))
	defer pid.Store(0)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait: %w", err)
		}
		if pid != p.Pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}

// reapAll collects the processes killed after the job, waiting at most a
// second for them.
func reapAll() {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			return
		}
		if pid <= 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// sendDir frames every regular file under dir, in name order.
func sendDir(w io.Writer, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	var errs []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			err = writeFrame(w, n, b)
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if errs != nil {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// watchInterrupt reads the console's input for the host's markInterrupt and
// sends SIGINT to the job (*pid) when it comes, so an interrupted run keeps
// its partial results, as on x86. Echo is turned off first: an echoed mark
// must not land in the middle of a result frame.
func watchInterrupt(logf func(string, ...any), pid *atomic.Int64) {
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO | unix.ECHONL
		_ = unix.IoctlSetTermios(0, unix.TCSETS, t)
	}
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), markInterrupt) {
				continue
			}
			if p := pid.Load(); p > 0 {
				logf("interrupted by the host: SIGINT to the job (pid %d)", p)
				_ = unix.Kill(int(p), unix.SIGINT)
			}
		}
	}()
}

// guestEnv is set in the job's environment inside the microVM.
const guestEnv = "INITPROF_IN_VM"

// InGuest reports whether this process is the job (or its child) inside the
// microVM.
func InGuest() bool { return os.Getenv(guestEnv) != "" }

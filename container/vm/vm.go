// Package vm runs initprof inside an arm64 microVM under qemu-system-aarch64,
// so that arm64 extension builds are profiled with the same probes, phases and
// outputs on an x86 machine. Under TCG emulation the timings are not
// Graviton's, but the checkpoints, symbols, relocations and stack shapes are
// real arm64.
//
// The VM has no disk and no network: the kernel boots Debian's arm64 cloud
// Image with an initramfs built here in memory (cpio newc + gzip, no external
// tools) holding the static arm64 initprof as /init, the files to run (the
// extensions, their ld.so and libraries), and a JSON job. In the guest, PID 1
// (GuestMain) mounts proc, sysfs, tracefs and bpffs, runs initprof as a child
// with the job's argv, and streams the job's output directory back over the
// serial console as framed base64; Run verifies each file's size and SHA-256
// and writes it to the host.
package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/internal/doctor"
)

// EmulatedNote is the label every report made in this VM carries: under TCG
// the checkpoints, phases, symbols and stack shapes are real arm64, but the
// durations are not Graviton's (Go code runs 8-15x slower than native).
const EmulatedNote = "emulated — timings are not representative of Graviton"

// File is one file to place in the guest's initramfs.
type File struct {
	GuestPath string      // absolute path in the guest, e.g. /opt/extensions/goext
	HostPath  string      // the file to copy (symlinks followed)
	Mode      os.FileMode // permission bits; 0 means 0755 for executables, else 0644
}

// Config describes one VM run.
type Config struct {
	// Kernel is the arm64 Image; "" means the cached one at
	// doctor.ARM64KernelPath() (`make arm64-kernel`).
	Kernel string
	// QEMU is the emulator; "" means qemu-system-aarch64 from PATH.
	QEMU string
	// MemoryMB is the guest's RAM (default 1024) and CPUs its vCPUs (default 2).
	MemoryMB, CPUs int
	// Initprof is the static arm64 initprof binary (`make build-arm64`); it
	// becomes the guest's /init and runs the job.
	Initprof string
	// Files are copied into the initramfs (see ClosureFiles for an
	// executable's ld.so and libraries).
	Files []File
	// Argv are the initprof arguments run in the guest, e.g.
	// ["platform", "--extensions", "/opt/extensions", ...]. Env is added to
	// the job's environment (PATH, HOME and TMPDIR are set).
	Argv []string
	Env  []string
	// OutDir is the guest directory whose regular files come back to the host
	// after the job (default /out; the guest creates it before the job runs).
	OutDir string
	// Stdout, when set, is a guest file (usually under OutDir) that receives
	// the job's stdout, e.g. /out/doctor.json for `doctor --json`; otherwise
	// stdout, like stderr, goes to the console.
	Stdout string
	// Timeout bounds the whole VM, boot included (default 10 minutes).
	// BootTimeout bounds qemu start → the guest's PID 1 reporting it is up
	// (default 2 minutes; a boot takes 2-7 s under TCG), so that a guest that
	// hangs before /init runs fails fast with its console tail.
	// RunTimeout, when > 0, bounds the job from the moment the guest's PID 1
	// reports it has booted. Either one kills qemu.
	Timeout, BootTimeout, RunTimeout time.Duration
	// Console, when set, receives the guest's console lines live (the result
	// frames excepted).
	Console io.Writer
	// Name is qemu's -name, which appears in its command line; "" picks a
	// unique initprof-vm-<pid>-<n>.
	Name string
}

// Result is what one VM run measured and returned.
type Result struct {
	// ExitCode is the guest job's exit code (128+signal when killed; 125 when
	// the guest could not start the job).
	ExitCode int
	// Boot is qemu start → the guest's PID 1 reporting it is up (mounts done).
	// Run is that moment → the result marker (the job plus sending its
	// files). GuestRun is the job alone, measured in the guest. Total is qemu
	// start → qemu exit.
	Boot, Run, GuestRun, Total time.Duration
	// Kernel and Machine are the guest's uname -r and uname -m.
	Kernel, Machine string
	// Files are the names (relative to OutDir) of the files written to the
	// host out directory, in the order they arrived.
	Files []string
	// InitramfsBytes is the size of the initramfs given to qemu.
	InitramfsBytes int64
	// ConsoleTail is the last lines of the guest console (frames excepted).
	ConsoleTail string
}

// ExitError is returned with the Result when the guest job exited non-zero.
type ExitError struct {
	Argv        []string
	Code        int
	ConsoleTail string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("arm64 VM: guest job `initprof %s` exited with code %d\n%s",
		strings.Join(e.Argv, " "), e.Code, tailBlock(e.ConsoleTail))
}

// GuestCrashError is a crash of the guest's kernel (an oops or a panic)
// seen on the console. The run is lost but the cause lies in the guest
// kernel, not in what ran: Debian's 6.12 arm64 kernel under TCG oopses now
// and then in perf_ctx_sched_task_cb while tasks carrying per-task perf
// events fork. A fresh VM is the remedy (see Run's callers).
type GuestCrashError struct {
	Line        string // the console line that showed the crash
	ConsoleTail string
}

func (e *GuestCrashError) Error() string {
	return fmt.Sprintf("arm64 VM: the guest kernel crashed (%s); killed qemu\n%s", e.Line, tailBlock(e.ConsoleTail))
}

// crashMarks are console texts the kernel prints when it oopses or panics.
var crashMarks = []string{"Internal error: Oops", "Kernel panic - not syncing", "Unable to handle kernel", "BUG: kernel NULL pointer"}

// crashLine says whether a console line reports a guest kernel crash, and
// returns the part worth quoting.
func crashLine(line string) (string, bool) {
	if strings.Contains(line, "Attempted to kill init") {
		// /init itself exited: initprof's own failure (or a broken /init),
		// reported as such, never retried.
		return "", false
	}
	for _, m := range crashMarks {
		if i := strings.Index(line, m); i >= 0 {
			return strings.TrimSpace(line[i:]), true
		}
	}
	return "", false
}

// crashGrace is how long the console is read after a crash is seen, so the
// oops's call trace is in the error, before qemu is killed.
const crashGrace = 2 * time.Second

func tailBlock(tail string) string {
	if tail == "" {
		return "--- guest console: (empty) ---"
	}
	return "--- guest console (last lines) ---\n" + strings.TrimRight(tail, "\n")
}

// consoleTailLines is how many console lines errors and Result carry.
const consoleTailLines = 40

var vmSeq atomic.Int64

// Run boots the VM, runs the job, writes the returned files under hostOutDir
// and powers the VM off. qemu is killed on ctx cancellation and on timeout, and
// is always waited for: no qemu process outlives Run. A non-zero guest exit
// code returns the Result and an *ExitError; boot or transport failures return
// an error that carries the console tail.
func Run(ctx context.Context, cfg Config, hostOutDir string) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if hostOutDir == "" {
		return nil, errors.New("arm64 VM: no host out directory given")
	}
	initrd, err := os.CreateTemp("", container.VMImagePattern())
	if err != nil {
		return nil, fmt.Errorf("arm64 VM: initramfs: %w", err)
	}
	defer os.Remove(initrd.Name())
	if err := writeInitramfs(initrd, cfg); err != nil {
		initrd.Close()
		return nil, err
	}
	st, err := initrd.Stat()
	if cerr := initrd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("arm64 VM: initramfs: %w", err)
	}
	res := &Result{ExitCode: -1, InitramfsBytes: st.Size()}
	d, err := cfg.boot(ctx, initrd.Name(), res)
	if err != nil {
		return res, err
	}
	return res, cfg.collect(res, d, hostOutDir)
}

// CrashAttempts bounds the boots of one job in RunRetrying when the guest
// kernel crashes.
const CrashAttempts = 3

// RunRetrying is Run, booting a fresh VM (hostOutDir emptied first) when the
// guest kernel crashed (*GuestCrashError), up to CrashAttempts boots in all.
// onRetry, if not nil, hears of each crash before the next boot. Any other
// error, or a cancelled ctx, returns at once.
func RunRetrying(ctx context.Context, cfg Config, hostOutDir string, onRetry func(crash *GuestCrashError, nextAttempt int)) (*Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := Run(ctx, cfg, hostOutDir)
		var crash *GuestCrashError
		if !errors.As(err, &crash) || attempt == CrashAttempts || ctx.Err() != nil {
			return res, err
		}
		// The guest kernel's bug, not the job's: the whole job reruns in a
		// fresh VM, and nothing of the crashed one is kept.
		if onRetry != nil {
			onRetry(crash, attempt+1)
		}
		if err := os.RemoveAll(hostOutDir); err != nil {
			return res, err
		}
		if err := os.MkdirAll(hostOutDir, 0o755); err != nil {
			return res, fmt.Errorf("arm64 VM: out directory %s: %v", hostOutDir, err)
		}
	}
}

// defaults fills the zero values and checks every input, so that a bad one
// fails before qemu starts, with a message that names it.
func (c *Config) defaults() error {
	if c.Kernel == "" {
		p, err := doctor.ARM64KernelPath()
		if err != nil {
			return fmt.Errorf("arm64 VM: kernel: %w", err)
		}
		c.Kernel = p
	}
	if err := checkKernel(c.Kernel); err != nil {
		return err
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-aarch64"
	}
	q, err := exec.LookPath(c.QEMU)
	if err != nil {
		return fmt.Errorf("arm64 VM: %s not found: install it with `apt-get install qemu-system-arm`", c.QEMU)
	}
	c.QEMU = q
	if c.MemoryMB == 0 {
		c.MemoryMB = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.MemoryMB < 128 || c.CPUs < 1 {
		return fmt.Errorf("arm64 VM: memory %d MB / %d CPUs: want at least 128 MB and 1 CPU", c.MemoryMB, c.CPUs)
	}
	if c.Initprof == "" {
		return errors.New("arm64 VM: no arm64 initprof binary given: build one with `make build-arm64`")
	}
	if err := checkStaticARM64(c.Initprof); err != nil {
		return err
	}
	if len(c.Argv) == 0 {
		return errors.New("arm64 VM: empty guest argv: give the initprof arguments to run in the guest")
	}
	if c.OutDir == "" {
		c.OutDir = "/out"
	}
	if !path.IsAbs(c.OutDir) || path.Clean(c.OutDir) == "/" {
		return fmt.Errorf("arm64 VM: guest out dir %q: want an absolute directory other than /", c.OutDir)
	}
	if c.Stdout != "" && (!path.IsAbs(c.Stdout) || strings.HasSuffix(c.Stdout, "/")) {
		return fmt.Errorf("arm64 VM: guest stdout file %q: want an absolute file path", c.Stdout)
	}
	for _, f := range c.Files {
		if !path.IsAbs(f.GuestPath) || reserved[path.Clean(f.GuestPath)] {
			return fmt.Errorf("arm64 VM: guest path %q (for %s): want an absolute path other than /init and %s", f.GuestPath, f.HostPath, jobPath)
		}
		if st, err := os.Stat(f.HostPath); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("arm64 VM: file %s (for %s): not a readable regular file", f.HostPath, f.GuestPath)
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = 2 * time.Minute
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("initprof-vm-%d-%d", os.Getpid(), vmSeq.Add(1))
	}
	return nil
}

// checkKernel refuses what qemu would not boot: with a file that is not an
// arm64 Image, -kernel jumps into garbage and the guest hangs silently.
func checkKernel(p string) error {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("arm64 VM: no arm64 kernel at %s: fetch it with `make arm64-kernel` (scripts/arm64-kernel.sh)", p)
		}
		return fmt.Errorf("arm64 VM: kernel: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, 64)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x38:0x3c]) != "ARM\x64" {
		return fmt.Errorf("arm64 VM: %s is not an arm64 kernel Image (no ARM\\x64 magic at 0x38): fetch one with `make arm64-kernel`", p)
	}
	return nil
}

var reserved = map[string]bool{"/init": true, jobPath: true}

// checkStaticARM64 refuses a binary the guest's kernel could not start as
// /init: not ELF, not aarch64, or dynamically linked (no libraries there).
func checkStaticARM64(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("arm64 VM: initprof binary %s: %v (build it with `make build-arm64`)", p, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("arm64 VM: initprof binary %s is %s, not aarch64: build it with `make build-arm64`", p, f.Machine)
	}
	for _, pr := range f.Progs {
		if pr.Type == elf.PT_INTERP {
			return fmt.Errorf("arm64 VM: initprof binary %s is dynamically linked: build it with CGO_ENABLED=0 (`make build-arm64`)", p)
		}
	}
	return nil
}

// writeInitramfs writes the gzip-compressed newc initramfs for cfg (after
// defaults) to w: /init (cfg.Initprof), /dev/console, the job description,
// /etc/hosts, the mount points, and cfg.Files. gzip -1: the kernel unpacks it
// no slower than an uncompressed archive (measured side by side under TCG),
// and it is 40% smaller.
func writeInitramfs(w io.Writer, cfg Config) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := writeCPIO(zw, cfg); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("arm64 VM: initramfs: %w", err)
	}
	return nil
}

func writeCPIO(w io.Writer, cfg Config) error {
	c := newCPIOWriter(w)
	bin, err := os.ReadFile(cfg.Initprof)
	if err != nil {
		return fmt.Errorf("arm64 VM: initprof binary: %w", err)
	}
	j, err := json.Marshal(job{Argv: cfg.Argv, Env: cfg.Env, OutDir: cfg.OutDir, Stdout: cfg.Stdout})
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { return c.File("/init", 0o755, bin) },
		func() error { return c.CharDev("/dev/console", 0o600, 5, 1) },
		func() error { return c.File(jobPath, 0o644, j) },
		func() error {
			return c.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost sandbox sandbox.localdomain\n::1 localhost\n"))
		},
		func() error { return c.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/init\n")) },
	}
	for _, d := range []string{"/proc", "/sys", "/tmp", "/run", "/root", "/var/tmp"} {
		steps = append(steps, func() error { return c.Dir(d, 0o755) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("arm64 VM: initramfs: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, f := range cfg.Files {
		g := path.Clean(f.GuestPath)
		if seen[g] {
			continue // the same library named twice (two extensions' closures)
		}
		seen[g] = true
		b, err := os.ReadFile(f.HostPath)
		if err != nil {
			return fmt.Errorf("arm64 VM: file for %s: %w", f.GuestPath, err)
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
			if bytes.HasPrefix(b, []byte("\x7fELF")) || bytes.HasPrefix(b, []byte("#!")) {
				mode = 0o755
			}
		}
		if err := c.File(g, uint32(mode), b); err != nil {
			return fmt.Errorf("arm64 VM: initramfs: %w", err)
		}
	}
	return c.Close()
}

// qemuArgs is the VM: TCG with pauth-impdef (plain -cpu max emulates pointer
// authentication at ~3x the boot cost), no display, no reboot (power-off and
// panics end qemu), the serial console on stdout, and no NIC: the guest needs
// no network, and virt's default virtio NIC makes qemu load efi-virtio.rom,
// which lives in ipxe-qemu (a Recommends that a minimal install skips).
func (c *Config) qemuArgs(initrd string) []string {
	return []string{
		"-name", c.Name,
		"-M", "virt", "-cpu", "max,pauth-impdef=on",
		"-smp", fmt.Sprint(c.CPUs), "-m", fmt.Sprint(c.MemoryMB),
		"-nographic", "-monitor", "none", "-no-reboot", "-nic", "none",
		"-kernel", c.Kernel, "-initrd", initrd,
		"-append", "console=ttyAMA0 panic=-1 quiet",
	}
}

// interruptGrace bounds how long an interrupted guest may take to write and
// send back its partial results (emulated, so generous).
const interruptGrace = 2 * time.Minute

type stamped struct {
	line string
	at   time.Time
}

// boot runs qemu to its end, feeding the console to a decoder.
func (c *Config) boot(ctx context.Context, initrd string, res *Result) (*decoder, error) {
	cmd := exec.Command(c.QEMU, c.qemuArgs(initrd)...)
	// qemu dies with us even if we are killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("arm64 VM: start %s: %w", c.QEMU, err)
	}
	lines := make(chan stamped, 256)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(out, 64<<10)
		for {
			s, err := r.ReadString('\n')
			if s != "" {
				lines <- stamped{strings.TrimRight(s, "\n"), time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()

	d := &decoder{}
	tail := &ring{max: consoleTailLines}
	total := time.NewTimer(c.Timeout)
	defer total.Stop()
	bootTimer := time.NewTimer(c.BootTimeout)
	defer bootTimer.Stop()
	var runTimer, crashTimer, graceTimer <-chan time.Time
	var booted time.Time
	var failure error
	crashed := ""
	ctxDone := ctx.Done()
	kill := func(why error) {
		ctxDone, runTimer = nil, nil
		if failure == nil {
			failure = why
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
	}
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				break
			}
			switch d.Line(l.line) {
			case lineConsole:
				tail.add(l.line)
				if c.Console != nil {
					fmt.Fprintln(c.Console, strings.TrimRight(l.line, "\r"))
				}
				if what, ok := crashLine(l.line); ok && crashed == "" {
					// A crashed guest kernel often hangs (here: an oops with
					// the run queue locked) until the total timeout: stop
					// once the trace is out.
					crashed = what
					crashTimer = time.After(crashGrace)
				}
			case lineBooted:
				booted = l.at
				bootTimer.Stop()
				res.Boot = booted.Sub(start)
				res.Kernel, res.Machine = d.kernel, d.mach
				if c.RunTimeout > 0 {
					runTimer = time.After(c.RunTimeout)
				}
			case lineResult:
				res.Run = l.at.Sub(booted)
			}
		case <-ctxDone:
			ctxDone = nil
			if !d.booted {
				kill(fmt.Errorf("arm64 VM: %w; killed qemu", ctx.Err()))
				break
			}
			// Ask the guest to interrupt the job, which then writes its
			// partial results; they come back as usual unless the grace
			// runs out.
			if _, err := io.WriteString(in, "\n"+markInterrupt+"\n"); err != nil {
				kill(fmt.Errorf("arm64 VM: %w; killed qemu", ctx.Err()))
				break
			}
			graceTimer = time.After(interruptGrace)
		case <-graceTimer:
			kill(fmt.Errorf("arm64 VM: %w, and the guest did not stop within %s; killed qemu", ctx.Err(), interruptGrace))
		case <-bootTimer.C:
			kill(fmt.Errorf("arm64 VM: the guest did not boot within %s; killed qemu", c.BootTimeout))
		case <-total.C:
			kill(fmt.Errorf("arm64 VM: the VM ran longer than %s; killed qemu", c.Timeout))
		case <-runTimer:
			kill(fmt.Errorf("arm64 VM: the guest job ran longer than %s after boot; killed qemu", c.RunTimeout))
		case <-crashTimer:
			crashTimer = nil
			kill(&GuestCrashError{Line: crashed})
		}
	}
	werr := cmd.Wait()
	res.Total = time.Since(start)
	d.end()
	res.ConsoleTail = tail.String()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		res.ConsoleTail += "qemu: " + s + "\n"
	}
	if crashed != "" {
		// Whatever else happened (a timeout, qemu exiting on the panic), the
		// crash is the cause.
		return nil, &GuestCrashError{Line: crashed, ConsoleTail: res.ConsoleTail}
	}
	if failure != nil {
		return nil, fmt.Errorf("%w\n%s", failure, tailBlock(res.ConsoleTail))
	}
	if !d.booted {
		return nil, fmt.Errorf("arm64 VM: the guest never started /init (qemu: %v)\n%s", exitDesc(werr), tailBlock(res.ConsoleTail))
	}
	if !d.done {
		return nil, fmt.Errorf("arm64 VM: the guest stopped before reporting a result (qemu: %v)\n%s", exitDesc(werr), tailBlock(res.ConsoleTail))
	}
	res.ExitCode = d.exit
	res.GuestRun = time.Duration(d.runNS)
	return d, nil
}

func exitDesc(err error) string {
	if err == nil {
		return "exited 0"
	}
	return err.Error()
}

// collect writes the decoded files and turns frame errors and a non-zero exit
// into errors.
func (c *Config) collect(res *Result, d *decoder, hostOutDir string) error {
	if err := os.MkdirAll(hostOutDir, 0o755); err != nil {
		return fmt.Errorf("arm64 VM: out dir: %w", err)
	}
	for _, f := range d.files {
		p := filepath.Join(hostOutDir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("arm64 VM: out dir: %w", err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("arm64 VM: write %s: %w", p, err)
		}
		res.Files = append(res.Files, f.Name)
	}
	if len(d.errors) > 0 {
		return fmt.Errorf("arm64 VM: %w\n%s", errors.Join(d.errors...), tailBlock(res.ConsoleTail))
	}
	if res.ExitCode != 0 {
		return &ExitError{Argv: c.Argv, Code: res.ExitCode, ConsoleTail: res.ConsoleTail}
	}
	return nil
}

// ring keeps the last max lines.
type ring struct {
	max   int
	lines []string
}

func (r *ring) add(l string) {
	l = strings.TrimRight(l, "\r")
	if len(r.lines) == r.max {
		r.lines = append(r.lines[:0], r.lines[1:]...)
	}
	r.lines = append(r.lines, l)
}

func (r *ring) String() string {
	if len(r.lines) == 0 {
		return ""
	}
	return strings.Join(r.lines, "\n") + "\n"
}

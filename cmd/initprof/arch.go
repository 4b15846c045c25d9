package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/scripts"
)

// archNames maps --arch values to elfinfo's (uname -m) names.
var archNames = map[string]string{"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

// foreignArch reports whether --arch asks for another architecture than the
// host's, in which case the run goes to the arm64 microVM.
func foreignArch(arch string) (bool, error) {
	if arch == "" {
		return false, nil
	}
	want, ok := archNames[arch]
	if !ok {
		return false, badInput("--arch %q: use amd64 or arm64", arch)
	}
	if want == hostELFArch() {
		return false, nil
	}
	if want != "aarch64" {
		return false, badInput("--arch %s on a %s host: only arm64 can be emulated (in a qemu microVM)", arch, hostELFArch())
	}
	return true, nil
}

// runInVM profiles arm64 extensions on an x86 host: it boots the arm64
// microVM with the extensions, their arm64 loader and libraries, and the
// arm64 initprof as PID 1, runs `initprof run --sandbox process` there, and
// writes what comes back into --out. Timings under TCG are not Graviton's; the
// report says so, but checkpoints, phases, symbols and stack shapes are real
// arm64.
func runInVM(o *runOpts, args []string) error {
	if err := o.validate(args); err != nil {
		return err
	}
	items := make([]vmItem, len(args))
	for i, a := range args {
		items[i] = vmItem{path: a}
	}
	return inVM(o, "run", items)
}

// compareInVM is compare's counterpart of runInVM: the builds are compared
// interleaved inside one guest, so emulation slows them all alike.
func compareInVM(o *runOpts, bs []buildArg) error {
	if err := o.validate([]string{"-"}); err != nil {
		return err
	}
	items := make([]vmItem, len(bs))
	for i, b := range bs {
		items[i] = vmItem{label: b.name, path: b.path}
	}
	if o.name == "" {
		// Every build runs under one name, as compare does on the host.
		o.name = filepath.Base(bs[0].path)
	}
	return inVM(o, "compare", items)
}

// guestCrashAttempts bounds the microVM boots of one run or compare when the
// guest kernel crashes (vm.GuestCrashError).
const guestCrashAttempts = 3

// guestRuntimes are the OCI runtimes the microVM can carry for --sandbox oci
// (--oci-runtime; "" is runc), at their paths in the arm64 sysroot and in
// the guest.
var guestRuntimes = map[string]string{"": "usr/sbin/runc", "runc": "usr/sbin/runc", "crun": "usr/bin/crun"}

// vmItem is one binary to carry into the guest: an extension for run, or a
// NAME=PATH build for compare (label is the NAME).
type vmItem struct{ label, path string }

// inVM runs `initprof CMD` in the arm64 microVM over items and brings its
// output directory back to --out.
func inVM(o *runOpts, cmd string, items []vmItem) error {
	if err := o.sample.validate(o.runs); err != nil {
		return err
	}
	guestBin, err := selfbin.Static("arm64", selfbin.Options{Progress: func(s string) { progressf("%s", s) }})
	if err != nil {
		return badInput("the arm64 microVM needs a static arm64 initprof: %v", err)
	}
	kernel, err := doctor.ARM64KernelPath()
	if err == nil {
		_, err = os.Stat(kernel)
	}
	if err != nil {
		return badInput("no arm64 kernel for the microVM (%v): fetch it with 'initprof doctor --fix'", err)
	}
	sysroot, err := arm64Sysroot(o.rootfs)
	if err != nil {
		return err
	}
	var files []vm.File
	var guestArgs []string
	for _, it := range items {
		a := it.path
		info, err := elfinfo.Open(a)
		if err != nil {
			return badInput("%v", err)
		}
		if info.Arch != "aarch64" {
			return badInput("%s is a %s binary, not arm64: drop --arch, or give an arm64 build", a, info.Arch)
		}
		name := filepath.Base(a)
		if o.name != "" {
			name = o.name
		}
		guest, arg := "/var/task/ext/"+name, ""
		if it.label != "" {
			guest = "/var/task/" + it.label + "/" + name
			arg = it.label + "="
		}
		root := ""
		if info.Interp != "" {
			if root, err = sysroot.get(); err != nil {
				return err
			}
		}
		fs, err := vm.ClosureFiles(a, guest, root)
		if err != nil {
			return badInput("%s: %v (give an arm64 root filesystem with --rootfs, or run 'initprof doctor --fix')", a, err)
		}
		files = append(files, fs...)
		guestArgs = append(guestArgs, arg+guest)
	}
	out, err := outDir(o.out, o.force, cmd+"-arm64")
	if err != nil {
		return err
	}

	// The guest runs the process sandbox unless --sandbox oci asks for the
	// container: then Debian's arm64 runc and its libraries come along, and
	// the runs get the memory and CPU limits on the guest's cgroup v2.
	sandbox := []string{"--sandbox", "process"}
	if o.sandboxSet && o.sandbox == "oci" {
		rt, ok := guestRuntimes[o.ociRuntime]
		if !ok {
			return badInput("--oci-runtime %q in the arm64 microVM: use runc (the default) or crun, Debian's arm64 builds from the sysroot", o.ociRuntime)
		}
		root, err := sysroot.get()
		if err != nil {
			return err
		}
		fs, err := vm.ClosureFiles(filepath.Join(root, rt), "/"+rt, root)
		if err != nil {
			return badInput("--sandbox oci in the arm64 microVM needs Debian's arm64 %s in %s (%v): run 'initprof doctor --fix'", filepath.Base(rt), root, err)
		}
		files = append(files, fs...)
		sandbox = []string{"--sandbox", "oci", "--oci-runtime", "/" + rt}
	}
	argv := append([]string{cmd}, sandbox...)
	// --force: the guest's /out already holds the console's stdout.txt.
	argv = append(argv, "--out", "/out", "--force", "--cache", "warm", "--emulated",
		"-n", fmt.Sprint(o.runs), "--memory", fmt.Sprint(o.memory), "--invokes", fmt.Sprint(o.invokes),
		"--init-timeout", o.initTimeout.String(), "--runtime-init", o.runtimeInit.String(),
		"--runtime-invoke", o.runtimeInvoke.String(), "--init-cpu", fmt.Sprint(o.initCPU))
	if o.name != "" {
		argv = append(argv, "--name", o.name)
	}
	if cmd == "compare" && o.seed != 0 {
		argv = append(argv, "--seed", fmt.Sprint(o.seed))
	}
	for _, kv := range o.env {
		argv = append(argv, "--env", kv)
	}
	for _, u := range o.uprobes {
		argv = append(argv, "--uprobe", u)
	}
	for _, c := range o.checkpoints {
		argv = append(argv, "--checkpoint", c)
	}
	if o.sample.flamegraph {
		argv = append(argv, "--flamegraph", "--sample-hz", fmt.Sprint(o.sample.hz), "--sample-runs", fmt.Sprint(o.sample.runs))
		if o.sample.offCPU {
			argv = append(argv, "--offcpu")
		}
	}
	if o.runtime != "sim" {
		return badInput("--runtime %s: the microVM runs the simulated runtime only", o.runtime)
	}
	argv = append(argv, guestArgs...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progressf("booting the arm64 microVM (qemu TCG, %s); %d files in the initramfs", vm.EmulatedNote, len(files))
	cfg := vm.Config{
		Kernel:   kernel,
		MemoryMB: max(1024, o.memory+512),
		Initprof: guestBin,
		Files:    files,
		Argv:     argv,
		Stdout:   "/out/stdout.txt",
		Console:  guestProgress{},
		Timeout:  time.Duration(o.runs*len(items))*(o.initTimeout+30*time.Second) + 5*time.Minute,
	}
	var res *vm.Result
	for attempt := 1; ; attempt++ {
		res, err = vm.Run(ctx, cfg, out)
		var crash *vm.GuestCrashError
		if !errors.As(err, &crash) || attempt == guestCrashAttempts || ctx.Err() != nil {
			break
		}
		// The guest kernel's bug, not the extension's: the whole job reruns
		// in a fresh VM, and nothing of the crashed one is kept.
		progressf("the arm64 guest kernel crashed (%s): a bug of the guest kernel, not of the extension; booting a fresh microVM (attempt %d of %d)",
			crash.Line, attempt+1, guestCrashAttempts)
		os.RemoveAll(out)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return badInput("--out %s: %v", out, err)
		}
	}
	if ctx.Err() != nil {
		if res == nil {
			return withCode(exitInterrupted, errors.New("interrupted; the microVM was stopped"))
		}
		// The guest passed the interrupt to the job, which wrote what it
		// had measured, as on x86.
		if b, rerr := os.ReadFile(filepath.Join(out, "stdout.txt")); rerr == nil {
			os.Stdout.Write(b)
		}
		return withCode(exitInterrupted, fmt.Errorf("interrupted; the microVM stopped after writing the partial results to %s", out))
	}
	var ee *vm.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err
	}
	if b, rerr := os.ReadFile(filepath.Join(out, "stdout.txt")); rerr == nil {
		os.Stdout.Write(b)
	}
	progressf("microVM: kernel %s (%s), boot %.1f s, run %.1f s, total %.1f s; files in %s",
		res.Kernel, res.Machine, res.Boot.Seconds(), res.Run.Seconds(), res.Total.Seconds(), out)
	if ee != nil {
		code := ee.Code
		if code == exitInitFailed || code == exitBadInput || code == exitPrivileges {
			return withCode(code, fmt.Errorf("%s in the microVM exited %d:\n%s", cmd, code, indent(ee.ConsoleTail)))
		}
		return fmt.Errorf("%s in the microVM exited %d:\n%s", cmd, code, indent(ee.ConsoleTail))
	}
	return nil
}

// arm64Sysroot is the arm64 root file system that dynamically linked
// binaries take their loader and libraries from: --rootfs when given, else
// the per-user cache, which is filled on first use (a static extension in the
// process sandbox never reads it). The fill is lazy: the closure resolver
// asks for it only for a binary with an interpreter.
func arm64Sysroot(rootfs string) (*lazySysroot, error) {
	if rootfs != "" {
		return &lazySysroot{dir: rootfs, ready: true}, nil
	}
	dir, err := doctor.ARM64SysrootPath()
	if err != nil {
		return nil, badInput("no arm64 sysroot: %v (give --rootfs)", err)
	}
	return &lazySysroot{dir: dir, ready: doctor.ARM64SysrootReady(dir)}, nil
}

type lazySysroot struct {
	dir   string
	ready bool
}

// get returns the sysroot directory, fetching Debian's arm64 libraries into
// the cache the first time one is needed.
func (s *lazySysroot) get() (string, error) {
	if !s.ready {
		progressf("first use of a dynamically linked arm64 binary: fetching Debian's arm64 libraries into %s (once; about a minute)", s.dir)
		if err := scripts.Run(os.Stderr, "arm64-sysroot.sh", s.dir); err != nil {
			return "", fmt.Errorf("arm64 sysroot: %w (or give --rootfs DIR)", err)
		}
		s.ready = true
	}
	return s.dir, nil
}

func indent(s string) string {
	return "  | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  | ")
}

// guestProgress passes the guest job's per-run progress lines ("run 5/20:
// Init Duration ...") from the console to stderr, so a long emulated series
// shows where it is; the rest of the console stays in the failure tail.
type guestProgress struct{}

func (guestProgress) Write(b []byte) (int, error) {
	l := strings.TrimSpace(string(b))
	if strings.HasPrefix(l, "run ") && strings.Contains(l, ": Init Duration ") {
		fmt.Fprintf(os.Stderr, "arm64 guest: %s\n", l)
	}
	return len(b), nil
}

package coldstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/scripts"
)

// archNames maps --arch values to elfinfo's (uname -m) names.
var archNames = map[string]string{"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

// NeedsVM reports whether arch (amd64 or arm64, or their uname -m names;
// "" is this host's) is another architecture than the host's: its cold
// starts then run in the arm64 microVM (RunInVM). Only arm64 can be
// emulated. Errors are of kind BadInput.
func NeedsVM(arch string) (bool, error) {
	if arch == "" {
		return false, nil
	}
	want, ok := archNames[arch]
	if !ok {
		return false, kindErr(BadInput, fmt.Errorf("--arch %q: use amd64 or arm64", arch))
	}
	if want == HostArch() {
		return false, nil
	}
	if want != "aarch64" {
		return false, kindErr(BadInput, fmt.Errorf("--arch %s on a %s host: only arm64 can be emulated (in a qemu microVM)", arch, HostArch()))
	}
	return true, nil
}

// VMJob is a series of arm64 cold starts made on an x86 host: the engine
// boots the arm64 microVM (qemu TCG) with the binaries, their arm64 loader
// and libraries and the arm64 initprof, runs initprof's own command there
// (its engine makes the cold starts inside the guest, with the same
// sandbox, probes and model), and brings its output directory back.
// Timings under TCG are not Graviton's; checkpoints, phases, symbols and
// stack shapes are real arm64.
type VMJob struct {
	// Command is the guest's initprof subcommand and its flags ("run",
	// "-n", "10", …), without --sandbox, --out and the binaries, which the
	// job adds.
	Command []string
	// Items are the arm64 binaries: extensions for run, builds for compare
	// (Label is the build's NAME).
	Items []VMItem
	// Name is the extensions' name in /opt/extensions; "": the file name.
	Name string
	// Rootfs is the arm64 root file system the loaders and libraries come
	// from; "": the per-user sysroot, fetched on first use.
	Rootfs string
	// OCI runs the guest's cold starts in arm64 runc or crun (OCIRuntime)
	// under the guest's cgroup v2; else in its process sandbox.
	OCI        bool
	OCIRuntime string
	// Storage is the storage the guest's cold starts use (its cache and
	// storage flags).
	Storage VMStorage
	// MemoryMB is the function's memory; the guest gets 512 MB more.
	MemoryMB int
	Timeout  time.Duration
	// Progress receives the boot, the guest's per-run lines and retries.
	Progress func(string)
}

// VMItem is one binary for the guest: an extension for run, or a NAME=PATH
// build for compare (Label is the NAME).
type VMItem struct{ Label, Path string }

// guestRuntimes are the OCI runtimes the microVM can carry (OCIRuntime; ""
// is runc), at their paths in the arm64 sysroot and in the guest.
var guestRuntimes = map[string]string{"": "usr/sbin/runc", "runc": "usr/sbin/runc", "crun": "usr/bin/crun"}

// RunInVM performs job and writes the guest's output directory (its
// stdout.txt included) to out. A *vm.ExitError says the guest's command
// exited non-zero; its report is still in out.
func RunInVM(ctx context.Context, job VMJob, out string) (*vm.Result, error) {
	progress := func(format string, args ...any) {
		if job.Progress != nil {
			job.Progress(fmt.Sprintf(format, args...))
		}
	}
	guestBin, err := selfbin.Static("arm64", selfbin.Options{Progress: job.Progress})
	if err != nil {
		return nil, kindErr(BadInput, fmt.Errorf("the arm64 microVM needs a static arm64 initprof: %v", err))
	}
	kernel, err := doctor.ARM64KernelPath()
	if err == nil {
		_, err = os.Stat(kernel)
	}
	if err != nil {
		return nil, kindErr(BadInput, fmt.Errorf("no arm64 kernel for the microVM (%v): fetch it with 'initprof doctor --fix'", err))
	}
	sysroot, err := arm64Sysroot(job.Rootfs, job.Progress)
	if err != nil {
		return nil, err
	}
	var files []vm.File
	var guestArgs []string
	for _, it := range job.Items {
		a := it.Path
		info, err := elfinfo.Open(a)
		if err != nil {
			return nil, kindErr(BadInput, err)
		}
		if info.Arch != "aarch64" {
			return nil, kindErr(BadInput, fmt.Errorf("%s is a %s binary, not arm64: drop --arch, or give an arm64 build", a, info.Arch))
		}
		name := filepath.Base(a)
		if job.Name != "" {
			name = job.Name
		}
		guest, arg := "/var/task/ext/"+name, ""
		if it.Label != "" {
			guest = "/var/task/" + it.Label + "/" + name
			arg = it.Label + "="
		}
		root := ""
		if info.Interp != "" {
			if root, err = sysroot.get(); err != nil {
				return nil, err
			}
		}
		fs, err := vm.ClosureFiles(a, guest, root)
		if err != nil {
			return nil, kindErr(BadInput, fmt.Errorf("%s: %v (give an arm64 root filesystem with --rootfs, or run 'initprof doctor --fix')", a, err))
		}
		files = append(files, fs...)
		guestArgs = append(guestArgs, arg+guest)
	}
	// The guest runs the process sandbox unless the job asks for the
	// container: then Debian's arm64 runc and its libraries come along, and
	// the runs get the memory and CPU limits on the guest's cgroup v2.
	sandbox := []string{"--sandbox", "process"}
	if job.OCI {
		rt, ok := guestRuntimes[job.OCIRuntime]
		if !ok {
			return nil, kindErr(BadInput, fmt.Errorf("--oci-runtime %q in the arm64 microVM: use runc (the default) or crun, Debian's arm64 builds from the sysroot", job.OCIRuntime))
		}
		root, err := sysroot.get()
		if err != nil {
			return nil, err
		}
		fs, err := vm.ClosureFiles(filepath.Join(root, rt), "/"+rt, root)
		if err != nil {
			return nil, kindErr(BadInput, fmt.Errorf("--sandbox oci in the arm64 microVM needs Debian's arm64 %s in %s (%v): run 'initprof doctor --fix'", filepath.Base(rt), root, err))
		}
		files = append(files, fs...)
		sandbox = []string{"--sandbox", "oci", "--oci-runtime", "/" + rt}
	}
	argv := append(append([]string{}, job.Command[0]), sandbox...)
	// --force: the guest's /out already holds the console's stdout.txt.
	argv = append(argv, "--out", "/out", "--force", "--emulated")
	argv = append(argv, job.Command[1:]...)
	argv = append(argv, job.Storage.args()...)
	if job.Name != "" {
		argv = append(argv, "--name", job.Name)
	}
	argv = append(argv, guestArgs...)

	progress("booting the arm64 microVM (qemu TCG, %s); %d files in the initramfs", vm.EmulatedNote, len(files))
	cfg := vm.Config{
		Kernel:   kernel,
		MemoryMB: max(1024, job.MemoryMB+512),
		Initprof: guestBin,
		Files:    files,
		Argv:     argv,
		Stdout:   "/out/stdout.txt",
		Console:  guestProgress(job.Progress),
		Timeout:  job.Timeout,
	}
	return vm.RunRetrying(ctx, cfg, out, func(crash *vm.GuestCrashError, next int) {
		progress("the arm64 guest kernel crashed (%s): a bug of the guest kernel, not of the extension; booting a fresh microVM (attempt %d of %d)",
			crash.Line, next, vm.CrashAttempts)
	})
}

// RunInVMTo is RunInVM for a command line: it writes the guest's output
// directory to out and copies its stdout.txt (the guest command's printed
// report) to stdout, also after an interrupt that left partial results.
// The error says what the guest's exit means: of kind Interrupted when ctx
// ended; for a guest that exited non-zero, its exit code and console tail,
// of kind BadInput, Privileges or InitFailed for the guest's exit codes 2, 3
// and 4. The Result is nil when the microVM did not finish its job.
func RunInVMTo(ctx context.Context, job VMJob, out string, stdout io.Writer) (*vm.Result, error) {
	res, err := RunInVM(ctx, job, out)
	return vmOutcome(ctx.Err(), res, err, job.Command[0], out, stdout)
}

// vmOutcome is RunInVMTo's reading of what RunInVM returned.
func vmOutcome(ctxErr error, res *vm.Result, err error, cmd, out string, stdout io.Writer) (*vm.Result, error) {
	copyStdout := func() {
		if b, rerr := os.ReadFile(filepath.Join(out, "stdout.txt")); rerr == nil {
			stdout.Write(b)
		}
	}
	if ctxErr != nil {
		if res == nil {
			return nil, kindErr(Interrupted, errors.New("interrupted; the microVM was stopped"))
		}
		// The guest passed the interrupt to the job, which wrote what it
		// had measured, as on x86.
		copyStdout()
		return nil, kindErr(Interrupted, fmt.Errorf("interrupted; the microVM stopped after writing the partial results to %s", out))
	}
	var ee *vm.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, err
	}
	copyStdout()
	if ee == nil {
		return res, nil
	}
	err = fmt.Errorf("%s in the microVM exited %d:\n%s", cmd, ee.Code, indent(ee.ConsoleTail))
	if k, ok := map[int]ErrorKind{2: BadInput, 3: Privileges, 4: InitFailed}[ee.Code]; ok {
		err = kindErr(k, err)
	}
	return res, err
}

func indent(s string) string {
	return "  | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  | ")
}

// arm64Sysroot is the arm64 root file system that dynamically linked
// binaries take their loader and libraries from: rootfs when given, else the
// per-user cache, filled on first use (a static extension in the process
// sandbox never reads it). The closure resolver asks for it only for a
// binary with an interpreter.
func arm64Sysroot(rootfs string, progress func(string)) (*lazySysroot, error) {
	if rootfs != "" {
		return &lazySysroot{dir: rootfs, ready: true}, nil
	}
	dir, err := doctor.ARM64SysrootPath()
	if err != nil {
		return nil, kindErr(BadInput, fmt.Errorf("no arm64 sysroot: %v (give --rootfs)", err))
	}
	return &lazySysroot{dir: dir, ready: doctor.ARM64SysrootReady(dir), progress: progress}, nil
}

type lazySysroot struct {
	dir      string
	ready    bool
	progress func(string)
}

// get returns the sysroot directory, fetching Debian's arm64 libraries into
// the cache the first time one is needed.
func (s *lazySysroot) get() (string, error) {
	if !s.ready {
		if s.progress != nil {
			s.progress(fmt.Sprintf("first use of a dynamically linked arm64 binary: fetching Debian's arm64 libraries into %s (once; about a minute)", s.dir))
		}
		if err := scripts.Run(os.Stderr, "arm64-sysroot.sh", s.dir); err != nil {
			return "", fmt.Errorf("arm64 sysroot: %w (or give --rootfs DIR)", err)
		}
		s.ready = true
	}
	return s.dir, nil
}

// guestProgress passes the guest job's per-run progress lines ("run 5/20:
// Init Duration ...") from the console to Progress, so a long emulated
// series shows where it is; the rest of the console stays in the failure tail.
type guestProgress func(string)

func (g guestProgress) Write(b []byte) (int, error) {
	l := strings.TrimSpace(string(b))
	if g != nil && strings.HasPrefix(l, "run ") && strings.Contains(l, ": Init Duration ") {
		g("arm64 guest: " + l)
	}
	return len(b), nil
}

// VMStorage is the storage model the guest's cold starts use, as the
// host's flags gave it: Lambda's lazy storage (its model's flags as given,
// "" keeping a default) unless the cache is warm or the storage local.
type VMStorage struct {
	Warm                            bool
	Storage                         string // "", "lambda" or "local"
	ReadAheadKiB                    int
	ChunkLatency, ChunkMix, BaseMix string
	Seed                            uint64
}

// args are the guest's cache and storage flags. Everything in the microVM
// lives in its initramfs (a tmpfs, never evicted), so local storage there
// is a warm cache. The guest kernel (Debian's cloud-arm64 6.12) has FUSE
// built in, so lambda storage works there: the FUSE mount's page cache can
// be evicted whatever the backing is, and the cold starts are cold again.
func (s VMStorage) args() []string {
	if s.Warm || s.Storage == "local" {
		return []string{"--cache", "warm", "--storage", "local"}
	}
	args := []string{"--cache", "cold", "--storage", "lambda", "--readahead", fmt.Sprint(s.ReadAheadKiB)}
	if s.ChunkLatency != "" {
		args = append(args, "--chunk-latency", s.ChunkLatency)
	}
	if s.ChunkMix != "" {
		args = append(args, "--chunk-mix", s.ChunkMix)
	}
	if s.BaseMix != "" {
		args = append(args, "--base-mix", s.BaseMix)
	}
	if s.Seed != 0 {
		args = append(args, "--storage-seed", fmt.Sprint(s.Seed))
	}
	return args
}

// GuestCommand is the guest's initprof command of a VMJob: Cmd ("run" or
// "compare") with its run count and, for compare, its seed and --format.
type GuestCommand struct {
	Cmd    string
	Runs   int
	Seed   uint64 // compare's run-order seed; 0: the guest picks one
	Format string // compare's --format; "": the guest's default
	// Sample, when set, adds the sampling runs (--flamegraph) to the guest's.
	Sample *SampleOptions
}

// NewVMJob is the job that makes the cold starts cfg describes (its
// memory, runtime timing, invokes, init CPU and timeout, environment,
// uprobes and checkpoints, passed on as given: the guest applies the
// defaults) with g in the microVM, over items. Its timeout
// allows every run its init timeout and 30 s, and 5 minutes to boot. The
// caller sets Name, OCI and Storage.
func NewVMJob(cfg Config, g GuestCommand, items []VMItem) VMJob {
	initCPU := max(cfg.InitCPU, 0) // negative: the invoke quota, --init-cpu 0
	job := VMJob{
		Rootfs: cfg.Rootfs, OCIRuntime: cfg.OCIRuntime, MemoryMB: cfg.MemoryMB, Items: items, Progress: cfg.Progress,
		Timeout: time.Duration(g.Runs*len(items))*(cfg.InitTimeout+30*time.Second) + 5*time.Minute,
		Command: []string{g.Cmd,
			"-n", fmt.Sprint(g.Runs), "--memory", fmt.Sprint(cfg.MemoryMB), "--invokes", fmt.Sprint(cfg.Invokes),
			"--init-timeout", cfg.InitTimeout.String(), "--runtime-init", cfg.RuntimeInit.String(),
			"--runtime-invoke", cfg.RuntimeInvoke.String(), "--init-cpu", fmt.Sprint(initCPU)},
	}
	if g.Seed != 0 {
		job.Command = append(job.Command, "--seed", fmt.Sprint(g.Seed))
	}
	if g.Format != "" {
		job.Command = append(job.Command, "--format", g.Format)
	}
	for _, kv := range cfg.Env {
		job.Command = append(job.Command, "--env", kv)
	}
	for _, u := range cfg.Uprobes {
		job.Command = append(job.Command, "--uprobe", u)
	}
	for _, c := range cfg.Checkpoints {
		job.Command = append(job.Command, "--checkpoint", c.String())
	}
	if g.Sample != nil {
		job.Command = append(job.Command, "--flamegraph", "--sample-hz", fmt.Sprint(g.Sample.Hz), "--sample-runs", fmt.Sprint(g.Sample.Runs))
		if g.Sample.OffCPU {
			job.Command = append(job.Command, "--offcpu")
		}
	}
	return job
}

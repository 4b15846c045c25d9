// Package coldstart is initprof's engine: one Lambda cold start, measured.
// It joins the sandbox (package container), the Lambda platform that runs
// inside it (package extension), the probes and the CPU sampler (package
// probes) and turns what they saw into a profile.Run (package profile).
//
// Open prepares what every cold start of an invocation shares (privileges,
// tracefs, the static initprof the sandbox runs as PID 1, the probe-cost
// calibration); NewSeries prepares one build under test (its sandbox bundle,
// built once, and its probes, attached once); Series.Run performs cold start i.
// Close leaves nothing behind: no container, cgroup, probe or bundle.
//
// The engine never prints: it reports progress through Config.Progress. A
// user's own Go test can run a cold start with it (see the package example);
// cmd/initprof only parses flags, shows progress and writes files.
package coldstart

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"syscall"
	"time"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/internal/selfbin"
)

// Config is what a cold start is made of. The zero value of each field is
// Lambda's default where Lambda has one.
type Config struct {
	// MemoryMB is the function's memory: the cgroup's memory limit and its
	// CPU quota (MemoryMB/1769 of one CPU), as Lambda sets them. 0: 1024.
	MemoryMB int
	// InitCPU is the CPU, in vCPUs, that init gets; invokes then get the
	// memory-proportional quota. 0: DefaultInitCPU. Negative: the invoke
	// quota throughout (this machine's sandbox as Lambda invokes run it;
	// not Lambda's init).
	InitCPU float64
	// Runtime is "sim" (initprof's simulated runtime; "" means it too) or the
	// path of a bootstrap executable.
	Runtime string
	// Function is a function's deployment zip: unpacked at /var/task, its
	// bootstrap is the runtime (Runtime is then ignored).
	Function string
	// Image is a container image tarball (docker save, or an OCI layout in
	// a tar): it becomes the rootfs, its ENTRYPOINT+CMD the runtime, and
	// the files of its /opt/extensions run as extensions.
	Image string
	// RuntimeInit and RuntimeInvoke time the simulated runtime. 0: 15 ms, 1 ms.
	RuntimeInit, RuntimeInvoke time.Duration
	// Invokes after init in each cold start. 0: 1.
	Invokes int
	// InitTimeout is Lambda's init limit. 0: 10 s.
	InitTimeout time.Duration
	// Env holds the customer's environment variables, K=V.
	Env []string
	// Uprobes are extra checkpoints: SYMBOL (in the extension) or FILE:SYMBOL.
	Uprobes []string
	// Checkpoints are log-line checkpoints: the first group names each.
	Checkpoints []*regexp.Regexp
	// Sandbox is "oci" (runc or crun; "" means it too) or "process".
	Sandbox string
	// OCIRuntime is runc, crun or a path; "" takes runc, then crun, on PATH.
	OCIRuntime string
	// Rootfs, when set, supplies the interpreter and libraries (e.g. an
	// exported Lambda base image).
	Rootfs string
	// Warm keeps the page cache between cold starts; by default each one
	// starts with the sandbox's files evicted, as a new Lambda host would.
	Warm bool
	// Storage is where the sandbox's files come from: "lambda" (Lambda's
	// chunked lazy loading, container/lazyfs; the default for cold runs) or
	// "local" (this machine's disk). Warm implies local. When it is left
	// empty and this machine cannot mount FUSE, runs fall back to local and
	// the report says so; an explicit "lambda" is then an error.
	Storage string
	// StorageModel is the lambda storage model; nil: lazyfs.DefaultModel().
	StorageModel *lazyfs.Model
	// ReadAhead is the lazyfs mount's readahead in bytes; 0: 128 KiB, what
	// Lambda's guest uses on its ext4 block device.
	ReadAhead int
	// Self is the static initprof the sandbox runs as PID 1. "": the running
	// binary when it is initprof and static, else its static twin; in any
	// other program (a test that imports this package) initprof's command,
	// built once with the current directory's module (internal/selfbin).
	Self string
	// Emulated labels reports as made in the emulated arm64 microVM.
	Emulated bool
	// Progress receives one line per notable step (sandbox made, costs
	// calibrated, a checkpoint unavailable). nil is silent.
	Progress func(string)
}

func (c *Config) defaults() {
	if c.MemoryMB == 0 {
		c.MemoryMB = 1024
	}
	if c.Runtime == "" {
		c.Runtime = "sim"
	}
	if c.InitCPU == 0 {
		c.InitCPU = DefaultInitCPU
	}
	if c.RuntimeInit == 0 {
		c.RuntimeInit = 15 * time.Millisecond
	}
	if c.RuntimeInvoke == 0 {
		c.RuntimeInvoke = time.Millisecond
	}
	if c.Invokes == 0 {
		c.Invokes = 1
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.Sandbox == "" {
		c.Sandbox = "oci"
	}
	if c.Warm {
		c.Storage = container.StorageLocal
	}
}

// storage resolves Storage to the sandbox's option, and a note when the
// default had to fall back to local storage.
func (c *Config) storage() (*container.Storage, string, error) {
	switch c.Storage {
	case container.StorageLocal:
		return nil, "", nil
	case "", container.StorageLambda:
	default:
		return nil, "", kindErr(BadInput, fmt.Errorf("--storage %q: want lambda or local", c.Storage))
	}
	m := lazyfs.DefaultModel()
	if c.StorageModel != nil {
		m = *c.StorageModel
	}
	if err := m.Validate(); err != nil {
		return nil, "", kindErr(BadInput, err)
	}
	if err := lazyfs.Check(); err != nil {
		if c.Storage == "" {
			return nil, fmt.Sprintf("storage local (this machine's disk), not Lambda's lazy storage: %v", err), nil
		}
		return nil, "", kindErr(Privileges, err)
	}
	return &container.Storage{Kind: container.StorageLambda, Model: m, ReadAhead: c.ReadAhead}, "", nil
}

// DefaultInitCPU is the CPU that Lambda's init gets in the model: 2 vCPUs,
// the microVM's CPU count for every memory size up to 3008 MB, unthrottled.
// Why not the invoke quota: lambda-perf's Init Durations are flat from 128
// to 1024 MB (Go 49.4 → 50.6 ms, Rust 15.7 → 15.3 ms) while that quota grows
// 8×; locally, under the quota, the same Go function's Init takes 498 ms at
// 128 MB (LAMBDA-FIDELITY.md §1-2). The value itself is the one fitted to
// those figures together with the storage model (README "How close to Lambda").
const DefaultInitCPU = 2.0

// ErrorKind classifies an engine error, so a CLI can map it to an exit code.
type ErrorKind int

const (
	// Failure is anything else: a run that broke, a sandbox that would not start.
	Failure ErrorKind = iota
	// BadInput is the caller's to fix: a missing file, a bad option, no OCI runtime.
	BadInput
	// Privileges means root (BPF, perf events, cgroups) is missing.
	Privileges
	// InitFailed means the extension under test failed its init (in the
	// arm64 microVM's guest: RunInVMTo).
	InitFailed
	// Interrupted means the context ended the work (RunInVMTo).
	Interrupted
)

// Error is an engine error with its kind.
type Error struct {
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// KindOf is the kind of err: that of the first *Error in its chain, else Failure.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failure
}

func kindErr(k ErrorKind, err error) error { return &Error{Kind: k, Err: err} }

// Engine holds what every series of one invocation shares.
type Engine struct {
	cfg   Config
	costs *Costs // measured by the first series' tracer
}

// Open checks the options (Validate) and privileges, mounts tracefs when the machine
// booted without it, and finds the static initprof for the sandbox.
func Open(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if os.Geteuid() != 0 {
		return nil, kindErr(Privileges, errors.New("profiling needs root (BPF, perf events, cgroups and the OCI runtime): run it with sudo, or see 'initprof doctor'"))
	}
	if err := ensureTracefs(); err != nil {
		return nil, kindErr(Privileges, err)
	}
	if cfg.Self == "" && !selfbin.IsInitprof() {
		// A program that imports the engine (a user's test): the sandbox
		// still needs initprof's command as its PID 1.
		self, err := selfbin.Command(runtime.GOARCH, selfbin.Options{Progress: cfg.Progress})
		if err != nil {
			return nil, err
		}
		cfg.Self = self
	}
	if cfg.Self == "" {
		self, err := selfbin.Static(runtime.GOARCH, selfbin.Options{Progress: cfg.Progress})
		if err != nil && cfg.Sandbox == "process" {
			// The process sandbox runs on the host's files: the running
			// binary does when no static twin can be had.
			self, err = os.Executable()
		}
		if err != nil {
			return nil, err
		}
		cfg.Self = self
	}
	return &Engine{cfg: cfg}, nil
}

// Config is the engine's configuration, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Self is the static initprof the sandbox runs as PID 1.
func (e *Engine) Self() string { return e.cfg.Self }

// Costs are the per-event probe costs, once the first series measured them.
func (e *Engine) Costs() *Costs { return e.costs }

// Close removes every container this process made (series close their own;
// this catches what an interrupted series left).
func (e *Engine) Close() { container.CleanupAll() }

func (e *Engine) progressf(format string, args ...any) {
	if e.cfg.Progress != nil {
		e.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// ensureTracefs mounts tracefs when the machine booted without it: the
// syscall tracepoints need it.
func ensureTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := syscall.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it failed (%v): mount -t tracefs nodev /sys/kernel/tracing", err)
	}
	return nil
}

// CleanupStale removes what initprof processes that died without cleaning
// up (SIGKILL, a crash) left behind (container.CleanupStaleAll): call it
// before making sandboxes. progress receives what it removed and what it
// could not remove; a failure never stops the caller.
func CleanupStale(ociRuntime string, progress func(string)) {
	st, err := container.CleanupStaleAll(ociRuntime)
	if !st.Empty() {
		progress(fmt.Sprintf("removed what dead initprof processes left behind: %s", st))
	}
	if err != nil {
		progress(fmt.Sprintf("warning: could not remove everything dead initprof processes left behind: %v", err))
	}
}

package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Paths inside the sandbox. The platform and the extensions see these; the
// host sees their counterparts through Instance.OutDir and the bundle.
const (
	ExtensionsDir = "/opt/extensions"
	BootstrapPath = "/var/runtime/bootstrap"
	InitprofPath  = "/var/runtime/initprof"
	OutMount      = "/run/initprof"
	TimelineName  = "timeline.jsonl"
	PlatformAddr  = "127.0.0.1:9001"
)

// DefaultMemoryMB is Lambda's most common memory size and the CLI's default.
const DefaultMemoryMB = 1024

// mbPerVCPU is Lambda's documented ratio: 1769 MB of memory buys one vCPU.
const mbPerVCPU = 1769

// cfsPeriod is the CFS period (µs) the CPU quota is expressed against.
const cfsPeriod = 100000

// tmpSizeMB is the size of /tmp, Lambda's default ephemeral storage.
const tmpSizeMB = 512

// Extension is one file placed at /opt/extensions/<Name>, or a layer zip.
type Extension struct {
	// Name is the basename under /opt/extensions. The platform registers it by
	// this name, so it must match what the extension sends (e.g. "datadog-agent").
	Name string
	// Path is the host path of the executable.
	Path string
	// Layer, set instead of Name and Path, is a Lambda layer zip: it joins
	// Config.Layers at its place in the list, so one argument list (and
	// compare's NAME=LAYER.zip) can mix plain executables and layers.
	Layer string
}

// Config describes one build under test and how its sandbox runs.
type Config struct {
	Extensions []Extension
	// Bootstrap is the host path of the runtime placed at /var/runtime/bootstrap
	// (passed as --runtime), or "" for the platform's simulated runtime.
	Bootstrap string
	// Initprof is the host path of a static (CGO_ENABLED=0) initprof binary. The
	// OCI sandbox bind-mounts it read-only at /var/runtime/initprof and runs it
	// as PID 1; it is not copied, so it never counts as a cold file.
	Initprof string
	// PlatformArgs are appended to the platform's command line, after the
	// sandbox's own --extensions/--addr/--timeline/--memory/--runtime/--env
	// flags (e.g. --invokes 1 --runtime-init 180ms).
	PlatformArgs []string
	// MemoryMB is the memory limit (default 1024). The CPU quota follows it:
	// MemoryMB/1769 of one CPU, as on Lambda.
	MemoryMB int
	// InitCPU is the CPU (in vCPUs) the OCI sandbox's cgroup gets until the
	// platform reports the end of init; then it gets the invoke quota,
	// MemoryMB/1769. 0 keeps the invoke quota throughout (see initcpu.go).
	InitCPU float64
	// Env holds the customer's KEY=VALUE variables: passed to the platform as
	// --env (it gives them to the runtime and extensions) and set for PID 1.
	Env []string
	// Rootfs, when set, is a directory (e.g. an exported Lambda base image) that
	// provides the ELF interpreter and shared libraries instead of the host.
	Rootfs string
	// Warm says the caller never evicts the page cache (--cache warm): the
	// work dir may then be a tmpfs (as everything is in the arm64 microVM's
	// initramfs).
	Warm bool
	// OCIRuntime is "runc", "crun", or a path; "" finds runc then crun on PATH.
	OCIRuntime string
	// WorkDir holds bundles and per-run output. "" makes a temporary directory
	// that Close removes. It must not be a tmpfs: pages of a tmpfs file cannot
	// be evicted, so a cold run would be warm.
	WorkDir string
	// Output, when set, also receives PID 1's stdout and stderr as they arrive.
	Output io.Writer

	// Init replaces PID 1's whole command line (advanced; tests use it to run a
	// probe program instead of the platform). Init[0] is a path inside the
	// sandbox; with the process sandbox it is a host path. The OCI sandbox
	// bind-mounts Initprof read-only when it is set, as usual.
	Init []string
	// HostPIDs runs the OCI sandbox in the host's pid namespace. By default it
	// has its own, as Lambda does, and the platform's timeline then carries
	// namespace pids (the platform is 1) while probes see host pids; with
	// HostPIDs both are host pids. runc delete still kills every process of
	// the run (through its cgroup).
	HostPIDs bool
	// Storage says where the sandbox's files come from: nil or
	// StorageLocal is this machine's disk; StorageLambda serves them through
	// lazyfs (container/lazyfs), Lambda's chunked lazy loading, in a server
	// process spawned from Initprof.
	Storage *Storage
	// RuntimeTimeout bounds each OCI runtime command: create, start, delete
	// (default 30s).
	RuntimeTimeout time.Duration

	// Layers are Lambda layer zips, laid out under /opt in order, a later
	// layer's file winning (container/layers); every file of their
	// extensions/ runs as an extension beside Extensions.
	Layers []string
	// Function is a function's deployment zip, unpacked at /var/task; its
	// top-level bootstrap is the runtime, run as /var/task/bootstrap (not
	// copied to /var/runtime: a bootstrap that finds its files next to
	// itself must find them). Not with Bootstrap.
	Function string
	// Image is a container image tarball (docker save, or an OCI layout in
	// a tar) that becomes the whole rootfs: its ENTRYPOINT+CMD is the
	// runtime, its ENV and WORKDIR apply, and the files of its
	// /opt/extensions run as extensions, as Lambda runs an image function.
	// OCI sandbox only; not with Rootfs, Layers, Function or Bootstrap
	// (Lambda attaches no layers to an image function).
	Image string

	// runtime is the runtime's command line inside the sandbox, found
	// while laying the rootfs out (nil: Bootstrap, or the simulated one).
	runtime []string
	// imageEnv and cwd come from the image's config.
	imageEnv []string
	cwd      string
	// placed are the extensions the layers or the image brought, Path the
	// sandbox's copy.
	placed []Extension
}

// memoryMB returns the effective memory size.
func (c *Config) memoryMB() int {
	if c.MemoryMB == 0 {
		return DefaultMemoryMB
	}
	return c.MemoryMB
}

// CPUQuota returns the CFS quota and period (µs) for a memory size: Lambda
// gives memory/1769 of one vCPU.
func CPUQuota(memoryMB int) (quota int64, period uint64) {
	return int64(cfsPeriod) * int64(memoryMB) / mbPerVCPU, cfsPeriod
}

// inputError marks an error caused by what the user gave (a file, a flag), as
// opposed to this machine failing; the CLI maps it to its bad-input exit code.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	return &inputError{fmt.Errorf(format, args...)}
}

// IsBadInput reports whether err is about the user's input (a missing,
// non-executable, non-ELF or wrong-architecture file, a library that cannot be
// resolved, a bad name, memory size or variable) rather than this machine.
func IsBadInput(err error) bool {
	var ie *inputError
	return errors.As(err, &ie)
}

// ErrPrivileges is wrapped by errors that only root can get past.
var ErrPrivileges = errors.New("insufficient privileges")

// validate checks everything a user can get wrong, with one actionable line each.
func (c *Config) validate() error {
	if err := c.check(); err != nil {
		return &inputError{err}
	}
	return nil
}

func (c *Config) check() error {
	m := c.memoryMB()
	if m < 128 || m > 10240 {
		return fmt.Errorf("memory %d MB is outside Lambda's range 128-10240", m)
	}
	c.splitLayers()
	if len(c.Extensions) == 0 && len(c.Init) == 0 && c.Bootstrap == "" && len(c.Layers) == 0 && c.Function == "" && c.Image == "" {
		return fmt.Errorf("no extension given: name at least one executable or layer zip to run in /opt/extensions, or a bootstrap, function zip or image to profile a function's own init")
	}
	if err := c.checkPackages(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range c.Extensions {
		if e.Name == "" || strings.ContainsAny(e.Name, "/\x00") || e.Name == "." || e.Name == ".." {
			return fmt.Errorf("extension name %q is not a plain file name (it becomes /opt/extensions/NAME)", e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("two extensions are named %q: give each a distinct --name", e.Name)
		}
		seen[e.Name] = true
		if err := checkExecutable(e.Path, "extension "+e.Name); err != nil {
			return err
		}
	}
	if c.Bootstrap != "" {
		if err := checkExecutable(c.Bootstrap, "bootstrap"); err != nil {
			return err
		}
	}
	if c.Initprof == "" && len(c.Init) == 0 {
		return fmt.Errorf("no initprof binary given to run as PID 1: build one with CGO_ENABLED=0 (make build)")
	}
	if c.Initprof != "" {
		if err := checkExecutable(c.Initprof, "initprof binary"); err != nil {
			return err
		}
	}
	if c.Rootfs != "" {
		st, err := os.Stat(c.Rootfs)
		if err != nil || !st.IsDir() {
			return fmt.Errorf("rootfs %s: not a directory (give an unpacked root filesystem, e.g. an exported Lambda base image)", c.Rootfs)
		}
	}
	if err := c.Storage.check(); err != nil {
		return err
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return fmt.Errorf("environment entry %q is not KEY=VALUE", kv)
		}
	}
	return nil
}

func checkExecutable(path, what string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil && os.IsNotExist(err):
		return fmt.Errorf("%s %s: no such file", what, path)
	case err != nil:
		return fmt.Errorf("%s %s: %v", what, path, err)
	case st.IsDir():
		return fmt.Errorf("%s %s: is a directory, not an executable", what, path)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s %s: not a regular file", what, path)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("%s %s: not executable (chmod +x it)", what, path)
	}
	return nil
}

// LambdaEnv returns the variables Lambda gives the execution environment, for
// a function of memoryMB. The platform filters what extensions see (they never
// get the runtime-only and `_`-prefixed ones); the sandbox hands PID 1 them all.
func LambdaEnv(memoryMB int) []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME=initprof-function",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(memoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_LAMBDA_RUNTIME_API=" + PlatformAddr,
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/initprof-function",
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/01/01/[$LATEST]00000000000000000000000000000000",
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"AWS_ACCESS_KEY_ID=ASIAINITPROFEXAMPLE0",
		"AWS_SECRET_ACCESS_KEY=initprof/example/secret/key/not/real/000000",
		"AWS_SESSION_TOKEN=initprof-example-session-token",
		"LAMBDA_TASK_ROOT=/var/task",
		"LAMBDA_RUNTIME_DIR=/var/runtime",
		"_HANDLER=function.handler",
	}
}

// env is PID 1's environment: Lambda's variables, then the customer's, which
// win on a clash as they do on Lambda for the variables a customer may set.
func (c *Config) env() []string {
	return mergeEnv(LambdaEnv(c.memoryMB()), c.allEnv())
}

// allEnv is the image's ENV, then the customer's variables, which win.
func (c *Config) allEnv() []string {
	return append(append([]string(nil), c.imageEnv...), c.Env...)
}

func mergeEnv(base, extra []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range append(append([]string{}, base...), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// platformArgs is PID 1's command line for the platform, given where the
// sandbox put the extensions, the runtime's executable and the timeline. The platform
// builds every child's environment from scratch (as Lambda does), so the
// memory size and the customer's variables travel as flags. PlatformArgs come
// last, so the caller can override any of these (pflag keeps the last value).
func (c *Config) platformArgs(initprof, extDir, bootstrap, timeline string) []string {
	args := []string{initprof, "platform",
		"--extensions", extDir,
		"--addr", PlatformAddr,
		"--timeline", timeline,
		"--memory", strconv.Itoa(c.memoryMB()),
	}
	if bootstrap != "" {
		args = append(args, "--runtime", bootstrap)
		if len(c.runtime) > 1 {
			// An image's CMD after its ENTRYPOINT.
			for _, a := range c.runtime[1:] {
				args = append(args, "--runtime-arg", a)
			}
		}
	}
	for _, kv := range c.allEnv() {
		args = append(args, "--env", kv)
	}
	return append(args, c.PlatformArgs...)
}

// Sandbox is one build under test, ready to run cold starts back to back.
type Sandbox interface {
	// Kind names the sandbox for reports, e.g. "oci (runc 1.1.5)" or
	// "process (no isolation: ...)".
	Kind() string
	// Create prepares one run: the first process exists (Instance.PID) but has
	// not started the platform yet, so probes can attach first.
	Create(ctx context.Context, runID string) (Instance, error)
	// Files lists the host files that back the sandbox's loadable contents
	// (extensions, bootstrap, interpreter, libraries): what a cold run evicts.
	Files() []string
	// HostPath is where a path as the sandbox's processes see it (e.g.
	// /opt/extensions/NAME or the ELF interpreter) lives on the host, symlinks
	// resolved. Uprobes are keyed by inode, so they must be attached to these
	// copies, not to the files the user named.
	HostPath(inside string) string
	// Extensions are the files of /opt/extensions: Config.Extensions and
	// those the layers or the image brought (Path the sandbox's copy),
	// sorted by name.
	Extensions() []Extension
	// RuntimePath is the runtime's executable as the sandbox's processes
	// see it (/var/runtime/bootstrap, a function's /var/task/bootstrap, an
	// image's ENTRYPOINT), "" for the simulated runtime.
	RuntimePath() string
	// Close removes the bundle (and the work directory when it made one).
	Close() error
}

// Instance is one run.
type Instance interface {
	// PID is the host pid of the first process, for probes to follow before Start.
	PID() int
	// Start lets the first process run the platform.
	Start() error
	// Wait blocks until the first process exits and returns its exit code
	// (128+signal when a signal killed it). ctx only bounds the wait.
	Wait(ctx context.Context) (exitCode int, err error)
	// OutDir is the host directory mounted writable at /run/initprof; the
	// platform writes timeline.jsonl there. It survives Delete.
	OutDir() string
	// Output is the tail of PID 1's stdout and stderr.
	Output() []byte
	// Overhead is the time the sandbox itself cost this run (Delete's share
	// is filled once Delete returns).
	Overhead() Overhead
	// Limits are the memory limit and CPU quota the run's cgroup holds, read
	// back after create (-1 fields: no limit, as in the process sandbox).
	Limits() Limits
	// Rusage is the first process's resource usage including the children it
	// reaped (ru_majflt, ru_inblock...). It blocks until the process is gone.
	Rusage() syscall.Rusage
	// Storage is the run's storage account with --storage lambda: chunks
	// fetched per file, modelled wait, FUSE requests and the server's own
	// time. nil with local storage. Complete once Delete has returned.
	Storage() *StorageStats
	// Delete kills whatever is left, deletes the container and its cgroups. It
	// is idempotent and must be called on every exit path.
	Delete() error
}

// Overhead is what the sandbox cost one run, outside the platform's own time.
type Overhead struct {
	Create time.Duration // runc create (or fork+exec of the process sandbox)
	Start  time.Duration // runc start (or closing the wait pipe)
	Delete time.Duration // runc delete -f, reaping and cgroup checks
}

// Total is create + start + delete.
func (o Overhead) Total() time.Duration { return o.Create + o.Start + o.Delete }

// workDir returns cfg.WorkDir, or a new temp dir (owned reports whether Close
// must remove it). It refuses a tmpfs, where eviction is impossible.
func workDir(cfg *Config) (dir string, owned bool, err error) {
	if cfg.WorkDir != "" {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return "", false, fmt.Errorf("work dir %s: %v", cfg.WorkDir, err)
		}
		dir, err = filepath.Abs(cfg.WorkDir)
		if err != nil {
			return "", false, err
		}
	} else {
		// Prefer /var/tmp: /tmp is a tmpfs on many systems.
		base := ""
		if st, err := os.Stat("/var/tmp"); err == nil && st.IsDir() {
			base = "/var/tmp"
		}
		dir, err = os.MkdirTemp(base, SandboxDirPattern())
		if err != nil {
			return "", false, fmt.Errorf("making a work dir: %v", err)
		}
		owned = true
	}
	// With lambda storage the files a cold run evicts are the FUSE mount's,
	// whose pages can be dropped whatever the backing is (the arm64
	// microVM's initramfs, say).
	if isTmpfs(dir) && !cfg.Warm && !cfg.Storage.Lambda() {
		if owned {
			os.RemoveAll(dir)
		}
		return "", false, fmt.Errorf("work dir %s is on a tmpfs: its files can never leave the page cache, so cold runs would be warm; pick a directory on a disk", dir)
	}
	return dir, owned, nil
}

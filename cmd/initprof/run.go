package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
	"github.com/initprof/initprof/profile/outdir"
)

func init() {
	register(&command{
		name:    "run",
		summary: "profile N cold starts of an extension in a Lambda-like sandbox",
		usage:   "[flags] EXTENSION|LAYER.zip...",
		long: `Runs the extension(s) N times, each a real cold start in a Lambda-like sandbox
(an OCI container on runc or crun, with Lambda's memory limit and CPU quota), and
watches every run with eBPF from execve to the first /next. It prints a phase
table per extension (median, p10, p90, share of time-to-ready), the runtime's
init, Init Duration and the init critical path, on-CPU/runnable/blocked time
and page faults per phase, and a one-line verdict: does binary load dominate,
or the order of init steps — and can the extension move Init Duration at all?

Phases, in order: spawn → exec → exec_done → ldso_start → deps_loaded →
relocated → constructors_done → entry → main → register → listener_bound →
subscribe → next. "load" is exec → entry (loading, relocation, symbol binding);
"init" is entry → next (the extension's own init steps).

Packaging: an argument that is a zip is a Lambda layer, laid out under /opt
as Lambda does (in the order given, a later layer's file winning, modes
kept); every file of its extensions/ runs as an extension. Plain executables
and layers mix. --function CODE.zip unpacks a function at /var/task and runs
its bootstrap as the runtime; --image IMAGE.tar (docker save, or an OCI
layout tarred) becomes the whole root filesystem, its ENTRYPOINT/CMD the
runtime and its /opt/extensions the extensions. Archives are checked first
as Lambda checks them (paths and links that leave the layer, nothing to run,
the wrong architecture, 5 layers, 250 MB unzipped, 10 GB for an image).

Storage: with --cache cold, the files of the sandbox (the extensions, the
runtime, the loader and libraries of the OCI rootfs) are served as Lambda
serves function code (--storage lambda, the default): the image is cut into
512 KiB chunks and the first read of each chunk pays a fetch from a tiered
cache, worker-local 67 %, AZ 32.9 %, S3 0.1 % of chunk reads (Brooker et al.,
"On-demand Container Loading in AWS Lambda", USENIX ATC '23), at
--chunk-latency each (1.6 ms, 6.4 ms, 48 ms, fitted to lambda-perf's Go and
Rust functions: both within 5 % of their published Init Durations; README,
"How close to Lambda"). The base image's files (/lib, /usr, /etc) are shared by every
function on a worker and resident there: --base-mix, default host=100 %, no
fetch cost. While the FUSE layer runs, idle CPUs are held polling (PM QoS), so
its round trips do not pay this VM's vCPU wake-up. The report names the model
and the chunks fetched;
results.json has them per file and run. --storage local is this machine's
disk as it is. It needs /dev/fuse and root; without them, the default falls
back to local and says so.

Files written to --out: report.txt (what is printed), results.json (every run,
every checkpoint, every platform event, each run labelled with its host, arch
and binaries' SHA-256), report.html (the same as pictures, one offline file:
'initprof report --help'), and touched.pb.gz: the file-backed
4 KiB pages each process's init touched first (major and minor faults, and
what readahead brought), by phase, file, ELF section, symbol and Rust crate or
Go package, with the 512 KiB chunks Lambda's storage would fetch for them
(go tool pprof -top -files touched.pb.gz ranks the crates; -tagfocus
phase=load_deps one phase). --out must be writable and empty, or
given with --force: then the previous run's reports, results and flamegraphs
there are removed first. Every flag and --out are checked before the first
cold start.

--flamegraph adds sampling runs after the timing runs (--sample-runs, default
min(--runs, 5); sampling inflates init, so they are kept apart): a cpu-clock
perf event at --sample-hz follows the sandbox from its first process, stacks
are unwound offline with DWARF CFI, and --out gets cpu.pb.gz (labels phase,
process, run, build), flame.svg, flame-<phase>.svg, stacks.folded and
trace.json (Perfetto). It prints the samples per run, the share unwound to a
root frame and what sampling cost exec→/next. --offcpu (implies --flamegraph)
also records, in those runs, every time a thread of the extensions or the
runtime leaves the CPU: its stacks (the kernel one from __schedule: I/O,
futex, poll, nanosleep) weighted by the time until it ran again, split into
blocked and runnable (preempted, or throttled by the CPU quota), written to
offcpu.pb.gz, offcpu.folded and flame-offcpu.svg for init only. Exit codes: 0 ok, 2 bad input,
3 missing privileges, 4 the extension failed its init (the report is still
written), 130 interrupted.

Examples:
  initprof run ./target/release/my-extension
  initprof run -n 30 --memory 512 --name datadog-agent ./bottlecap
  initprof run --runtime sim --runtime-init 180ms ./ext      # a python-like runtime
  initprof run datadog-layer.zip my-layer.zip                 # the extensions of two layers
  initprof run --function code.zip ext-layer.zip              # a provided.al2023 function and a layer
  initprof run --image function.tar                           # a container image function
  initprof run --checkpoint 'INIT \| phase=(\w+)' ./ext       # log-line checkpoints
  initprof run --sandbox process ./ext                        # no OCI runtime here
  initprof run --flamegraph --sample-hz 5000 ./ext            # + CPU flamegraphs per phase
  initprof run --offcpu --cache cold ./ext                    # + where init waits (I/O, the API)
  initprof run --storage local ./ext                          # this machine's disk, no storage model
  initprof run --chunk-latency worker=0,az=0,s3=0 ./ext       # the FUSE layer alone, no fetch cost
  initprof run --chunk-latency worker=800us,az=3ms --readahead 512 ./ext   # fit the model
  initprof run --arch arm64 ./ext-arm64                       # arm64 build on x86: emulated microVM
  initprof run --arch arm64 --sandbox oci ./ext-arm64         # ... in arm64 runc inside it (cgroup v2)
  initprof run --arch arm64 --sandbox oci --oci-runtime crun ./ext-arm64   # ... or crun`,
		setup: setupRun,
	})
}

// runOpts are the flags of run, compare and orderfile: the engine's
// Config, bound to its flags where a flag gives a field as is, and the rest.
type runOpts struct {
	coldstart.Config
	inv        coldstart.Invocation // the flags the Config holds in another form
	seed       uint64               // compare: the run-order seed
	sandboxSet bool                 // --sandbox was given (the microVM's default differs)
	out        string
	force      bool
	json       bool
	arch       string
	sample     sampleOpts
	ci         *export.CI // compare's PR/CI outputs
}

func setupRun(fs *pflag.FlagSet) func([]string) error {
	o := &runOpts{}
	runFlags(fs, o, 10)
	fs.StringVar(&o.inv.Name, "name", "", "the extension's name in /opt/extensions (default: the file name; one extension only)")
	sampleFlags(fs, &o.sample)
	return func(args []string) error {
		o.sandboxSet = fs.Changed("sandbox")
		return runRun(o, args)
	}
}

// runFlags defines the flags run and compare share.
func runFlags(fs *pflag.FlagSet, o *runOpts, runs int) {
	fs.IntVarP(&o.inv.Runs, "runs", "n", runs, "cold starts to run (per build)")
	fs.IntVar(&o.MemoryMB, "memory", 1024, "function memory in MB: the memory limit, and the invoke-time CPU quota (memory/1769 of one CPU)")
	fs.Float64Var(&o.inv.InitCPU, "init-cpu", coldstart.DefaultInitCPU, "vCPUs during init, whatever the memory (Lambda's Init Durations do not vary with it); 0 applies the invoke quota during init too (not Lambda)")
	fs.StringVar(&o.Runtime, "runtime", "sim", "runtime: 'sim' (simulated) or the path of a bootstrap executable")
	fs.StringVar(&o.Function, "function", "", "a function's deployment zip: unpacked at /var/task, its bootstrap is the runtime (provided.al2023)")
	fs.StringVar(&o.Image, "image", "", "a container image tarball (docker save, or an OCI layout in a tar): the rootfs, its ENTRYPOINT/CMD the runtime, its /opt/extensions the extensions")
	fs.DurationVar(&o.RuntimeInit, "runtime-init", 15*time.Millisecond, "sim runtime: its init time (python ≈ 180ms, provided.al2023 ≈ 15ms)")
	fs.DurationVar(&o.RuntimeInvoke, "runtime-invoke", time.Millisecond, "sim runtime: time to answer an invoke")
	fs.IntVar(&o.Invokes, "invokes", 1, "invokes after init in each run")
	fs.DurationVar(&o.InitTimeout, "init-timeout", 10*time.Second, "Lambda's init limit")
	fs.StringArrayVar(&o.Env, "env", nil, "customer environment variable K=V; repeatable")
	fs.StringArrayVar(&o.Uprobes, "uprobe", nil, "extra checkpoint: SYMBOL (in the extension) or FILE:SYMBOL; repeatable")
	fs.StringArrayVar(&o.inv.Checkpoints, "checkpoint", nil, "log-line checkpoint REGEX (first group names it), e.g. 'INIT \\| phase=(\\w+)'; repeatable")
	fs.StringVar(&o.out, "out", "", "output directory (default initprof-out/run-TIMESTAMP)")
	fs.BoolVar(&o.force, "force", false, "reuse a non-empty --out: the previous run's outputs there (reports, results, flamegraphs) are removed first")
	fs.BoolVar(&o.json, "json", false, "print the JSON result to stdout instead of the text report")
	fs.StringVar(&o.Sandbox, "sandbox", "oci", "'oci' (runc/crun container) or 'process' (plain host processes, no isolation); in the arm64 microVM the default is 'process', and 'oci' brings arm64 runc (or crun)")
	fs.StringVar(&o.OCIRuntime, "oci-runtime", "", "runc, crun or a path (default: runc, then crun, on PATH)")
	fs.StringVar(&o.Rootfs, "rootfs", "", "take the interpreter and libraries from this root filesystem (e.g. an exported Lambda base image)")
	fs.StringVar(&o.inv.Cache, "cache", "cold", "'cold' evicts the sandbox's files from the page cache before each run; 'warm' keeps it")
	fs.StringVar(&o.Storage, "storage", "", "where the sandbox's files come from: 'lambda' (the default with --cache cold: Lambda's lazy loading, the first read of each 512 KiB chunk pays a tiered-cache fetch, served by a FUSE layer) or 'local' (this machine's disk)")
	fs.IntVar(&o.inv.ReadAheadKiB, "readahead", 128, "--storage lambda: the FUSE mount's readahead in KiB (Lambda's guest reads its ext4 block device with Linux's default 128 KiB); it decides how many chunks a read touches")
	modelFlags(fs, &o.inv.Model)
	fs.StringVar(&o.arch, "arch", "", "the extension's architecture, amd64 or arm64; arm64 on an x86 host runs in an emulated arm64 microVM")
	fs.BoolVar(&o.Emulated, "emulated", false, "label the report as emulated (set by initprof itself inside the microVM)")
	fs.MarkHidden("emulated")
}

// validate checks the arguments and the flags that coldstart.Config does not
// see as given (run counts, --cache, and the zero values that the Config
// reads as defaults), then the engine's configuration (Config.Validate):
// coldstart.Invocation.Validate.
func (o *runOpts) validate(args []string) error {
	return engineErr(o.inv.Validate(o.Config, args))
}

// runEnv is what every series of a command shares: the engine, the
// output directory and the context that SIGINT and SIGTERM cancel.
type runEnv struct {
	o     *runOpts
	eng   *coldstart.Engine
	out   string
	ctx   context.Context
	close func() // closes the engine and stops the signal context
}

// engineConfig turns the flags into the engine's configuration
// (coldstart.Invocation.Config).
func (o *runOpts) engineConfig() (coldstart.Config, error) {
	c, err := o.inv.Config(o.Config)
	c.Progress = func(s string) { progressf("%s", s) }
	return c, engineErr(err)
}

// prepare settles the output directory (outDir, default initprof-out/KIND-…)
// and opens the engine and the signal context shared by run, compare and
// orderfile; the caller defers env.close.
func prepare(o *runOpts, kind string) (*runEnv, error) {
	var err error
	if o.out, err = outDir(o.out, o.force, kind); err != nil {
		return nil, err
	}
	cfg, err := o.engineConfig()
	if err != nil {
		return nil, err
	}
	eng, err := coldstart.Open(cfg)
	if err != nil {
		return nil, engineErr(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return &runEnv{o: o, eng: eng, out: o.out, ctx: ctx, close: func() { eng.Close(); stop() }}, nil
}

// engineErr gives an engine error its exit code.
func engineErr(err error) error {
	switch coldstart.KindOf(err) {
	case coldstart.BadInput:
		return withCode(exitBadInput, err)
	case coldstart.Privileges:
		return withCode(exitPrivileges, err)
	case coldstart.InitFailed:
		return withCode(exitInitFailed, err)
	case coldstart.Interrupted:
		return withCode(exitInterrupted, err)
	}
	return err
}

func runRun(o *runOpts, args []string) error {
	cleanupStale(o.OCIRuntime)
	if vmRun, err := coldstart.NeedsVM(o.arch); err != nil {
		return engineErr(err)
	} else if vmRun {
		return runInVM(o, args)
	}
	if err := o.validate(args); err != nil {
		return err
	}
	if err := o.sample.validate(o.inv.Runs); err != nil {
		return err
	}
	exts, err := coldstart.RunPackages(args, o.inv.Name, o.Config)
	if err != nil {
		return engineErr(err)
	}
	env, err := prepare(o, "run")
	if err != nil {
		return err
	}
	defer env.close()
	ctx := env.ctx

	s, err := env.eng.NewSeries(coldstart.SeriesName(args, o.Config), exts)
	if err != nil {
		return engineErr(err)
	}
	defer s.Close()

	bar := newProgress(o.inv.Runs)
	err = s.RunN(ctx, o.inv.Runs, bar.step)
	bar.done()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		if len(s.Runs()) == 0 {
			return withCode(exitInterrupted, errors.New("interrupted before the first run finished; nothing was left behind"))
		}
		progressf("interrupted after %d of %d runs; writing what was measured", len(s.Runs()), o.inv.Runs)
	}

	rep := s.Report()
	if ctx.Err() != nil {
		rep.Interrupted = &profile.Interrupted{Runs: len(s.Runs()), Planned: o.inv.Runs}
	}
	outs := outdir.RunFiles(rep)
	if err := outdir.WriteFiles(env.out, outs); err != nil {
		return err
	}
	if o.json {
		if err := rep.WriteJSON(os.Stdout); err != nil {
			return err
		}
	} else if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	progressf("wrote %s and %s", filepath.Join(env.out, "report.txt"), filepath.Join(env.out, "results.json"))
	if _, ok := outs[outdir.Touched]; ok {
		touched := filepath.Join(env.out, outdir.Touched)
		progressf("wrote %s (what init touched; go tool pprof -top -files %s ranks the crates/packages)", touched, touched)
	}
	if o.sample.flamegraph && ctx.Err() == nil {
		if err := flamegraphs(ctx, s, &o.sample, env.out); err != nil {
			return err
		}
	}
	writeReportHTML(env.out)
	switch {
	case ctx.Err() != nil:
		return withCode(exitInterrupted, errors.New("interrupted"))
	case s.InitFailed():
		return withCode(exitInitFailed, fmt.Errorf("init failed in some runs (see the report); status: %s", profile.InitStatuses(s.Runs())))
	}
	return nil
}

// progress prints one line per run to stderr, rewritten in place on a terminal.
type progress struct {
	n, i  int
	tty   bool
	every bool // a line per run: inside the microVM, whose console the host reads
	start time.Time
}

func newProgress(n int) *progress {
	if vm.InGuest() {
		// The guest's stderr is its console, a tty, but the host reads it
		// line by line and passes the lines on.
		return &progress{n: n, every: true, start: time.Now()}
	}
	return &progress{n: n, tty: isTerminal(os.Stderr), start: time.Now()}
}

func (p *progress) step(r profile.Run) {
	p.i++
	line := fmt.Sprintf("run %d/%d: Init Duration %.2f ms, ended by %s, status %s (%.1fs elapsed)",
		p.i, p.n, r.InitDurationMs, r.EndedBy, r.InitStatus, time.Since(p.start).Seconds())
	switch {
	case p.tty:
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	case p.every || p.n <= 20 || p.i == p.n || p.i%max(1, p.n/10) == 0:
		// In a log, a line per run for short series and every tenth of
		// a long one.
		fmt.Fprintln(os.Stderr, line)
	}
}

func (p *progress) done() {
	if p.tty && p.i > 0 {
		fmt.Fprintln(os.Stderr)
		p.i = 0
	}
}

func progressf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "initprof: "+format+"\n", args...)
}

// isTerminal reports whether f is a character device (a terminal): progress
// is rewritten in place there and printed line by line elsewhere (CI logs).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

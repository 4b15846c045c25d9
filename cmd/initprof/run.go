package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/assemble"
)

func init() {
	register(&command{
		name:    "run",
		summary: "profile N cold starts of an extension in a Lambda-like sandbox",
		usage:   "[flags] EXTENSION...",
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

Files written to --out: report.txt (what is printed), results.json (every run,
every checkpoint, every platform event).

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
  initprof run --checkpoint 'INIT \| phase=(\w+)' ./ext       # log-line checkpoints
  initprof run --sandbox process ./ext                        # no OCI runtime here
  initprof run --flamegraph --sample-hz 5000 ./ext            # + CPU flamegraphs per phase
  initprof run --offcpu --cache cold ./ext                    # + where init waits (I/O, the API)
  initprof run --arch arm64 ./ext-arm64                       # arm64 build on x86: emulated microVM
  initprof run --arch arm64 --sandbox oci ./ext-arm64         # ... in arm64 runc inside it (cgroup v2)
  initprof run --arch arm64 --sandbox oci --oci-runtime crun ./ext-arm64   # ... or crun`,
		setup: setupRun,
	})
}

type runOpts struct {
	runs          int
	seed          uint64 // compare: the run-order seed
	sandboxSet    bool   // --sandbox was given (the microVM's default differs)
	memory        int
	runtime       string
	runtimeInit   time.Duration
	runtimeInvoke time.Duration
	invokes       int
	initTimeout   time.Duration
	env           []string
	uprobes       []string
	checkpoints   []string
	out           string
	json          bool
	name          string
	sandbox       string
	ociRuntime    string
	rootfs        string
	cache         string
	arch          string
	emulated      bool
	sample        sampleOpts
}

func setupRun(fs *pflag.FlagSet) func([]string) error {
	o := &runOpts{}
	runFlags(fs, o, 10)
	fs.StringVar(&o.name, "name", "", "the extension's name in /opt/extensions (default: the file name; one extension only)")
	sampleFlags(fs, &o.sample)
	return func(args []string) error {
		o.sandboxSet = fs.Changed("sandbox")
		return runRun(o, args)
	}
}

// runFlags defines the flags run and compare share.
func runFlags(fs *pflag.FlagSet, o *runOpts, runs int) {
	fs.IntVarP(&o.runs, "runs", "n", runs, "cold starts to run (per build)")
	fs.IntVar(&o.memory, "memory", 1024, "function memory in MB: the memory limit, and the CPU quota (memory/1769 of one CPU)")
	fs.StringVar(&o.runtime, "runtime", "sim", "runtime: 'sim' (simulated) or the path of a bootstrap executable")
	fs.DurationVar(&o.runtimeInit, "runtime-init", 15*time.Millisecond, "sim runtime: its init time (python ≈ 180ms, provided.al2023 ≈ 15ms)")
	fs.DurationVar(&o.runtimeInvoke, "runtime-invoke", time.Millisecond, "sim runtime: time to answer an invoke")
	fs.IntVar(&o.invokes, "invokes", 1, "invokes after init in each run")
	fs.DurationVar(&o.initTimeout, "init-timeout", 10*time.Second, "Lambda's init limit")
	fs.StringArrayVar(&o.env, "env", nil, "customer environment variable K=V; repeatable")
	fs.StringArrayVar(&o.uprobes, "uprobe", nil, "extra checkpoint: SYMBOL (in the extension) or FILE:SYMBOL; repeatable")
	fs.StringArrayVar(&o.checkpoints, "checkpoint", nil, "log-line checkpoint REGEX (first group names it), e.g. 'INIT \\| phase=(\\w+)'; repeatable")
	fs.StringVar(&o.out, "out", "", "output directory (default initprof-out/run-TIMESTAMP)")
	fs.BoolVar(&o.json, "json", false, "print the JSON result to stdout instead of the text report")
	fs.StringVar(&o.sandbox, "sandbox", "oci", "'oci' (runc/crun container) or 'process' (plain host processes, no isolation); in the arm64 microVM the default is 'process', and 'oci' brings arm64 runc (or crun)")
	fs.StringVar(&o.ociRuntime, "oci-runtime", "", "runc, crun or a path (default: runc, then crun, on PATH)")
	fs.StringVar(&o.rootfs, "rootfs", "", "take the interpreter and libraries from this root filesystem (e.g. an exported Lambda base image)")
	fs.StringVar(&o.cache, "cache", "cold", "'cold' evicts the sandbox's files from the page cache before each run; 'warm' keeps it")
	fs.StringVar(&o.arch, "arch", "", "the extension's architecture, amd64 or arm64; arm64 on an x86 host runs in an emulated arm64 microVM")
	fs.BoolVar(&o.emulated, "emulated", false, "label the report as emulated (set by initprof itself inside the microVM)")
	fs.MarkHidden("emulated")
}

func (o *runOpts) validate(args []string) error {
	if len(args) == 0 {
		return badInput("no extension given; usage: initprof run [flags] EXTENSION...")
	}
	if o.runs < 1 {
		return badInput("--runs must be at least 1")
	}
	if o.memory < 128 || o.memory > 10240 {
		return badInput("--memory %d: Lambda allows 128 to 10240 MB", o.memory)
	}
	if o.sandbox != "oci" && o.sandbox != "process" {
		return badInput("--sandbox %q: use 'oci' or 'process'", o.sandbox)
	}
	if o.cache != "cold" && o.cache != "warm" {
		return badInput("--cache %q: use 'cold' or 'warm'", o.cache)
	}
	if o.name != "" && len(args) > 1 {
		return badInput("--name renames one extension; %d were given", len(args))
	}
	for _, kv := range o.env {
		if !strings.Contains(kv, "=") {
			return badInput("--env %q: want K=V", kv)
		}
	}
	return nil
}

// extensionsFrom checks every argument is an executable ELF for this machine
// whose libraries resolve, and names it as Lambda will see it.
func extensionsFrom(args []string, name, rootfs string) ([]container.Extension, error) {
	var exts []container.Extension
	seen := map[string]bool{}
	for _, a := range args {
		info, err := elfinfo.Open(a)
		if err != nil {
			return nil, badInput("%v", err)
		}
		if want := hostELFArch(); info.Arch != want {
			return nil, badInput("%s is a %s binary; this host runs %s. Build it for %s, or profile it in the arm64 microVM with --arch arm64 (on an x86 host)", a, info.Arch, want, want)
		}
		if info.Interp != "" {
			cl, err := elfinfo.ResolveClosure(a, rootfs)
			if err != nil {
				return nil, badInput("%s: %v", a, err)
			}
			if len(cl.Missing) > 0 {
				where := "on this host"
				if rootfs != "" {
					where = "under " + rootfs
				}
				return nil, badInput("%s: cannot resolve %s %s (install them, or give --rootfs DIR)", a, strings.Join(cl.Missing, ", "), where)
			}
		}
		n := filepath.Base(a)
		if name != "" {
			n = name
		}
		if seen[n] {
			return nil, badInput("two extensions are named %q; Lambda needs distinct file names in /opt/extensions", n)
		}
		seen[n] = true
		abs, _ := filepath.Abs(a)
		exts = append(exts, container.Extension{Name: n, Path: abs})
	}
	return exts, nil
}

// hostELFArch is the elfinfo architecture name of this machine.
func hostELFArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

func runRun(o *runOpts, args []string) error {
	if vmRun, err := foreignArch(o.arch); err != nil {
		return err
	} else if vmRun {
		return runInVM(o, args)
	}
	if err := o.validate(args); err != nil {
		return err
	}
	if err := o.sample.validate(o.runs); err != nil {
		return err
	}
	exts, err := extensionsFrom(args, o.name, o.rootfs)
	if err != nil {
		return err
	}
	env, err := prepare(o, "run")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer container.CleanupAll()

	s, err := env.newSeries(strings.Join(args, " "), exts)
	if err != nil {
		return err
	}
	defer s.close()

	bar := newProgress(o.runs)
	for i := 0; i < o.runs && ctx.Err() == nil; i++ {
		r, err := s.run(ctx, i)
		if err != nil {
			bar.done()
			if ctx.Err() != nil {
				break
			}
			return err
		}
		bar.step(r)
	}
	bar.done()
	if ctx.Err() != nil {
		if len(s.runs) == 0 {
			return withCode(exitInterrupted, errors.New("interrupted before the first run finished; nothing was left behind"))
		}
		progressf("interrupted after %d runs; writing what was measured", len(s.runs))
	}

	rep := s.report()
	if err := writeFiles(env.out, map[string]func(io.Writer) error{"report.txt": rep.WriteText, "results.json": rep.WriteJSON}); err != nil {
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
	if o.sample.flamegraph && ctx.Err() == nil {
		sruns, err := s.sampleSeries(ctx, &o.sample)
		if err == nil || len(sruns) > 0 {
			err = errors.Join(err, s.writeFlamegraphs(sruns, o.sample.hz, env.out))
		}
		if err != nil {
			return err
		}
	}
	switch {
	case ctx.Err() != nil:
		return withCode(exitInterrupted, errors.New("interrupted"))
	case s.initFailed():
		return withCode(exitInitFailed, fmt.Errorf("init failed in some runs (see the report); status: %s", statuses(s.runs)))
	}
	return nil
}

// runEnv is what every series of a command shares: the options, the static
// initprof for PID 1, the compiled log-line checkpoints and the output dir.
type runEnv struct {
	o    *runOpts
	self string
	re   []*regexp.Regexp
	out  string
	// costs are the per-event probe costs, measured once per invocation by
	// the first series' tracer (probes.Tracer.Calibrate).
	costs *probeCosts
}

// prepare checks privileges and options shared by run and compare, and makes
// the output directory (default initprof-out/KIND-TIMESTAMP).
func prepare(o *runOpts, kind string) (*runEnv, error) {
	if os.Geteuid() != 0 {
		return nil, withCode(exitPrivileges, errors.New("profiling needs root (BPF, perf events, cgroups and the OCI runtime): run it with sudo, or see 'initprof doctor'"))
	}
	if o.runtime != "sim" {
		if _, err := os.Stat(o.runtime); err != nil {
			return nil, badInput("--runtime %s: %v (give 'sim' or the path of a bootstrap executable)", o.runtime, err)
		}
	}
	env := &runEnv{o: o, out: o.out}
	for _, s := range o.checkpoints {
		r, err := regexp.Compile(s)
		if err != nil {
			return nil, badInput("--checkpoint %q: %v", s, err)
		}
		env.re = append(env.re, r)
	}
	if err := ensureTracefs(); err != nil {
		return nil, withCode(exitPrivileges, err)
	}
	var err error
	if env.self, err = selfForSandbox(o); err != nil {
		return nil, err
	}
	if env.out == "" {
		env.out = filepath.Join("initprof-out", kind+"-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(env.out, 0o755); err != nil {
		return nil, badInput("--out %s: %v", env.out, err)
	}
	return env, nil
}

// series is one build under test: its sandbox (bundle built once), its probes
// (attached once), and the runs made so far.
type series struct {
	env    *runEnv
	name   string
	sb     container.Sandbox
	tr     *probes.Tracer
	static map[string]bool
	runs   []profile.Run
	hits   []hitCount
}

func (env *runEnv) newSeries(name string, exts []container.Extension) (*series, error) {
	o := env.o
	cfg := container.Config{
		Extensions: exts,
		Initprof:   env.self,
		MemoryMB:   o.memory,
		Env:        o.env,
		Rootfs:     o.rootfs,
		OCIRuntime: o.ociRuntime,
		Warm:       o.cache == "warm",
		PlatformArgs: []string{
			"--invokes", fmt.Sprint(o.invokes),
			"--init-timeout", o.initTimeout.String(),
		},
	}
	if o.runtime == "sim" {
		cfg.PlatformArgs = append(cfg.PlatformArgs, "--runtime", "sim",
			"--runtime-init", o.runtimeInit.String(), "--runtime-invoke", o.runtimeInvoke.String())
	} else {
		cfg.Bootstrap, _ = filepath.Abs(o.runtime)
	}
	s := &series{env: env, name: name, static: staticSet(exts, cfg.Bootstrap)}
	var err error
	if s.sb, err = newSandbox(o, cfg); err != nil {
		return nil, err
	}
	progressf("%s: sandbox %s", name, s.sb.Kind())
	if s.tr, err = newTracer(s.sb, exts, o.uprobes, env.self); err != nil {
		s.sb.Close()
		return nil, err
	}
	if env.costs == nil {
		env.costs = calibrate(s.tr, env.self)
		progressf("probe costs on this machine: %s", env.costs)
	}
	for _, m := range s.tr.Unavailable() {
		progressf("%s: checkpoint unavailable: %s", name, m)
	}
	return s, nil
}

// run makes cold start i and keeps it.
func (s *series) run(ctx context.Context, i int) (profile.Run, error) {
	r, h, err := oneRun(ctx, s.env.o, s.sb, s.tr, i, s.env.re, s.static, nil)
	if err != nil {
		return r, err
	}
	r.Build = s.name
	s.runs = append(s.runs, r)
	s.hits = append(s.hits, h)
	return r, nil
}

func (s *series) initFailed() bool {
	for _, r := range s.runs {
		if r.InitStatus != "" && r.InitStatus != "success" {
			return true
		}
	}
	return false
}

func (s *series) report() *profile.Report {
	rep := profile.Aggregate(s.runs)
	rep.Build = s.name
	rep.Overhead = probeOverhead(s.runs, s.hits, s.env.costs)
	rep.Notes = append(rep.Notes, sandboxNote(s.sb.Kind(), s.runs))
	if s.env.o.emulated {
		rep.Notes = append([]string{"EMULATED: " + vm.EmulatedNote + " (arm64 under qemu TCG); checkpoints, phases, symbols and relocations are real arm64"}, rep.Notes...)
	}
	return rep
}

// close detaches the probes and removes the bundle.
func (s *series) close() {
	s.tr.Close()
	s.sb.Close()
}

func statuses(runs []profile.Run) string {
	n := map[string]int{}
	for _, r := range runs {
		n[r.InitStatus]++
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func newSandbox(o *runOpts, cfg container.Config) (container.Sandbox, error) {
	var sb container.Sandbox
	var err error
	if o.sandbox == "process" {
		sb, err = container.NewProcess(cfg)
	} else {
		sb, err = container.NewOCI(cfg)
	}
	switch {
	case err == nil:
		return sb, nil
	case container.IsBadInput(err), errors.Is(err, container.ErrNoRuntime):
		return nil, withCode(exitBadInput, err)
	case errors.Is(err, container.ErrPrivileges):
		return nil, withCode(exitPrivileges, err)
	}
	return nil, err
}

// newTracer attaches the probes once for the whole series: to the sandbox's
// copies of the extensions and of their ELF interpreter (uprobes are keyed by
// inode, so the host originals would never fire).
func newTracer(sb container.Sandbox, exts []container.Extension, user []string, self string) (*probes.Tracer, error) {
	opts := probes.Options{UserProbes: user, Calibration: self}
	for _, e := range exts {
		p := sb.HostPath(container.ExtensionsDir + "/" + e.Name)
		opts.Executables = append(opts.Executables, p)
		if opts.LdSo == "" {
			if info, err := elfinfo.Open(p); err == nil && info.Interp != "" {
				opts.LdSo = sb.HostPath(info.Interp)
			}
		}
	}
	tr, err := probes.New(opts)
	if err != nil {
		if errors.Is(err, probes.ErrPermission) {
			return nil, withCode(exitPrivileges, err)
		}
		return nil, fmt.Errorf("attaching probes: %w", err)
	}
	return tr, nil
}

// oneRun is one cold start: evict, create, attach, start, wait, collect, delete.
// With smp set it is a sampling run: the CPU sampler follows the sandbox's
// first process too, and smp.cap receives what it captured.
func oneRun(ctx context.Context, o *runOpts, sb container.Sandbox, tr *probes.Tracer, i int, re []*regexp.Regexp, static map[string]bool, smp *sampling) (r profile.Run, h hitCount, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("run %d: %w", i+1, err)
		}
	}()
	var cost profile.SandboxCost
	cost.Kind = sb.Kind()
	if o.cache == "cold" {
		ev, err := container.EvictPageCache(sb.Files())
		if err != nil {
			return r, h, fmt.Errorf("evicting the page cache: %w", err)
		}
		cost.EvictedPages = int64(ev.Before - ev.After)
		cost.ResidentAfter = int64(ev.After)
	}
	inst, err := sb.Create(ctx, fmt.Sprintf("initprof-%d-%d", os.Getpid(), i))
	if err != nil {
		return r, h, err
	}
	defer inst.Delete()
	if l := inst.Limits(); l.Cgroup != "" {
		cost.Limits = &profile.Limits{Cgroup: l.Cgroup, MemoryBytes: l.MemoryBytes, CPUQuotaUS: l.CPUQuotaUS, CPUPeriodUS: l.CPUPeriodUS}
	}
	if err := tr.Follow(inst.PID()); err != nil {
		return r, h, fmt.Errorf("following pid %d: %w", inst.PID(), err)
	}
	if smp != nil {
		if err := smp.s.Follow(inst.PID()); err != nil {
			tr.Collect()
			return r, h, fmt.Errorf("sampling pid %d: %w", inst.PID(), err)
		}
	}
	if err := inst.Start(); err != nil {
		if smp != nil {
			smp.s.Collect()
		}
		return r, h, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.initTimeout+time.Duration(o.invokes)*10*time.Second+30*time.Second)
	code, werr := inst.Wait(wctx)
	cancel()
	if smp != nil {
		var serr error
		if smp.cap, serr = smp.s.Collect(); serr != nil && werr == nil {
			werr = fmt.Errorf("collecting the samples: %w", serr)
		}
	}
	evs, st, cerr := tr.Collect()
	derr := inst.Delete()
	if werr != nil {
		return r, h, fmt.Errorf("%w\n%s", werr, tail(inst.Output()))
	}
	if cerr != nil {
		return r, h, fmt.Errorf("reading probe events: %w", cerr)
	}
	if derr != nil {
		return r, h, fmt.Errorf("cleaning up the sandbox: %w", derr)
	}
	f, err := os.Open(filepath.Join(inst.OutDir(), container.TimelineName))
	if err != nil {
		return r, h, fmt.Errorf("the platform wrote no timeline (exit code %d):\n%s", code, tail(inst.Output()))
	}
	tl, err := extension.ReadTimeline(f)
	f.Close()
	if err != nil {
		return r, h, err
	}
	res, err := assemble.Assemble(assemble.Input{Index: i, Events: evs, Timeline: tl, Checkpoints: re, Dropped: st.Dropped, Static: static, Unprobed: map[string]bool{extension.NameRuntime: o.runtime == "sim"}})
	if err != nil {
		return r, h, fmt.Errorf("%w\n%s", err, tail(inst.Output()))
	}
	ov := inst.Overhead()
	cost.CreateNs, cost.StartNs, cost.DeleteNs = ov.Create.Nanoseconds(), ov.Start.Nanoseconds(), ov.Delete.Nanoseconds()
	cost.MajorFaults = inst.Rusage().Majflt
	res.Run.Sandbox = &cost
	if st.Dropped > 0 {
		res.Run.Notes = append(res.Run.Notes, fmt.Sprintf("WARNING: the probes dropped %d events in this run (ring buffer full): its checkpoints may be incomplete", st.Dropped))
	}
	os.RemoveAll(inst.OutDir())
	return res.Run, countHits(evs), nil
}

// tail is the last 20 lines of a sandbox's output, indented for an error.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return indent(strings.Join(lines, "\n"))
}

// probeOverhead states what the probes cost, from what they counted: each
// run's uprobe hits, socket events and other events at the per-event costs
// measured on this machine (calibrate).
func probeOverhead(runs []profile.Run, hits []hitCount, c *probeCosts) *profile.Overhead {
	if len(runs) == 0 || len(hits) == 0 {
		return nil
	}
	if c == nil {
		c = defaultCosts("no calibration")
	}
	var base, up, so, tp float64
	for _, r := range runs {
		base += r.InitDurationMs * 1e6
	}
	for _, h := range hits {
		up += float64(h.uprobes)
		so += float64(h.sockets)
		tp += float64(h.tracepoints)
	}
	n := float64(len(hits))
	up, so, tp = up/n, so/n, tp/n
	cost := up*c.UprobeHitNs + so*c.SocketEventNs + tp*c.TracepointNs
	method := fmt.Sprintf("estimated per run: %.0f uprobe hits × %.1f µs + %.0f socket events × %.1f µs + %.0f other events × %.1f µs (%s)",
		up, c.UprobeHitNs/1e3, so, c.SocketEventNs/1e3, tp, c.TracepointNs/1e3, c.source)
	if c.UprobeReturnNs > 0 {
		method += fmt.Sprintf("; uprobe times +%.1f µs, the calibrated return of the trap to the program", c.UprobeReturnNs/1e3)
	}
	return &profile.Overhead{
		Method:         method,
		UprobeReturnNs: c.UprobeReturnNs,
		InitDeltaNs:    cost,
		BaselineNs:     base/float64(len(runs)) - cost,
		PerEventNs:     c.UprobeHitNs,
	}
}

// probeCosts are per-event probe costs and where they come from.
type probeCosts struct {
	probes.Costs
	source string
}

func (c *probeCosts) String() string {
	return fmt.Sprintf("uprobe hit %.1f µs, traced socket syscall %.2f µs, other traced event %.2f µs (%s)",
		c.UprobeHitNs/1e3, c.SocketEventNs/1e3, c.TracepointNs/1e3, c.source)
}

// Per-event costs measured on the development VM (2 vCPU, kernel 6.18) by the
// probes package's BenchmarkOverhead: the fallback when calibration cannot
// run (a stripped initprof has no calibration symbol).
const (
	devUprobeHitNs   = 10300.0
	devSocketEventNs = 1120.0
	devTracepointNs  = 380.0
)

func defaultCosts(why string) *probeCosts {
	return &probeCosts{probes.Costs{UprobeHitNs: devUprobeHitNs, SocketEventNs: devSocketEventNs, TracepointNs: devTracepointNs},
		"the development VM's figures: " + why}
}

// calibrationLoops and calibrationReps size the calibration: 2000 uprobe hits
// take ~20 ms at the development VM's 10 µs, ~0.2 s under qemu TCG.
const (
	calibrationLoops = 2000
	calibrationReps  = 3
)

// calibrate measures the per-event costs with tr (once per invocation,
// before the first run), falling back to the development VM's figures.
func calibrate(tr *probes.Tracer, self string) *probeCosts {
	c, err := tr.Calibrate(self, calibrationLoops, calibrationReps)
	if err != nil {
		return defaultCosts(err.Error())
	}
	return &probeCosts{c, fmt.Sprintf("calibrated here: medians of %d×%d loops", calibrationReps, calibrationLoops)}
}

// hitCount is how many probe events of each cost class one run produced.
type hitCount struct{ uprobes, sockets, tracepoints int }

func countHits(evs []probes.Event) hitCount {
	var h hitCount
	for _, e := range evs {
		switch e.Kind {
		case probes.KindUprobe, probes.KindUretprobe:
			h.uprobes++
		case probes.KindSend, probes.KindRecv:
			h.sockets++
		default:
			h.tracepoints++
		}
	}
	return h
}

func sandboxNote(kind string, runs []profile.Run) string {
	var c, s, d []float64
	for _, r := range runs {
		if r.Sandbox != nil {
			c = append(c, float64(r.Sandbox.CreateNs))
			s = append(s, float64(r.Sandbox.StartNs))
			d = append(d, float64(r.Sandbox.DeleteNs))
		}
	}
	med := func(x []float64) float64 {
		if len(x) == 0 {
			return 0
		}
		sort.Float64s(x)
		return x[len(x)/2] / 1e6
	}
	note := fmt.Sprintf("sandbox %s: per-run overhead create %.1f ms, start %.1f ms, delete %.1f ms (medians)", kind, med(c), med(s), med(d))
	for _, r := range runs {
		if r.Sandbox != nil && r.Sandbox.Limits != nil {
			l := r.Sandbox.Limits
			note += fmt.Sprintf("; limits read back from cgroup %s: memory %d MiB, CPU %d/%d µs (%.3f CPU)",
				l.Cgroup, l.MemoryBytes>>20, l.CPUQuotaUS, l.CPUPeriodUS, float64(l.CPUQuotaUS)/float64(l.CPUPeriodUS))
			break
		}
	}
	return note
}

// writeFiles writes each named file into dir.
func writeFiles(dir string, files map[string]func(io.Writer) error) error {
	for name, write := range files {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := write(fh); err != nil {
			fh.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

// selfForSandbox is the initprof binary the sandbox runs as PID 1. It must be
// static to run in any root filesystem; a dynamically linked initprof (`go
// install` with cgo on) gets its static twin, built once from the same source
// (internal/selfbin). The process sandbox runs on the host's files, so there
// the running binary does when no twin can be had.
func selfForSandbox(o *runOpts) (string, error) {
	self, err := selfbin.Static(runtime.GOARCH, selfbin.Options{Progress: func(s string) { progressf("%s", s) }})
	if err != nil && o.sandbox == "process" {
		return os.Executable()
	}
	return self, err
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

// progress prints one line per run to stderr, rewritten in place on a terminal.
type progress struct {
	n, i  int
	tty   bool
	start time.Time
}

func newProgress(n int) *progress {
	return &progress{n: n, tty: isTerminal(os.Stderr), start: time.Now()}
}

func (p *progress) step(r profile.Run) {
	p.i++
	line := fmt.Sprintf("run %d/%d: Init Duration %.2f ms, ended by %s, status %s (%.1fs elapsed)",
		p.i, p.n, r.InitDurationMs, r.EndedBy, r.InitStatus, time.Since(p.start).Seconds())
	switch {
	case p.tty:
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	case p.n <= 20 || p.i == p.n || p.i%max(1, p.n/10) == 0:
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

// staticSet names the processes without an ELF interpreter: the static
// extensions, and the runtime when it is the simulated one (initprof itself)
// or a static bootstrap. Their loader checkpoints are not "missing".
func staticSet(exts []container.Extension, bootstrap string) map[string]bool {
	m := map[string]bool{}
	for _, e := range exts {
		if info, err := elfinfo.Open(e.Path); err == nil && info.Interp == "" {
			m[e.Name] = true
		}
	}
	if bootstrap == "" {
		m[extension.NameRuntime] = true
	} else if info, err := elfinfo.Open(bootstrap); err == nil && info.Interp == "" {
		m[extension.NameRuntime] = true
	}
	return m
}

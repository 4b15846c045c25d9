package coldstart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/internal/selfbin"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/assemble"
)

// Series is one build under test: its sandbox (bundle built once), its
// probes (attached once), and the cold starts made so far.
type Series struct {
	e      *Engine
	name   string
	sb     container.Sandbox
	tr     *probes.Tracer
	static map[string]bool
	runs   []profile.Run
	hits   []hitCount
	// storageNote says why the default lambda storage fell back to local.
	storageNote string
	// others are the other initprof processes seen running during the
	// runs (container.OtherLiveOwners), by pid, with the runs they overlapped.
	others map[int][]int
	touch  *touchState // what init touched: file index and ELF cache (touched.go)
	// binaries are the SHA-256 of each extension's (and a real runtime's)
	// file, and host this machine's name: every run carries them, so that
	// initprof merge can tell runs of one build from another's.
	binaries map[string]string
	host     string
	// pendingInit is the last cold start's pages of each extension's own
	// executable (touchedAfter); initPages keeps them per timing run, in
	// step with runs (SymbolTouches).
	pendingInit map[string]exeInit
	initPages   []map[string]exeInit
}

// NewSeries builds the sandbox for exts (checked with Extensions) and
// attaches the probes to its copies of them. The first series of an engine
// also calibrates the probe costs on this machine.
func (e *Engine) NewSeries(name string, exts []container.Extension) (*Series, error) {
	c := e.cfg
	cfg := container.Config{
		Extensions: exts,
		Initprof:   c.Self,
		MemoryMB:   c.MemoryMB,
		Env:        c.Env,
		Rootfs:     c.Rootfs,
		OCIRuntime: c.OCIRuntime,
		Warm:       c.Warm,
		InitCPU:    max(c.InitCPU, 0),
		PlatformArgs: []string{
			"--invokes", fmt.Sprint(c.Invokes),
			"--init-timeout", c.InitTimeout.String(),
		},
	}
	for _, re := range c.Checkpoints {
		// The platform keeps every checkpoint line, however chatty the
		// extension (others are cut to the first and last lines).
		cfg.PlatformArgs = append(cfg.PlatformArgs, "--keep-log", re.String())
	}
	cfg.Function, cfg.Image = c.Function, c.Image
	switch {
	case c.Function != "" || c.Image != "":
		// The package brings its runtime.
	case c.Runtime == "sim":
		cfg.PlatformArgs = append(cfg.PlatformArgs, "--runtime", "sim",
			"--runtime-init", c.RuntimeInit.String(), "--runtime-invoke", c.RuntimeInvoke.String())
	default:
		cfg.Bootstrap, _ = filepath.Abs(c.Runtime)
	}
	s := &Series{e: e, name: name, binaries: map[string]string{}}
	s.host, _ = os.Hostname()
	var err error
	if cfg.Storage, s.storageNote, err = c.storage(); err != nil {
		return nil, err
	}
	if s.storageNote != "" {
		e.progressf("%s: %s", name, s.storageNote)
	}
	if s.sb, err = newSandbox(c.Sandbox, cfg); err != nil {
		return nil, err
	}
	e.progressf("%s: sandbox %s", name, s.sb.Kind())
	// The sandbox knows every extension (layers and images bring theirs)
	// and where the runtime is; probes and checkpoints follow its copies.
	exts = s.sb.Extensions()
	bootstrap := ""
	if p := s.sb.RuntimePath(); p != "" {
		bootstrap = s.sb.HostPath(p)
	}
	s.static = staticSet(exts, bootstrap)
	// Every run carries the SHA-256 of each binary, so that initprof merge
	// can tell runs of one build from another's.
	for _, x := range exts {
		h, err := fileHash(x.Path)
		if err != nil {
			s.sb.Close()
			return nil, kindErr(BadInput, err)
		}
		s.binaries[x.Name] = h
	}
	if bootstrap != "" {
		h, err := fileHash(bootstrap)
		if err != nil {
			s.sb.Close()
			return nil, kindErr(BadInput, fmt.Errorf("runtime: %w", err))
		}
		s.binaries[extension.NameRuntime] = h
	}
	if s.tr, err = newTracer(s.sb, exts, bootstrap, c.Uprobes, c.Self, c.Rootfs); err != nil {
		s.sb.Close()
		return nil, err
	}
	if e.costs == nil {
		e.costs = calibrate(s.tr, c.Self)
		e.progressf("probe costs on this machine: %s", e.costs)
	}
	for _, m := range s.tr.Unavailable() {
		e.progressf("%s: checkpoint unavailable: %s", name, m)
	}
	return s, nil
}

// Name is the series' build name.
func (s *Series) Name() string { return s.name }

// Runs are the cold starts made so far, in order.
func (s *Series) Runs() []profile.Run { return s.runs }

// HostPath is where a path inside the sandbox lives on the host ("" if
// nowhere): symbolization reads the files the processes saw.
func (s *Series) HostPath(p string) string { return s.sb.HostPath(p) }

// SandboxKind describes the sandbox ("oci (runc 1.1.5, cgroup v1)", "process").
func (s *Series) SandboxKind() string { return s.sb.Kind() }

// Run performs cold start i and keeps it.
func (s *Series) Run(ctx context.Context, i int) (profile.Run, error) {
	s.noteOthers(i)
	s.pendingInit = nil
	r, h, err := s.oneRun(ctx, i, nil)
	if err != nil {
		return r, err
	}
	r.Build, r.Host, r.Arch, r.Binaries = s.name, s.host, HostArch(), s.binaries
	s.runs = append(s.runs, r)
	s.hits = append(s.hits, h)
	s.initPages = append(s.initPages, s.pendingInit)
	return r, nil
}

// RunN performs cold starts 0 to n-1 (Run), calling onRun after each, and
// stops early, between runs, when ctx is done. A run that fails because ctx
// was done is not an error: the caller checks ctx.Err() and keeps what was
// measured (Runs).
func (s *Series) RunN(ctx context.Context, n int, onRun func(profile.Run)) error {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		r, err := s.Run(ctx, i)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if onRun != nil {
			onRun(r)
		}
	}
	return nil
}

// InitFailed says whether any run's init did not succeed.
func (s *Series) InitFailed() bool {
	for _, r := range s.runs {
		if r.InitStatus != "" && r.InitStatus != "success" {
			return true
		}
	}
	return false
}

// Report aggregates the runs so far, with the probe overhead priced at this
// machine's costs and the sandbox's own cost.
func (s *Series) Report() *profile.Report {
	rep := profile.Aggregate(s.runs)
	rep.Build = s.name
	rep.Overhead = probeOverhead(s.runs, s.hits, s.e.costs)
	rep.Notes = append(rep.Notes, s.cpuModelNote())
	rep.Notes = append(rep.Notes, s.storageModelNote())
	rep.Notes = append(rep.Notes, sandboxNote(s.sb.Kind(), s.runs))
	if n := touchedNote(s.runs); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	if n := s.othersNote(); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	if s.e.cfg.Emulated {
		rep.Notes = append([]string{"EMULATED: " + vm.EmulatedNote + " (arm64 under qemu TCG); checkpoints, phases, symbols and relocations are real arm64"}, rep.Notes...)
	}
	return rep
}

// Close detaches the probes and removes the bundle.
func (s *Series) Close() {
	s.tr.Close()
	s.sb.Close()
}

func newSandbox(kind string, cfg container.Config) (container.Sandbox, error) {
	var sb container.Sandbox
	var err error
	if kind == "process" {
		sb, err = container.NewProcess(cfg)
	} else {
		sb, err = container.NewOCI(cfg)
	}
	switch {
	case err == nil:
		return sb, nil
	case container.IsBadInput(err), errors.Is(err, container.ErrNoRuntime):
		return nil, kindErr(BadInput, err)
	case errors.Is(err, container.ErrPrivileges):
		return nil, kindErr(Privileges, err)
	}
	return nil, err
}

// newTracer attaches the probes once for the whole series: to the sandbox's
// copies of the extensions and of their ELF interpreter (uprobes are keyed by
// inode, so the host originals would never fire).
//
// With no extension (a function's own init, as lambda-perf measures it) the
// runtime's bootstrap is the binary under test and gets the probes.
func newTracer(sb container.Sandbox, exts []container.Extension, bootstrap string, user []string, self, rootfs string) (*probes.Tracer, error) {
	opts := probes.Options{UserProbes: user, Calibration: self}
	type target struct{ inside, host string }
	var targets []target
	for _, e := range exts {
		targets = append(targets, target{container.ExtensionsDir + "/" + e.Name, e.Path})
	}
	if len(exts) == 0 && bootstrap != "" {
		targets = append(targets, target{sb.RuntimePath(), bootstrap})
	}
	for _, e := range targets {
		p := sb.HostPath(e.inside)
		if _, _, script, _ := container.ScriptInterpreter(e.host); script {
			// A #! extension's process runs its interpreter's code: probe
			// the sandbox's copy of that program.
			inside, _, err := container.ResolveScript(e.host, rootfs)
			if err != nil {
				return nil, kindErr(BadInput, err)
			}
			p = sb.HostPath(inside)
		}
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
			return nil, kindErr(Privileges, err)
		}
		return nil, fmt.Errorf("attaching probes: %w", err)
	}
	return tr, nil
}

// sampling hooks the sampler into oneRun: Follow before start, Collect after
// the sandbox's first process exited.
type sampling struct {
	s   *probes.Sampler
	cap *probes.Capture
}

// oneRun is one cold start: evict, create, attach, start, wait, collect, delete.
// With smp set it is a sampling run: the CPU sampler follows the sandbox's
// first process too, and smp.cap receives what it captured.
func (s *Series) oneRun(ctx context.Context, i int, smp *sampling) (r profile.Run, h hitCount, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("run %d: %w", i+1, err)
		}
	}()
	c, sb, tr := s.e.cfg, s.sb, s.tr
	var cost profile.SandboxCost
	cost.Kind = sb.Kind()
	if !c.Warm {
		ev, err := container.EvictPageCache(sb.Files())
		if err != nil {
			return r, h, fmt.Errorf("evicting the page cache: %w", err)
		}
		cost.EvictedPages = int64(ev.Before - ev.After)
		cost.ResidentAfter = int64(ev.After)
	}
	resBefore := s.touchedBefore()
	inst, err := sb.Create(ctx, fmt.Sprintf("initprof-%d-%d", os.Getpid(), i))
	if err != nil {
		return r, h, err
	}
	defer inst.Delete()
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
	wctx, cancel := context.WithTimeout(ctx, c.InitTimeout+time.Duration(c.Invokes)*10*time.Second+30*time.Second)
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
	if l := inst.Limits(); l.Cgroup != "" {
		cost.Limits = &profile.Limits{Cgroup: l.Cgroup, MemoryBytes: l.MemoryBytes, CPUQuotaUS: l.CPUQuotaUS, CPUPeriodUS: l.CPUPeriodUS,
			InitCPUQuotaUS: l.InitCPUQuotaUS, SwitchMonoNs: l.SwitchMonoNs, SwitchErr: l.SwitchErr}
	}
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
	res, err := assemble.Assemble(assemble.Input{Index: i, Events: evs, Timeline: tl, Checkpoints: c.Checkpoints, Dropped: st.Dropped, Static: s.static, Unprobed: map[string]bool{extension.NameRuntime: c.Runtime == "sim"}})
	if err != nil {
		return r, h, fmt.Errorf("%w\n%s", err, tail(inst.Output()))
	}
	ov := inst.Overhead()
	cost.CreateNs, cost.StartNs, cost.DeleteNs = ov.Create.Nanoseconds(), ov.Start.Nanoseconds(), ov.Delete.Nanoseconds()
	cost.MajorFaults = inst.Rusage().Majflt
	res.Run.Sandbox = &cost
	sst := inst.Storage()
	res.Run.Storage = runStorage(sst)
	if sst != nil {
		fs := make([]profile.Fetch, 0, len(sst.Fetches))
		for _, f := range sst.Fetches {
			fs = append(fs, profile.Fetch{TGID: f.TGID, MonoNs: f.MonoNs, WaitNs: f.WaitNs, Path: f.Path, Chunks: f.Chunks})
		}
		res.Run.Storage.UnattributedWaitNs = profile.ChargeFetches(&res.Run, fs)
	}
	if st.Dropped > 0 {
		res.Run.Notes = append(res.Run.Notes, fmt.Sprintf("WARNING: the probes dropped %d events in this run (ring buffer full): its checkpoints may be incomplete", st.Dropped))
	}
	s.touchedAfter(&res.Run, evs, resBefore)
	os.RemoveAll(inst.OutDir())
	return res.Run, countHits(evs), nil
}

// tail is the last 20 lines of a sandbox's output, indented for an error.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
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
			if l.InitCPUQuotaUS > 0 {
				note += fmt.Sprintf(" from the end of init, %.3f CPU before it", float64(l.InitCPUQuotaUS)/float64(l.CPUPeriodUS))
			}
			break
		}
	}
	return note
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

// noteOthers records the other initprof processes running as run i starts.
func (s *Series) noteOthers(i int) {
	for _, p := range container.OtherLiveOwners() {
		if s.others == nil {
			s.others = map[int][]int{}
		}
		s.others[p] = append(s.others[p], i)
	}
}

// othersNote says which runs overlapped another initprof, and what that
// does to the figures; "" when none did.
func (s *Series) othersNote() string {
	var calib []int
	if s.e.costs != nil {
		calib = s.e.costs.Concurrent
	}
	if len(s.others) == 0 && len(calib) == 0 {
		return ""
	}
	runs := map[int]bool{}
	var pids []string
	for p, rs := range s.others {
		pids = append(pids, fmt.Sprint(p))
		for _, r := range rs {
			runs[r] = true
		}
	}
	for _, p := range calib {
		if _, ok := s.others[p]; !ok {
			pids = append(pids, fmt.Sprint(p))
		}
	}
	sort.Strings(pids)
	msg := fmt.Sprintf("UNRELIABLE: another initprof (pid %s) was running on this machine", strings.Join(pids, ", "))
	if len(runs) > 0 {
		msg += fmt.Sprintf(" during %d of %d runs", len(runs), len(s.runs))
	}
	if len(calib) > 0 {
		msg += " and during the probe-cost calibration"
	}
	return msg + ": they compete for the CPUs, so the Init Durations and the probe-overhead figure are not this build's alone; rerun with nothing else profiling"
}

// cpuModelNote states the CPU the runs had during init and invokes, and how
// many runs the switch between the two failed in.
func (s *Series) cpuModelNote() string {
	c := s.e.cfg
	inv := float64(c.MemoryMB) / 1769
	if s.sb.Kind() == "process" || strings.HasPrefix(s.sb.Kind(), "process") {
		return "model: CPU unlimited (the process sandbox has no cgroup): Lambda gives init 2 vCPUs and invokes " + fmt.Sprintf("%.3f", inv) + " vCPU at this memory size"
	}
	if c.InitCPU <= 0 {
		return fmt.Sprintf("model: CPU %.3f vCPU (memory/1769) during init too, as --init-cpu 0 asks: NOT Lambda's init, whose Init Durations do not vary with memory", inv)
	}
	failed := 0
	for _, r := range s.runs {
		if l := r.Sandbox; l != nil && l.Limits != nil && l.Limits.InitCPUQuotaUS > 0 && l.Limits.SwitchMonoNs == 0 && r.InitStatus == "success" {
			failed++
		}
	}
	n := fmt.Sprintf("model: CPU %g vCPU during init (Lambda's Init Durations do not vary with memory: LAMBDA-FIDELITY.md §1), then memory/1769 = %.3f vCPU from the end of init; --init-cpu 0 keeps the invoke quota during init", c.InitCPU, inv)
	if failed > 0 {
		n += fmt.Sprintf("; WARNING: the switch to the invoke quota failed in %d runs (see the platform output)", failed)
	}
	return n
}

// runStorage is the profile's copy of a run's storage account.
func runStorage(st *container.StorageStats) *profile.Storage {
	if st == nil {
		return nil
	}
	out := &profile.Storage{Model: st.Model, Chunks: map[string]int{}, TotalChunks: st.Chunks,
		WaitNs: st.WaitNs, ExpectedNs: st.ExpectedNs, OversleptNs: st.OversleptNs, Requests: st.Requests, ServiceNs: st.ServiceNs,
		ReadAheadKiB: st.ReadAhead >> 10, CPUsAwake: st.CPUsAwake, CPUsAwakeErr: st.CPUsAwakeErr}
	for _, f := range st.Files {
		if f.Chunks > 0 {
			out.Chunks[f.Path] = f.Chunks
		}
	}
	for op, o := range st.Ops {
		if out.Ops == nil {
			out.Ops = map[string]profile.StorageOp{}
		}
		out.Ops[op] = profile.StorageOp{Count: o.Count, ServiceNs: o.ServiceNs}
	}
	return out
}

// storageModelNote names the storage model with its source and what the
// cold starts fetched (medians over the runs).
func (s *Series) storageModelNote() string {
	if s.storageNote != "" {
		return "model: " + s.storageNote
	}
	var chunks, wait, svc, over []float64
	model := ""
	ra := 0
	awake := ""
	for _, r := range s.runs {
		if st := r.Storage; st != nil {
			if model == "" {
				model = st.Model + " (first run's; +1 per cold start)"
			}
			ra = st.ReadAheadKiB
			if st.CPUsAwakeErr != "" {
				awake = "; idle CPUs could not be held polling (" + st.CPUsAwakeErr + "): each FUSE round trip also pays a vCPU wake-up"
			} else if st.CPUsAwake {
				awake = "; idle CPUs held polling while the FUSE layer runs (PM QoS 0 µs), so its round trips do not pay this VM's vCPU wake-up"
			}
			chunks = append(chunks, float64(st.TotalChunks))
			wait = append(wait, float64(st.WaitNs)/1e6)
			svc = append(svc, float64(st.ServiceNs)/1e6)
			over = append(over, float64(st.OversleptNs)/1e6)
		}
	}
	if model == "" {
		if s.e.cfg.Warm {
			return "model: storage local (--cache warm: the page cache is kept, nothing is fetched)"
		}
		return "model: storage local (this machine's disk, page cache evicted before each cold start): Lambda's chunked lazy loading is not modelled; --storage lambda models it"
	}
	med := func(x []float64) float64 {
		sort.Float64s(x)
		return x[len(x)/2]
	}
	return fmt.Sprintf("model: %s; %d KiB readahead; %.0f chunks fetched per cold start (median of %d), modelled fetch wait %.1f ms (the sleeps overran it by %.1f ms), FUSE server's own time %.1f ms (medians)%s; --storage local for this machine's disk",
		model, ra, med(chunks), len(chunks), med(wait), med(over), med(svc), awake)
}

// fileHash is "sha256:HEX" of a file's contents.
func fileHash(path string) (string, error) {
	h, err := selfbin.SHA256File(path)
	if err != nil {
		return "", err
	}
	return "sha256:" + h, nil
}

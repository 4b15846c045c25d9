package extension

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/initprof/initprof/extension/telemetry"
)

// RuntimeSpec says what to exec as the function's runtime (Lambda's bootstrap).
type RuntimeSpec struct {
	Path string
	Args []string
	// Env is added to the runtime's environment only (never to extensions).
	Env []string
	// Version is reported as runtimeVersion in platform.initStart.
	Version string
}

// SimRuntimeEnv is the variable that turns the initprof binary into the
// simulated runtime (see RunSimRuntime).
const SimRuntimeEnv = "INITPROF_SIM_RUNTIME"

// SimRuntime returns the spec that runs exe (an initprof binary, or any
// program that calls RunSimRuntime when SimRuntimeEnv=1) as the simulated
// runtime with the given init and per-invoke times.
func SimRuntime(exe string, init, invoke time.Duration) RuntimeSpec {
	return RuntimeSpec{
		Path:    exe,
		Env:     []string{SimRuntimeEnv + "=1", "INITPROF_SIM_INIT=" + init.String(), "INITPROF_SIM_INVOKE=" + invoke.String()},
		Version: "initprof-sim",
	}
}

// Config is one platform run.
type Config struct {
	// ExtensionsDir holds the external extensions (Lambda's /opt/extensions).
	// Empty or missing means none.
	ExtensionsDir string
	Runtime       RuntimeSpec
	Function      FunctionConfig
	// Env is the customer's variables (K=V), given to the runtime and extensions.
	Env []string
	// Addr is where the APIs listen (default 127.0.0.1:9001); port 0 picks one.
	Addr    string
	Invokes int
	// Payload is the invoke event (default {}).
	Payload []byte

	InitTimeout      time.Duration // default 10s
	InvokeTimeout    time.Duration // the function timeout; default 3s
	ShutdownTimeout  time.Duration // default 2s
	RuntimeTermGrace time.Duration // SIGTERM → SIGKILL for the runtime; default 300ms

	// Timeline receives every entry (nil: kept in memory only).
	Timeline *Timeline
	// Output, when set, gets every process output line prefixed with its name.
	Output io.Writer
	// PID1 makes the platform reap every child with wait4(-1); set it when
	// running as PID 1 in a sandbox. Default: os.Getpid() == 1.
	PID1 *bool
	// Dir is the working directory of the processes (default: inherited).
	Dir string
	// KeepLogs are output lines the timeline keeps whatever their number
	// (--checkpoint regexes); see LogKeepFirst for the others.
	KeepLogs []*regexp.Regexp
	// OnInitEnd, when set, runs as INIT ends, before the first invoke: the
	// sandbox gives invokes their memory-proportional CPU quota there.
	OnInitEnd func() error
	// NoSuppressedInit ends the environment after a failed init instead of
	// re-running init at the first invoke as Lambda does.
	NoSuppressedInit bool
}

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9001"
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.InvokeTimeout <= 0 {
		c.InvokeTimeout = 3 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 2 * time.Second
	}
	if c.RuntimeTermGrace <= 0 {
		c.RuntimeTermGrace = 300 * time.Millisecond
	}
	if len(c.Payload) == 0 {
		c.Payload = []byte("{}")
	}
	f := &c.Function
	if f.FunctionName == "" {
		f.FunctionName = "initprof-function"
	}
	if f.Version == "" {
		f.Version = "$LATEST"
	}
	if f.Handler == "" {
		f.Handler = "function.handler"
	}
	if f.AccountID == "" {
		f.AccountID = "123456789012"
	}
	if f.Region == "" {
		f.Region = "us-east-1"
	}
	if f.MemoryMB == 0 {
		f.MemoryMB = 1024
	}
	if c.Runtime.Version == "" {
		c.Runtime.Version = filepath.Base(c.Runtime.Path)
	}
	if c.Timeline == nil {
		c.Timeline = NewTimeline(nil)
	}
}

// Result is what a run measured; the timeline has the details.
type Result struct {
	InitStatus    string
	InitErrorType string
	InitDuration  time.Duration // as platform.initReport reports it
	EndedBy       string        // who ended (or failed) init
	Invokes       []InvokeResult
	// SuppressedInit is the init Lambda re-ran at the first invoke after
	// this one failed (nil: init succeeded, or no invoke followed).
	SuppressedInit *InitRetry
	Timeline       []Entry
}

// InitRetry is a suppressed init's outcome.
type InitRetry struct {
	Status, ErrorType, EndedBy string
	Duration                   time.Duration
}

// InvokeResult is one invoke's report.
type InvokeResult struct {
	RequestID         string
	Status            string
	ErrorType         string
	Duration          time.Duration
	ExtensionOverhead time.Duration
}

// Platform is the lifecycle engine: it runs one function environment from
// initStart to the end of shutdown.
type Platform struct {
	cfg   Config
	core  *Core
	hub   *telemetry.Hub
	tl    *Timeline
	logs  *logLimiter
	ln    net.Listener
	rp    *reaper
	pumps sync.WaitGroup
	exits sync.WaitGroup // exit-entry writers

	mono0 int64
	wall0 time.Time

	mu      sync.Mutex
	procs   map[string]*proc // by name; NameRuntime for the runtime
	extPath map[string]string
}

// New validates cfg and binds the API address, so the caller knows the real
// port (Addr) before Run, and a busy port fails here with a clear error.
func New(cfg Config) (*Platform, error) {
	cfg.defaults()
	if cfg.Runtime.Path == "" {
		return nil, errors.New("platform: no runtime given; use the simulated one or a bootstrap path")
	}
	if st, err := os.Stat(cfg.Runtime.Path); err != nil {
		return nil, fmt.Errorf("runtime %s: %w", cfg.Runtime.Path, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runtime %s: not an executable file", cfg.Runtime.Path)
	}
	if err := ValidateEnv(cfg.Env); err != nil {
		return nil, err
	}
	if cfg.Invokes < 0 {
		return nil, fmt.Errorf("invokes %d: must be 0 or more", cfg.Invokes)
	}
	if m := cfg.Function.MemoryMB; m < 128 || m > 10240 {
		return nil, fmt.Errorf("memory %d MB: Lambda allows 128 to 10240", m)
	}
	if cfg.ExtensionsDir != "" {
		if _, err := listExtensions(cfg.ExtensionsDir); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("platform API address %s: %w", cfg.Addr, err)
	}
	p := &Platform{cfg: cfg, tl: cfg.Timeline, ln: ln, procs: map[string]*proc{}, extPath: map[string]string{}}
	p.mono0, p.wall0 = MonoNow(), time.Now()
	p.logs = newLogLimiter(p.tl, cfg.KeepLogs)
	p.hub = telemetry.NewHub(telemetry.Options{Observe: p.observe})
	p.core = NewCore(cfg.Function, p.hub)
	p.core.OnState = func(name, st string) { p.tl.Add(Entry{Kind: KindState, Name: name, State: st}) }
	pid1 := os.Getpid() == 1
	if cfg.PID1 != nil {
		pid1 = *cfg.PID1
	}
	p.rp = newReaper(pid1)
	return p, nil
}

// Addr is the address the APIs listen on (AWS_LAMBDA_RUNTIME_API).
func (p *Platform) Addr() string { return p.ln.Addr().String() }

// Close releases the listener when Run was never called.
func (p *Platform) Close() error { p.rp.stop(); return p.ln.Close() }

// wallAt converts a CLOCK_MONOTONIC instant to wall time for envelopes and spans.
func (p *Platform) wallAt(mono int64) time.Time { return p.wall0.Add(time.Duration(mono - p.mono0)) }

func (p *Platform) observe(o telemetry.Observation) {
	d := map[string]any{}
	if o.Events != 0 {
		d["events"] = o.Events
	}
	if o.Bytes != 0 {
		d["bytes"] = o.Bytes
	}
	if o.Err != "" {
		d["error"] = o.Err
	}
	if o.Attempt != 0 {
		d["attempt"] = o.Attempt
	}
	if o.Port != 0 {
		d["port"] = o.Port
	}
	p.tl.Add(Entry{Kind: KindTelemetry, Name: o.Subscriber, Event: o.Kind, Status: o.Status, Detail: d})
}

func (p *Platform) publish(typ string, rec any, mono int64) {
	p.hub.Publish(telemetry.Event{Time: p.wallAt(mono), Type: typ, Record: rec})
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e4) / 100 }

// listExtensions returns the executable files of dir, sorted by name, as
// Lambda's /opt/extensions is walked. Symlinks to executables count.
func listExtensions(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("extensions directory %s does not exist", dir)
		}
		return nil, fmt.Errorf("extensions directory %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func (p *Platform) state(name, state, event string, detail map[string]any) {
	p.tl.Add(Entry{Kind: KindState, Name: name, State: state, Event: event, Detail: detail})
}

// spawnProc starts one process and wires its output and exit to the core.
func (p *Platform) spawnProc(name, path string, args, env []string, isRuntime bool) error {
	logType := telemetry.TypeExtensionLog
	if isRuntime {
		logType = telemetry.TypeFunction
	}
	var pidSeen int
	var pidMu sync.Mutex
	spec := spawnSpec{name: name, path: path, args: args, env: env, dir: p.cfg.Dir,
		onLine: func(stream, line string, mono int64) {
			pidMu.Lock()
			pid := pidSeen
			pidMu.Unlock()
			p.logs.line(name, pid, stream, line, mono)
			if p.hub.Wants(logType) {
				p.publish(logType, line, mono)
			}
			if p.cfg.Output != nil {
				fmt.Fprintf(p.cfg.Output, "[%s] %s\n", name, line)
			}
		}}
	pr, mono, err := p.rp.spawn(spec, &p.pumps)
	if err != nil {
		p.tl.Add(Entry{MonoNs: mono, Kind: KindSpawn, Name: name, Path: path, Detail: map[string]any{"error": err.Error()}})
		return err
	}
	pidMu.Lock()
	pidSeen = pr.pid
	pidMu.Unlock()
	p.tl.Add(Entry{MonoNs: mono, Kind: KindSpawn, Name: name, PID: pr.pid, Path: path})
	p.mu.Lock()
	p.procs[name] = pr
	p.mu.Unlock()
	p.exits.Add(1)
	go func() {
		defer p.exits.Done()
		<-pr.done
		p.tl.Add(Entry{Kind: KindExit, Name: name, PID: pr.pid, Detail: pr.describe()})
		if isRuntime {
			p.core.RuntimeExited()
		} else {
			p.core.ExtExited(name)
		}
	}()
	return nil
}

func (p *Platform) proc(name string) *proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[name]
}

func (p *Platform) allProcs() []*proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*proc, 0, len(p.procs))
	for _, pr := range p.procs {
		out = append(out, pr)
	}
	return out
}

// Run runs init, the invokes and shutdown. It returns a Result even when init
// fails (InitStatus says how); the error is for the platform itself failing
// or ctx ending (SIGTERM to the platform), in which case every child is killed.
func (p *Platform) Run(ctx context.Context) (res *Result, err error) {
	srv := &http.Server{Handler: NewHandler(p.core, p.tl), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	srvDone := make(chan struct{})
	go func() { _ = srv.Serve(p.ln); close(srvDone) }()
	res = &Result{}
	defer func() {
		p.killAll()
		p.waitAll(2 * time.Second)
		waitTimeout(&p.exits, time.Second)
		waitTimeout(&p.pumps, time.Second)
		p.logs.flush()
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.hub.Close(cctx)
		cancel()
		_ = srv.Close()
		<-srvDone
		p.rp.stop()
		p.state(NamePlatform, "Done", "done", nil)
		p.tl.Seal()
		res.Timeline = p.tl.Entries()
	}()

	cfg := &p.cfg
	exts := []string(nil)
	if cfg.ExtensionsDir != "" {
		if exts, err = listExtensions(cfg.ExtensionsDir); err != nil {
			return res, err
		}
	}

	v, err := p.initPhase(ctx, "init", exts, cfg.InitTimeout)
	if err != nil {
		return res, err
	}
	res.InitStatus, res.InitErrorType, res.EndedBy = v.Status, v.ErrorType, v.Culprit
	res.InitDuration = time.Duration(v.LastNs - v.StartNs)
	initMs := ms(v.LastNs - v.StartNs)
	p.logs.setPhase(LogPhaseInvoke)

	reason := "spindown"
	var suppressed *initVerdict
	if v.Status != telemetry.StatusSuccess && cfg.Invokes > 0 && !cfg.NoSuppressedInit {
		// Lambda's suppressed init: a failed or timed-out init is run again,
		// from scratch, at the first invoke, within the function's timeout;
		// its time is part of that invoke.
		sv, serr := p.suppressedInit(ctx, exts)
		if serr != nil {
			return res, serr
		}
		suppressed, v = &sv, sv
		res.SuppressedInit = &InitRetry{Status: sv.Status, ErrorType: sv.ErrorType, EndedBy: sv.Culprit, Duration: time.Duration(sv.LastNs - sv.StartNs)}
	}
	if v.Status != telemetry.StatusSuccess {
		reason = "failure"
		if suppressed != nil {
			// The invoke fails with the init's error, as Lambda reports it.
			res.Invokes = append(res.Invokes, p.failedInvoke(*suppressed))
		}
	} else {
		for i := 0; i < cfg.Invokes; i++ {
			var ir InvokeResult
			var rerr error
			if i == 0 && suppressed != nil {
				ir, rerr = p.invokeAfter(ctx, suppressed.StartNs)
			} else {
				ir, rerr = p.invoke(ctx, i == 0, initMs)
			}
			if rerr != nil {
				return res, rerr
			}
			res.Invokes = append(res.Invokes, ir)
			if ir.Status != telemetry.StatusSuccess {
				reason = "failure"
				if ir.Status == telemetry.StatusTimeout {
					reason = "timeout"
				}
				break
			}
		}
	}
	if err := p.shutdown(ctx, reason); err != nil {
		return res, err
	}
	return res, nil
}

// initPhase runs Lambda's init: initStart, every extension exec'd and
// registered, the runtime started, and every /next, within timeout. phase is
// "init", or "invoke" for a suppressed init.
func (p *Platform) initPhase(ctx context.Context, phase string, exts []string, timeout time.Duration) (v initVerdict, err error) {
	cfg := &p.cfg
	// 1. initStart: before any extension exists, as in Lambda.
	t0 := MonoNow()
	p.tl.Add(Entry{MonoNs: t0, Kind: KindState, Name: NamePlatform, State: "Init", Event: EventInitStart, Detail: map[string]any{"addr": p.Addr(), "extensions": exts, "phase": phase}})
	p.publish(telemetry.TypeInitStart, telemetry.InitStartRecord{
		InitializationType: "on-demand", Phase: phase,
		RuntimeVersion:    cfg.Runtime.Version,
		RuntimeVersionArn: "arn:aws:lambda:" + cfg.Function.Region + "::runtime:" + cfg.Runtime.Version,
		FunctionName:      cfg.Function.FunctionName, FunctionVersion: cfg.Function.Version,
		// As captured from Lambda: the instance id reads like a log stream
		// name, and the memory is in bytes (the docs' example shows MB).
		InstanceID:        time.Now().UTC().Format("2006/01/02/") + cfg.Function.FunctionName + "[" + cfg.Function.Version + "]" + randHex(32),
		InstanceMaxMemory: cfg.Function.MemoryMB << 20,
	}, t0)
	initDeadline := time.Now().Add(timeout - time.Duration(MonoNow()-t0))
	initCtx, cancelInit := context.WithDeadline(ctx, initDeadline)
	defer cancelInit()

	// 2. Exec every extension, in alphabetical order, without waiting.
	for _, n := range exts {
		p.core.AddExternal(n)
	}
	extEnv := envFor(cfg.Function, p.Addr(), cfg.Env, nil, false)
	for _, n := range exts {
		path := filepath.Join(cfg.ExtensionsDir, n)
		if err := p.spawnProc(n, path, nil, extEnv, false); err != nil {
			p.core.ExtExited(n) // Lambda: Extension.LaunchError; here it ends init as a crash
		}
	}

	// 3. Wait until they have all registered (or init failed).
	werr := p.core.waitFor(initCtx, func() bool {
		return p.core.allRegisteredLocked() || p.core.initVerdictLocked().Done
	})
	p.core.mu.Lock()
	failed := p.core.initVerdictLocked().Done
	p.core.mu.Unlock()
	if werr == nil && failed {
		// An extension crashed or reported init/error before all registered:
		// Lambda does not start the runtime then.
		werr = p.core.waitFor(initCtx, func() bool { v = p.core.initVerdictLocked(); return v.Done })
	} else if werr == nil {
		p.state(NamePlatform, "Init", "extensionsRegistered", nil)
		// 4. Start the runtime.
		rtEnv := envFor(cfg.Function, p.Addr(), cfg.Env, cfg.Runtime.Env, true)
		if err := p.spawnProc(NameRuntime, cfg.Runtime.Path, cfg.Runtime.Args, rtEnv, true); err != nil {
			p.core.RuntimeExited()
		}
		// 5–6. Registration closes at the runtime's /next (in Core); wait for
		// every /next.
		werr = p.core.waitFor(initCtx, func() bool { v = p.core.initVerdictLocked(); return v.Done })
	}
	if werr != nil {
		if ctx.Err() != nil {
			return v, fmt.Errorf("platform interrupted during init: %w", ctx.Err())
		}
		v = initVerdict{Done: true, Status: telemetry.StatusTimeout, LastNs: MonoNow(), Culprit: p.pendingInit()}
	}

	// 7. End init: close subscriptions, then the init records.
	// endMono precedes the close: a subscribe arriving after it was surely
	// refused, so the summary's "after init ended" is never wrong.
	endMono := MonoNow()
	p.core.endInit()
	if cfg.OnInitEnd != nil && phase == "init" {
		if err := cfg.OnInitEnd(); err != nil {
			fmt.Fprintf(os.Stderr, "initprof platform: at the end of init: %v\n", err)
		}
	}
	initNs := v.LastNs - t0
	v.StartNs = t0
	for _, e := range p.core.Extensions() {
		p.publish(telemetry.TypeExtension, telemetry.ExtensionRecord{Name: e.Name, State: e.State.String(), Events: e.Events, ErrorType: e.ErrorType}, endMono)
	}
	p.publish(telemetry.TypeInitRuntimeDone, telemetry.InitRuntimeDoneRecord{InitializationType: "on-demand", Phase: phase, Status: v.Status, ErrorType: v.ErrorType}, endMono)
	initMs := ms(initNs)
	p.publish(telemetry.TypeInitReport, telemetry.InitReportRecord{InitializationType: "on-demand", Phase: phase, Status: v.Status, ErrorType: v.ErrorType, Metrics: telemetry.InitReportMetrics{DurationMs: initMs}}, endMono)
	p.tl.Add(Entry{MonoNs: endMono, Kind: KindInitEnd, Name: v.Culprit, State: v.Status, Detail: map[string]any{
		"duration_ms": initMs, "status": v.Status, "error_type": v.ErrorType,
		"ended_by": v.Culprit, "last_next_mono_ns": v.LastNs, "init_start_mono_ns": t0, "phase": phase,
	}})
	return v, nil
}

// suppressedInit discards the environment of a failed init (every process,
// registration and telemetry subscription) and runs init again, as Lambda
// does at the first invoke, within the function's timeout.
func (p *Platform) suppressedInit(ctx context.Context, exts []string) (initVerdict, error) {
	p.killAll()
	p.waitAll(2 * time.Second)
	waitTimeout(&p.exits, 2*time.Second)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_ = p.hub.Close(cctx)
	cancel()
	p.hub = telemetry.NewHub(telemetry.Options{Observe: p.observe})
	p.core.reset(p.hub)
	p.logs.setPhase(LogPhaseInit)
	p.state(NamePlatform, "Init", "suppressedInit", nil)
	return p.initPhase(ctx, "invoke", exts, p.cfg.InvokeTimeout)
}

// failedInvoke is the first invoke's report when its suppressed init failed
// too: Lambda answers the invoke with the init's error.
func (p *Platform) failedInvoke(v initVerdict) InvokeResult {
	id := uuid.NewString()
	now := MonoNow()
	durMs := ms(now - v.StartNs)
	status := telemetry.StatusError
	if v.Status == telemetry.StatusTimeout {
		status = telemetry.StatusTimeout
	}
	p.publish(telemetry.TypeReport, telemetry.ReportRecord{RequestID: id, Status: status, ErrorType: v.ErrorType,
		Metrics: telemetry.ReportMetrics{DurationMs: durMs, BilledDurationMs: int64(math.Ceil(durMs)), MemorySizeMB: p.cfg.Function.MemoryMB, MaxMemoryUsedMB: p.maxMemoryMB()}}, now)
	p.tl.Add(Entry{MonoNs: now, Kind: KindInvoke, Name: NamePlatform, Event: "report", State: status, Detail: map[string]any{"request_id": id, "duration_ms": durMs, "error_type": v.ErrorType, "suppressed_init": true}})
	return InvokeResult{RequestID: id, Status: status, ErrorType: v.ErrorType, Duration: time.Duration(now - v.StartNs)}
}

// pendingInit names who init was still waiting for at a timeout.
func (p *Platform) pendingInit() string {
	var waiting []string
	p.core.mu.Lock()
	if p.core.rtFirstNextNs == 0 {
		waiting = append(waiting, NameRuntime)
	}
	for _, e := range p.core.exts {
		if e.FirstNextNs == 0 {
			waiting = append(waiting, e.Name)
		}
	}
	p.core.mu.Unlock()
	return strings.Join(waiting, ",")
}

// invoke runs one invocation: release the runtime and the INVOKE-subscribed
// extensions together, wait for the response and the runtime's next /next
// (runtimeDone), then for every such extension's /next (report).
func (p *Platform) invoke(ctx context.Context, first bool, initMs float64) (InvokeResult, error) {
	return p.invokeFrom(ctx, first, initMs, 0)
}

// invokeAfter is the first invoke after a suppressed init that began at
// initStartNs: its duration counts from there, and its report carries no
// Init Duration (the init ran inside the invoke).
func (p *Platform) invokeAfter(ctx context.Context, initStartNs int64) (InvokeResult, error) {
	return p.invokeFrom(ctx, false, 0, initStartNs)
}

func (p *Platform) invokeFrom(ctx context.Context, first bool, initMs float64, fromNs int64) (InvokeResult, error) {
	cfg := &p.cfg
	now := time.Now()
	inv := &Invoke{
		ID:          uuid.NewString(),
		DeadlineMs:  now.Add(cfg.InvokeTimeout).UnixMilli(),
		FunctionArn: cfg.Function.Arn(),
		TraceID:     newTraceID(now),
		Payload:     cfg.Payload,
	}
	tracing := &telemetry.TraceContext{Type: "X-Amzn-Trace-Id", Value: inv.TraceID}
	ev := ExtEvent{EventType: EventInvoke, DeadlineMs: inv.DeadlineMs, RequestID: inv.ID, InvokedFunctionArn: inv.FunctionArn,
		Tracing: &Tracing{Type: "X-Amzn-Trace-Id", Value: inv.TraceID}}
	startMono := MonoNow()
	p.publish(telemetry.TypeStart, telemetry.StartRecord{RequestID: inv.ID, Version: cfg.Function.Version, Tracing: tracing}, startMono)
	p.tl.Add(Entry{MonoNs: startMono, Kind: KindInvoke, Name: NamePlatform, Event: "start", Detail: map[string]any{"request_id": inv.ID}})
	p.core.startInvoke(inv, ev)

	ictx, cancel := context.WithDeadline(ctx, time.UnixMilli(inv.DeadlineMs))
	defer cancel()
	werr := p.core.waitFor(ictx, func() bool { return inv.RuntimeDoneNs != 0 || p.core.rtExited })
	if ctx.Err() != nil {
		return InvokeResult{}, fmt.Errorf("platform interrupted during invoke: %w", ctx.Err())
	}
	p.core.mu.Lock()
	status, errType := inv.Status, inv.ErrorType
	answered := inv.answered
	respNs, respEnd, doneNs, delivered := inv.ResponseNs, inv.ResponseEndNs, inv.RuntimeDoneNs, inv.DeliveredNs
	produced := inv.ProducedBytes
	p.core.mu.Unlock()
	switch {
	case werr != nil && !answered:
		status, errType = telemetry.StatusTimeout, ""
	case !answered:
		status, errType = telemetry.StatusError, ErrRuntimeExit
	}
	if doneNs == 0 {
		doneNs = MonoNow()
	}
	if respNs == 0 {
		respNs, respEnd = doneNs, doneNs
	}
	if delivered == 0 {
		delivered = inv.StartNs
	}
	rdMono := MonoNow()
	p.publish(telemetry.TypeRuntimeDone, telemetry.RuntimeDoneRecord{
		RequestID: inv.ID, Status: status, ErrorType: errType,
		Metrics: telemetry.RuntimeDoneMetrics{DurationMs: ms(respEnd - inv.StartNs), ProducedBytes: int64(produced)},
		Spans: []telemetry.Span{
			{Name: "responseLatency", Start: p.wallAt(inv.StartNs), DurationMs: ms(respNs - inv.StartNs)},
			{Name: "responseDuration", Start: p.wallAt(respNs), DurationMs: ms(respEnd - respNs)},
			{Name: "runtimeOverhead", Start: p.wallAt(respEnd), DurationMs: ms(doneNs - respEnd)},
		},
		Tracing: tracing,
	}, rdMono)
	p.tl.Add(Entry{MonoNs: rdMono, Kind: KindInvoke, Name: NameRuntime, Event: "runtimeDone", State: status, Detail: map[string]any{"request_id": inv.ID, "delivered_mono_ns": delivered, "response_mono_ns": respNs, "runtime_done_mono_ns": doneNs}})

	// The invoke ends when every INVOKE-subscribed extension is back in /next.
	var lastExt int64
	_ = p.core.waitFor(ictx, func() bool {
		ok, last := p.core.invokeExtsDoneLocked(inv)
		lastExt = last
		return ok
	})
	if ctx.Err() != nil {
		return InvokeResult{}, fmt.Errorf("platform interrupted during invoke: %w", ctx.Err())
	}
	p.core.mu.Lock()
	nExts := len(inv.exts)
	extsDone, _ := p.core.invokeExtsDoneLocked(inv)
	p.core.mu.Unlock()
	if !extsDone && status == telemetry.StatusSuccess {
		status = telemetry.StatusTimeout
	}
	end := doneNs
	if lastExt > end {
		end = lastExt
	}
	if !extsDone {
		end = MonoNow()
	}
	overhead := end - doneNs
	begin := inv.StartNs
	if fromNs != 0 {
		begin = fromNs
	}
	durMs := ms(end - begin)
	rep := telemetry.ReportRecord{RequestID: inv.ID, Status: status, ErrorType: errType, Tracing: tracing,
		Metrics: telemetry.ReportMetrics{DurationMs: durMs, BilledDurationMs: int64(math.Ceil(durMs)), MemorySizeMB: cfg.Function.MemoryMB, MaxMemoryUsedMB: p.maxMemoryMB()}}
	if first {
		v := initMs
		rep.Metrics.InitDurationMs = &v
	}
	if nExts > 0 {
		rep.Spans = []telemetry.Span{{Name: "extensionOverhead", Start: p.wallAt(doneNs), DurationMs: ms(overhead)}}
	}
	repMono := MonoNow()
	p.publish(telemetry.TypeReport, rep, repMono)
	p.tl.Add(Entry{MonoNs: repMono, Kind: KindInvoke, Name: NamePlatform, Event: "report", State: status, Detail: map[string]any{"request_id": inv.ID, "duration_ms": durMs, "extension_overhead_ms": ms(overhead)}})
	return InvokeResult{RequestID: inv.ID, Status: status, ErrorType: errType, Duration: time.Duration(end - begin), ExtensionOverhead: time.Duration(overhead)}, nil
}

// maxMemoryMB sums the peak RSS (VmHWM) of the live processes: the
// environment's memory as Lambda's report counts it.
func (p *Platform) maxMemoryMB() int {
	var kb int64
	for _, pr := range p.allProcs() {
		if !pr.alive() {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pr.pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					kb += n
				}
			}
		}
	}
	return int((kb + 1023) / 1024)
}

// shutdown: SIGTERM the runtime (SIGKILL after the grace), send SHUTDOWN to
// subscribed extensions, kill the others at once, SIGKILL whatever is still
// running at the deadline.
func (p *Platform) shutdown(ctx context.Context, reason string) error {
	cfg := &p.cfg
	start := MonoNow()
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	p.tl.Add(Entry{MonoNs: start, Kind: KindShutdown, Name: NamePlatform, Event: "start", Detail: map[string]any{"reason": reason, "timeout_ms": cfg.ShutdownTimeout.Milliseconds()}})
	p.logs.setPhase(LogPhaseShutdown)
	p.state(NamePlatform, "Shutdown", "shutdown", map[string]any{"reason": reason})

	// Flush buffered telemetry (the last platform.report, for one) while the
	// subscribers are still alive to receive it; Lambda's input closing
	// flushes the same way. This spends at most a quarter of the budget.
	fctx, fcancel := context.WithTimeout(ctx, cfg.ShutdownTimeout/4)
	if err := p.hub.Close(fctx); err != nil {
		p.tl.Add(Entry{Kind: KindTelemetry, Name: NamePlatform, Event: "flush_incomplete", Detail: map[string]any{"error": err.Error()}})
	}
	fcancel()

	var wg sync.WaitGroup
	if rt := p.proc(NameRuntime); rt != nil && rt.alive() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.tl.Add(Entry{Kind: KindShutdown, Name: NameRuntime, PID: rt.pid, Event: "sigterm"})
			rt.signal(syscall.SIGTERM)
			select {
			case <-rt.done:
			case <-time.After(cfg.RuntimeTermGrace):
				p.tl.Add(Entry{Kind: KindShutdown, Name: NameRuntime, PID: rt.pid, Event: "sigkill"})
				rt.signal(syscall.SIGKILL)
			}
		}()
	}
	ev := ExtEvent{EventType: EventShutdown, ShutdownReason: reason, DeadlineMs: deadline.UnixMilli()}
	sent, kill := p.core.deliverShutdown(ev)
	for _, n := range sent {
		p.tl.Add(Entry{Kind: KindShutdown, Name: n, Event: "event"})
	}
	for _, n := range kill {
		if pr := p.proc(n); pr != nil && pr.alive() {
			p.tl.Add(Entry{Kind: KindShutdown, Name: n, PID: pr.pid, Event: "sigkill", Detail: map[string]any{"why": "not subscribed to SHUTDOWN"}})
			pr.signal(syscall.SIGKILL)
		}
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for _, n := range sent {
		pr := p.proc(n)
		if pr == nil {
			continue
		}
		select {
		case <-pr.done:
		case <-dctx.Done():
			if pr.alive() {
				p.tl.Add(Entry{Kind: KindShutdown, Name: n, PID: pr.pid, Event: "sigkill", Detail: map[string]any{"why": "shutdown deadline"}})
				pr.signal(syscall.SIGKILL)
			}
		}
	}
	wg.Wait()
	p.tl.Add(Entry{Kind: KindShutdown, Name: NamePlatform, Event: "end"})
	if ctx.Err() != nil {
		return fmt.Errorf("platform interrupted during shutdown: %w", ctx.Err())
	}
	return nil
}

func (p *Platform) killAll() {
	for _, pr := range p.allProcs() {
		if pr.alive() {
			p.tl.Add(Entry{Kind: KindShutdown, Name: pr.name, PID: pr.pid, Event: "sigkill", Detail: map[string]any{"why": "platform exit"}})
			pr.signal(syscall.SIGKILL)
			continue
		}
		// The process is gone, but what it forked may still be in its
		// process group (a helper that outlived it). Lambda discards the
		// whole environment at the end; so does the platform.
		if syscall.Kill(-pr.pid, 0) == nil {
			p.tl.Add(Entry{Kind: KindShutdown, Name: pr.name, PID: pr.pid, Event: "kill_leftovers", Detail: map[string]any{"why": "processes it forked outlived it"}})
			_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
		}
	}
}

func (p *Platform) waitAll(d time.Duration) {
	t := time.After(d)
	for _, pr := range p.allProcs() {
		select {
		case <-pr.done:
		case <-t:
			return
		}
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// Package assemble joins what one cold start produced — the probes' kernel and
// uprobe events and the platform's timeline — into a profile.Run.
//
// It is the one place that knows both capture formats (probes.Event and
// extension.Entry); the profile package above it stays ignorant of how a
// checkpoint was seen. Everything is keyed on CLOCK_MONOTONIC: the probes use
// bpf_ktime_get_ns, the platform clock_gettime(CLOCK_MONOTONIC), and a sandbox
// has no time namespace, so the two line up without conversion.
package assemble

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
)

// Input is everything one run left behind.
type Input struct {
	Index    int
	Build    string
	Events   []probes.Event
	Timeline []extension.Entry
	// Checkpoints are log-line checkpoints (--checkpoint REGEX). The first
	// submatch, when present, names the checkpoint; otherwise the whole match.
	Checkpoints []*regexp.Regexp
	Dropped     uint64
	// Static names the processes whose binary has no ELF interpreter, so
	// their loader checkpoints are not reported missing.
	Static map[string]bool
	// Unprobed names the processes whose binary has no uprobes.
	Unprobed map[string]bool
}

// Truth is a checkpoint a sample printed about itself
// ("INIT | checkpoint=NAME mono_ns=N"): the ground truth that tests and the
// accuracy report hold the probes against. It never enters the phases.
type Truth struct {
	Process string `json:"process"`
	Name    string `json:"name"`
	MonoNs  int64  `json:"mono_ns"`
}

var (
	truthRE = regexp.MustCompile(`INIT \| checkpoint=(\w+) mono_ns=(\d+)`)
	monoRE  = regexp.MustCompile(`\bmono_ns=(\d+)`)
)

// Result is a run plus what did not fit the profile model.
type Result struct {
	Run   profile.Run
	Truth []Truth
	// PIDs maps each process name to its host pid (as the probes saw it).
	PIDs map[string]uint32
}

// Assemble builds the run. It never invents a checkpoint: one that was not
// observed is simply absent, and profile reports it as missing.
func Assemble(in Input) (*Result, error) {
	sum, err := extension.Summarize(in.Timeline)
	if err != nil {
		return nil, fmt.Errorf("platform timeline: %w", err)
	}
	run := profile.Run{
		Index:          in.Index,
		Build:          in.Build,
		InitStartNs:    sum.InitStartMonoNs,
		InitEndNs:      sum.InitEndMonoNs,
		InitDurationMs: float64(sum.InitDuration) / 1e6,
		InitStatus:     sum.InitStatus,
		EndedBy:        sum.EndedBy,
		Dropped:        in.Dropped,
		Notes:          append([]string(nil), sum.Notes...),
	}
	res := &Result{PIDs: map[string]uint32{}}

	byPID := map[uint32][]probes.Event{}
	for _, e := range in.Events {
		byPID[e.PID] = append(byPID[e.PID], e)
	}
	for pid := range byPID {
		evs := byPID[pid]
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
	}

	// Who is who: each spawn in the timeline is matched with the first exec
	// of the same path at or after it. Matching by path, not pid, because pids
	// inside an OCI sandbox live in its own pid namespace.
	type spawn struct {
		name, path string
		mono       int64
		role       string
	}
	var spawns []spawn
	firstEnd, retry := int64(0), (*extension.Entry)(nil)
	for i, e := range in.Timeline {
		if e.Kind == extension.KindInitEnd {
			if firstEnd == 0 {
				firstEnd = e.MonoNs
			} else if retry == nil {
				retry = &in.Timeline[i]
			}
		}
	}
	if retry != nil {
		// Lambda's suppressed init: its processes are not the cold start's;
		// the run says what it cost.
		run.Notes = append(run.Notes, fmt.Sprintf("suppressed init: init failed, and Lambda ran it again at the first invoke (ended by %s, status %s, %.2f ms; part of that invoke's duration)",
			retry.Name, retry.State, detailFloat(retry.Detail, "duration_ms")))
	}
	for _, e := range in.Timeline {
		if e.Kind != extension.KindSpawn || e.PID == 0 || (firstEnd != 0 && e.MonoNs > firstEnd) {
			continue
		}
		role := profile.RoleExtension
		if e.Name == extension.NameRuntime {
			role = profile.RoleRuntime
		}
		spawns = append(spawns, spawn{e.Name, e.Path, e.MonoNs, role})
	}
	sort.SliceStable(spawns, func(i, j int) bool { return spawns[i].mono < spawns[j].mono })
	execs := []probes.Event{}
	for _, e := range in.Events {
		if e.Kind == probes.KindExec {
			execs = append(execs, e)
		}
	}
	sort.SliceStable(execs, func(i, j int) bool { return execTime(execs[i]) < execTime(execs[j]) })
	used := map[int]bool{}
	logs := map[string][]extension.Entry{}
	telemetryPort := map[string]int{}
	for _, e := range in.Timeline {
		switch {
		case e.Kind == extension.KindLog:
			logs[e.Name] = append(logs[e.Name], e)
		case e.Kind == extension.KindTelemetry && e.Event == "subscribe" && telemetryPort[e.Name] == 0:
			telemetryPort[e.Name] = detailInt(e.Detail, "port")
		}
	}
	for _, sp := range spawns {
		p := profile.Process{Name: sp.name, Role: sp.role, Static: in.Static[sp.name], Unprobed: in.Unprobed[sp.name]}
		cps := []profile.Checkpoint{{Name: profile.CkSpawn, MonoNs: sp.mono, Source: profile.SourcePlatform}}
		var pid uint32
		for i, ex := range execs {
			if used[i] || int64(execTime(ex)) < sp.mono || !samePath(ex.Path, sp.path) {
				continue
			}
			used[i], pid = true, ex.PID
			break
		}
		if pid != 0 {
			p.PID = int(pid)
			res.PIDs[sp.name] = pid
			cps = append(cps, processCheckpoints(byPID[pid], sp.role, telemetryPort[sp.name])...)
		} else {
			run.Notes = append(run.Notes, fmt.Sprintf("%s: the probes saw no exec of %s; only platform checkpoints are available", sp.name, sp.path))
		}
		for _, l := range logs[sp.name] {
			if m := truthRE.FindStringSubmatch(l.Line); m != nil {
				ns, _ := strconv.ParseInt(m[2], 10, 64)
				res.Truth = append(res.Truth, Truth{Process: sp.name, Name: m[1], MonoNs: ns})
			}
			for _, re := range in.Checkpoints {
				if m := re.FindStringSubmatch(l.Line); m != nil {
					name := m[0]
					if len(m) > 1 && m[1] != "" {
						name = m[1]
					}
					// A line that carries its own CLOCK_MONOTONIC stamp is
					// timed by it; otherwise by when the platform read it,
					// which lags under a CPU quota.
					at := l.MonoNs
					if mm := monoRE.FindStringSubmatch(l.Line); mm != nil {
						if ns, err := strconv.ParseInt(mm[1], 10, 64); err == nil {
							at = ns
						}
					}
					cps = append(cps, profile.Checkpoint{Name: "log:" + name, MonoNs: at, Source: profile.SourceLog})
				}
			}
		}
		sort.SliceStable(cps, func(i, j int) bool { return cps[i].MonoNs < cps[j].MonoNs })
		p.Checkpoints = cps
		if pid != 0 {
			fillSched(&p, byPID[pid], cps)
		}
		run.Processes = append(run.Processes, p)
	}
	for _, t := range res.Truth {
		run.Reference = append(run.Reference, profile.Checkpoint{Name: t.Process + ":" + t.Name, MonoNs: t.MonoNs, Source: profile.SourceLog})
	}
	run.Platform = in.Timeline
	res.Run = run
	return res, nil
}

func execTime(e probes.Event) uint64 {
	if e.Start != 0 {
		return e.Start
	}
	return e.Time
}

// samePath compares an execve filename with the platform's spawn path. They
// can differ by symlinks or relative forms; the base name decides then.
func samePath(a, b string) bool {
	return a == b || path.Base(a) == path.Base(b) && path.Base(a) != "."
}

// Address families as bind(2) sees them.
const (
	afInet  = 2
	afInet6 = 10
)

// HTTP request lines an extension or runtime writes, client side.
var (
	reqRegister  = []byte("POST /2020-01-01/extension/register")
	reqTelemetry = []byte("PUT /2022-07-01/telemetry")
	reqLogs      = []byte("PUT /2020-08-15/logs")
	reqExtNext   = []byte("GET /2020-01-01/extension/event/next")
	reqRtNext    = []byte("GET /2018-06-01/runtime/invocation/next")
	respPrefix   = []byte("HTTP/1.")
)

// detailInt reads an integer from a timeline entry's details: an int when
// the entry was made in this process, a float64 once read back from JSON.
func detailInt(d map[string]any, key string) int {
	switch v := d[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}

func detailFloat(d map[string]any, key string) float64 {
	switch v := d[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	}
	return 0
}

// processCheckpoints turns one process's events (sorted by time) into
// canonical checkpoints. listenPort is the port the process subscribed its
// telemetry listener on (0: it did not subscribe over HTTP/TCP).
func processCheckpoints(evs []probes.Event, role string, listenPort int) []profile.Checkpoint {
	var cps []profile.Checkpoint
	seen := map[string]bool{}
	add := func(name string, t uint64, src string) {
		if seen[name] || t == 0 {
			return
		}
		seen[name] = true
		cps = append(cps, profile.Checkpoint{Name: name, MonoNs: int64(t), Source: src})
	}
	var relocated, firstBind uint64
	// A request is "sent" at its write and "ok" at the first response read on
	// the same socket after it.
	pending := map[int]string{} // fd → checkpoint its response completes
	for _, e := range evs {
		switch e.Kind {
		case probes.KindExec:
			if !seen[profile.CkExec] {
				add(profile.CkExec, execTime(e), profile.SourceEBPF)
			}
		case probes.KindExecDone:
			add(profile.CkExecDone, e.Time, profile.SourceEBPF)
		case probes.KindUprobe:
			switch e.Checkpoint {
			case probes.CheckpointLdsoStart:
				add(profile.CkLdsoStart, e.Time, profile.SourceUprobe)
			case probes.CheckpointEntry:
				if seen[profile.CkExecDone] {
					add(profile.CkEntry, e.Time, profile.SourceUprobe)
				}
			case probes.CheckpointMain, probes.CheckpointGoMain:
				add(profile.CkMain, e.Time, profile.SourceUprobe)
			case probes.CheckpointDlInit:
				// The loader's own constructors run from here to the entry;
				// relocation ends where they begin when its returns were missed.
				if relocated == 0 {
					relocated = e.Time
				}
			default:
				if strings.HasPrefix(e.Checkpoint, probes.UserCheckpointPrefix) {
					cps = append(cps, profile.Checkpoint{Name: e.Checkpoint, MonoNs: int64(e.Time), Source: profile.SourceUprobe})
				}
			}
		case probes.KindUretprobe:
			switch e.Checkpoint {
			case probes.CheckpointDepsLoaded:
				add(profile.CkDepsLoaded, e.Time, profile.SourceUprobe)
			case probes.CheckpointRelocateDone:
				if !seen[profile.CkEntry] && e.Time > relocated {
					relocated = e.Time
				}
			}
		case probes.KindBind:
			// The telemetry listener: the successful bind of an IP socket,
			// after main (or the entry, for a stripped binary without a main
			// symbol), on the port the process later subscribes to. An
			// extension like Datadog's binds other listeners first (8124,
			// 8126) and its telemetry one (8999) last. Without a
			// subscription port, the first IP bind stands in.
			if e.Ret == 0 && (e.Family == afInet || e.Family == afInet6) && (seen[profile.CkMain] || seen[profile.CkEntry]) {
				if firstBind == 0 {
					firstBind = e.Time
				}
				if listenPort == 0 || e.Port == listenPort {
					add(profile.CkListenerBound, e.Time, profile.SourceEBPF)
				}
			}
		case probes.KindSend:
			switch {
			case bytes.HasPrefix(e.Data, reqRegister):
				add(profile.CkRegisterSent, startOr(e), profile.SourceEBPF)
				pending[e.FD] = profile.CkRegisterOK
			case bytes.HasPrefix(e.Data, reqTelemetry), bytes.HasPrefix(e.Data, reqLogs):
				add(profile.CkSubscribeSent, startOr(e), profile.SourceEBPF)
				pending[e.FD] = profile.CkSubscribeOK
			case bytes.HasPrefix(e.Data, reqExtNext) && role == profile.RoleExtension,
				bytes.HasPrefix(e.Data, reqRtNext) && role == profile.RoleRuntime:
				add(profile.CkNext, startOr(e), profile.SourceEBPF)
			}
		case probes.KindRecv:
			if name, ok := pending[e.FD]; ok && bytes.HasPrefix(e.Data, respPrefix) {
				add(name, e.Time, profile.SourceEBPF)
				delete(pending, e.FD)
			}
		}
	}
	if relocated != 0 {
		cps = append(cps, profile.Checkpoint{Name: profile.CkRelocated, MonoNs: int64(relocated), Source: profile.SourceUprobe})
	}
	if !seen[profile.CkListenerBound] && firstBind != 0 {
		// It subscribed a port it never bound itself (another process
		// listens there): its first listener is the best stand-in.
		cps = append(cps, profile.Checkpoint{Name: profile.CkListenerBound, MonoNs: int64(firstBind), Source: profile.SourceEBPF})
	}
	return cps
}

// startOr is a syscall's entry time: a request counts as sent when the write
// begins, which is what a program's own timestamp before write() sees.
func startOr(e probes.Event) uint64 {
	if e.Start != 0 {
		return e.Start
	}
	return e.Time
}

// fillSched splits each phase of p into on-CPU, runnable and blocked time and
// counts its user page faults, major faults and bytes read from storage.
//
// The split follows the process's main thread (tid == pid): the one whose
// progress the checkpoints measure. Helper threads (tokio workers, libcurl's
// resolver) run in parallel and would otherwise count twice.
func fillSched(p *profile.Process, evs []probes.Event, cps []profile.Checkpoint) {
	p.Checkpoints = cps
	spans := profile.Phases(*p)
	if len(spans) == 0 {
		return
	}
	var runnable, blocked []profile.Interval
	for _, e := range evs {
		if e.Kind != probes.KindOffCPU || e.TID != e.PID || e.Start == 0 {
			continue
		}
		iv := profile.Interval{StartNs: int64(e.Start), EndNs: int64(e.Time)}
		if e.Runnable {
			runnable = append(runnable, iv)
		} else {
			blocked = append(blocked, iv)
		}
	}
	p.RunnableNs = profile.TimePerPhase(spans, runnable)
	p.BlockedNs = profile.TimePerPhase(spans, blocked)
	p.OnCPUNs = map[string]int64{}
	for _, s := range spans {
		p.OnCPUNs[s.Name] = max(0, s.DurNs()-p.RunnableNs[s.Name]-p.BlockedNs[s.Name])
	}

	// Every event carries the process's running fault, major-fault and
	// read-bytes counts; the count at a phase boundary is the one on the last
	// event at or before it.
	var times []int64
	var faults, majors, reads []uint64
	for _, e := range evs {
		times = append(times, int64(e.Time))
		faults = append(faults, e.Faults)
		majors = append(majors, e.MajFaults)
		reads = append(reads, e.ReadBytes)
	}
	if len(times) == 0 {
		return
	}
	perPhase := func(counts []uint64) map[string]int64 {
		at := func(t int64) (uint64, bool) {
			i := sort.Search(len(times), func(i int) bool { return times[i] > t })
			if i == 0 {
				return 0, false
			}
			return counts[i-1], true
		}
		m := map[string]int64{}
		for _, s := range spans {
			a, ok1 := at(s.StartNs)
			b, ok2 := at(s.EndNs)
			if ok1 && ok2 && b >= a {
				m[s.Name] = int64(b - a)
			}
		}
		return m
	}
	p.Faults = perPhase(faults)
	p.MajorFaults = perPhase(majors)
	p.BytesRead = perPhase(reads)
}

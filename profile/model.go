// Package profile turns what was observed during cold starts into answers: runs
// made of processes and their checkpoints, phases between checkpoints, the init
// critical path, distributions over runs, build-to-build comparisons, and the
// files initprof writes (report.txt, results.json, compare.txt, compare.json,
// bench.txt).
//
// The package knows nothing about how a checkpoint was captured (eBPF, uprobe,
// log line or platform timeline): callers fill the plain types below and call
// functions over them, in the manner of google/pprof's profile package. All
// timestamps are CLOCK_MONOTONIC nanoseconds; they are converted only when printed.
package profile

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Canonical checkpoint names, in the order an extension passes them during init
// (DESIGN.md, "Phase model"). Any of them may be missing from a run; phases are
// built only from those present, and the absent ones are reported, never invented.
const (
	CkSpawn            = "spawn"             // the platform decides to exec the file
	CkExec             = "exec"              // sys_enter_execve
	CkExecDone         = "exec_done"         // sched_process_exec: the new image is mapped
	CkLdsoStart        = "ldso_start"        // first instruction of the ELF interpreter
	CkDepsLoaded       = "deps_loaded"       // every DT_NEEDED object is mapped
	CkRelocated        = "relocated"         // relocations (symbol binding) are done
	CkConstructorsDone = "constructors_done" // shared objects' initialisers have run
	CkEntry            = "entry"             // the executable's e_entry (_start)
	CkMain             = "main"              // main, Go main.main or Rust main
	CkRegisterSent     = "register_sent"     // POST /extension/register written
	CkRegisterOK       = "register_ok"       // its response read
	CkListenerBound    = "listener_bound"    // bind() of the telemetry listener (the subscribed port; else the first IP bind)
	CkSubscribeSent    = "subscribe_sent"    // PUT /telemetry written
	CkSubscribeOK      = "subscribe_ok"      // its response read
	CkNext             = "next"              // first GET /extension/event/next
)

// Checkpoints lists the canonical checkpoints in order.
var Checkpoints = []string{
	CkSpawn, CkExec, CkExecDone, CkLdsoStart, CkDepsLoaded, CkRelocated,
	CkConstructorsDone, CkEntry, CkMain, CkRegisterSent, CkRegisterOK,
	CkListenerBound, CkSubscribeSent, CkSubscribeOK, CkNext,
}

// PhaseNames maps each canonical checkpoint to the phase that ENDS at it. These
// names are the pprof label values too (`-tagfocus phase=relocate`).
//
//	phase          from → to                          what happens
//	spawn          spawn → exec                       the platform forks and calls execve
//	exec           exec → exec_done                   the kernel loads the image (execve)
//	to_ldso        exec_done → ldso_start             return to user space in the interpreter
//	load_deps      ldso_start → deps_loaded           ld.so maps the DT_NEEDED closure
//	relocate       deps_loaded → relocated            relocation processing, symbol binding
//	constructors   relocated → constructors_done      shared objects' DT_INIT/DT_INIT_ARRAY
//	to_entry       constructors_done → entry          ld.so hands over to _start
//	to_main        entry → main                       libc start, executable's constructors, language runtime start
//	to_register    main → register_sent               user init before registering
//	register       register_sent → register_ok        the Extensions API register round trip
//	listener       register_ok → listener_bound       user init until the telemetry listener is bound
//	to_subscribe   listener_bound → subscribe_sent    user init until the Telemetry subscribe
//	subscribe      subscribe_sent → subscribe_ok      the Telemetry API subscribe round trip
//	to_next        subscribe_ok → next                the rest of init until the first /next
//
// When one checkpoint between two present ones is missing, the span is named by
// joining the two phases it covers with "+", e.g. "to_ldso+load_deps" when
// ldso_start was not seen; when more are missing it is named "FROM_to_TO", e.g.
// "exec_done_to_next" for a runtime seen only at exec and /next. Either way the
// name never claims a boundary nobody observed. Only extensions are expected to
// pass register_sent … subscribe_ok, so their absence from the runtime folds
// nothing. A span ending at a user checkpoint (--uprobe, --checkpoint) is named
// after it.
var PhaseNames = map[string]string{
	CkExec:             "spawn",
	CkExecDone:         "exec",
	CkLdsoStart:        "to_ldso",
	CkDepsLoaded:       "load_deps",
	CkRelocated:        "relocate",
	CkConstructorsDone: "constructors",
	CkEntry:            "to_entry",
	CkMain:             "to_main",
	CkRegisterSent:     "to_register",
	CkRegisterOK:       "register",
	CkListenerBound:    "listener",
	CkSubscribeSent:    "to_subscribe",
	CkSubscribeOK:      "subscribe",
	CkNext:             "to_next",
}

// Aggregate spans reported next to the phases.
const (
	// AggLoad is process load: exec → entry (everything before the program's own code).
	AggLoad = "load"
	// AggInit is the program's own init: entry → next.
	AggInit = "init"
	// AggTimeToReady is exec → next: how long the process took to be ready.
	AggTimeToReady = "time_to_ready"
	// AggInitDuration is the platform's Init Duration (initStart → the last /next).
	AggInitDuration = "init_duration"
)

// Roles of a process in a run.
const (
	RoleExtension = "extension"
	RoleRuntime   = "runtime"
	RolePlatform  = "platform"
)

// Sources of a checkpoint, kept so a reader can judge its precision.
const (
	SourceEBPF     = "ebpf"
	SourceUprobe   = "uprobe"
	SourceLog      = "log"
	SourcePlatform = "platform"
)

// Checkpoint is one instant in a process's init.
type Checkpoint struct {
	// Name is a canonical name (Checkpoints) or a user checkpoint's name.
	Name string `json:"name"`
	// MonoNs is CLOCK_MONOTONIC in nanoseconds.
	MonoNs int64 `json:"mono_ns"`
	// Source is one of the Source* constants.
	Source string `json:"source"`
}

// Process is one process of a run (an extension, the runtime) with what was
// observed of it. The per-phase maps are keyed by phase name (Phases); a phase
// absent from a map was not measured, which is different from zero.
type Process struct {
	Name        string       `json:"name"`
	Role        string       `json:"role"`
	PID         int          `json:"pid"`
	Checkpoints []Checkpoint `json:"checkpoints"`
	// Static is set for a program without an ELF interpreter: the loader's
	// checkpoints do not apply to it, so they are not reported missing.
	Static bool `json:"static,omitempty"`
	// Unprobed is set for a process whose binary had no uprobes attached
	// (initprof's own simulated runtime): only its syscall checkpoints exist.
	Unprobed   bool             `json:"unprobed,omitempty"`
	OnCPUNs    map[string]int64 `json:"on_cpu_ns,omitempty"`
	RunnableNs map[string]int64 `json:"runnable_ns,omitempty"`
	BlockedNs  map[string]int64 `json:"blocked_ns,omitempty"`
	// Faults counts user page faults (minor and major) per phase, as the
	// probes count them; MajorFaults only the major ones, when known.
	Faults      map[string]int64 `json:"faults,omitempty"`
	MajorFaults map[string]int64 `json:"major_faults,omitempty"`
	// BytesRead is what the process caused to be read from storage per phase
	// (its block reads: page-cache misses of faults, readahead and read(2)),
	// the figure that separates a cold page cache from a warm one: with a
	// warm cache it is about zero however many faults there are.
	BytesRead map[string]int64 `json:"bytes_read,omitempty"`
	// FetchWaitNs and FetchChunks are, per phase, the time the process
	// waited for Lambda's lazy storage (the lambda storage model) and the
	// 512 KiB chunks it fetched (ChargeFetches).
	FetchWaitNs map[string]int64 `json:"fetch_wait_ns,omitempty"`
	FetchChunks map[string]int64 `json:"fetch_chunks,omitempty"`
	// Touched is, per phase, the file-backed pages the process touched
	// first in it and their 512 KiB chunks, attributed to file, section,
	// symbol and crate/package; TouchedInit sums them over exec → next.
	// Nil when the probes could not see page-cache adds.
	Touched     map[string]*Touched `json:"touched,omitempty"`
	TouchedInit *TouchedInit        `json:"touched_init,omitempty"`
}

// Run is one cold start: the platform's view of INIT and every process in it.
type Run struct {
	Index int    `json:"index"`
	Build string `json:"build"`
	// InitStartNs and InitEndNs bound INIT on the platform (initStart, the last
	// /next). Zero when unknown.
	InitStartNs int64 `json:"init_start_ns"`
	InitEndNs   int64 `json:"init_end_ns"`
	// InitDurationMs is the platform's own platform.initReport figure; when zero,
	// InitEndNs − InitStartNs is used.
	InitDurationMs float64 `json:"init_duration_ms"`
	// InitStatus is initReport's status ("success", "error", "timeout").
	InitStatus string `json:"init_status,omitempty"`
	// EndedBy names the process whose /next ended INIT, as the platform saw it
	// ("runtime" or an extension name). When empty it is derived from the
	// processes' next checkpoints.
	EndedBy   string    `json:"ended_by,omitempty"`
	Processes []Process `json:"processes"`
	// Dropped counts events the probes lost (ring buffer full): the run's
	// checkpoints may be incomplete.
	Dropped uint64   `json:"dropped,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	// Reference holds the checkpoints the processes printed about themselves
	// (ground truth from the samples: "INIT | checkpoint=NAME mono_ns=N"),
	// named "PROCESS:NAME". They never enter the phases; they let a reader
	// check the probes' accuracy run by run.
	Reference []Checkpoint `json:"reference,omitempty"`
	// Platform is the platform's own timeline for the run (every API request,
	// spawn, exit, state change and telemetry delivery), kept verbatim.
	Platform any `json:"platform,omitempty"`
	// Sandbox is what the sandbox itself cost this run (create, start, delete).
	Sandbox *SandboxCost `json:"sandbox,omitempty"`
	// TouchedCheck compares the pages the probes saw added to the page
	// cache with what mincore(2) found resident after the run.
	TouchedCheck *TouchedCheck `json:"touched_check,omitempty"`
	// Storage is the lambda storage model's account of the run (nil with
	// --storage local).
	Storage *Storage `json:"storage,omitempty"`
	// Host and Arch label the machine the run was made on (its hostname and
	// architecture, "x86_64" or "aarch64"), so that results merged from
	// several machines (initprof merge) still say where each run came from.
	Host string `json:"host,omitempty"`
	Arch string `json:"arch,omitempty"`
	// Binaries is, per process name, the SHA-256 of the file that ran
	// ("sha256:HEX"): merge refuses two different binaries under one build
	// name, since their runs would be pooled as if they were one build.
	Binaries map[string]string `json:"binaries,omitempty"`
}

// TouchedCheck is the independent check of what init touched: in the
// sandbox's files, the pages that became resident during a cold run
// (mincore after minus before) against the pages the probes saw the
// sandbox's processes add.
type TouchedCheck struct {
	Resident  int64   `json:"resident"`
	Added     int64   `json:"added"`
	Both      int64   `json:"both"`
	Agreement float64 `json:"agreement"` // Both / (Resident ∪ Added)
}

// Storage is what Lambda's chunked lazy storage (container/lazyfs) charged
// one run: the first read of each 512 KiB chunk of each file is a fetch.
type Storage struct {
	// Model is the model as printed (tiers, latencies, mixes, seed, source).
	Model string `json:"model"`
	// Chunks is the chunks fetched per file (paths inside the sandbox).
	Chunks map[string]int `json:"chunks"`
	// TotalChunks is the sum of Chunks.
	TotalChunks int `json:"total_chunks"`
	// WaitNs is the modelled fetch time the server slept; ExpectedNs the
	// model's mean for the same chunks.
	WaitNs     int64 `json:"wait_ns"`
	ExpectedNs int64 `json:"expected_ns"`
	// OversleptNs is how much longer than modelled the server's sleeps took.
	OversleptNs int64 `json:"overslept_ns,omitempty"`
	// Requests is every FUSE request the server answered, ServiceNs its own
	// time answering them, the modelled sleep excluded.
	Requests  int64 `json:"requests"`
	ServiceNs int64 `json:"service_ns"`
	// Ops splits Requests by FUSE operation: count and service time.
	Ops map[string]StorageOp `json:"ops,omitempty"`
	// UnattributedWaitNs is fetch wait no process phase holds (the
	// platform's reads, a process before its exec).
	UnattributedWaitNs int64 `json:"unattributed_wait_ns,omitempty"`
	// ReadAheadKiB is the mount's readahead.
	ReadAheadKiB int `json:"readahead_kib"`
	// CPUsAwake: the FUSE server held idle CPUs polling (PM QoS), so its
	// round trips did not pay a vCPU wake-up; CPUsAwakeErr is why not.
	CPUsAwake    bool   `json:"cpus_awake,omitempty"`
	CPUsAwakeErr string `json:"cpus_awake_err,omitempty"`
}

// StorageOp is one FUSE operation's requests in a run and their service time.
type StorageOp struct {
	Count     int64 `json:"count"`
	ServiceNs int64 `json:"service_ns"`
}

// SandboxCost is the per-run cost of the sandbox, outside the platform's time.
type SandboxCost struct {
	Kind     string `json:"kind"`
	CreateNs int64  `json:"create_ns"`
	StartNs  int64  `json:"start_ns"`
	DeleteNs int64  `json:"delete_ns"`
	// MajorFaults is the whole sandbox's major page faults (getrusage of its
	// children): the cold-cache cost of the run.
	MajorFaults int64 `json:"major_faults"`
	// EvictedPages is how many page-cache pages the cold-cache eviction
	// removed before the run, and ResidentAfter how many it could not.
	EvictedPages  int64 `json:"evicted_pages,omitempty"`
	ResidentAfter int64 `json:"resident_after,omitempty"`
	// Limits are the memory limit and CPU quota the run's cgroup held, read
	// back from the cgroup file system after the OCI runtime set them (nil
	// for the process sandbox, which sets none).
	Limits *Limits `json:"limits,omitempty"`
}

// Limits are a sandbox's cgroup limits as read back: Lambda gives a function
// of M MB a memory limit of M MiB and M/1769 of one CPU.
type Limits struct {
	Cgroup      string `json:"cgroup"` // "v1" or "v2"
	MemoryBytes int64  `json:"memory_bytes"`
	CPUQuotaUS  int64  `json:"cpu_quota_us"`
	CPUPeriodUS int64  `json:"cpu_period_us"`
	// InitCPUQuotaUS is the quota until init ended when it differed from the
	// invoke quota (the Lambda init-CPU model); SwitchMonoNs is when the
	// invoke quota took over (0: never, e.g. init failed), SwitchErr why not.
	InitCPUQuotaUS int64  `json:"init_cpu_quota_us,omitempty"`
	SwitchMonoNs   int64  `json:"cpu_switch_mono_ns,omitempty"`
	SwitchErr      string `json:"cpu_switch_error,omitempty"`
}

// Span is one phase of a process: the time between two consecutive checkpoints.
type Span struct {
	Name    string `json:"name"`
	From    string `json:"from"`
	To      string `json:"to"`
	StartNs int64  `json:"start_ns"`
	EndNs   int64  `json:"end_ns"`
}

// DurNs is the span's length.
func (s Span) DurNs() int64 { return s.EndNs - s.StartNs }

var canonRank = func() map[string]int {
	m := make(map[string]int, len(Checkpoints))
	for i, c := range Checkpoints {
		m[c] = i
	}
	return m
}()

// IsCanonical says whether name is one of Checkpoints.
func IsCanonical(name string) bool { _, ok := canonRank[name]; return ok }

// ordered returns p's checkpoints sorted by time; at equal times canonical order
// wins, then user checkpoints by name, so the result is deterministic. If a
// checkpoint name repeats, only its first occurrence counts.
func ordered(p Process) []Checkpoint {
	seen := map[string]bool{}
	cs := make([]Checkpoint, 0, len(p.Checkpoints))
	for _, c := range p.Checkpoints {
		if c.Name == "" || seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		cs = append(cs, c)
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].MonoNs != cs[j].MonoNs {
			return cs[i].MonoNs < cs[j].MonoNs
		}
		ri, iok := canonRank[cs[i].Name]
		rj, jok := canonRank[cs[j].Name]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return cs[i].Name < cs[j].Name
	})
	return cs
}

// Checkpoint returns the time of p's checkpoint name (its first occurrence).
func (p Process) Checkpoint(name string) (int64, bool) {
	for _, c := range p.Checkpoints {
		if c.Name == name {
			return c.MonoNs, true
		}
	}
	return 0, false
}

// Phases cuts p's init into spans between consecutive present checkpoints,
// ordered by time (canonical and user checkpoints alike). Spans never have a
// negative length. See PhaseNames for the names.
func Phases(p Process) []Span {
	cs := ordered(p)
	present := map[string]bool{}
	for _, c := range cs {
		present[c.Name] = true
	}
	var spans []Span
	lastCanon := -1 // rank of the latest canonical checkpoint seen so far
	for i, c := range cs {
		r, canon := canonRank[c.Name]
		if i > 0 {
			spans = append(spans, Span{
				Name:    spanName(cs[i-1].Name, c.Name, r, canon, lastCanon, present, p.Role),
				From:    cs[i-1].Name,
				To:      c.Name,
				StartNs: cs[i-1].MonoNs,
				EndNs:   c.MonoNs,
			})
		}
		if canon && r > lastCanon {
			lastCanon = r
		}
	}
	return spans
}

func spanName(from, to string, rank int, canon bool, lastCanon int, present map[string]bool, role string) string {
	if !canon {
		return to
	}
	// Canonical checkpoints that should have come between the previous canonical
	// one and this one, but were never seen: their phases are folded in.
	var folded []string
	for k := lastCanon + 1; k < rank && lastCanon >= 0; k++ {
		if c := Checkpoints[k]; !present[c] && expected(c, role) {
			folded = append(folded, PhaseNames[c])
		}
	}
	switch len(folded) {
	case 0:
		return PhaseNames[to]
	case 1:
		// _dl_init returns into _dl_start_user, which jumps to the entry a
		// few instructions later: with no probe between them, relocated →
		// entry is the constructors phase, not a fold of two.
		if folded[0] == PhaseNames[CkConstructorsDone] && to == CkEntry {
			return PhaseNames[CkConstructorsDone]
		}
		return folded[0] + "+" + PhaseNames[to]
	}
	return from + "_to_" + to
}

// expected says whether a process of this role is expected to pass checkpoint c:
// only extensions register and subscribe.
// loaderOnly are the checkpoints only a dynamically linked program passes:
// a static binary has no interpreter to watch.
var loaderOnly = map[string]bool{CkLdsoStart: true, CkDepsLoaded: true, CkRelocated: true, CkConstructorsDone: true}

// uprobeOnly are the checkpoints that need a uprobe in the program's own
// binary: a process nobody attached uprobes to cannot pass them visibly.
var uprobeOnly = map[string]bool{CkLdsoStart: true, CkDepsLoaded: true, CkRelocated: true, CkConstructorsDone: true, CkEntry: true, CkMain: true}

func expected(c, role string) bool {
	if role == RoleExtension {
		return true
	}
	r := canonRank[c]
	return r < canonRank[CkRegisterSent] || r > canonRank[CkSubscribeOK]
}

// Missing lists the canonical checkpoints absent from p, in canonical order. For
// the runtime and the platform only gaps between the first and the last present
// canonical checkpoint count, and never register or subscribe steps.
func Missing(p Process) []string {
	present := map[string]bool{}
	first, last := len(Checkpoints), -1
	for _, c := range p.Checkpoints {
		if r, ok := canonRank[c.Name]; ok {
			present[c.Name] = true
			first, last = min(first, r), max(last, r)
		}
	}
	lo, hi := 0, len(Checkpoints)-1
	if p.Role != RoleExtension {
		lo, hi = first, last
	}
	var out []string
	for k := lo; k <= hi; k++ {
		if c := Checkpoints[k]; !present[c] && expected(c, p.Role) && !(p.Static && loaderOnly[c]) && !(p.Unprobed && uprobeOnly[c]) &&
			!(c == CkConstructorsDone && present[CkRelocated] && present[CkEntry]) {
			out = append(out, Checkpoints[k])
		}
	}
	return out
}

// OutOfOrder lists canonical checkpoints that happened before one that precedes
// them in the canonical order, as "listener_bound before register_sent". Such
// runs are still cut by time; this only tells the reader init ran in an
// unexpected order.
func OutOfOrder(p Process) []string {
	cs := ordered(p)
	var out []string
	maxRank, maxName := -1, ""
	for _, c := range cs {
		r, ok := canonRank[c.Name]
		if !ok {
			continue
		}
		if r < maxRank {
			out = append(out, maxName+" before "+c.Name)
		} else {
			maxRank, maxName = r, c.Name
		}
	}
	return out
}

// between returns to − from for two checkpoints of p, when both are present and
// in order.
func between(p Process, from, to string) (int64, bool) {
	a, ok1 := p.Checkpoint(from)
	b, ok2 := p.Checkpoint(to)
	if !ok1 || !ok2 || b < a {
		return 0, false
	}
	return b - a, true
}

// Load is exec → entry. ok is false when either checkpoint is missing.
func Load(p Process) (int64, bool) { return between(p, CkExec, CkEntry) }

// TimeToReady is exec → next.
func TimeToReady(p Process) (int64, bool) { return between(p, CkExec, CkNext) }

// OwnInit is entry → next: the program's own init.
func OwnInit(p Process) (int64, bool) { return between(p, CkEntry, CkNext) }

// InitDurationNs is the run's Init Duration: the platform's initReport figure
// when present, else InitEndNs − InitStartNs.
func (r Run) InitDurationNs() (int64, bool) {
	if r.InitDurationMs > 0 && r.InitDurationMs < 1e9 { // also rejects NaN and +Inf
		return int64(math.Round(r.InitDurationMs * 1e6)), true
	}
	if r.InitStartNs > 0 && r.InitEndNs > r.InitStartNs {
		return r.InitEndNs - r.InitStartNs, true
	}
	return 0, false
}

// InitStatuses counts the runs by init status, as "failure×2, success×8"
// (sorted), for a message that says how a series went.
func InitStatuses(runs []Run) string {
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

// RunCritical is who ended INIT in one run and by how much.
type RunCritical struct {
	Run int `json:"run"`
	// EndedBy is the process whose /next came last.
	EndedBy string `json:"ended_by"`
	// RunnerUp is the process whose /next came just before; empty with one process.
	RunnerUp string `json:"runner_up,omitempty"`
	// MarginNs is the gap between the last and the second-to-last /next.
	MarginNs int64 `json:"margin_ns"`
	// Source says whether EndedBy came from the platform or from the checkpoints.
	Source string `json:"source"`
}

// CriticalPath finds who ended INIT in r: the process with the latest next
// checkpoint (the platform's EndedBy wins when set, since it is what Lambda
// counts). ok is false when no process has a next checkpoint and the platform
// did not say.
func CriticalPath(r Run) (RunCritical, bool) {
	type fin struct {
		name string
		at   int64
	}
	var fs []fin
	for _, p := range r.Processes {
		if p.Role == RolePlatform {
			continue
		}
		if t, ok := p.Checkpoint(CkNext); ok {
			fs = append(fs, fin{processKey(p), t})
		}
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].at > fs[j].at })
	rc := RunCritical{Run: r.Index, Source: "checkpoints"}
	if len(fs) > 0 {
		rc.EndedBy = fs[0].name
	}
	if len(fs) > 1 {
		rc.RunnerUp = fs[1].name
		rc.MarginNs = fs[0].at - fs[1].at
	}
	if r.EndedBy != "" && r.EndedBy != rc.EndedBy {
		// The platform saw a different last /next (e.g. a process whose next the
		// probes missed): trust it, and measure the margin from what we have.
		rc.EndedBy, rc.Source = r.EndedBy, "platform"
		var endAt int64
		found := false
		for _, f := range fs {
			if f.name == r.EndedBy {
				endAt, found = f.at, true
			}
		}
		rc.RunnerUp, rc.MarginNs = "", 0
		if found {
			for _, f := range fs {
				if f.name != r.EndedBy && f.at <= endAt {
					rc.RunnerUp, rc.MarginNs = f.name, endAt-f.at
					break
				}
			}
		}
	} else if r.EndedBy != "" {
		rc.Source = "platform"
	}
	return rc, rc.EndedBy != ""
}

// processKey is how a process is named across runs: the runtime is "runtime"
// whatever its file is called, extensions go by name.
func processKey(p Process) string {
	if p.Role == RoleRuntime {
		return RoleRuntime
	}
	return p.Name
}

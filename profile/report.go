package profile

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/initprof/initprof/profile/stats"
)

// ResultsSchema identifies results.json's layout; bump it on any incompatible change.
const ResultsSchema = "initprof.results/v1"

// Report is everything report.txt and results.json say about N runs of one build.
// Durations are nanoseconds in float64 (distributions over runs).
type Report struct {
	Schema string `json:"schema"`
	Build  string `json:"build,omitempty"`
	// Runs are the inputs, kept whole so results.json has every checkpoint.
	Runs []Run `json:"-"`
	// Processes: extensions by name, then the runtime.
	Processes    []ProcessReport `json:"processes"`
	InitDuration stats.Summary   `json:"init_duration_ns"`
	// InitStatus counts runs per initReport status.
	InitStatus map[string]int  `json:"init_status,omitempty"`
	Critical   CriticalSummary `json:"critical_path"`
	// Overhead is the measured probe cost, when the caller measured it.
	Overhead *Overhead `json:"probe_overhead,omitempty"`
	// Dropped is the total of events lost by the probes over all runs.
	Dropped uint64   `json:"dropped_events"`
	Verdict string   `json:"verdict"`
	Notes   []string `json:"notes,omitempty"`
	// Interrupted is set when SIGINT or SIGTERM stopped the series before
	// all its runs: the figures cover Runs of Planned.
	Interrupted *Interrupted `json:"interrupted,omitempty"`
}

// Interrupted says how far an interrupted series got.
type Interrupted struct {
	Runs    int `json:"runs"`    // runs made (and reported)
	Planned int `json:"planned"` // runs asked for (--runs, per build)
}

func (i *Interrupted) String() string {
	return fmt.Sprintf("interrupted after %d of %d runs", i.Runs, i.Planned)
}

// ProcessReport is one process (an extension or the runtime) over all runs.
type ProcessReport struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Runs is how many runs had this process.
	Runs   int           `json:"runs"`
	Phases []PhaseReport `json:"phases"`
	// Load is exec → entry, Init is entry → next, TimeToReady is exec → next.
	Load        stats.Summary `json:"load_ns"`
	Init        stats.Summary `json:"init_ns"`
	TimeToReady stats.Summary `json:"time_to_ready_ns"`
	// LoadShare is the median over runs of load / time-to-ready (0..1).
	LoadShare float64 `json:"load_share"`
	// Under the lambda storage model: LazyLoad is, per run, the chunk-fetch
	// wait of the phases after entry (code and data first touched in init,
	// fetched as Lambda's lazy loader fetches them), Chunks the 512 KiB
	// chunks the process fetched in all, and LambdaLoadShare the median of
	// (load + LazyLoad) / time-to-ready: load as Lambda pays it.
	LazyLoad        stats.Summary `json:"lazy_load_ns"`
	Chunks          stats.Summary `json:"chunks_fetched"`
	LambdaLoadShare float64       `json:"lambda_load_share,omitempty"`
	// SlackNs is, per run, the end of INIT minus this process's /next: zero when
	// it ended INIT, otherwise how much later something else did.
	SlackNs stats.Summary `json:"slack_ns"`
	// EndedInit counts the runs in which this process ended INIT.
	EndedInit int `json:"ended_init"`
	// Missing counts, per canonical checkpoint, the runs it was not seen in.
	Missing map[string]int `json:"missing,omitempty"`
	// OutOfOrder counts, per "x before y", the runs where init ran in that order.
	OutOfOrder map[string]int `json:"out_of_order,omitempty"`
	Verdict    string         `json:"verdict,omitempty"`
	// Touched is what init touched of the files (nil when not measured).
	Touched *TouchedReport `json:"touched,omitempty"`
	// Levers price the build changes teams ask about from these medians
	// (Levers): what each can change at most.
	Levers []Lever `json:"levers,omitempty"`
}

// PhaseReport is one phase of one process over all runs that had it.
type PhaseReport struct {
	Name string `json:"name"`
	// From and To are the checkpoints that bound it (the most common pair).
	From string        `json:"from"`
	To   string        `json:"to"`
	Dur  stats.Summary `json:"duration_ns"`
	// Share is the median over runs of this phase / time-to-ready (0..1); 0 when
	// time-to-ready was not measured.
	Share       float64       `json:"share_of_time_to_ready"`
	OnCPU       stats.Summary `json:"on_cpu_ns"`
	Runnable    stats.Summary `json:"runnable_ns"`
	Blocked     stats.Summary `json:"blocked_ns"`
	Faults      stats.Summary `json:"faults"`
	MajorFaults stats.Summary `json:"major_faults"`
	BytesRead   stats.Summary `json:"bytes_read"`
	// FetchWait and FetchChunks: the lambda storage model's chunk fetches
	// in this phase (wait, and chunks the process fetched).
	FetchWait   stats.Summary `json:"fetch_wait_ns"`
	FetchChunks stats.Summary `json:"fetch_chunks"`
	// Touched* are the pages (by kind) and chunks first touched in the phase.
	TouchedPages     stats.Summary `json:"touched_pages"`
	TouchedMajor     stats.Summary `json:"touched_major"`
	TouchedMinor     stats.Summary `json:"touched_minor"`
	TouchedReadahead stats.Summary `json:"touched_readahead"`
	TouchedChunks    stats.Summary `json:"touched_chunks"`
	// TouchedFaulted and TouchedFaultedChunks: of those, the pages the
	// process faulted on, and the chunks holding one.
	TouchedFaulted       stats.Summary `json:"touched_faulted"`
	TouchedFaultedChunks stats.Summary `json:"touched_faulted_chunks"`
	// startOffset orders phases: median start relative to exec.
	startOffset float64
}

// CriticalSummary is the init critical path over all runs.
type CriticalSummary struct {
	Runs []RunCritical `json:"runs"`
	// EndedBy counts runs per process that ended INIT.
	EndedBy map[string]int `json:"ended_by"`
	// Leader ended INIT most often ("" when no run says).
	Leader string `json:"leader"`
	// RunnerUp is the most common runner-up in the runs Leader ended.
	RunnerUp string `json:"runner_up,omitempty"`
	// MarginNs is, over the runs Leader ended, how long after the runner-up it did.
	MarginNs stats.Summary `json:"margin_ns"`
}

// Overhead is the probe cost the caller measured (for example Init Duration of
// unprobed runs against probed ones); report.txt prints it next to the numbers.
type Overhead struct {
	// Method says how it was measured, in a few words.
	Method string `json:"method"`
	// InitDeltaNs is the median Init Duration with probes minus without.
	InitDeltaNs float64 `json:"init_delta_ns"`
	// BaselineNs is the median Init Duration without probes (for the percentage).
	BaselineNs float64 `json:"baseline_ns"`
	// PerEventNs is the cost of one probe hit, when measured.
	PerEventNs float64 `json:"per_event_ns,omitempty"`
	// UprobeReturnNs was added to every uprobe time: the trap's return to the
	// program, calibrated on this machine (subtract it for the raw probe
	// timestamps). 0 when not calibrated.
	UprobeReturnNs float64 `json:"uprobe_return_ns,omitempty"`
}

// Aggregate computes the report over runs (all of one build). It never fails:
// whatever is missing is counted and said in Notes and the verdicts.
func Aggregate(runs []Run) *Report {
	rep := &Report{Schema: ResultsSchema, Runs: runs, InitStatus: map[string]int{}}
	if len(runs) > 0 {
		rep.Build = runs[0].Build
	}
	var initDur []float64
	endOf := map[int]int64{} // run index in runs → end of INIT (latest next)
	rep.Critical.EndedBy = map[string]int{}
	for i, r := range runs {
		rep.Dropped += r.Dropped
		if r.InitStatus != "" {
			rep.InitStatus[r.InitStatus]++
		}
		if d, ok := r.InitDurationNs(); ok {
			initDur = append(initDur, float64(d))
		}
		if rc, ok := CriticalPath(r); ok {
			rep.Critical.Runs = append(rep.Critical.Runs, rc)
			rep.Critical.EndedBy[rc.EndedBy]++
		}
		end := r.InitEndNs
		for _, p := range r.Processes {
			if t, ok := p.Checkpoint(CkNext); ok && t > end {
				end = t
			}
		}
		endOf[i] = end
	}
	rep.InitDuration = stats.Summarize(initDur)
	rep.Critical.Leader = leader(rep.Critical.EndedBy)
	var margins []float64
	runnerUps := map[string]int{}
	for _, rc := range rep.Critical.Runs {
		if rc.EndedBy == rep.Critical.Leader && rc.RunnerUp != "" {
			margins = append(margins, float64(rc.MarginNs))
			runnerUps[rc.RunnerUp]++
		}
	}
	rep.Critical.RunnerUp = leader(runnerUps)
	rep.Critical.MarginNs = stats.Summarize(margins)

	// Group processes across runs by key, extensions sorted by name, runtime last.
	keys := map[string]string{} // key → role
	for _, r := range runs {
		for _, p := range r.Processes {
			if p.Role != RolePlatform {
				keys[processKey(p)] = p.Role
			}
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := keys[names[i]] == RoleRuntime, keys[names[j]] == RoleRuntime
		if ri != rj {
			return rj
		}
		return names[i] < names[j]
	})
	for _, k := range names {
		rep.Processes = append(rep.Processes, aggregateProcess(k, keys[k], runs, endOf, rep.Critical))
	}
	rep.Notes = append(rep.Notes, runNotes(runs)...)
	if failed := len(runs) - rep.InitStatus["success"]; len(rep.InitStatus) > 0 && failed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("init did not succeed in %d of %d runs (%s); their numbers are included above", failed, len(runs), countsCell(rep.InitStatus)))
	}
	if rep.Dropped > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the probes dropped %d events over %d runs: checkpoints and phases may be missing; rerun with fewer uprobes or a larger ring buffer", rep.Dropped, len(runs)))
	}
	for i := range rep.Processes {
		if rep.Processes[i].Role == RoleExtension {
			rep.Processes[i].Verdict = verdict(&rep.Processes[i], rep)
			if rep.Verdict == "" {
				rep.Verdict = rep.Processes[i].Verdict
			}
		}
	}
	if rep.Verdict == "" {
		// No extension: a function's own init (initprof run --runtime
		// BOOTSTRAP alone, as lambda-perf measures runtimes); the runtime is
		// the subject when its load was probed.
		for i := range rep.Processes {
			if pr := &rep.Processes[i]; pr.Role != RoleExtension && pr.Name == NameRuntimeKey && pr.TimeToReady.N > 0 && pr.Load.N > 0 {
				pr.Verdict = verdict(pr, rep)
				rep.Verdict = pr.Verdict
			}
		}
	}
	if rep.Verdict == "" {
		rep.Verdict = "no extension was observed: nothing to attribute"
	}
	return rep
}

func leader(counts map[string]int) string {
	best, n := "", 0
	for k, c := range counts {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}

func aggregateProcess(key, role string, runs []Run, endOf map[int]int64, crit CriticalSummary) ProcessReport {
	pr := ProcessReport{Name: key, Role: role, Missing: map[string]int{}, OutOfOrder: map[string]int{}}
	type acc struct {
		dur, share, onCPU, runnable, blocked, minf, majf, read, start, fwait, fchunks []float64
		tPages, tMaj, tMin, tRA, tChunks, tFlt, tFltC                                 []float64
		pairs                                                                         map[[2]string]int
	}
	phases := map[string]*acc{}
	var load, own, ttr, loadShare, slack, lazy, chunks, lambdaShare []float64
	var touched []*TouchedInit
	for i, r := range runs {
		for _, p := range r.Processes {
			if p.Role == RolePlatform || processKey(p) != key {
				continue
			}
			pr.Runs++
			if p.TouchedInit != nil {
				touched = append(touched, p.TouchedInit)
			}
			for _, m := range Missing(p) {
				pr.Missing[m]++
			}
			for _, o := range OutOfOrder(p) {
				pr.OutOfOrder[o]++
			}
			t, hasTTR := TimeToReady(p)
			if hasTTR {
				ttr = append(ttr, float64(t))
			}
			if l, ok := Load(p); ok {
				load = append(load, float64(l))
				if hasTTR && t > 0 {
					loadShare = append(loadShare, float64(l)/float64(t))
				}
				if r.Storage != nil {
					entry, _ := p.Checkpoint(CkEntry)
					w, _ := FetchWaitAfter(p, entry)
					var c int64
					for _, n := range p.FetchChunks {
						c += n
					}
					lazy, chunks = append(lazy, float64(w)), append(chunks, float64(c))
					if hasTTR && t > 0 {
						lambdaShare = append(lambdaShare, min(1, float64(l+w)/float64(t)))
					}
				}
			}
			if o, ok := OwnInit(p); ok {
				own = append(own, float64(o))
			}
			if n, ok := p.Checkpoint(CkNext); ok && endOf[i] >= n {
				slack = append(slack, float64(endOf[i]-n))
			}
			execAt, hasExec := p.Checkpoint(CkExec)
			spans := Phases(p)
			// Phases are ordered by their median start relative to exec (or to the
			// first checkpoint), so runs missing an early checkpoint don't shuffle them.
			var origin int64
			if hasExec {
				origin = execAt
			} else if len(spans) > 0 {
				origin = spans[0].StartNs
			}
			for _, s := range spans {
				a := phases[s.Name]
				if a == nil {
					a = &acc{pairs: map[[2]string]int{}}
					phases[s.Name] = a
				}
				a.dur = append(a.dur, float64(s.DurNs()))
				a.start = append(a.start, float64(s.StartNs-origin))
				a.pairs[[2]string{s.From, s.To}]++
				if hasTTR && t > 0 && s.StartNs >= execAt {
					// Only phases inside exec → next are shares of time-to-ready.
					a.share = append(a.share, float64(s.DurNs())/float64(t))
				}
				addIf(&a.onCPU, p.OnCPUNs, s.Name)
				addIf(&a.runnable, p.RunnableNs, s.Name)
				addIf(&a.blocked, p.BlockedNs, s.Name)
				addIf(&a.minf, p.Faults, s.Name)
				addIf(&a.majf, p.MajorFaults, s.Name)
				addIf(&a.read, p.BytesRead, s.Name)
				if r.Storage != nil {
					a.fwait = append(a.fwait, float64(p.FetchWaitNs[s.Name]))
					a.fchunks = append(a.fchunks, float64(p.FetchChunks[s.Name]))
				}
				if tc, ok := p.Touched[s.Name]; ok && tc != nil {
					a.tPages = append(a.tPages, float64(tc.Pages.Total))
					a.tMaj = append(a.tMaj, float64(tc.Pages.Major))
					a.tMin = append(a.tMin, float64(tc.Pages.Minor))
					a.tRA = append(a.tRA, float64(tc.Pages.Readahead))
					a.tChunks = append(a.tChunks, float64(tc.Chunks))
					a.tFlt = append(a.tFlt, float64(tc.Pages.Faulted))
					a.tFltC = append(a.tFltC, float64(tc.FaultedChunks))
				}
			}
		}
	}
	for name, a := range phases {
		from, to := commonPair(a.pairs)
		pr.Phases = append(pr.Phases, PhaseReport{
			Name: name, From: from, To: to,
			Dur:         stats.Summarize(a.dur),
			Share:       medianOr0(a.share),
			OnCPU:       stats.Summarize(a.onCPU),
			Runnable:    stats.Summarize(a.runnable),
			Blocked:     stats.Summarize(a.blocked),
			Faults:      stats.Summarize(a.minf),
			MajorFaults: stats.Summarize(a.majf),
			BytesRead:   stats.Summarize(a.read),
			FetchWait:   stats.Summarize(a.fwait),
			FetchChunks: stats.Summarize(a.fchunks),
			startOffset: stats.Median(a.start),

			TouchedPages:     stats.Summarize(a.tPages),
			TouchedMajor:     stats.Summarize(a.tMaj),
			TouchedMinor:     stats.Summarize(a.tMin),
			TouchedReadahead: stats.Summarize(a.tRA),
			TouchedChunks:    stats.Summarize(a.tChunks),

			TouchedFaulted:       stats.Summarize(a.tFlt),
			TouchedFaultedChunks: stats.Summarize(a.tFltC),
		})
	}
	sort.Slice(pr.Phases, func(i, j int) bool {
		if pr.Phases[i].startOffset != pr.Phases[j].startOffset {
			return pr.Phases[i].startOffset < pr.Phases[j].startOffset
		}
		return pr.Phases[i].Name < pr.Phases[j].Name
	})
	pr.Load = stats.Summarize(load)
	pr.Init = stats.Summarize(own)
	pr.TimeToReady = stats.Summarize(ttr)
	pr.LoadShare = medianOr0(loadShare)
	pr.LazyLoad, pr.Chunks = stats.Summarize(lazy), stats.Summarize(chunks)
	pr.LambdaLoadShare = medianOr0(lambdaShare)
	pr.SlackNs = stats.Summarize(slack)
	pr.EndedInit = crit.EndedBy[key]
	pr.Touched = aggregateTouched(touched)
	if role == RoleExtension && pr.Load.N > 0 {
		pr.Levers = Levers(&pr)
	}
	if len(pr.Missing) == 0 {
		pr.Missing = nil
	}
	if len(pr.OutOfOrder) == 0 {
		pr.OutOfOrder = nil
	}
	return pr
}

func addIf(dst *[]float64, m map[string]int64, phase string) {
	if v, ok := m[phase]; ok {
		*dst = append(*dst, float64(v))
	}
}

func medianOr0(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return stats.Median(xs)
}

func commonPair(pairs map[[2]string]int) (string, string) {
	var best [2]string
	n := -1
	for p, c := range pairs {
		if c > n || (c == n && p[0]+p[1] < best[0]+best[1]) {
			best, n = p, c
		}
	}
	return best[0], best[1]
}

// loadPhase says whether a phase lies before the program's entry point.
func loadPhase(ph PhaseReport) bool {
	r, ok := canonRank[ph.To]
	return ok && r <= canonRank[CkEntry] && r > canonRank[CkExec]
}

// dominantPhase is the phase with the largest median among those in load (or not).
func dominantPhase(pr *ProcessReport, inLoad bool) (PhaseReport, bool) {
	var best PhaseReport
	found := false
	for _, ph := range pr.Phases {
		if loadPhase(ph) != inLoad || ph.Dur.N == 0 {
			continue
		}
		if !found || ph.Dur.Median > best.Dur.Median {
			best, found = ph, true
		}
	}
	return best, found
}

// verdict is the one line that answers the user's question for one extension:
// does load or init ordering dominate its time-to-ready, and can changing the
// extension move Init Duration at all?
func verdict(pr *ProcessReport, rep *Report) string {
	name := pr.Name
	var b strings.Builder
	// Under the lambda storage model, load is what Lambda pays for it:
	// exec→entry plus the chunk fetches of what init touches later.
	share, lambda := pr.LoadShare, pr.Chunks.N > 0 && pr.LambdaLoadShare > 0
	if lambda {
		share = pr.LambdaLoadShare
	}
	if pr.Load.N == 0 || pr.TimeToReady.N == 0 {
		var miss []string
		for _, c := range []string{CkExec, CkEntry, CkNext} {
			if pr.Missing[c] > 0 {
				miss = append(miss, c)
			}
		}
		fmt.Fprintf(&b, "load (exec→entry) of %s could not be measured (missing: %s)", name, strings.Join(miss, ", "))
	} else {
		fmt.Fprintf(&b, "load (exec→entry) is %s of %s's time-to-ready (%s of %s)",
			pct(pr.LoadShare), name, fmtDur(pr.Load.Median), fmtDur(pr.TimeToReady.Median))
		if lambda {
			fmt.Fprintf(&b, "; on Lambda's lazy storage it fetched %.0f chunks of 512 KiB, and the code and data it first touched after entry cost %s more of fetches: load on Lambda is %s",
				pr.Chunks.Median, fmtDur(pr.LazyLoad.Median), pct(share))
		}
	}
	lead := rep.Critical.Leader
	nRuns := len(rep.Critical.Runs)
	switch {
	case lead == "":
		b.WriteString("; who ended init is unknown (no /next was seen)")
	case lead != name && lead == NameRuntimeKey:
		if g, ok := registerGate(rep, name); ok {
			// Lambda starts the runtime only once every extension has
			// registered: this extension's way to register is on the path.
			fmt.Fprintf(&b, "; the runtime ends init %s after %s's /next, but Lambda starts the runtime only once every extension has registered, and %s registered last in %d of %d runs: its spawn→register (%s, of which load %s) is on the init critical path, its %s of init after registering is not",
				fmtDur(pr.SlackNs.Median), name, name, g.last, g.runs, fmtDur(g.toRegister), fmtDur(pr.Load.Median), fmtDur(g.after))
			break
		}
		fallthrough
	case lead != name:
		fmt.Fprintf(&b, "; %s is not on the init critical path (%s ends init %s later", name, whoName(lead), fmtDur(pr.SlackNs.Median))
		if pr.EndedInit > 0 {
			fmt.Fprintf(&b, "; %s ended it in %d of %d runs", name, pr.EndedInit, nRuns)
		}
		fmt.Fprintf(&b, "), so no change inside %s can lower Init Duration", name)
	default:
		fmt.Fprintf(&b, "; %s ends init in %d of %d runs", name, pr.EndedInit, nRuns)
		if rep.Critical.MarginNs.N > 0 {
			fmt.Fprintf(&b, ", %s after %s", fmtDur(rep.Critical.MarginNs.Median), whoName(rep.Critical.RunnerUp))
		}
		if pr.Load.N == 0 || pr.TimeToReady.N == 0 {
			if ph, ok := dominantPhase(pr, false); ok {
				fmt.Fprintf(&b, "; its largest phase is %s (%s)", ph.Name, fmtDur(ph.Dur.Median))
			}
			break
		}
		if share >= 0.5 {
			b.WriteString(", so load dominates: ")
			if lambda && pr.LazyLoad.Median > float64(pr.Load.Median) {
				fmt.Fprintf(&b, "most of it is fetching the chunks init touches after entry (%s), so fewer chunks touched (an orderfile, a smaller binary) is the lever; ", fmtDur(pr.LazyLoad.Median))
			}
			if ph, ok := dominantPhase(pr, true); ok {
				fmt.Fprintf(&b, "its largest load phase is %s (%s, %s of time-to-ready); linker and compiler flags are the lever", ph.Name, fmtDur(ph.Dur.Median), pct(ph.Share))
			} else {
				b.WriteString("load phases were not resolved (no ld.so checkpoints); linker and compiler flags are the lever")
			}
		} else {
			fmt.Fprintf(&b, ", so init ordering dominates: entry→/next is %s of time-to-ready", pct(1-pr.LoadShare))
			if lambda {
				fmt.Fprintf(&b, " (%s of it without the fetches)", pct(1-share))
			}
			if ph, ok := dominantPhase(pr, false); ok {
				fmt.Fprintf(&b, ", the largest step is %s (%s); move work off the path to /next", ph.Name, fmtDur(ph.Dur.Median))
			}
		}
	}
	return b.String()
}

// NameRuntimeKey is how the runtime is named in Critical.Leader.
const NameRuntimeKey = "runtime"

// gate says how an extension's registration gated the runtime's start.
type gate struct {
	runs, last        int     // runs seen; runs in which it registered last, before the runtime spawned
	toRegister, after float64 // medians: spawn → register_sent, register_sent → next
}

// registerGate finds whether extension name was the last to register before
// the runtime was spawned (Lambda's init waits for every registration, then
// starts the runtime), in most runs. Then its spawn→register delays Init
// Duration one for one even when the runtime ends init.
func registerGate(rep *Report, name string) (gate, bool) {
	var g gate
	var toReg, after []float64
	for _, r := range rep.Runs {
		var rtSpawn, mine, latest, spawn, next int64
		var haveRT, haveMine, haveSpawn bool
		for _, p := range r.Processes {
			switch p.Role {
			case RoleRuntime:
				rtSpawn, haveRT = p.Checkpoint(CkSpawn)
			case RoleExtension:
				// The platform spawns the runtime when the last register
				// request arrives, before the client reads the response.
				reg, ok := p.Checkpoint(CkRegisterSent)
				if !ok {
					continue
				}
				latest = max(latest, reg)
				if p.Name == name {
					mine, haveMine = reg, true
					spawn, haveSpawn = p.Checkpoint(CkSpawn)
					next, _ = p.Checkpoint(CkNext)
				}
			}
		}
		if !haveRT || !haveMine || !haveSpawn {
			continue
		}
		g.runs++
		if mine == latest && rtSpawn >= mine {
			g.last++
			toReg = append(toReg, float64(mine-spawn))
			if next > mine {
				after = append(after, float64(next-mine))
			}
		}
	}
	if g.runs == 0 || 2*g.last <= g.runs {
		return g, false
	}
	g.toRegister, g.after = stats.Median(toReg), stats.Median(after)
	return g, true
}

// pct prints a fraction as a whole percentage ("62 %"), or one decimal under 10 %.
func pct(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	if f < 0.1 {
		return fmt.Sprintf("%.1f %%", 100*f)
	}
	return fmt.Sprintf("%.0f %%", 100*f)
}

// FormatDuration is how every initprof report prints a duration in
// nanoseconds ("6.71 ms", "709.5 µs"): the HTML and Markdown writers use it
// so that their figures read exactly as report.txt's.
func FormatDuration(ns float64) string { return fmtDur(ns) }

// FormatSignedDuration is FormatDuration with an explicit sign, for shifts.
func FormatSignedDuration(ns float64) string { return signedDur(ns) }

// fmtDur prints nanoseconds with a unit that keeps 3–4 significant digits.
func fmtDur(ns float64) string {
	a := math.Abs(ns)
	switch {
	case math.IsNaN(ns):
		return "n/a"
	case a < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case a < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case a < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.3f s", ns/1e9)
	}
}

// runNotes is every run's notes, each text once, in order of first
// appearance: "run 3: …" for a note of one run, "runs 0–19 (20 of 20): …"
// when several runs had the same one (an extension that cannot load fails
// the same way every run).
func runNotes(runs []Run) []string {
	var order []string
	idx := map[string][]int{}
	for _, r := range runs {
		for _, n := range r.Notes {
			if _, ok := idx[n]; !ok {
				order = append(order, n)
			}
			if l := idx[n]; len(l) == 0 || l[len(l)-1] != r.Index {
				idx[n] = append(l, r.Index)
			}
		}
	}
	out := make([]string, 0, len(order))
	for _, n := range order {
		l := idx[n]
		if len(l) == 1 {
			out = append(out, fmt.Sprintf("run %d: %s", l[0], n))
			continue
		}
		out = append(out, fmt.Sprintf("runs %s (%d of %d): %s", indexRanges(l), len(l), len(runs), n))
	}
	return out
}

// indexRanges renders ascending run indexes as "0–4, 7, 9–10".
func indexRanges(l []int) string {
	var parts []string
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprint(l[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", l[i], l[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// CriticalPathText is report.txt's critical-path line ("the runtime ended
// init in 10 of 10 runs, 2.10 ms [...] after cext"), for other writers.
func (r *Report) CriticalPathText() string { return criticalCell(r) }

// OverheadText is report.txt's probe-overhead line ("not measured" when nil).
func (r *Report) OverheadText() string {
	if r.Overhead == nil {
		return "not measured"
	}
	return overheadCell(r.Overhead)
}

// FormatBytes prints a byte count as report.txt does ("3.1 MiB").
func FormatBytes(b float64) string { return fmtBytes(b) }

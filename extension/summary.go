package extension

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mark is an instant relative to platform.initStart; OK is false when the
// timeline never saw it (missing is reported, never invented).
type Mark struct {
	OK bool
	At time.Duration
}

func (m Mark) String() string {
	if !m.OK {
		return "-"
	}
	return fmtMs(m.At)
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// ProcSummary is one process's init as the platform saw it.
type ProcSummary struct {
	Name            string
	PID             int
	Internal        bool // registered without a file in the extensions dir
	Spawn           Mark
	Register        Mark // register request arrived
	RegisterStatus  int
	Subscribe       Mark // telemetry/logs subscribe arrived
	SubscribeDone   Mark // its response was sent
	SubscribeStatus int
	FirstNext       Mark // first /next arrived (ready)
	// SubscribeMargin is init end minus the subscribe's arrival: how close
	// the subscription came to being refused (negative: it was).
	SubscribeMargin time.Duration
	// ConcurrentSubscribe: /next arrived before the subscribe was answered.
	ConcurrentSubscribe bool
	Exit                Mark
	ExitDetail          string
	// LastStderr holds the last lines the process wrote to stderr (its
	// stdout when it wrote nothing to stderr): the diagnosis of a failed
	// init, e.g. ld.so's "cannot open shared object file".
	LastStderr []string
	// ShutdownKilled: SIGKILLed at the shutdown deadline.
	ShutdownKilled bool
	// LeftoversKilled: processes it forked outlived it and were killed at
	// the end.
	LeftoversKilled bool
}

// diagLines is how many of a process's last output lines a failed init's
// diagnosis quotes.
const diagLines = 5

func keepLast(lines []string, line string) []string {
	lines = append(lines, line)
	if len(lines) > diagLines {
		lines = lines[len(lines)-diagLines:]
	}
	return lines
}

// Summary is init seen from the platform: per process, when each API step
// arrived, who ended init and by how much, and anything suspicious.
type Summary struct {
	InitStartMonoNs int64
	InitEndMonoNs   int64
	InitDuration    time.Duration // exactly platform.initReport's durationMs
	InitStatus      string
	InitErrorType   string
	EndedBy         string        // the process whose /next came last (or who failed init)
	EndedByMargin   time.Duration // how much later than the one before it
	RunnerUp        string
	RuntimeInit     time.Duration // runtime spawn → its first /next
	Runtime         ProcSummary
	Extensions      []ProcSummary
	Notes           []string
	Invokes         []InvokeSummary
	// Rejected are the registrations the platform refused, by the name they
	// asked for; they are not in Extensions.
	Rejected []Rejected
}

// Rejected is one refused registration.
type Rejected struct {
	Name   string
	Status int // the HTTP status of the refusal (0: no response)
}

// shortQuote quotes a name a client sent, cut to 64 bytes.
func shortQuote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// InvokeSummary is one invoke's report line.
type InvokeSummary struct {
	RequestID         string
	Status            string
	DurationMs        float64
	ExtensionOverhead float64
}

// raceWindow: a subscribe arriving this close before init end is called a race.
const raceWindow = 5 * time.Millisecond

// Summarize reads a platform timeline into a Summary.
func Summarize(entries []Entry) (*Summary, error) {
	es := append([]Entry(nil), entries...)
	SortEntries(es)
	s := &Summary{}
	found := false
	for _, e := range es {
		if e.Kind == KindState && e.Event == EventInitStart {
			s.InitStartMonoNs, found = e.MonoNs, true
			break
		}
	}
	if !found {
		return nil, errors.New("timeline has no initStart entry: it is not from initprof platform, or was cut short")
	}
	t0 := s.InitStartMonoNs
	mark := func(ns int64) Mark { return Mark{OK: true, At: time.Duration(ns - t0)} }

	procs := map[string]*ProcSummary{}
	var order []string
	get := func(name string) *ProcSummary {
		if p, ok := procs[name]; ok {
			return p
		}
		p := &ProcSummary{Name: name, Internal: true}
		procs[name] = p
		order = append(order, name)
		return p
	}
	s.Runtime.Name = NameRuntime
	var initEnd *Entry
	subPending := map[string]bool{}
	stdout := map[string][]string{}
	var logNotes []string
	for i := range es {
		e := &es[i]
		switch e.Kind {
		case KindLogSummary:
			if d := num(e.Detail["dropped_lines"]); d > 0 {
				st, _ := e.Detail["stream"].(string)
				logNotes = append(logNotes, fmt.Sprintf("%s: wrote %d lines (%.1f MB) to %s during %s; the timeline keeps the first %d and the last %d (and every checkpoint line), %d were counted only",
					e.Name, num(e.Detail["lines"]), float64(num(e.Detail["bytes"]))/1e6, st, e.Event, LogKeepFirst, LogKeepLast, d))
			}
		case KindLog:
			if e.Name == "" || e.Name == NamePlatform {
				continue
			}
			p := &s.Runtime
			if e.Name != NameRuntime {
				p = get(e.Name)
			}
			if st, _ := e.Detail["stream"].(string); st == "stderr" {
				p.LastStderr = keepLast(p.LastStderr, e.Line)
			} else {
				stdout[e.Name] = keepLast(stdout[e.Name], e.Line)
			}
		case KindShutdown:
			if e.Name == "" || e.Name == NamePlatform {
				continue
			}
			p := &s.Runtime
			if e.Name != NameRuntime {
				p = get(e.Name)
			}
			why, _ := e.Detail["why"].(string)
			switch {
			case e.Event == "sigkill" && why == "shutdown deadline":
				p.ShutdownKilled = true
			case e.Event == "kill_leftovers":
				p.LeftoversKilled = true
			}
		case KindSpawn:
			p := &s.Runtime
			if e.Name != NameRuntime {
				p = get(e.Name)
				p.Internal = false
			}
			if !p.Spawn.OK {
				p.Spawn, p.PID = mark(e.MonoNs), e.PID
			}
		case KindExit:
			p := &s.Runtime
			if e.Name != NameRuntime {
				p = get(e.Name)
			}
			if !p.Exit.OK {
				p.Exit = mark(e.MonoNs)
				p.ExitDetail = exitText(e.Detail)
			}
		case KindRequest, KindResponse:
			if e.Name == "" {
				continue
			}
			switch {
			case e.Name == NameRuntime && strings.HasSuffix(e.Path, "/runtime/invocation/next") && e.Kind == KindRequest:
				if !s.Runtime.FirstNext.OK {
					s.Runtime.FirstNext = mark(e.MonoNs)
				}
			case e.Name == NameRuntime || e.Name == NamePlatform:
			case strings.HasSuffix(e.Path, "/extension/register"):
				p := get(e.Name)
				if e.Kind == KindRequest && !p.Register.OK {
					p.Register = mark(e.MonoNs)
				} else if e.Kind == KindResponse && p.RegisterStatus == 0 {
					p.RegisterStatus = e.Status
				}
			case e.Path == telemetryPath || e.Path == logsPath:
				p := get(e.Name)
				if e.Kind == KindRequest && !p.Subscribe.OK {
					p.Subscribe = mark(e.MonoNs)
					subPending[e.Name] = true
				} else if e.Kind == KindResponse && subPending[e.Name] {
					p.SubscribeDone, p.SubscribeStatus = mark(e.MonoNs), e.Status
					subPending[e.Name] = false
				}
			case strings.HasSuffix(e.Path, "/extension/event/next") && e.Kind == KindRequest:
				p := get(e.Name)
				if !p.FirstNext.OK {
					p.FirstNext = mark(e.MonoNs)
				}
			}
		case KindInitEnd:
			if initEnd == nil {
				initEnd = e
			}
		case KindInvoke:
			if e.Event == "report" {
				is := InvokeSummary{Status: e.State}
				if d := e.Detail; d != nil {
					is.RequestID, _ = d["request_id"].(string)
					is.DurationMs, _ = d["duration_ms"].(float64)
					is.ExtensionOverhead, _ = d["extension_overhead_ms"].(float64)
				}
				s.Invokes = append(s.Invokes, is)
			}
		}
	}
	for _, n := range order {
		if p := procs[n]; len(p.LastStderr) == 0 {
			p.LastStderr = stdout[n]
		}
	}
	if len(s.Runtime.LastStderr) == 0 {
		s.Runtime.LastStderr = stdout[NameRuntime]
	}
	for _, n := range order {
		p := procs[n]
		if p.Internal && p.RegisterStatus != http.StatusOK && !p.FirstNext.OK {
			// A registration the platform refused (403, 405, 413, …) is not
			// an extension: no process of that name ever ran.
			s.Rejected = append(s.Rejected, Rejected{Name: n, Status: p.RegisterStatus})
			continue
		}
		s.Extensions = append(s.Extensions, *p)
	}
	s.Notes = append(s.Notes, logNotes...)
	for _, r := range s.Rejected {
		s.Notes = append(s.Notes, fmt.Sprintf("registration refused (%s) for the name %s: not an extension", statusText(r.Status), shortQuote(r.Name)))
	}
	sort.SliceStable(s.Extensions, func(i, j int) bool { return s.Extensions[i].Name < s.Extensions[j].Name })

	if initEnd == nil {
		return s, errors.New("timeline has no init_end entry: the platform stopped before init ended")
	}
	s.InitEndMonoNs = initEnd.MonoNs
	d := initEnd.Detail
	durMs, _ := d["duration_ms"].(float64)
	s.InitDuration = time.Duration(durMs * 1e6)
	s.InitStatus, _ = d["status"].(string)
	s.InitErrorType, _ = d["error_type"].(string)
	s.EndedBy, _ = d["ended_by"].(string)
	if s.Runtime.Spawn.OK && s.Runtime.FirstNext.OK {
		s.RuntimeInit = s.Runtime.FirstNext.At - s.Runtime.Spawn.At
	}

	// The critical path: who called /next last, and by how much.
	type nx struct {
		name string
		at   time.Duration
	}
	var nexts []nx
	if s.Runtime.FirstNext.OK {
		nexts = append(nexts, nx{NameRuntime, s.Runtime.FirstNext.At})
	}
	for _, p := range s.Extensions {
		if p.FirstNext.OK {
			nexts = append(nexts, nx{p.Name, p.FirstNext.At})
		}
	}
	sort.SliceStable(nexts, func(i, j int) bool { return nexts[i].at < nexts[j].at })
	if s.InitStatus == "success" && len(nexts) >= 2 {
		last, prev := nexts[len(nexts)-1], nexts[len(nexts)-2]
		s.EndedByMargin, s.RunnerUp = last.at-prev.at, prev.name
	}

	endAt := time.Duration(initEnd.MonoNs - t0)
	for i := range s.Extensions {
		p := &s.Extensions[i]
		if !p.Subscribe.OK {
			continue
		}
		p.SubscribeMargin = endAt - p.Subscribe.At
		// The H18 ordering: /next went out before the subscribe was answered,
		// so nothing stopped init from ending without the subscription.
		p.ConcurrentSubscribe = p.FirstNext.OK && (!p.SubscribeDone.OK || p.SubscribeDone.At > p.FirstNext.At)
		switch {
		case p.Subscribe.At > endAt:
			s.Notes = append(s.Notes, fmt.Sprintf("%s: RACE LOST: subscribe arrived %s after init ended (%s); it gets no init telemetry",
				p.Name, fmtMs(-p.SubscribeMargin), statusText(p.SubscribeStatus)))
		case p.ConcurrentSubscribe:
			s.Notes = append(s.Notes, fmt.Sprintf("%s: RACE: /next was sent before the subscribe completed (subscribe concurrent with /next); the subscribe arrived only %s before init ended (%s)",
				p.Name, fmtMs(p.SubscribeMargin), statusText(p.SubscribeStatus)))
		}
	}
	for _, p := range s.Extensions {
		failed := false
		if p.Exit.OK && p.Exit.At <= endAt {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: exited during init at %s (%s)", p.Name, p.Exit, p.ExitDetail))
			failed = true
		}
		if !p.FirstNext.OK && s.InitStatus != "success" {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: never called /next", p.Name))
			failed = true
		}
		if failed && len(p.LastStderr) > 0 {
			s.Notes = append(s.Notes, lastLinesNote(p.Name, p.LastStderr))
		}
	}
	if r := s.Runtime; r.Spawn.OK && s.InitStatus != "success" && (!r.FirstNext.OK || (r.Exit.OK && r.Exit.At <= endAt)) {
		if r.Exit.OK && r.Exit.At <= endAt {
			s.Notes = append(s.Notes, fmt.Sprintf("runtime: exited during init at %s (%s)", r.Exit, r.ExitDetail))
		}
		if len(r.LastStderr) > 0 {
			s.Notes = append(s.Notes, lastLinesNote(NameRuntime, r.LastStderr))
		}
	}
	for _, p := range append([]ProcSummary{s.Runtime}, s.Extensions...) {
		if p.ShutdownKilled {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: SIGKILLed at the shutdown deadline: it did not exit after SHUTDOWN in time (Lambda kills it the same way)", p.Name))
		}
		if p.LeftoversKilled {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: processes it forked outlived it; the platform killed them at the end, as Lambda discards the environment", p.Name))
		}
	}
	return s, nil
}

func statusText(st int) string {
	switch st {
	case 0:
		return "no response"
	case 403:
		return "status 403, subscription closed"
	}
	return fmt.Sprintf("status %d", st)
}

func exitText(d map[string]any) string {
	if d == nil {
		return "exited"
	}
	if sig, ok := d["signal"].(string); ok {
		return "killed by " + sig
	}
	if c, ok := d["exit_code"].(float64); ok {
		return fmt.Sprintf("exit code %d", int(c))
	}
	if c, ok := d["exit_code"].(int); ok {
		return fmt.Sprintf("exit code %d", c)
	}
	return "exited"
}

// WriteText prints the summary for people: the verdict line first, then one
// row per process with times relative to initStart.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Init Duration: %.2f ms  status: %s", float64(s.InitDuration)/1e6, s.InitStatus)
	if s.InitErrorType != "" {
		fmt.Fprintf(w, " (%s)", s.InitErrorType)
	}
	fmt.Fprintln(w)
	switch {
	case s.InitStatus == "success" && s.RunnerUp != "":
		fmt.Fprintf(w, "Init ended by:  %s's /next, %s after %s's\n", s.EndedBy, fmtMs(s.EndedByMargin), s.RunnerUp)
	case s.InitStatus == "success":
		fmt.Fprintf(w, "Init ended by:  %s's /next\n", s.EndedBy)
	case s.InitStatus == "timeout":
		fmt.Fprintf(w, "Init timed out waiting for: %s\n", s.EndedBy)
	default:
		fmt.Fprintf(w, "Init failed by: %s\n", s.EndedBy)
	}
	if s.Runtime.Spawn.OK && s.Runtime.FirstNext.OK {
		fmt.Fprintf(w, "Runtime init:   %s (spawn → first /next)\n", fmtMs(s.RuntimeInit))
	}
	fmt.Fprintln(w, "\nTimes since platform.initStart:")
	fmt.Fprintf(w, "  %-16s %7s %9s %9s %17s %9s %9s  %s\n", "process", "pid", "spawn", "register", "subscribe", "sub.done", "/next", "exit")
	row := func(p ProcSummary) {
		if !p.Spawn.OK && !p.Register.OK && !p.FirstNext.OK {
			fmt.Fprintf(w, "  %-16s %7s  (not started)\n", p.Name, "-")
			return
		}
		name := p.Name
		if p.Internal && p.Name != NameRuntime {
			name += " (int)"
		}
		sub := p.Subscribe.String()
		if p.Subscribe.OK {
			sub += fmt.Sprintf(" (%d)", p.SubscribeStatus)
		}
		exit := p.Exit.String()
		if p.Exit.OK {
			exit += " " + p.ExitDetail
		}
		fmt.Fprintf(w, "  %-16s %7d %9s %9s %17s %9s %9s  %s\n", name, p.PID, p.Spawn, p.Register, sub, p.SubscribeDone, p.FirstNext, exit)
	}
	for _, p := range s.Extensions {
		row(p)
	}
	row(s.Runtime)
	if len(s.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range s.Notes {
			fmt.Fprintln(w, "  - "+n)
		}
	}
	if len(s.Invokes) > 0 {
		fmt.Fprintf(w, "\nInvokes: %d\n", len(s.Invokes))
		for i, iv := range s.Invokes {
			fmt.Fprintf(w, "  %d. %s  %s  duration %.2f ms, extensionOverhead %.2f ms\n", i+1, iv.RequestID, iv.Status, iv.DurationMs, iv.ExtensionOverhead)
		}
	}
}

// lastLinesNote quotes a process's last output lines.
func lastLinesNote(name string, lines []string) string {
	q := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		q[i] = strconv.Quote(l)
	}
	return fmt.Sprintf("%s: last output: %s", name, strings.Join(q, " | "))
}

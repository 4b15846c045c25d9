package coldstart

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/pprofout"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/outputs"
	"github.com/initprof/initprof/profile/trace"
)

// SampleProfile unwinds and symbolizes the sampling runs (files read from
// the sandbox's rootfs, where the processes saw them) into the input of every
// sampling output (outputs.Write), with one line per finding worth showing:
// samples per run, the share fully unwound, drops, off-CPU time, and what
// sampling cost next to the timing runs.
func (s *Series) SampleProfile(runs []SampledRun, hz int, offCPU bool) (in outputs.Input, lines []string, err error) {
	if len(runs) == 0 {
		return in, nil, errors.New("no sampling run finished: no flamegraph")
	}
	res := outputs.NewResolver(func(m sample.Mapping) string {
		if m.Path == container.InitprofPath && s.e.cfg.Self != "" {
			return s.e.cfg.Self // bind-mounted, not in the rootfs
		}
		if p := s.HostPath(m.Path); p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return m.Path
	})
	var taken, dropped, offTaken, offDropped, lostSide uint64
	var first, last int64
	var perRun []string
	complete, total := 0, 0
	byProc := map[string][2]int{} // process → complete, total
	for _, sr := range runs {
		var stacks []sample.Stack
		for _, g := range sr.Capture.Groups() {
			sts := res.Stacks(g.Samples, g.Maps, sr.Run, hz)
			stacks = append(stacks, sts...)
		}
		sort.SliceStable(stacks, func(i, j int) bool { return stacks[i].MonoNs < stacks[j].MonoNs })
		// The sandbox's first process is the platform (runc init until it execs).
		for i := range stacks {
			if stacks[i].PID == sr.Capture.Root && strings.HasPrefix(stacks[i].Process, "pid ") {
				stacks[i].Process = "platform"
			}
		}
		c := 0
		for _, st := range stacks {
			n := byProc[st.Process]
			if st.Complete {
				c++
				n[0]++
			}
			n[1]++
			byProc[st.Process] = n
		}
		complete += c
		total += len(stacks)
		taken += sr.Capture.Taken
		dropped += sr.Capture.Dropped
		perRun = append(perRun, fmt.Sprint(len(stacks)))
		in.Stacks = append(in.Stacks, stacks...)
		for _, g := range sr.Capture.GroupsOf(sr.Capture.OffCPU) {
			for _, st := range res.Stacks(g.Samples, g.Maps, sr.Run, hz) {
				// Init only: a process's time off the CPU in its phases
				// (spawn to its first /next), not its wait in /next after.
				if st.Phase != "" {
					in.OffCPU = append(in.OffCPU, st)
				}
			}
		}
		offTaken += sr.Capture.OffCPUTaken
		offDropped += sr.Capture.OffCPUDropped
		lostSide += sr.Capture.LostSide
		ps, sl := traceOf(sr.Run)
		ps = append(ps, trace.Process{PID: int(sr.Capture.Root), Name: "platform"})
		in.Processes = append(in.Processes, ps...)
		in.Slices = append(in.Slices, sl...)
		if first == 0 || sr.Run.InitStartNs < first {
			first = sr.Run.InitStartNs
		}
		last = max(last, sr.Run.InitEndNs)
	}
	in.Title = fmt.Sprintf("%s, %d sampling runs at %d Hz", s.name, len(runs), hz)
	in.OriginNs = runs[0].Run.InitStartNs
	in.Meta = pprofout.Meta{PeriodNs: 1e9 / int64(hz), StartNs: first, DurationNs: max(0, last-first),
		Comments: []string{in.Title}}
	share := 0.0
	if total > 0 {
		share = 100 * float64(complete) / float64(total)
	}
	lines = append(lines, fmt.Sprintf("%d sampling runs at %d Hz: samples per run %s; %.1f %% fully unwound to a root frame", len(runs), hz, strings.Join(perRun, ", "), share))
	var names []string
	for p := range byProc {
		names = append(names, p)
	}
	sort.Strings(names)
	var parts []string
	for _, p := range names {
		n := byProc[p]
		parts = append(parts, fmt.Sprintf("%s %d/%d (%.0f %%)", p, n[0], n[1], 100*float64(n[0])/float64(n[1])))
	}
	lines = append(lines, fmt.Sprintf("fully unwound per process: %s", strings.Join(parts, ", ")))
	if dropped > 0 {
		lines = append(lines, fmt.Sprintf("WARNING: %d of %d samples dropped (ring buffer full); lower --sample-hz", dropped, taken))
	}
	if lostSide > 0 {
		lines = append(lines, fmt.Sprintf("WARNING: the perf ring lost %d mapping records; frames in the mappings they described show as addresses", lostSide))
	}
	if offCPU {
		for _, line := range offCPUSummary(in.OffCPU) {
			lines = append(lines, "off-CPU "+line)
		}
		if offDropped > 0 {
			lines = append(lines, fmt.Sprintf("WARNING: %d of %d off-CPU records dropped (ring buffer full)", offDropped, offTaken))
		}
	}
	var sampled []profile.Run
	for _, sr := range runs {
		sampled = append(sampled, sr.Run)
	}
	lines = append(lines, samplingOverhead(s.runs, sampled)...)
	return in, lines, nil
}

// offCPUSummary is one line per process: its main thread's time off the CPU
// during init over the sampling runs, blocked and runnable, with the phases
// that hold the most, and its other threads' total. The main thread comes
// first because its waits are the ones on the path to /next; a listener
// thread parked in accept() is off the CPU for the whole init, harmlessly.
func offCPUSummary(stacks []sample.Stack) []string {
	type tot struct {
		n                       int
		blocked, runnable, rest int64
		byPhase                 map[string]int64
	}
	per := map[string]*tot{}
	for _, st := range stacks {
		t := per[st.Process]
		if t == nil {
			t = &tot{byPhase: map[string]int64{}}
			per[st.Process] = t
		}
		t.n++
		switch {
		case st.TID != st.PID:
			t.rest += st.Weight
			continue
		case len(st.Frames) > 0 && st.Frames[0].Func == sample.FrameRunnable:
			t.runnable += st.Weight
		default:
			t.blocked += st.Weight
		}
		t.byPhase[st.Phase] += st.Weight
	}
	var names []string
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	ms := func(ns int64) string { return fmt.Sprintf("%.2f ms", float64(ns)/1e6) }
	var out []string
	for _, n := range names {
		t := per[n]
		var phs []string
		for ph := range t.byPhase {
			phs = append(phs, ph)
		}
		sort.Slice(phs, func(i, j int) bool { return t.byPhase[phs[i]] > t.byPhase[phs[j]] })
		var top []string
		for i, ph := range phs {
			if i == 3 {
				break
			}
			top = append(top, ph+" "+ms(t.byPhase[ph]))
		}
		most := ""
		if len(top) > 0 {
			most = " (most in " + strings.Join(top, ", ") + ")"
		}
		out = append(out, fmt.Sprintf("%s: %d intervals; main thread blocked %s, runnable %s%s; other threads %s",
			n, t.n, ms(t.blocked), ms(t.runnable), most, ms(t.rest)))
	}
	return out
}

// samplingOverhead compares exec→/next of each process between the timing
// runs and the sampling runs (medians): what sampling at this rate costs, so
// the reader knows how far the flamegraph's run is from an unobserved one.
func samplingOverhead(timing, sampled []profile.Run) []string {
	med := func(runs []profile.Run, name string) (float64, int) {
		var v []float64
		for _, r := range runs {
			for _, p := range r.Processes {
				if p.Name != name {
					continue
				}
				a, ok1 := p.Checkpoint(profile.CkExec)
				b, ok2 := p.Checkpoint(profile.CkNext)
				if ok1 && ok2 && b > a {
					v = append(v, float64(b-a))
				}
			}
		}
		if len(v) == 0 {
			return 0, 0
		}
		sort.Float64s(v)
		return v[len(v)/2], len(v)
	}
	names := map[string]bool{}
	for _, r := range sampled {
		for _, p := range r.Processes {
			names[p.Name] = true
		}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []string
	for _, n := range sorted {
		t, nt := med(timing, n)
		sm, ns := med(sampled, n)
		if nt == 0 || ns == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("sampling overhead on %s exec→/next: %.2f ms (%d timing runs) → %.2f ms (%d sampling runs), %+.0f %%",
			n, t/1e6, nt, sm/1e6, ns, 100*(sm-t)/t))
	}
	return out
}

// traceOf turns a run into trace.json tracks: each process with its phases,
// and the Lambda API calls (request → response on the platform timeline) as
// slices on the caller's track.
func traceOf(r profile.Run) ([]trace.Process, []trace.Slice) {
	var ps []trace.Process
	pidOf := map[string]int{}
	for _, p := range r.Processes {
		ps = append(ps, trace.Process{PID: p.PID, Name: p.Name, Phases: profile.Phases(p)})
		pidOf[p.Name] = p.PID
	}
	es, _ := r.Platform.([]extension.Entry)
	open := map[string][]extension.Entry{}
	var sl []trace.Slice
	for _, e := range es {
		key := e.Name + " " + e.Method + " " + e.Path
		switch e.Kind {
		case extension.KindRequest:
			open[key] = append(open[key], e)
		case extension.KindResponse:
			q := open[key]
			if len(q) == 0 {
				continue
			}
			req := q[0]
			open[key] = q[1:]
			pid, ok := pidOf[e.Name]
			if !ok {
				continue
			}
			sl = append(sl, trace.Slice{PID: pid, Name: req.Method + " " + req.Path, Cat: "api",
				StartNs: req.MonoNs, EndNs: e.MonoNs, Args: map[string]any{"status": e.Status}})
		}
	}
	return ps, sl
}

// WriteSampleOutputs writes every sampling output of runs (SampleProfile,
// outputs.Write) into dir, made if need be, and reports SampleProfile's
// findings (each after the build's name) and the files it wrote through
// Config.Progress.
func (s *Series) WriteSampleOutputs(runs []SampledRun, o SampleOptions, dir string) error {
	in, lines, err := s.SampleProfile(runs, o.Hz, o.OffCPU)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	paths, err := outputs.Write(dir, in)
	if err != nil {
		return fmt.Errorf("writing the flamegraphs: %w", err)
	}
	for _, l := range lines {
		s.e.progressf("%s: %s", s.name, l)
	}
	s.e.progressf("wrote %s", strings.Join(paths, ", "))
	return nil
}

package extension

import (
	"regexp"
	"sync"
)

// What the timeline keeps of a process's output, per stream and per phase
// (init, invoke, shutdown): the first LogKeepFirst lines as they come, the
// last LogKeepLast lines (added when the phase ends), and every line that
// matches a keep pattern (the samples' "INIT | ..." lines, --checkpoint
// regexes). The rest is counted: a log_summary entry per stream and phase
// says how many lines and bytes there were and how many were left out. The
// drain itself never slows down: an extension that writes 50 MB before it
// registers is not made to time out by its logging, as on Lambda.
const (
	LogKeepFirst = 200
	LogKeepLast  = 200
)

// KindLogSummary entries count a stream's output in one phase.
const KindLogSummary = "log_summary"

// Log phases.
const (
	LogPhaseInit     = "init"
	LogPhaseInvoke   = "invoke"
	LogPhaseShutdown = "shutdown"
)

// alwaysKeep matches lines kept whatever their number: the samples'
// checkpoint lines ("INIT | checkpoint=NAME mono_ns=N", "INIT | phase=...").
var alwaysKeep = regexp.MustCompile(`INIT \|`)

// logStream is one stream of one process in the current phase.
type logStream struct {
	name, stream string
	pid          int
	lines, bytes int64 // in the phase
	kept         int64 // added at once (first lines and keep-pattern lines)
	firstN       int
	ring         []heldLine // the last lines not added yet
	ringAt       int
	ringN        int
}

// heldLine is a line held back until its phase ends.
type heldLine struct {
	mono int64
	line string
}

// logLimiter applies the keep rules for a platform.
type logLimiter struct {
	tl    *Timeline
	keep  []*regexp.Regexp
	mu    sync.Mutex
	phase string
	strs  map[string]*logStream // name + "\x00" + stream
	order []string
}

func newLogLimiter(tl *Timeline, keep []*regexp.Regexp) *logLimiter {
	return &logLimiter{tl: tl, keep: keep, phase: LogPhaseInit, strs: map[string]*logStream{}}
}

func (l *logLimiter) keepLine(line string) bool {
	if alwaysKeep.MatchString(line) {
		return true
	}
	for _, re := range l.keep {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// line takes one output line.
func (l *logLimiter) line(name string, pid int, stream, line string, mono int64) {
	l.mu.Lock()
	key := name + "\x00" + stream
	s := l.strs[key]
	if s == nil {
		s = &logStream{name: name, stream: stream, pid: pid, ring: make([]heldLine, LogKeepLast)}
		l.strs[key] = s
		l.order = append(l.order, key)
	}
	s.pid = pid
	s.lines++
	s.bytes += int64(len(line)) + 1
	add := false
	switch {
	case s.firstN < LogKeepFirst:
		s.firstN++
		add = true
	case l.keepLine(line):
		add = true
	default:
		s.ring[s.ringAt] = heldLine{mono, line}
		s.ringAt = (s.ringAt + 1) % len(s.ring)
		if s.ringN < len(s.ring) {
			s.ringN++
		}
	}
	if add {
		s.kept++
	}
	l.mu.Unlock()
	if add {
		l.tl.Add(Entry{MonoNs: mono, Kind: KindLog, Name: name, PID: pid, Line: line, Detail: map[string]any{"stream": stream}})
	}
}

// setPhase ends the current phase (its last lines and counts go to the
// timeline) and starts the next.
func (l *logLimiter) setPhase(next string) {
	l.flush()
	l.mu.Lock()
	l.phase = next
	l.mu.Unlock()
}

// flush adds the held last lines and a log_summary per stream that wrote
// anything in the phase, and resets the counts.
func (l *logLimiter) flush() {
	l.mu.Lock()
	var out []Entry
	for _, k := range l.order {
		s := l.strs[k]
		if s.lines == 0 {
			continue
		}
		start := (s.ringAt - s.ringN + len(s.ring)) % len(s.ring)
		for i := 0; i < s.ringN; i++ {
			h := s.ring[(start+i)%len(s.ring)]
			out = append(out, Entry{MonoNs: h.mono, Kind: KindLog, Name: s.name, PID: s.pid, Line: h.line, Detail: map[string]any{"stream": s.stream}})
		}
		kept := s.kept + int64(s.ringN)
		out = append(out, Entry{Kind: KindLogSummary, Name: s.name, PID: s.pid, Event: l.phase, Detail: map[string]any{
			"stream": s.stream, "lines": s.lines, "bytes": s.bytes, "kept_lines": kept, "dropped_lines": s.lines - kept,
		}})
		s.lines, s.bytes, s.kept, s.firstN, s.ringAt, s.ringN = 0, 0, 0, 0, 0, 0
		clear(s.ring)
	}
	l.mu.Unlock()
	for _, e := range out {
		l.tl.Add(e)
	}
}

// LogCounts sums the log_summary entries of a timeline per process and
// stream: lines, bytes and the lines left out of the timeline.
func LogCounts(entries []Entry) map[string]map[string][3]int64 {
	out := map[string]map[string][3]int64{}
	for _, e := range entries {
		if e.Kind != KindLogSummary {
			continue
		}
		st, _ := e.Detail["stream"].(string)
		if out[e.Name] == nil {
			out[e.Name] = map[string][3]int64{}
		}
		c := out[e.Name][st]
		c[0] += num(e.Detail["lines"])
		c[1] += num(e.Detail["bytes"])
		c[2] += num(e.Detail["dropped_lines"])
		out[e.Name][st] = c
	}
	return out
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

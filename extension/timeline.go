package extension

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Entry is one line of the platform timeline. MonoNs is CLOCK_MONOTONIC, the
// clock bpf_ktime_get_ns reads, so the profile package can join these entries
// with kernel events without any conversion.
type Entry struct {
	MonoNs int64          `json:"mono_ns"`
	Kind   string         `json:"kind"`           // see the Kind* constants
	Name   string         `json:"name,omitempty"` // extension name, "runtime" or "platform"
	PID    int            `json:"pid,omitempty"`
	Method string         `json:"method,omitempty"`
	Path   string         `json:"path,omitempty"`
	Status int            `json:"status,omitempty"`
	State  string         `json:"state,omitempty"`
	Event  string         `json:"event,omitempty"` // telemetry type or lifecycle event
	Line   string         `json:"line,omitempty"`  // log line
	Detail map[string]any `json:"detail,omitempty"`
}

// Timeline entry kinds.
const (
	KindState     = "state"
	KindSpawn     = "spawn"
	KindExit      = "exit"
	KindRequest   = "request"
	KindResponse  = "response"
	KindTelemetry = "telemetry"
	KindLog       = "log"
	KindInitEnd   = "init_end"
	KindInvoke    = "invoke"
	KindShutdown  = "shutdown"
)

// Lifecycle events in Entry.Event: EventInitStart marks platform.initStart
// (Kind "state", Name "platform"), the zero of every relative time.
const EventInitStart = "initStart"

// Names used in Entry.Name for the non-extension actors.
const (
	NameRuntime  = "runtime"
	NamePlatform = "platform"
)

// MonoNow returns CLOCK_MONOTONIC in nanoseconds.
func MonoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC cannot fail on Linux; keep the signature simple.
		return 0
	}
	return ts.Nano()
}

// Timeline writes entries as JSON lines. It is safe for concurrent use; each
// entry is one write(2), so a pipe reader never sees interleaved halves.
// A nil *Timeline discards everything, so callers never need to check.
type Timeline struct {
	mu  sync.Mutex
	w   io.Writer
	err error
	// keep is an in-memory copy, so the platform can summarise its own run
	// without reading back what it wrote.
	keep []Entry
	// sealed: the platform is done; later entries (a late HTTP handler's
	// response after the server closed) are dropped from both copies, so
	// what was written is exactly what Result.Timeline holds.
	sealed bool
}

// Seal ends the timeline: every later Add is dropped.
func (t *Timeline) Seal() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.sealed = true
	t.mu.Unlock()
}

// NewTimeline returns a Timeline writing to w (nil: memory only).
func NewTimeline(w io.Writer) *Timeline { return &Timeline{w: w} }

// Add stamps e with the current time when MonoNs is zero and writes it.
func (t *Timeline) Add(e Entry) {
	if t == nil {
		return
	}
	if e.MonoNs == 0 {
		e.MonoNs = MonoNow()
	}
	b, err := json.Marshal(e)
	if err != nil {
		// Detail may hold a value JSON cannot encode; keep the entry without it.
		e.Detail = map[string]any{"marshal_error": err.Error()}
		b, _ = json.Marshal(e)
	}
	b = append(b, '\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sealed {
		return
	}
	t.keep = append(t.keep, e)
	if t.w != nil && t.err == nil {
		_, t.err = t.w.Write(b)
	}
}

// Entries returns a copy of everything added so far.
func (t *Timeline) Entries() []Entry {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Entry(nil), t.keep...)
}

// Err reports the first write error, so a lost timeline is not silent.
func (t *Timeline) Err() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// OpenTimelineSink opens the destination given to --timeline: a file path
// (created or truncated) or "fd:N", an inherited file descriptor the host
// reads from (a pipe or a file it opened for us).
func OpenTimelineSink(spec string) (io.WriteCloser, error) {
	if spec == "" {
		return nil, fmt.Errorf("timeline: empty destination; give a path or fd:N")
	}
	if rest, ok := strings.CutPrefix(spec, "fd:"); ok {
		fd, err := strconv.Atoi(rest)
		if err != nil || fd < 0 {
			return nil, fmt.Errorf("timeline %q: fd:N needs a non-negative integer N", spec)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("timeline %q: file descriptor %d is not open: %v", spec, fd, err)
		}
		// The fd was inherited without close-on-exec; keep it out of the
		// extensions and the runtime.
		unix.CloseOnExec(fd)
		return os.NewFile(uintptr(fd), "timeline-fd-"+rest), nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	return f, nil
}

// ReadTimeline parses JSON lines written by a Timeline and returns them
// sorted by MonoNs (stable: entries stamped in the same nanosecond keep their
// written order). Blank lines are skipped; a malformed line is an error that
// names its line number.
func ReadTimeline(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("timeline line %d: %v", n, err)
		}
		if e.Kind == "" {
			return nil, fmt.Errorf("timeline line %d: entry has no kind", n)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("timeline: reading line %d: %v", n+1, err)
	}
	SortEntries(out)
	return out, nil
}

// SortEntries orders entries by MonoNs, keeping written order for ties.
func SortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].MonoNs < es[j].MonoNs })
}

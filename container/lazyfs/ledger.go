package lazyfs

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FileStats is what one file cost during one cold start.
type FileStats struct {
	Path  string `json:"path"` // inside the served tree, e.g. /opt/extensions/x
	Class string `json:"class"`
	// Chunks is how many distinct chunks were fetched (first reads).
	Chunks int `json:"chunks"`
	// Tiers counts the fetched chunks by the tier that served them.
	Tiers     map[string]int `json:"tiers,omitempty"`
	BytesRead int64          `json:"bytes_read"` // bytes the kernel asked for
	Requests  int64          `json:"requests"`   // FUSE reads
	WaitNs    int64          `json:"wait_ns"`    // modelled fetch time slept
	// ExpectedNs is the mean cost of the chunks fetched (chunks × the class's
	// expected latency): the figure the draw scatters around.
	ExpectedNs int64 `json:"expected_ns"`
	// OversleptNs is how much longer the sleeps took than modelled (timer
	// slack, scheduling): real time the run waited that the model did not ask.
	OversleptNs int64 `json:"overslept_ns,omitempty"`
}

// Stats is one cold start's storage account.
type Stats struct {
	Model string      `json:"model"`
	Seed  uint64      `json:"seed"`
	Files []FileStats `json:"files"`
	// Totals over Files.
	Chunks      int   `json:"chunks"`
	BytesRead   int64 `json:"bytes_read"`
	Reads       int64 `json:"reads"`
	WaitNs      int64 `json:"wait_ns"`
	ExpectedNs  int64 `json:"expected_ns"`
	OversleptNs int64 `json:"overslept_ns"`
	// Requests counts every FUSE request the server answered (lookups,
	// getattrs, opens, reads...), and ServiceNs their time in the server
	// excluding the modelled sleep: the FUSE layer's own cost.
	Requests  int64 `json:"requests"`
	ServiceNs int64 `json:"service_ns"`
	ReadAhead int   `json:"readahead"`
	// CPUsAwake says the server held idle CPUs polling (PM QoS zero wake-up
	// latency) so FUSE round trips do not pay a halted vCPU's wake-up;
	// CPUsAwakeErr is why not.
	CPUsAwake    bool   `json:"cpus_awake"`
	CPUsAwakeErr string `json:"cpus_awake_err,omitempty"`
	// Ops splits Requests and ServiceNs by FUSE operation (Lookup, Read...):
	// where the layer's own cost goes.
	Ops map[string]OpStats `json:"ops,omitempty"`
	// Fetches are the reads that waited for a chunk (their own fetch or
	// another read's), in order: who waited (the caller's thread id, as the
	// host sees it), from when (CLOCK_MONOTONIC, the probes' clock) and how
	// long, so the engine can charge each wait to a process and a phase.
	Fetches []Fetch `json:"fetches,omitempty"`
}

// OpStats counts one FUSE operation's requests and their time in the server
// (for Read, the modelled fetch sleeps excluded).
type OpStats struct {
	Count     int64 `json:"count"`
	ServiceNs int64 `json:"service_ns"`
}

// Fetch is one read that waited for chunks.
type Fetch struct {
	TID    uint32 `json:"tid"`
	TGID   uint32 `json:"tgid"` // its process (0: unknown)
	MonoNs int64  `json:"mono_ns"`
	WaitNs int64  `json:"wait_ns"`
	Path   string `json:"path"`
	Chunks int    `json:"chunks"` // chunks this read fetched itself (0: it waited for another's)
}

// ChunksByFile maps each file's path to its fetched chunks.
func (s *Stats) ChunksByFile() map[string]int {
	m := map[string]int{}
	for _, f := range s.Files {
		m[f.Path] = f.Chunks
	}
	return m
}

// ledger remembers which chunks of which file have been fetched since the
// last reset, and charges first reads. It needs no FUSE: the server calls
// charge from its Read.
type ledger struct {
	mu      sync.Mutex
	model   Model
	files   map[string]*fileLedger
	fetches []Fetch
	// sleep is preciseSleep; tests replace it.
	sleep func(time.Duration)
}

type fileLedger struct {
	class  int
	chunks map[int64]chan struct{} // closed once fetched
	st     FileStats
	tiers  []int
}

func newLedger(m Model) *ledger {
	return &ledger{model: m, files: map[string]*fileLedger{}, sleep: preciseSleep}
}

// reset forgets every fetched chunk (a new cold start) and sets the seed.
func (l *ledger) reset(seed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.model.Seed = seed
	l.files = map[string]*fileLedger{}
	l.fetches = nil
}

// seed is the current seed of the draw.
func (l *ledger) seed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.model.Seed
}

// charge accounts one read of n bytes at off of the file at p. Each chunk it
// covers that nobody fetched yet is fetched now: its drawn latency is slept
// (in order, as one agent fetches one chunk after another). A chunk another
// read is fetching is waited for, not fetched twice. It returns the time
// slept for its own fetches and the time blocked in all (its own fetches and
// waiting for others'): the server's service time excludes the latter.
func (l *ledger) charge(p string, off, n int64) (slept, blocked time.Duration) {
	return l.chargeFor(0, p, off, n)
}

// chargeFor is charge for a read made by thread tid (0: unknown), logged in
// Stats.Fetches when it waited.
func (l *ledger) chargeFor(tid uint32, p string, off, n int64) (slept, blocked time.Duration) {
	cs := l.model.chunkSize()
	first, last := Chunks(off, n, cs)
	var mine []chan struct{}
	var others []chan struct{}
	var wait time.Duration
	l.mu.Lock()
	f := l.files[p]
	if f == nil {
		ci := l.model.ClassOf(p)
		f = &fileLedger{class: ci, chunks: map[int64]chan struct{}{}, tiers: make([]int, len(l.model.Tiers))}
		f.st.Path, f.st.Class = p, l.model.Classes[ci].Name
		l.files[p] = f
	}
	f.st.Requests++
	f.st.BytesRead += max(n, 0)
	exp := l.model.Expected(p)
	for c := first; c <= last; c++ {
		if ch, ok := f.chunks[c]; ok {
			others = append(others, ch)
			continue
		}
		ch := make(chan struct{})
		f.chunks[c] = ch
		mine = append(mine, ch)
		t, lat := l.model.Draw(p, c)
		f.tiers[t]++
		f.st.Chunks++
		f.st.WaitNs += int64(lat)
		f.st.ExpectedNs += int64(exp)
		wait += lat
	}
	l.mu.Unlock()
	if wait == 0 && len(others) == 0 {
		for _, ch := range mine {
			close(ch)
		}
		return 0, 0
	}
	t0 := time.Now()
	mono0 := monoNow()
	if wait > 0 {
		l.sleep(wait)
		over := time.Since(t0) - wait
		l.mu.Lock()
		f.st.OversleptNs += int64(over)
		l.mu.Unlock()
	}
	for _, ch := range mine {
		close(ch)
	}
	for _, ch := range others {
		<-ch
	}
	blocked = time.Since(t0)
	fe := Fetch{TID: tid, MonoNs: mono0, WaitNs: int64(blocked), Path: p, Chunks: len(mine)}
	if tid != 0 {
		// The reader is blocked in this read, so it is alive to ask.
		fe.TGID = tgidOf(tid)
	}
	l.mu.Lock()
	l.fetches = append(l.fetches, fe)
	l.mu.Unlock()
	return wait, blocked
}

// preciseSleep sleeps for d to within microseconds. time.Sleep does not:
// the Go runtime waits for timers in epoll_pwait, whose timeout is whole
// milliseconds, so a 1.1 ms sleep took 2 ms and a 4.4 ms one 5 ms. With
// tier latencies that are not whole milliseconds the modelled fetch wait of
// a Go cold start overran by 10 ms (about 40 %), which made the fit of the
// latency scale jump between 1.0 and 1.1. clock_nanosleep is an hrtimer; the
// thread's timer slack (50 µs by default) is set to 1 ns for the sleep.
func preciseSleep(d time.Duration) {
	if d <= 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err == nil {
		unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	}
	var now unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) != nil {
		time.Sleep(d)
		return
	}
	until := unix.NsecToTimespec(now.Nano() + int64(d))
	for {
		// TIMER_ABSTIME: a signal (Go's preemption uses SIGURG) restarts
		// the sleep towards the same deadline instead of sleeping d again.
		err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &until, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// monoNow is CLOCK_MONOTONIC in ns.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// stats snapshots the account since the last reset.
func (l *ledger) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Model: l.model.String(), Seed: l.model.Seed, Fetches: append([]Fetch(nil), l.fetches...)}
	for _, f := range l.files {
		fs := f.st
		fs.Tiers = map[string]int{}
		for i, k := range f.tiers {
			if k > 0 {
				fs.Tiers[l.model.Tiers[i].Name] = k
			}
		}
		s.Files = append(s.Files, fs)
		s.Chunks += fs.Chunks
		s.BytesRead += fs.BytesRead
		s.Reads += fs.Requests
		s.WaitNs += fs.WaitNs
		s.ExpectedNs += fs.ExpectedNs
		s.OversleptNs += fs.OversleptNs
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	return s
}

// tgidOf is the process of thread tid, from /proc/TID/status (0: unknown).
func tgidOf(tid uint32) uint32 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return uint32(n)
		}
	}
	return 0
}

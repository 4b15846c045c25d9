package lazyfs

import (
	"sort"
	"sync"
	"time"
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
	mu    sync.Mutex
	model Model
	files map[string]*fileLedger
	// sleep is time.Sleep; tests replace it.
	sleep func(time.Duration)
}

type fileLedger struct {
	class  int
	chunks map[int64]chan struct{} // closed once fetched
	st     FileStats
	tiers  []int
}

func newLedger(m Model) *ledger {
	return &ledger{model: m, files: map[string]*fileLedger{}, sleep: time.Sleep}
}

// reset forgets every fetched chunk (a new cold start) and sets the seed.
func (l *ledger) reset(seed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.model.Seed = seed
	l.files = map[string]*fileLedger{}
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
	return wait, time.Since(t0)
}

// stats snapshots the account since the last reset.
func (l *ledger) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Model: l.model.String(), Seed: l.model.Seed}
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

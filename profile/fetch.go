package profile

// Fetch is one read that waited for Lambda's lazy storage (the lambda
// storage model): who waited, from when (CLOCK_MONOTONIC), how long, and how
// many 512 KiB chunks it fetched itself (0: it waited for another read's).
type Fetch struct {
	TGID   uint32
	MonoNs int64
	WaitNs int64
	Path   string
	Chunks int
}

// ChargeFetches adds each fetch's wait and chunks to the phase of the
// process that waited (FetchWaitNs, FetchChunks): on Lambda a page fault in
// init that reads code pays a chunk fetch, so part of "init" is really load.
// It returns the wait that fell outside every process's phases (the
// platform's own reads, or before exec).
func ChargeFetches(r *Run, fetches []Fetch) (unattributed int64) {
	for _, f := range fetches {
		charged := false
		for i := range r.Processes {
			p := &r.Processes[i]
			if p.PID == 0 || uint32(p.PID) != f.TGID {
				continue
			}
			for _, s := range Phases(*p) {
				if f.MonoNs >= s.StartNs && f.MonoNs < s.EndNs {
					if p.FetchWaitNs == nil {
						p.FetchWaitNs, p.FetchChunks = map[string]int64{}, map[string]int64{}
					}
					p.FetchWaitNs[s.Name] += f.WaitNs
					p.FetchChunks[s.Name] += int64(f.Chunks)
					charged = true
					break
				}
			}
		}
		if !charged {
			unattributed += f.WaitNs
		}
	}
	return unattributed
}

// FetchWaitAfter is the storage wait of p's phases that start at or after
// ns (e.g. the entry checkpoint): lazily loaded code paid for past load.
func FetchWaitAfter(p Process, ns int64) (wait, chunks int64) {
	for _, s := range Phases(p) {
		if s.StartNs >= ns {
			wait += p.FetchWaitNs[s.Name]
			chunks += p.FetchChunks[s.Name]
		}
	}
	return wait, chunks
}

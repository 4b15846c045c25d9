package profile

import "testing"

func TestChargeFetches(t *testing.T) {
	p := Process{Name: "ext", Role: RoleExtension, PID: 42, Checkpoints: []Checkpoint{
		{Name: CkExec, MonoNs: 100}, {Name: CkEntry, MonoNs: 200}, {Name: CkNext, MonoNs: 500},
	}}
	r := Run{Processes: []Process{p, {Name: "runtime", Role: RoleRuntime, PID: 7}}}
	fetches := []Fetch{
		{TGID: 42, MonoNs: 150, WaitNs: 30, Chunks: 2}, // exec → entry: load
		{TGID: 42, MonoNs: 300, WaitNs: 50, Chunks: 1}, // entry → next: lazily loaded init code
		{TGID: 42, MonoNs: 310, WaitNs: 5},             // waited for another read's fetch
		{TGID: 42, MonoNs: 900, WaitNs: 70, Chunks: 1}, // after /next: no phase
		{TGID: 9, MonoNs: 300, WaitNs: 11},             // not a profiled process
	}
	if un := ChargeFetches(&r, fetches); un != 81 {
		t.Errorf("unattributed %d, want 81 (70 after /next + 11 of pid 9)", un)
	}
	got := r.Processes[0]
	var total int64
	for _, w := range got.FetchWaitNs {
		total += w
	}
	if total != 85 {
		t.Errorf("charged %d ns in all (%v), want 85", total, got.FetchWaitNs)
	}
	w, c := FetchWaitAfter(got, 200)
	if w != 55 || c != 1 {
		t.Errorf("after entry: wait %d, chunks %d; want 55, 1", w, c)
	}
	if r.Processes[1].FetchWaitNs != nil {
		t.Error("the runtime was charged a fetch it did not make")
	}
}

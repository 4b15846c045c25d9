package profile

import (
	"strings"
	"testing"
)

// TestVerdictRegisterGate: Lambda starts the runtime only once every extension
// has registered, so an extension that registers last gates Init Duration
// even when the runtime ends init; one that registers early does not.
func TestVerdictRegisterGate(t *testing.T) {
	const ms = int64(1e6)
	mk := func(i int, regA, regB int64) Run {
		ck := func(name string, t int64) Checkpoint { return Checkpoint{Name: name, MonoNs: t, Source: SourceEBPF} }
		ext := func(name string, reg int64) Process {
			return Process{Name: name, Role: RoleExtension, Checkpoints: []Checkpoint{
				ck(CkSpawn, 0), ck(CkExec, ms/10), ck(CkEntry, 2*ms), ck(CkMain, 2*ms+ms/10),
				ck(CkRegisterSent, reg), ck(CkRegisterOK, reg+ms/5), ck(CkNext, reg+ms)}}
		}
		last := max(regA, regB)
		return Run{Index: i, InitStartNs: 0, InitEndNs: last + 40*ms, EndedBy: "runtime", Processes: []Process{
			ext("a", regA), ext("b", regB),
			{Name: "runtime", Role: RoleRuntime, Checkpoints: []Checkpoint{ck(CkSpawn, last+ms/20), ck(CkExec, last+ms/10), ck(CkNext, last+40*ms)}},
		}}
	}
	var runs []Run
	for i := 0; i < 5; i++ {
		runs = append(runs, mk(i, 10*ms+int64(i)*ms/10, 4*ms))
	}
	rep := Aggregate(runs)
	verdicts := map[string]string{}
	for _, p := range rep.Processes {
		verdicts[p.Name] = p.Verdict
	}
	if v := verdicts["a"]; !strings.Contains(v, "a registered last in 5 of 5 runs") || !strings.Contains(v, "is on the init critical path") {
		t.Errorf("a registers last and gates the runtime; verdict: %s", v)
	}
	if v := verdicts["b"]; !strings.Contains(v, "b is not on the init critical path") {
		t.Errorf("b registers first and does not gate; verdict: %s", v)
	}
}

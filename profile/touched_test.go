package profile

import (
	"bytes"
	"strings"
	"testing"
)

func touchedRun(i int, textBytes, tokio int64) Run {
	exe := TouchedFile{Path: "/opt/extensions/datadog-agent", Size: 15 << 20, Exe: true, OwnerKind: "crate",
		Pages: TouchedPages{Total: (textBytes + 1<<20) / PageSize, Readahead: (textBytes + 1<<20) / PageSize}, Chunks: 40 + int64(i), FaultedChunks: 30,
		Sections: map[string]int64{".text": textBytes, ".rodata": 1 << 20},
		Owners:   map[string]int64{"tokio": tokio, "rustls": 1 << 19}}
	return Run{Index: i, Processes: []Process{{Name: "datadog-agent", Role: RoleExtension, PID: 10,
		Checkpoints: []Checkpoint{{Name: CkExec, MonoNs: 0}, {Name: CkExecDone, MonoNs: 10}, {Name: CkNext, MonoNs: 100}},
		Touched:     map[string]*Touched{"exec": {Pages: exe.Pages, Chunks: exe.Chunks, FaultedChunks: 30}},
		TouchedInit: &TouchedInit{Pages: exe.Pages, Chunks: exe.Chunks, FaultedChunks: 30, Files: []TouchedFile{exe}}}}}
}

func TestTouchedReport(t *testing.T) {
	runs := []Run{touchedRun(0, 2<<20, 1<<20), touchedRun(1, 3<<20, 1<<20), touchedRun(2, 4<<20, 0)}
	rep := Aggregate(runs)
	tr := rep.Processes[0].Touched
	if tr == nil || tr.Runs != 3 {
		t.Fatalf("touched report %+v", tr)
	}
	if tr.ExeChunks.Median != 41 || tr.ExeBytes.Median != 4<<20 {
		t.Errorf("exe chunks %v bytes %v", tr.ExeChunks.Median, tr.ExeBytes.Median)
	}
	// .text is 2/3, 3/4, 4/5 of the runs' bytes: median 3/4. tokio is
	// missing from one run, which counts as 0 there: median 1/4 (of 4 MiB).
	if len(tr.Sections) != 2 || tr.Sections[0].Name != ".text" || tr.Sections[0].Share != 0.75 {
		t.Errorf("sections %+v", tr.Sections)
	}
	if tr.Owners[0].Name != "tokio" || tr.Owners[0].Share != 0.25 {
		t.Errorf("owners %+v", tr.Owners)
	}
	line := tr.TouchedLine()
	for _, want := range []string{"init touched 4.0 MiB of 15.0 MiB of datadog-agent: 41 chunks of 512 KiB", ".text 75 %", "top crates: tokio 25 %"} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q: %s", want, line)
		}
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), line) || !strings.Contains(b.String(), "touched in") {
		t.Errorf("report.txt lacks the touched line or table:\n%s", b.String())
	}
	if ph := rep.Processes[0].Phases[0]; ph.Name != "exec" || ph.TouchedChunks.Median != 41 {
		t.Errorf("exec phase %+v", ph)
	}
}

package outputs_test

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/pprofout"
	"github.com/initprof/initprof/profile/sample/outputs"
	"github.com/initprof/initprof/profile/sample/sampletest"
	"github.com/initprof/initprof/profile/trace"
)

// TestWriteAllOutputs runs the whole offline pipeline on a real recording of
// cext: label by the run's process and phases, then write every output, and
// read each back.
func TestWriteAllOutputs(t *testing.T) {
	bin := testutil.Sample(t, "cext")
	rec := sampletest.Record(t, "cext", []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1"}, bin)
	proc := rec.Process
	run := profile.Run{Index: 3, Build: "cext-now", Processes: []profile.Process{proc}}
	stacks := rec.Stacks
	for i := range stacks { // relabel from the Run, as the lead's wiring will
		stacks[i].Process, stacks[i].Phase, stacks[i].Run, stacks[i].Build = "", "", "", ""
	}
	outputs.Label(stacks, run, sampletest.Hz)
	dir := t.TempDir()
	files, err := outputs.Write(dir, outputs.Input{
		Stacks:    stacks,
		Processes: []trace.Process{{PID: proc.PID, Name: proc.Name, Phases: rec.Phases}},
		Meta:      pprofout.Meta{PeriodNs: 1e9 / sampletest.Hz},
		Title:     "cext",
	})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	for _, want := range []string{"cpu.pb.gz", "stacks.folded", "flame.svg", "trace.json"} {
		if !names[want] {
			t.Errorf("%s not written (got %v)", want, files)
		}
	}
	for _, sp := range rec.Phases {
		if !names["flame-"+sp.Name+".svg"] {
			t.Errorf("flame-%s.svg not written (got %v)", sp.Name, files)
		}
	}
	p, err := pprofout.Read(filepath.Join(dir, "cpu.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if got := pprofout.LabelValues(p, "build"); len(got) != 1 || got[0] != "cext-now" {
		t.Errorf("build labels %v", got)
	}
	if got := pprofout.LabelValues(p, "run"); len(got) != 1 || got[0] != "3" {
		t.Errorf("run labels %v", got)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "flame.svg"))
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || !strings.Contains(string(svg), "cext_hot_spin") {
		t.Errorf("flame.svg: %v, has cext_hot_spin: %v", err, strings.Contains(string(svg), "cext_hot_spin"))
	}
	var tr struct{ TraceEvents []map[string]any }
	data, _ := os.ReadFile(filepath.Join(dir, "trace.json"))
	if err := json.Unmarshal(data, &tr); err != nil || len(tr.TraceEvents) < len(stacks) {
		t.Errorf("trace.json: %v, %d events for %d samples", err, len(tr.TraceEvents), len(stacks))
	}
	folded, _ := os.ReadFile(filepath.Join(dir, "stacks.folded"))
	if !strings.Contains(string(folded), "hot_ctor;cext_hot_spin ") {
		t.Error("stacks.folded lacks hot_ctor;cext_hot_spin")
	}
}

func TestWriteBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := outputs.Write(filepath.Join(f, "sub"), outputs.Input{}); err == nil || !strings.Contains(err.Error(), "output directory") {
		t.Errorf("Write under a file: %v", err)
	}
}

package trace_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/sampletest"
	"github.com/initprof/initprof/profile/trace"
)

// TestTraceOfRealRecording writes trace.json for a real sampled run plus a
// second process with phases and an API call, and reads it back as generic
// JSON: one named track per process, phases as complete slices, the API call
// as a slice, and one instant per sample named after its leaf frame.
func TestTraceOfRealRecording(t *testing.T) {
	rec := sampletest.Record(t, "spin", nil, sampletest.BuildC(t))
	spinPID := int(rec.Stacks[0].PID)
	rt := trace.Process{PID: 4242, Name: "runtime", Phases: []profile.Span{
		{Name: "exec", From: "exec", To: "exec_done", StartNs: rec.Phases[0].StartNs, EndNs: rec.Phases[0].StartNs + 1e6},
	}}
	tr := trace.Trace{
		Processes: []trace.Process{{PID: spinPID, Name: "spin", Phases: rec.Phases}, rt},
		Slices: []trace.Slice{{PID: spinPID, Name: "POST /extension/register", Cat: "api",
			StartNs: rec.Phases[0].StartNs + 2e6, EndNs: rec.Phases[0].StartNs + 3e6, Args: map[string]any{"status": 200}}},
		Samples: rec.Stacks,
	}
	var b bytes.Buffer
	if err := trace.Write(&b, tr); err != nil {
		t.Fatal(err)
	}
	var f struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(b.Bytes(), &f); err != nil {
		t.Fatalf("trace.json does not parse: %v", err)
	}
	names := map[float64]string{}
	phases, slices, instants := 0, 0, 0
	leaves := map[string]int{}
	for _, e := range f.TraceEvents {
		pid, _ := e["pid"].(float64)
		switch e["ph"] {
		case "M":
			if e["name"] == "process_name" {
				args := e["args"].(map[string]any)
				if prev, dup := names[pid]; dup {
					t.Errorf("pid %v named twice (%s, %v)", pid, prev, args["name"])
				}
				names[pid] = args["name"].(string)
			}
		case "X":
			if e["dur"].(float64) < 0 {
				t.Errorf("negative duration: %v", e)
			}
			if e["cat"] == "phase" {
				phases++
			} else {
				slices++
			}
		case "i":
			instants++
			leaves[e["name"].(string)]++
		}
	}
	if len(names) != 2 || names[float64(spinPID)] == "" || names[4242] != "runtime (pid 4242)" {
		t.Errorf("process tracks %v, want one per process (spin and runtime)", names)
	}
	if phases != len(rec.Phases)+1 || slices != 1 {
		t.Errorf("%d phase slices and %d API slices, want %d and 1", phases, slices, len(rec.Phases)+1)
	}
	if instants != len(rec.Stacks) {
		t.Errorf("%d sample instants, want %d", instants, len(rec.Stacks))
	}
	if leaves["spin_busy"] == 0 {
		t.Errorf("no sample instant named spin_busy: %v", leaves)
	}
}

func TestTraceUnit(t *testing.T) {
	tr := trace.Trace{OriginNs: 1000, Samples: []sample.Stack{{PID: 1, TID: 2, MonoNs: 3000, Frames: []sample.Frame{
		{Func: "irq", Kernel: true}, {Func: "leaf"}, {Func: "main"},
	}}}}
	f := trace.Build(tr)
	var inst *trace.Event
	for i := range f.TraceEvents {
		if f.TraceEvents[i].Ph == "i" {
			inst = &f.TraceEvents[i]
		}
	}
	if inst == nil || inst.Name != "leaf" || inst.Ts != 2 || inst.TID != 2 {
		t.Fatalf("instant %+v, want leaf at 2 µs on tid 2", inst)
	}
	if inst.Args["stack"] != "irq <- leaf <- main" {
		t.Errorf("stack arg %v", inst.Args["stack"])
	}
}

package coldstart_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/profile"
)

// TestRealGoRuntime cold-starts lambda-perf's Go function (aws-lambda-go,
// built as lambda-perf builds it: make fidelity) as the runtime, alone and
// with the Go sample extension, through init, two invokes and shutdown.
func TestRealGoRuntime(t *testing.T) {
	if out, err := exec.Command("make", "-C", "..", "fidelity").CombinedOutput(); err != nil {
		t.Skipf("SKIP: building the aws-lambda-go function failed (make fidelity needs the Go module proxy): %v\n%s", err, out)
	}
	bootstrap, _ := filepath.Abs("../build/fidelity/go-bootstrap")
	ext, _ := filepath.Abs("../build/samples/goext")
	tests := []struct {
		name string
		exts []container.Extension
	}{
		{"function alone", nil},
		{"with goext", []container.Extension{{Name: "goext", Path: ext}}},
	}
	eng, err := coldstart.Open(coldstart.Config{MemoryMB: 128, Runtime: bootstrap, Invokes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := eng.NewSeries(tc.name, tc.exts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r, err := s.Run(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.InitStatus != "success" || r.EndedBy == "" {
				t.Fatalf("init %q ended by %q, want success", r.InitStatus, r.EndedBy)
			}
			rt := process(r, "runtime")
			if rt == nil {
				t.Fatal("no runtime process in the run")
			}
			for _, ck := range []string{profile.CkExec, profile.CkNext} {
				if _, ok := rt.Checkpoint(ck); !ok {
					t.Errorf("the runtime has no %s checkpoint", ck)
				}
			}
			if tc.exts == nil {
				// The bootstrap is the binary under test: its load is probed.
				if _, ok := rt.Checkpoint(profile.CkEntry); !ok {
					t.Error("the runtime has no entry checkpoint: the bootstrap was not probed")
				}
			}
			reports, shutdown := invokesAndShutdown(t, r)
			if reports != 2 {
				t.Errorf("%d successful invoke reports, want 2", reports)
			}
			if !shutdown {
				t.Error("no shutdown in the platform's timeline")
			}
		})
	}
}

func process(r profile.Run, name string) *profile.Process {
	for i := range r.Processes {
		if r.Processes[i].Name == name {
			return &r.Processes[i]
		}
	}
	return nil
}

// invokesAndShutdown counts the platform's successful invoke reports and
// says whether it reached shutdown.
func invokesAndShutdown(t *testing.T, r profile.Run) (int, bool) {
	b, err := json.Marshal(r.Platform)
	if err != nil {
		t.Fatal(err)
	}
	var tl []struct {
		Kind, Event, State string
	}
	if err := json.Unmarshal(b, &tl); err != nil {
		t.Fatalf("the run's platform timeline: %v", err)
	}
	n, shut := 0, false
	for _, e := range tl {
		if e.Kind == "invoke" && e.Event == "report" && e.State == "success" {
			n++
		}
		if e.Kind == "shutdown" {
			shut = true
		}
	}
	return n, shut
}

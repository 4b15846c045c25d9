package coldstart_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/profile"
)

// One cold start of the Go sample extension in the Lambda-like OCI sandbox,
// as a user's own test would make it, to fail when the extension's
// time-to-register regresses. It needs root and the sample (make samples).
func Example() {
	ext, _ := filepath.Abs("../build/samples/goext")
	eng, err := coldstart.Open(coldstart.Config{MemoryMB: 1024})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	s, err := eng.NewSeries("goext", []container.Extension{{Name: "goext", Path: ext}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	r, err := s.Run(context.Background(), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range r.Processes {
		if p.Name != "goext" {
			continue
		}
		reg, ok := p.Checkpoint(profile.CkRegisterOK)
		next, ok2 := p.Checkpoint(profile.CkNext)
		fmt.Printf("init %s; goext registered %v, then called /next %v\n", r.InitStatus, ok, ok2 && next > reg)
		// A user's test would hold reg (ns from the run's initStart), or
		// its median over several runs, against a budget here.
	}
	// Output: init success; goext registered true, then called /next true
}

package coldstart

import (
	"context"
	"errors"
	"fmt"

	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
)

// SampleOptions configure the sampling runs.
type SampleOptions struct {
	Hz     int  // CPU samples per second per thread on CPU
	OffCPU bool // also record each time a thread leaves the CPU, with its stacks
	Runs   int  // sampling runs
}

// SampledRun is one sampling run: its assembled Run (phases from its own
// checkpoints) and what the sampler captured.
type SampledRun struct {
	Run     profile.Run
	Capture *probes.Capture
}

// Sample makes the sampling runs of s: the same sandbox and probes as the
// timing runs (so each sample gets the phase it fell in, from that run's own
// checkpoints), plus the CPU sampler on the sandbox's first process. They are
// kept apart from the timing runs, whose figures the sampler would inflate.
// onRun, when set, is called after each.
func (s *Series) Sample(ctx context.Context, o SampleOptions, onRun func(profile.Run)) ([]SampledRun, error) {
	smp, err := probes.NewSampler(probes.SamplerOptions{Hz: o.Hz, OffCPU: o.OffCPU})
	if err != nil {
		if errors.Is(err, probes.ErrPermission) {
			return nil, kindErr(Privileges, err)
		}
		return nil, err
	}
	defer smp.Close()
	var out []SampledRun
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		sr := &sampling{s: smp}
		r, _, err := s.oneRun(ctx, i, sr)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return out, fmt.Errorf("sampling %w", err)
		}
		r.Build = s.name
		if onRun != nil {
			onRun(r)
		}
		out = append(out, SampledRun{Run: r, Capture: sr.cap})
	}
	return out, nil
}

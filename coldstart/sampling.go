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

// DefaultSampleHz is the sampling rate of --flamegraph, from the C sample's
// exec→/next in the OCI sandbox (10 timing vs 10 sampling runs, warm cache,
// medians, two series each): 1 kHz +9 % / +4 %, 2 kHz −8 % / +20 %, 5 kHz
// +34 % / +34 %, 20 kHz +199 % / +302 % (each sample copies up to 16 KiB of
// stack, and the sandbox's CPU quota stretches the cost). 2 kHz keeps the cost
// near the run-to-run noise while giving ~20 samples per run of a 10 ms
// extension start; the sampling runs add up the rest (--sample-runs).
const DefaultSampleHz = 2000

// Validate checks o for a series of timingRuns timing runs and fills in
// the default number of sampling runs, min(timingRuns, 5). Errors are of
// kind BadInput and name the flags.
func (o *SampleOptions) Validate(timingRuns int) error {
	if o.Hz < 1 || o.Hz > 100000 {
		return kindErr(BadInput, fmt.Errorf("--sample-hz %d: use 1 to 100000 (default %d)", o.Hz, DefaultSampleHz))
	}
	if o.Runs < 0 {
		return kindErr(BadInput, fmt.Errorf("--sample-runs %d: must be 0 (default) or more", o.Runs))
	}
	if o.Runs == 0 {
		o.Runs = min(timingRuns, 5)
	}
	return nil
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

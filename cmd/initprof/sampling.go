package main

import (
	"context"
	"errors"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/coldstart"
)

// sampleOpts are the flags of the sampling runs.
type sampleOpts struct {
	flamegraph bool
	coldstart.SampleOptions
}

func sampleFlags(fs *pflag.FlagSet, o *sampleOpts) {
	fs.BoolVar(&o.flamegraph, "flamegraph", false, "after the timing runs, make sampling runs and write cpu.pb.gz, flame.svg, flame-<phase>.svg, stacks.folded and trace.json")
	fs.IntVar(&o.Hz, "sample-hz", coldstart.DefaultSampleHz, "CPU sampling rate of the sampling runs (per thread on CPU)")
	fs.IntVar(&o.Runs, "sample-runs", 0, "sampling runs, separate from the timing runs (default min(--runs, 5))")
	fs.BoolVar(&o.OffCPU, "offcpu", false, "in the sampling runs (implies --flamegraph), also record each time a thread leaves the CPU, with its stacks: offcpu.pb.gz, offcpu.folded and flame-offcpu.svg, widths in time blocked or runnable")
}

// validate applies --offcpu's implied --flamegraph, then checks the
// sampling options (coldstart.SampleOptions.Validate) when there are
// sampling runs.
func (o *sampleOpts) validate(runs int) error {
	if o.OffCPU {
		o.flamegraph = true
	}
	if !o.flamegraph {
		return nil
	}
	return engineErr(o.Validate(runs))
}

// flamegraphs makes the sampling runs of s (coldstart.Series.Sample) with a
// progress line per run, and writes their outputs into dir
// (Series.WriteSampleOutputs), also when only some of the runs were made.
func flamegraphs(ctx context.Context, s *coldstart.Series, so *sampleOpts, dir string) error {
	bar := newProgress(so.Runs)
	runs, err := s.Sample(ctx, so.SampleOptions, bar.step)
	bar.done()
	if err = engineErr(err); err == nil || len(runs) > 0 {
		err = errors.Join(err, s.WriteSampleOutputs(runs, so.SampleOptions, dir))
	}
	return err
}

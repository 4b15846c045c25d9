package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/profile/sample/outputs"
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

// sampleSeries makes the sampling runs of s (coldstart.Series.Sample) with
// a progress line per run.
func sampleSeries(ctx context.Context, s *coldstart.Series, so *sampleOpts) ([]coldstart.SampledRun, error) {
	bar := newProgress(so.Runs)
	defer bar.done()
	runs, err := s.Sample(ctx, so.SampleOptions, bar.step)
	return runs, engineErr(err)
}

// writeFlamegraphs writes every sampling output of the sampling runs into
// dir (coldstart.Series.SampleProfile makes their input).
func writeFlamegraphs(env *runEnv, s *coldstart.Series, runs []coldstart.SampledRun, dir string) error {
	in, lines, err := s.SampleProfile(runs, env.o.sample.Hz, env.o.sample.OffCPU)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	paths, err := outputs.Write(dir, in)
	if err != nil {
		return fmt.Errorf("writing the flamegraphs: %w", err)
	}
	for _, l := range lines {
		progressf("%s: %s", s.Name(), l)
	}
	progressf("wrote %s", strings.Join(paths, ", "))
	return nil
}

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

// defaultSampleHz is the sampling rate of --flamegraph, from the C sample's
// exec→/next in the OCI sandbox (10 timing vs 10 sampling runs, warm cache,
// medians, two series each): 1 kHz +9 % / +4 %, 2 kHz −8 % / +20 %, 5 kHz
// +34 % / +34 %, 20 kHz +199 % / +302 % (each sample copies up to 16 KiB of
// stack, and the sandbox's CPU quota stretches the cost). 2 kHz keeps the cost
// near the run-to-run noise while giving ~20 samples per run of a 10 ms
// extension start; the sampling runs add up the rest (--sample-runs).
const defaultSampleHz = 2000

// sampleOpts are the flags of the sampling runs.
type sampleOpts struct {
	flamegraph bool
	offCPU     bool
	hz         int
	runs       int
}

func sampleFlags(fs *pflag.FlagSet, o *sampleOpts) {
	fs.BoolVar(&o.flamegraph, "flamegraph", false, "after the timing runs, make sampling runs and write cpu.pb.gz, flame.svg, flame-<phase>.svg, stacks.folded and trace.json")
	fs.IntVar(&o.hz, "sample-hz", defaultSampleHz, "CPU sampling rate of the sampling runs (per thread on CPU)")
	fs.IntVar(&o.runs, "sample-runs", 0, "sampling runs, separate from the timing runs (default min(--runs, 5))")
	fs.BoolVar(&o.offCPU, "offcpu", false, "in the sampling runs (implies --flamegraph), also record each time a thread leaves the CPU, with its stacks: offcpu.pb.gz, offcpu.folded and flame-offcpu.svg, widths in time blocked or runnable")
}

func (o *sampleOpts) validate(runs int) error {
	if o.offCPU {
		o.flamegraph = true
	}
	if !o.flamegraph {
		return nil
	}
	if o.hz < 1 || o.hz > 100000 {
		return badInput("--sample-hz %d: use 1 to 100000 (default %d)", o.hz, defaultSampleHz)
	}
	if o.runs < 0 {
		return badInput("--sample-runs %d: must be 0 (default) or more", o.runs)
	}
	if o.runs == 0 {
		o.runs = min(runs, 5)
	}
	return nil
}

// sampleSeries makes the sampling runs of s (coldstart.Series.Sample) with
// a progress line per run.
func sampleSeries(ctx context.Context, s *coldstart.Series, so *sampleOpts) ([]coldstart.SampledRun, error) {
	bar := newProgress(so.runs)
	defer bar.done()
	runs, err := s.Sample(ctx, coldstart.SampleOptions{Hz: so.hz, OffCPU: so.offCPU, Runs: so.runs}, bar.step)
	return runs, engineErr(err)
}

// writeFlamegraphs writes every sampling output of the sampling runs into
// dir (coldstart.Series.SampleProfile makes their input).
func writeFlamegraphs(env *runEnv, s *coldstart.Series, runs []coldstart.SampledRun, dir string) error {
	in, lines, err := s.SampleProfile(runs, env.o.sample.hz, env.o.sample.offCPU)
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

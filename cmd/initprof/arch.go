package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/profile/htmlreport"
)

// runInVM profiles arm64 extensions on an x86 host: it boots the arm64
// microVM with the extensions, their arm64 loader and libraries, and the
// arm64 initprof as PID 1, runs `initprof run --sandbox process` there, and
// writes what comes back into --out. Timings under TCG are not Graviton's; the
// report says so, but checkpoints, phases, symbols and stack shapes are real
// arm64.
func runInVM(o *runOpts, args []string) error {
	if err := o.validate(args); err != nil {
		return err
	}
	items := make([]coldstart.VMItem, len(args))
	for i, a := range args {
		items[i] = coldstart.VMItem{Path: a}
	}
	return inVM(o, "run", items)
}

// compareInVM is compare's counterpart of runInVM: the builds are compared
// interleaved inside one guest, so emulation slows them all alike.
func compareInVM(o *runOpts, bs []coldstart.Build) error {
	if err := o.validate([]string{"-"}); err != nil {
		return err
	}
	items := make([]coldstart.VMItem, len(bs))
	for i, b := range bs {
		items[i] = coldstart.VMItem{Label: b.Name, Path: b.Path}
	}
	// Every build runs under one name, as compare does on the host.
	o.inv.Name = coldstart.ExtensionName(bs, o.inv.Name)
	if err := inVM(o, "compare", items); err != nil || o.ci == nil {
		return err
	}
	// The guest printed the --format; --export-json and --fail-if are
	// the host's, from what the guest wrote.
	in, err := htmlreport.FromDir(o.out)
	if err != nil {
		return err
	}
	return ciErr(o.ci.Finish(in.Comparison, in.BuildRuns(), os.Stdout, func(m string) { progressf("%s", m) }))
}

// inVM runs `initprof CMD` in the arm64 microVM over items (the engine's
// coldstart.RunInVM) and brings its output directory back to --out.
func inVM(o *runOpts, cmd string, items []coldstart.VMItem) error {
	if err := o.sample.validate(o.inv.Runs); err != nil {
		return err
	}
	if o.Runtime != "sim" {
		return badInput("--runtime %s: the microVM runs the simulated runtime only", o.Runtime)
	}
	out, err := outDir(o.out, o.force, cmd+"-arm64")
	if err != nil {
		return err
	}
	o.out = out
	cfg, err := o.engineConfig()
	if err != nil {
		return err
	}
	g := coldstart.GuestCommand{Cmd: cmd, Runs: o.inv.Runs}
	if cmd == "compare" {
		g.Seed = o.seed
		if o.ci != nil {
			g.Format = o.ci.Format
		}
	}
	if o.sample.flamegraph {
		g.Sample = &o.sample.SampleOptions
	}
	job := coldstart.NewVMJob(cfg, g, items)
	job.Name, job.OCI = o.inv.Name, o.sandboxSet && o.Sandbox == "oci"
	job.Storage = o.inv.VMStorage(o.Storage)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := coldstart.RunInVMTo(ctx, job, out, os.Stdout)
	if res != nil {
		progressf("microVM: kernel %s (%s), boot %.1f s, run %.1f s, total %.1f s; files in %s",
			res.Kernel, res.Machine, res.Boot.Seconds(), res.Run.Seconds(), res.Total.Seconds(), out)
	}
	return engineErr(err)
}

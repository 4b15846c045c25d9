package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/outdir"
)

func init() {
	register(&command{
		name:    "orderfile",
		summary: "write a linker ordering file from what cold starts touch first",
		usage:   "[run flags] -o FILE [--format lld|gnu|list] EXTENSION",
		long: `Runs N cold starts of the extension (default 5, with every run flag) and
writes its functions and data objects in the order init (exec → /next) first
touched them, merged over the runs (median first touch; kept when touched in
most runs). Relinked in that order, the code and data init needs share 4 KiB
pages and 512 KiB chunks, so a cold start reads fewer of them: on Lambda,
fewer chunks fetched from its lazy storage. Measure the effect with
'initprof compare prod=OLD ordered=NEW' (pages and chunks touched per phase).

Formats: lld (--symbol-ordering-file: one symbol a line, as the linker names
it), gnu (gold's --section-ordering-file: .text.NAME patterns, which need
-ffunction-sections input), list (annotated, demangled, for people). Only
symbols the binary defines are written. First touches are per 4 KiB page the
process faulted on: symbols of one page keep their address order.

How to relink:
  C/C++: -ffunction-sections -fdata-sections -fuse-ld=lld -Wl,--symbol-ordering-file=FILE
  Rust:  -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--symbol-ordering-file=FILE
Go binaries cannot be reordered (the Go linker takes no ordering file).
One profile misses functions that ran on pages fault-around mapped without
a fault: profile the relinked build (with symbols) with --extend PREVIOUS,
and relink again; each round adds what the last one missed.
A stripped binary has no symbols: profile it with --symbols naming an
unstripped build of the same code (Rust: the profile with -C strip=none), or
profile that build itself.

Examples:
  initprof orderfile -o order.txt ./build/cext
  initprof orderfile -n 10 --name datadog-agent -o order.txt ./target/release/ext-syms
  initprof orderfile --symbols ./ext-unstripped -o order.txt ./ext
  initprof orderfile --format list -o order.list ./ext       # read what init touches
  initprof orderfile --extend order1.txt -o order2.txt ./ext-relinked-syms   # round 2`,
		setup: setupOrderfile,
	})
}

func setupOrderfile(fs *pflag.FlagSet) func([]string) error {
	o := &runOpts{}
	runFlags(fs, o, 5)
	fs.StringVar(&o.inv.Name, "name", "", "the extension's name in /opt/extensions (default: the file name)")
	var file, format, symbols, extend string
	var minRuns int
	fs.StringVarP(&file, "output", "o", "", "the ordering file to write (required)")
	fs.StringVar(&format, "format", "lld", "lld (--symbol-ordering-file), gnu (gold --section-ordering-file) or list (annotated)")
	fs.StringVar(&symbols, "symbols", "", "take symbols from this unstripped build of the same code (for a stripped extension)")
	fs.IntVar(&minRuns, "min-runs", 0, "keep symbols touched in at least this many runs (default: more than half)")
	fs.StringVar(&extend, "extend", "", "a previous orderfile (lld format) of this code: its symbols first, then the ones this profile adds (profile the build relinked with it)")
	return func(args []string) error {
		o.sandboxSet = fs.Changed("sandbox")
		return runOrderfile(o, args, file, format, symbols, extend, minRuns)
	}
}

func runOrderfile(o *runOpts, args []string, file, format, symbols, extend string, minRuns int) error {
	f, err := coldstart.OrderArgs(args, file, format, minRuns, o.inv.Runs)
	if err != nil {
		return engineErr(err)
	}
	if err := o.validate(args); err != nil {
		return err
	}
	plan, err := coldstart.PlanOrder(args[0], coldstart.OrderOptions{Format: f, Output: file, Symbols: symbols, Extend: extend, MinRuns: minRuns})
	if err != nil {
		return engineErr(err)
	}
	if plan.Warn != "" {
		progressf("%s", plan.Warn)
	}
	exts, err := coldstart.Extensions(args, o.inv.Name, o.Rootfs)
	if err != nil {
		return engineErr(err)
	}
	env, err := prepare(o, "orderfile")
	if err != nil {
		return err
	}
	defer env.close()
	ctx := env.ctx
	s, err := env.eng.NewSeries(args[0], exts)
	if err != nil {
		return engineErr(err)
	}
	defer s.Close()
	bar := newProgress(o.inv.Runs)
	err = s.RunN(ctx, o.inv.Runs, bar.step)
	bar.done()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return withCode(exitInterrupted, errors.New("interrupted: no ordering file written"))
	}
	if s.InitFailed() {
		return withCode(exitInitFailed, fmt.Errorf("init failed in some runs (status: %s): an order from a failing init is not init's; no ordering file written", profile.InitStatuses(s.Runs())))
	}
	res, data, err := plan.Make(s, exts[0].Name)
	if err != nil {
		return engineErr(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return badInput("-o %s: %v", file, err)
	}
	rep := s.Report()
	if err := outdir.WriteFiles(env.out, map[string]func(io.Writer) error{"report.txt": rep.WriteText, "results.json": rep.WriteJSON}); err != nil {
		return err
	}
	fmt.Printf("%s: %s\n", file, res.Summary())
	if plan.How != "" {
		fmt.Printf("to apply it: %s\n", plan.How)
	}
	progressf("the runs' report is %s", filepath.Join(env.out, "report.txt"))
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
	"github.com/initprof/initprof/profile/outdir"
	"github.com/initprof/initprof/profile/sample/outputs"
)

func init() {
	register(&command{
		name:    "compare",
		summary: "compare builds (linker/compiler flags) side by side, with statistics",
		usage:   "[flags] NAME=PATH NAME=PATH...",
		long: `Runs two or more builds of one extension interleaved in the same sandbox
settings, -n cold starts each, so machine drift hits every build alike. Each
round runs every build once, in a fresh random order (--seed repeats an order),
so no build always follows the same neighbour: a fixed a, b, c order gives b a
systematic position effect that the statistics would call a real shift.
For every phase and for Init Duration it reports each build's median, p10 and
p90; the shift against the first build as a Hodges–Lehmann estimate with a 95 %
confidence interval; a Mann–Whitney U p-value; and a benchstat-style mark (~ for
no significant change). The builds' load-cost facts (size, relocations by type,
BIND_NOW, RELR, PIE, NEEDED) stand beside them, and a verdict per pair says
which phase moved and whether it reached Init Duration.

A build that cannot start (say a DT_RELR build on a glibc older than 2.36) fails
the comparison only for itself: the report says why and compares the others.

For PRs and CI: --format markdown prints a GitHub-flavoured table (Init
Duration first, the phases collapsed below it, then the verdict lines) that a
PR comment can hold as is; compare.md has it whatever --format says.
--export-json FILE writes the JSON that hyperfine --export-json writes,
{"results":[{"command","mean","stddev","median","user","system","min","max",
"times","exit_codes"}]}, so tools made for hyperfine read the builds as
commands. What differs: "command" is the build name; the times are Lambda's
Init Duration of each cold start, in seconds (not a process's wall time);
"user" is the mean on-CPU time of all sandbox processes during init (user
and kernel together: the probes do not split them) and "system" is 0;
"exit_codes" is 0 for a run whose init succeeded, 1 otherwise.
--fail-if 'METRIC>THRESHOLD[,...]' exits with code 5 when a build (against
the first) has a significant slowdown (Mann–Whitney p < 0.05) whose
Hodges–Lehmann estimate passes THRESHOLD, a percentage of the baseline's
median (+5%) or a duration (+2ms, 500us). METRIC is init_duration, or
PROCESS:NAME with NAME one of load, init, time_to_ready or a phase, as in
compare.txt: 'init_duration>+5%,datadog-agent:load>+1ms'. A shift inside the
noise never trips it, so CI does not flake.

Every build runs under the same extension name (--name, default the first
build's file name), so only the binary differs. Files written to --out:
compare.txt (what is printed), compare.json, compare.md, report.html, bench.txt (Go benchmark format:
'benchstat -col /build bench.txt' reads it) and results-NAME.json per build.
With --flamegraph, each build also gets sampling runs and its flamegraphs in
flame-NAME/, and every build a differential flamegraph against the first,
diff-FIRST-vs-NAME.svg (red: a larger share of the CPU samples, blue: smaller).

Examples:
  initprof compare now=./ext-now lazy=./ext-lazy
  initprof compare -n 30 --name datadog-agent prod=./bottlecap-z o3=./bottlecap-O3 spie=./bottlecap-static-pie
  initprof compare --runtime-init 180ms a=./a b=./b     # a python-like runtime
  initprof compare --arch arm64 now=./ext-now lazy=./ext-lazy   # arm64 builds, in the arm64 microVM`,
		setup: setupCompare,
	})
}

func setupCompare(fs *pflag.FlagSet) func([]string) error {
	o := &runOpts{}
	runFlags(fs, o, 30)
	fs.StringVar(&o.inv.Name, "name", "", "the extension's name in /opt/extensions for every build (default: the first build's file name)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the per-round shuffled run order (0: pick one; the report gives it)")
	sampleFlags(fs, &o.sample)
	var c export.CI
	fs.StringVar(&c.Format, "format", "text", "what to print: text (compare.txt), markdown (a GitHub table for a PR comment, also written to compare.md) or json")
	fs.StringVar(&c.ExportJSON, "export-json", "", "also write hyperfine's --export-json shape to FILE (Init Duration in seconds; see above)")
	fs.StringVar(&c.FailIf, "fail-if", "", "exit 5 when a build's significant slowdown passes a threshold, e.g. 'init_duration>+5%' (see above)")
	return func(args []string) error {
		o.sandboxSet = fs.Changed("sandbox")
		if err := c.Parse(); err != nil {
			return ciErr(err)
		}
		if c.Format == "json" {
			o.json = true
		}
		o.ci = &c
		return runCompare(o, args)
	}
}

// ciErr gives the errors of compare's CI outputs (export.CI) their exit
// codes: 5 (exitRegression) for a gate that tripped.
func ciErr(err error) error {
	switch {
	case errors.Is(err, export.ErrRegression):
		return withCode(exitRegression, err)
	case errors.Is(err, export.ErrUsage):
		return withCode(exitBadInput, err)
	}
	return err
}

func runCompare(o *runOpts, args []string) error {
	cleanupStale(o.OCIRuntime)
	bs, err := coldstart.ParseBuilds(args)
	if err != nil {
		return engineErr(err)
	}
	if vmRun, err := coldstart.NeedsVM(o.arch); err != nil {
		return engineErr(err)
	} else if vmRun {
		return compareInVM(o, bs)
	}
	if err := o.validate([]string{"-"}); err != nil {
		return err
	}
	if err := o.sample.validate(o.inv.Runs); err != nil {
		return err
	}
	if err := coldstart.CheckBuilds(bs, coldstart.ExtensionName(bs, o.inv.Name), o.Rootfs, o.Function, o.Runtime != "sim"); err != nil {
		return engineErr(err)
	}
	env, err := prepare(o, "compare")
	if err != nil {
		return err
	}
	defer env.close()
	ctx := env.ctx

	c, err := env.eng.NewComparison(bs)
	if err != nil {
		return engineErr(err)
	}
	defer c.Close()
	bar := newProgress(o.inv.Runs * len(bs))
	c.Run(ctx, o.inv.Runs, o.seed, bar.step)
	bar.done()
	if c.Interrupted != nil {
		progressf("%s; writing what was measured", c.Interrupted)
	}
	cmp := c.Comparison
	if o.sample.flamegraph && ctx.Err() == nil {
		if err := compareFlamegraphs(ctx, env, c.Series, c.Builds); err != nil {
			progressf("flamegraphs: %v", err)
		}
	}
	if err := outdir.WriteFiles(env.out, outdir.CompareFiles(cmp, c.Reports)); err != nil {
		return err
	}
	switch {
	case o.json:
		err = cmp.WriteJSON(os.Stdout)
	case o.ci != nil && o.ci.Markdown():
		err = export.CompareMarkdown(os.Stdout, cmp)
	default:
		err = cmp.WriteText(os.Stdout)
	}
	if err != nil {
		return err
	}
	progressf("wrote compare.txt, compare.md, compare.json, bench.txt and results-*.json in %s", env.out)
	writeReportHTML(env.out)
	if ctx.Err() != nil {
		return withCode(exitInterrupted, errors.New("interrupted"))
	}
	if o.ci != nil {
		return ciErr(o.ci.Finish(cmp, c.Builds, os.Stdout, func(m string) { progressf("%s", m) }))
	}
	return nil
}

// compareFlamegraphs makes each measured build's sampling runs, writes its
// flamegraphs under flame-NAME/, and a differential flamegraph of every build
// against the first (outputs.Diffs).
func compareFlamegraphs(ctx context.Context, env *runEnv, ss []*coldstart.Series, results []profile.BuildRuns) error {
	diffs := &outputs.Diffs{Dir: env.out}
	var errs []error
	for j, s := range ss {
		if s == nil || results[j].Err != "" || ctx.Err() != nil {
			continue
		}
		dir := filepath.Join(env.out, "flame-"+s.Name())
		if err := flamegraphs(ctx, s, &env.o.sample, dir); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		out, err := diffs.Add(s.Name(), dir)
		if err != nil {
			errs = append(errs, err)
		} else if out != "" {
			progressf("wrote %s", out)
		}
	}
	return errors.Join(errs...)
}

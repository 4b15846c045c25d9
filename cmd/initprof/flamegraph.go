package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/profile/pprofout"
)

func init() {
	register(&command{
		name:    "flamegraph",
		summary: "render a flamegraph (SVG or folded) from a saved cpu.pb.gz or stacks.folded",
		usage:   "[--phase P] [--diff BASE] [-o FILE] PROFILE",
		long: `flamegraph renders a saved CPU profile of cold starts as an SVG flamegraph you
open in any browser, offline: hover a frame for its share, click it to zoom in,
"Search" (or Ctrl-F) highlights a function by regular expression and shows the
share of time it accounts for.

PROFILE is a cpu.pb.gz written by 'initprof run --flamegraph' (google/pprof
format, one sample per CPU sample, labelled phase, process, run and build) or
a stacks.folded (FlameGraph folded text: "root;caller;leaf COUNT" per line).

--phase keeps only the samples of one init phase (load_deps, relocate,
constructors, to_main, ...; the error lists those present), so the loader's
relocation work or the constructors get a graph of their own. --process,
--build and --run filter the same way on the other labels; they need a
cpu.pb.gz, since folded text carries no labels.

--diff BASE draws a differential flamegraph: widths are PROFILE's, colours say
how each frame's share of the total changed from BASE (red grew, blue shrank,
saturated at 5 points). Compare two builds (-O2 vs -O3, -z now vs lazy) or two
phases. Filters apply to both profiles.

The output goes to -o FILE ("-" for stdout); by default flame.svg,
flame-PHASE.svg or flame-diff.svg in the current directory. --folded writes
folded text instead of SVG, to feed other tools (speedscope, inferno).

Examples:
  initprof flamegraph out/cpu.pb.gz
  initprof flamegraph --phase relocate -o reloc.svg out/cpu.pb.gz
  initprof flamegraph --phase constructors --process cext out/cpu.pb.gz
  initprof flamegraph --diff a/cpu.pb.gz --phase relocate b/cpu.pb.gz
  initprof flamegraph --folded -o - out/cpu.pb.gz | grep _dl_relocate_object
  go tool pprof -tagfocus phase=relocate -top out/cpu.pb.gz   # same data, pprof's views

Exit status 2 for a missing or unreadable profile, an unknown phase, or a
filter on folded input.`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			var o flameOpts
			fs.StringVar(&o.phase, "phase", "", "keep only samples of this init phase (pprof label phase)")
			fs.StringVar(&o.process, "process", "", "keep only samples of this process (label process)")
			fs.StringVar(&o.build, "build", "", "keep only samples of this build (label build)")
			fs.StringVar(&o.run, "run", "", "keep only samples of this run index (label run)")
			fs.StringVar(&o.diff, "diff", "", "draw a differential flamegraph against this base profile")
			fs.StringVarP(&o.out, "output", "o", "", `output file ("-" for stdout; default flame[-PHASE|-diff].svg)`)
			fs.BoolVar(&o.folded, "folded", false, "write folded stacks instead of SVG")
			fs.StringVar(&o.title, "title", "", "graph title (default: the profile's name and filters)")
			fs.IntVar(&o.width, "width", 1200, "SVG width in pixels")
			fs.StringVar(&o.value, "value", "auto", `weight frames by "samples" (count) or "time" (the profile's nanoseconds: cpu, or time off the CPU); "auto": samples for cpu.pb.gz, time for offcpu.pb.gz`)
			return func(args []string) error { return runFlamegraph(o, args, os.Stdout) }
		},
	})
}

type flameOpts struct {
	phase, process, build, run, diff, out, title, value string
	folded                                              bool
	width                                               int
}

func runFlamegraph(o flameOpts, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return badInput("want exactly one PROFILE (a cpu.pb.gz or stacks.folded), got %d arguments", len(args))
	}
	if o.width < 200 {
		return badInput("--width %d is too narrow: use at least 200 pixels", o.width)
	}
	f, err := pprofout.LoadFlame(args[0], o.diff, pprofout.Filters(o.phase, o.process, o.build, o.run), o.value)
	if err != nil {
		return badInput("%v", err)
	}
	out, err := f.Save(o.out, stdout, o.folded, o.title, o.width)
	var oe *pprofout.OutputError
	if errors.As(err, &oe) {
		return badInput("%v", err)
	}
	if err != nil || out == "-" {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d %s)\n", out, f.Cur.Total(), f.Unit())
	return nil
}

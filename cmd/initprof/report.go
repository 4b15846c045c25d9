package main

import (
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/profile/htmlreport"
)

func init() {
	register(&command{
		name:    "report",
		summary: "write report.html (or print Markdown) from a results directory",
		usage:   "[--format html|markdown] DIR",
		long: `report renders the results that 'initprof run', 'compare' or 'merge' left in
DIR (results.json, or compare.json with its results-NAME.json, and the
flamegraph SVGs there) again, with this initprof: the figures are recomputed
from the runs.

--format html (the default) writes DIR/report.html: one self-contained file
(inline CSS and JavaScript, nothing fetched from the network; open it from
disk or attach it to a ticket) with the init waterfall of every process on
the shared initStart timeline (any run; the median one first), the critical
path outlined and the last register marked (Lambda starts the runtime only
after it), each phase's median with its p10–p90 band, what init touched of
each binary's files, the flamegraphs (click to zoom, search by regular
expression) and, for a comparison, the shift table and a waterfall per build.
run and compare write it themselves.

--format markdown prints a GitHub-flavoured table for a PR comment: Init
Duration and each process's load, init and time-to-ready (and the shift
table for a comparison), Init Duration per host/arch for merged results, and
the verdict lines.

Examples:
  initprof report initprof-out/run-20260101-120000
  initprof report --format markdown merged/ >> "$GITHUB_STEP_SUMMARY"`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			format := fs.String("format", "html", "html (writes DIR/report.html) or markdown (prints it)")
			return func(args []string) error { return runReport(*format, args, os.Stdout) }
		},
	})
}

func runReport(format string, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return badInput("want exactly one DIR (the --out directory of initprof run, compare or merge), got %d arguments", len(args))
	}
	switch format {
	case "html":
		path, err := htmlreport.WriteDir(args[0])
		if err != nil {
			return badInput("%v", err)
		}
		progressf("wrote %s", path)
		return nil
	case "markdown", "md":
		in, err := htmlreport.FromDir(args[0])
		if err != nil {
			return badInput("%v", err)
		}
		return in.WriteMarkdown(stdout)
	}
	return badInput("--format %q: use html or markdown", format)
}

// writeReportHTML writes DIR/report.html after run or compare wrote their
// files there; a failure is reported, but does not fail the measurement.
func writeReportHTML(dir string) {
	if path, err := htmlreport.WriteDir(dir); err != nil {
		progressf("report.html: %v", err)
	} else {
		progressf("wrote %s", path)
	}
}

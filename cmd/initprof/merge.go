package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/outdir"
)

func init() {
	register(&command{
		name:    "merge",
		summary: "join results from several machines or CI jobs into one results.json and report",
		usage:   "--out DIR RESULT_DIR...",
		long: `merge pools the runs of several 'initprof run' (or 'compare') output
directories — say one per CI runner, x86_64 and native arm64 — into one. Every
statistic is recomputed from the pooled runs, so a merge of a 3-run and a
2-run result equals one 5-run result of the same runs. Each run keeps the host
and arch it was measured on; report.html and 'initprof report --format
markdown' show Init Duration per host/arch next to the pooled figures.

RESULT_DIR is an --out directory (results.json, or a comparison's
results-NAME.json) or a results JSON file. Runs are grouped by build name:
one build gives --out results.json and report.txt; several give
results-NAME.json per build and a comparison of them (compare.txt,
compare.json, the first build is the baseline). report.html is written in
both cases.

merge refuses, with the file to blame: results of another schema version (a
different initprof), and two different binaries (by SHA-256) of one
architecture under one build name, which would pool two builds as one (the
x86_64 and arm64 binaries of a build differ by nature, and merge). docs/ci.md
has a GitHub Actions workflow that runs on x86_64 and arm64 runners and
merges their results.

Examples:
  initprof merge --out merged results-x86_64/ results-arm64/
  initprof merge --out all ci-*/results.json && initprof report --format markdown all`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			out := fs.String("out", "", "output directory (required; must be empty unless --force)")
			force := fs.Bool("force", false, "reuse a non-empty --out (initprof's previous outputs there are removed)")
			return func(args []string) error { return runMerge(*out, *force, args) }
		},
	})
}

func runMerge(out string, force bool, args []string) error {
	if out == "" {
		return badInput("--out DIR is required")
	}
	if len(args) == 0 {
		return badInput("give the result directories to merge: initprof merge --out DIR RESULT_DIR...")
	}
	files, err := profile.LoadAllResults(args)
	if err != nil {
		return badInput("%v", err)
	}
	reps, err := profile.Merge(files)
	if err != nil {
		return badInput("%v", err)
	}
	if out, err = outDir(out, force, "merge"); err != nil {
		return err
	}
	outs, print := outdir.MergeFiles(reps)
	if err := outdir.WriteFiles(out, outs); err != nil {
		return err
	}
	progressf("%s into %s", profile.MergedSummary(reps, len(files)), out)
	writeReportHTML(out)
	return print(os.Stdout)
}

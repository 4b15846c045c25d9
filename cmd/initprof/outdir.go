package main

import (
	"strings"

	"github.com/initprof/initprof/profile/outdir"
)

// outDir settles the output directory before the first cold start
// (outdir.Prepare) and says what --force removed. All failures are bad input
// (exit code 2).
func outDir(out string, force bool, kind string) (string, error) {
	res, err := outdir.Prepare(out, force, kind)
	if err != nil {
		return "", badInput("%v", err)
	}
	if len(res.Removed) > 0 {
		progressf("warning: --force: removed the previous run's outputs from %s: %s", res.Dir, strings.Join(res.Removed, ", "))
	}
	if res.Kept > 0 {
		progressf("warning: --force: %s keeps %d file(s) initprof did not write", res.Dir, res.Kept)
	}
	return res.Dir, nil
}

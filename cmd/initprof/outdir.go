package main

import "github.com/initprof/initprof/profile/outdir"

// outDir settles the output directory before the first cold start
// (outdir.Prepare) and says what --force removed. All failures are bad input
// (exit code 2).
func outDir(out string, force bool, kind string) (string, error) {
	res, err := outdir.Prepare(out, force, kind, func(m string) { progressf("%s", m) })
	if err != nil {
		return "", badInput("%v", err)
	}
	return res.Dir, nil
}

package outdir

import (
	"io"

	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/export"
	"github.com/initprof/initprof/profile/pprofout"
)

// Touched is the name of the pprof profile of what init touched
// (pprofout.WriteTouched).
const Touched = "touched.pb.gz"

// Files are a command's outputs by file name, as WriteFiles takes them.
type Files = map[string]func(io.Writer) error

// RunFiles are what run writes for a report: report.txt, results.json and,
// when the runs recorded touched pages, touched.pb.gz.
func RunFiles(rep *profile.Report) Files {
	files := Files{"report.txt": rep.WriteText, "results.json": rep.WriteJSON}
	if pprofout.HasTouched(rep.Runs) {
		files[Touched] = func(w io.Writer) error { return pprofout.WriteTouched(w, rep.Runs) }
	}
	return files
}

// CompareFiles are what compare writes for a comparison: compare.txt,
// compare.json, compare.md, bench.txt, and results-NAME.json for each
// build's report (nil reports, builds that made no run, are skipped).
func CompareFiles(cmp *profile.Comparison, reports []*profile.Report) Files {
	files := Files{
		"compare.txt":  cmp.WriteText,
		"compare.json": cmp.WriteJSON,
		"compare.md":   func(w io.Writer) error { return export.CompareMarkdown(w, cmp) },
		"bench.txt":    cmp.WriteBench,
	}
	for _, rep := range reports {
		if rep != nil {
			files[profile.ResultsFileName(rep.Build)] = rep.WriteJSON
		}
	}
	return files
}

// MergeFiles are what merge writes for the merged reports (profile.Merge),
// and what it prints. One build gives results.json and report.txt, and
// prints the report; several give results-NAME.json per build and their
// comparison (compare.txt, compare.json; the first build is the baseline),
// and print the comparison.
func MergeFiles(reps []*profile.Report) (files Files, print func(io.Writer) error) {
	if len(reps) == 1 {
		return Files{"results.json": reps[0].WriteJSON, "report.txt": reps[0].WriteText}, reps[0].WriteText
	}
	files = Files{}
	var builds []profile.BuildRuns
	for _, r := range reps {
		builds = append(builds, profile.BuildRuns{Build: r.Build, Runs: r.Runs})
		files[profile.ResultsFileName(r.Build)] = r.WriteJSON
	}
	cmp := profile.Compare(builds)
	files["compare.txt"], files["compare.json"] = cmp.WriteText, cmp.WriteJSON
	return files, cmp.WriteText
}

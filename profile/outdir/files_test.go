package outdir

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile"
)

func names(f Files) string {
	var n []string
	for k := range f {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

func TestFiles(t *testing.T) {
	a := profile.Aggregate([]profile.Run{{Build: "a", Index: 0}})
	b := profile.Aggregate([]profile.Run{{Build: "b", Index: 0}})
	if got := names(RunFiles(a)); got != "report.txt results.json" {
		t.Errorf("RunFiles: %s (no touched pages: no touched.pb.gz)", got)
	}
	cmp := profile.Compare([]profile.BuildRuns{{Build: "a", Runs: a.Runs}, {Build: "b", Runs: b.Runs}})
	if got := names(CompareFiles(cmp, []*profile.Report{a, nil, b})); got != "bench.txt compare.json compare.md compare.txt results-a.json results-b.json" {
		t.Errorf("CompareFiles: %s", got)
	}
	one, print := MergeFiles([]*profile.Report{a})
	if got := names(one); got != "report.txt results.json" {
		t.Errorf("MergeFiles of one build: %s", got)
	}
	var printed, written bytes.Buffer
	if err := print(&printed); err != nil {
		t.Fatal(err)
	}
	one["report.txt"](&written)
	if printed.String() != written.String() {
		t.Error("merge of one build prints other than its report.txt")
	}
	two, print := MergeFiles([]*profile.Report{a, b})
	if got := names(two); got != "compare.json compare.txt results-a.json results-b.json" {
		t.Errorf("MergeFiles of two builds: %s", got)
	}
	printed.Reset()
	written.Reset()
	print(&printed)
	two["compare.txt"](&written)
	if printed.String() != written.String() {
		t.Error("merge of two builds prints other than its compare.txt")
	}
}

package profile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeResults writes runs as `initprof run` would (results.json in dir)
// and returns dir.
func writeResults(t *testing.T, dir string, runs []Run) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Aggregate(runs).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func labelled(runs []Run, host, arch, hash string) []Run {
	out := make([]Run, len(runs))
	for i, r := range runs {
		r.Host, r.Arch = host, arch
		r.Binaries = map[string]string{"ext": hash}
		out[i] = r
	}
	return out
}

func reindexed(runs []Run) []Run {
	out := make([]Run, len(runs))
	for i, r := range runs {
		r.Index = i
		out[i] = r
	}
	return out
}

// TestMergeEqualsOneResult: merging results of 3 and 2 runs (from two
// machines) gives exactly the statistics of one 5-run result of the same
// runs, read back from its results.json as the merge's inputs were.
func TestMergeEqualsOneResult(t *testing.T) {
	all := synthRuns(synthSpec{build: "prod", runs: 5, seed: 11, runtimeNs: 3_000_000, relocateNs: 800_000, noise: 0.2})
	a := labelled(all[:3], "x86-runner", "x86_64", "sha256:aa")
	b := labelled(all[3:], "arm-runner", "aarch64", "sha256:aa")
	for _, tc := range []struct {
		name  string
		parts [][]Run
	}{
		{"3+2", [][]Run{a, b}},
		{"2+3", [][]Run{b, a}},
		{"1+1+3", [][]Run{a[:1], a[1:2], append(append([]Run{}, a[2:]...), b...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			var files []ResultsFile
			var joined []Run
			for i, p := range tc.parts {
				fs, err := LoadResults(writeResults(t, filepath.Join(root, string(rune('a'+i))), reindexed(p)))
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, fs...)
				joined = append(joined, p...)
			}
			merged, err := Merge(files)
			if err != nil {
				t.Fatal(err)
			}
			if len(merged) != 1 || len(merged[0].Runs) != 5 {
				t.Fatalf("merge gave %d reports, first with %d runs; want 1 with 5", len(merged), len(merged[0].Runs))
			}
			one, err := LoadResults(writeResults(t, filepath.Join(root, "five"), reindexed(joined)))
			if err != nil {
				t.Fatal(err)
			}
			var got, want bytes.Buffer
			if err := merged[0].WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			if err := one[0].Report.WriteJSON(&want); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("merged results.json differs from the 5-run one:\n%s", firstDiff(got.String(), want.String()))
			}
			hosts := map[string]int{}
			for _, r := range merged[0].Runs {
				hosts[r.Host+"/"+r.Arch]++
			}
			if hosts["x86-runner/x86_64"] != 3 || hosts["arm-runner/aarch64"] != 2 {
				t.Errorf("host labels after the merge: %v", hosts)
			}
		})
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d: got  %s\n         want %s", i+1, la[i], lb[i])
		}
	}
	return "lengths differ"
}

// TestMergeRefuses: mismatched schemas, two binaries of one arch under one
// name and missing results fail with an error naming the file and the
// fix; the other arch's binary of the same build merges.
func TestMergeRefuses(t *testing.T) {
	runs := synthRuns(synthSpec{build: "prod", runs: 2, seed: 3, runtimeNs: 1_000_000, relocateNs: 500_000})
	root := t.TempDir()
	a := writeResults(t, filepath.Join(root, "a"), labelled(runs, "h1", "x86_64", "sha256:aaaa"))
	b := writeResults(t, filepath.Join(root, "b"), labelled(runs, "h2", "x86_64", "sha256:bbbb"))
	arm := writeResults(t, filepath.Join(root, "arm"), labelled(runs, "h3", "aarch64", "sha256:cccc"))
	old := filepath.Join(root, "old")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "results.json"), []byte(`{"schema":"initprof.results/v0","runs":[]}`), 0o644)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		dirs []string
		want string
	}{
		{"different binaries", []string{a, b}, "different binaries under one build name"},
		{"another arch's binary is fine", []string{a, arm}, ""},
		{"other schema", []string{a, old}, `schema "initprof.results/v0"`},
		{"no results", []string{a, empty}, "has no results.json"},
		{"missing dir", []string{filepath.Join(root, "nope")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var files []ResultsFile
			var err error
			for _, d := range tc.dirs {
				var fs []ResultsFile
				if fs, err = LoadResults(d); err != nil {
					break
				}
				files = append(files, fs...)
			}
			if err == nil {
				_, err = Merge(files)
			}
			if tc.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestMergeBuilds: runs of two builds stay apart, one report each, in the
// order they first appear.
func TestMergeBuilds(t *testing.T) {
	root := t.TempDir()
	a := writeResults(t, filepath.Join(root, "a"), synthRuns(synthSpec{build: "prod", runs: 3, seed: 1, runtimeNs: 1e6, relocateNs: 5e5}))
	b := writeResults(t, filepath.Join(root, "b"), synthRuns(synthSpec{build: "o3", runs: 2, seed: 2, runtimeNs: 1e6, relocateNs: 7e5}))
	var files []ResultsFile
	for _, d := range []string{a, b} {
		fs, err := LoadResults(d)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	reps, err := Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Build != "prod" || reps[1].Build != "o3" || len(reps[0].Runs) != 3 || len(reps[1].Runs) != 2 {
		t.Fatalf("got %d reports: %+v", len(reps), reps)
	}
	if reps[0].Runs[0].Host == "" {
		t.Error("an unlabelled run was not labelled with its directory")
	}
}

func TestMergedSummary(t *testing.T) {
	for _, tc := range []struct {
		runs  []int // runs per build
		files int
		want  string
	}{
		{[]int{5}, 2, "merged 5 runs of 1 build(s) from 2 file(s)"},
		{[]int{3, 2}, 4, "merged 5 runs of 2 build(s) from 4 file(s)"},
	} {
		var reps []*Report
		for _, n := range tc.runs {
			reps = append(reps, &Report{Runs: make([]Run, n)})
		}
		if got := MergedSummary(reps, tc.files); got != tc.want {
			t.Errorf("MergedSummary = %q, want %q", got, tc.want)
		}
	}
}

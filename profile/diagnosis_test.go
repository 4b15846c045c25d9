package profile

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunNotesGrouped(t *testing.T) {
	var runs []Run
	for i := 0; i < 5; i++ {
		r := Run{Index: i, Notes: []string{"ext: last output: \"boom\""}}
		if i == 3 {
			r.Notes = append(r.Notes, "only here")
		}
		runs = append(runs, r)
	}
	runs[4].Notes = nil
	got := strings.Join(runNotes(runs), "\n")
	want := "runs 0–3 (4 of 5): ext: last output: \"boom\"\nrun 3: only here"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if s := indexRanges([]int{0, 1, 2, 5, 7, 8}); s != "0–2, 5, 7–8" {
		t.Errorf("indexRanges = %q", s)
	}
}

func TestInterruptedInText(t *testing.T) {
	rep := Aggregate(nil)
	rep.Interrupted = &Interrupted{Runs: 3, Planned: 20}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "INTERRUPTED after 3 of 20 runs") {
		t.Errorf("report.txt:\n%s", buf.String())
	}
	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"interrupted": {`) && !strings.Contains(buf.String(), `"interrupted":{`) {
		t.Errorf("results.json lacks interrupted:\n%s", buf.String())
	}
}

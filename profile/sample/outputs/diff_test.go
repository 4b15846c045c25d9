package outputs_test

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/sample/outputs"
)

// TestDiffs: the first build is the baseline; every later one gets
// diff-BASE-vs-NAME.svg, an SVG that says which is which; a build without
// stacks.folded is an error and does not become the baseline.
func TestDiffs(t *testing.T) {
	dir := t.TempDir()
	build := func(name, folded string) string {
		d := filepath.Join(dir, "flame-"+name)
		os.MkdirAll(d, 0o755)
		if folded != "" {
			os.WriteFile(filepath.Join(d, "stacks.folded"), []byte(folded), 0o644)
		}
		return d
	}
	d := &outputs.Diffs{Dir: dir}
	for _, tc := range []struct {
		name, folded string
		want         string // the path Add returns, relative to dir
		wantErr      bool
	}{
		{name: "broken", wantErr: true},
		{name: "prod", folded: "main;relocate 10\nmain;init 5\n"},
		{name: "o3", folded: "main;relocate 30\nmain;init 5\n", want: "diff-prod-vs-o3.svg"},
		{name: "lazy", folded: "main;relocate 9\nmain;init 6\n", want: "diff-prod-vs-lazy.svg"},
	} {
		path, err := d.Add(tc.name, build(tc.name, tc.folded))
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: Add without stacks.folded succeeded", tc.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := filepath.Join(dir, tc.want); (tc.want == "" && path != "") || (tc.want != "" && path != want) {
			t.Fatalf("%s: Add = %q, want %q", tc.name, path, tc.want)
		}
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, new(struct{})); err != nil {
			t.Errorf("%s: the SVG does not parse: %v", path, err)
		}
		if !strings.Contains(string(b), tc.name+" vs prod") {
			t.Errorf("%s: no %q title", path, tc.name+" vs prod")
		}
	}
}

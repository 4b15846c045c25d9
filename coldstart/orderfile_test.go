package coldstart

import (
	"strings"
	"testing"
)

func TestOrderArgs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		args          []string
		out, format   string
		minRuns, runs int
		want          string // substring of the error; "" for none
	}{
		{"ok", []string{"ext"}, "o.txt", "lld", 0, 5, ""},
		{"two extensions", []string{"a", "b"}, "o.txt", "lld", 0, 5, "orderfile takes one extension, 2 given"},
		{"no output", []string{"ext"}, "", "lld", 0, 5, "-o FILE is required"},
		{"bad format", []string{"ext"}, "o.txt", "xml", 0, 5, "--format: "},
		{"min-runs over runs", []string{"ext"}, "o.txt", "gnu", 6, 5, "--min-runs 6: more than the 5 runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OrderArgs(tc.args, tc.out, tc.format, tc.minRuns, tc.runs)
			switch {
			case tc.want == "" && (err != nil || string(f) != tc.format):
				t.Errorf("OrderArgs = %q, %v; want %q, nil", f, err, tc.format)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || KindOf(err) != BadInput):
				t.Errorf("OrderArgs error %v (kind %v); want BadInput containing %q", err, KindOf(err), tc.want)
			}
		})
	}
}

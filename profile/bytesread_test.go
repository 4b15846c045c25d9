package profile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/stats"
)

func TestFmtBytes(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{100, "1 KiB"}, // something was read: never shown as 0
		{4096, "4 KiB"},
		{1023 << 10, "1023 KiB"},
		{1 << 20, "1.0 MiB"},
		{12.5 * (1 << 20), "12.5 MiB"},
	} {
		if got := fmtBytes(tc.in); got != tc.want {
			t.Errorf("fmtBytes(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestReadColumn: the per-phase "read" column appears only when some phase
// measured its bytes read, and a phase without a measure shows a dash.
func TestReadColumn(t *testing.T) {
	read := func(xs ...float64) stats.Summary { return stats.Summarize(xs) }
	for _, tc := range []struct {
		name   string
		phases []PhaseReport
		want   []string // substrings of the output
		absent []string
	}{
		{"measured", []PhaseReport{
			{Name: "load_deps", From: "ldso_start", To: "deps_loaded", Dur: read(1e6), BytesRead: read(12 << 20)},
			{Name: "relocate", From: "deps_loaded", To: "relocated", Dur: read(1e6), BytesRead: read(0)},
			{Name: "to_main", From: "entry", To: "main", Dur: read(1e6)},
		}, []string{"12.0 MiB"}, nil},
		{"not measured", []PhaseReport{
			{Name: "load_deps", From: "ldso_start", To: "deps_loaded", Dur: read(1e6)},
		}, nil, []string{"MiB", "KiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeProcessText(&b, &ProcessReport{Name: "ext", Role: RoleExtension, Runs: 1, Phases: tc.phases})
			out := b.String()
			head := strings.Fields(strings.Split(out, "\n")[1])
			if hasRead := head[len(head)-1] == "read"; hasRead != (tc.name == "measured") {
				t.Errorf("read column shown %v, want %v:\n%s", hasRead, tc.name == "measured", out)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("no %q in:\n%s", s, out)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(out, s) {
					t.Errorf("unexpected %q in:\n%s", s, out)
				}
			}
			if tc.name == "measured" {
				for _, l := range strings.Split(out, "\n") {
					f := strings.Fields(l)
					if len(f) > 0 && f[0] == "to_main" && f[len(f)-1] != "–" {
						t.Errorf("unmeasured phase's read cell is not a dash: %q", l)
					}
					if len(f) > 0 && f[0] == "relocate" && f[len(f)-1] != "0" {
						t.Errorf("a measured zero is not shown as 0: %q", l)
					}
				}
			}
		})
	}
}

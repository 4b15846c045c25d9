package flame_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/flame"
	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/sample/sampletest"
)

func TestFoldedRoundTrip(t *testing.T) {
	stacks := []sample.Stack{
		{Frames: []sample.Frame{{Func: "leaf"}, {Func: "mid;dle"}, {Func: "main"}}},
		{Frames: []sample.Frame{{Func: "leaf"}, {Func: "mid;dle"}, {Func: "main"}}},
		{Frames: []sample.Frame{{Func: "do_syscall_64", Kernel: true}, {Func: "write"}, {Func: "main"}}},
		{Frames: nil},
	}
	f := flame.FromStacks(stacks, nil)
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "main;mid:dle;leaf 2\nmain;write;do_syscall_64_[k] 1\n"
	if b.String() != want {
		t.Errorf("folded:\n%s\nwant:\n%s", b.String(), want)
	}
	back, err := flame.ReadFolded(&b)
	if err != nil || len(back) != 2 || back["main;mid:dle;leaf"] != 2 || back.Total() != 3 {
		t.Errorf("ReadFolded = %v, %v", back, err)
	}
}

func TestReadFoldedErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a;b 1\nnocount\n", "line 2"},
		{"a;b x\n", "not a non-negative integer"},
		{"a;b -3\n", "not a non-negative integer"},
		{"# comment\n\na;b 2\na;b 3\n", ""},
	} {
		f, err := flame.ReadFolded(strings.NewReader(tc.in))
		if tc.want == "" {
			if err != nil || f["a;b"] != 5 {
				t.Errorf("ReadFolded(%q) = %v, %v", tc.in, f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadFolded(%q) error %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
}

// svgDoc is the part of the SVG the tests read back.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Script  string   `xml:"script"`
	Groups  []struct {
		Frames []struct {
			Title string `xml:"title"`
			Rect  struct {
				Fill  string  `xml:"fill,attr"`
				Width float64 `xml:"width,attr"`
			} `xml:"rect"`
		} `xml:"g"`
	} `xml:"g"`
}

func parseSVG(t *testing.T, data []byte) svgDoc {
	t.Helper()
	var doc svgDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("SVG is not well-formed XML: %v", err)
	}
	// The strict decoder catches what Unmarshal tolerates (bad entities).
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG token error: %v", err)
		}
	}
	return doc
}

func titles(doc svgDoc) []string {
	var out []string
	for _, g := range doc.Groups {
		for _, f := range g.Frames {
			out = append(out, f.Title)
		}
	}
	return out
}

// record captures the spin program once for the SVG tests.
func record(t *testing.T) *sampletest.Recording {
	return sampletest.Record(t, "spin", nil, sampletest.BuildC(t))
}

// TestSVGOfRealProfile renders a real profile and checks the SVG: valid XML,
// the zoom and search script, the hot functions as frames, and the widest
// leaf is the busy loop called from main (3x the work of each constructor).
func TestSVGOfRealProfile(t *testing.T) {
	rec := record(t)
	f := flame.FromStacks(rec.Stacks, nil)
	var b bytes.Buffer
	if err := flame.WriteSVG(&b, f, flame.Options{Title: "spin", Subtitle: "all phases"}); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	for _, fn := range []string{"function zoom", "function search", "function unzoom", "addEventListener(\"click\""} {
		if !strings.Contains(doc.Script, fn) {
			t.Errorf("SVG script lacks %q", fn)
		}
	}
	ts := titles(doc)
	for _, want := range []string{"spin_busy (", "spinlib_busy (", "main (", "_dl_init (", "_start ("} {
		found := false
		for _, tt := range ts {
			if strings.HasPrefix(tt, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no frame titled %q… among %d frames", want, len(ts))
		}
	}
	writeArtifact(t, "flame.svg", b.Bytes())

	// Per phase: the stacks after the main checkpoint never include a constructor.
	var afterMain string
	for _, sp := range rec.Phases {
		if sp.From == "main" {
			afterMain = sp.Name
		}
	}
	if afterMain == "" {
		t.Fatalf("no phase after main among %+v", rec.Phases)
	}
	ph := flame.FromStacks(rec.Stacks, func(s sample.Stack) bool { return s.Phase == afterMain })
	if ph.Total() == 0 || ph.Total() >= f.Total() {
		t.Fatalf("phase %s has %d of %d samples", afterMain, ph.Total(), f.Total())
	}
	for stack := range ph {
		if strings.Contains(stack, "spin_ctor") || strings.Contains(stack, "_dl_init") {
			t.Errorf("phase %s holds a constructor stack: %s", afterMain, stack)
		}
	}
}

// TestDiffSVG compares the whole profile (base) with the main phase only
// (cur): main's busy loop has a larger share in cur, so it is red; nothing in
// cur is the constructor's, and frames that lost share are blue.
func TestDiffSVG(t *testing.T) {
	rec := record(t)
	base := flame.FromStacks(rec.Stacks, nil)
	cur := flame.FromStacks(rec.Stacks, func(s sample.Stack) bool {
		return sampletest.InOrder(sampletest.UserFrames(s), "main")
	})
	var b bytes.Buffer
	if err := flame.WriteDiffSVG(&b, base, cur, flame.Options{Title: "diff"}); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	reds := 0
	for _, g := range doc.Groups {
		for _, fr := range g.Frames {
			if strings.HasPrefix(fr.Title, "spin_busy (") {
				if !strings.HasPrefix(fr.Rect.Fill, "rgb(255,") {
					t.Errorf("spin_busy grew its share but is coloured %s (%s)", fr.Rect.Fill, fr.Title)
				}
				reds++
			}
		}
	}
	if reds == 0 {
		t.Error("spin_busy missing from the differential flamegraph")
	}
	writeArtifact(t, "flame-diff.svg", b.Bytes())
}

func TestEmptyProfile(t *testing.T) {
	var b bytes.Buffer
	if err := flame.WriteSVG(&b, flame.Folded{}, flame.Options{}); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, b.Bytes())
	if !strings.Contains(b.String(), "no samples") {
		t.Error("an empty flamegraph should say there are no samples")
	}
}

// writeArtifact keeps an SVG in $INITPROF_ARTIFACTS (for a human to look at)
// when set.
func writeArtifact(t *testing.T, name string, data []byte) {
	if d := os.Getenv("INITPROF_ARTIFACTS"); d != "" {
		_ = os.WriteFile(filepath.Join(d, name), data, 0o644)
	}
}

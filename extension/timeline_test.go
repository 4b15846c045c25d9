package extension

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTimelineRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	tl := NewTimeline(&buf)
	tl.Add(Entry{MonoNs: 30, Kind: KindLog, Name: "a", Line: "INIT | checkpoint=main mono_ns=29"})
	tl.Add(Entry{MonoNs: 10, Kind: KindState, Name: NamePlatform, Event: "initStart"})
	tl.Add(Entry{Kind: KindRequest, Name: "a", Method: "GET", Path: "/x"}) // stamped now
	got, err := ReadTimeline(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].MonoNs != 10 || got[1].MonoNs != 30 || got[2].MonoNs <= 30 {
		t.Fatalf("read back %+v, want 3 entries sorted by mono_ns", got)
	}
	if got[1].Line != "INIT | checkpoint=main mono_ns=29" {
		t.Errorf("line %q", got[1].Line)
	}
}

func TestReadTimelineErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"bad json", "{\"mono_ns\":1,\"kind\":\"state\"}\n{nope\n", "line 2"},
		{"no kind", "{\"mono_ns\":1}\n", "no kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTimeline(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if es, err := ReadTimeline(strings.NewReader("\n\n")); err != nil || len(es) != 0 {
		t.Errorf("blank input: %v %v", es, err)
	}
}

func TestOpenTimelineSink(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.jsonl")
	w, err := OpenTimelineSink(p)
	if err != nil {
		t.Fatal(err)
	}
	NewTimeline(w).Add(Entry{MonoNs: 1, Kind: KindState})
	w.Close()
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), `"kind":"state"`) {
		t.Errorf("file has %q", b)
	}
	r, wp, _ := os.Pipe()
	defer r.Close()
	w2, err := OpenTimelineSink("fd:" + strconv.Itoa(int(wp.Fd())))
	if err != nil {
		t.Fatalf("fd sink: %v", err)
	}
	NewTimeline(w2).Add(Entry{MonoNs: 2, Kind: KindExit})
	w2.Close()
	es, err := ReadTimeline(r)
	if err != nil || len(es) != 1 || es[0].Kind != KindExit {
		t.Errorf("read from pipe: %v %v", es, err)
	}
	for _, bad := range []string{"", "fd:x", "fd:-1", "fd:987654", filepath.Join(t.TempDir(), "no", "dir", "t")} {
		if _, err := OpenTimelineSink(bad); err == nil {
			t.Errorf("OpenTimelineSink(%q) accepted", bad)
		}
	}
}

// TestSummarize checks the critical path and race notes on hand-built
// timelines, one per situation the summary must tell apart.
func TestSummarize(t *testing.T) {
	const ms = int64(time.Millisecond)
	base := []Entry{
		{MonoNs: 100 * ms, Kind: KindState, Name: NamePlatform, Event: "initStart"},
		{MonoNs: 101 * ms, Kind: KindSpawn, Name: "ext", PID: 7},
		{MonoNs: 105 * ms, Kind: KindRequest, Name: "ext", Path: "/2020-01-01/extension/register"},
		{MonoNs: 106 * ms, Kind: KindResponse, Name: "ext", Path: "/2020-01-01/extension/register", Status: 200},
		{MonoNs: 106 * ms, Kind: KindSpawn, Name: NameRuntime, PID: 8},
	}
	end := func(at int64, by string) Entry {
		return Entry{MonoNs: at, Kind: KindInitEnd, Name: by, Detail: map[string]any{"duration_ms": float64(at-100*ms) / 1e6, "status": "success", "ended_by": by}}
	}
	sub := func(at, done int64, st int) []Entry {
		return []Entry{{MonoNs: at, Kind: KindRequest, Name: "ext", Path: telemetryPath}, {MonoNs: done, Kind: KindResponse, Name: "ext", Path: telemetryPath, Status: st}}
	}
	next := func(at int64, who string) Entry {
		p := "/2020-01-01/extension/event/next"
		if who == NameRuntime {
			p = "/2018-06-01/runtime/invocation/next"
		}
		return Entry{MonoNs: at, Kind: KindRequest, Name: who, Path: p}
	}
	cases := []struct {
		name      string
		extra     []Entry
		endedBy   string
		margin    time.Duration
		note      string // substring of the one expected note ("" = none)
		initDurMs float64
	}{
		{"sequential, runtime last", append(sub(107*ms, 108*ms, 200), next(109*ms, "ext"), next(300*ms, NameRuntime), end(300*ms, NameRuntime)),
			NameRuntime, 191 * time.Millisecond, "", 200},
		{"extension last", append(sub(107*ms, 108*ms, 200), next(150*ms, NameRuntime), next(260*ms, "ext"), end(260*ms, "ext")),
			"ext", 110 * time.Millisecond, "", 160},
		{"H18 race won", append(sub(108*ms, 111*ms, 200), next(109*ms, "ext"), next(112*ms, NameRuntime), end(112*ms, NameRuntime)),
			NameRuntime, 3 * time.Millisecond, "RACE: /next was sent before", 12},
		{"H18 race lost", append([]Entry{next(107*ms, "ext"), next(108*ms, NameRuntime), end(108*ms, NameRuntime)}, sub(109*ms, 110*ms, 403)...),
			NameRuntime, time.Millisecond, "RACE LOST: subscribe arrived 1.00ms after init ended (status 403", 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := append(append([]Entry(nil), base...), tc.extra...)
			s, err := Summarize(es)
			if err != nil {
				t.Fatal(err)
			}
			if s.EndedBy != tc.endedBy || s.EndedByMargin != tc.margin {
				t.Errorf("ended by %s by %v, want %s by %v", s.EndedBy, s.EndedByMargin, tc.endedBy, tc.margin)
			}
			if got := float64(s.InitDuration) / 1e6; got != tc.initDurMs {
				t.Errorf("Init Duration %v ms, want %v", got, tc.initDurMs)
			}
			switch {
			case tc.note == "" && len(s.Notes) != 0:
				t.Errorf("unexpected notes %q", s.Notes)
			case tc.note != "" && (len(s.Notes) != 1 || !strings.Contains(s.Notes[0], tc.note)):
				t.Errorf("notes %q, want one containing %q", s.Notes, tc.note)
			}
			var b bytes.Buffer
			s.WriteText(&b)
			if !strings.Contains(b.String(), "Init Duration:") || !strings.Contains(b.String(), "ext") {
				t.Errorf("text summary:\n%s", b.String())
			}
		})
	}
	if _, err := Summarize([]Entry{{MonoNs: 1, Kind: KindSpawn}}); err == nil || !strings.Contains(err.Error(), "initStart") {
		t.Errorf("timeline without initStart: %v", err)
	}
}

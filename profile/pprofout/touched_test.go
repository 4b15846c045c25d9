package pprofout

import (
	"bytes"
	"testing"

	"github.com/google/pprof/profile"

	ip "github.com/initprof/initprof/profile"
)

func TestTouched(t *testing.T) {
	runs := []ip.Run{{Index: 0, Build: "b", Processes: []ip.Process{{Name: "ext", Touched: map[string]*ip.Touched{
		"exec": {Rows: []ip.TouchedRow{
			{File: "/opt/extensions/ext", Section: ".text", Owner: "tokio", Symbol: "tokio::spawn", Kind: ip.TouchMajor, Bytes: 3000, Chunks: 1},
			{File: "/opt/extensions/ext", Section: ".rodata", Kind: ip.TouchReadahead, Bytes: 1096},
		}},
		"to_main": {Rows: []ip.TouchedRow{{File: "/lib/libc.so.6", Section: ".text", Owner: "libc.so.6", Symbol: "memcpy", Kind: ip.TouchMinor, Bytes: 4096, Chunks: 1}}},
	}}}}}
	if !HasTouched(runs) || HasTouched([]ip.Run{{}}) {
		t.Fatal("HasTouched")
	}
	var buf bytes.Buffer
	if err := WriteTouched(&buf, runs); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var bytesTotal, chunks int64
	leaves := map[string]int64{}
	for _, s := range p.Sample {
		bytesTotal += s.Value[0]
		chunks += s.Value[1]
		leaves[s.Location[0].Line[0].Function.Name] += s.Value[0]
		if root := s.Location[len(s.Location)-1].Line[0].Function.Name; root != "/opt/extensions/ext" && root != "/lib/libc.so.6" {
			t.Errorf("root frame %q, want the file", root)
		}
		if s.Label[LabelSection] == nil || s.Label[LabelPhase] == nil || s.Label[LabelKind] == nil {
			t.Errorf("labels %v", s.Label)
		}
	}
	if bytesTotal != 8192 || chunks != 2 {
		t.Errorf("total %d bytes, %d chunks; want 8192, 2", bytesTotal, chunks)
	}
	if leaves["tokio::spawn"] != 3000 || leaves["(.rodata)"] != 1096 || leaves["memcpy"] != 4096 {
		t.Errorf("leaves %v", leaves)
	}
	// libc's owner is the file itself: no owner frame between.
	for _, s := range p.Sample {
		if s.Location[0].Line[0].Function.Name == "memcpy" && len(s.Location) != 2 {
			t.Errorf("memcpy stack has %d frames, want 2", len(s.Location))
		}
	}
}

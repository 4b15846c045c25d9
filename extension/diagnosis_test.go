package extension

import (
	"strings"
	"testing"
)

// TestSummaryDiagnosis: a failed init quotes the failing process's last
// stderr lines; a SIGKILL at the shutdown deadline and killed leftovers are
// notes too.
func TestSummaryDiagnosis(t *testing.T) {
	tl := []Entry{
		{MonoNs: 100, Kind: KindState, Event: EventInitStart},
		{MonoNs: 110, Kind: KindSpawn, Name: "broken", PID: 7},
		{MonoNs: 111, Kind: KindSpawn, Name: "slowstop", PID: 8},
		{MonoNs: 112, Kind: KindLog, Name: "broken", Line: "hello", Detail: map[string]any{"stream": "stdout"}},
		{MonoNs: 113, Kind: KindLog, Name: "broken", Line: "/opt/extensions/broken: error while loading shared libraries: libx.so: cannot open shared object file: No such file or directory", Detail: map[string]any{"stream": "stderr"}},
		{MonoNs: 120, Kind: KindExit, Name: "broken", PID: 7, Detail: map[string]any{"exit_code": 127}},
		{MonoNs: 200, Kind: KindInitEnd, Detail: map[string]any{"status": "error", "duration_ms": 0.1, "ended_by": "broken"}},
		{MonoNs: 300, Kind: KindShutdown, Name: "slowstop", PID: 8, Event: "sigkill", Detail: map[string]any{"why": "shutdown deadline"}},
		{MonoNs: 301, Kind: KindShutdown, Name: "slowstop", PID: 8, Event: "kill_leftovers"},
	}
	s, err := Summarize(tl)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{
		"broken: exited during init",
		`broken: last output: "/opt/extensions/broken: error while loading shared libraries: libx.so: cannot open shared object file`,
		"slowstop: SIGKILLed at the shutdown deadline",
		"slowstop: processes it forked outlived it",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, `"hello"`) {
		t.Errorf("stdout quoted although stderr had lines:\n%s", notes)
	}
}

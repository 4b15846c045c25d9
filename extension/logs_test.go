package extension

import (
	"fmt"
	"regexp"
	"testing"
)

// TestLogLimiter: the first and last lines of each stream and phase, and
// every keep-pattern line, reach the timeline; the rest is counted.
func TestLogLimiter(t *testing.T) {
	tl := NewTimeline(nil)
	l := newLogLimiter(tl, []*regexp.Regexp{regexp.MustCompile(`^ckpt `)})
	n := LogKeepFirst + LogKeepLast + 1000
	for i := 0; i < n; i++ {
		l.line("ext", 7, "stdout", fmt.Sprintf("line %d", i), int64(i+1))
		if i == 500 {
			l.line("ext", 7, "stdout", "ckpt config_loaded", int64(i+1))
		}
	}
	l.line("ext", 7, "stderr", "one error", int64(n+1))
	l.setPhase(LogPhaseInvoke)
	l.line("ext", 7, "stdout", "invoke line", int64(n+2))
	l.flush()

	kept := map[string]bool{}
	var sums []Entry
	for _, e := range tl.Entries() {
		switch e.Kind {
		case KindLog:
			kept[e.Line] = true
		case KindLogSummary:
			sums = append(sums, e)
		}
	}
	for _, want := range []string{"line 0", fmt.Sprintf("line %d", LogKeepFirst-1), fmt.Sprintf("line %d", n-LogKeepLast), fmt.Sprintf("line %d", n-1), "ckpt config_loaded", "one error", "invoke line"} {
		if !kept[want] {
			t.Errorf("%q is not in the timeline", want)
		}
	}
	for _, gone := range []string{fmt.Sprintf("line %d", LogKeepFirst), fmt.Sprintf("line %d", n-LogKeepLast-1)} {
		if kept[gone] {
			t.Errorf("%q is in the timeline", gone)
		}
	}
	if len(kept) != LogKeepFirst+LogKeepLast+3 {
		t.Errorf("%d lines kept, want %d", len(kept), LogKeepFirst+LogKeepLast+3)
	}
	c := LogCounts(tl.Entries())
	if got := c["ext"]["stdout"]; got[0] != int64(n+2) || got[2] != int64(n+1-(LogKeepFirst+LogKeepLast+1)) {
		t.Errorf("stdout counts %v (lines, bytes, dropped), want %d lines, %d dropped", got, n+2, n+1-(LogKeepFirst+LogKeepLast+1))
	}
	if len(sums) != 3 {
		t.Errorf("%d log_summary entries, want 3 (stdout init, stderr init, stdout invoke): %+v", len(sums), sums)
	}
}

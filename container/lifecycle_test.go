package container

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLifecycleRunNames checks the run numbering and the run names both
// sandboxes build their directories and container IDs from.
func TestLifecycleRunNames(t *testing.T) {
	var l lifecycle
	for i, tc := range []struct{ runID, wantName string }{
		{"", "1"},
		{"cold/3 x", "cold_3_x"},
		{"warm-1.a_b", "warm-1.a_b"},
		{"", "4"},
	} {
		n, name, err := l.nextRun(tc.runID)
		if err != nil || n != i+1 || name != tc.wantName {
			t.Errorf("nextRun(%q) = %d, %q, %v; want %d, %q", tc.runID, n, name, err, i+1, tc.wantName)
		}
	}
}

// TestLifecycleClose checks Close removes the extra directories always and the
// work directory only when the sandbox made it, once, and that Create's
// nextRun then refuses.
func TestLifecycleClose(t *testing.T) {
	for _, owned := range []bool{true, false} {
		work := t.TempDir()
		extra := filepath.Join(work, "bundle-1")
		if err := os.Mkdir(extra, 0o755); err != nil {
			t.Fatal(err)
		}
		s := &processSandbox{lifecycle: lifecycle{work: work, owned: owned}}
		for i := 0; i < 2; i++ {
			if err := s.close(s, extra, ""); err != nil {
				t.Errorf("owned=%v: close #%d: %v", owned, i+1, err)
			}
		}
		if _, err := os.Stat(extra); !os.IsNotExist(err) {
			t.Errorf("owned=%v: %s still exists after close (%v)", owned, extra, err)
		}
		if _, err := os.Stat(work); os.IsNotExist(err) == !owned {
			t.Errorf("owned=%v: work directory exists=%v after close", owned, err == nil)
		}
		if _, _, err := s.nextRun(""); err == nil {
			t.Errorf("owned=%v: nextRun after close succeeded", owned)
		}
	}
}

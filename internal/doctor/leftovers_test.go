package doctor

import "testing"

// TestLeftovers: the line is always there, named, OK or a warning (what
// dead initprofs left is removed as doctor looks; it never fails the
// verdict), and a warning says what was found or what to run.
func TestLeftovers(t *testing.T) {
	r := Leftovers()
	if r.Name != "leftovers" || r.Required {
		t.Errorf("Leftovers() = %+v, want the optional line \"leftovers\"", r)
	}
	switch r.Status {
	case OK:
	case Warn:
		if r.Detail == "" {
			t.Errorf("a warning without detail: %+v", r)
		}
	default:
		t.Errorf("status %v, want OK or WARN", r.Status)
	}
}

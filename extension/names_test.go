package extension

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckExtensionName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"datadog-agent", true},
		{"my.ext_v2", true},
		{strings.Repeat("a", MaxExtensionName), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../../etc/passwd", false},
		{"a/b", false},
		{strings.Repeat("a", MaxExtensionName+1), false},
		{strings.Repeat("x", 5000), false},
	} {
		e := CheckExtensionName(c.name)
		if (e == nil) != c.ok {
			t.Errorf("CheckExtensionName(%.20q…): %v, want ok=%v", c.name, e, c.ok)
		}
		if e != nil && (e.Status != http.StatusForbidden || e.Type != ErrInvalidExtensionName) {
			t.Errorf("CheckExtensionName(%.20q…) = %d %s, want 403 %s", c.name, e.Status, e.Type, ErrInvalidExtensionName)
		}
	}
}

// TestSummaryLeavesOutRejectedRegistrations: names the platform refused to
// register are notes, not rows of extensions.
func TestSummaryLeavesOutRejectedRegistrations(t *testing.T) {
	reg := "/2020-01-01/extension/register"
	long := strings.Repeat("x", 5000)
	tl := []Entry{
		{MonoNs: 100, Kind: KindState, Event: EventInitStart},
		{MonoNs: 110, Kind: KindSpawn, Name: "good", PID: 7},
		{MonoNs: 111, Kind: KindRequest, Name: "good", Method: "POST", Path: reg},
		{MonoNs: 112, Kind: KindResponse, Name: "good", Method: "POST", Path: reg, Status: 200},
		{MonoNs: 113, Kind: KindRequest, Name: "../../etc/passwd", Method: "POST", Path: reg},
		{MonoNs: 114, Kind: KindResponse, Name: "../../etc/passwd", Method: "POST", Path: reg, Status: 403},
		{MonoNs: 115, Kind: KindRequest, Name: long, Method: "POST", Path: reg},
		{MonoNs: 116, Kind: KindResponse, Name: long, Method: "POST", Path: reg, Status: 403},
		{MonoNs: 117, Kind: KindRequest, Name: "wrongmethod", Method: "GET", Path: reg},
		{MonoNs: 118, Kind: KindResponse, Name: "wrongmethod", Method: "GET", Path: reg, Status: 405},
		{MonoNs: 119, Kind: KindRequest, Name: "big", Method: "POST", Path: reg},
		{MonoNs: 120, Kind: KindResponse, Name: "big", Method: "POST", Path: reg, Status: 413},
		{MonoNs: 121, Kind: KindRequest, Name: "good", Method: "GET", Path: "/2020-01-01/extension/event/next"},
		{MonoNs: 200, Kind: KindInitEnd, Detail: map[string]any{"status": "success", "duration_ms": 0.1, "ended_by": "good"}},
	}
	s, err := Summarize(tl)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range s.Extensions {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "good" {
		t.Errorf("extensions %q, want only good", names)
	}
	if len(s.Rejected) != 4 {
		t.Errorf("rejected %+v, want 4", s.Rejected)
	}
	var b strings.Builder
	s.WriteText(&b)
	if strings.Contains(b.String(), "wrongmethod (int)") || strings.Contains(b.String(), long) {
		t.Errorf("the summary lists refused registrations as extensions:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "registration refused (status 405)") {
		t.Errorf("the summary does not say a registration was refused:\n%s", b.String())
	}
}

// TestRegisterRefusesBadNames: the HTTP API answers a bad name with 403
// Extension.InvalidExtensionName, and the name is never registered.
func TestRegisterRefusesBadNames(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", strings.Repeat("n", 5000), "..", "a/b"} {
		c := newTestCore(t)
		req := httptest.NewRequest(http.MethodPost, "/2020-01-01/extension/register", strings.NewReader(`{"events":["INVOKE"]}`))
		req.Header.Set("Lambda-Extension-Name", name)
		rec := httptest.NewRecorder()
		NewHandler(c, NewTimeline(nil)).ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), ErrInvalidExtensionName) {
			t.Errorf("register %.20q…: %d %s, want 403 %s", name, rec.Code, rec.Body.String(), ErrInvalidExtensionName)
		}
		for _, e := range c.Extensions() {
			if e.Name == name || e.State != ExtLaunched {
				t.Errorf("register %.20q…: %s is %s", name, e.Name, e.State)
			}
		}
	}
}

package fakeplatform

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// call sends one request to the double the way an extension would.
func call(t *testing.T, method, url, feature, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Lambda-Extension-Name", "ext")
	req.Header.Set("Lambda-Extension-Identifier", ExtensionID)
	if feature != "" {
		req.Header.Set("Lambda-Extension-Accept-Feature", feature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestLifecycle drives the double through the protocol with a plain HTTP
// client and checks its answers and records, since both sample test packages
// trust them.
func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name, feature string
		wantAccount   bool
	}{
		{"with-accountId", "accountId", true},
		{"without-accountId", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events atomic.Int32
			listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var batch []json.RawMessage
				if err := json.NewDecoder(r.Body).Decode(&batch); err == nil {
					events.Add(int32(len(batch)))
				}
			}))
			defer listener.Close()
			p := New(t, Options{})
			base := "http://" + p.Addr()

			resp, body := call(t, "POST", base+"/2020-01-01/extension/register", tc.feature, `{"events":["INVOKE","SHUTDOWN"]}`)
			if resp.Header.Get("Lambda-Extension-Identifier") != ExtensionID {
				t.Errorf("register answered identifier %q, want %q", resp.Header.Get("Lambda-Extension-Identifier"), ExtensionID)
			}
			if got := strings.Contains(body, `"accountId"`); got != tc.wantAccount {
				t.Errorf("register body %s: accountId present %v, want %v", body, got, tc.wantAccount)
			}
			select {
			case <-p.Registered():
			default:
				t.Error("Registered() not closed after register")
			}
			sub := `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:` +
				strings.TrimPrefix(listener.URL, "http://127.0.0.1:") + `/"}}`
			if resp, body := call(t, "PUT", base+"/2022-07-01/telemetry", "", sub); resp.StatusCode != 200 || body != "OK" {
				t.Errorf("subscribe answered %d %q, want 200 OK", resp.StatusCode, body)
			}
			if _, body := call(t, "GET", base+"/2020-01-01/extension/event/next", "", ""); !strings.Contains(body, `"eventType":"INVOKE"`) {
				t.Errorf("first /next answered %s, want an INVOKE", body)
			}
			if _, body := call(t, "GET", base+"/2020-01-01/extension/event/next", "", ""); !strings.Contains(body, `"eventType":"Shutdown"`) {
				t.Errorf("second /next answered %s, want a Shutdown", body)
			}
			if resp, _ := call(t, "POST", base+"/2020-01-01/extension/exit/error", "", ""); resp.StatusCode != http.StatusAccepted {
				t.Errorf("exit/error answered %d, want 202", resp.StatusCode)
			}

			rec := p.Record()
			if rec.RegisterName != "ext" || rec.RegisterFeature != tc.feature || rec.SubscribeBody != sub || rec.SubscribeID != ExtensionID {
				t.Errorf("record %+v does not hold what was sent", rec)
			}
			if len(rec.NextIn) != 2 || len(rec.NextIDs) != 2 || rec.NextIn[0] > rec.NextIn[1] {
				t.Errorf("/next arrivals %v, want two in order", rec.NextIn)
			}
			if !(rec.RegisterAt < rec.SubscribeIn && rec.SubscribeIn <= rec.SubscribeAt && rec.SubscribeAt < rec.NextIn[0]) {
				t.Errorf("clock readings out of request order: register %d, subscribe in %d at %d, next %d",
					rec.RegisterAt, rec.SubscribeIn, rec.SubscribeAt, rec.NextIn[0])
			}
			if rec.DeliverErr != nil || rec.Delivered != 2 || events.Load() != 2 {
				t.Errorf("delivered %d (listener saw %d), err %v; want 2", rec.Delivered, events.Load(), rec.DeliverErr)
			}
			if len(rec.ErrorReports) != 1 || rec.ErrorReports[0] != "/2020-01-01/extension/exit/error " {
				t.Errorf("error reports %q", rec.ErrorReports)
			}
			if rec.H18Violation != "" || rec.HookErr != nil {
				t.Errorf("unexpected violation %q / hook error %v", rec.H18Violation, rec.HookErr)
			}
		})
	}
}

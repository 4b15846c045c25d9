package extension

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzHandlers throws arbitrary methods, paths, headers and bodies at the API,
// against a core that has a registered extension and an invoke in flight. The
// platform must answer every one with a JSON error or success, and never
// panic (the handler recovers, so a recovered panic on the timeline fails).
func FuzzHandlers(f *testing.F) {
	seeds := []struct{ method, path, name, id, etype, body string }{
		{"POST", "/2020-01-01/extension/register", "ext-a", "", "", `{"events":["INVOKE","SHUTDOWN"]}`},
		{"POST", "/2020-01-01/extension/register", "x", "", "", `{"events":["SHUTDOWN"],"configurationKeys":["a"]}`},
		{"GET", "/2020-01-01/extension/event/next", "", "$ID", "", ""},
		{"POST", "/2020-01-01/extension/init/error", "", "$ID", "Extension.X", `{"errorMessage":1}`},
		{"POST", "/2020-01-01/extension/exit/error", "", "not-a-uuid", "", ""},
		{"PUT", "/2022-07-01/telemetry", "", "$ID", "", goodSub},
		{"PUT", "/2020-08-15/logs", "", "$ID", "", `{"schemaVersion":"2021-03-18","types":["function"],"buffering":{"maxItems":-1},"destination":{"protocol":"TCP","port":9001}}`},
		{"GET", "/2018-06-01/runtime/invocation/next", "", "", "", ""},
		{"POST", "/2018-06-01/runtime/invocation/req-1/response", "", "", "", `{"ok":true}`},
		{"POST", "/2018-06-01/runtime/invocation/req-1/error", "", "", "Function.X", `not json`},
		{"POST", "/2018-06-01/runtime/init/error", "", "", "", `{}`},
		{"DELETE", "/2018-06-01/runtime/invocation//response", "", "", "", ""},
		{"GET", "/%2e%2e/etc/passwd", "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.name, s.id, s.etype, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, name, id, etype, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?") {
			t.Skip() // not an HTTP request a client could send
		}
		c := newTestCore(t)
		eid := withInvoke("req-1")(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req := httptest.NewRequest("GET", "/", strings.NewReader(body)).WithContext(ctx)
		req.Method = method
		req.URL.Path = path
		req.URL.RawPath = ""
		for k, v := range map[string]string{hdrExtName: name, hdrExtID: strings.ReplaceAll(id, "$ID", eid), hdrExtErrorType: etype, hdrRtErrorType: etype} {
			if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		tl := NewTimeline(nil)
		NewHandler(c, tl).ServeHTTP(rec, req)
		for _, e := range tl.Entries() {
			if e.Event == "panic" {
				t.Fatalf("%s %s panicked: %v", method, path, e.Detail["panic"])
			}
		}
		if rec.Code == 0 && rec.Body.Len() == 0 {
			return // a long-poll the fuzzer's deadline cut: nothing is sent, as in Lambda
		}
		if rec.Code < 200 || rec.Code >= 600 {
			t.Fatalf("%s %s: status %d", method, path, rec.Code)
		}
		b := rec.Body.Bytes()
		if string(b) == "OK" || (rec.Code == 200 && strings.HasSuffix(path, "/invocation/next")) {
			return
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: status %d with a non-JSON body %q", method, path, rec.Code, b)
		}
		if rec.Code >= 400 {
			if _, ok := v["errorType"].(string); !ok {
				t.Fatalf("%s %s: error %d without errorType: %s", method, path, rec.Code, b)
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

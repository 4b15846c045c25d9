package extension

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/initprof/initprof/extension/telemetry"
)

// apiCase is one rule of Lambda's APIs: a state, a request, and what Lambda
// answers (status, errorType, body keys, headers).
type apiCase struct {
	name string
	// setup prepares the core and returns the identifier to send (if any).
	setup   func(t *testing.T, c *Core) string
	method  string
	path    string
	headers map[string]string // "$ID" is replaced by setup's identifier
	body    string

	status    int
	errorType string   // "" for success
	keys      []string // top-level JSON keys the body must have
	noKeys    []string // keys it must not have
	hdrs      []string // response headers that must be present
	rawBody   string   // when set, the exact non-JSON body (Lambda's "OK")
}

var testFn = FunctionConfig{FunctionName: "fn", Version: "$LATEST", Handler: "h.handler", AccountID: "111122223333", Region: "eu-west-1", MemoryMB: 512}

func newTestCore(t *testing.T) *Core {
	t.Helper()
	hub := telemetry.NewHub(telemetry.Options{})
	t.Cleanup(func() {
		// Nothing listens at the test destinations; don't wait for them.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_ = hub.Close(ctx)
	})
	c := NewCore(testFn, hub)
	c.AddExternal("ext-a")
	c.AddExternal("ext-b")
	return c
}

func mustRegister(t *testing.T, c *Core, name string, events ...string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"events": events})
	id, _, err := c.Register(name, b, "")
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return id
}

func registered(events ...string) func(*testing.T, *Core) string {
	return func(t *testing.T, c *Core) string { return mustRegister(t, c, "ext-a", events...) }
}

// withInvoke registers ext-a for INVOKE and releases one invoke.
func withInvoke(id string) func(*testing.T, *Core) string {
	return func(t *testing.T, c *Core) string {
		eid := mustRegister(t, c, "ext-a", EventInvoke, EventShutdown)
		c.mu.Lock()
		c.byID[eid].State = ExtReady
		c.mu.Unlock()
		inv := &Invoke{ID: id, DeadlineMs: 1700000000000, FunctionArn: testFn.Arn(), TraceID: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", Payload: []byte(`{"k":1}`)}
		c.startInvoke(inv, ExtEvent{EventType: EventInvoke, DeadlineMs: inv.DeadlineMs, RequestID: id, InvokedFunctionArn: inv.FunctionArn, Tracing: &Tracing{Type: "X-Amzn-Trace-Id", Value: inv.TraceID}})
		return eid
	}
}

// answered: the runtime got invoke "req-1" (its /next returned it).
func answeredSetup(t *testing.T, c *Core) string {
	withInvoke("req-1")(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.RuntimeNext(ctx, MonoNow()); err != nil {
		t.Fatalf("runtime next: %v", err)
	}
	return ""
}

const goodSub = `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8123/"}}`

func TestAPIConformance(t *testing.T) {
	reg := "/2020-01-01/extension/register"
	next := "/2020-01-01/extension/event/next"
	initErr := "/2020-01-01/extension/init/error"
	exitErr := "/2020-01-01/extension/exit/error"
	tele := "/2022-07-01/telemetry"
	logs := "/2020-08-15/logs"
	rtNext := "/2018-06-01/runtime/invocation/next"
	idh := map[string]string{hdrExtID: "$ID"}
	randomID := uuid.NewString()
	closeInit := func(t *testing.T, c *Core) string { c.endInit(); return "" }

	cases := []apiCase{
		// register
		{name: "register external with accountId", method: "POST", path: reg,
			headers: map[string]string{hdrExtName: "ext-a", hdrExtAcceptFeature: "accountId"}, body: `{"events":["INVOKE","SHUTDOWN"]}`,
			status: 200, keys: []string{"functionName", "functionVersion", "handler", "accountId"}, hdrs: []string{hdrExtID}},
		{name: "register without accountId feature", method: "POST", path: reg,
			headers: map[string]string{hdrExtName: "ext-a"}, body: `{"events":["INVOKE"]}`,
			status: 200, keys: []string{"functionName", "functionVersion", "handler"}, noKeys: []string{"accountId"}, hdrs: []string{hdrExtID}},
		{name: "register internal with INVOKE", method: "POST", path: reg,
			headers: map[string]string{hdrExtName: "in-proc"}, body: `{"events":["INVOKE"]}`, status: 200, hdrs: []string{hdrExtID}},
		{name: "register empty name", method: "POST", path: reg, body: `{"events":[]}`, status: 403, errorType: ErrInvalidExtensionName},
		{name: "register configurationKeys", method: "POST", path: reg, headers: map[string]string{hdrExtName: "ext-a"},
			body: `{"events":["INVOKE"],"configurationKeys":["k"]}`, status: 403, errorType: ErrInvalidRequestFormat},
		{name: "register bad JSON", method: "POST", path: reg, headers: map[string]string{hdrExtName: "ext-a"},
			body: `{"events":`, status: 403, errorType: ErrInvalidRequestFormat},
		{name: "register unknown event", method: "POST", path: reg, headers: map[string]string{hdrExtName: "ext-a"},
			body: `{"events":["INVOKE","FOO"]}`, status: 403, errorType: ErrInvalidEventType},
		{name: "internal may not subscribe to SHUTDOWN", method: "POST", path: reg, headers: map[string]string{hdrExtName: "in-proc"},
			body: `{"events":["SHUTDOWN"]}`, status: 403, errorType: ErrInvalidEventType},
		{name: "register twice", setup: registered(EventInvoke), method: "POST", path: reg,
			headers: map[string]string{hdrExtName: "ext-a"}, body: `{"events":["INVOKE"]}`, status: 403, errorType: ErrInvalidExtensionState},
		{name: "internal duplicate name", setup: func(t *testing.T, c *Core) string { mustRegister(t, c, "dup"); return "" },
			method: "POST", path: reg, headers: map[string]string{hdrExtName: "dup"}, body: `{}`, status: 403, errorType: ErrInvalidExtensionState},
		{name: "register after registration closed", setup: closeInit, method: "POST", path: reg,
			headers: map[string]string{hdrExtName: "ext-b"}, body: `{"events":["INVOKE"]}`, status: 403, errorType: ErrRegistrationClosed},
		{name: "too many extensions", setup: func(t *testing.T, c *Core) string {
			for i := 0; i < MaxExtensions-2; i++ {
				mustRegister(t, c, "int-"+string(rune('a'+i)))
			}
			return ""
		}, method: "POST", path: reg, headers: map[string]string{hdrExtName: "one-too-many"}, body: `{}`, status: 403, errorType: ErrTooManyExtensions},
		{name: "register body too large", method: "POST", path: reg, headers: map[string]string{hdrExtName: "ext-a"},
			body: `{"events":[],"x":"` + strings.Repeat("a", maxRequestBytes) + `"}`, status: 413, errorType: ErrRequestEntityTooLarge},

		// identifier checks (shared by next, init/error, exit/error, telemetry, logs)
		{name: "next without identifier", method: "GET", path: next, status: 403, errorType: ErrMissingExtensionIdentifier},
		{name: "next with non-UUID identifier", method: "GET", path: next, headers: map[string]string{hdrExtID: "not-a-uuid"}, status: 403, errorType: ErrInvalidExtensionIdentifier},
		{name: "next with unknown identifier", method: "GET", path: next, headers: map[string]string{hdrExtID: randomID}, status: 403, errorType: ErrUnknownExtensionIdentifier},
		{name: "init/error without identifier", method: "POST", path: initErr, headers: map[string]string{hdrExtErrorType: "Extension.X"}, status: 403, errorType: ErrMissingExtensionIdentifier},
		{name: "exit/error unknown identifier", method: "POST", path: exitErr, headers: map[string]string{hdrExtID: randomID, hdrExtErrorType: "Extension.X"}, status: 403, errorType: ErrUnknownExtensionIdentifier},
		{name: "telemetry without identifier", method: "PUT", path: tele, body: goodSub, status: 403, errorType: ErrMissingExtensionIdentifier},
		{name: "telemetry non-UUID identifier", method: "PUT", path: tele, headers: map[string]string{hdrExtID: "123"}, body: goodSub, status: 403, errorType: ErrInvalidExtensionIdentifier},
		{name: "logs unknown identifier", method: "PUT", path: logs, headers: map[string]string{hdrExtID: randomID}, body: goodSub, status: 403, errorType: ErrUnknownExtensionIdentifier},

		// event/next
		{name: "next returns INVOKE with Lambda's fields", setup: withInvoke("req-1"), method: "GET", path: next, headers: idh,
			status: 200, keys: []string{"eventType", "deadlineMs", "requestId", "invokedFunctionArn", "tracing"}, noKeys: []string{"shutdownReason"}, hdrs: []string{hdrExtID}},
		{name: "next returns SHUTDOWN with Lambda's fields", setup: func(t *testing.T, c *Core) string {
			id := mustRegister(t, c, "ext-a", EventShutdown)
			c.deliverShutdown(ExtEvent{EventType: EventShutdown, ShutdownReason: "spindown", DeadlineMs: 1700000002000})
			return id
		}, method: "GET", path: next, headers: idh, status: 200, keys: []string{"eventType", "shutdownReason", "deadlineMs"}, noKeys: []string{"requestId", "tracing"}},
		{name: "next after init/error", setup: func(t *testing.T, c *Core) string {
			id := mustRegister(t, c, "ext-a", EventInvoke)
			if err := c.ExtError(id, true, "Extension.Boom"); err != nil {
				t.Fatal(err)
			}
			return id
		}, method: "GET", path: next, headers: idh, status: 403, errorType: ErrInvalidExtensionState},

		// init/error, exit/error
		{name: "init/error accepted", setup: registered(EventInvoke), method: "POST", path: initErr,
			headers: map[string]string{hdrExtID: "$ID", hdrExtErrorType: "Extension.Boom"}, body: `{"errorMessage":"m","errorType":"t","stackTrace":[]}`, status: 202},
		{name: "init/error missing error type", setup: registered(EventInvoke), method: "POST", path: initErr, headers: idh, status: 403, errorType: ErrMissingHeader},
		{name: "init/error after init ended", setup: func(t *testing.T, c *Core) string { id := registered(EventInvoke)(t, c); c.endInit(); return id },
			method: "POST", path: initErr, headers: map[string]string{hdrExtID: "$ID", hdrExtErrorType: "Extension.Boom"}, status: 403, errorType: ErrInvalidExtensionState},
		{name: "exit/error accepted", setup: registered(EventInvoke), method: "POST", path: exitErr,
			headers: map[string]string{hdrExtID: "$ID", hdrExtErrorType: "Extension.Boom"}, status: 202},
		{name: "exit/error missing error type", setup: registered(EventInvoke), method: "POST", path: exitErr, headers: idh, status: 403, errorType: ErrMissingHeader},
		{name: "no call succeeds after exit/error", setup: func(t *testing.T, c *Core) string {
			id := mustRegister(t, c, "ext-a", EventInvoke)
			if err := c.ExtError(id, false, "Extension.Boom"); err != nil {
				t.Fatal(err)
			}
			return id
		}, method: "POST", path: exitErr, headers: map[string]string{hdrExtID: "$ID", hdrExtErrorType: "Extension.Again"}, status: 403, errorType: ErrInvalidExtensionState},

		// telemetry and logs
		{name: "telemetry subscribe", setup: registered(EventInvoke), method: "PUT", path: tele, headers: idh, body: goodSub, status: 200, rawBody: "OK"},
		{name: "logs subscribe", setup: registered(EventInvoke), method: "PUT", path: logs, headers: idh,
			body: `{"schemaVersion":"2021-03-18","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:8123/"}}`, status: 200, rawBody: "OK"},
		{name: "telemetry bad JSON", setup: registered(EventInvoke), method: "PUT", path: tele, headers: idh, body: `{"types":`, status: 400, errorType: "ValidationError"},
		{name: "telemetry after init", setup: func(t *testing.T, c *Core) string { id := registered(EventInvoke)(t, c); c.endInit(); return id },
			method: "PUT", path: tele, headers: idh, body: goodSub, status: 403, errorType: telemetry.ErrTelemetryClosed},

		// runtime API
		{name: "runtime next has every Lambda-Runtime header", setup: withInvoke("req-1"), method: "GET", path: rtNext, status: 200,
			keys: []string{"k"}, hdrs: []string{hdrRtRequestID, hdrRtDeadline, hdrRtArn, hdrRtTraceID, hdrRtClientContext, hdrRtCognito}},
		{name: "response accepted", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/req-1/response", body: `{"ok":true}`, status: 202},
		{name: "response with wrong id", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/other/response", body: `{}`, status: 400, errorType: ErrInvalidRequestID},
		{name: "response with no invoke", method: "POST", path: "/2018-06-01/runtime/invocation/req-1/response", body: `{}`, status: 400, errorType: ErrInvalidRequestID},
		{name: "response repeated", setup: func(t *testing.T, c *Core) string {
			answeredSetup(t, c)
			if err := c.RuntimeAnswer("req-1", false, "", 2, false, MonoNow()); err != nil {
				t.Fatal(err)
			}
			return ""
		}, method: "POST", path: "/2018-06-01/runtime/invocation/req-1/response", body: `{}`, status: 400, errorType: ErrInvalidRequestID},
		{name: "response over 6 MiB", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/req-1/response",
			body: strings.Repeat("x", MaxResponseBytes+1), status: 413, errorType: ErrRequestEntityTooLarge},
		{name: "response of exactly 6 MiB", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/req-1/response",
			body: strings.Repeat("x", MaxResponseBytes), status: 202},
		{name: "invocation error accepted", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/req-1/error",
			headers: map[string]string{hdrRtErrorType: "Function.Boom"}, body: `{"errorMessage":"m","errorType":"Function.Boom"}`, status: 202},
		{name: "invocation error wrong id", setup: answeredSetup, method: "POST", path: "/2018-06-01/runtime/invocation/nope/error", status: 400, errorType: ErrInvalidRequestID},
		{name: "runtime init/error accepted", method: "POST", path: "/2018-06-01/runtime/init/error", headers: map[string]string{hdrRtErrorType: "Runtime.Boom"}, status: 202},
		{name: "runtime init/error after init", setup: closeInit, method: "POST", path: "/2018-06-01/runtime/init/error", status: 403, errorType: ErrInvalidStateTransition},

		// routing
		{name: "unknown path", method: "GET", path: "/2020-01-01/extension/nope", status: 404, errorType: ErrNotFound},
		{name: "root path", method: "GET", path: "/", status: 404, errorType: ErrNotFound},
		{name: "invocation path with extra segment", method: "POST", path: "/2018-06-01/runtime/invocation/a/b/response", status: 404, errorType: ErrNotFound},
		{name: "wrong method on register", method: "GET", path: reg, status: 405, errorType: ErrMethodNotAllowed, hdrs: []string{"Allow"}},
		{name: "wrong method on telemetry", method: "POST", path: tele, status: 405, errorType: ErrMethodNotAllowed},
		{name: "wrong method on runtime next", method: "POST", path: rtNext, status: 405, errorType: ErrMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t)
			id := ""
			if tc.setup != nil {
				id = tc.setup(t, c)
			}
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, strings.ReplaceAll(v, "$ID", id))
			}
			ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
			defer cancel()
			req = req.WithContext(ctx)
			rec := httptest.NewRecorder()
			tl := NewTimeline(nil)
			NewHandler(c, tl).ServeHTTP(rec, req)

			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body.String())
			}
			if tc.rawBody != "" {
				if got := rec.Body.String(); got != tc.rawBody {
					t.Fatalf("body %q, want %q", got, tc.rawBody)
				}
				return
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not a JSON object: %v: %q", err, rec.Body.String())
			}
			if tc.errorType != "" {
				if body["errorType"] != tc.errorType {
					t.Errorf("errorType %v, want %s (body %s)", body["errorType"], tc.errorType, rec.Body.String())
				}
				if msg, _ := body["errorMessage"].(string); msg == "" {
					t.Errorf("error body has no errorMessage: %s", rec.Body.String())
				}
			}
			for _, k := range tc.keys {
				if _, ok := body[k]; !ok {
					t.Errorf("body lacks %q: %s", k, rec.Body.String())
				}
			}
			for _, k := range tc.noKeys {
				if _, ok := body[k]; ok {
					t.Errorf("body has %q, which Lambda omits here: %s", k, rec.Body.String())
				}
			}
			for _, h := range tc.hdrs {
				if _, ok := rec.Result().Header[http.CanonicalHeaderKey(h)]; !ok {
					t.Errorf("response lacks header %s", h)
				}
			}
			// Every request is on the timeline twice: arrival and response.
			var nreq, nresp int
			for _, e := range tl.Entries() {
				switch e.Kind {
				case KindRequest:
					nreq++
				case KindResponse:
					nresp++
					if e.Status != tc.status {
						t.Errorf("timeline response status %d, want %d", e.Status, tc.status)
					}
				}
			}
			if nreq != 1 || nresp != 1 {
				t.Errorf("timeline has %d request and %d response entries, want 1 and 1", nreq, nresp)
			}
		})
	}
}

// TestEventShapes pins the exact JSON of INVOKE and SHUTDOWN.
func TestEventShapes(t *testing.T) {
	inv := ExtEvent{EventType: EventInvoke, DeadlineMs: 1, RequestID: "r", InvokedFunctionArn: "a", Tracing: &Tracing{Type: "X-Amzn-Trace-Id", Value: "v"}}
	b, _ := json.Marshal(inv)
	if want := `{"eventType":"INVOKE","deadlineMs":1,"requestId":"r","invokedFunctionArn":"a","tracing":{"type":"X-Amzn-Trace-Id","value":"v"}}`; string(b) != want {
		t.Errorf("INVOKE = %s\nwant      %s", b, want)
	}
	sd := ExtEvent{EventType: EventShutdown, ShutdownReason: "spindown", DeadlineMs: 2}
	b, _ = json.Marshal(sd)
	if want := `{"eventType":"SHUTDOWN","deadlineMs":2,"shutdownReason":"spindown"}`; string(b) != want {
		t.Errorf("SHUTDOWN = %s\nwant        %s", b, want)
	}
}

// TestNextLongPoll: /next blocks until the engine releases an event, and a
// caller that goes away leaves the extension able to call /next again.
func TestNextLongPoll(t *testing.T) {
	c := newTestCore(t)
	id := mustRegister(t, c, "ext-a", EventInvoke, EventShutdown)
	srv := httptest.NewServer(NewHandler(c, nil))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/2020-01-01/extension/event/next", nil)
	req.Header.Set(hdrExtID, id)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("/next returned with no event released")
	}
	cancel()
	// Wait for the server to notice the abandoned poll.
	if err := c.waitFor(context.Background(), func() bool { return !c.byID[id].waiting }); err != nil {
		t.Fatal(err)
	}
	done := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/2020-01-01/extension/event/next", nil)
		req.Header.Set(hdrExtID, id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	_ = c.waitFor(context.Background(), func() bool { return c.byID[id].waiting })
	c.deliverShutdown(ExtEvent{EventType: EventShutdown, ShutdownReason: "spindown", DeadlineMs: 5})
	select {
	case resp := <-done:
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("/next after release: %v", resp)
		}
		var ev ExtEvent
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		if ev.EventType != EventShutdown || ev.ShutdownReason != "spindown" {
			t.Errorf("event %+v, want SHUTDOWN spindown", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("/next did not return after SHUTDOWN was released")
	}
}

package extension

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// API path prefixes, as Lambda serves them on AWS_LAMBDA_RUNTIME_API.
const (
	extensionPrefix = "/2020-01-01/extension/"
	runtimePrefix   = "/2018-06-01/runtime/"
	telemetryPath   = "/2022-07-01/telemetry"
	logsPath        = "/2020-08-15/logs"
)

// Header names of the Extensions and Runtime APIs.
const (
	hdrExtName          = "Lambda-Extension-Name"
	hdrExtID            = "Lambda-Extension-Identifier"
	hdrExtAcceptFeature = "Lambda-Extension-Accept-Feature"
	hdrExtErrorType     = "Lambda-Extension-Function-Error-Type"
	hdrRtErrorType      = "Lambda-Runtime-Function-Error-Type"
	hdrRtRequestID      = "Lambda-Runtime-Aws-Request-Id"
	hdrRtDeadline       = "Lambda-Runtime-Deadline-Ms"
	hdrRtArn            = "Lambda-Runtime-Invoked-Function-Arn"
	hdrRtTraceID        = "Lambda-Runtime-Trace-Id"
	hdrRtClientContext  = "Lambda-Runtime-Client-Context"
	hdrRtCognito        = "Lambda-Runtime-Cognito-Identity"
)

type ctxKey int

const arrivalKey ctxKey = 0

// arrival returns the CLOCK_MONOTONIC instant the request arrived, as the
// timeline recorded it, so Core and timeline agree to the nanosecond.
func arrival(r *http.Request) int64 {
	if v, ok := r.Context().Value(arrivalKey).(int64); ok {
		return v
	}
	return MonoNow()
}

// route is one API endpoint: the handler for each allowed method.
type route struct {
	methods map[string]http.HandlerFunc
}

// handler is the HTTP surface of the platform: Lambda's routes, headers,
// statuses and error bodies, answered from Core. It never panics on input.
type handler struct {
	core *Core
	tl   *Timeline
}

// NewHandler returns the platform's HTTP handler over core. Every request
// and response is written to tl (which may be nil).
func NewHandler(core *Core, tl *Timeline) http.Handler {
	return &handler{core: core, tl: tl}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := MonoNow()
	path := r.URL.Path
	name := h.actor(r, path)
	h.tl.Add(Entry{MonoNs: now, Kind: KindRequest, Name: name, Method: r.Method, Path: path})
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			// A bug must cost one request, never the platform; the timeline
			// keeps the evidence (the fuzz test fails on it).
			h.tl.Add(Entry{Kind: KindState, Name: NamePlatform, Event: "panic", Method: r.Method, Path: path, Detail: map[string]any{"panic": fmt.Sprint(v)}})
			if sw.status == 0 {
				writeAPIError(sw, apiErr(http.StatusInternalServerError, ErrInternalServerError, "internal error handling %s %s", r.Method, path))
			}
		}
		if sw.status == 0 { // the client went away from a long-poll
			h.tl.Add(Entry{Kind: KindResponse, Name: name, Method: r.Method, Path: path, Detail: map[string]any{"aborted": true}})
			return
		}
		sw.Flush()
		// Stamped when the response was committed (its header written): no
		// client can act on a response before that instant, which is what
		// makes orderings such as "/next before the subscribe's answer" sound.
		h.tl.Add(Entry{MonoNs: sw.at, Kind: KindResponse, Name: name, Method: r.Method, Path: path, Status: sw.status,
			Detail: map[string]any{"flushed_mono_ns": MonoNow()}})
	}()
	r = r.WithContext(context.WithValue(r.Context(), arrivalKey, now))

	rt, ok := h.match(path)
	if !ok {
		writeAPIError(sw, apiErr(http.StatusNotFound, ErrNotFound, "no API at %s", path))
		return
	}
	fn, ok := rt.methods[r.Method]
	if !ok {
		allowed := make([]string, 0, len(rt.methods))
		for m := range rt.methods {
			allowed = append(allowed, m)
		}
		sw.Header().Set("Allow", strings.Join(allowed, ", "))
		writeAPIError(sw, apiErr(http.StatusMethodNotAllowed, ErrMethodNotAllowed, "%s %s is not allowed; use %s", r.Method, path, strings.Join(allowed, " or ")))
		return
	}
	fn(sw, r)
}

// actor names who is calling, for the timeline: the runtime, an extension
// (by name header or identifier), or "" when unknown.
func (h *handler) actor(r *http.Request, path string) string {
	switch {
	case strings.HasPrefix(path, runtimePrefix):
		return NameRuntime
	case path == extensionPrefix+"register":
		return r.Header.Get(hdrExtName)
	}
	if id := r.Header.Get(hdrExtID); id != "" {
		if n, err := h.core.Identify(id); err == nil {
			return n
		}
	}
	return ""
}

func (h *handler) match(path string) (route, bool) {
	one := func(m string, f http.HandlerFunc) route { return route{methods: map[string]http.HandlerFunc{m: f}} }
	switch path {
	case extensionPrefix + "register":
		return one(http.MethodPost, h.register), true
	case extensionPrefix + "event/next":
		return one(http.MethodGet, h.extNext), true
	case extensionPrefix + "init/error":
		return one(http.MethodPost, func(w http.ResponseWriter, r *http.Request) { h.extError(w, r, true) }), true
	case extensionPrefix + "exit/error":
		return one(http.MethodPost, func(w http.ResponseWriter, r *http.Request) { h.extError(w, r, false) }), true
	case telemetryPath:
		return one(http.MethodPut, func(w http.ResponseWriter, r *http.Request) { h.subscribe(w, r, false) }), true
	case logsPath:
		return one(http.MethodPut, func(w http.ResponseWriter, r *http.Request) { h.subscribe(w, r, true) }), true
	case runtimePrefix + "invocation/next":
		return one(http.MethodGet, h.rtNext), true
	case runtimePrefix + "init/error":
		return one(http.MethodPost, h.rtInitError), true
	}
	if rest, ok := strings.CutPrefix(path, runtimePrefix+"invocation/"); ok {
		id, kind, found := strings.Cut(rest, "/")
		if found && id != "" && !strings.Contains(kind, "/") {
			switch kind {
			case "response":
				return one(http.MethodPost, func(w http.ResponseWriter, r *http.Request) { h.rtAnswer(w, r, id, false) }), true
			case "error":
				return one(http.MethodPost, func(w http.ResponseWriter, r *http.Request) { h.rtAnswer(w, r, id, true) }), true
			}
		}
	}
	return route{}, false
}

// readBody reads at most limit bytes; tooLarge reports that there was more.
func readBody(r *http.Request, limit int) (b []byte, n int, tooLarge bool, err error) {
	if r.Body == nil {
		return nil, 0, false, nil
	}
	b, err = io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	n = len(b)
	if len(b) > limit {
		// Count what is left without keeping it, up to a sane bound, so the
		// producedBytes figure is honest for moderately large bodies.
		m, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		return b[:limit], n + int(m), true, err
	}
	return b, n, false, err
}

func tooLargeErr(limit int) *APIError {
	return apiErr(http.StatusRequestEntityTooLarge, ErrRequestEntityTooLarge, "Exceeded maximum allowed payload size (%d bytes).", limit)
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(hdrExtName)
	if e := CheckExtensionName(name); e != nil {
		writeAPIError(w, e)
		return
	}
	body, _, tooLarge, err := readBody(r, maxRequestBytes)
	if tooLarge {
		writeAPIError(w, tooLargeErr(maxRequestBytes))
		return
	}
	if err != nil {
		writeAPIError(w, apiErr(http.StatusForbidden, ErrInvalidRequestFormat, "reading register body: %v", err))
		return
	}
	id, resp, aerr := h.core.Register(name, body, r.Header.Get(hdrExtAcceptFeature))
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	w.Header().Set(hdrExtID, id)
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) extNext(w http.ResponseWriter, r *http.Request) {
	ev, aerr := h.core.ExtNext(r.Context(), r.Header.Get(hdrExtID), arrival(r))
	if aerr == errClientGone {
		return
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	w.Header().Set(hdrExtID, r.Header.Get(hdrExtID))
	writeJSON(w, http.StatusOK, ev)
}

func (h *handler) extError(w http.ResponseWriter, r *http.Request, init bool) {
	// The body ({errorMessage,errorType,stackTrace}) is optional and only
	// informative; read it (bounded) so keep-alive connections stay usable.
	_, _, _, _ = readBody(r, maxRequestBytes)
	if aerr := h.core.ExtError(r.Header.Get(hdrExtID), init, r.Header.Get(hdrExtErrorType)); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

func (h *handler) subscribe(w http.ResponseWriter, r *http.Request, logs bool) {
	id := r.Header.Get(hdrExtID)
	if _, aerr := h.core.identify(id); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	body, _, tooLarge, err := readBody(r, maxRequestBytes)
	if tooLarge {
		writeAPIError(w, tooLargeErr(maxRequestBytes))
		return
	}
	if err != nil {
		writeAPIError(w, apiErr(http.StatusBadRequest, "ValidationError", "reading subscription body: %v", err))
		return
	}
	st, resp, aerr := h.core.Subscribe(logs, id, body)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	ct := "text/plain; charset=utf-8" // Lambda answers a subscribe with a bare OK
	if len(resp) > 0 && resp[0] == '{' {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(st)
	_, _ = w.Write(resp)
}

func (h *handler) rtNext(w http.ResponseWriter, r *http.Request) {
	inv, aerr := h.core.RuntimeNext(r.Context(), arrival(r))
	if aerr == errClientGone {
		return
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	hd := w.Header()
	hd.Set(hdrRtRequestID, inv.ID)
	hd.Set(hdrRtDeadline, strconv.FormatInt(inv.DeadlineMs, 10))
	hd.Set(hdrRtArn, inv.FunctionArn)
	hd.Set(hdrRtTraceID, inv.TraceID)
	hd.Set(hdrRtClientContext, inv.ClientContext)
	hd.Set(hdrRtCognito, inv.CognitoIdentity)
	hd.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
}

func (h *handler) rtAnswer(w http.ResponseWriter, r *http.Request, id string, isError bool) {
	_, n, tooLarge, _ := readBody(r, MaxResponseBytes)
	if aerr := h.core.RuntimeAnswer(id, isError, r.Header.Get(hdrRtErrorType), n, tooLarge, arrival(r)); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

func (h *handler) rtInitError(w http.ResponseWriter, r *http.Request) {
	_, _, _, _ = readBody(r, maxRequestBytes)
	if aerr := h.core.RuntimeInitError(r.Header.Get(hdrRtErrorType)); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

// statusWriter remembers the status so the timeline can record it.
type statusWriter struct {
	http.ResponseWriter
	status int
	at     int64 // CLOCK_MONOTONIC when the status was written
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status, s.at = code, MonoNow()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status, s.at = http.StatusOK, MonoNow()
	}
	return s.ResponseWriter.Write(b)
}

// Flush pushes the response to the client, so the "response" entry is
// stamped after the bytes left, not before.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

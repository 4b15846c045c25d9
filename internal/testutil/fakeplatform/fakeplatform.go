// Package fakeplatform is a test double of the AWS Lambda Extensions and
// Telemetry APIs, for tests only: just enough of the platform to drive one
// real extension binary through register → telemetry subscribe → /next (one
// INVOKE, then SHUTDOWN), and to record what the extension sent and when, on
// CLOCK_MONOTONIC.
//
// It exists because the sample extensions (internal/samplestest) and the Rust
// sample (internal/rusttest) are checked against the same platform behaviour;
// one double keeps those checks honest with each other. The clock readings let
// a test hold the extension's own CLOCK_MONOTONIC checkpoints against what the
// platform saw (e.g. register_ok must come after the platform answered
// register). /work/shared/LAMBDA-API.md is the spec it follows.
//
// Pass Options to New; run the extension with Run, which parses its INIT
// lines; read what the platform saw with Record once it has exited; and hold
// the two against each other with CheckFullRun (or CheckNoNext).
package fakeplatform

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ExtensionID is the Lambda-Extension-Identifier the double hands out at
// register; an extension must send it back on subscribe and every /next.
const ExtensionID = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// h18Wait is how long HoldH18 holds one request waiting for the other.
const h18Wait = 3 * time.Second

// Options shape how the double answers. They are fixed when New starts the
// server, so the handlers read them without a lock (and without a race the
// race detector could not see through the extension's process).
type Options struct {
	// SubscribeStatus, when not 0, is the HTTP status the telemetry subscribe
	// gets (with a ValidationError body), to drive the error paths.
	SubscribeStatus int
	// HoldH18 makes the first /next and the subscribe each wait (up to 3s)
	// for the other to arrive before answering: both can only arrive if the
	// extension sent them concurrently. A violation is recorded in
	// Record.H18Violation.
	HoldH18 bool
	// OnFirstNext, when set, runs while the first /next is held, with the
	// extension fully initialised (e.g. to probe its listeners). Its error is
	// recorded in Record.HookErr.
	OnFirstNext func() error
}

// Platform is one fake Lambda platform, served on a loopback httptest server
// that closes when the test ends.
type Platform struct {
	opt Options
	t   testing.TB
	srv *httptest.Server

	mu                      sync.Mutex
	rec                     Record
	subArrived, nextArrived chan struct{}
	registered              chan struct{}
	subOnce, nextOnce       sync.Once
	regOnce                 sync.Once
}

// Record is what the extension sent and when, as of Platform.Record.
type Record struct {
	RegisterName    string // Lambda-Extension-Name header
	RegisterFeature string // Lambda-Extension-Accept-Feature header
	RegisterBody    string
	RegisterAt      uint64 // CLOCK_MONOTONIC as the register answer was about to be written

	SubscribeBody string
	SubscribeID   string // Lambda-Extension-Identifier header of the subscribe
	SubscribeIn   uint64 // CLOCK_MONOTONIC when the subscribe arrived
	SubscribeAt   uint64 // CLOCK_MONOTONIC as the subscribe answer was about to be written

	NextIDs []string // Lambda-Extension-Identifier header of each /next
	NextIn  []uint64 // CLOCK_MONOTONIC when each /next arrived

	// ErrorReports lists each init/error and exit/error report as "PATH
	// Lambda-Extension-Function-Error-Type".
	ErrorReports []string
	// Delivered counts the telemetry events the extension's listener
	// accepted with 200 (a batch of two is posted while the first /next is
	// held); DeliverErr says why the delivery failed, if it did.
	Delivered    int
	DeliverErr   error
	HookErr      error  // OnFirstNext's error
	H18Violation string // set when HoldH18 saw the two requests sent one after the other
}

// Subscription is the body of a telemetry subscribe (schema 2022-12-13).
type Subscription struct {
	SchemaVersion string   `json:"schemaVersion"`
	Types         []string `json:"types"`
	Buffering     struct {
		MaxItems  int `json:"maxItems"`
		MaxBytes  int `json:"maxBytes"`
		TimeoutMs int `json:"timeoutMs"`
	} `json:"buffering"`
	Destination struct {
		Protocol string `json:"protocol"`
		URI      string `json:"URI"`
	} `json:"destination"`
}

// MonoNS reads CLOCK_MONOTONIC in nanoseconds, the clock the extensions print
// their checkpoints on and the double records on.
func MonoNS(t testing.TB) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatalf("clock_gettime: %v", err)
	}
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// New starts a Platform answering as o says, for the test t; it is closed
// when t ends.
func New(t testing.TB, o Options) *Platform {
	p := &Platform{opt: o, t: t, subArrived: make(chan struct{}), nextArrived: make(chan struct{}), registered: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", p.register)
	mux.HandleFunc("PUT /2022-07-01/telemetry", p.subscribe)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", p.next)
	mux.HandleFunc("POST /2020-01-01/extension/init/error", p.errorReport)
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", p.errorReport)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// Addr is host:port, the value for AWS_LAMBDA_RUNTIME_API.
func (p *Platform) Addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// Registered is closed once the first register has been answered.
func (p *Platform) Registered() <-chan struct{} { return p.registered }

// Record returns a copy of what has been recorded so far.
func (p *Platform) Record() Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rec
	r.NextIDs = append([]string(nil), p.rec.NextIDs...)
	r.NextIn = append([]uint64(nil), p.rec.NextIn...)
	r.ErrorReports = append([]string(nil), p.rec.ErrorReports...)
	return r
}

func (p *Platform) register(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	feat := r.Header.Get("Lambda-Extension-Accept-Feature")
	p.mu.Lock()
	p.rec.RegisterName = r.Header.Get("Lambda-Extension-Name")
	p.rec.RegisterFeature = feat
	p.rec.RegisterBody = string(b)
	p.rec.RegisterAt = MonoNS(p.t)
	p.mu.Unlock()
	w.Header().Set("Lambda-Extension-Identifier", ExtensionID)
	w.Header().Set("Content-Type", "application/json")
	// Like the real platform, accountId only when the extension asked for it.
	account := ""
	if feat == "accountId" {
		account = `,"accountId":"123456789012"`
	}
	io.WriteString(w, `{"functionName":"fn","functionVersion":"$LATEST","handler":"h"`+account+`}`)
	p.regOnce.Do(func() { close(p.registered) })
}

func (p *Platform) subscribe(w http.ResponseWriter, r *http.Request) {
	in := MonoNS(p.t)
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.rec.SubscribeIn, p.rec.SubscribeBody = in, string(b)
	p.rec.SubscribeID = r.Header.Get("Lambda-Extension-Identifier")
	p.mu.Unlock()
	p.subOnce.Do(func() { close(p.subArrived) })
	if p.opt.HoldH18 {
		p.await(p.nextArrived, "subscribe was answered without a concurrent /next (waited 3s)")
	}
	if p.opt.SubscribeStatus != 0 {
		w.WriteHeader(p.opt.SubscribeStatus)
		io.WriteString(w, `{"errorMessage":"bad","errorType":"ValidationError"}`)
		return
	}
	p.mu.Lock()
	p.rec.SubscribeAt = MonoNS(p.t)
	p.mu.Unlock()
	io.WriteString(w, "OK")
}

// await waits for c for up to h18Wait, recording violation if it times out.
func (p *Platform) await(c chan struct{}, violation string) {
	select {
	case <-c:
	case <-time.After(h18Wait):
		p.mu.Lock()
		p.rec.H18Violation = violation
		p.mu.Unlock()
	}
}

func (p *Platform) next(w http.ResponseWriter, r *http.Request) {
	in := MonoNS(p.t)
	p.mu.Lock()
	p.rec.NextIn = append(p.rec.NextIn, in)
	p.rec.NextIDs = append(p.rec.NextIDs, r.Header.Get("Lambda-Extension-Identifier"))
	n := len(p.rec.NextIn)
	p.mu.Unlock()
	p.nextOnce.Do(func() { close(p.nextArrived) })
	if n > 1 {
		// Mixed case on purpose: consumers must parse eventType case-insensitively.
		io.WriteString(w, `{"eventType":"Shutdown","shutdownReason":"spindown","deadlineMs":1764140002000}`)
		return
	}
	if p.opt.HoldH18 {
		p.await(p.subArrived, "/next was answered without a concurrent subscribe (waited 3s)")
	}
	if p.opt.OnFirstNext != nil {
		if err := p.opt.OnFirstNext(); err != nil {
			p.mu.Lock()
			p.rec.HookErr = err
			p.mu.Unlock()
		}
	}
	// Deliver one telemetry batch to the subscriber, as the platform replays
	// init events, so the listener is exercised.
	p.deliver()
	w.Header().Set("Lambda-Extension-Event-Identifier", "ev-1")
	io.WriteString(w, `{"eventType":"INVOKE","deadlineMs":1764140000000,"requestId":"req-1",`+
		`"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn",`+
		`"tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}`)
}

// deliver posts one telemetry batch of two events to the subscriber's port on
// 127.0.0.1: the real sandbox resolves the URI's host (sandbox.localdomain)
// there, so only the port and path are trusted.
func (p *Platform) deliver() {
	p.mu.Lock()
	body := p.rec.SubscribeBody
	p.mu.Unlock()
	err := func() error {
		var sub Subscription
		if err := json.Unmarshal([]byte(body), &sub); err != nil {
			return fmt.Errorf("subscription body %q is not JSON: %v", body, err)
		}
		u, err := url.Parse(sub.Destination.URI)
		if err != nil {
			return fmt.Errorf("destination URI %q: %v", sub.Destination.URI, err)
		}
		batch := `[{"time":"2026-11-26T05:00:00.000Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init","functionName":"fn","functionVersion":"$LATEST"}},` +
			`{"time":"2026-11-26T05:00:00.001Z","type":"platform.telemetrySubscription","record":{"name":"x","state":"Subscribed","types":["platform","function"]}}]`
		resp, err := http.Post("http://127.0.0.1:"+u.Port()+u.Path, "application/json", strings.NewReader(batch))
		if err != nil {
			return fmt.Errorf("POST to the telemetry listener at port %s: %v", u.Port(), err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("telemetry listener answered %d", resp.StatusCode)
		}
		return nil
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.rec.DeliverErr = err
		return
	}
	p.rec.Delivered += 2
}

func (p *Platform) errorReport(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.rec.ErrorReports = append(p.rec.ErrorReports, r.URL.Path+" "+r.Header.Get("Lambda-Extension-Function-Error-Type"))
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

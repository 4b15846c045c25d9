package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envelope is how a consumer sees one event.
type envelope struct {
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Record json.RawMessage `json:"record"`
}

// received is one accepted HTTP batch.
type received struct {
	at          time.Time
	events      []envelope
	eventBytes  []int // size of each event's JSON
	payload     int   // size of the POST body
	contentType string
}

// consumer is a real HTTP telemetry listener on loopback, as an extension runs one.
// status decides the answer to the n-th request (1-based); nil means 200.
type consumer struct {
	t      testing.TB
	srv    *httptest.Server
	status func(n int) int

	mu       sync.Mutex
	requests int
	batches  []received
	arrived  chan struct{}
}

func newConsumer(t testing.TB, status func(n int) int) *consumer {
	c := &consumer{t: t, status: status, arrived: make(chan struct{}, 1)}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *consumer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.requests++
	n := c.requests
	c.mu.Unlock()
	code := http.StatusOK
	if c.status != nil {
		code = c.status(n)
	}
	if r.Method != http.MethodPost {
		c.t.Errorf("delivery method %s, want POST", r.Method)
	}
	if code != http.StatusOK {
		w.WriteHeader(code)
		return
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		c.t.Errorf("batch is not a JSON array: %v: %.200s", err, body)
		return
	}
	rec := received{at: time.Now(), payload: len(body), contentType: r.Header.Get("Content-Type")}
	for _, raw := range raws {
		var e envelope
		if err := json.Unmarshal(raw, &e); err != nil {
			c.t.Errorf("event is not an envelope: %s", raw)
		}
		rec.events = append(rec.events, e)
		rec.eventBytes = append(rec.eventBytes, len(raw))
	}
	c.mu.Lock()
	c.batches = append(c.batches, rec)
	c.mu.Unlock()
	select {
	case c.arrived <- struct{}{}:
	default:
	}
}

func (c *consumer) uri(path string) string { return c.srv.URL + path }

func (c *consumer) snapshot() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.batches...)
}

func (c *consumer) events() []envelope {
	var out []envelope
	for _, b := range c.snapshot() {
		out = append(out, b.events...)
	}
	return out
}

// waitFor polls cond until it holds or a generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func httpBody(schema string, types []string, buffering, uri string) []byte {
	tj, _ := json.Marshal(types)
	b := fmt.Sprintf(`{"schemaVersion":%q,"types":%s,"destination":{"protocol":"HTTP","URI":%q}`, schema, tj, uri)
	if buffering != "" {
		b += `,"buffering":` + buffering
	}
	return []byte(b + "}")
}

func mustSubscribe(t *testing.T, h *Hub, api API, name string, body []byte) {
	t.Helper()
	if status, resp := h.Subscribe(api, name, body); status != http.StatusOK {
		t.Fatalf("subscribe %s: %d %s", name, status, resp)
	}
}

func fnLine(i int) Event { return Event{Type: TypeFunction, Record: "line " + strconv.Itoa(i)} }

// recordString decodes a log-line record.
func recordString(t *testing.T, e envelope) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(e.Record, &s); err != nil {
		t.Fatalf("record of %s is not a string: %s", e.Type, e.Record)
	}
	return s
}

// TestHTTPBatchMaxItems: with a 30 s timeout, only maxItems can make a batch leave
// early; the remainder leaves when input closes.
func TestHTTPBatchMaxItems(t *testing.T) {
	c := newConsumer(t, nil)
	h := NewHub(Options{})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"maxItems":1000,"timeoutMs":30000}`, c.uri("/t")))
	for i := 0; i < 2500; i++ {
		h.Publish(fnLine(i))
	}
	waitFor(t, "two full batches", func() bool { return len(c.events()) >= 2000 })
	if n := len(c.events()); n != 2000 {
		t.Fatalf("%d events arrived before close, want exactly 2 batches of 1000", n)
	}
	closeHub(t, h)
	var sizes []int
	for _, b := range c.snapshot() {
		sizes = append(sizes, len(b.events))
		if b.contentType != "application/json" {
			t.Errorf("Content-Type %q, want application/json", b.contentType)
		}
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Errorf("batch sizes %v, want [1000 1000 500]", sizes)
	}
	for i, e := range c.events() {
		if got, want := recordString(t, e), "line "+strconv.Itoa(i); got != want {
			t.Fatalf("event %d is %q, want %q (order lost)", i, got, want)
		}
	}
}

// TestHTTPBatchMaxBytes: batches leave when they reach maxBytes, never split an event,
// and stay under 2x maxBytes.
func TestHTTPBatchMaxBytes(t *testing.T) {
	c := newConsumer(t, nil)
	h := NewHub(Options{})
	const maxBytes = 262144
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"maxBytes":262144,"timeoutMs":30000}`, c.uri("/")))
	line := strings.Repeat("x", 1000)
	for i := 0; i < 600; i++ {
		h.Publish(Event{Type: TypeFunction, Record: line})
	}
	waitFor(t, "two size-triggered batches", func() bool { return len(c.snapshot()) >= 2 })
	closeHub(t, h)
	bs := c.snapshot()
	total := 0
	for i, b := range bs {
		sum, largest := 0, 0
		for _, n := range b.eventBytes {
			sum += n
			largest = max(largest, n)
		}
		total += len(b.events)
		if b.payload > 2*maxBytes {
			t.Errorf("batch %d payload %d bytes exceeds 2x maxBytes", i, b.payload)
		}
		if i < len(bs)-1 && (sum < maxBytes || sum >= maxBytes+largest) {
			t.Errorf("batch %d carries %d event bytes; a size-triggered batch should reach maxBytes %d by less than one event (%d)", i, sum, maxBytes, largest)
		}
	}
	if total != 600 {
		t.Errorf("%d events delivered, want 600", total)
	}
}

// TestHTTPBatchTimeout: a small stream leaves as one batch, no sooner than timeoutMs
// after its first event.
func TestHTTPBatchTimeout(t *testing.T) {
	c := newConsumer(t, nil)
	h := NewHub(Options{})
	defer closeHub(t, h)
	const timeout = 200 * time.Millisecond
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":200}`, c.uri("/")))
	start := time.Now()
	for i := 0; i < 5; i++ {
		h.Publish(fnLine(i))
	}
	published := time.Since(start)
	waitFor(t, "the batch", func() bool { return len(c.events()) == 5 })
	bs := c.snapshot()
	if got := bs[0].at.Sub(start); got < timeout {
		t.Errorf("first batch arrived %v after the first event, sooner than timeoutMs %v", got, timeout)
	}
	if published < timeout && len(bs) != 1 {
		t.Errorf("5 events published within %v (< timeoutMs) arrived in %d batches, want 1", published, len(bs))
	}
	// A second event after the first batch starts a new timeout clock.
	second := time.Now()
	h.Publish(fnLine(5))
	waitFor(t, "the second batch", func() bool { return len(c.events()) == 6 })
	if got := c.snapshot()[len(c.snapshot())-1].at.Sub(second); got < timeout {
		t.Errorf("second batch arrived %v after its event, sooner than timeoutMs", got)
	}
}

// TestTCPDelivery: one connection per subscriber, each event one JSON line, in order.
func TestTCPDelivery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 1000)
	var conns sync.WaitGroup
	var accepted int
	var mu sync.Mutex
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	h := NewHub(Options{})
	mustSubscribe(t, h, TelemetryAPI, "tcpext", []byte(fmt.Sprintf(`{"schemaVersion":"2022-12-13","types":["platform","function"],"buffering":{"timeoutMs":25},"destination":{"protocol":"TCP","port":%d}}`, port)))
	const n = 60
	for burst := 0; burst < 3; burst++ {
		for i := burst * 20; i < (burst+1)*20; i++ {
			h.Publish(fnLine(i))
		}
		time.Sleep(60 * time.Millisecond) // > timeoutMs: the bursts leave as separate batches
	}
	closeHub(t, h)
	// First the subscription event, then the lines in order.
	var got []envelope
	deadline := time.After(10 * time.Second)
	for len(got) < n+1 {
		select {
		case l := <-lines:
			var e envelope
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("TCP line is not one JSON event: %q", l)
			}
			if e.Time == "" || e.Type == "" || len(e.Record) == 0 {
				t.Fatalf("TCP line lacks time/type/record: %q", l)
			}
			got = append(got, e)
		case <-deadline:
			t.Fatalf("got %d lines, want %d", len(got), n+1)
		}
	}
	if got[0].Type != TypeTelemetrySubscription {
		t.Errorf("first line %s, want %s", got[0].Type, TypeTelemetrySubscription)
	}
	for i := 0; i < n; i++ {
		if s := recordString(t, got[i+1]); s != "line "+strconv.Itoa(i) {
			t.Fatalf("line %d is %q: order lost", i, s)
		}
	}
	ln.Close()
	conns.Wait()
	mu.Lock()
	defer mu.Unlock()
	if accepted != 1 {
		t.Errorf("%d TCP connections, want 1 per subscriber", accepted)
	}
}

// TestReplay: events published during init reach a late subscriber, filtered by its
// types and ahead of anything newer; EndInit closes subscription.
func TestReplay(t *testing.T) {
	plat := newConsumer(t, nil)
	logs := newConsumer(t, nil)
	h := NewHub(Options{})
	h.Publish(Event{Type: TypeInitStart, Record: InitStartRecord{InitializationType: "on-demand", Phase: "init", FunctionName: "f", FunctionVersion: "$LATEST"}})
	h.Publish(Event{Type: TypeFunction, Record: "fn before"})
	h.Publish(Event{Type: TypeExtensionLog, Record: "ext before"})

	mustSubscribe(t, h, TelemetryAPI, "plat", httpBody("2022-12-13", []string{"platform"}, `{"timeoutMs":25}`, plat.uri("/")))
	h.Publish(Event{Type: TypeFunction, Record: "fn between"})
	mustSubscribe(t, h, TelemetryAPI, "logs", httpBody("2022-12-13", []string{"function", "extension"}, `{"timeoutMs":25}`, logs.uri("/")))
	h.EndInit()
	h.Publish(Event{Type: TypeInitReport, Record: InitReportRecord{InitializationType: "on-demand", Phase: "init", Status: StatusSuccess}})
	h.Publish(Event{Type: TypeFunction, Record: "fn after"})
	if status, resp := h.Subscribe(TelemetryAPI, "late", httpBody("2022-12-13", []string{"platform"}, "", plat.uri("/"))); status != http.StatusForbidden || !strings.Contains(string(resp), ErrTelemetryClosed) {
		t.Errorf("subscribe after EndInit: %d %s, want 403 %s", status, resp, ErrTelemetryClosed)
	}
	closeHub(t, h)

	var types []string
	for _, e := range plat.events() {
		types = append(types, e.Type)
	}
	want := []string{TypeInitStart, TypeTelemetrySubscription, TypeTelemetrySubscription, TypeInitReport}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("platform subscriber got %v, want %v", types, want)
	}
	var sub TelemetrySubscriptionRecord
	json.Unmarshal(plat.events()[1].Record, &sub)
	if sub.Name != "plat" || sub.State != "Subscribed" || fmt.Sprint(sub.Types) != "[platform]" {
		t.Errorf("own subscription record %+v", sub)
	}
	var lines []string
	for _, e := range logs.events() {
		lines = append(lines, e.Type+":"+recordString(t, e))
	}
	wantLines := []string{"function:fn before", "extension:ext before", "function:fn between", "function:fn after"}
	if fmt.Sprint(lines) != fmt.Sprint(wantLines) {
		t.Errorf("log subscriber got %q, want %q", lines, wantLines)
	}
}

// TestReplayRace: with a publisher running during the subscribe, the subscriber sees
// every event exactly once and in order: the replay never interleaves with newer events.
func TestReplayRace(t *testing.T) {
	c := newConsumer(t, nil)
	h := NewHub(Options{})
	const n = 3000
	midway := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			if i == n/3 {
				close(midway)
			}
			h.Publish(fnLine(i))
		}
	}()
	<-midway
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, c.uri("/")))
	<-done
	closeHub(t, h)
	ev := c.events()
	if len(ev) != n {
		t.Fatalf("%d events, want %d", len(ev), n)
	}
	for i, e := range ev {
		if s := recordString(t, e); s != "line "+strconv.Itoa(i) {
			t.Fatalf("event %d is %q: replay and live events interleaved", i, s)
		}
	}
}

// TestOneAPIPerExtension: the other API is refused; the same API replaces the
// subscription, and only the new destination gets newer events.
func TestOneAPIPerExtension(t *testing.T) {
	first := newConsumer(t, nil)
	second := newConsumer(t, nil)
	h := NewHub(Options{})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, first.uri("/")))
	h.Publish(fnLine(0))
	waitFor(t, "first delivery", func() bool { return len(first.events()) == 1 })

	status, resp := h.Subscribe(LogsAPI, "ext", httpBody("2020-08-15", []string{"function"}, "", second.uri("/")))
	if status != http.StatusForbidden {
		t.Fatalf("Logs API after Telemetry API: %d %s, want 403", status, resp)
	}
	checkErrorBody(t, resp, ErrLogsClosed, "already subscribed through the Telemetry API")
	// Another extension may use the Logs API.
	mustSubscribe(t, h, LogsAPI, "other", httpBody("2021-03-18", []string{"platform"}, `{"timeoutMs":25}`, second.uri("/other")))

	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, second.uri("/")))
	subs := h.Subscriptions()
	if len(subs) != 2 || subs["ext"].URI != second.uri("/") || subs["other"].API != LogsAPI {
		t.Errorf("Subscriptions() = %+v, want ext on the new URI and other on the Logs API", subs)
	}
	h.Publish(fnLine(1))
	closeHub(t, h)
	if got := len(first.events()); got != 1 {
		t.Errorf("old destination got %d events, want only the 1 from before the update", got)
	}
	var fn, states []string
	var logsSub bool
	for _, e := range second.events() {
		if e.Type == TypeFunction {
			fn = append(fn, recordString(t, e))
		}
		if e.Type == TypeTelemetrySubscription {
			var r TelemetrySubscriptionRecord
			json.Unmarshal(e.Record, &r)
			if r.Name == "ext" {
				states = append(states, r.State)
			}
		}
		if e.Type == TypeLogsSubscription {
			logsSub = true
		}
	}
	// The replay carries the first subscription's record, then the update's own.
	if fmt.Sprint(states) != "[Subscribed Already subscribed]" {
		t.Errorf("ext subscription states %q, want [Subscribed, Already subscribed]", states)
	}
	// The replacement gets the init replay (line 0) and then line 1.
	if fmt.Sprint(fn) != "[line 0 line 1]" {
		t.Errorf("new destination got %q, want [line 0 line 1]", fn)
	}
	if !logsSub {
		t.Errorf("the Logs API subscriber did not get %s", TypeLogsSubscription)
	}
}

// observations collects Observe calls.
type observations struct {
	mu  sync.Mutex
	all []Observation
}

func (o *observations) add(x Observation) { o.mu.Lock(); o.all = append(o.all, x); o.mu.Unlock() }
func (o *observations) kinds(kind string) []Observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Observation
	for _, x := range o.all {
		if x.Kind == kind {
			out = append(out, x)
		}
	}
	return out
}

// TestRetry: a consumer that answers 500 twice, then 200, still gets the batch.
func TestRetry(t *testing.T) {
	c := newConsumer(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	var obs observations
	h := NewHub(Options{RetryBackoff: []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, Observe: obs.add})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, c.uri("/")))
	for i := 0; i < 3; i++ {
		h.Publish(fnLine(i))
	}
	waitFor(t, "the retried batch", func() bool { return len(c.events()) == 3 })
	closeHub(t, h)
	if c.requests != 3 {
		t.Errorf("%d requests, want 3 (two 500s, one 200)", c.requests)
	}
	if errs := obs.kinds("deliver_error"); len(errs) != 2 || errs[0].Status != 500 {
		t.Errorf("deliver_error observations %+v, want two with status 500", errs)
	}
	if d := obs.kinds("deliver"); len(d) != 1 || d[0].Attempt != 3 || d[0].Events != 3 {
		t.Errorf("deliver observations %+v, want one on attempt 3 with 3 events", d)
	}
	if len(obs.kinds("dropped")) != 0 {
		t.Errorf("nothing should be dropped: %+v", obs.kinds("dropped"))
	}
}

// TestClientErrorNotRetried: a 4xx answer is final for that batch.
func TestClientErrorNotRetried(t *testing.T) {
	c := newConsumer(t, func(n int) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	var obs observations
	h := NewHub(Options{RetryBackoff: []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}, Observe: obs.add})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, c.uri("/")))
	h.Publish(fnLine(0))
	waitFor(t, "the drop notice", func() bool { return len(c.events()) > 0 })
	closeHub(t, h)
	ev := c.events()
	if len(ev) != 1 || ev[0].Type != TypeLogsDropped {
		t.Fatalf("after a 400 the consumer should get only platform.logsDropped, got %+v", ev)
	}
	var d LogsDroppedRecord
	json.Unmarshal(ev[0].Record, &d)
	if d.DroppedRecords != 1 || d.DroppedBytes <= 0 {
		t.Errorf("logsDropped %+v, want 1 record", d)
	}
}

// TestLagDropsAndReports: a consumer that accepts nothing makes the hub drop events
// (queue bound and exhausted retries); once it comes back it gets platform.logsDropped,
// and delivered + reported-dropped accounts for every event.
func TestLagDropsAndReports(t *testing.T) {
	var mu sync.Mutex
	down := true
	c := newConsumer(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var obs observations
	h := NewHub(Options{MaxQueuedBytes: 8 << 10, RetryBackoff: []time.Duration{2 * time.Millisecond, 2 * time.Millisecond}, Observe: obs.add})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, c.uri("/")))
	const n = 500
	for i := 0; i < n; i++ {
		h.Publish(fnLine(i))
	}
	waitFor(t, "drops while the consumer is down", func() bool { return len(obs.kinds("dropped")) > 0 })
	if len(c.events()) != 0 {
		t.Fatalf("a consumer answering 503 accepted events")
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, "platform.logsDropped after recovery", func() bool {
		for _, e := range c.events() {
			if e.Type == TypeLogsDropped {
				return true
			}
		}
		return false
	})
	closeHub(t, h)
	var delivered, dropped int64
	for _, e := range c.events() {
		switch e.Type {
		case TypeFunction:
			delivered++
		case TypeLogsDropped:
			var d LogsDroppedRecord
			if err := json.Unmarshal(e.Record, &d); err != nil {
				t.Fatal(err)
			}
			if d.DroppedRecords <= 0 || d.DroppedBytes <= 0 || d.Reason == "" {
				t.Errorf("logsDropped record %+v", d)
			}
			dropped += d.DroppedRecords
		}
	}
	if dropped == 0 {
		t.Fatal("no drops were reported")
	}
	if delivered+dropped != n {
		t.Errorf("delivered %d + reported dropped %d = %d, want %d", delivered, dropped, delivered+dropped, n)
	}
}

// TestLagUnreachable: same as above with nothing listening at all, then a listener
// appearing on the subscribed port.
func TestLagUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens now: connection refused
	var obs observations
	h := NewHub(Options{RetryBackoff: []time.Duration{2 * time.Millisecond}, Observe: obs.add})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, "http://"+addr+"/"))
	h.Publish(fnLine(0))
	waitFor(t, "a dropped batch", func() bool { return len(obs.kinds("dropped")) > 0 })

	c := &consumer{t: t, arrived: make(chan struct{}, 1)}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(c.serve)}
	go srv.Serve(ln2)
	defer srv.Close()
	waitFor(t, "platform.logsDropped", func() bool { return len(c.events()) > 0 })
	closeHub(t, h)
	if e := c.events()[0]; e.Type != TypeLogsDropped {
		t.Errorf("first event after recovery %s, want %s", e.Type, TypeLogsDropped)
	}
}

// TestCloseFlushesAndStops: Close flushes a batch that would otherwise wait 30 s, and
// leaves no goroutine behind; a consumer that hangs is abandoned when ctx ends.
func TestCloseFlushesAndStops(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		c := newConsumer(t, nil)
		defer c.srv.Close()
		hang := make(chan struct{})
		hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}))
		defer hung.Close()
		defer close(hang)
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, conn); conn.Close() }()
			}
		}()

		h := NewHub(Options{})
		mustSubscribe(t, h, TelemetryAPI, "a", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":30000}`, c.uri("/")))
		mustSubscribe(t, h, TelemetryAPI, "b", []byte(fmt.Sprintf(`{"schemaVersion":"2022-12-13","types":["function"],"destination":{"protocol":"TCP","port":%d}}`, ln.Addr().(*net.TCPAddr).Port)))
		mustSubscribe(t, h, LogsAPI, "c", httpBody("2021-03-18", []string{"function"}, `{"timeoutMs":25}`, hung.URL+"/"))
		for i := 0; i < 10; i++ {
			h.Publish(fnLine(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := h.Close(ctx); err == nil {
			t.Errorf("Close returned nil although subscriber c never answers")
		}
		if got := len(c.events()); got != 10 {
			t.Errorf("Close flushed %d events to a, want 10", got)
		}
		h.Publish(fnLine(99)) // after Close: a no-op, not a panic
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFlush: Flush sends what is queued without waiting for timeoutMs, keeps the
// subscription open, and gives up when ctx ends on a consumer that never answers.
func TestFlush(t *testing.T) {
	c := newConsumer(t, nil)
	h := NewHub(Options{})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":30000}`, c.uri("/")))
	for i := 0; i < 5; i++ {
		h.Publish(fnLine(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(c.events()); got != 5 {
		t.Fatalf("after Flush the consumer has %d events, want 5 (timeoutMs is 30 s)", got)
	}
	h.Publish(fnLine(5))
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(c.events()); got != 6 {
		t.Fatalf("second Flush: %d events, want 6", got)
	}
	if err := h.Flush(ctx); err != nil { // nothing queued: returns at once
		t.Fatal(err)
	}
	closeHub(t, h)

	hang := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(hang)
	h2 := NewHub(Options{})
	mustSubscribe(t, h2, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":30000}`, hung.URL+"/"))
	h2.Publish(fnLine(0))
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := h2.Flush(short); err == nil {
		t.Errorf("Flush to a consumer that never answers returned nil")
	}
	abort, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	h2.Close(abort)
}

// TestPublishAndResolveErrors: an unmarshalable record is reported and dropped, not
// delivered or panicked on; a destination host that Resolve refuses is a 500.
func TestPublishAndResolveErrors(t *testing.T) {
	c := newConsumer(t, nil)
	var obs observations
	h := NewHub(Options{Observe: obs.add})
	mustSubscribe(t, h, TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"timeoutMs":25}`, c.uri("/")))
	h.Publish(Event{Type: TypeFunction, Record: make(chan int)})
	h.Publish(fnLine(1))
	closeHub(t, h)
	if got := obs.kinds("publish_error"); len(got) != 1 || !strings.Contains(got[0].Err, "function") {
		t.Errorf("publish_error observations %+v, want one naming the event type", got)
	}
	if ev := c.events(); len(ev) != 1 || recordString(t, ev[0]) != "line 1" {
		t.Errorf("delivered %+v, want only line 1", ev)
	}

	h2 := NewHub(Options{Resolve: func(host string) (string, error) { return "", fmt.Errorf("no address for %s", host) }})
	defer closeHub(t, h2)
	status, resp := h2.Subscribe(TelemetryAPI, "ext", httpBody("2022-12-13", []string{"platform"}, "", "http://sandbox:1234/"))
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", status)
	}
	checkErrorBody(t, resp, ErrInternal, "no address for sandbox")
}

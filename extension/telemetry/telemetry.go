// Package telemetry is the Telemetry API (and the older Logs API) of initprof's Lambda
// platform emulator: it validates subscriptions, buffers and batches events per
// subscriber, delivers them over HTTP (JSON arrays) or TCP (NDJSON) with retries, and
// replays everything published during init to late subscribers.
//
// The replay is the reason this package exists as more than a broadcaster: Lambda emits
// platform.initStart before any extension process runs, and real extensions (Datadog's,
// for one) wait for it. AWS's own emulator answers subscribe with a stub, so extensions
// behave differently under it than in Lambda; initprof must not.
//
// The core (package extension) owns HTTP routing, identities and the lifecycle; it
// publishes events, hands subscribe bodies to Hub.Subscribe with the caller's name,
// calls EndInit when init ends, Flush at SHUTDOWN and Close at the end.
package telemetry

import (
	"encoding/json"
	"strings"
	"time"
)

// TimeLayout is the envelope time format Lambda uses: UTC, millisecond precision, always
// three fractional digits, e.g. "2022-10-12T00:00:15.064Z". Consumers parse it with
// strict layouts, so RFC3339Nano (variable digits) would not be faithful.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in Lambda's envelope format (TimeLayout, UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Event is one Telemetry API envelope: {"time": ..., "type": ..., "record": ...}.
type Event struct {
	Time   time.Time `json:"time"`
	Type   string    `json:"type"` // "platform.initStart", "function", "extension", ...
	Record any       `json:"record"`
}

// MarshalJSON writes the envelope with Time in Lambda's millisecond UTC format.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Time   string `json:"time"`
		Type   string `json:"type"`
		Record any    `json:"record"`
	}{FormatTime(e.Time), e.Type, e.Record})
}

// API says which subscribe endpoint a request came through. Lambda lets one extension
// use only one of them.
type API int

const (
	TelemetryAPI API = iota // PUT /2022-07-01/telemetry
	LogsAPI                 // PUT /2020-08-15/logs
)

// String names the API as Lambda's error types do ("Telemetry", "Logs").
func (a API) String() string {
	if a == LogsAPI {
		return "Logs"
	}
	return "Telemetry"
}

// Event categories a subscription may ask for (its "types").
const (
	CategoryPlatform  = "platform"
	CategoryFunction  = "function"
	CategoryExtension = "extension"
)

// Category maps an event type to the subscription type that selects it:
// "platform.initStart" -> "platform", "function" -> "function", "extension" -> "extension".
func Category(eventType string) string {
	if i := strings.IndexByte(eventType, '.'); i >= 0 {
		return eventType[:i]
	}
	return eventType
}

// Options configures a Hub. Every field has a working default.
type Options struct {
	// Now is the wall clock for envelopes (default time.Now).
	Now func() time.Time
	// Resolve maps a destination host to an address to dial. The default maps
	// "sandbox", "sandbox.localdomain", "localhost" and "127.0.0.1" to "127.0.0.1",
	// as /etc/hosts does inside Lambda.
	Resolve func(host string) (string, error)
	// Observe is called for every delivery attempt and lifecycle fact, so the core can
	// write it to its CLOCK_MONOTONIC timeline. It is called synchronously at the moment
	// the fact happens; it must be cheap and safe for concurrent use.
	Observe func(o Observation)
	// RetryBackoff lists the pauses between delivery attempts of one batch: attempt 1,
	// sleep RetryBackoff[0], attempt 2, ... Default 10ms, 50ms, 200ms, 1s.
	RetryBackoff []time.Duration
	// MaxQueuedBytes bounds each subscriber's undelivered events; past it new events are
	// dropped and counted into platform.logsDropped (default 4 MiB).
	MaxQueuedBytes int
	// RequestTimeout bounds one delivery attempt, so a consumer that accepts a
	// connection and never answers cannot stall its subscriber forever (default 5s).
	RequestTimeout time.Duration
}

// Observation is one fact the hub reports to the core's timeline.
type Observation struct {
	// Kind is one of: "subscribe" (accepted; Events = replayed events), "replay",
	// "subscribe_refused" (Status, Err), "deliver" (a batch was accepted), "deliver_error"
	// (one failed attempt), "dropped" (events given up on), "publish_error".
	Kind       string
	Subscriber string // extension name ("" for hub-wide facts)
	Events     int
	Bytes      int
	Err        string
	// Added beyond the contract: the HTTP status of a refused subscribe or of a delivery
	// attempt (0 for TCP or connection errors) and the 1-based attempt number.
	Status  int
	Attempt int
	// Port is the destination port of an accepted subscribe: the extension's
	// telemetry listener, which initprof's listener_bound checkpoint is.
	Port int
}

const (
	defaultMaxQueuedBytes = 4 << 20
	defaultRequestTimeout = 5 * time.Second
)

var defaultRetryBackoff = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, time.Second}

// DefaultResolve is the Resolve used when Options.Resolve is nil.
func DefaultResolve(host string) (string, error) {
	switch strings.ToLower(host) {
	case "sandbox", "sandbox.localdomain", "localhost", "127.0.0.1":
		return "127.0.0.1", nil
	}
	return "", &resolveError{host}
}

type resolveError struct{ host string }

func (e *resolveError) Error() string {
	return "telemetry destination host " + e.host + " is not the sandbox (use sandbox, sandbox.localdomain, localhost or 127.0.0.1)"
}

func (o *Options) withDefaults() Options {
	r := *o
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Resolve == nil {
		r.Resolve = DefaultResolve
	}
	if r.Observe == nil {
		r.Observe = func(Observation) {}
	}
	if r.RetryBackoff == nil {
		r.RetryBackoff = defaultRetryBackoff
	}
	if r.MaxQueuedBytes <= 0 {
		r.MaxQueuedBytes = defaultMaxQueuedBytes
	}
	if r.RequestTimeout <= 0 {
		r.RequestTimeout = defaultRequestTimeout
	}
	return r
}

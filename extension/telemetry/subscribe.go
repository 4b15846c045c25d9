package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Buffering limits, from Lambda's Telemetry API reference. The Logs API uses the same.
const (
	MinMaxItems      = 1000
	MaxMaxItems      = 10000
	DefaultMaxItems  = 10000
	MinMaxBytes      = 262144
	MaxMaxBytes      = 1048576
	DefaultMaxBytes  = 262144
	MinTimeoutMs     = 25
	MaxTimeoutMs     = 30000
	DefaultTimeoutMs = 1000

	// ReservedPort is the Runtime API's own port; a destination may not use it.
	ReservedPort = 9001
)

// Schema versions each API accepts.
var (
	TelemetrySchemaVersions = []string{"2022-07-01", "2022-12-13", "2025-01-29"}
	LogsSchemaVersions      = []string{"2020-08-15", "2021-03-18"}
)

// Error types the hub answers with.
const (
	ErrValidation             = "ValidationError"
	ErrTelemetryClosed        = "Telemetry.SubscriptionClosed"
	ErrLogsClosed             = "Logs.SubscriptionClosed"
	ErrInternal               = "InternalError"
	destinationProtocolHTTP   = "HTTP"
	destinationProtocolTCP    = "TCP"
	subscriptionStateSubscrib = "Subscribed"
	subscriptionStateAgain    = "Already subscribed"
)

// Subscription is a validated subscribe request body, with defaults filled in.
type Subscription struct {
	API           API
	SchemaVersion string
	Types         []string // deduplicated, in request order
	MaxItems      int
	MaxBytes      int
	TimeoutMs     int
	Protocol      string // "HTTP" or "TCP"
	URI           string // HTTP only: the URI as given
	Host          string // HTTP: the URI's host; TCP: "sandbox"
	Port          int
	Path          string // HTTP only: path and query to POST to
	// Ignored lists the fields Lambda ignores that the body carried, as
	// dotted paths ("destination.method"), sorted: worth a note, never an error.
	Ignored []string
}

// ValidationError is a subscribe body Lambda would answer with 400 ValidationError.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

// invalid builds a ValidationError. The message is forced to one line of valid UTF-8:
// it quotes pieces of an arbitrary body, and it must survive the JSON error response.
func invalid(format string, args ...any) error {
	msg := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	msg = strings.NewReplacer("\n", " ", "\r", " ").Replace(msg)
	return &ValidationError{Msg: msg}
}

// errorBody is Lambda's error response shape.
type errorBody struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func errorResponse(msg, typ string) []byte {
	b, _ := json.Marshal(errorBody{ErrorMessage: msg, ErrorType: typ})
	return b
}

// ParseSubscription validates the body of PUT /2022-07-01/telemetry (TelemetryAPI) or
// PUT /2020-08-15/logs (LogsAPI). Field names are matched exactly (Go's encoding/json
// would accept "uri" for "URI"), and a field it does not know is ignored, as Lambda
// ignores it: real clients send the Logs API's destination "method" and
// "encoding" to the Telemetry API too, and Lambda subscribes them. The ignored
// fields are listed in Subscription.Ignored. Only the rejections Lambda documents
// remain (extension/COMPAT.md), each a *ValidationError whose message names the
// field and the rule.
func ParseSubscription(api API, body []byte) (Subscription, error) {
	s := Subscription{API: api, MaxItems: DefaultMaxItems, MaxBytes: DefaultMaxBytes, TimeoutMs: DefaultTimeoutMs}
	if len(bytes.TrimSpace(body)) == 0 {
		return s, invalid("request body is empty: expected a JSON object with schemaVersion, types, buffering and destination")
	}
	top, err := object(&s, body, "", "request body", "schemaVersion", "types", "buffering", "destination")
	if err != nil {
		return s, err
	}

	versions := TelemetrySchemaVersions
	if api == LogsAPI {
		versions = LogsSchemaVersions
	}
	if raw, ok := top["schemaVersion"]; ok {
		if err := decodeField(raw, "schemaVersion", "a string", &s.SchemaVersion); err != nil {
			return s, err
		}
		if !contains(versions, s.SchemaVersion) {
			return s, invalid("schemaVersion %q is not supported by the %s API: use one of %s", s.SchemaVersion, api, strings.Join(versions, ", "))
		}
	} else if api == LogsAPI {
		// The Logs API documents schemaVersion as optional, defaulting to its first version.
		s.SchemaVersion = LogsSchemaVersions[0]
	} else {
		return s, invalid("schemaVersion is required: use one of %s", strings.Join(versions, ", "))
	}

	raw, ok := top["types"]
	if !ok {
		return s, invalid("types is required: a non-empty array of platform, function, extension")
	}
	var types []string
	if err := decodeField(raw, "types", "an array of strings", &types); err != nil {
		return s, err
	}
	if len(types) == 0 {
		return s, invalid("types is empty: list at least one of platform, function, extension")
	}
	seen := map[string]bool{}
	for _, t := range types {
		switch t {
		case CategoryPlatform, CategoryFunction, CategoryExtension:
		default:
			return s, invalid("types contains %q: allowed types are platform, function, extension", t)
		}
		if !seen[t] {
			seen[t] = true
			s.Types = append(s.Types, t)
		}
	}

	if raw, ok := top["buffering"]; ok && !isNull(raw) {
		buf, err := object(&s, raw, "buffering.", "buffering", "maxItems", "maxBytes", "timeoutMs")
		if err != nil {
			return s, err
		}
		for _, f := range []struct {
			name     string
			dst      *int
			min, max int
		}{
			{"maxItems", &s.MaxItems, MinMaxItems, MaxMaxItems},
			{"maxBytes", &s.MaxBytes, MinMaxBytes, MaxMaxBytes},
			{"timeoutMs", &s.TimeoutMs, MinTimeoutMs, MaxTimeoutMs},
		} {
			raw, ok := buf[f.name]
			if !ok || isNull(raw) {
				continue
			}
			if err := decodeField(raw, "buffering."+f.name, "an integer", f.dst); err != nil {
				return s, err
			}
			if *f.dst < f.min || *f.dst > f.max {
				return s, invalid("buffering.%s %d is out of range: must be %d..%d", f.name, *f.dst, f.min, f.max)
			}
		}
	}

	raw, ok = top["destination"]
	if !ok || isNull(raw) {
		return s, invalid(`destination is required: {"protocol":"HTTP","URI":"http://sandbox.localdomain:PORT/path"} or {"protocol":"TCP","port":PORT}`)
	}
	dst, err := object(&s, raw, "destination.", "destination", "protocol", "URI", "port")
	if err != nil {
		return s, err
	}
	rawProto, ok := dst["protocol"]
	if !ok {
		return s, invalid("destination.protocol is required: HTTP or TCP")
	}
	if err := decodeField(rawProto, "destination.protocol", "a string", &s.Protocol); err != nil {
		return s, err
	}
	switch s.Protocol {
	case destinationProtocolHTTP:
		// A port beside the URI is not used (the URI's port is): ignored.
		if _, ok := dst["port"]; ok {
			s.Ignored = append(s.Ignored, "destination.port")
		}
		rawURI, ok := dst["URI"]
		if !ok {
			return s, invalid("destination.URI is required for HTTP, e.g. http://sandbox.localdomain:8080/telemetry")
		}
		if err := decodeField(rawURI, "destination.URI", "a string", &s.URI); err != nil {
			return s, err
		}
		if err := parseURI(&s); err != nil {
			return s, err
		}
	case destinationProtocolTCP:
		if _, ok := dst["URI"]; ok {
			s.Ignored = append(s.Ignored, "destination.URI")
		}
		rawPort, ok := dst["port"]
		if !ok {
			return s, invalid("destination.port is required for TCP, e.g. {\"protocol\":\"TCP\",\"port\":8125}")
		}
		if err := decodeField(rawPort, "destination.port", "an integer", &s.Port); err != nil {
			return s, err
		}
		if err := checkPort(s.Port); err != nil {
			return s, err
		}
		s.Host = "sandbox"
	default:
		return s, invalid("destination.protocol %q is not supported: use HTTP or TCP", s.Protocol)
	}
	sort.Strings(s.Ignored)
	return s, nil
}

func parseURI(s *Subscription) error {
	u, err := url.Parse(s.URI)
	if err != nil {
		return invalid("destination.URI %q is not a URL: %v", s.URI, err)
	}
	if u.Scheme != "http" {
		return invalid("destination.URI %q must use http:// (Lambda delivers plain HTTP inside the sandbox)", s.URI)
	}
	if u.User != nil {
		return invalid("destination.URI %q must not carry user info", s.URI)
	}
	host := u.Hostname()
	if _, err := DefaultResolve(host); err != nil {
		return invalid("destination.URI %q: host %q is not the sandbox: use sandbox, sandbox.localdomain, localhost or 127.0.0.1", s.URI, host)
	}
	s.Host = host
	s.Port = 80
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return invalid("destination.URI %q: port %q is not a number", s.URI, p)
		}
		s.Port = n
	}
	if err := checkPort(s.Port); err != nil {
		return err
	}
	s.Path = u.RequestURI()
	return nil
}

func checkPort(p int) error {
	if p == ReservedPort {
		return invalid("destination port %d is reserved for the Runtime API: listen on another port", p)
	}
	if p < 1 || p > 65535 {
		return invalid("destination port %d is out of range: must be 1..65535", p)
	}
	return nil
}

// object decodes one JSON object, refusing trailing data and non-objects.
// Keys outside known (exact case) are ignored, as Lambda ignores them, and
// recorded in s.Ignored with prefix.
func object(s *Subscription, data []byte, prefix, what string, known ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, invalid("%s must be a JSON object, not %s", what, typeErr.Value)
		}
		return nil, invalid("%s is not valid JSON: %v", what, err)
	}
	if m == nil {
		return nil, invalid("%s must be a JSON object, not null", what)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("%s has data after its JSON object", what)
	}
	for k := range m {
		if !contains(known, k) {
			s.Ignored = append(s.Ignored, prefix+k)
		}
	}
	return m, nil
}

func decodeField(raw json.RawMessage, name, want string, dst any) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return invalid("%s must be %s, got %s", name, want, abbreviate(raw))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func abbreviate(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		raw = buf.Bytes()
	}
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

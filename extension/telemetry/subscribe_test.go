package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// closeHub closes h with a generous bound and fails the test if it had to abort.
func closeHub(t *testing.T, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSubscribeValidation is the conformance table for PUT /2022-07-01/telemetry and
// PUT /2020-08-15/logs bodies: status, errorType, and a message naming the problem.
// Valid destinations point at a closed port (1): delivery is not under test here.
func TestSubscribeValidation(t *testing.T) {
	const dst = `"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/t"}`
	tests := []struct {
		name    string
		api     API
		body    string
		status  int
		errType string
		msgHas  string
	}{
		{"minimal telemetry", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],` + dst + `}`, 200, "", ""},
		{"schema 2022-07-01", TelemetryAPI, `{"schemaVersion":"2022-07-01","types":["function"],` + dst + `}`, 200, "", ""},
		{"schema 2025-01-29", TelemetryAPI, `{"schemaVersion":"2025-01-29","types":["extension"],` + dst + `}`, 200, "", ""},
		{"all types and limits", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform","function","extension"],"buffering":{"maxItems":1000,"maxBytes":1048576,"timeoutMs":25},` + dst + `}`, 200, "", ""},
		{"upper limits", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":10000,"maxBytes":262144,"timeoutMs":30000},` + dst + `}`, 200, "", ""},
		{"TCP", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":1}}`, 200, "", ""},
		{"host sandbox", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1"}}`, 200, "", ""},
		{"host localhost", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://localhost:1/"}}`, 200, "", ""},
		{"host 127.0.0.1", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://127.0.0.1:1/x?y=1"}}`, 200, "", ""},
		{"logs 2020-08-15", LogsAPI, `{"schemaVersion":"2020-08-15","types":["platform","function"],` + dst + `}`, 200, "", ""},
		{"logs 2021-03-18", LogsAPI, `{"schemaVersion":"2021-03-18","types":["extension"],` + dst + `}`, 200, "", ""},
		{"logs without schemaVersion", LogsAPI, `{"types":["platform"],` + dst + `}`, 200, "", ""},

		{"empty body", TelemetryAPI, ``, 400, ErrValidation, "empty"},
		{"bad JSON", TelemetryAPI, `{"schemaVersion":`, 400, ErrValidation, "not valid JSON"},
		{"not an object", TelemetryAPI, `["platform"]`, 400, ErrValidation, "must be a JSON object"},
		{"null body", TelemetryAPI, `null`, 400, ErrValidation, "not null"},
		{"trailing data", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],` + dst + `} {}`, 400, ErrValidation, "data after"},
		{"field case matters", TelemetryAPI, `{"SchemaVersion":"2022-12-13","types":["platform"],` + dst + `}`, 400, ErrValidation, `schemaVersion is required`},
		{"destination field case matters", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","uri":"http://sandbox:1"}}`, 400, ErrValidation, `destination.URI is required`},
		{"missing schemaVersion", TelemetryAPI, `{"types":["platform"],` + dst + `}`, 400, ErrValidation, "schemaVersion is required"},
		{"logs schema on telemetry", TelemetryAPI, `{"schemaVersion":"2020-08-15","types":["platform"],` + dst + `}`, 400, ErrValidation, `schemaVersion "2020-08-15" is not supported by the Telemetry API`},
		{"telemetry schema on logs", LogsAPI, `{"schemaVersion":"2022-12-13","types":["platform"],` + dst + `}`, 400, ErrValidation, `not supported by the Logs API`},
		{"schemaVersion not a string", TelemetryAPI, `{"schemaVersion":20221213,"types":["platform"],` + dst + `}`, 400, ErrValidation, "schemaVersion must be a string"},
		{"missing types", TelemetryAPI, `{"schemaVersion":"2022-12-13",` + dst + `}`, 400, ErrValidation, "types is required"},
		{"empty types", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":[],` + dst + `}`, 400, ErrValidation, "types is empty"},
		{"unknown type", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform","metrics"],` + dst + `}`, 400, ErrValidation, `types contains "metrics"`},
		{"types not array", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":"platform",` + dst + `}`, 400, ErrValidation, "types must be an array"},
		{"maxItems low", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":999},` + dst + `}`, 400, ErrValidation, "buffering.maxItems 999 is out of range: must be 1000..10000"},
		{"maxItems high", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":10001},` + dst + `}`, 400, ErrValidation, "buffering.maxItems 10001"},
		{"maxBytes low", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxBytes":262143},` + dst + `}`, 400, ErrValidation, "buffering.maxBytes 262143 is out of range: must be 262144..1048576"},
		{"maxBytes high", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxBytes":1048577},` + dst + `}`, 400, ErrValidation, "buffering.maxBytes 1048577"},
		{"timeoutMs low", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":24},` + dst + `}`, 400, ErrValidation, "buffering.timeoutMs 24 is out of range: must be 25..30000"},
		{"timeoutMs high", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":30001},` + dst + `}`, 400, ErrValidation, "buffering.timeoutMs 30001"},
		{"timeoutMs fractional", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":100.5},` + dst + `}`, 400, ErrValidation, "buffering.timeoutMs must be an integer"},
		{"buffering not object", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":5,` + dst + `}`, 400, ErrValidation, "buffering must be a JSON object"},
		{"logs limits too", LogsAPI, `{"types":["platform"],"buffering":{"maxItems":5},` + dst + `}`, 400, ErrValidation, "buffering.maxItems 5"},
		{"missing destination", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"]}`, 400, ErrValidation, "destination is required"},
		{"missing protocol", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"URI":"http://sandbox:1"}}`, 400, ErrValidation, "destination.protocol is required"},
		{"bad protocol", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"UDP","port":1}}`, 400, ErrValidation, `destination.protocol "UDP"`},
		{"lowercase protocol", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"http","URI":"http://sandbox:1"}}`, 400, ErrValidation, `destination.protocol "http"`},
		{"HTTP without URI", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP"}}`, 400, ErrValidation, "destination.URI is required"},
		{"https URI", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"https://sandbox:8443/"}}`, 400, ErrValidation, "must use http://"},
		{"foreign host", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:8080/"}}`, 400, ErrValidation, `host "example.com" is not the sandbox`},
		{"URI garbage", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:port"}}`, 400, ErrValidation, "destination.URI"},
		{"HTTP port 9001", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:9001/"}}`, 400, ErrValidation, "port 9001 is reserved"},
		{"TCP port 9001", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":9001}}`, 400, ErrValidation, "port 9001 is reserved"},
		{"logs port 9001", LogsAPI, `{"types":["platform"],"destination":{"protocol":"TCP","port":9001}}`, 400, ErrValidation, "port 9001 is reserved"},
		{"TCP port 0", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":0}}`, 400, ErrValidation, "port 0 is out of range"},
		{"TCP port 70000", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":70000}}`, 400, ErrValidation, "port 70000 is out of range"},
		{"TCP without port", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP"}}`, 400, ErrValidation, "destination.port is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(Options{RetryBackoff: []time.Duration{}})
			defer closeHub(t, h)
			status, body := h.Subscribe(tc.api, "ext", []byte(tc.body))
			if status != tc.status {
				t.Fatalf("status %d, want %d (body %s)", status, tc.status, body)
			}
			if tc.status == http.StatusOK {
				if string(body) != "OK" {
					t.Errorf("body %q, want OK", body)
				}
				return
			}
			checkErrorBody(t, body, tc.errType, tc.msgHas)
		})
	}
}

// TestSubscribeLenient: what Lambda accepts, initprof accepts. Unknown fields
// are ignored and listed, never refused. The first rows are the request
// shapes published clients send (extension/COMPAT.md).
func TestSubscribeLenient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		api     API
		body    string
		ignored []string
	}{
		{"Logs-API destination fields on the Telemetry API (method, encoding)", TelemetryAPI,
			`{"schemaVersion":"2022-07-01","types":["platform","function"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":100},"destination":{"protocol":"HTTP","URI":"http://sandbox:4323","method":"POST","encoding":"JSON"}}`,
			[]string{"destination.encoding", "destination.method"}},
		{"Logs API with method and encoding", LogsAPI,
			`{"schemaVersion":"2021-03-18","types":["platform","function"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/logs","method":"PUT","encoding":"JSON"}}`,
			[]string{"destination.encoding", "destination.method"}},
		{"Telemetry API, TCP", TelemetryAPI,
			`{"schemaVersion":"2022-12-13","types":["platform","function","extension"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},"destination":{"protocol":"TCP","port":5141}}`, nil},
		{"unknown top, buffering and destination fields", TelemetryAPI,
			`{"schemaVersion":"2022-12-13","types":["platform"],"bogus":1,"buffering":{"maxitems":1000},"destination":{"protocol":"HTTP","URI":"http://sandbox:1","port":1,"headers":{}}}`,
			[]string{"bogus", "buffering.maxitems", "destination.headers", "destination.port"}},
		{"TCP with a URI", TelemetryAPI,
			`{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":1,"URI":"http://sandbox:1"}}`,
			[]string{"destination.URI"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSubscription(tc.api, []byte(tc.body))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if strings.Join(s.Ignored, ",") != strings.Join(tc.ignored, ",") {
				t.Errorf("ignored %v, want %v", s.Ignored, tc.ignored)
			}
			h := NewHub(Options{RetryBackoff: []time.Duration{}})
			defer closeHub(t, h)
			if status, body := h.Subscribe(tc.api, "ext", []byte(tc.body)); status != http.StatusOK {
				t.Errorf("Subscribe: %d %s", status, body)
			}
		})
	}
}

// checkErrorBody asserts Lambda's error shape: exactly errorMessage and errorType.
func checkErrorBody(t *testing.T, body []byte, errType, msgHas string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	if len(m) != 2 || m["errorType"] != errType {
		t.Errorf("error body %s, want exactly errorMessage and errorType %q", body, errType)
	}
	msg, _ := m["errorMessage"].(string)
	if !strings.Contains(msg, msgHas) || strings.Contains(msg, "\n") {
		t.Errorf("errorMessage %q should be one line containing %q", msg, msgHas)
	}
}

// TestParseSubscription checks defaults and what a valid body turns into.
func TestParseSubscription(t *testing.T) {
	tests := []struct {
		name string
		api  API
		body string
		want Subscription
	}{
		{"defaults", TelemetryAPI, `{"schemaVersion":"2022-12-13","types":["platform","platform","function"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}`,
			Subscription{API: TelemetryAPI, SchemaVersion: "2022-12-13", Types: []string{"platform", "function"}, MaxItems: 10000, MaxBytes: 262144, TimeoutMs: 1000,
				Protocol: "HTTP", URI: "http://sandbox.localdomain:8080", Host: "sandbox.localdomain", Port: 8080, Path: "/"}},
		{"null buffering fields keep defaults", TelemetryAPI, `{"schemaVersion":"2022-07-01","types":["extension"],"buffering":{"maxItems":null,"timeoutMs":100},"destination":{"protocol":"HTTP","URI":"http://sandbox/lambda?x=1"}}`,
			Subscription{API: TelemetryAPI, SchemaVersion: "2022-07-01", Types: []string{"extension"}, MaxItems: 10000, MaxBytes: 262144, TimeoutMs: 100,
				Protocol: "HTTP", URI: "http://sandbox/lambda?x=1", Host: "sandbox", Port: 80, Path: "/lambda?x=1"}},
		{"TCP", TelemetryAPI, `{"schemaVersion":"2025-01-29","types":["function"],"buffering":{"maxItems":1000,"maxBytes":1048576,"timeoutMs":25},"destination":{"protocol":"TCP","port":8125}}`,
			Subscription{API: TelemetryAPI, SchemaVersion: "2025-01-29", Types: []string{"function"}, MaxItems: 1000, MaxBytes: 1048576, TimeoutMs: 25,
				Protocol: "TCP", Host: "sandbox", Port: 8125}},
		{"logs default schema", LogsAPI, `{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1234/logs"}}`,
			Subscription{API: LogsAPI, SchemaVersion: "2020-08-15", Types: []string{"platform"}, MaxItems: 10000, MaxBytes: 262144, TimeoutMs: 1000,
				Protocol: "HTTP", URI: "http://sandbox:1234/logs", Host: "sandbox", Port: 1234, Path: "/logs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSubscription(tc.api, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if gs, ws := jsonOf(got), jsonOf(tc.want); gs != ws {
				t.Errorf("got  %s\nwant %s", gs, ws)
			}
		})
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestSubscriptionClosed: after EndInit (and after Close) both APIs refuse with their
// own SubscriptionClosed type.
func TestSubscriptionClosed(t *testing.T) {
	body := `{"schemaVersion":"%s","types":["platform"],"destination":{"protocol":"TCP","port":1}}`
	for _, tc := range []struct {
		api     API
		schema  string
		errType string
	}{
		{TelemetryAPI, "2022-12-13", "Telemetry.SubscriptionClosed"},
		{LogsAPI, "2021-03-18", "Logs.SubscriptionClosed"},
	} {
		t.Run(tc.api.String(), func(t *testing.T) {
			h := NewHub(Options{})
			h.EndInit()
			status, resp := h.Subscribe(tc.api, "late", []byte(strings.Replace(body, "%s", tc.schema, 1)))
			if status != http.StatusForbidden {
				t.Fatalf("status %d, want 403 (%s)", status, resp)
			}
			checkErrorBody(t, resp, tc.errType, "closed")
			// A bad body is still a 400: validation comes first, as the request is malformed.
			status, resp = h.Subscribe(tc.api, "late", []byte(`{`))
			if status != http.StatusBadRequest {
				t.Errorf("bad body after init: status %d, want 400 (%s)", status, resp)
			}
			closeHub(t, h)
			status, resp = h.Subscribe(tc.api, "late", []byte(strings.Replace(body, "%s", tc.schema, 1)))
			if status != http.StatusForbidden {
				t.Errorf("after Close: status %d, want 403 (%s)", status, resp)
			}
		})
	}
}

func TestSubscribeWithoutName(t *testing.T) {
	h := NewHub(Options{})
	defer closeHub(t, h)
	status, resp := h.Subscribe(TelemetryAPI, "", []byte(`{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":1}}`))
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", status)
	}
	checkErrorBody(t, resp, ErrInternal, "extension name")
}

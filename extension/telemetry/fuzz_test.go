package telemetry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzSubscribe feeds arbitrary bodies to the subscribe parser of both APIs. A body is
// either accepted with every limit in range and a legal destination, or refused with a
// one-line *ValidationError whose Lambda error body is valid JSON; it never panics.
// Seeds live in testdata/fuzz/FuzzSubscribe.
func FuzzSubscribe(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":"2022-12-13","types":["platform","function"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":100},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/t"}}`,
		`{"schemaVersion":"2025-01-29","types":["extension"],"destination":{"protocol":"TCP","port":8125}}`,
		`{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:9001"}}`,
		`{"schemaVersion":"2022-07-01","types":["platform"],"buffering":null,"destination":{"protocol":"HTTP","URI":"http://[::1]:80"}}`,
		`{`, `null`, `[]`, `{"destination":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, api := range []API{TelemetryAPI, LogsAPI} {
			s, err := ParseSubscription(api, body)
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("%s API: refusal is %T, want *ValidationError: %v", api, err, err)
				}
				if strings.ContainsAny(ve.Msg, "\n\r") {
					t.Fatalf("error message is not one line: %q", ve.Msg)
				}
				var m map[string]string
				if jerr := json.Unmarshal(errorResponse(ve.Msg, ErrValidation), &m); jerr != nil || m["errorMessage"] != ve.Msg {
					t.Fatalf("error body for %q does not round-trip: %v", ve.Msg, jerr)
				}
				continue
			}
			versions := TelemetrySchemaVersions
			if api == LogsAPI {
				versions = LogsSchemaVersions
			}
			switch {
			case !contains(versions, s.SchemaVersion):
				t.Fatalf("%s API accepted schemaVersion %q", api, s.SchemaVersion)
			case len(s.Types) == 0:
				t.Fatalf("accepted no types")
			case s.MaxItems < MinMaxItems || s.MaxItems > MaxMaxItems,
				s.MaxBytes < MinMaxBytes || s.MaxBytes > MaxMaxBytes,
				s.TimeoutMs < MinTimeoutMs || s.TimeoutMs > MaxTimeoutMs:
				t.Fatalf("accepted out-of-range buffering %+v", s)
			case s.Port == ReservedPort || s.Port < 1 || s.Port > 65535:
				t.Fatalf("accepted port %d", s.Port)
			case s.Protocol != "HTTP" && s.Protocol != "TCP":
				t.Fatalf("accepted protocol %q", s.Protocol)
			}
			for _, typ := range s.Types {
				if categoryIndex(typ) < 0 {
					t.Fatalf("accepted type %q", typ)
				}
			}
			if _, err := DefaultResolve(s.Host); err != nil {
				t.Fatalf("accepted host %q", s.Host)
			}
		}
	})
}

package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecordGolden checks every record type against a hand-written envelope taken from
// Lambda's Telemetry API schema reference (testdata/golden): same field names, same
// values, nothing extra, nothing missing.
func TestRecordGolden(t *testing.T) {
	tracing := &TraceContext{SpanID: "54565fb41ac79632", Type: "X-Amzn-Trace-Id", Value: "Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1"}
	initDur := 10.4
	reqID := "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"
	tests := []struct {
		golden string
		ev     Event
	}{
		{"platform.initStart.json", Event{Time: mustTime(t, "2022-10-12T00:00:15.064Z"), Type: TypeInitStart, Record: InitStartRecord{
			InitializationType: "on-demand", Phase: "init", RuntimeVersion: "nodejs-14.v3", RuntimeVersionArn: "arn",
			FunctionName: "myFunction", FunctionVersion: "$LATEST", InstanceID: "82561ce0-53dd-47d1-90e0-c8f5e063e62e", InstanceMaxMemory: 256}}},
		{"platform.initRuntimeDone.json", Event{Time: mustTime(t, "2022-10-12T00:03:50Z"), Type: TypeInitRuntimeDone, Record: InitRuntimeDoneRecord{
			InitializationType: "on-demand", Phase: "init", Status: StatusError, ErrorType: "Runtime.ExitError"}}},
		{"platform.initReport.json", Event{Time: mustTime(t, "2022-10-12T00:01:15Z"), Type: TypeInitReport, Record: InitReportRecord{
			InitializationType: "on-demand", Phase: "init", Status: StatusSuccess, Metrics: InitReportMetrics{DurationMs: 125.33}}}},
		{"platform.start.json", Event{Time: mustTime(t, "2022-10-12T00:00:15.064Z"), Type: TypeStart, Record: StartRecord{
			RequestID: reqID, Version: "$LATEST", Tracing: tracing}}},
		{"platform.runtimeDone.json", Event{Time: mustTime(t, "2022-10-12T00:01:15Z"), Type: TypeRuntimeDone, Record: RuntimeDoneRecord{
			RequestID: reqID, Status: StatusSuccess, Tracing: tracing,
			Spans: []Span{
				{Name: "responseLatency", Start: mustTime(t, "2022-08-02T12:01:23.521Z"), DurationMs: 23.02},
				{Name: "responseDuration", Start: mustTime(t, "2022-08-02T12:01:23.544Z"), DurationMs: 20},
				{Name: "runtimeOverhead", Start: mustTime(t, "2022-08-02T12:01:23.564Z"), DurationMs: 1.5},
			},
			Metrics: RuntimeDoneMetrics{DurationMs: 200, ProducedBytes: 15}}}},
		{"platform.report.json", Event{Time: mustTime(t, "2022-10-12T00:01:15Z"), Type: TypeReport, Record: ReportRecord{
			RequestID: reqID, Status: StatusSuccess,
			Metrics: ReportMetrics{DurationMs: 1.41, BilledDurationMs: 2, MemorySizeMB: 128, MaxMemoryUsedMB: 45, InitDurationMs: &initDur},
			Spans:   []Span{{Name: "extensionOverhead", Start: mustTime(t, "2022-08-02T12:01:23.585Z"), DurationMs: 4.2}}}}},
		{"platform.extension.json", Event{Time: mustTime(t, "2022-10-12T00:02:15Z"), Type: TypeExtension, Record: ExtensionRecord{
			Name: "my-telemetry-extension", State: "Ready", Events: []string{"SHUTDOWN", "INVOKE"}}}},
		{"platform.extension-noevents.json", Event{Time: mustTime(t, "2022-10-12T00:02:15Z"), Type: TypeExtension, Record: ExtensionRecord{
			Name: "internal-ext", State: "Ready"}}},
		{"platform.telemetrySubscription.json", Event{Time: mustTime(t, "2022-10-12T00:02:35Z"), Type: TypeTelemetrySubscription, Record: TelemetrySubscriptionRecord{
			Name: "my-telemetry-extension", State: "Subscribed", Types: []string{"platform", "function"}}}},
		{"platform.logsDropped.json", Event{Time: mustTime(t, "2022-10-12T00:02:35Z"), Type: TypeLogsDropped, Record: LogsDroppedRecord{
			Reason: droppedReason, DroppedRecords: 123, DroppedBytes: 12345}}},
		{"function.json", Event{Time: mustTime(t, "2022-10-12T00:03:50Z"), Type: TypeFunction, Record: "[INFO] Hello world, I am a function!"}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "golden", tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("golden %s: %v", tc.golden, err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("record JSON differs from Lambda's\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestTimeFormat(t *testing.T) {
	east := time.FixedZone("east", 5*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2022, 10, 12, 5, 0, 15, 64_123_456, east), "2022-10-12T00:00:15.064Z"},
		{time.Date(2022, 10, 12, 0, 0, 15, 0, time.UTC), "2022-10-12T00:00:15.000Z"},
		{time.Date(2022, 10, 12, 0, 0, 15, 999_999_999, time.UTC), "2022-10-12T00:00:15.999Z"}, // truncated, never rounded into the next second
	}
	for _, tc := range tests {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
		b, _ := json.Marshal(Event{Time: tc.in, Type: "function", Record: "x"})
		var env struct{ Time string }
		json.Unmarshal(b, &env)
		if env.Time != tc.want {
			t.Errorf("envelope time %s, want %s", env.Time, tc.want)
		}
	}
}

func TestCategory(t *testing.T) {
	for in, want := range map[string]string{
		"platform.initStart": "platform", "platform.logsDropped": "platform",
		"function": "function", "extension": "extension", "": "",
	} {
		if got := Category(in); got != want {
			t.Errorf("Category(%q) = %q, want %q", in, got, want)
		}
	}
}

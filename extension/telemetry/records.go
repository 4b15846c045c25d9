package telemetry

import (
	"encoding/json"
	"time"
)

// Event types the platform emits. The record for each is the struct named after it.
const (
	TypeInitStart             = "platform.initStart"
	TypeInitRuntimeDone       = "platform.initRuntimeDone"
	TypeInitReport            = "platform.initReport"
	TypeStart                 = "platform.start"
	TypeRuntimeDone           = "platform.runtimeDone"
	TypeReport                = "platform.report"
	TypeExtension             = "platform.extension"
	TypeTelemetrySubscription = "platform.telemetrySubscription"
	TypeLogsSubscription      = "platform.logsSubscription" // the Logs API's name for it
	TypeLogsDropped           = "platform.logsDropped"
	TypeFunction              = "function"  // record: one log line (string) or a JSON object
	TypeExtensionLog          = "extension" // record: one log line (string) or a JSON object
)

// Status values of initRuntimeDone, initReport, runtimeDone and report.
const (
	StatusSuccess = "success"
	StatusError   = "error"
	StatusFailure = "failure"
	StatusTimeout = "timeout"
)

// InitStartRecord is platform.initStart.
type InitStartRecord struct {
	InitializationType string `json:"initializationType"` // "on-demand"
	Phase              string `json:"phase"`              // "init", or "invoke" for a retried init
	RuntimeVersion     string `json:"runtimeVersion,omitempty"`
	RuntimeVersionArn  string `json:"runtimeVersionArn,omitempty"`
	FunctionName       string `json:"functionName"`
	FunctionVersion    string `json:"functionVersion"`
	InstanceID         string `json:"instanceId,omitempty"`
	InstanceMaxMemory  int    `json:"instanceMaxMemory,omitempty"`
}

// InitRuntimeDoneRecord is platform.initRuntimeDone.
type InitRuntimeDoneRecord struct {
	InitializationType string `json:"initializationType"`
	Phase              string `json:"phase"`
	Status             string `json:"status"`
	ErrorType          string `json:"errorType,omitempty"`
	Spans              []Span `json:"spans,omitempty"`
}

// InitReportMetrics is the metrics object of platform.initReport.
type InitReportMetrics struct {
	DurationMs float64 `json:"durationMs"`
}

// InitReportRecord is platform.initReport: durationMs is Lambda's Init Duration.
type InitReportRecord struct {
	InitializationType string            `json:"initializationType"`
	Phase              string            `json:"phase"`
	Status             string            `json:"status"`
	ErrorType          string            `json:"errorType,omitempty"`
	Metrics            InitReportMetrics `json:"metrics"`
	Spans              []Span            `json:"spans,omitempty"`
}

// TraceContext is the optional tracing object of start, runtimeDone and report.
type TraceContext struct {
	SpanID string `json:"spanId,omitempty"`
	Type   string `json:"type"` // "X-Amzn-Trace-Id"
	Value  string `json:"value"`
}

// StartRecord is platform.start.
type StartRecord struct {
	RequestID string        `json:"requestId"`
	Version   string        `json:"version,omitempty"` // "$LATEST"
	Tracing   *TraceContext `json:"tracing,omitempty"`
}

// RuntimeDoneMetrics is the metrics object of platform.runtimeDone.
type RuntimeDoneMetrics struct {
	DurationMs    float64 `json:"durationMs"`
	ProducedBytes int64   `json:"producedBytes"`
}

// RuntimeDoneRecord is platform.runtimeDone; Spans are responseLatency,
// responseDuration and runtimeOverhead.
type RuntimeDoneRecord struct {
	RequestID string             `json:"requestId"`
	Status    string             `json:"status"`
	ErrorType string             `json:"errorType,omitempty"`
	Metrics   RuntimeDoneMetrics `json:"metrics"`
	Spans     []Span             `json:"spans,omitempty"`
	Tracing   *TraceContext      `json:"tracing,omitempty"`
}

// ReportMetrics is the metrics object of platform.report. InitDurationMs is present
// only on the first invoke of a cold environment.
type ReportMetrics struct {
	DurationMs       float64  `json:"durationMs"`
	BilledDurationMs int64    `json:"billedDurationMs"`
	MemorySizeMB     int      `json:"memorySizeMB"`
	MaxMemoryUsedMB  int      `json:"maxMemoryUsedMB"`
	InitDurationMs   *float64 `json:"initDurationMs,omitempty"`
}

// ReportRecord is platform.report; Spans carries extensionOverhead when extensions exist.
type ReportRecord struct {
	RequestID string        `json:"requestId"`
	Status    string        `json:"status"`
	ErrorType string        `json:"errorType,omitempty"`
	Metrics   ReportMetrics `json:"metrics"`
	Spans     []Span        `json:"spans,omitempty"`
	Tracing   *TraceContext `json:"tracing,omitempty"`
}

// ExtensionRecord is platform.extension, one per extension when init ends.
type ExtensionRecord struct {
	Name      string   `json:"name"`
	State     string   `json:"state"` // "Ready"
	Events    []string `json:"events"`
	ErrorType string   `json:"errorType,omitempty"`
}

// MarshalJSON writes events as [] rather than null when the extension subscribed to
// none, as Lambda does.
func (r ExtensionRecord) MarshalJSON() ([]byte, error) {
	type plain ExtensionRecord
	if r.Events == nil {
		r.Events = []string{}
	}
	return json.Marshal(plain(r))
}

// TelemetrySubscriptionRecord is platform.telemetrySubscription (and, on the Logs API,
// platform.logsSubscription).
type TelemetrySubscriptionRecord struct {
	Name  string   `json:"name"`
	State string   `json:"state"` // "Subscribed", or "Already subscribed" on a repeated subscribe
	Types []string `json:"types"`
}

// LogsDroppedRecord is platform.logsDropped.
type LogsDroppedRecord struct {
	DroppedBytes   int64  `json:"droppedBytes"`
	DroppedRecords int64  `json:"droppedRecords"`
	Reason         string `json:"reason"`
}

// Span is one named interval inside a record.
type Span struct {
	Name       string    `json:"name"`
	Start      time.Time `json:"start"`
	DurationMs float64   `json:"durationMs"`
}

// MarshalJSON writes Start in Lambda's millisecond UTC format.
func (s Span) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name       string  `json:"name"`
		Start      string  `json:"start"`
		DurationMs float64 `json:"durationMs"`
	}{s.Name, FormatTime(s.Start), s.DurationMs})
}

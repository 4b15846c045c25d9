package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// BenchmarkPublishDeliver measures Publish plus HTTP delivery of function log lines to
// one real loopback subscriber (maxItems 1000), flushed by Close. A publisher faster
// than the consumer makes the hub drop past MaxQueuedBytes; the benchmark checks that
// delivered + reported-dropped accounts for every event and reports the delivered share.
func BenchmarkPublishDeliver(b *testing.B) {
	c := newConsumer(b, nil)
	h := NewHub(Options{})
	if status, resp := h.Subscribe(TelemetryAPI, "ext", httpBody("2022-12-13", []string{"function"}, `{"maxItems":1000,"timeoutMs":25}`, c.uri("/"))); status != http.StatusOK {
		b.Fatalf("subscribe: %d %s", status, resp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Publish(Event{Type: TypeFunction, Record: "2026-11-26T05:00:00.000Z\tINFO\tsome function log line of typical length"})
	}
	if err := h.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var delivered, dropped int64
	for _, e := range c.events() {
		switch e.Type {
		case TypeFunction:
			delivered++
		case TypeLogsDropped:
			var d LogsDroppedRecord
			json.Unmarshal(e.Record, &d)
			dropped += d.DroppedRecords
		}
	}
	if delivered+dropped != int64(b.N) {
		b.Fatalf("delivered %d + dropped %d != published %d", delivered, dropped, b.N)
	}
	b.ReportMetric(float64(delivered)/float64(b.N), "delivered/op")
}

package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/initprof/initprof/extension/telemetry"
)

// The core's use of the hub: publish initStart before any extension runs, answer the
// extension's subscribe, end init, close. The extension's listener still receives
// initStart thanks to the replay.
func ExampleHub() {
	var mu sync.Mutex
	var got []string
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch []struct{ Type string }
		json.Unmarshal(body, &batch)
		mu.Lock()
		for _, e := range batch {
			got = append(got, e.Type)
		}
		mu.Unlock()
	}))
	defer listener.Close()

	hub := telemetry.NewHub(telemetry.Options{})
	hub.Publish(telemetry.Event{Type: telemetry.TypeInitStart, Record: telemetry.InitStartRecord{
		InitializationType: "on-demand", Phase: "init", FunctionName: "f", FunctionVersion: "$LATEST"}})

	body := `{"schemaVersion":"2022-12-13","types":["platform","function"],` +
		`"buffering":{"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"` + listener.URL + `/telemetry"}}`
	status, resp := hub.Subscribe(telemetry.TelemetryAPI, "my-extension", []byte(body))
	fmt.Println(status, string(resp))

	hub.Publish(telemetry.Event{Type: telemetry.TypeFunction, Record: "hello from the function"})
	hub.EndInit()
	status, _ = hub.Subscribe(telemetry.TelemetryAPI, "late-extension", []byte(body))
	fmt.Println(status)

	hub.Close(context.Background())
	fmt.Println(got)
	// Output:
	// 200 OK
	// 403
	// [platform.initStart platform.telemetrySubscription function]
}

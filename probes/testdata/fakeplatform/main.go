// Command fakeplatform is the smallest Lambda Extensions API the probe tests
// need: register, telemetry subscribe, and a /next that answers SHUTDOWN at
// once, so each sample run is one short cold start. It runs as a SEPARATE
// process: a server inside the profiler process delayed the targets by a
// bimodal 9–12 ms. It prints "LISTEN host:port" once it accepts connections.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeplatform:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lambda-Extension-Identifier", "0f4e3c2a-1111-2222-3333-444455556666")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"functionName":"probes-test","functionVersion":"$LATEST","handler":"x"}`)
	})
	mux.HandleFunc("PUT /2022-07-01/telemetry", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "OK")
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":0}`)
	})
	mux.HandleFunc("POST /2020-01-01/extension/init/error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	fmt.Printf("LISTEN %s\n", ln.Addr())
	os.Stdout.Sync()
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "fakeplatform:", err)
		os.Exit(1)
	}
}

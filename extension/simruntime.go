package extension

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// RunSimRuntime is the simulated runtime: a separate process that behaves
// like a Lambda runtime with known costs. It sleeps init (standing in for a
// runtime's own start: ~15 ms for provided.al2023, ~180 ms for python with
// imports), then loops: GET /invocation/next, sleep invoke, POST a response.
// It returns when the platform goes away or on SIGTERM.
func RunSimRuntime(api string, init, invoke time.Duration) error {
	if api == "" {
		return fmt.Errorf("sim runtime: AWS_LAMBDA_RUNTIME_API is not set")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleep(init) {
		return nil
	}
	base := "http://" + api + "/2018-06-01/runtime/invocation/"
	client := &http.Client{}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"next", nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim runtime: /next: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
		resp.Body.Close()
		id := resp.Header.Get(hdrRtRequestID)
		if resp.StatusCode != http.StatusOK || id == "" {
			return fmt.Errorf("sim runtime: /next answered %s without a request id", resp.Status)
		}
		// One function log line per invoke, so `function` telemetry flows.
		fmt.Printf("sim runtime: invoke %s\n", id)
		if !sleep(invoke) {
			return nil
		}
		body := []byte(`{"statusCode":200,"body":"initprof sim runtime"}`)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+id+"/response", bytes.NewReader(body))
		resp, err = client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim runtime: response: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("sim runtime: response for %s answered %s", id, resp.Status)
		}
	}
}

// SimRuntimeMain runs the simulated runtime configured by the environment
// (SimRuntimeEnv=1, INITPROF_SIM_INIT, INITPROF_SIM_INVOKE) and returns the
// process exit code. Programs call it first thing when SimRuntimeEnv is set.
func SimRuntimeMain() int {
	parse := func(k string) (time.Duration, error) {
		v := os.Getenv(k)
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("sim runtime: %s=%q: want a non-negative duration like 180ms", k, v)
		}
		return d, nil
	}
	init, err := parse("INITPROF_SIM_INIT")
	if err == nil {
		var invoke time.Duration
		if invoke, err = parse("INITPROF_SIM_INVOKE"); err == nil {
			err = RunSimRuntime(os.Getenv("AWS_LAMBDA_RUNTIME_API"), init, invoke)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

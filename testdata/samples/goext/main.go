// Command goext is a sample Lambda extension in pure Go, one of the subjects
// initprof's tests profile. It behaves like a real external extension:
// register, bind a telemetry listener, subscribe to the Telemetry API, then
// loop on /next until SHUTDOWN. It prints ground-truth checkpoints on stdout,
//
//	INIT | checkpoint=<name> mono_ns=<CLOCK_MONOTONIC ns>
//
// at main, register_ok, listener_bound, subscribe_ok and before_next, so tests
// can hold initprof's measurements against the program's own clock readings.
// The clock is read with clock_gettime(CLOCK_MONOTONIC) (the clock
// bpf_ktime_get_ns uses), not Go's time package, whose monotonic reading has
// an unspecified origin.
//
// Environment (all optional except AWS_LAMBDA_RUNTIME_API):
//
//	AWS_LAMBDA_RUNTIME_API     host:port of the platform (Lambda: 127.0.0.1:9001)
//	INITPROF_SAMPLE_PORT       telemetry listener port on 127.0.0.1 (default 0 = ephemeral)
//	INITPROF_SAMPLE_DEST_HOST  host in the subscription URI (default sandbox.localdomain)
//	INITPROF_SAMPLE_H18=1      subscribe concurrently with the first /next
//	INITPROF_SAMPLE_CRASH=register        exit 3 right after main, before registering
//	INITPROF_SAMPLE_CRASH=after_register  exit 3 right after register_ok (a crash mid-init)
//	INITPROF_SAMPLE_NONEXT=1   register, then sleep forever without calling /next
//	INITPROF_SAMPLE_INIT_DELAY_MS=N  sleep N ms after subscribing, before the first
//	                           /next (a slow extension init; not under H18)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func monoNS() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// checkpoint writes one line with a single write(2): os.Stdout is unbuffered,
// so the line reaches the platform at once, whole.
func checkpoint(name string, ns uint64) {
	os.Stdout.WriteString("INIT | checkpoint=" + name + " mono_ns=" + strconv.FormatUint(ns, 10) + "\n")
}

type extension struct {
	name     string
	api      string
	id       string
	client   *http.Client
	initDone atomic.Bool
	events   atomic.Int64
}

func main() {
	tMain := monoNS()
	name := filepath.Base(os.Args[0])
	checkpoint("main", tMain)
	os.Exit(run(name))
}

func run(name string) int {
	errf := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
		return 1
	}
	crash := os.Getenv("INITPROF_SAMPLE_CRASH")
	switch crash {
	case "", "after_register":
	case "register":
		fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_CRASH=register: exiting with status 3 before registering\n", name)
		return 3
	default:
		fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_CRASH=%s: unknown crash point (want: register or after_register)\n", name, crash)
		return 2
	}
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return errf("AWS_LAMBDA_RUNTIME_API is not set: run me under a Lambda platform (e.g. initprof platform)")
	}
	port := 0
	if ps := os.Getenv("INITPROF_SAMPLE_PORT"); ps != "" {
		p, err := strconv.Atoi(ps)
		if err != nil || p < 0 || p > 65535 {
			fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_PORT=%s is not a port number (0-65535)\n", name, ps)
			return 2
		}
		port = p
	}
	dest := os.Getenv("INITPROF_SAMPLE_DEST_HOST")
	if dest == "" {
		dest = "sandbox.localdomain"
	}
	h18 := os.Getenv("INITPROF_SAMPLE_H18") == "1"
	nonext := os.Getenv("INITPROF_SAMPLE_NONEXT") == "1"
	var delay time.Duration
	if ds := os.Getenv("INITPROF_SAMPLE_INIT_DELAY_MS"); ds != "" {
		ms, err := strconv.Atoi(ds)
		if err != nil || ms < 0 || ms > 600000 {
			fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_INIT_DELAY_MS=%s is not a number of milliseconds (0-600000)\n", name, ds)
			return 2
		}
		delay = time.Duration(ms) * time.Millisecond
	}

	e := &extension{
		name: name,
		api:  api,
		// No proxy: the platform is local, whatever HTTP_PROXY says.
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}},
	}

	// 1. Register.
	resp, body, err := e.do(context.Background(), "POST", "/2020-01-01/extension/register",
		map[string]string{"Lambda-Extension-Name": name, "Content-Type": "application/json"},
		`{"events":["INVOKE","SHUTDOWN"]}`, 30*time.Second, nil)
	if err != nil {
		return errf("register failed: %v", err)
	}
	t := monoNS()
	if resp.StatusCode != http.StatusOK {
		return errf("register: HTTP %d: %.600s", resp.StatusCode, body)
	}
	e.id = resp.Header.Get("Lambda-Extension-Identifier")
	if e.id == "" {
		return errf("register: HTTP 200 but no Lambda-Extension-Identifier header")
	}
	checkpoint("register_ok", t)
	if crash == "after_register" {
		fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_CRASH=after_register: exiting with status 3 after registering\n", name)
		return 3
	}
	if nonext {
		fmt.Fprintf(os.Stderr, "%s: INITPROF_SAMPLE_NONEXT=1: registered; sleeping forever without calling /next\n", name)
		select {}
	}

	// 2. Telemetry listener, built from raw syscalls so listener_bound is
	// taken right after bind(2) returns.
	ln, boundPort, err := e.listen(port)
	if err != nil {
		e.fail("ListenerFailed", "telemetry listener: %v", err)
	}
	go http.Serve(ln, http.HandlerFunc(e.telemetry))

	// 3. Subscribe (4. concurrently with the first /next under H18).
	sub := fmt.Sprintf(`{"schemaVersion":"2022-12-13","types":["platform","function"],`+
		`"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},`+
		`"destination":{"protocol":"HTTP","URI":"http://%s:%d/"}}`, dest, boundPort)
	subscribed := make(chan struct{})
	if h18 {
		go func() {
			e.subscribe(sub)
			close(subscribed)
		}()
	} else {
		close(subscribed)
		e.subscribe(sub)
		time.Sleep(delay)
	}

	// 4. The event loop.
	var once sync.Once
	trace := &httptrace.ClientTrace{
		// GotConn fires once the connection is ready and right before the
		// request is written on it.
		GotConn: func(httptrace.GotConnInfo) {
			once.Do(func() { checkpoint("before_next", monoNS()) })
		},
	}
	for {
		resp, body, err := e.do(context.Background(), "GET", "/2020-01-01/extension/event/next",
			map[string]string{"Lambda-Extension-Identifier": e.id}, "", 0, trace)
		if err != nil {
			e.fail("NextFailed", "/next failed: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			e.fail("NextFailed", "/next: HTTP %d: %.600s", resp.StatusCode, body)
		}
		e.initDone.Store(true)
		var ev struct {
			EventType string `json:"eventType"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			e.fail("NextFailed", "/next: event is not JSON: %v: %.200s", err, body)
		}
		if strings.EqualFold(ev.EventType, "SHUTDOWN") {
			// Under H18 the subscribe may still be in flight: finish it, so
			// its outcome (subscribe_ok or an error) is always reported.
			<-subscribed
			fmt.Printf("SHUTDOWN | telemetry_events=%d\n", e.events.Load())
			return 0
		}
	}
}

// do sends one request to the platform and reads the whole response body.
// timeout 0 means none (the /next long-poll).
func (e *extension) do(ctx context.Context, method, path string, hdr map[string]string, body string,
	timeout time.Duration, trace *httptrace.ClientTrace) (*http.Response, []byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if trace != nil {
		ctx = httptrace.WithClientTrace(ctx, trace)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.api+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	return resp, b, nil
}

func (e *extension) listen(port int) (net.Listener, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	err = unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	t := monoNS()
	if err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("bind 127.0.0.1:%d: %w", port, err)
	}
	checkpoint("listener_bound", t)
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "telemetry-listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("FileListener: %w", err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port, nil
}

func (e *extension) subscribe(body string) {
	resp, rb, err := e.do(context.Background(), "PUT", "/2022-07-01/telemetry",
		map[string]string{"Lambda-Extension-Identifier": e.id, "Content-Type": "application/json"},
		body, 30*time.Second, nil)
	if err != nil {
		e.fail("SubscribeFailed", "telemetry subscribe failed: %v", err)
	}
	t := monoNS()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e.fail("SubscribeFailed", "telemetry subscribe: HTTP %d: %.600s", resp.StatusCode, rb)
	}
	checkpoint("subscribe_ok", t)
}

// telemetry receives the platform's batches (a JSON array of events), counts
// them and prints each event's type, so tests can see what was delivered.
func (e *extension) telemetry(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var evs []struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &evs); err == nil {
		var out bytes.Buffer
		for _, ev := range evs {
			out.WriteString("TELEMETRY | type=" + ev.Type + "\n")
		}
		e.events.Add(int64(len(evs)))
		os.Stdout.Write(out.Bytes())
	}
	w.WriteHeader(http.StatusOK)
}

// fail reports the error to the platform (init/error during init, exit/error
// after), prints it, and exits 1.
func (e *extension) fail(reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "%s: %s\n", e.name, msg)
	path := "/2020-01-01/extension/init/error"
	if e.initDone.Load() {
		path = "/2020-01-01/extension/exit/error"
	}
	body, _ := json.Marshal(map[string]any{"errorMessage": msg, "errorType": "Extension." + reason, "stackTrace": []string{}})
	_, _, err := e.do(context.Background(), "POST", path, map[string]string{
		"Lambda-Extension-Identifier":          e.id,
		"Lambda-Extension-Function-Error-Type": "Extension." + reason,
		"Content-Type":                         "application/json",
	}, string(body), 5*time.Second, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: reporting the error to the platform failed too: %v\n", e.name, err)
	}
	os.Exit(1)
}

package extension

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// TestMain lets the test binary double as the simulated runtime, so the
// lifecycle tests run real, separate runtime processes without building
// initprof.
func TestMain(m *testing.M) {
	if os.Getenv(SimRuntimeEnv) == "1" {
		os.Exit(SimRuntimeMain())
	}
	if strings.HasPrefix(filepath.Base(os.Args[0]), testExtPrefix) {
		os.Exit(testExtMain())
	}
	os.Exit(m.Run())
}

type runOpts struct {
	samples         []string // sample extensions (build/samples) to install
	testExts        []string // modes of this test binary as an extension (testext_test.go)
	scripts         map[string]string
	env             []string
	rtInit          time.Duration
	runtime         *RuntimeSpec
	invokes         int
	initTimeout     time.Duration
	shutdownTimeout time.Duration
	invokeTimeout   time.Duration
	noSuppressed    bool
	// during runs alongside the platform with its API address.
	during func(addr string)
}

// runPlatform runs a whole environment with real processes: the samples as
// external extensions and this test binary as the sim runtime.
func runPlatform(t *testing.T, o runOpts) (*Result, *Summary) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "extensions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range o.samples {
		if err := os.Symlink(testutil.Sample(t, s), filepath.Join(dir, s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.testExts) > 0 {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range o.testExts {
			if err := os.Symlink(self, filepath.Join(dir, testExtPrefix+m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, body := range o.scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rt := SimRuntime(exe, o.rtInit, time.Millisecond)
	if o.runtime != nil {
		rt = *o.runtime
	}
	var buf bytes.Buffer
	cfg := Config{
		ExtensionsDir:    dir,
		Runtime:          rt,
		Env:              o.env,
		Addr:             "127.0.0.1:0",
		Invokes:          o.invokes,
		InitTimeout:      o.initTimeout,
		ShutdownTimeout:  o.shutdownTimeout,
		InvokeTimeout:    o.invokeTimeout,
		NoSuppressedInit: o.noSuppressed,
		Timeline:         NewTimeline(&buf),
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	if o.during != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.during(p.Addr()) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := p.Run(ctx)
	if err != nil {
		t.Fatalf("platform run: %v", err)
	}
	wg.Wait()
	// What was written must read back to what was kept.
	read, err := ReadTimeline(&buf)
	if err != nil {
		t.Fatalf("reading the written timeline: %v", err)
	}
	if len(read) != len(res.Timeline) {
		t.Errorf("written timeline has %d entries, in-memory %d", len(read), len(res.Timeline))
	}
	s, err := Summarize(read)
	if err != nil {
		t.Fatalf("summarize: %v", err)
	}
	var text bytes.Buffer
	s.WriteText(&text)
	t.Logf("summary:\n%s", text.String())
	return res, s
}

// firstNexts returns each actor's first /next arrival from the raw timeline.
func firstNexts(es []Entry) map[string]int64 {
	out := map[string]int64{}
	for _, e := range es {
		if e.Kind == KindRequest && (strings.HasSuffix(e.Path, "/event/next") || strings.HasSuffix(e.Path, "/invocation/next")) && e.Name != "" {
			if _, ok := out[e.Name]; !ok {
				out[e.Name] = e.MonoNs
			}
		}
	}
	return out
}

func findEntry(es []Entry, kind, event string) *Entry {
	for i := range es {
		if es[i].Kind == kind && (event == "" || es[i].Event == event) {
			return &es[i]
		}
	}
	return nil
}

func TestInitEndsAfterSlowest(t *testing.T) {
	cases := []struct {
		name       string
		rtInit     time.Duration
		env        []string
		wantEnding func(string) bool
	}{
		{"slow runtime", 150 * time.Millisecond, nil, func(n string) bool { return n == NameRuntime }},
		{"slow extensions", 0, []string{"INITPROF_SAMPLE_INIT_DELAY_MS=250"}, func(n string) bool { return n == "goext" || n == "cext" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, s := runPlatform(t, runOpts{samples: []string{"goext", "cext"}, rtInit: tc.rtInit, env: tc.env, invokes: 1})
			if res.InitStatus != "success" {
				t.Fatalf("init %s (%s)", res.InitStatus, res.InitErrorType)
			}
			es := res.Timeline
			SortEntries(es)
			nexts := firstNexts(es)
			for _, who := range []string{NameRuntime, "goext", "cext"} {
				if _, ok := nexts[who]; !ok {
					t.Fatalf("%s never called /next; timeline nexts %v", who, nexts)
				}
			}
			var lastName string
			var last int64
			for n, ns := range nexts {
				if ns > last {
					last, lastName = ns, n
				}
			}
			if !tc.wantEnding(lastName) || res.EndedBy != lastName || s.EndedBy != lastName {
				t.Errorf("init ended by %q (summary %q), the last /next was %q's", res.EndedBy, s.EndedBy, lastName)
			}
			start := findEntry(es, KindState, "initStart")
			end := findEntry(es, KindInitEnd, "")
			if start == nil || end == nil {
				t.Fatal("timeline lacks initStart or init_end")
			}
			if end.MonoNs < last {
				t.Errorf("init ended %d ns before the last /next", last-end.MonoNs)
			}
			if got, want := res.InitDuration, time.Duration(last-start.MonoNs); got != want {
				t.Errorf("Init Duration %v, want initStart → last /next = %v", got, want)
			}
			if s.RunnerUp == "" || s.EndedByMargin <= 0 {
				t.Errorf("summary has no critical-path margin: %+v", s)
			}
		})
	}
}

// telemetrySink collects what the platform delivers to a subscriber.
type telemetrySink struct {
	mu     sync.Mutex
	events []map[string]any
	srv    *httptest.Server
}

func newSink(t *testing.T) *telemetrySink {
	s := &telemetrySink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Errorf("telemetry batch is not a JSON array: %v", err)
		}
		s.mu.Lock()
		s.events = append(s.events, batch...)
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *telemetrySink) find(typ string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e["type"] == typ {
			return e
		}
	}
	return nil
}

// client is a minimal extension speaking the API from inside the test.
type client struct {
	t    *testing.T
	base string
	id   string
}

func (c *client) do(method, path string, hdr map[string]string, body string) (int, http.Header, []byte) {
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.id != "" {
		req.Header.Set(hdrExtID, c.id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (c *client) register(name string) bool {
	st, h, b := c.do("POST", "/2020-01-01/extension/register", map[string]string{hdrExtName: name}, `{"events":["INVOKE"]}`)
	if st != 200 {
		c.t.Errorf("register %s: %d %s", name, st, b)
		return false
	}
	c.id = h.Get(hdrExtID)
	return true
}

// nextLoop calls /next until the platform goes away; it reports each event type.
func (c *client) nextLoop(got chan<- string) {
	for {
		st, _, b := c.do("GET", "/2020-01-01/extension/event/next", nil, "")
		if st != 200 {
			return
		}
		var ev ExtEvent
		_ = json.Unmarshal(b, &ev)
		select {
		case got <- ev.EventType:
		default:
		}
	}
}

// TestReplayReportAndLateSubscribe: an internal extension subscribing well
// after initStart still receives it (replay); initReport's durationMs is the
// timeline's Init Duration; a subscribe after init gets 403.
func TestReplayReportAndLateSubscribe(t *testing.T) {
	sink := newSink(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(sink.srv.URL, "http://"))
	var lateStatus int
	var lateBody []byte
	res, s := runPlatform(t, runOpts{samples: []string{"goext"}, rtInit: 200 * time.Millisecond, invokes: 1,
		during: func(addr string) {
			probe := &client{t: t, base: "http://" + addr}
			late := &client{t: t, base: "http://" + addr}
			if !probe.register("probe") || !late.register("late") {
				return
			}
			time.Sleep(80 * time.Millisecond) // well after initStart: only the replay can deliver it
			sub := `{"schemaVersion":"2022-12-13","types":["platform","extension","function"],"buffering":{"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:` + port + `/"}}`
			if st, _, b := probe.do("PUT", telemetryPath, nil, sub); st != 200 {
				t.Errorf("subscribe during init: %d %s", st, b)
			}
			probeEv, lateEv := make(chan string, 4), make(chan string, 4)
			go probe.nextLoop(probeEv)
			go late.nextLoop(lateEv)
			if ev := <-lateEv; ev != EventInvoke { // init is over once INVOKE arrives
				t.Errorf("late got %q, want INVOKE", ev)
			}
			lateStatus, _, lateBody = late.do("PUT", telemetryPath, nil, strings.Replace(sub, "probe", "late", 1))
		}})
	if res.InitStatus != "success" {
		t.Fatalf("init %s", res.InitStatus)
	}
	if lateStatus != http.StatusForbidden || !strings.Contains(string(lateBody), "SubscriptionClosed") {
		t.Errorf("subscribe after init: %d %s, want 403 Telemetry.SubscriptionClosed", lateStatus, lateBody)
	}
	if sink.find("platform.initStart") == nil {
		t.Errorf("the late subscriber never got platform.initStart (replay); got %d events", len(sink.events))
	}
	if sink.find("extension") == nil {
		t.Errorf("goext's output never arrived as extension events")
	}
	if ev := sink.find("function"); ev == nil || !strings.HasPrefix(fmt.Sprint(ev["record"]), "sim runtime: invoke ") {
		t.Errorf("the runtime's output never arrived as a function event: %v", ev)
	}
	rep := sink.find("platform.initReport")
	if rep == nil {
		t.Fatal("no platform.initReport delivered")
	}
	rec, _ := rep["record"].(map[string]any)
	metrics, _ := rec["metrics"].(map[string]any)
	dur, _ := metrics["durationMs"].(float64)
	es := res.Timeline
	SortEntries(es)
	start := findEntry(es, KindState, "initStart")
	var last int64
	for _, ns := range firstNexts(es) {
		last = max(last, ns)
	}
	want := ms(last - start.MonoNs)
	if dur != want || s.InitDuration != time.Duration(want*1e6) {
		t.Errorf("initReport durationMs %v, summary %v; timeline initStart → last /next = %v ms", dur, s.InitDuration, want)
	}
	if rec["status"] != "success" || rec["phase"] != "init" || rec["initializationType"] != "on-demand" {
		t.Errorf("initReport record %v", rec)
	}
	for _, typ := range []string{"platform.start", "platform.runtimeDone", "platform.report", "platform.extension", "platform.initRuntimeDone"} {
		if sink.find(typ) == nil {
			t.Errorf("no %s delivered", typ)
		}
	}
}

// TestH18Race runs the samples with the H18 ordering (subscribe concurrent
// with the first /next). The summary must flag the race and how close it
// was; a fast runtime leaves less margin than a slow one.
func TestH18Race(t *testing.T) {
	margins := map[string]map[string]time.Duration{}
	for _, rc := range []struct {
		name   string
		rtInit time.Duration
		h18    bool
	}{{"fast-h18", 0, true}, {"slow-h18", 150 * time.Millisecond, true}, {"slow-sequential", 150 * time.Millisecond, false}} {
		t.Run(rc.name, func(t *testing.T) {
			var env []string
			if rc.h18 {
				env = []string{"INITPROF_SAMPLE_H18=1"}
			}
			_, s := runPlatform(t, runOpts{samples: []string{"goext", "cext"}, rtInit: rc.rtInit, env: env})
			margins[rc.name] = map[string]time.Duration{}
			for _, p := range s.Extensions {
				if !p.Subscribe.OK {
					t.Fatalf("%s never subscribed", p.Name)
				}
				margins[rc.name][p.Name] = p.SubscribeMargin
				noted := false
				for _, n := range s.Notes {
					if strings.HasPrefix(n, p.Name+": RACE") {
						noted = true
					}
				}
				lost := p.SubscribeMargin < 0
				if lost && p.SubscribeStatus != http.StatusForbidden {
					t.Errorf("%s subscribed after init end but got %d, not 403", p.Name, p.SubscribeStatus)
				}
				if want := p.ConcurrentSubscribe || lost; noted != want {
					t.Errorf("%s: race noted %v, want %v (concurrent %v, margin %v)", p.Name, noted, want, p.ConcurrentSubscribe, p.SubscribeMargin)
				}
				if !rc.h18 && p.ConcurrentSubscribe {
					t.Errorf("%s: sequential ordering reported as concurrent", p.Name)
				}
			}
		})
	}
	for _, n := range []string{"goext", "cext"} {
		fast, slow := margins["fast-h18"][n], margins["slow-h18"][n]
		if fast >= slow {
			t.Errorf("%s: subscribe margin with a fast runtime %v, not below the slow runtime's %v", n, fast, slow)
		}
	}
}

func TestNoNextTimesOutAndShutdownKills(t *testing.T) {
	const limit = time.Second
	const shut = 400 * time.Millisecond
	const fnTimeout = 500 * time.Millisecond
	res, s := runPlatform(t, runOpts{samples: []string{"goext"}, env: []string{"INITPROF_SAMPLE_NONEXT=1"}, initTimeout: limit, shutdownTimeout: shut, invokeTimeout: fnTimeout, invokes: 1})
	if res.InitStatus != "timeout" || s.InitStatus != "timeout" {
		t.Fatalf("init status %q, want timeout", res.InitStatus)
	}
	// Lambda reports the limit as the Init Duration of a timed-out init: it
	// can never end before the limit (how far after is the machine's).
	if res.InitDuration < limit {
		t.Errorf("timeout Init Duration %v, before the %v limit", res.InitDuration, limit)
	}
	if !strings.Contains(res.EndedBy, "goext") {
		t.Errorf("timeout blamed %q, want goext", res.EndedBy)
	}
	// Lambda's suppressed init: init runs again at the first invoke, within
	// the function's timeout, times out again, and the invoke fails with it.
	if r := res.SuppressedInit; r == nil || r.Status != "timeout" || r.Duration < fnTimeout || !strings.Contains(r.EndedBy, "goext") {
		t.Errorf("suppressed init %+v, want a timeout of at least %v blamed on goext", r, fnTimeout)
	}
	if len(res.Invokes) != 1 || res.Invokes[0].Status != "timeout" || res.Invokes[0].Duration < fnTimeout {
		t.Errorf("invokes %+v, want one timeout covering the suppressed init", res.Invokes)
	}
	// goext subscribed to SHUTDOWN but never reads /next: SIGKILL at the deadline.
	es := res.Timeline
	SortEntries(es)
	start := findEntry(es, KindShutdown, "start")
	var killed, exit *Entry
	for i := range es {
		if start == nil || es[i].MonoNs < start.MonoNs {
			continue // the first environment, discarded before the suppressed init
		}
		if es[i].Name == "goext" && es[i].Kind == KindShutdown && es[i].Event == "sigkill" && killed == nil {
			killed = &es[i]
		}
		if es[i].Name == "goext" && es[i].Kind == KindExit {
			exit = &es[i]
		}
	}
	if start == nil || killed == nil || exit == nil {
		t.Fatalf("timeline lacks shutdown start, goext's SIGKILL or its exit")
	}
	if d := time.Duration(killed.MonoNs - start.MonoNs); d < shut {
		t.Errorf("SIGKILL %v after shutdown began, before the %v deadline", d, shut)
	}
	if exit.Detail["signal"] != "SIGKILL" {
		t.Errorf("goext exit %v, want killed by SIGKILL", exit.Detail)
	}
}

func TestCrashingExtension(t *testing.T) {
	for _, point := range []string{"register", "after_register"} {
		t.Run(point, func(t *testing.T) {
			res, s := runPlatform(t, runOpts{samples: []string{"goext"}, env: []string{"INITPROF_SAMPLE_CRASH=" + point}, initTimeout: 5 * time.Second})
			if res.InitStatus != "error" && res.InitStatus != "failure" {
				t.Fatalf("init status %q after a crash, want error or failure", res.InitStatus)
			}
			if res.InitErrorType != ErrExtensionCrash || res.EndedBy != "goext" || s.InitErrorType != ErrExtensionCrash {
				t.Errorf("errorType %q by %q, want %s by goext", res.InitErrorType, res.EndedBy, ErrExtensionCrash)
			}
			if res.InitDuration >= 5*time.Second {
				t.Errorf("a crash waited for the init timeout (%v)", res.InitDuration)
			}
		})
	}
}

func TestShutdownReachesSubscribed(t *testing.T) {
	res, _ := runPlatform(t, runOpts{samples: []string{"goext", "cext"}, invokes: 2, shutdownTimeout: 2 * time.Second})
	if res.InitStatus != "success" || len(res.Invokes) != 2 {
		t.Fatalf("init %s, %d invokes", res.InitStatus, len(res.Invokes))
	}
	for _, iv := range res.Invokes {
		if iv.Status != "success" {
			t.Errorf("invoke %s: %s %s", iv.RequestID, iv.Status, iv.ErrorType)
		}
	}
	for _, n := range []string{"goext", "cext"} {
		var sent, sawLine bool
		var exit *Entry
		for i, e := range res.Timeline {
			switch {
			case e.Name == n && e.Kind == KindShutdown && e.Event == "event":
				sent = true
			case e.Name == n && e.Kind == KindShutdown && e.Event == "sigkill":
				t.Errorf("%s was SIGKILLed although it handles SHUTDOWN", n)
			case e.Name == n && e.Kind == KindLog && strings.HasPrefix(e.Line, "SHUTDOWN"):
				sawLine = true
			case e.Name == n && e.Kind == KindExit:
				exit = &res.Timeline[i]
			}
		}
		if !sent || !sawLine {
			t.Errorf("%s: SHUTDOWN sent %v, extension saw it %v", n, sent, sawLine)
		}
		if exit == nil || exit.Detail["exit_code"] != 0 {
			t.Errorf("%s exit %v, want exit code 0", n, exit)
		}
	}
}

func TestEnvironment(t *testing.T) {
	out := t.TempDir()
	script := "#!/bin/sh\nenv > " + out + "/$1.env\n"
	rt := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(rt, []byte("#!/bin/sh\nenv > "+out+"/runtime.env\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, _ := runPlatform(t, runOpts{
		scripts: map[string]string{"envdump": strings.Replace(script, "$1", "ext", 1)},
		runtime: &RuntimeSpec{Path: rt}, env: []string{"CUSTOMER=yes", "_HIDDEN=1"}, initTimeout: 3 * time.Second,
	})
	if res.InitStatus == "success" {
		t.Fatalf("an extension that exits at once must fail init")
	}
	read := func(name string) map[string]string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				m[k] = v
			}
		}
		return m
	}
	ext := read("ext.env")
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_RUNTIME_API", "TZ", "CUSTOMER"} {
		if ext[k] == "" {
			t.Errorf("extension lacks %s", k)
		}
	}
	for k := range ext {
		if strings.HasPrefix(k, "_") && k != "_" || runtimeOnlyVars[k] {
			t.Errorf("extension got runtime-only variable %s", k)
		}
	}
	if res.Timeline != nil {
		addr := findEntry(res.Timeline, KindState, "initStart").Detail["addr"]
		if ext["AWS_LAMBDA_RUNTIME_API"] != addr {
			t.Errorf("AWS_LAMBDA_RUNTIME_API=%s, platform listened on %v", ext["AWS_LAMBDA_RUNTIME_API"], addr)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "runtime.env")); err == nil {
		t.Errorf("the runtime started although an extension had already failed init")
	}
	// No extensions: the runtime starts, dumps its environment and exits.
	res, _ = runPlatform(t, runOpts{runtime: &RuntimeSpec{Path: rt}, env: []string{"CUSTOMER=yes", "_HIDDEN=1"}, initTimeout: 3 * time.Second})
	if res.InitStatus != "error" || res.InitErrorType != ErrRuntimeExit {
		t.Errorf("runtime exiting during init: %s %s, want error %s", res.InitStatus, res.InitErrorType, ErrRuntimeExit)
	}
	rtEnv := read("runtime.env")
	for _, k := range []string{"_HANDLER", "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HIDDEN", "CUSTOMER", "AWS_LAMBDA_RUNTIME_API"} {
		if rtEnv[k] == "" {
			t.Errorf("runtime lacks %s", k)
		}
	}
}

func TestRuntimeEnv(t *testing.T) {
	fn := FunctionConfig{FunctionName: "f", Version: "$LATEST", Handler: "a.b", Region: "us-west-2", MemoryMB: 256}
	rt := envFor(fn, "127.0.0.1:1234", []string{"C=1", "_X=2"}, []string{"INITPROF_SIM_RUNTIME=1"}, true)
	ext := envFor(fn, "127.0.0.1:1234", []string{"C=1", "_X=2"}, nil, false)
	has := func(env []string, kv string) bool {
		for _, e := range env {
			if e == kv {
				return true
			}
		}
		return false
	}
	for _, kv := range []string{"_HANDLER=a.b", "LAMBDA_TASK_ROOT=/var/task", "LAMBDA_RUNTIME_DIR=/var/runtime", "AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023", "_X=2", "C=1", "INITPROF_SIM_RUNTIME=1", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1234"} {
		if !has(rt, kv) {
			t.Errorf("runtime env lacks %s", kv)
		}
	}
	for _, kv := range []string{"_HANDLER=a.b", "LAMBDA_TASK_ROOT=/var/task", "_X=2", "INITPROF_SIM_RUNTIME=1"} {
		if has(ext, kv) {
			t.Errorf("extension env has %s", kv)
		}
	}
	for _, kv := range []string{"C=1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_REGION=us-west-2", "TZ=:UTC", "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand"} {
		if !has(ext, kv) {
			t.Errorf("extension env lacks %s", kv)
		}
	}
}

// TestUnsubscribedKilledAtOnce: an extension registered without SHUTDOWN is
// SIGKILLed as shutdown begins, while subscribed ones get the event.
func TestUnsubscribedKilledAtOnce(t *testing.T) {
	const shut = 2 * time.Second
	res, _ := runPlatform(t, runOpts{samples: []string{"goext"}, testExts: []string{"invokeonly"}, invokes: 1, shutdownTimeout: shut})
	if res.InitStatus != "success" {
		t.Fatalf("init %s %s", res.InitStatus, res.InitErrorType)
	}
	es := res.Timeline
	SortEntries(es)
	start := findEntry(es, KindShutdown, "start")
	var kill *Entry
	for i, e := range es {
		if e.Name == testExtPrefix+"invokeonly" && e.Kind == KindShutdown && e.Event == "sigkill" {
			kill = &es[i]
		}
		if e.Name == "goext" && e.Kind == KindShutdown && e.Event == "sigkill" {
			t.Errorf("goext (SHUTDOWN-subscribed) was SIGKILLed")
		}
	}
	if start == nil || kill == nil {
		t.Fatal("no SIGKILL for the INVOKE-only extension")
	}
	if d := time.Duration(kill.MonoNs - start.MonoNs); d >= shut/2 {
		t.Errorf("unsubscribed extension killed %v into shutdown; it must not get the %v budget", d, shut)
	}
}

// TestExtensionOverhead: the report's extensionOverhead covers an extension
// that keeps working after INVOKE, and is smaller without it.
func TestExtensionOverhead(t *testing.T) {
	slow, _ := runPlatform(t, runOpts{testExts: []string{"overhead"}, invokes: 2})
	fast, _ := runPlatform(t, runOpts{samples: []string{"goext"}, invokes: 2})
	if len(slow.Invokes) != 2 || len(fast.Invokes) != 2 {
		t.Fatalf("invokes: %d and %d", len(slow.Invokes), len(fast.Invokes))
	}
	for i := range slow.Invokes {
		s, f := slow.Invokes[i], fast.Invokes[i]
		if s.Status != "success" || f.Status != "success" {
			t.Fatalf("invoke status %s / %s", s.Status, f.Status)
		}
		if s.Duration < 60*time.Millisecond || s.ExtensionOverhead <= 0 {
			t.Errorf("invoke duration %v (extensionOverhead %v) does not cover the extension's 60ms of post-invoke work", s.Duration, s.ExtensionOverhead)
		}
		if f.ExtensionOverhead >= s.ExtensionOverhead {
			t.Errorf("overhead without post-invoke work %v, not below %v", f.ExtensionOverhead, s.ExtensionOverhead)
		}
		if s.Duration < s.ExtensionOverhead {
			t.Errorf("duration %v shorter than its extensionOverhead %v", s.Duration, s.ExtensionOverhead)
		}
	}
}

// TestSuppressedInitSucceeds: an extension whose first init fails and whose
// second succeeds: Lambda's suppressed init at the first invoke recovers the
// environment, the invoke succeeds and its duration covers the second init.
func TestSuppressedInitSucceeds(t *testing.T) {
	res, s := runPlatform(t, runOpts{testExts: []string{"flaky"}, invokes: 2, initTimeout: 5 * time.Second, shutdownTimeout: 300 * time.Millisecond})
	if res.InitStatus != "error" || s.InitStatus != "error" {
		t.Fatalf("init %s (summary %s), want error", res.InitStatus, s.InitStatus)
	}
	r := res.SuppressedInit
	if r == nil || r.Status != "success" {
		t.Fatalf("suppressed init %+v, want success", r)
	}
	if len(res.Invokes) != 2 || res.Invokes[0].Status != "success" || res.Invokes[1].Status != "success" {
		t.Fatalf("invokes %+v, want two successes", res.Invokes)
	}
	if res.Invokes[0].Duration < r.Duration {
		t.Errorf("first invoke %v shorter than the suppressed init it contains (%v)", res.Invokes[0].Duration, r.Duration)
	}
	var phases []string
	for _, e := range res.Timeline {
		if e.Kind == KindInitEnd {
			phases = append(phases, fmt.Sprint(e.Detail["phase"], ":", e.State))
		}
	}
	if strings.Join(phases, " ") != "init:error invoke:success" {
		t.Errorf("init ends %v, want init:error then invoke:success", phases)
	}
}

// TestExtensionInitError: init/error fails init with the extension's errorType.
func TestExtensionInitError(t *testing.T) {
	res, s := runPlatform(t, runOpts{samples: []string{"goext"}, testExts: []string{"initerror"}, invokes: 1, initTimeout: 5 * time.Second, shutdownTimeout: 300 * time.Millisecond})
	if res.InitStatus != "error" || res.InitErrorType != "Extension.TestFailure" || res.EndedBy != testExtPrefix+"initerror" {
		t.Fatalf("init %s %s by %s, want error Extension.TestFailure by %siniterror", res.InitStatus, res.InitErrorType, res.EndedBy, testExtPrefix)
	}
	if s.InitStatus != "error" {
		t.Errorf("summary status %s", s.InitStatus)
	}
	// The suppressed init fails the same way, and so does the first invoke.
	if r := res.SuppressedInit; r == nil || r.Status != "error" || r.ErrorType != "Extension.TestFailure" {
		t.Errorf("suppressed init %+v, want error Extension.TestFailure", r)
	}
	if len(res.Invokes) != 1 || res.Invokes[0].Status != "error" || res.Invokes[0].ErrorType != "Extension.TestFailure" {
		t.Errorf("invokes %+v, want one error Extension.TestFailure", res.Invokes)
	}
	// Without the suppressed init (NoSuppressedInit), nothing is invoked.
	res, _ = runPlatform(t, runOpts{samples: []string{"goext"}, testExts: []string{"initerror"}, invokes: 1, initTimeout: 5 * time.Second, shutdownTimeout: 300 * time.Millisecond, noSuppressed: true})
	if res.SuppressedInit != nil || len(res.Invokes) != 0 {
		t.Errorf("NoSuppressedInit: suppressed %+v, %d invokes", res.SuppressedInit, len(res.Invokes))
	}
}

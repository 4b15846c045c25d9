package rusttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/internal/testutil"
)

// registry is where Debian's librust-*-dev packages put their crate sources;
// testdata/rustext/.cargo/config.toml builds against it, offline.
const registry = "/usr/share/cargo/registry"

// elfFacts are the properties each variant's flag promises, read back with
// readelf the way a user would check them.
type elfFacts struct {
	typ     string // ELF type: DYN (PIE or static-pie) or EXEC
	interp  bool   // has PT_INTERP (dynamically linked)
	bindNow bool   // DF_BIND_NOW or DF_1_NOW
	relr    bool   // has DT_RELR
	symtab  bool   // has .symtab (not stripped)
}

// variants are the builds this package checks: the two `make ci` builds plus
// three that cost one LTO link each on top of them (they reuse the release
// profile's dependency build). rustext-o3 (a second dependency build) and
// rustext-syms are left to `make rust-samples`.
var variants = []struct {
	name string
	want elfFacts
	// relative says whether the build must have R_X86_64_RELATIVE relocations
	// (a PIE without RELR) or must have none (non-PIE, or RELR instead).
	relative bool
}{
	{"rustext-prod", elfFacts{typ: "DYN", interp: true, bindNow: true}, true},
	{"rustext-static-pie", elfFacts{typ: "DYN", bindNow: true}, true},
	{"rustext-lazy", elfFacts{typ: "DYN", interp: true}, true},
	{"rustext-relr", elfFacts{typ: "DYN", interp: true, bindNow: true, relr: true}, false},
	{"rustext-nonpie", elfFacts{typ: "EXEC", interp: true, bindNow: true}, false},
}

// cargoPath finds rustup's cargo in ~/.cargo/bin (where a CI shell's PATH
// often does not look), else cargo on PATH: the order the rustext Makefile
// uses, so a Debian cargo in /usr/bin never silently replaces rustup's.
func cargoPath() string {
	var homes []string
	if h, err := os.UserHomeDir(); err == nil {
		homes = append(homes, h)
	}
	if u, err := user.Current(); err == nil { // HOME may be unset in CI
		homes = append(homes, u.HomeDir)
	}
	for _, h := range homes {
		p := filepath.Join(h, ".cargo", "bin", "cargo")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("cargo"); err == nil {
		return p
	}
	return ""
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
	buildTook time.Duration
)

// sample returns build/samples/NAME, building the checked variants with the
// rustext Makefile once per test binary. It skips, saying why, when the
// toolchain or Debian's crate sources are missing, or under -short (a clean
// build takes a minute or two).
func sample(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the Rust sample variants (1-2 min from clean); skipped with -short")
	}
	cargo := cargoPath()
	if cargo == "" {
		t.Skip("needs cargo (on PATH or in ~/.cargo/bin): install a Rust toolchain")
	}
	for _, c := range []string{"tokio-1.", "hyper-0.14.", "reqwest-0.11.", "serde_json-1.", "libc-0.2."} {
		if m, _ := filepath.Glob(filepath.Join(registry, c+"*")); len(m) == 0 {
			t.Skipf("needs Debian's crate sources in %s (no %s*): apt-get install librust-tokio-dev "+
				"librust-hyper-dev librust-serde-json-dev librust-libc-dev librust-reqwest-dev", registry, c)
		}
	}
	testutil.RequireTool(t, "flock")
	root := testutil.Root(t)
	out := filepath.Join(root, "build", "samples")
	buildOnce.Do(func() {
		args := []string{"-C", filepath.Join(root, "testdata", "rustext"), "CARGO=" + cargo, "ci"}
		for _, v := range variants {
			args = append(args, filepath.Join(out, v.name))
		}
		start := time.Now()
		buildOut, buildErr = exec.Command("make", args...).CombinedOutput()
		buildTook = time.Since(start)
		t.Logf("make -C testdata/rustext ci + checked variants took %v (a few ms when up to date)", buildTook.Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("make -C testdata/rustext: %v\n%s", buildErr, buildOut)
	}
	p := filepath.Join(out, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s was not built by make -C testdata/rustext: %v", name, err)
	}
	return p
}

func monoNS(t testing.TB) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatalf("clock_gettime: %v", err)
	}
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

const testExtID = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// platform is a test double of the Lambda Extensions and Telemetry APIs: just
// enough to drive one extension through register, subscribe, one INVOKE and
// SHUTDOWN, recording what it sent and when (CLOCK_MONOTONIC).
type platform struct {
	t   testing.TB
	srv *httptest.Server

	subscribeStatus int  // when not 0, the subscribe's answer
	holdH18         bool // hold subscribe and the first /next until both arrived
	// onFirstNext runs while the first /next is held, with the extension fully
	// initialised (e.g. to probe its listeners).
	onFirstNext func() error

	mu                        sync.Mutex
	regName, regBody, regFeat string
	registerAt                uint64 // response about to be written
	subBody, subID            string
	subIn, subAt              uint64
	nextIDs                   []string
	nextIn                    []uint64
	errorReports              []string
	delivered                 int
	deliverErr, hookErr       error
	h18Violation              string
	subArrived, nextArrived   chan struct{}
	subOnce, nextOnce         sync.Once
	registered                chan struct{}
	regOnce                   sync.Once
}

func newPlatform(t testing.TB) *platform {
	p := &platform{t: t, subArrived: make(chan struct{}), nextArrived: make(chan struct{}), registered: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", p.register)
	mux.HandleFunc("PUT /2022-07-01/telemetry", p.subscribe)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", p.next)
	mux.HandleFunc("POST /2020-01-01/extension/init/error", p.errorReport)
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", p.errorReport)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *platform) register(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.regName = r.Header.Get("Lambda-Extension-Name")
	p.regFeat = r.Header.Get("Lambda-Extension-Accept-Feature")
	p.regBody = string(b)
	p.registerAt = monoNS(p.t)
	p.mu.Unlock()
	w.Header().Set("Lambda-Extension-Identifier", testExtID)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"functionName":"fn","functionVersion":"$LATEST","handler":"h","accountId":"123456789012"}`)
	p.regOnce.Do(func() { close(p.registered) })
}

func (p *platform) subscribe(w http.ResponseWriter, r *http.Request) {
	in := monoNS(p.t)
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.subIn, p.subBody, p.subID = in, string(b), r.Header.Get("Lambda-Extension-Identifier")
	p.mu.Unlock()
	p.subOnce.Do(func() { close(p.subArrived) })
	if p.holdH18 {
		p.await(p.nextArrived, "subscribe was answered without a concurrent /next (waited 3s)")
	}
	if p.subscribeStatus != 0 {
		w.WriteHeader(p.subscribeStatus)
		io.WriteString(w, `{"errorMessage":"bad","errorType":"ValidationError"}`)
		return
	}
	p.mu.Lock()
	p.subAt = monoNS(p.t)
	p.mu.Unlock()
	io.WriteString(w, "OK")
}

func (p *platform) await(c chan struct{}, violation string) {
	select {
	case <-c:
	case <-time.After(3 * time.Second):
		p.mu.Lock()
		p.h18Violation = violation
		p.mu.Unlock()
	}
}

func (p *platform) next(w http.ResponseWriter, r *http.Request) {
	in := monoNS(p.t)
	p.mu.Lock()
	p.nextIn = append(p.nextIn, in)
	p.nextIDs = append(p.nextIDs, r.Header.Get("Lambda-Extension-Identifier"))
	n := len(p.nextIn)
	p.mu.Unlock()
	p.nextOnce.Do(func() { close(p.nextArrived) })
	if n > 1 {
		// Mixed case on purpose: eventType must be compared case-insensitively.
		io.WriteString(w, `{"eventType":"Shutdown","shutdownReason":"spindown","deadlineMs":1764140002000}`)
		return
	}
	if p.holdH18 {
		p.await(p.subArrived, "/next was answered without a concurrent subscribe (waited 3s)")
	}
	if p.onFirstNext != nil {
		if err := p.onFirstNext(); err != nil {
			p.mu.Lock()
			p.hookErr = err
			p.mu.Unlock()
		}
	}
	p.deliver()
	w.Header().Set("Lambda-Extension-Event-Identifier", "ev-1")
	io.WriteString(w, `{"eventType":"INVOKE","deadlineMs":1764140000000,"requestId":"req-1",`+
		`"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:fn"}`)
}

// deliver posts one telemetry batch of two events to the subscriber's port on
// 127.0.0.1 (the sandbox resolves sandbox.localdomain there).
func (p *platform) deliver() {
	p.mu.Lock()
	body := p.subBody
	p.mu.Unlock()
	err := func() error {
		var sub subscription
		if err := json.Unmarshal([]byte(body), &sub); err != nil {
			return fmt.Errorf("subscription body %q is not JSON: %v", body, err)
		}
		u, err := url.Parse(sub.Destination.URI)
		if err != nil {
			return fmt.Errorf("destination URI %q: %v", sub.Destination.URI, err)
		}
		batch := `[{"time":"2026-11-26T05:00:00.000Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init"}},` +
			`{"time":"2026-11-26T05:00:00.001Z","type":"platform.telemetrySubscription","record":{"name":"x","state":"Subscribed","types":["platform","function"]}}]`
		resp, err := http.Post("http://127.0.0.1:"+u.Port()+u.Path, "application/json", strings.NewReader(batch))
		if err != nil {
			return fmt.Errorf("POST to the telemetry listener: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("telemetry listener answered %d", resp.StatusCode)
		}
		return nil
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.deliverErr = err
		return
	}
	p.delivered += 2
}

func (p *platform) errorReport(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.errorReports = append(p.errorReports, r.URL.Path+" "+r.Header.Get("Lambda-Extension-Function-Error-Type"))
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

type subscription struct {
	SchemaVersion string   `json:"schemaVersion"`
	Types         []string `json:"types"`
	Buffering     struct {
		MaxItems  int `json:"maxItems"`
		MaxBytes  int `json:"maxBytes"`
		TimeoutMs int `json:"timeoutMs"`
	} `json:"buffering"`
	Destination struct {
		Protocol string `json:"protocol"`
		URI      string `json:"URI"`
	} `json:"destination"`
}

// mark is one `INIT |` line: a ground-truth checkpoint or a phase line.
type mark struct {
	kind, name string // kind: "checkpoint" or "phase"
	ns         uint64
}

type result struct {
	stdout, stderr string
	exitCode       int
	before, after  uint64 // the test's CLOCK_MONOTONIC before spawn and after exit
	marks          []mark
}

var markRE = regexp.MustCompile(`^INIT \| (checkpoint|phase)=(\w+) mono_ns=(\d+)$`)

// run runs one build to completion under the platform double.
func run(t *testing.T, bin string, env ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	var r result
	r.before = monoNS(t)
	err := cmd.Run()
	r.after = monoNS(t)
	r.stdout, r.stderr = so.String(), se.String()
	if ctx.Err() != nil {
		t.Fatalf("%s did not exit within 20s\nstdout:\n%s\nstderr:\n%s", bin, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.exitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		m := markRE.FindStringSubmatch(sc.Text())
		if m == nil {
			if strings.HasPrefix(sc.Text(), "INIT |") {
				t.Errorf("malformed INIT line %q", sc.Text())
			}
			continue
		}
		ns, err := strconv.ParseUint(m[3], 10, 64)
		if err != nil {
			t.Fatalf("bad INIT line %q: %v", sc.Text(), err)
		}
		r.marks = append(r.marks, mark{m[1], m[2], ns})
	}
	return r
}

func (r result) at(name string) uint64 {
	for _, m := range r.marks {
		if m.name == name {
			return m.ns
		}
	}
	return 0
}

// checkpoints lists the names of the checkpoint lines, in order.
func (r result) checkpoints() string {
	var n []string
	for _, m := range r.marks {
		if m.kind == "checkpoint" {
			n = append(n, m.name)
		}
	}
	return strings.Join(n, ",")
}

// sequence lists every INIT line as kind:name, in order.
func (r result) sequence() string {
	var n []string
	for _, m := range r.marks {
		n = append(n, m.kind[:1]+":"+m.name)
	}
	return strings.Join(n, ",")
}

// checkClock asserts every INIT line's clock reading lies within the process's
// lifetime as the test saw it on the same clock.
func checkClock(t *testing.T, r result) {
	t.Helper()
	for _, m := range r.marks {
		if m.ns <= r.before || m.ns >= r.after {
			t.Errorf("%s %s mono_ns=%d is outside the process's lifetime [%d, %d]", m.kind, m.name, m.ns, r.before, r.after)
		}
	}
}

// wantSequence is the init order every variant must print: the checkpoints
// the other samples print (c:), with bottlecap-style phase lines (p:) between.
const wantSequence = "c:main,p:config_loaded,p:runtime_started,c:register_ok,p:registered," +
	"c:listener_bound,p:listeners_started,c:subscribe_ok,p:telemetry_subscribed,c:before_next"

// TestFullRun runs every checked variant through a full init, one INVOKE and
// SHUTDOWN, and checks what it sent and its INIT lines.
func TestFullRun(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			bin := sample(t, v.name)
			p := newPlatform(t)
			r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.addr(), "INITPROF_SAMPLE_PORT=0", "INITPROF_SAMPLE_DEST_HOST=127.0.0.1")
			checkFullRun(t, v.name, p, r, "127.0.0.1", "")
		})
	}
}

// checkFullRun holds one finished run against the platform double's records.
// port is the destination port the subscription must name ("" for any).
func checkFullRun(t *testing.T, name string, p *platform, r result, host, port string) {
	t.Helper()
	if r.exitCode != 0 {
		t.Fatalf("exit code %d, want 0 after SHUTDOWN\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
	}
	if got := r.sequence(); got != wantSequence {
		t.Fatalf("INIT lines\n  %s\nwant\n  %s\nstdout:\n%s", got, wantSequence, r.stdout)
	}
	for i := 1; i < len(r.marks); i++ {
		if r.marks[i].ns <= r.marks[i-1].ns {
			t.Errorf("%s %s (%d) is not after %s (%d)", r.marks[i].kind, r.marks[i].name, r.marks[i].ns,
				r.marks[i-1].name, r.marks[i-1].ns)
		}
	}
	checkClock(t, r)
	t.Logf("%s: exec→main %.2f ms, main→before_next %.2f ms", name,
		float64(r.at("main")-r.before)/1e6, float64(r.at("before_next")-r.at("main"))/1e6)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.regName != name {
		t.Errorf("Lambda-Extension-Name %q, want the binary's basename %q", p.regName, name)
	}
	if p.regFeat != "accountId" {
		t.Errorf("Lambda-Extension-Accept-Feature %q, want accountId", p.regFeat)
	}
	var reg struct{ Events []string }
	if err := json.Unmarshal([]byte(p.regBody), &reg); err != nil || strings.Join(reg.Events, ",") != "INVOKE,SHUTDOWN" {
		t.Errorf("register body %q, want events INVOKE,SHUTDOWN (err %v)", p.regBody, err)
	}
	var sub subscription
	if err := json.Unmarshal([]byte(p.subBody), &sub); err != nil {
		t.Fatalf("subscription body %q is not JSON: %v", p.subBody, err)
	}
	if sub.SchemaVersion != "2022-12-13" || strings.Join(sub.Types, ",") != "platform,function" ||
		sub.Buffering.MaxItems != 1000 || sub.Buffering.MaxBytes != 262144 || sub.Buffering.TimeoutMs != 25 ||
		sub.Destination.Protocol != "HTTP" {
		t.Errorf("subscription body has the wrong shape: %s", p.subBody)
	}
	u, err := url.Parse(sub.Destination.URI)
	if err != nil || u.Hostname() != host || u.Path != "/" || (port != "" && u.Port() != port) {
		t.Errorf("destination URI %q, want http://%s:%s/", sub.Destination.URI, host, port)
	}
	if p.subID != testExtID {
		t.Errorf("subscribe sent Lambda-Extension-Identifier %q, want %q", p.subID, testExtID)
	}
	if len(p.nextIDs) != 2 || p.nextIDs[0] != testExtID || p.nextIDs[1] != testExtID {
		t.Errorf("/next calls sent identifiers %q, want two calls with %q", p.nextIDs, testExtID)
	}
	if p.deliverErr != nil {
		t.Errorf("telemetry delivery: %v", p.deliverErr)
	}
	if p.hookErr != nil {
		t.Errorf("while the first /next was held: %v", p.hookErr)
	}
	if p.delivered != 2 || !strings.Contains(r.stdout, "SHUTDOWN | telemetry_events=2\n") {
		t.Errorf("delivered %d events; stdout lacks SHUTDOWN | telemetry_events=2:\n%s", p.delivered, r.stdout)
	}
	for _, ty := range []string{"platform.initStart", "platform.telemetrySubscription"} {
		if !strings.Contains(r.stdout, "TELEMETRY | type="+ty+"\n") {
			t.Errorf("stdout lacks the received event type %s:\n%s", ty, r.stdout)
		}
	}
	if len(p.errorReports) != 0 {
		t.Errorf("unexpected error reports: %v", p.errorReports)
	}
	// Each _ok is read after the platform answered; before_next before /next
	// arrived; listener_bound before the subscribe that names its port.
	if r.at("register_ok") <= p.registerAt {
		t.Errorf("register_ok %d is not after the platform answered register (%d)", r.at("register_ok"), p.registerAt)
	}
	if r.at("subscribe_ok") <= p.subAt {
		t.Errorf("subscribe_ok %d is not after the platform answered subscribe (%d)", r.at("subscribe_ok"), p.subAt)
	}
	if len(p.nextIn) > 0 && r.at("before_next") >= p.nextIn[0] {
		t.Errorf("before_next %d is not before /next arrived (%d)", r.at("before_next"), p.nextIn[0])
	}
	if r.at("listener_bound") >= p.subIn {
		t.Errorf("listener_bound %d is not before the subscribe arrived (%d)", r.at("listener_bound"), p.subIn)
	}
}

// TestDefaultPorts checks that without INITPROF_SAMPLE_PORT the extension
// binds bottlecap's real ports: TCP 8124, 8126, 8999 and UDP 8125, and
// subscribes with http://sandbox.localdomain:8999/.
func TestDefaultPorts(t *testing.T) {
	bin := sample(t, "rustext-prod")
	tcp := []int{8124, 8126, 8999}
	for _, port := range tcp {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Skipf("TCP port %d is busy on this machine (%v); the default-port check needs it free", port, err)
		}
		l.Close()
	}
	if c, err := net.ListenPacket("udp", "127.0.0.1:8125"); err != nil {
		t.Skipf("UDP port 8125 is busy on this machine (%v); the default-port check needs it free", err)
	} else {
		c.Close()
	}
	p := newPlatform(t)
	p.onFirstNext = func() error {
		for _, port := range tcp {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
			if err != nil {
				return fmt.Errorf("no TCP listener on 127.0.0.1:%d: %v", port, err)
			}
			c.Close()
		}
		c, err := net.ListenPacket("udp", "127.0.0.1:8125")
		if err == nil {
			c.Close()
			return errors.New("UDP 127.0.0.1:8125 could be bound by the test: the extension's DogStatsD socket is missing")
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("binding UDP 8125 to check it is taken: %v", err)
		}
		return nil
	}
	r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.addr())
	checkFullRun(t, "rustext-prod", p, r, "sandbox.localdomain", "8999")
}

// TestH18 checks INITPROF_SAMPLE_H18=1: the subscribe runs in a task
// concurrently with the first /next; the double holds each until the other
// has arrived, which only a concurrent extension gets past.
func TestH18(t *testing.T) {
	for _, name := range []string{"rustext-prod", "rustext-static-pie"} {
		t.Run(name, func(t *testing.T) {
			bin := sample(t, name)
			p := newPlatform(t)
			p.holdH18 = true
			r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.addr(), "INITPROF_SAMPLE_PORT=0",
				"INITPROF_SAMPLE_DEST_HOST=127.0.0.1", "INITPROF_SAMPLE_H18=1")
			if r.exitCode != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.h18Violation != "" {
				t.Fatalf("H18 ordering not concurrent: %s", p.h18Violation)
			}
			got := r.checkpoints()
			if !strings.HasPrefix(got, "main,register_ok,listener_bound,") || len(strings.Split(got, ",")) != 5 ||
				r.at("subscribe_ok") == 0 || r.at("before_next") == 0 {
				t.Fatalf("checkpoints %s, want main,register_ok,listener_bound then subscribe_ok and before_next in either order", got)
			}
			if r.at("before_next") >= r.at("subscribe_ok") {
				t.Errorf("before_next %d is not before subscribe_ok %d under H18", r.at("before_next"), r.at("subscribe_ok"))
			}
			checkClock(t, r)
			if p.deliverErr != nil {
				t.Errorf("telemetry delivery: %v", p.deliverErr)
			}
		})
	}
}

// TestFailures checks the test hooks and the error paths: one clear line on
// stderr, a non-zero exit, and an init/error report once registered.
func TestFailures(t *testing.T) {
	cases := []struct {
		name       string
		env        []string
		subStatus  int
		noPlatform bool
		wantCode   int
		wantErr    string // substring of stderr
		wantReport string // init/error report, "" for none
		wantCkpt   string // checkpoints printed
	}{
		{name: "crash-register", env: []string{"INITPROF_SAMPLE_CRASH=register"}, wantCode: 3,
			wantErr: "INITPROF_SAMPLE_CRASH=register", wantCkpt: "main"},
		{name: "crash-after-register", env: []string{"INITPROF_SAMPLE_CRASH=after_register"}, wantCode: 3,
			wantErr: "INITPROF_SAMPLE_CRASH=after_register", wantCkpt: "main,register_ok"},
		{name: "bad-crash", env: []string{"INITPROF_SAMPLE_CRASH=everywhere"}, wantCode: 2,
			wantErr: "unknown crash point", wantCkpt: "main"},
		{name: "bad-delay", env: []string{"INITPROF_SAMPLE_INIT_DELAY_MS=soon"}, wantCode: 2,
			wantErr: "INITPROF_SAMPLE_INIT_DELAY_MS=soon", wantCkpt: "main"},
		{name: "bad-port", env: []string{"INITPROF_SAMPLE_PORT=70000"}, wantCode: 2,
			wantErr: "INITPROF_SAMPLE_PORT=70000", wantCkpt: "main"},
		{name: "no-platform", noPlatform: true, wantCode: 1, wantErr: "register failed", wantCkpt: "main"},
		{name: "subscribe-400", subStatus: 400, wantCode: 1, wantErr: "telemetry subscribe: HTTP 400",
			wantReport: "/2020-01-01/extension/init/error Extension.SubscribeFailed",
			wantCkpt:   "main,register_ok,listener_bound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bin := sample(t, "rustext-prod")
			p := newPlatform(t)
			p.subscribeStatus = tc.subStatus
			addr := p.addr()
			if tc.noPlatform {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = l.Addr().String()
				l.Close()
			}
			env := append([]string{"AWS_LAMBDA_RUNTIME_API=" + addr, "INITPROF_SAMPLE_DEST_HOST=127.0.0.1"}, tc.env...)
			if !strings.Contains(strings.Join(tc.env, " "), "INITPROF_SAMPLE_PORT=") {
				env = append(env, "INITPROF_SAMPLE_PORT=0")
			}
			r := run(t, bin, env...)
			if r.exitCode != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", r.exitCode, tc.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.wantErr) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
				t.Errorf("stderr %q, want one or two lines containing %q", r.stderr, tc.wantErr)
			}
			if got := r.checkpoints(); got != tc.wantCkpt {
				t.Errorf("checkpoints %s, want %s", got, tc.wantCkpt)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if got := strings.Join(p.errorReports, ";"); got != tc.wantReport {
				t.Errorf("error reports %q, want %q", got, tc.wantReport)
			}
		})
	}
}

// TestInitDelay checks INITPROF_SAMPLE_INIT_DELAY_MS, the known slow-init
// delay later comparisons rely on. A sleep never ends early, so the bound
// holds on a noisy machine.
func TestInitDelay(t *testing.T) {
	bin := sample(t, "rustext-prod")
	p := newPlatform(t)
	r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.addr(), "INITPROF_SAMPLE_PORT=0",
		"INITPROF_SAMPLE_DEST_HOST=127.0.0.1", "INITPROF_SAMPLE_INIT_DELAY_MS=150")
	if r.exitCode != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", r.exitCode, r.stderr)
	}
	if gap := r.at("before_next") - r.at("subscribe_ok"); r.at("subscribe_ok") == 0 || gap < 150e6 {
		t.Errorf("subscribe_ok → before_next took %d ns with INITPROF_SAMPLE_INIT_DELAY_MS=150; want ≥ 150 ms", gap)
	}
}

// TestNoNext checks INITPROF_SAMPLE_NONEXT=1: the extension registers and
// then never calls /next (the platform's init-timeout subject).
func TestNoNext(t *testing.T) {
	bin := sample(t, "rustext-prod")
	p := newPlatform(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+p.addr(), "INITPROF_SAMPLE_PORT=0", "INITPROF_SAMPLE_NONEXT=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	select {
	case <-p.registered:
	case err := <-done:
		t.Fatalf("exited before registering: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("did not register within 10s")
	}
	select {
	case err := <-done:
		t.Fatalf("exited (%v); want it to keep running without calling /next", err)
	case <-time.After(300 * time.Millisecond):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.nextIn) != 0 || p.subBody != "" {
		t.Errorf("NONEXT extension called /next %d times, subscribe %q", len(p.nextIn), p.subBody)
	}
}

// TestELFFacts checks, with readelf as a user would, that each variant's flag
// really reached the linker (rust-lld by default), and logs its size and
// relocations by type.
func TestELFFacts(t *testing.T) {
	readelf := testutil.RequireTool(t, "readelf")
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			bin := sample(t, v.name)
			out := func(flag string) string {
				b, err := exec.Command(readelf, flag, bin).CombinedOutput()
				if err != nil {
					t.Fatalf("readelf %s %s: %v\n%s", flag, bin, err, b)
				}
				return string(b)
			}
			header, progs, dyn, sects, relocs := out("-hW"), out("-lW"), out("-dW"), out("-SW"), out("-rW")
			var got elfFacts
			if m := regexp.MustCompile(`(?m)^\s*Type:\s+(\w+)`).FindStringSubmatch(header); m != nil {
				got.typ = m[1]
			}
			got.interp = regexp.MustCompile(`(?m)^\s*INTERP\s`).MatchString(progs)
			got.bindNow = regexp.MustCompile(`\(FLAGS\)\s+.*\bBIND_NOW\b`).MatchString(dyn) ||
				regexp.MustCompile(`\(FLAGS_1\)\s+Flags:.*\bNOW\b`).MatchString(dyn)
			got.relr = strings.Contains(dyn, "(RELR)")
			got.symtab = strings.Contains(sects, " .symtab ")
			if got != v.want {
				t.Errorf("ELF facts %+v, want %+v\nreadelf -d:\n%s", got, v.want, dyn)
			}
			counts := relocCounts(relocs)
			if rel := counts["R_X86_64_RELATIVE"]; (rel > 0) != v.relative {
				t.Errorf("%d R_X86_64_RELATIVE relocations; want some: %v", rel, v.relative)
			}
			needed := strings.Count(dyn, "(NEEDED)")
			if !v.want.interp && needed != 0 {
				t.Errorf("static build has %d DT_NEEDED entries", needed)
			}
			st, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes, type %s, interp %v, bind_now %v, relr %v, needed %d, relocs %v",
				v.name, st.Size(), got.typ, got.interp, got.bindNow, got.relr, needed, formatCounts(counts))
		})
	}
}

// relocCounts counts `readelf -rW` relocation entries by type.
func relocCounts(s string) map[string]int {
	c := map[string]int{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(f[2], "R_X86_64_") {
			c[f[2]]++
		}
	}
	return c
}

func formatCounts(c map[string]int) string {
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "R_X86_64_"), c[k]))
	}
	return strings.Join(parts, " ")
}

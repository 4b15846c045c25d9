package fakeplatform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runTimeout bounds one run: a sample that hangs fails its test instead of
// the whole test binary.
const runTimeout = 20 * time.Second

// Mark is one `INIT |` line an extension printed on stdout: a ground-truth
// checkpoint (`INIT | checkpoint=NAME mono_ns=N`) or a phase line
// (`INIT | phase=NAME mono_ns=N`, bottlecap-style, Rust sample only).
type Mark struct {
	Kind string // "checkpoint" or "phase"
	Name string
	NS   uint64 // CLOCK_MONOTONIC, comparable with MonoNS and Record
}

// Result is one finished run of an extension.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
	Before, After  uint64 // the test's CLOCK_MONOTONIC before spawn and after exit
	Marks          []Mark
}

var markRE = regexp.MustCompile(`^INIT \| (checkpoint|phase)=(\w+) mono_ns=(\d+)$`)

// Run runs argv (the extension, or e.g. qemu-aarch64 -L SYSROOT EXTENSION)
// to completion with env added to this process's environment, and parses its
// INIT lines. A run over 20s, a failure to start, or an unparsable INIT line
// fails the test; a non-zero exit is only recorded.
func Run(t *testing.T, argv []string, env ...string) Result {
	t.Helper()
	bin := argv[0]
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	var r Result
	r.Before = MonoNS(t)
	err := cmd.Run()
	r.After = MonoNS(t)
	r.Stdout, r.Stderr = so.String(), se.String()
	if ctx.Err() != nil {
		t.Fatalf("%s did not exit within 20s\nstdout:\n%s\nstderr:\n%s", bin, r.Stdout, r.Stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
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
		r.Marks = append(r.Marks, Mark{m[1], m[2], ns})
	}
	return r
}

// At is the clock reading of the first mark called name, 0 when missing.
func (r Result) At(name string) uint64 {
	for _, m := range r.Marks {
		if m.Name == name {
			return m.NS
		}
	}
	return 0
}

// Checkpoints lists the names of the checkpoint lines, in printed order.
func (r Result) Checkpoints() []string {
	var n []string
	for _, m := range r.Marks {
		if m.Kind == "checkpoint" {
			n = append(n, m.Name)
		}
	}
	return n
}

// CheckClock asserts every INIT line's clock reading lies within the
// process's lifetime as the test saw it on the same clock.
func (r Result) CheckClock(t *testing.T) {
	t.Helper()
	for _, m := range r.Marks {
		if m.NS <= r.Before || m.NS >= r.After {
			t.Errorf("%s %s mono_ns=%d is outside the process's lifetime [%d, %d]", m.Kind, m.Name, m.NS, r.Before, r.After)
		}
	}
}

// CheckOrder asserts the INIT lines' clock readings increase in printed
// order (true of a sequential init; not of H18's concurrent one).
func (r Result) CheckOrder(t *testing.T) {
	t.Helper()
	for i := 1; i < len(r.Marks); i++ {
		if r.Marks[i].NS <= r.Marks[i-1].NS {
			t.Errorf("%s %s (%d) is not after %s (%d)", r.Marks[i].Kind, r.Marks[i].Name, r.Marks[i].NS,
				r.Marks[i-1].Name, r.Marks[i-1].NS)
		}
	}
}

// CheckFullRun holds a finished full run (register, subscribe, one INVOKE,
// SHUTDOWN) of the extension name against what the platform recorded: the
// requests' headers and bodies, the telemetry the extension received, and its
// checkpoints against the platform's clock readings. The subscription must
// name http://host:port/ (port "" for any).
func (rec Record) CheckFullRun(t *testing.T, name string, r Result, host, port string) {
	t.Helper()
	if rec.RegisterName != name {
		t.Errorf("Lambda-Extension-Name %q, want the binary's basename %q", rec.RegisterName, name)
	}
	var reg struct{ Events []string }
	if err := json.Unmarshal([]byte(rec.RegisterBody), &reg); err != nil || strings.Join(reg.Events, ",") != "INVOKE,SHUTDOWN" {
		t.Errorf("register body %q, want events INVOKE,SHUTDOWN (err %v)", rec.RegisterBody, err)
	}
	var sub Subscription
	if err := json.Unmarshal([]byte(rec.SubscribeBody), &sub); err != nil {
		t.Fatalf("subscription body %q is not JSON: %v", rec.SubscribeBody, err)
	}
	if sub.SchemaVersion != "2022-12-13" || strings.Join(sub.Types, ",") != "platform,function" ||
		sub.Buffering.MaxItems != 1000 || sub.Buffering.MaxBytes != 262144 || sub.Buffering.TimeoutMs != 25 ||
		sub.Destination.Protocol != "HTTP" {
		t.Errorf("subscription body has the wrong shape: %s", rec.SubscribeBody)
	}
	u, err := url.Parse(sub.Destination.URI)
	if err != nil || u.Hostname() != host || u.Path != "/" || (port != "" && u.Port() != port) {
		t.Errorf("destination URI %q, want http://%s:%s/", sub.Destination.URI, host, port)
	}
	if rec.SubscribeID != ExtensionID {
		t.Errorf("subscribe sent Lambda-Extension-Identifier %q, want %q", rec.SubscribeID, ExtensionID)
	}
	if len(rec.NextIDs) != 2 || rec.NextIDs[0] != ExtensionID || rec.NextIDs[1] != ExtensionID {
		t.Errorf("/next calls sent identifiers %q, want two calls with %q", rec.NextIDs, ExtensionID)
	}
	if rec.DeliverErr != nil {
		t.Errorf("telemetry delivery: %v", rec.DeliverErr)
	}
	if rec.Delivered != 2 || !strings.Contains(r.Stdout, "SHUTDOWN | telemetry_events=2\n") {
		t.Errorf("delivered %d events; stdout lacks SHUTDOWN | telemetry_events=2:\n%s", rec.Delivered, r.Stdout)
	}
	for _, ty := range []string{"platform.initStart", "platform.telemetrySubscription"} {
		if !strings.Contains(r.Stdout, "TELEMETRY | type="+ty+"\n") {
			t.Errorf("stdout lacks the received event type %s:\n%s", ty, r.Stdout)
		}
	}
	if len(rec.ErrorReports) != 0 {
		t.Errorf("unexpected error reports: %v", rec.ErrorReports)
	}
	// Each _ok is read after the platform answered; before_next before /next
	// arrived; listener_bound before the subscribe that names its port.
	if r.At("register_ok") <= rec.RegisterAt {
		t.Errorf("register_ok %d is not after the platform answered register (%d)", r.At("register_ok"), rec.RegisterAt)
	}
	if r.At("subscribe_ok") <= rec.SubscribeAt {
		t.Errorf("subscribe_ok %d is not after the platform answered subscribe (%d)", r.At("subscribe_ok"), rec.SubscribeAt)
	}
	if len(rec.NextIn) > 0 && r.At("before_next") >= rec.NextIn[0] {
		t.Errorf("before_next %d is not before /next arrived (%d)", r.At("before_next"), rec.NextIn[0])
	}
	if r.At("listener_bound") >= rec.SubscribeIn {
		t.Errorf("listener_bound %d is not before the subscribe arrived (%d)", r.At("listener_bound"), rec.SubscribeIn)
	}
}

// CheckNoNext starts cmd (an extension told to register and then never call
// /next, as with INITPROF_SAMPLE_NONEXT=1) against p, and asserts it
// registers within 10s, is still running 300ms later, and has sent neither
// /next nor a subscribe. It kills cmd before returning.
func (p *Platform) CheckNoNext(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
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
	case <-p.Registered():
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
	if rec := p.Record(); len(rec.NextIn) != 0 || rec.SubscribeBody != "" {
		t.Errorf("NONEXT extension called /next %d times, subscribe %q", len(rec.NextIn), rec.SubscribeBody)
	}
}

// CheckH18 holds a finished run under Options.HoldH18 (and
// INITPROF_SAMPLE_H18=1) against the record: the platform saw the subscribe
// and the first /next in flight together, the extension printed main,
// register_ok, listener_bound and then subscribe_ok and before_next in either
// order, with before_next before subscribe_ok (the /next went out before the
// subscribe was answered), all within its lifetime, and it took the telemetry.
func (rec Record) CheckH18(t *testing.T, r Result) {
	t.Helper()
	if rec.H18Violation != "" {
		t.Fatalf("H18 ordering not concurrent: %s", rec.H18Violation)
	}
	got := r.Checkpoints()
	if len(got) != 5 || strings.Join(got[:3], ",") != "main,register_ok,listener_bound" ||
		r.At("subscribe_ok") == 0 || r.At("before_next") == 0 {
		t.Fatalf("checkpoints %v, want main,register_ok,listener_bound then subscribe_ok and before_next in either order", got)
	}
	if r.At("before_next") >= r.At("subscribe_ok") {
		t.Errorf("before_next %d is not before subscribe_ok %d under H18", r.At("before_next"), r.At("subscribe_ok"))
	}
	r.CheckClock(t)
	if rec.DeliverErr != nil {
		t.Errorf("telemetry delivery: %v", rec.DeliverErr)
	}
}

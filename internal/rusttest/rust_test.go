package rusttest

import (
	"errors"
	"fmt"
	"net"
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

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/internal/testutil/fakeplatform"
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

// run runs one build to completion under the platform double.
func run(t *testing.T, bin string, env ...string) fakeplatform.Result {
	t.Helper()
	return fakeplatform.Run(t, []string{bin}, env...)
}

// sequence lists every INIT line as kind:name, in order.
func sequence(r fakeplatform.Result) string {
	var n []string
	for _, m := range r.Marks {
		n = append(n, m.Kind[:1]+":"+m.Name)
	}
	return strings.Join(n, ",")
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
			p := fakeplatform.New(t, fakeplatform.Options{})
			r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.Addr(), "INITPROF_SAMPLE_PORT=0", "INITPROF_SAMPLE_DEST_HOST=127.0.0.1")
			checkFullRun(t, v.name, p, r, "127.0.0.1", "")
		})
	}
}

// checkFullRun holds one finished run against the platform double's records.
// port is the destination port the subscription must name ("" for any).
func checkFullRun(t *testing.T, name string, p *fakeplatform.Platform, r fakeplatform.Result, host, port string) {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("exit code %d, want 0 after SHUTDOWN\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if got := sequence(r); got != wantSequence {
		t.Fatalf("INIT lines\n  %s\nwant\n  %s\nstdout:\n%s", got, wantSequence, r.Stdout)
	}
	r.CheckOrder(t)
	r.CheckClock(t)
	t.Logf("%s: exec→main %.2f ms, main→before_next %.2f ms", name,
		float64(r.At("main")-r.Before)/1e6, float64(r.At("before_next")-r.At("main"))/1e6)

	rec := p.Record()
	if rec.RegisterFeature != "accountId" {
		t.Errorf("Lambda-Extension-Accept-Feature %q, want accountId", rec.RegisterFeature)
	}
	if rec.HookErr != nil {
		t.Errorf("while the first /next was held: %v", rec.HookErr)
	}
	rec.CheckFullRun(t, name, r, host, port)
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
	probe := func() error {
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
	p := fakeplatform.New(t, fakeplatform.Options{OnFirstNext: probe})
	r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.Addr())
	checkFullRun(t, "rustext-prod", p, r, "sandbox.localdomain", "8999")
}

// TestH18 checks INITPROF_SAMPLE_H18=1: the subscribe runs in a task
// concurrently with the first /next; the double holds each until the other
// has arrived, which only a concurrent extension gets past.
func TestH18(t *testing.T) {
	for _, name := range []string{"rustext-prod", "rustext-static-pie"} {
		t.Run(name, func(t *testing.T) {
			bin := sample(t, name)
			p := fakeplatform.New(t, fakeplatform.Options{HoldH18: true})
			r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.Addr(), "INITPROF_SAMPLE_PORT=0",
				"INITPROF_SAMPLE_DEST_HOST=127.0.0.1", "INITPROF_SAMPLE_H18=1")
			if r.ExitCode != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
			}
			p.Record().CheckH18(t, r)
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
			p := fakeplatform.New(t, fakeplatform.Options{SubscribeStatus: tc.subStatus})
			addr := p.Addr()
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
			if r.ExitCode != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", r.ExitCode, tc.wantCode, r.Stderr)
			}
			if !strings.Contains(r.Stderr, tc.wantErr) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
				t.Errorf("stderr %q, want one or two lines containing %q", r.Stderr, tc.wantErr)
			}
			if got := strings.Join(r.Checkpoints(), ","); got != tc.wantCkpt {
				t.Errorf("checkpoints %s, want %s", got, tc.wantCkpt)
			}
			rec := p.Record()
			if got := strings.Join(rec.ErrorReports, ";"); got != tc.wantReport {
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
	p := fakeplatform.New(t, fakeplatform.Options{})
	r := run(t, bin, "AWS_LAMBDA_RUNTIME_API="+p.Addr(), "INITPROF_SAMPLE_PORT=0",
		"INITPROF_SAMPLE_DEST_HOST=127.0.0.1", "INITPROF_SAMPLE_INIT_DELAY_MS=150")
	if r.ExitCode != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", r.ExitCode, r.Stderr)
	}
	if gap := r.At("before_next") - r.At("subscribe_ok"); r.At("subscribe_ok") == 0 || gap < 150e6 {
		t.Errorf("subscribe_ok → before_next took %d ns with INITPROF_SAMPLE_INIT_DELAY_MS=150; want ≥ 150 ms", gap)
	}
}

// TestNoNext checks INITPROF_SAMPLE_NONEXT=1: the extension registers and
// then never calls /next (the platform's init-timeout subject).
func TestNoNext(t *testing.T) {
	bin := sample(t, "rustext-prod")
	p := fakeplatform.New(t, fakeplatform.Options{})
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+p.Addr(), "INITPROF_SAMPLE_PORT=0", "INITPROF_SAMPLE_NONEXT=1")
	p.CheckNoNext(t, cmd)
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

package samplestest

import (
	"debug/elf"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/internal/testutil/fakeplatform"
)

// allSamples is every binary `make samples` builds by default.
var allSamples = []string{
	"goext",
	"cext", "cext-now", "cext-lazy", "cext-nopie", "cext-delay", "cext-relr",
	"cmini", "cmini-lazy", "cmini-static", "cmini-static-pie",
}

// runSample runs one sample to completion under the fake platform.
func runSample(t *testing.T, bin string, env ...string) fakeplatform.Result {
	t.Helper()
	return runArgv(t, []string{bin}, env...)
}

// runArgv is runSample for a command line (e.g. the sample under qemu-user).
// The samples print only checkpoint lines (phase lines are the Rust
// sample's), so any other INIT line is an error here.
func runArgv(t *testing.T, argv []string, env ...string) fakeplatform.Result {
	t.Helper()
	r := fakeplatform.Run(t, argv, env...)
	for _, m := range r.Marks {
		if m.Kind != "checkpoint" {
			t.Errorf("malformed checkpoint line: %s=%s", m.Kind, m.Name)
		}
	}
	return r
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// TestProtocolAndCheckpoints runs every sample through a full init and one
// invoke, and checks the requests it sends and its ground-truth checkpoints.
func TestProtocolAndCheckpoints(t *testing.T) {
	for _, name := range allSamples {
		t.Run(name, func(t *testing.T) {
			checkFullRun(t, name, []string{testutil.Sample(t, name)})
		})
	}
}

// checkFullRun runs argv (the sample NAME) through register, subscribe, one
// INVOKE and SHUTDOWN, and checks its requests and checkpoints.
func checkFullRun(t *testing.T, name string, argv []string) {
	f := fakeplatform.New(t, fakeplatform.Options{})
	port := freePort(t)
	r := runArgv(t, argv, "AWS_LAMBDA_RUNTIME_API="+f.Addr(), "INITPROF_SAMPLE_PORT="+strconv.Itoa(port))
	if r.ExitCode != 0 {
		t.Fatalf("exit code %d, want 0 after SHUTDOWN\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	want := []string{"main", "register_ok", "listener_bound", "subscribe_ok", "before_next"}
	if got := r.Checkpoints(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("checkpoints %v, want %v\nstdout:\n%s", got, want, r.Stdout)
	}
	r.CheckOrder(t)
	r.CheckClock(t)
	f.Record().CheckFullRun(t, name, r, "sandbox.localdomain", strconv.Itoa(port))
}

// TestH18 checks that INITPROF_SAMPLE_H18=1 sends the subscribe and the first
// /next concurrently: the fake holds each until the other has arrived.
func TestH18(t *testing.T) {
	for _, name := range []string{"goext", "cext", "cmini", "cmini-static"} {
		t.Run(name, func(t *testing.T) {
			bin := testutil.Sample(t, name)
			f := fakeplatform.New(t, fakeplatform.Options{HoldH18: true})
			r := runSample(t, bin, "AWS_LAMBDA_RUNTIME_API="+f.Addr(), "INITPROF_SAMPLE_H18=1",
				"INITPROF_SAMPLE_DEST_HOST=127.0.0.1")
			if r.ExitCode != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
			}
			rec := f.Record()
			rec.CheckH18(t, r)
			var sub fakeplatform.Subscription
			json.Unmarshal([]byte(rec.SubscribeBody), &sub)
			if u, err := url.Parse(sub.Destination.URI); err != nil || u.Hostname() != "127.0.0.1" {
				t.Errorf("INITPROF_SAMPLE_DEST_HOST=127.0.0.1 not honoured: URI %q", sub.Destination.URI)
			}
		})
	}
}

// TestFailures checks the test hooks and the error paths: each prints a clear
// line on stderr and exits non-zero, reporting to the platform once registered.
func TestFailures(t *testing.T) {
	cases := []struct {
		name      string
		env       []string
		subStatus int
		noPlat    bool
		wantCode  int
		wantErr   string // substring of stderr
		wantReprt string // init/error report, "" for none
		wantCkpt  string // checkpoints printed; "" means just main
	}{
		{name: "crash-register", env: []string{"INITPROF_SAMPLE_CRASH=register"}, wantCode: 3, wantErr: "INITPROF_SAMPLE_CRASH=register"},
		{name: "crash-after-register", env: []string{"INITPROF_SAMPLE_CRASH=after_register"}, wantCode: 3,
			wantErr: "INITPROF_SAMPLE_CRASH=after_register", wantCkpt: "main,register_ok"},
		{name: "bad-crash", env: []string{"INITPROF_SAMPLE_CRASH=everywhere"}, wantCode: 2, wantErr: "unknown crash point"},
		{name: "bad-delay", env: []string{"INITPROF_SAMPLE_INIT_DELAY_MS=soon"}, wantCode: 2, wantErr: "INITPROF_SAMPLE_INIT_DELAY_MS=soon"},
		{name: "no-platform", noPlat: true, wantCode: 1, wantErr: "register failed"},
		{name: "subscribe-400", subStatus: 400, wantCode: 1, wantErr: "telemetry subscribe: HTTP 400",
			wantReprt: "/2020-01-01/extension/init/error Extension.SubscribeFailed", wantCkpt: "main,register_ok,listener_bound"},
		{name: "bad-port", env: []string{"INITPROF_SAMPLE_PORT=70000"}, wantCode: 2, wantErr: "INITPROF_SAMPLE_PORT=70000"},
	}
	for _, sample := range []string{"goext", "cext", "cmini-static"} {
		for _, tc := range cases {
			t.Run(sample+"/"+tc.name, func(t *testing.T) {
				bin := testutil.Sample(t, sample)
				f := fakeplatform.New(t, fakeplatform.Options{SubscribeStatus: tc.subStatus})
				addr := f.Addr()
				if tc.noPlat {
					addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
				}
				r := runSample(t, bin, append([]string{"AWS_LAMBDA_RUNTIME_API=" + addr}, tc.env...)...)
				if r.ExitCode != tc.wantCode {
					t.Errorf("exit code %d, want %d\nstderr:\n%s", r.ExitCode, tc.wantCode, r.Stderr)
				}
				if !strings.Contains(r.Stderr, tc.wantErr) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
					t.Errorf("stderr %q, want one or two lines containing %q", r.Stderr, tc.wantErr)
				}
				wantCkpt := tc.wantCkpt
				if wantCkpt == "" {
					wantCkpt = "main"
				}
				if got := strings.Join(r.Checkpoints(), ","); got != wantCkpt {
					t.Errorf("checkpoints %s, want %s", got, wantCkpt)
				}
				rec := f.Record()
				got := strings.Join(rec.ErrorReports, ";")
				if got != tc.wantReprt {
					t.Errorf("error reports %q, want %q", got, tc.wantReprt)
				}
			})
		}
	}
}

// TestInjectedDelays checks the two known delays later tests compare against:
// INITPROF_SAMPLE_INIT_DELAY_MS between subscribe_ok and before_next, and
// cext-delay's 2 ms sleep in its library's constructor, which happens before
// main. Both are
// lower bounds (a sleep never ends early), so they hold on a noisy machine.
func TestInjectedDelays(t *testing.T) {
	for _, name := range []string{"goext", "cext", "cmini-static"} {
		t.Run(name, func(t *testing.T) {
			f := fakeplatform.New(t, fakeplatform.Options{})
			r := runSample(t, testutil.Sample(t, name), "AWS_LAMBDA_RUNTIME_API="+f.Addr(), "INITPROF_SAMPLE_INIT_DELAY_MS=150")
			if r.ExitCode != 0 {
				t.Fatalf("exit code %d\nstderr:\n%s", r.ExitCode, r.Stderr)
			}
			if gap := r.At("before_next") - r.At("subscribe_ok"); r.At("subscribe_ok") == 0 || gap < 150e6 {
				t.Errorf("subscribe_ok → before_next took %d ns with INITPROF_SAMPLE_INIT_DELAY_MS=150; want ≥ 150 ms", gap)
			}
		})
	}
	t.Run("cext-delay", func(t *testing.T) {
		f := fakeplatform.New(t, fakeplatform.Options{})
		r := runSample(t, testutil.Sample(t, "cext-delay"), "AWS_LAMBDA_RUNTIME_API="+f.Addr())
		if r.ExitCode != 0 || r.At("main") == 0 {
			t.Fatalf("exit code %d, checkpoints %v\nstderr:\n%s", r.ExitCode, r.Checkpoints(), r.Stderr)
		}
		if d := r.At("main") - r.Before; d < 2e6 {
			t.Errorf("spawn → main took %d ns in cext-delay, whose constructor sleeps 2 ms", d)
		}
	})
}

// TestNoNext checks INITPROF_SAMPLE_NONEXT=1: the sample registers and then
// never calls /next (the platform's init-timeout subject).
func TestNoNext(t *testing.T) {
	for _, name := range []string{"goext", "cext", "cmini"} {
		t.Run(name, func(t *testing.T) {
			bin := testutil.Sample(t, name)
			f := fakeplatform.New(t, fakeplatform.Options{})
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+f.Addr(), "INITPROF_SAMPLE_NONEXT=1")
			f.CheckNoNext(t, cmd)
		})
	}
}

// TestBuildShape checks the build facts later tests rely on: the hot
// constructor function is in the symbol table (of libcexthot for the cext
// builds, of the executable for cmini), the library-heavy sample really pulls
// in many libraries, and each variant has its linker flags.
func TestBuildShape(t *testing.T) {
	type want struct {
		interp, bindNow, pie, relr bool
		hotLib                     string // DT_NEEDED library with hot_ctor; "" = in the executable
	}
	cases := map[string]want{
		"cext":             {interp: true, bindNow: true, pie: true, hotLib: "libcexthot.so"},
		"cext-now":         {interp: true, bindNow: true, pie: true, hotLib: "libcexthot.so"},
		"cext-lazy":        {interp: true, pie: true, hotLib: "libcexthot.so"},
		"cext-nopie":       {interp: true, bindNow: true, hotLib: "libcexthot.so"},
		"cext-delay":       {interp: true, bindNow: true, pie: true, hotLib: "libcexthot-delay.so"},
		"cext-relr":        {interp: true, bindNow: true, pie: true, relr: true, hotLib: "libcexthot.so"},
		"cmini":            {interp: true, bindNow: true, pie: true},
		"cmini-lazy":       {interp: true, pie: true},
		"cmini-static":     {},
		"cmini-static-pie": {pie: true},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			bin := testutil.Sample(t, name)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Symbols(); err != nil {
				t.Fatalf("symbols: %v (samples must not be stripped)", err)
			}
			hotIn, hotLib := bin, ""
			if w.hotLib != "" {
				// The executable must name the library and find it where
				// make put it: RUNPATH $ORIGIN/../lib → build/lib.
				needed, _ := f.DynString(elf.DT_NEEDED)
				runpath, _ := f.DynString(elf.DT_RUNPATH)
				if !contains(needed, w.hotLib) {
					t.Errorf("DT_NEEDED %v lacks %s", needed, w.hotLib)
				}
				if !contains(runpath, "$ORIGIN/../lib") {
					t.Errorf("DT_RUNPATH %v, want $ORIGIN/../lib", runpath)
				}
				hotIn = filepath.Join(filepath.Dir(bin), "..", "lib", w.hotLib)
				hotLib = w.hotLib
			}
			checkHotSymbols(t, hotIn, hotLib != "")
			hasInterp := false
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					hasInterp = true
				}
			}
			pie := f.Type == elf.ET_DYN
			bindNow, relr := false, false
			if flags, err := f.DynValue(elf.DT_FLAGS); err == nil && len(flags) > 0 && flags[0]&uint64(elf.DF_BIND_NOW) != 0 {
				bindNow = true
			}
			if flags, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(flags) > 0 && flags[0]&uint64(elf.DF_1_NOW) != 0 {
				bindNow = true
			}
			if v, err := f.DynValue(dtRELR); err == nil && len(v) > 0 {
				relr = true
			}
			got := want{interp: hasInterp, bindNow: bindNow, pie: pie, relr: relr, hotLib: hotLib}
			if got != w {
				t.Errorf("ELF facts %+v, want %+v", got, w)
			}
		})
	}
}

// checkHotSymbols asserts file defines the hot_ctor and cext_hot_spin
// functions, and, for the shared library, that hot_ctor is one of its
// initialisers (DT_INIT_ARRAY), which is what makes ld.so's _dl_init run it.
func checkHotSymbols(t *testing.T, file string, shared bool) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatalf("hot constructor's object: %v", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("%s: symbols: %v (samples must not be stripped)", file, err)
	}
	for _, fn := range []string{"cext_hot_spin", "hot_ctor"} {
		found := false
		for _, s := range syms {
			if s.Name == fn && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no %s function symbol", file, fn)
		}
	}
	if shared {
		if f.Type != elf.ET_DYN {
			t.Errorf("%s is %v, want a shared object", file, f.Type)
		}
		if v, err := f.DynValue(elf.DT_INIT_ARRAYSZ); err != nil || len(v) == 0 || v[0] < 16 {
			t.Errorf("%s: DT_INIT_ARRAYSZ %v (%v): want frame_dummy and hot_ctor", file, v, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// TestConstructorInDlInit asks the real loader (LD_DEBUG=files) who runs the
// hot constructor: for cext, ld.so must call libcexthot.so's initialisers
// (found through $ORIGIN/../lib) before it transfers control to the
// executable, i.e. inside _dl_init, in the constructors phase. The executable's
// own init is never "called" by ld.so on glibc >= 2.34 (__libc_start_main runs
// it), which is why the hot constructor lives in a library.
func TestConstructorInDlInit(t *testing.T) {
	for _, c := range []struct{ name, lib string }{{"cext", "libcexthot.so"}, {"cext-delay", "libcexthot-delay.so"}} {
		t.Run(c.name, func(t *testing.T) {
			bin := testutil.Sample(t, c.name)
			// A closed port: the sample exits right after main; the loader's
			// trace is complete by then.
			r := runSample(t, bin, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1", "LD_DEBUG=files")
			wantLib := filepath.Join(filepath.Dir(bin), "..", "lib", c.lib)
			call, xfer := -1, -1
			for i, l := range strings.Split(r.Stderr, "\n") {
				if strings.Contains(l, "calling init: ") && strings.HasSuffix(l, "/"+c.lib) {
					call = i
					if got := filepath.Clean(strings.TrimSpace(l[strings.Index(l, "calling init: ")+len("calling init: "):])); got != wantLib {
						t.Errorf("ld.so loaded %s, want %s (RUNPATH $ORIGIN/../lib)", got, wantLib)
					}
				}
				if strings.Contains(l, "transferring control: ") && xfer < 0 {
					xfer = i
				}
			}
			if call < 0 || xfer < 0 || call > xfer {
				t.Fatalf("want ld.so to call %s's init before transferring control; init at line %d, transfer at line %d\n%s", c.lib, call, xfer, r.Stderr)
			}
		})
	}
}

// TestCextLibraryClosure checks cext loads many more libraries than cmini:
// the point of cext is a loader phase that costs real time.
func TestCextLibraryClosure(t *testing.T) {
	ldd := testutil.RequireTool(t, "ldd")
	count := func(name string) int {
		out, err := exec.Command(ldd, testutil.Sample(t, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", name, err, out)
		}
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "=>") {
				if strings.Contains(l, "not found") {
					t.Errorf("ldd %s: %s", name, strings.TrimSpace(l))
				}
				n++
			}
		}
		return n
	}
	c, m := count("cext"), count("cmini")
	t.Logf("ldd: cext loads %d libraries, cmini %d", c, m)
	if c < m+15 {
		t.Errorf("cext loads %d libraries and cmini %d; want cext to pull in at least 15 more (libcurl + OpenSSL)", c, m)
	}
}

// dtRELR is DT_RELR (36), which debug/elf does not name yet.
const dtRELR = elf.DynTag(36)

// TestArm64UnderQemu builds the arm64 samples (`make -C testdata/samples
// arm64`, which fetches Debian's arm64 libcurl for cext-arm64) and runs each
// through the same full-run checks under qemu-user. qemu-user passes
// clock_gettime through to the host, so the checkpoints are comparable.
func TestArm64UnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the arm64 samples (network: Debian's arm64 libcurl); skipped with -short")
	}
	qemu := testutil.RequireTool(t, "qemu-aarch64")
	testutil.RequireTool(t, "aarch64-linux-gnu-gcc")
	if _, err := os.Stat("/usr/aarch64-linux-gnu/lib/libc.so"); err != nil {
		t.Skip("needs the arm64 cross libc (apt-get install libc6-dev-arm64-cross)")
	}
	root := testutil.Root(t)
	if out, err := exec.Command("make", "-C", root+"/testdata/samples", "arm64").CombinedOutput(); err != nil {
		t.Fatalf("make -C testdata/samples arm64: %v\n%s", err, out)
	}
	// Debian's arm64 libc6, libcurl and OpenSSL, from arm64-sysroot.sh: ld.so
	// and libc come from the same build, as they must.
	sysroot := root + "/build/arm64-sysroot"
	for _, name := range []string{"goext-arm64", "cmini-arm64", "cmini-static-arm64", "cext-arm64"} {
		t.Run(name, func(t *testing.T) {
			bin := root + "/build/samples/" + name
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			machine := f.Machine
			f.Close()
			if machine != elf.EM_AARCH64 {
				t.Fatalf("%s is %v, want EM_AARCH64", name, machine)
			}
			checkFullRun(t, name, []string{qemu, "-L", sysroot, bin})
		})
	}
}

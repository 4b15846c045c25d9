package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/testutil"
)

// The end-to-end tests boot Debian's arm64 cloud kernel under
// qemu-system-aarch64 (TCG) with a real arm64 initprof as PID 1. CI installs
// both (.ci/deps, make arm64-kernel); elsewhere they skip and say why.

var buildDir string

func TestMain(m *testing.M) {
	if os.Getenv("INITPROF_VM_TEST_HELPER") != "" {
		helperProcess()
		return
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
	built     = map[string]string{}
)

// buildARM64 cross-builds the static arm64 initprof (and the sleeper, a guest
// program that never ends) once per test binary.
func buildARM64(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "initprof-vm-test-")
		if buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{"initprof": "./cmd/initprof", "sleeper": "./container/vm/testdata/sleeper", "crasher": "./container/vm/testdata/crasher"} {
			out := filepath.Join(buildDir, name+"-arm64")
			cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
			cmd.Dir = testutil.Root(t)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("GOARCH=arm64 go build %s: %v\n%s", pkg, err, b)
				return
			}
			built[name] = out
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built["initprof"]
}

// requireVM skips unless qemu-system-aarch64 and the cached kernel exist.
func requireVM(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots an arm64 VM (seconds under TCG); skipped with -short")
	}
	testutil.RequireTool(t, "qemu-system-aarch64")
	k, err := doctor.ARM64KernelPath()
	if err != nil {
		t.Skipf("no arm64 kernel path: %v", err)
	}
	if checkKernel(k) != nil {
		t.Skipf("no arm64 kernel at %s: run make arm64-kernel (scripts/arm64-kernel.sh)", k)
	}
}

// noQEMULeft fails when a qemu process with this VM's name still exists.
func noQEMULeft(t *testing.T, name string) {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "-a", "qemu-system-aarch64 -name "+name+" ").CombinedOutput()
	if err == nil || len(out) > 0 {
		t.Errorf("qemu still running after Run returned:\n%s", out)
	}
}

func uniqueName(t *testing.T) string {
	return fmt.Sprintf("initprof-vmtest-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
}

type doctorResult struct {
	Name, Status, Detail string
}

// TestBootDoctor proves the guest is a probe environment: inside it,
// `initprof doctor` finds an aarch64 6.x kernel with BTF, and really loads
// BPF, attaches a uprobe and opens a cpu-clock sampling event.
func TestBootDoctor(t *testing.T) {
	requireVM(t)
	initprof := buildARM64(t)
	out := t.TempDir()
	cfg := Config{Initprof: initprof, Argv: []string{"doctor", "--json"}, Stdout: "/out/doctor.json",
		Timeout: 2 * time.Minute, Name: uniqueName(t)}
	start := time.Now()
	res, err := RunRetrying(context.Background(), cfg, out, logCrash(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %v, run %v (job %v in the guest), full cycle %v (Run %v), initramfs %d bytes",
		res.Boot, res.Run, res.GuestRun, res.Total, time.Since(start), res.InitramfsBytes)
	noQEMULeft(t, cfg.Name)
	if res.Machine != "aarch64" || !regexp.MustCompile(`^6\.`).MatchString(res.Kernel) {
		t.Errorf("guest is %s %s, want aarch64 6.x", res.Machine, res.Kernel)
	}
	if res.Boot <= 0 || res.Run <= 0 || res.GuestRun <= 0 || res.GuestRun > res.Run || res.Boot+res.Run > res.Total {
		t.Errorf("times out of order: boot %v, run %v, guest run %v, total %v", res.Boot, res.Run, res.GuestRun, res.Total)
	}
	if fmt.Sprint(res.Files) != "[doctor.json]" {
		t.Fatalf("files %v, want [doctor.json]", res.Files)
	}
	b, err := os.ReadFile(filepath.Join(out, "doctor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var results []doctorResult
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatalf("doctor.json: %v\n%s", err, b)
	}
	status := map[string]doctorResult{}
	for _, r := range results {
		status[r.Name] = r
	}
	for _, name := range []string{"kernel", "bpf", "perf", "tracefs", "uprobes"} {
		if r := status[name]; r.Status != "OK" {
			t.Errorf("guest doctor %s: %s %s, want OK", name, r.Status, r.Detail)
		}
	}
	if k := status["kernel"].Detail; !strings.HasPrefix(k, "6.") || !strings.Contains(k, "arm64") || !strings.Contains(k, "BTF") {
		t.Errorf("guest kernel line %q: want a 6.x arm64 kernel with BTF", k)
	}
}

var (
	sysrootOnce sync.Once
	sysrootErr  error
	samplesOnce sync.Once
	samplesErr  error
)

// arm64Sysroot returns build/arm64-sysroot after running
// scripts/arm64-sysroot.sh once (a no-op when it is up to date; it needs root
// for apt-get the first time).
func arm64Sysroot(t *testing.T) string {
	t.Helper()
	root := testutil.Root(t)
	sysroot := filepath.Join(root, "build", "arm64-sysroot")
	if _, err := os.Stat(filepath.Join(sysroot, ".initprof-sysroot")); err != nil {
		testutil.RequireRoot(t)
	}
	sysrootOnce.Do(func() {
		b, err := exec.Command("bash", filepath.Join(root, "scripts", "arm64-sysroot.sh"), sysroot).CombinedOutput()
		if err != nil {
			sysrootErr = fmt.Errorf("scripts/arm64-sysroot.sh: %v\n%s", err, b)
		}
	})
	if sysrootErr != nil {
		t.Fatal(sysrootErr)
	}
	return sysroot
}

// arm64Sample returns build/samples/NAME after `make -C testdata/samples arm64`
// (goext-arm64, cmini-arm64, cmini-static-arm64, cext-arm64).
func arm64Sample(t *testing.T, name string) string {
	t.Helper()
	testutil.RequireTool(t, "aarch64-linux-gnu-gcc")
	arm64Sysroot(t)
	root := testutil.Root(t)
	samplesOnce.Do(func() {
		b, err := exec.Command("make", "-C", filepath.Join(root, "testdata", "samples"), "arm64").CombinedOutput()
		if err != nil {
			samplesErr = fmt.Errorf("make -C testdata/samples arm64: %v\n%s", err, b)
		}
	})
	if samplesErr != nil {
		t.Fatal(samplesErr)
	}
	return filepath.Join(root, "build", "samples", name)
}

// TestBootDynamicC runs a dynamically linked arm64 C program under
// `initprof trace` in the guest, with its ld-linux-aarch64.so.1 and libc
// (and ld.so's libc6-dbg debug file) placed by ClosureFiles from the sysroot.
func TestBootDynamicC(t *testing.T) {
	requireVM(t)
	cc := testutil.RequireTool(t, "aarch64-linux-gnu-gcc")
	sysroot := arm64Sysroot(t)
	initprof := buildARM64(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { puts(\"hello from arm64 C\"); return 0; }\n"), 0o644)
	bin := filepath.Join(dir, "hello")
	if b, err := exec.Command(cc, "-O2", "-Wl,-z,now", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, b)
	}
	files, err := ClosureFiles(bin, "/opt/hello", sysroot)
	if err != nil {
		t.Fatal(err)
	}
	var guest []string
	for _, f := range files {
		guest = append(guest, f.GuestPath)
	}
	t.Logf("closure: %v", guest)
	want := []string{"/opt/hello", "/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6"}
	for _, w := range want {
		if !strings.Contains(" "+strings.Join(guest, " ")+" ", " "+w+" ") {
			t.Errorf("closure lacks %s", w)
		}
	}
	if !strings.Contains(strings.Join(guest, " "), "/usr/lib/debug/.build-id/") {
		t.Errorf("closure lacks ld.so's libc6-dbg debug file")
	}

	var console bytes.Buffer
	cfg := Config{Initprof: initprof, Files: files, Argv: []string{"trace", "--", "/opt/hello"},
		Stdout: "/out/trace.txt", Timeout: 2 * time.Minute, Console: &console, Name: uniqueName(t)}
	out := t.TempDir()
	res, err := RunRetrying(context.Background(), cfg, out, logCrash(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %v, run %v, total %v, initramfs %d bytes", res.Boot, res.Run, res.Total, res.InitramfsBytes)
	trace, _ := os.ReadFile(filepath.Join(out, "trace.txt"))
	t.Logf("guest trace:\n%s", trace)
	if !strings.Contains(string(trace)+console.String(), "hello from arm64 C") {
		t.Errorf("the program's output is neither in the trace nor on the console:\n%s", console.String())
	}
	// dl_main is internal to ld.so: the probes find it only through the
	// libc6-dbg debug file that ClosureFiles placed in the guest.
	if !strings.Contains(string(trace), "dl_main") {
		t.Errorf("the guest trace has no dl_main checkpoint: ld.so's debug file was not used\n%s", console.String())
	}
}

// platformExists reports whether this checkout's initprof has the platform
// command (another part of the project; the timeline test waits for it).
func platformExists(t *testing.T) bool {
	cmd := exec.Command("go", "run", "./cmd/initprof", "platform", "--help")
	cmd.Dir = testutil.Root(t)
	return cmd.Run() == nil
}

// TestBootPlatform runs the Lambda platform emulator in the guest with the
// arm64 samples as extensions (Go static, C libc-only, C with libcurl and its
// ~30-library closure from the sysroot), and brings its timeline back.
func TestBootPlatform(t *testing.T) {
	requireVM(t)
	if !platformExists(t) {
		t.Skip("initprof has no platform command yet")
	}
	initprof := buildARM64(t)
	sysroot := arm64Sysroot(t)
	names := []string{"goext-arm64", "cmini-arm64", "cext-arm64"}
	var files []File
	for _, n := range names {
		f, err := ClosureFiles(arm64Sample(t, n), "/opt/extensions/"+n, sysroot)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	cfg := Config{Initprof: initprof, Files: files,
		Argv: []string{"platform", "--extensions", "/opt/extensions", "--runtime", "sim",
			"--runtime-init", "20ms", "--timeline", "/out/timeline.jsonl"},
		Env:     []string{"GODEBUG=asyncpreemptoff=1"},
		Timeout: 2 * time.Minute, Name: uniqueName(t)}
	out := t.TempDir()
	res, err := RunRetrying(context.Background(), cfg, out, logCrash(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %v, run %v (job %v in the guest), total %v, initramfs %d bytes (%d files)",
		res.Boot, res.Run, res.GuestRun, res.Total, res.InitramfsBytes, len(files))
	b, err := os.ReadFile(filepath.Join(out, "timeline.jsonl"))
	if err != nil {
		t.Fatalf("no timeline came back (files %v): %v\n%s", res.Files, err, res.ConsoleTail)
	}
	if !bytes.Contains(b, []byte("init_end")) {
		t.Errorf("timeline has no init_end entry:\n%s", b)
	}
	// Every extension ran in the guest and reached its first /next.
	next := map[string]bool{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		var e struct{ Kind, Name, Path string }
		if json.Unmarshal(l, &e) == nil && e.Kind == "request" && strings.HasSuffix(e.Path, "/event/next") {
			next[e.Name] = true
		}
	}
	for _, n := range names {
		if !next[n] {
			t.Errorf("%s never called /next in the guest\n%s", n, res.ConsoleTail)
		}
	}
}

// helperProcess is the test binary re-executed by TestKilledParent: it boots
// a VM whose job never ends, and waits to be killed.
func helperProcess() {
	cfg := Config{Initprof: os.Getenv("INITPROF_VM_TEST_INITPROF"), Name: os.Getenv("INITPROF_VM_TEST_HELPER"),
		Files: []File{{GuestPath: "/opt/sleeper", HostPath: os.Getenv("INITPROF_VM_TEST_SLEEPER")}},
		Argv:  []string{"trace", "--", "/opt/sleeper"}, Timeout: time.Hour}
	_, err := Run(context.Background(), cfg, os.TempDir())
	fmt.Fprintln(os.Stderr, "helper: Run returned:", err)
	os.Exit(1)
}

func qemuRunning(name string) bool {
	return exec.Command("pgrep", "-f", "qemu-system-aarch64 -name "+name+" ").Run() == nil
}

// TestKilledParent: when the process running Run dies without a chance to
// clean up (SIGKILL), qemu dies with it (Pdeathsig) instead of running on.
func TestKilledParent(t *testing.T) {
	requireVM(t)
	testutil.RequireTool(t, "pgrep")
	initprof := buildARM64(t)
	name := uniqueName(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INITPROF_VM_TEST_HELPER="+name, "INITPROF_VM_TEST_INITPROF="+initprof,
		"INITPROF_VM_TEST_SLEEPER="+built["sleeper"])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !qemuRunning(name) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the helper never started qemu:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // past qemu's own start-up, into the guest's boot
	cmd.Process.Kill()
	cmd.Wait()
	// The guest's job never ends, so only qemu's death signal can stop it.
	deadline = time.Now().Add(10 * time.Second)
	for qemuRunning(name) {
		if time.Now().After(deadline) {
			exec.Command("pkill", "-KILL", "-f", "qemu-system-aarch64 -name "+name+" ").Run()
			t.Fatal("qemu outlived the killed process that started it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunErrors covers the failures a caller must be able to tell apart.
func TestRunErrors(t *testing.T) {
	requireVM(t)
	initprof := buildARM64(t)
	base := func(t *testing.T) Config {
		return Config{Initprof: initprof, Argv: []string{"doctor", "--json"}, Timeout: 2 * time.Minute, Name: uniqueName(t)}
	}
	notKernel := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(notKernel, bytes.Repeat([]byte{0}, 4096), 0o644)

	// Inputs refused before qemu starts.
	bad := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"missing kernel", func(c *Config) { c.Kernel = "/nonexistent/vmlinuz" }, "no arm64 kernel at /nonexistent/vmlinuz: fetch it with `make arm64-kernel`"},
		{"not a kernel", func(c *Config) { c.Kernel = notKernel }, "is not an arm64 kernel Image"},
		{"missing qemu", func(c *Config) { c.QEMU = "qemu-system-nonexistent" }, "qemu-system-nonexistent not found"},
		{"amd64 initprof", func(c *Config) { c.Initprof = "/proc/self/exe" }, "not aarch64: build it with `make build-arm64`"},
		{"no initprof", func(c *Config) { c.Initprof = "" }, "no arm64 initprof binary given"},
		{"empty argv", func(c *Config) { c.Argv = nil }, "empty guest argv"},
		{"relative guest path", func(c *Config) { c.Files = []File{{GuestPath: "opt/x", HostPath: initprof}} }, `guest path "opt/x"`},
		{"guest path /init", func(c *Config) { c.Files = []File{{GuestPath: "/init", HostPath: initprof}} }, `guest path "/init"`},
		{"missing host file", func(c *Config) { c.Files = []File{{GuestPath: "/opt/x", HostPath: "/nonexistent"}} }, "file /nonexistent (for /opt/x): not a readable regular file"},
		{"out dir /", func(c *Config) { c.OutDir = "/" }, `guest out dir "/"`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			cfg := base(t)
			c.mod(&cfg)
			_, err := Run(context.Background(), cfg, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}

	t.Run("job fails", func(t *testing.T) {
		cfg := base(t)
		cfg.Argv = []string{"no-such-command"}
		res, err := Run(context.Background(), cfg, t.TempDir())
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("error %v, want an *ExitError", err)
		}
		if ee.Code != 2 || res.ExitCode != 2 {
			t.Errorf("exit code %d (result %d), want initprof's bad-input code 2", ee.Code, res.ExitCode)
		}
		if !strings.Contains(err.Error(), `unknown command "no-such-command"`) {
			t.Errorf("error does not carry the guest's console tail:\n%v", err)
		}
		t.Logf("the error a user sees:\n%v", err)
		noQEMULeft(t, cfg.Name)
	})

	t.Run("job timeout", func(t *testing.T) {
		cfg := base(t)
		cfg.Files = []File{{GuestPath: "/opt/sleeper", HostPath: built["sleeper"]}}
		cfg.Argv = []string{"trace", "--", "/opt/sleeper"}
		cfg.RunTimeout = time.Second
		start := time.Now()
		res, err := Run(context.Background(), cfg, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "ran longer than 1s after boot; killed qemu") {
			t.Fatalf("error %v, want the run timeout", err)
		}
		if res == nil || res.Boot <= 0 || time.Since(start) > res.Boot+time.Minute {
			t.Errorf("result %+v: want a measured boot and a prompt kill", res)
		}
		noQEMULeft(t, cfg.Name)
	})

	t.Run("context cancelled during boot", func(t *testing.T) {
		cfg := base(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := Run(ctx, cfg, t.TempDir())
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "killed qemu") {
			t.Fatalf("error %v, want context.DeadlineExceeded and killed qemu", err)
		}
		noQEMULeft(t, cfg.Name)
	})

	t.Run("boot timeout", func(t *testing.T) {
		cfg := base(t)
		cfg.BootTimeout = 300 * time.Millisecond
		_, err := Run(context.Background(), cfg, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "did not boot within 300ms; killed qemu") {
			t.Fatalf("error %v, want the boot timeout", err)
		}
		noQEMULeft(t, cfg.Name)
	})

	t.Run("whole VM timeout", func(t *testing.T) {
		cfg := base(t)
		cfg.Timeout = 300 * time.Millisecond
		_, err := Run(context.Background(), cfg, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "ran longer than 300ms; killed qemu") {
			t.Fatalf("error %v, want the VM timeout", err)
		}
		noQEMULeft(t, cfg.Name)
	})

	t.Run("guest kernel crash", func(t *testing.T) {
		// The job crashes the guest kernel: Run must say so with a
		// *GuestCrashError (callers boot a fresh VM on it) within seconds,
		// not hang to the 2-minute VM timeout.
		cfg := base(t)
		cfg.Files = []File{{GuestPath: "/opt/crasher", HostPath: built["crasher"]}}
		cfg.Argv = []string{"trace", "--", "/opt/crasher"}
		start := time.Now()
		_, err := Run(context.Background(), cfg, t.TempDir())
		var crash *GuestCrashError
		if !errors.As(err, &crash) {
			t.Fatalf("error %v, want a *GuestCrashError", err)
		}
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the crash was reported after %v", took)
		}
		if !strings.Contains(crash.ConsoleTail, "sysrq") {
			t.Errorf("the error lacks the kernel's crash report:\n%v", err)
		}
		t.Logf("the error a user sees:\n%v", err)
		noQEMULeft(t, cfg.Name)
	})

	t.Run("init exits", func(t *testing.T) {
		// The sleeper, started as /init, exits at once: the kernel panics
		// ("Attempted to kill init"), panic=-1 reboots, -no-reboot ends qemu.
		cfg := base(t)
		cfg.Initprof = built["sleeper"]
		_, err := Run(context.Background(), cfg, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "the guest never started /init") ||
			!strings.Contains(err.Error(), "Attempted to kill init") {
			t.Fatalf("error %v, want a boot failure with the kernel's panic in the console tail", err)
		}
		t.Logf("the error a user sees:\n%v", err)
		noQEMULeft(t, cfg.Name)
	})
}

// logCrash is RunRetrying's report for tests whose subject is not a guest
// kernel crash (Debian's 6.12 arm64 kernel oopses now and then in perf code
// under TCG): the crash is logged and the job reruns in a fresh VM.
func logCrash(t *testing.T) func(*GuestCrashError, int) {
	return func(c *GuestCrashError, next int) {
		t.Logf("guest kernel crashed (%s); booting a fresh VM, attempt %d of %d", c.Line, next, CrashAttempts)
	}
}

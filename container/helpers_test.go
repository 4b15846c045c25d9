package container

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// helperEnv switches the test binary into a host process that uses the
// sandbox and waits for a signal (TestSignalCleanup).
const helperEnv = "INITPROF_CONTAINER_SIGNAL_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(signalHelper())
	}
	code := m.Run()
	if probeDir != "" {
		os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

var (
	probeOnce sync.Once
	probeDir  string
	probeErr  error
)

// probeBinary builds testdata/probe (static, so it runs in a bare rootfs)
// once per test binary.
func probeBinary(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() {
		probeDir, probeErr = os.MkdirTemp("/var/tmp", "initprof-probe-")
		if probeErr != nil {
			return
		}
		probeErr = goBuild(filepath.Join(probeDir, "probe"), "amd64-native")
	})
	if probeErr != nil {
		t.Fatalf("building the probe: %v", probeErr)
	}
	return filepath.Join(probeDir, "probe")
}

// goBuild builds testdata/probe to out; goarch "amd64-native" means the host's.
func goBuild(out, goarch string) error {
	cmd := exec.Command("go", "build", "-o", out, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "amd64-native" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, b)
	}
	return nil
}

// requireOCI skips unless the OCI sandbox can run here, and returns the
// runtime's path.
func requireOCI(t testing.TB, name string) string {
	t.Helper()
	testutil.RequireRoot(t)
	return testutil.RequireTool(t, name)
}

// probeConfig runs the probe as PID 1 with mode args, the probe also being the
// one extension (the config needs one).
func probeConfig(t testing.TB, runtime string, memMB int, mode ...string) Config {
	p := probeBinary(t)
	return Config{
		Extensions: []Extension{{Name: "probe-ext", Path: p}},
		Initprof:   p,
		Init:       append([]string{InitprofPath}, mode...),
		MemoryMB:   memMB,
		OCIRuntime: runtime,
		WorkDir:    workTemp(t),
	}
}

// workTemp is a per-test work dir on a disk (/var/tmp), never a tmpfs: the
// sandbox refuses a tmpfs work dir, and /tmp is one on many machines.
func workTemp(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "initprof-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// runOnce creates, starts and waits for one run; Delete is left to the caller.
func runOnce(t testing.TB, sb Sandbox, id string) (Instance, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in, err := sb.Create(ctx, id)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { in.Delete() })
	if err := in.Start(); err != nil {
		t.Fatalf("start: %v\n%s", err, in.Output())
	}
	code, err := in.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v\n%s", err, in.Output())
	}
	return in, code
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the probe's report: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

// assertGone checks that nothing of a container survives: the runtime does
// not know it, and no cgroup hierarchy holds its directory.
func assertGone(t testing.TB, runtime, id, cgroup string, pid int) {
	t.Helper()
	out, _ := exec.Command(runtime, "list", "-q").CombinedOutput()
	for _, l := range strings.Fields(string(out)) {
		if l == id {
			t.Errorf("%s list still shows %s", runtime, id)
		}
	}
	if d := cgroupDirs(cgroup); len(d) > 0 {
		t.Errorf("cgroup directories left behind: %v", d)
	}
	if pid > 0 {
		// A zombie is dead: it only waits for its parent to reap it. When its
		// owner was SIGKILLed, that parent is the host's init (or subreaper),
		// which is not ours to hurry.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("container process %d still exists: %s", pid, b)
		}
	}
}

// libcurlBinary returns a binary linked against libcurl and OpenSSL/GnuTLS
// (30-odd libraries), the arguments to run it briefly, and whether it must
// exit 0 then: curl --version when curl is installed, else the C sample,
// which loads all its libraries and exits 1 without a platform to talk to.
func libcurlBinary(t testing.TB) (string, []string, bool) {
	t.Helper()
	if p, err := exec.LookPath("curl"); err == nil {
		return p, []string{"--version"}, true
	}
	return testutil.Sample(t, "cext"), nil, false
}

// signalHelper is a host process using the OCI sandbox the way the CLI will:
// it creates and starts a long-running run, prints READY with the container's
// names, and on SIGINT/SIGTERM cleans up with CleanupAll and exits 130.
func signalHelper() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	probe := os.Getenv(helperEnv)
	sb, err := NewOCI(Config{
		Extensions: []Extension{{Name: "probe-ext", Path: probe}},
		Initprof:   probe,
		Init:       []string{InitprofPath, "sleep"},
		OCIRuntime: os.Getenv("INITPROF_TEST_RUNTIME"),
		WorkDir:    os.Getenv("INITPROF_TEST_WORKDIR"),
	})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	in, err := sb.Create(context.Background(), "sig")
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if err := in.Start(); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	oi := in.(*ociInstance)
	fmt.Printf("READY %s %s %d\n", oi.ContainerID(), oi.CgroupPath(), oi.PID())
	<-sigs
	if err := CleanupAll(); err != nil {
		fmt.Println("ERROR cleanup:", err)
		return 1
	}
	sb.Close()
	fmt.Println("CLEANED")
	return 130
}

// startHelper runs the test binary as signalHelper and returns its READY fields.
func startHelper(t *testing.T, runtime string) (*exec.Cmd, *bufio.Scanner, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+probeBinary(t), "INITPROF_TEST_RUNTIME="+runtime, "INITPROF_TEST_WORKDIR="+workTemp(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, like a shell job
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "READY" && len(f) == 4 {
			return cmd, sc, f[1:]
		}
		if len(f) > 0 && f[0] == "ERROR" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper: %s", sc.Text())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("helper exited before READY")
	return nil, nil, nil
}

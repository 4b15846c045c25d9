package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeFacts mirrors testdata/probe's Facts.
type probeFacts struct {
	PID          int      `json:"pid"`
	MemoryLimit  int64    `json:"memory_limit"`
	CPUQuota     int64    `json:"cpu_quota"`
	CPUPeriod    int64    `json:"cpu_period"`
	LimitErr     string   `json:"limit_err"`
	TmpIsTmpfs   bool     `json:"tmp_is_tmpfs"`
	TmpBytes     int64    `json:"tmp_bytes"`
	TmpWritable  bool     `json:"tmp_writable"`
	RootRO       bool     `json:"root_readonly"`
	RootWriteErr string   `json:"root_write_err"`
	SandboxAddrs []string `json:"sandbox_addrs"`
	SandboxLD    []string `json:"sandbox_localdomain_addrs"`
	DialExternal string   `json:"dial_external_err"`
	LoopbackOK   bool     `json:"loopback_ok"`
	Interfaces   []string `json:"interfaces"`
	CapEff       string   `json:"cap_eff"`
	NoNewPrivs   string   `json:"no_new_privs"`
	MemoryEnv    string   `json:"memory_env"`
	Extensions   []string `json:"extensions"`
	Hostname     string   `json:"hostname"`
	Devices      []string `json:"devices"`
}

// TestOCISandboxFromInside runs the probe as PID 1 and holds what it saw
// against the Lambda environment the sandbox promises.
func TestOCISandboxFromInside(t *testing.T) {
	tests := []struct {
		runtime string
		memMB   int
	}{
		{"runc", 1024},
		{"runc", 512},
		{"crun", 1024},
		{"crun", 3008},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%dMB", tc.runtime, tc.memMB), func(t *testing.T) {
			rt := requireOCI(t, tc.runtime)
			sb, err := NewOCI(probeConfig(t, tc.runtime, tc.memMB, "check"))
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			if !strings.Contains(sb.Kind(), tc.runtime) {
				t.Errorf("Kind() = %q, want it to name %s", sb.Kind(), tc.runtime)
			}
			in, code := runOnce(t, sb, "inside")
			if code != 0 {
				t.Fatalf("probe exit code %d\n%s", code, in.Output())
			}
			var f probeFacts
			readJSON(t, filepath.Join(in.OutDir(), "out.json"), &f)
			quota, period := CPUQuota(tc.memMB)
			if f.LimitErr != "" {
				t.Errorf("probe could not read its limits: %s", f.LimitErr)
			}
			if want := int64(tc.memMB) << 20; f.MemoryLimit != want {
				t.Errorf("memory limit seen inside = %d, want %d", f.MemoryLimit, want)
			}
			if f.CPUQuota != quota || f.CPUPeriod != int64(period) {
				t.Errorf("CPU quota seen inside = %d/%d, want %d/%d (%d MB / 1769)", f.CPUQuota, f.CPUPeriod, quota, period, tc.memMB)
			}
			if l := in.(*ociInstance).Limits(); l.MemoryBytes != int64(tc.memMB)<<20 || l.CPUQuotaUS != quota {
				t.Errorf("limits read back on the host = %+v", l)
			}
			if f.PID != 1 {
				t.Errorf("probe pid inside = %d, want 1", f.PID)
			}
			if !f.TmpIsTmpfs || f.TmpBytes != 512<<20 || !f.TmpWritable {
				t.Errorf("/tmp: tmpfs=%v size=%d writable=%v, want a writable 512 MiB tmpfs", f.TmpIsTmpfs, f.TmpBytes, f.TmpWritable)
			}
			if !f.RootRO || !strings.Contains(f.RootWriteErr, "read-only") {
				t.Errorf("/ readonly=%v, write error %q; want a read-only root", f.RootRO, f.RootWriteErr)
			}
			for name, addrs := range map[string][]string{"sandbox": f.SandboxAddrs, "sandbox.localdomain": f.SandboxLD} {
				if len(addrs) == 0 || addrs[0] != "127.0.0.1" {
					t.Errorf("%s resolves to %v, want 127.0.0.1", name, addrs)
				}
			}
			if !strings.Contains(f.DialExternal, "network is unreachable") {
				t.Errorf("connecting to 10.255.255.1:80 gave %q, want network is unreachable", f.DialExternal)
			}
			if !f.LoopbackOK {
				t.Errorf("could not connect to sandbox:9001 over loopback; interfaces %v", f.Interfaces)
			}
			if len(f.Interfaces) != 1 || !strings.HasPrefix(f.Interfaces[0], "lo:up") {
				t.Errorf("interfaces = %v, want only lo, up", f.Interfaces)
			}
			if f.CapEff != "0000000000000000" || f.NoNewPrivs != "1" {
				t.Errorf("CapEff=%s NoNewPrivs=%s, want no capabilities and no new privileges", f.CapEff, f.NoNewPrivs)
			}
			if f.MemoryEnv != fmt.Sprint(tc.memMB) {
				t.Errorf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE = %q, want %d", f.MemoryEnv, tc.memMB)
			}
			if got := strings.Join(f.Devices, " "); got != "null zero full random urandom" && got != "null zero full random urandom tty" {
				t.Errorf("usable devices = %q, want null zero full random urandom", got)
			}
			if f.Hostname != "sandbox" {
				t.Errorf("hostname = %q", f.Hostname)
			}
			if len(f.Extensions) != 1 || f.Extensions[0] != "probe-ext" {
				t.Errorf("/opt/extensions = %v, want [probe-ext]", f.Extensions)
			}
			oi := in.(*ociInstance)
			if err := in.Delete(); err != nil {
				t.Fatalf("delete: %v", err)
			}
			assertGone(t, rt, oi.ContainerID(), oi.CgroupPath(), oi.PID())
			o := in.Overhead()
			if o.Create <= 0 || o.Start <= 0 || o.Delete <= 0 {
				t.Errorf("overhead not measured: %+v", o)
			}
			t.Logf("overhead: create %v start %v delete %v", o.Create, o.Start, o.Delete)
		})
	}
}

// TestOCIHostPIDs checks that HostPIDs makes the pid PID 1 sees its host pid,
// and that delete still kills the run's other processes.
func TestOCIHostPIDs(t *testing.T) {
	rt := requireOCI(t, "runc")
	cfg := probeConfig(t, "runc", 1024, "check")
	cfg.HostPIDs = true
	sb, err := NewOCI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	in, code := runOnce(t, sb, "hostpids")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, in.Output())
	}
	var f probeFacts
	readJSON(t, filepath.Join(in.OutDir(), "out.json"), &f)
	if f.PID != in.PID() {
		t.Errorf("pid inside = %d, want the host pid %d", f.PID, in.PID())
	}

	cfg.Init = []string{InitprofPath, "sleep"}
	sb2, err := NewOCI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sb2.Close()
	in2, err := sb2.Create(context.Background(), "hostpids-sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := in2.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	for i := 0; i < 100 && child == 0; i++ {
		time.Sleep(20 * time.Millisecond)
		if c := childrenOf(in2.PID()); len(c) > 0 {
			child = c[0]
		}
	}
	if child == 0 {
		t.Fatalf("the probe never forked its child\n%s", in2.Output())
	}
	oi := in2.(*ociInstance)
	if err := in2.Delete(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, rt, oi.ContainerID(), oi.CgroupPath(), oi.PID())
	assertGone(t, rt, oi.ContainerID(), oi.CgroupPath(), child)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err == nil {
		t.Errorf("the run's orphaned child %d was not reaped", child)
	}
	t.Logf("overhead of the sleeping run: %+v; first run: %+v", in2.Overhead(), in.Overhead())
}

// TestOCIFirstProcessBeforeStart checks the contract probes rely on: after
// Create the first process exists but has not exec'd PID 1's program.
func TestOCIFirstProcessBeforeStart(t *testing.T) {
	requireOCI(t, "runc")
	sb, err := NewOCI(probeConfig(t, "runc", 1024, "check"))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	in, err := sb.Create(context.Background(), "before")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Delete()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", in.PID()))
	if err != nil {
		t.Fatalf("first process %d: %v", in.PID(), err)
	}
	if strings.Contains(exe, "probe") {
		t.Errorf("before Start the first process already runs %s", exe)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(in.OutDir(), "out.json")); err == nil {
		t.Errorf("the probe ran before Start")
	}
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := in.Wait(context.Background()); err != nil || code != 0 {
		t.Fatalf("wait: %d %v\n%s", code, err, in.Output())
	}
	if _, err := os.Stat(filepath.Join(in.OutDir(), "out.json")); err != nil {
		t.Errorf("the probe did not run after Start: %v", err)
	}
}

// TestOCICleanupOnEveryPath deletes runs in every state they can be in when
// the CLI gives up on them, and checks nothing is left.
func TestOCICleanupOnEveryPath(t *testing.T) {
	tests := []struct {
		name     string
		mode     []string
		start    bool
		wait     bool
		wantCode int
	}{
		{"crashing PID 1", []string{"exit", "3"}, true, true, 3},
		{"running with a child", []string{"sleep"}, true, false, 0},
		{"created, never started", []string{"check"}, false, false, 0},
	}
	for _, rtName := range []string{"runc", "crun"} {
		for _, tc := range tests {
			t.Run(rtName+"/"+tc.name, func(t *testing.T) {
				rt := requireOCI(t, rtName)
				sb, err := NewOCI(probeConfig(t, rtName, 1024, tc.mode...))
				if err != nil {
					t.Fatal(err)
				}
				defer sb.Close()
				in, err := sb.Create(context.Background(), "cleanup")
				if err != nil {
					t.Fatal(err)
				}
				oi := in.(*ociInstance)
				if tc.start {
					if err := in.Start(); err != nil {
						t.Fatal(err)
					}
				}
				if tc.wait {
					code, err := in.Wait(context.Background())
					if err != nil || code != tc.wantCode {
						t.Errorf("wait = %d, %v; want exit code %d\n%s", code, err, tc.wantCode, in.Output())
					}
				} else if tc.start {
					time.Sleep(100 * time.Millisecond) // let it fork its child
				}
				if err := in.Delete(); err != nil {
					t.Fatalf("delete: %v", err)
				}
				if err := in.Delete(); err != nil {
					t.Errorf("second delete: %v", err)
				}
				assertGone(t, rt, oi.ContainerID(), oi.CgroupPath(), oi.PID())
				if n := Live(); n != 0 {
					t.Errorf("%d instances still registered", n)
				}
				if !tc.wait {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if code, err := in.Wait(ctx); err != nil || code != 128+int(syscall.SIGKILL) {
						t.Errorf("after delete, wait = %d, %v; want killed (137)", code, err)
					}
				}
			})
		}
	}
}

// TestSignalCleanup interrupts a host process that uses the sandbox, as a
// user's Ctrl-C does, and checks nothing of its container survives.
func TestSignalCleanup(t *testing.T) {
	tests := []struct {
		name  string
		sig   syscall.Signal
		group bool // to the whole process group, as a terminal's Ctrl-C
	}{
		{"SIGINT", syscall.SIGINT, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"Ctrl-C to the process group", syscall.SIGINT, true},
	}
	for _, tc := range tests {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			rt := requireOCI(t, "runc")
			cmd, sc, f := startHelper(t, "runc")
			id, cgroup := f[0], f[1]
			var pid int
			fmt.Sscan(f[2], &pid)
			if syscall.Kill(pid, 0) != nil {
				t.Fatalf("container process %d is not running before the signal", pid)
			}
			if tc.group {
				syscall.Kill(-cmd.Process.Pid, sig)
			} else {
				cmd.Process.Signal(sig)
			}
			cleaned := false
			for sc.Scan() {
				if sc.Text() == "CLEANED" {
					cleaned = true
				}
			}
			err := cmd.Wait()
			var ee interface{ ExitCode() int }
			if !errors.As(err, &ee) || ee.ExitCode() != 130 || !cleaned {
				t.Errorf("helper exit = %v, cleaned=%v; want 130 after cleaning", err, cleaned)
			}
			assertGone(t, rt, id, cgroup, pid)
		})
	}
}

// TestNoRuntime checks the error a machine without runc or crun gets.
func TestNoRuntime(t *testing.T) {
	p := probeBinary(t)
	empty := t.TempDir()
	tests := []struct {
		name, runtime, path string
	}{
		{"none on PATH", "", empty},
		{"named runtime missing", "/nonexistent/runc", os.Getenv("PATH")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			_, err := NewOCI(Config{Extensions: []Extension{{Name: "x", Path: p}}, Initprof: p, OCIRuntime: tc.runtime})
			if !errors.Is(err, ErrNoRuntime) {
				t.Fatalf("err = %v, want ErrNoRuntime", err)
			}
			for _, want := range []string{"apt-get install runc", "--sandbox process"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestCleanupStale SIGKILLs a host process mid-run (nothing can clean up
// then) and checks that CleanupStale removes what it left.
func TestCleanupStale(t *testing.T) {
	rt := requireOCI(t, "runc")
	cmd, _, f := startHelper(t, "runc")
	id, cgroup := f[0], f[1]
	var pid int
	fmt.Sscan(f[2], &pid)
	cmd.Process.Kill()
	cmd.Wait()
	if d := cgroupDirs(cgroup); len(d) == 0 {
		t.Fatalf("after SIGKILL of its owner the container's cgroup is already gone: nothing to test")
	}
	removed, err := CleanupStale("runc")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range removed {
		found = found || r == id
	}
	if !found {
		t.Errorf("CleanupStale removed %v, not %s", removed, id)
	}
	assertGone(t, rt, id, cgroup, pid)
}

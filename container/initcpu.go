package container

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// InitEndSocket is the unix socket, in the run's out dir, on which the
// platform says that INIT ended (--init-end-notify): the host then gives the
// cgroup the invoke-time CPU quota and answers, before the first invoke.
const InitEndSocket = "initend.sock"

// Lambda's CPU is not the same during init as during invokes: lambda-perf's
// published Init Durations do not move from 128 to 1024 MB although the
// invoke quota grows 8× (LAMBDA-FIDELITY.md §1), so init does not run under
// the memory-proportional quota. Config.InitCPU is the CPU given until init
// ends; the switch to memory/1769 happens when the platform reports the end
// of init, as on Lambda, so invokes are throttled as there.

// initQuota is the CFS quota (µs per period) the cgroup gets at create:
// InitCPU vCPUs when set, else the invoke quota.
func (c *Config) initQuota() (quota int64, period uint64) {
	if c.InitCPU > 0 {
		return int64(c.InitCPU * cfsPeriod), cfsPeriod
	}
	return CPUQuota(c.memoryMB())
}

// switchesCPU says whether the quota changes when init ends.
func (c *Config) switchesCPU() bool {
	q, _ := c.initQuota()
	inv, _ := CPUQuota(c.memoryMB())
	return c.InitCPU > 0 && q != inv
}

// cpuSwitch serves one run's InitEndSocket: at the platform's "init-end" it
// writes the invoke quota into the run's cgroup and answers "ok".
type cpuSwitch struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	atNs   int64 // CLOCK_MONOTONIC when the invoke quota was written (0: not yet)
	err    error
	quota  int64
	period uint64
}

// startCPUSwitch listens on dir/InitEndSocket. The socket is bound through
// /proc/self/fd/N, so a deep work dir never hits the 108-byte limit of a
// unix socket path.
func startCPUSwitch(dir, cgroupsPath string, quota int64, period uint64) (*cpuSwitch, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), InitEndSocket)
	ln, err := net.Listen("unix", short)
	if err != nil {
		return nil, fmt.Errorf("listening for the end of init on %s: %v", filepath.Join(dir, InitEndSocket), err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	// The platform runs without capabilities (no CAP_DAC_OVERRIDE): it may
	// connect only if the socket is writable by everyone.
	if err := os.Chmod(filepath.Join(dir, InitEndSocket), 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	s := &cpuSwitch{ln: ln, quota: quota, period: period}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.serve(c, cgroupsPath)
		}
	}()
	return s, nil
}

func (s *cpuSwitch) serve(c net.Conn, cgroupsPath string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(line) != "init-end" {
		fmt.Fprintf(c, "error: want init-end, got %q\n", strings.TrimSpace(line))
		return
	}
	err := setCPUQuota(cgroupsPath, s.quota, s.period)
	s.mu.Lock()
	if err == nil && s.atNs == 0 {
		s.atNs = monoNow()
	}
	s.err = err
	s.mu.Unlock()
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	fmt.Fprintln(c, "ok")
}

// close stops listening and waits for a request in progress.
func (s *cpuSwitch) close() {
	s.ln.Close()
	s.wg.Wait()
}

// result says whether and when (CLOCK_MONOTONIC ns) the invoke quota was applied.
func (s *cpuSwitch) result() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.atNs, s.err
}

// setCPUQuota writes a CFS quota into cgroupsPath: cpu.cfs_quota_us under
// the v1 cpu controller, else cpu.max in the unified hierarchy.
func setCPUQuota(cgroupsPath string, quota int64, period uint64) error {
	ms, err := cgroupMounts()
	if err != nil {
		return err
	}
	_, cpuDir, unified := controllerDirs(ms, cgroupsPath)
	if cpuDir != "" {
		return os.WriteFile(filepath.Join(cpuDir, "cpu.cfs_quota_us"), []byte(fmt.Sprint(quota)), 0)
	}
	if unified == "" {
		return fmt.Errorf("no cpu cgroup controller is mounted")
	}
	return os.WriteFile(filepath.Join(unified, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0)
}

// NotifyInitEnd is the platform's side (inside the sandbox): it tells the
// host that INIT ended and waits until the invoke quota is in place, so the
// first invoke already runs under it.
func NotifyInitEnd(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "init-end"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer from the host: %v", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("host: %s", line)
	}
	return nil
}

// monoNow is CLOCK_MONOTONIC in ns, the clock of every timeline.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Command probe stands in for PID 1 in the container package's tests. It
// reports, as JSON in $OUT/out.json, what a process inside the sandbox sees:
// its cgroup limits, /tmp, the root's writability, /etc/hosts, the network
// and its privileges. Build it with CGO_ENABLED=0: it runs in a bare rootfs.
//
//	probe check            write the facts and exit 0
//	probe exit N           exit N at once (a crashing PID 1)
//	probe sleep            sleep until killed (spawning a sleeping child too)
//	probe exec PATH ARGS   run PATH, report its major faults, exit with its code
//
// Like `initprof platform --wait-fd 3`, it first waits for fd 3 to reach EOF
// when fd 3 is open (the process sandbox holds it until Start).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	waitFD3()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "probe: want a mode")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "check":
		write(check())
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Println("probe: exiting with", n)
		os.Exit(n)
	case "sleep":
		child := exec.Command("/proc/self/exe", "sleep-child")
		child.Start()
		fmt.Println("probe: sleeping")
		time.Sleep(time.Hour)
	case "sleep-child":
		time.Sleep(time.Hour)
	case "exec":
		runChild(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "probe: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func waitFD3() {
	var st syscall.Stat_t
	if syscall.Fstat(3, &st) != nil {
		return
	}
	buf := make([]byte, 1)
	for {
		n, err := syscall.Read(3, buf)
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
	}
	syscall.Close(3)
}

func outDir() string {
	if d := os.Getenv("INITPROF_OUT_DIR"); d != "" {
		return d
	}
	return "/run/initprof"
}

func write(v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir(), "out.json"), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	fmt.Println("probe: wrote out.json")
}

// Facts is what check reports.
type Facts struct {
	PID          int      `json:"pid"`
	UID          int      `json:"uid"`
	Cgroup       string   `json:"cgroup"` // /proc/self/cgroup
	MemoryLimit  int64    `json:"memory_limit"`
	CPUQuota     int64    `json:"cpu_quota"`
	CPUPeriod    int64    `json:"cpu_period"`
	LimitErr     string   `json:"limit_err,omitempty"`
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
	Devices      []string `json:"devices"` // the usable character devices of /dev
}

func check() Facts {
	var f Facts
	f.PID = os.Getpid()
	f.UID = os.Getuid()
	b, _ := os.ReadFile("/proc/self/cgroup")
	f.Cgroup = string(b)
	if err := limits(&f, string(b)); err != nil {
		f.LimitErr = err.Error()
	}
	var st syscall.Statfs_t
	if syscall.Statfs("/tmp", &st) == nil {
		f.TmpIsTmpfs = st.Type == 0x01021994
		f.TmpBytes = int64(st.Blocks) * st.Bsize
	}
	if err := os.WriteFile("/tmp/probe", []byte("x"), 0o644); err == nil {
		f.TmpWritable = true
	}
	if syscall.Statfs("/", &st) == nil {
		f.RootRO = st.Flags&1 != 0 // ST_RDONLY
	}
	if err := os.WriteFile("/probe-write-test", []byte("x"), 0o644); err != nil {
		f.RootWriteErr = err.Error()
	} else {
		f.RootWriteErr = "none"
		os.Remove("/probe-write-test")
	}
	f.SandboxAddrs, _ = net.LookupHost("sandbox")
	f.SandboxLD, _ = net.LookupHost("sandbox.localdomain")
	c, err := net.DialTimeout("tcp", "10.255.255.1:80", 2*time.Second)
	if err != nil {
		f.DialExternal = err.Error()
	} else {
		c.Close()
		f.DialExternal = "none: connected"
	}
	if l, err := net.Listen("tcp", "127.0.0.1:9001"); err == nil {
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		if c, err := net.DialTimeout("tcp", "sandbox:9001", time.Second); err == nil {
			f.LoopbackOK = true
			c.Close()
		}
		l.Close()
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		f.Interfaces = append(f.Interfaces, i.Name+":"+i.Flags.String())
	}
	if s, err := os.ReadFile("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(s)))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "CapEff":
				f.CapEff = strings.TrimSpace(v)
			case "NoNewPrivs":
				f.NoNewPrivs = strings.TrimSpace(v)
			}
		}
	}
	f.MemoryEnv = os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
	if es, err := os.ReadDir("/opt/extensions"); err == nil {
		for _, e := range es {
			f.Extensions = append(f.Extensions, e.Name())
		}
	}
	f.Hostname, _ = os.Hostname()
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if fd, err := os.OpenFile("/dev/"+d, os.O_RDWR, 0); err == nil {
			fd.Close()
			f.Devices = append(f.Devices, d)
		}
	}
	return f
}

// limits reads the cgroup limits the way a runtime sizing its heap does: the
// process's own cgroup path under the mounted hierarchy, falling back to the
// hierarchy root (which is the process's cgroup under a cgroup namespace).
func limits(f *Facts, procCgroup string) error {
	paths := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(procCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	read := func(dir, rel, file string) (string, error) {
		for _, p := range []string{filepath.Join("/sys/fs/cgroup", dir, rel, file), filepath.Join("/sys/fs/cgroup", dir, file)} {
			if b, err := os.ReadFile(p); err == nil {
				return strings.TrimSpace(string(b)), nil
			}
		}
		return "", fmt.Errorf("no %s under /sys/fs/cgroup/%s", file, dir)
	}
	if _, ok := paths["memory"]; ok { // v1
		m, err := read("memory", paths["memory"], "memory.limit_in_bytes")
		if err != nil {
			return err
		}
		f.MemoryLimit, _ = strconv.ParseInt(m, 10, 64)
		cpuDir := "cpu"
		if _, err := os.Stat("/sys/fs/cgroup/cpu"); err != nil {
			cpuDir = "cpu,cpuacct"
		}
		q, err := read(cpuDir, paths["cpu"], "cpu.cfs_quota_us")
		if err != nil {
			return err
		}
		p, err := read(cpuDir, paths["cpu"], "cpu.cfs_period_us")
		if err != nil {
			return err
		}
		f.CPUQuota, _ = strconv.ParseInt(q, 10, 64)
		f.CPUPeriod, _ = strconv.ParseInt(p, 10, 64)
		return nil
	}
	rel, ok := paths[""]
	if !ok {
		return errors.New("no cgroup found in /proc/self/cgroup")
	}
	m, err := read("", rel, "memory.max")
	if err != nil {
		return err
	}
	if m != "max" {
		f.MemoryLimit, _ = strconv.ParseInt(m, 10, 64)
	}
	c, err := read("", rel, "cpu.max")
	if err != nil {
		return err
	}
	qp := strings.Fields(c)
	if len(qp) == 2 {
		if qp[0] != "max" {
			f.CPUQuota, _ = strconv.ParseInt(qp[0], 10, 64)
		}
		f.CPUPeriod, _ = strconv.ParseInt(qp[1], 10, 64)
	}
	return nil
}

// ChildResult is what exec reports.
type ChildResult struct {
	ExitCode int   `json:"exit_code"`
	MajFlt   int64 `json:"majflt"`
	MinFlt   int64 `json:"minflt"`
	InBlock  int64 `json:"inblock"`
	WallNS   int64 `json:"wall_ns"`
}

func runChild(args []string) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	var r ChildResult
	r.WallNS = time.Since(t0).Nanoseconds()
	if err != nil && cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	r.ExitCode = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MajFlt, r.MinFlt, r.InBlock = ru.Majflt, ru.Minflt, ru.Inblock
	}
	write(r)
	os.Exit(r.ExitCode)
}

package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is one mounted cgroup hierarchy (v1 controller or v2 unified).
type cgroupMount struct {
	dir     string
	v2      bool
	options string // super options: the v1 controllers, e.g. "rw,memory"
}

// cgroupMounts lists the cgroup hierarchies mounted on this host, from
// /proc/self/mountinfo. Both versions are returned on a hybrid host: the OCI
// runtime may leave a directory in either.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCgroupMounts(f)
}

func parseCgroupMounts(f io.Reader) ([]cgroupMount, error) {
	var out []cgroupMount
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		if qf[0] != "cgroup" && qf[0] != "cgroup2" {
			continue
		}
		dir := unescapeMount(pf[4])
		if seen[dir] {
			continue
		}
		seen[dir] = true
		out = append(out, cgroupMount{dir: dir, v2: qf[0] == "cgroup2", options: qf[2]})
	}
	return out, sc.Err()
}

// unescapeMount decodes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CgroupVersion reports how this host mounts cgroups: "v2" (unified only),
// "v1" (legacy or hybrid: the controllers are in v1 hierarchies).
func CgroupVersion() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
		return "v2"
	}
	return "v1"
}

// cgroupDirs returns every existing directory for cgroupsPath in every
// mounted hierarchy.
func cgroupDirs(cgroupsPath string) []string {
	ms, err := cgroupMounts()
	if err != nil {
		return nil
	}
	return cgroupDirsIn(ms, cgroupsPath)
}

func cgroupDirsIn(ms []cgroupMount, cgroupsPath string) []string {
	var out []string
	for _, m := range ms {
		d := filepath.Join(m.dir, cgroupsPath)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// cgroupProcs lists the host pids in cgroupsPath (from the first hierarchy
// that has the directory).
func cgroupProcs(cgroupsPath string) []int {
	for _, d := range cgroupDirs(cgroupsPath) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		var out []int
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		return out
	}
	return nil
}

// removeCgroups removes what the OCI runtime left of cgroupsPath. A cgroup
// directory can only be removed once empty, and the kernel takes a moment to
// notice that the last task died, so EBUSY is retried briefly.
func removeCgroups(cgroupsPath string) error {
	ms, err := cgroupMounts()
	if err != nil {
		return err
	}
	return removeCgroupsIn(ms, cgroupsPath)
}

func removeCgroupsIn(ms []cgroupMount, cgroupsPath string) error {
	var left []string
	for _, d := range cgroupDirsIn(ms, cgroupsPath) {
		var err error
		for i := 0; i < 100; i++ {
			err = syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", d, err))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("cgroup directories left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// Limits are the resource limits a run's cgroup actually holds, read back from
// the cgroup filesystem after the runtime set them.
type Limits struct {
	Cgroup      string // "v1" or "v2"; "" when the sandbox has no cgroup
	MemoryBytes int64  // -1 when unlimited
	CPUQuotaUS  int64  // -1 when unlimited
	CPUPeriodUS int64
	// InitCPUQuotaUS is the quota during init when it differs from the
	// invoke quota (Config.InitCPU), 0 otherwise; SwitchMonoNs is when the
	// invoke quota replaced it (CLOCK_MONOTONIC; 0: it never did, e.g. init
	// failed), SwitchErr why it could not.
	InitCPUQuotaUS int64
	SwitchMonoNs   int64
	SwitchErr      string
}

// CPUs is the quota as a fraction of one CPU (0 when unlimited).
func (l Limits) CPUs() float64 {
	if l.CPUQuotaUS <= 0 || l.CPUPeriodUS <= 0 {
		return 0
	}
	return float64(l.CPUQuotaUS) / float64(l.CPUPeriodUS)
}

// readLimits reads the memory limit and CPU quota of cgroupsPath from the host.
func readLimits(cgroupsPath string) (Limits, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return Limits{}, err
	}
	return readLimitsIn(ms, cgroupsPath)
}

// controllerDirs are cgroupsPath's directories under the v1 memory and cpu
// controllers and under the unified hierarchy ("" where not mounted).
func controllerDirs(ms []cgroupMount, cgroupsPath string) (memDir, cpuDir, unified string) {
	for _, m := range ms {
		d := filepath.Join(m.dir, cgroupsPath)
		if m.v2 {
			unified = d
			continue
		}
		for _, o := range strings.Split(m.options, ",") {
			switch o {
			case "memory":
				memDir = d
			case "cpu":
				cpuDir = d
			}
		}
	}
	return memDir, cpuDir, unified
}

// readLimitsIn reads the limits of cgroupsPath under the given hierarchies:
// the v1 memory and cpu controllers when mounted (legacy or hybrid host),
// else the v2 unified hierarchy.
func readLimitsIn(ms []cgroupMount, cgroupsPath string) (Limits, error) {
	var l Limits
	var err error
	memDir, cpuDir, unified := controllerDirs(ms, cgroupsPath)
	if memDir != "" && cpuDir != "" {
		l.Cgroup = "v1"
		if l.MemoryBytes, err = readIntFile(filepath.Join(memDir, "memory.limit_in_bytes")); err != nil {
			return l, err
		}
		if l.MemoryBytes >= 1<<62 {
			l.MemoryBytes = -1
		}
		if l.CPUQuotaUS, err = readIntFile(filepath.Join(cpuDir, "cpu.cfs_quota_us")); err != nil {
			return l, err
		}
		l.CPUPeriodUS, err = readIntFile(filepath.Join(cpuDir, "cpu.cfs_period_us"))
		return l, err
	}
	if unified == "" {
		return l, fmt.Errorf("no memory and cpu cgroup controllers are mounted")
	}
	return ParseV2Limits(readString(filepath.Join(unified, "memory.max")), readString(filepath.Join(unified, "cpu.max")))
}

// ParseV2Limits parses cgroup v2's memory.max ("max" or bytes) and cpu.max
// ("max 100000" or "quota period"). The sandboxed test program uses it too.
func ParseV2Limits(memoryMax, cpuMax string) (Limits, error) {
	l := Limits{Cgroup: "v2", MemoryBytes: -1, CPUQuotaUS: -1}
	m := strings.TrimSpace(memoryMax)
	if m == "" {
		return l, fmt.Errorf("memory.max is empty or missing")
	}
	if m != "max" {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return l, fmt.Errorf("memory.max %q: %v", m, err)
		}
		l.MemoryBytes = v
	}
	f := strings.Fields(cpuMax)
	if len(f) != 2 {
		return l, fmt.Errorf("cpu.max %q: want \"QUOTA PERIOD\"", strings.TrimSpace(cpuMax))
	}
	if f[0] != "max" {
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return l, fmt.Errorf("cpu.max quota %q: %v", f[0], err)
		}
		l.CPUQuotaUS = v
	}
	p, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return l, fmt.Errorf("cpu.max period %q: %v", f[1], err)
	}
	l.CPUPeriodUS = p
	return l, nil
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func readIntFile(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", p, err)
	}
	return v, nil
}

// checkLimits compares what the cgroup holds with what the config asked for:
// a runtime that silently drops a limit would make every number wrong.
func checkLimits(got Limits, cfg *Config) error {
	memoryMB := cfg.memoryMB()
	quota, period := cfg.initQuota()
	wantMem := int64(memoryMB) << 20
	if got.MemoryBytes != wantMem {
		return fmt.Errorf("cgroup memory limit is %d bytes, want %d (%d MB)", got.MemoryBytes, wantMem, memoryMB)
	}
	if got.CPUQuotaUS != quota || got.CPUPeriodUS != int64(period) {
		return fmt.Errorf("cgroup CPU quota is %d/%d µs, want %d/%d", got.CPUQuotaUS, got.CPUPeriodUS, quota, period)
	}
	return nil
}

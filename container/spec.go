package container

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const ociVersion = "1.0.2"

// ociSpec is the OCI runtime configuration of one run. Only the out-dir bind
// mount and the cgroup path change from run to run; the rootfs is shared.
func ociSpec(cfg *Config, rootfs, outDir, cgroupsPath string, args []string) *specs.Spec {
	mem := int64(cfg.memoryMB()) << 20
	quota, period := cfg.initQuota()
	pids := int64(1024)
	roMount := []string{"nosuid", "noexec", "nodev", "ro"}

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: roMount},
		// The sandboxed process reads its own limits here, as Lambda runtimes do
		// to size their heaps.
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: append([]string{"relatime"}, roMount...)},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=512m"}},
		{Destination: OutMount, Type: "bind", Source: outDir, Options: []string{"rbind", "rw", "nosuid", "nodev"}},
	}
	if cfg.Initprof != "" {
		// Bind-mounted, not copied: PID 1 is the measuring tool, not the code
		// under test, so it never takes part in cache eviction.
		mounts = append(mounts, specs.Mount{Destination: InitprofPath, Type: "bind", Source: cfg.Initprof, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	var namespaces []specs.LinuxNamespace
	if !cfg.HostPIDs {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	namespaces = append(namespaces, []specs.LinuxNamespace{
		// A fresh network namespace holds only loopback (the runtime brings it
		// up): extensions reach the platform on 127.0.0.1 and nothing else.
		{Type: specs.NetworkNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}...)
	if _, err := os.Stat("/proc/self/ns/cgroup"); err == nil {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return &specs.Spec{
		// 1.0.2, not specs.Version: crun 1.8 refuses anything newer than 1.0.x,
		// and nothing here needs a later field.
		Version:  ociVersion,
		Hostname: "sandbox",
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     args,
			Env:      cfg.env(),
			Cwd:      cwd(cfg),
			// No capabilities: the platform only spawns processes and serves
			// HTTP on a loopback port above 1024.
			Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{}, Effective: []string{}, Permitted: []string{}, Inheritable: []string{}, Ambient: []string{},
			},
			NoNewPrivileges: true,
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}, // Lambda's limit
			},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces:  namespaces,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &mem},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// cwd is the working directory of PID 1 and so of every process: the
// image's WORKDIR for an image, else /var/task, as Lambda sets it.
func cwd(cfg *Config) string {
	if cfg.cwd != "" {
		return cfg.cwd
	}
	return "/var/task"
}

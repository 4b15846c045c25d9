package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupRoot is where cgroups are mounted on every mainstream distribution.
const CgroupRoot = "/sys/fs/cgroup"

// CgroupMode is how cgroups are laid out under CgroupRoot.
type CgroupMode string

const (
	CgroupV2     CgroupMode = "v2"     // a cgroup2 mount at the root (unified)
	CgroupHybrid CgroupMode = "hybrid" // v1 controllers plus a cgroup2 mount at unified/
	CgroupV1     CgroupMode = "v1"     // v1 controllers only
)

// cgroupControllers are what the sandbox needs: memory for --memory, cpu for
// the CPU quota that Lambda derives from memory.
var cgroupControllers = []string{"memory", "cpu"}

// DetectCgroup tells the cgroup layout under root from the filesystem types
// (statfs), the same test runc and systemd use.
func DetectCgroup(root string) (CgroupMode, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", root, err)
	}
	switch int64(st.Type) {
	case unix.CGROUP2_SUPER_MAGIC:
		return CgroupV2, nil
	case unix.TMPFS_MAGIC:
		var u unix.Statfs_t
		if unix.Statfs(filepath.Join(root, "unified"), &u) == nil && int64(u.Type) == unix.CGROUP2_SUPER_MAGIC {
			return CgroupHybrid, nil
		}
		return CgroupV1, nil
	}
	return "", fmt.Errorf("%s is neither cgroup2 nor a tmpfs of v1 hierarchies (filesystem magic %#x)", root, st.Type)
}

// cgroupControllersAvailable returns which wanted controllers are usable:
// listed in cgroup.controllers for v2, mounted as a v1 hierarchy otherwise
// (in hybrid mode the controllers live in v1).
func cgroupControllersAvailable(root string, mode CgroupMode, want []string) (have, missing []string) {
	var v2 map[string]bool
	if mode == CgroupV2 {
		v2 = map[string]bool{}
		b, _ := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		for _, c := range strings.Fields(string(b)) {
			v2[c] = true
		}
	}
	for _, c := range want {
		ok := false
		if mode == CgroupV2 {
			ok = v2[c]
		} else {
			var st unix.Statfs_t
			ok = unix.Statfs(filepath.Join(root, c), &st) == nil && int64(st.Type) == unix.CGROUP_SUPER_MAGIC
		}
		if ok {
			have = append(have, c)
		} else {
			missing = append(missing, c)
		}
	}
	return have, missing
}

// Cgroup reports the cgroup version and whether the memory and cpu
// controllers that the OCI sandbox's limits use are available.
func Cgroup() Result {
	return cgroupAt(CgroupRoot)
}

func cgroupAt(root string) Result {
	r := Result{Name: "cgroup"}
	mode, err := DetectCgroup(root)
	if err != nil {
		r.Status = Warn
		r.Detail = err.Error() + "; the sandbox cannot apply --memory or the CPU quota"
		r.Fix = "mount -t cgroup2 none " + root
		return r
	}
	desc := map[CgroupMode]string{
		CgroupV2:     "v2 (unified)",
		CgroupHybrid: "hybrid (v1 controllers, cgroup2 at " + filepath.Join(root, "unified") + ")",
		CgroupV1:     "v1",
	}[mode]
	have, missing := cgroupControllersAvailable(root, mode, cgroupControllers)
	if len(missing) > 0 {
		r.Status = Warn
		r.Detail = fmt.Sprintf("%s; no %s controller: the sandbox cannot apply --memory or the CPU quota", desc, strings.Join(missing, ", "))
		r.Fix = "boot with cgroup_enable=" + strings.Join(missing, ",") + " (and, for v2, enable them in the parent's cgroup.subtree_control)"
		return r
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("%s; %s controllers available", desc, strings.Join(have, " and "))
	return r
}

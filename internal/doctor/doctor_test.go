package doctor

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testCaps reads CapEff from /proc/self/status the test's own way.
func testCaps(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CapEff in /proc/self/status")
	}
	v, err := strconv.ParseUint(string(m[1]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func hasCap(mask uint64, bit uint) bool { return mask&(1<<bit) != 0 }

// testTracefsMounted answers "is tracefs mounted?" from mountinfo alone.
func testTracefsMounted(t *testing.T) (string, bool) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "tracefs" && fields[3] == "/" {
				return fields[4], true
			}
		}
	}
	return "", false
}

// TestRunOnThisMachine runs every check and holds each line the test can
// verify against what the test reads itself.
func TestRunOnThisMachine(t *testing.T) {
	results := Run()
	checks := Checks()
	if len(results) != len(checks) {
		t.Fatalf("Run returned %d results for %d checks", len(results), len(checks))
	}
	byName := map[string]Result{}
	for i, r := range results {
		if r.Name != checks[i].Name {
			t.Errorf("result %d is %q, want %q (Run must keep Checks' order)", i, r.Name, checks[i].Name)
		}
		switch r.Status {
		case OK:
		case Missing, Warn:
			if r.Fix == "" {
				t.Errorf("%s is %s with no fix", r.Name, r.Status)
			}
		default:
			t.Errorf("%s: status %q is none of OK, MISSING, WARN", r.Name, r.Status)
		}
		if r.Detail == "" {
			t.Errorf("%s: empty detail", r.Name)
		}
		byName[r.Name] = r
		t.Logf("%-8s %-14s %s | fix: %s", r.Status, r.Name, r.Detail, r.Fix)
	}
	caps := testCaps(t)

	tests := []struct {
		name  string
		check func(t *testing.T, r Result)
	}{
		{"kernel", func(t *testing.T, r Result) {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				t.Fatal(err)
			}
			rel := unix.ByteSliceToString(u.Release[:])
			if !strings.Contains(r.Detail, rel) {
				t.Errorf("detail %q does not name the release %q", r.Detail, rel)
			}
			_, err := os.Stat("/sys/kernel/btf/vmlinux")
			if err != nil && r.Status != Missing {
				t.Errorf("no BTF (%v) but status %s", err, r.Status)
			}
			major, minor, ok := releaseMajorMinor(rel)
			if ok && err == nil && (major > 5 || major == 5 && minor >= 15) && r.Status != OK {
				t.Errorf("kernel %s with BTF reported %s", rel, r.Status)
			}
			if !r.Required {
				t.Error("kernel must be required")
			}
		}},
		{"bpf", func(t *testing.T, r Result) {
			privileged := hasCap(caps, unix.CAP_BPF) || hasCap(caps, unix.CAP_SYS_ADMIN)
			want := Missing
			if privileged {
				want = OK
			}
			if r.Status != want {
				t.Errorf("euid %d, CapEff %#x: bpf is %s, want %s (%s)", os.Geteuid(), caps, r.Status, want, r.Detail)
			}
			if !privileged && !r.Privileges {
				t.Error("an unprivileged bpf failure must be flagged as a privilege problem")
			}
		}},
		{"perf", func(t *testing.T, r Result) {
			if (hasCap(caps, unix.CAP_PERFMON) || hasCap(caps, unix.CAP_SYS_ADMIN)) && r.Status != OK {
				t.Errorf("CapEff has CAP_PERFMON but perf is %s: %s", r.Status, r.Detail)
			}
			paranoid, _ := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
			if !strings.Contains(r.Detail, "perf_event_paranoid="+strings.TrimSpace(string(paranoid))) {
				t.Errorf("detail %q does not quote perf_event_paranoid=%s", r.Detail, strings.TrimSpace(string(paranoid)))
			}
		}},
		{"tracefs", func(t *testing.T, r Result) {
			point, mounted := testTracefsMounted(t)
			if !mounted {
				var st unix.Statfs_t
				if unix.Statfs("/sys/kernel/tracing", &st) == nil && int64(st.Type) == unix.TRACEFS_MAGIC {
					point, mounted = "/sys/kernel/tracing", true
				}
			}
			if !mounted {
				if r.Status != Missing || !strings.Contains(r.Fix, "mount -t tracefs") {
					t.Errorf("tracefs is not mounted, but the result is %s / fix %q", r.Status, r.Fix)
				}
				return
			}
			if !strings.Contains(r.Detail, point) {
				t.Errorf("tracefs is mounted at %s, detail says %q", point, r.Detail)
			}
			_, err := os.Stat(filepath.Join(point, "events", "syscalls", "sys_enter_execve", "id"))
			if err == nil && r.Status != OK {
				t.Errorf("sys_enter_execve is readable but tracefs is %s", r.Status)
			}
		}},
		{"uprobes", func(t *testing.T, r Result) {
			b, err := os.ReadFile("/sys/bus/event_source/devices/uprobe/type")
			if err != nil {
				return
			}
			if typ := strings.TrimSpace(string(b)); !strings.Contains(r.Detail, "type "+typ+")") {
				t.Errorf("uprobe PMU is type %s, detail says %q", typ, r.Detail)
			}
			if hasCap(caps, unix.CAP_SYS_ADMIN) && r.Status != OK {
				t.Errorf("uprobe PMU present and CAP_SYS_ADMIN held, but uprobes is %s", r.Status)
			}
		}},
		{"kprobes", func(t *testing.T, r Result) {
			_, err := os.Stat("/sys/bus/event_source/devices/kprobe")
			if absent := strings.Contains(r.Detail, "absent"); absent != (err != nil) {
				t.Errorf("kprobe PMU stat err=%v, detail %q", err, r.Detail)
			}
			if r.Required || r.Status != OK {
				t.Error("kprobes are never required")
			}
		}},
		{"ld.so symbols", func(t *testing.T, r Result) {
			readelf, err := exec.LookPath("readelf")
			if err != nil {
				t.Skip("needs readelf (binutils) as an independent oracle")
			}
			interp := readelfInterp(t, readelf, "/bin/sh")
			id := readelfBuildID(t, readelf, interp)
			dbg := filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug")
			_, statErr := os.Stat(dbg)
			hasSym := statErr == nil && readelfHasSymbol(t, readelf, dbg, "_dl_relocate_object")
			if hasSym != (r.Status == OK) {
				t.Errorf("debug file %s (stat %v, has _dl_relocate_object %v) but result %s: %s", dbg, statErr, hasSym, r.Status, r.Detail)
			}
			if r.Status != OK && r.Fix != "apt-get install libc6-dbg" {
				t.Errorf("fix %q, want apt-get install libc6-dbg", r.Fix)
			}
			if !strings.Contains(r.Detail, interp) {
				t.Errorf("detail %q does not name %s", r.Detail, interp)
			}
		}},
		{"cgroup", func(t *testing.T, r Result) {
			var st unix.Statfs_t
			if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
				t.Skip(err)
			}
			var want string
			switch int64(st.Type) {
			case unix.CGROUP2_SUPER_MAGIC:
				want = "v2"
			case unix.TMPFS_MAGIC:
				want = "v1"
				if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
					want = "hybrid"
				}
			default:
				t.Skipf("/sys/fs/cgroup has filesystem magic %#x", st.Type)
			}
			if !strings.HasPrefix(r.Detail, want+" ") {
				t.Errorf("statfs says cgroup %s, detail %q", want, r.Detail)
			}
		}},
		{"runc/crun", func(t *testing.T, r Result) {
			runc, err1 := exec.LookPath("runc")
			crun, err2 := exec.LookPath("crun")
			if err1 != nil && err2 != nil {
				if r.Status != Missing || !strings.Contains(r.Fix, "--sandbox process") {
					t.Errorf("neither on PATH, result %s fix %q", r.Status, r.Fix)
				}
				return
			}
			if r.Status != OK {
				t.Errorf("runc=%q crun=%q on PATH but status %s", runc, crun, r.Status)
			}
			for _, p := range []string{runc, crun} {
				if p != "" && !strings.Contains(r.Detail, p) {
					t.Errorf("detail %q does not name %s", r.Detail, p)
				}
			}
			if r.Required {
				t.Error("runc/crun is not required: --sandbox process works without")
			}
		}},
		{"arm64 qemu", func(t *testing.T, r Result) {
			_, err := exec.LookPath("qemu-system-aarch64")
			if (err == nil) != (r.Status == OK) {
				t.Errorf("LookPath err=%v, status %s", err, r.Status)
			}
		}},
		{"arm64 kernel", func(t *testing.T, r Result) {
			p, err := ARM64KernelPath()
			if err != nil {
				t.Skip(err)
			}
			if !strings.Contains(r.Detail, p) {
				t.Errorf("detail %q does not name %s", r.Detail, p)
			}
			if _, err := os.Stat(p); err != nil && r.Status != Warn {
				t.Errorf("%s absent, status %s", p, r.Status)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := byName[tc.name]
			if !ok {
				t.Fatalf("no %q result", tc.name)
			}
			tc.check(t, r)
		})
	}
}

// releaseMajorMinor pulls "major.minor" out of a release string, the test's
// own way.
func releaseMajorMinor(rel string) (major, minor int, ok bool) {
	m := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(rel)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

func readelfInterp(t *testing.T, readelf, path string) string {
	t.Helper()
	out, err := exec.Command(readelf, "-lW", path).Output()
	if err != nil {
		t.Fatalf("readelf -l %s: %v", path, err)
	}
	m := regexp.MustCompile(`Requesting program interpreter: ([^\]]+)\]`).FindSubmatch(out)
	if m == nil {
		t.Skipf("%s has no interpreter", path)
	}
	return string(m[1])
}

func readelfBuildID(t *testing.T, readelf, path string) string {
	t.Helper()
	out, err := exec.Command(readelf, "-nW", path).Output()
	if err != nil {
		t.Fatalf("readelf -n %s: %v", path, err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("readelf finds no build-id in %s", path)
	}
	return string(m[1])
}

func readelfHasSymbol(t *testing.T, readelf, path, sym string) bool {
	t.Helper()
	out, err := exec.Command(readelf, "-sW", path).Output()
	if err != nil {
		t.Fatalf("readelf -s %s: %v", path, err)
	}
	return regexp.MustCompile(`\s` + regexp.QuoteMeta(sym) + `\n`).Match(out)
}

// TestBuildIDMatchesReadelf holds BuildID and Interpreter against binutils on
// real system binaries.
func TestBuildIDMatchesReadelf(t *testing.T) {
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		t.Skip("needs readelf (binutils)")
	}
	interp := readelfInterp(t, readelf, "/bin/sh")
	got, err := Interpreter("/bin/sh")
	if err != nil || got != interp {
		t.Errorf("Interpreter(/bin/sh) = %q, %v; readelf says %q", got, err, interp)
	}
	for _, p := range []string{"/bin/sh", interp} {
		t.Run(p, func(t *testing.T) {
			want := readelfBuildID(t, readelf, p)
			got, err := BuildID(p)
			if err != nil || got != want {
				t.Errorf("BuildID = %q, %v; readelf says %q", got, err, want)
			}
		})
	}
}

func TestBuildIDErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("not an elf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{text, filepath.Join(dir, "missing"), dir} {
		if _, err := BuildID(p); err == nil {
			t.Errorf("BuildID(%s) succeeded", p)
		}
		if _, err := Interpreter(p); err == nil {
			t.Errorf("Interpreter(%s) succeeded", p)
		}
	}
}

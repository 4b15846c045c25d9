package doctor

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"6.18.44-fc-v657", 6, 18, true},
		{"6.1.0-28-cloud-amd64", 6, 1, true},
		{"5.15.0", 5, 15, true},
		{"6.12-rc3", 6, 12, true},
		{"4.19", 4, 19, true},
		{"6", 0, 0, false},
		{"", 0, 0, false},
		{"x.y.z", 0, 0, false},
	}
	for _, tc := range tests {
		major, minor, ok := parseRelease(tc.in)
		if major != tc.major || minor != tc.minor || ok != tc.ok {
			t.Errorf("parseRelease(%q) = %d, %d, %v; want %d, %d, %v", tc.in, major, minor, ok, tc.major, tc.minor, tc.ok)
		}
	}
}

func TestKernelResult(t *testing.T) {
	tests := []struct {
		release, btf string
		want         Status
		detail       string
	}{
		{"6.18.44", BTFPath, OK, "BTF: " + BTFPath},
		{"6.18.44", "/nonexistent/vmlinux", Missing, "no BTF"},
		{"5.10.0", BTFPath, Missing, "older than 5.15"},
		{"garbage", BTFPath, Missing, "cannot parse"},
	}
	if _, err := os.Stat(BTFPath); err != nil {
		t.Skipf("the OK rows need %s: %v", BTFPath, err)
	}
	for _, tc := range tests {
		r := kernelResult(tc.release, tc.btf)
		if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) || !r.Required {
			t.Errorf("kernelResult(%q, %q) = %+v; want %s with %q", tc.release, tc.btf, r, tc.want, tc.detail)
		}
		if r.Status != OK && r.Fix == "" {
			t.Errorf("kernelResult(%q, %q): no fix", tc.release, tc.btf)
		}
	}
}

func TestCaps(t *testing.T) {
	tests := []struct {
		status string
		want   string
		err    bool
	}{
		{"Name:\tx\nCapEff:\t000001fffeffffff\n", "CapEff has CAP_BPF CAP_PERFMON CAP_SYS_ADMIN", false},
		{"CapEff:\t0000000000000000\n", "CapEff lacks CAP_BPF CAP_PERFMON CAP_SYS_ADMIN", false},
		// setcap cap_bpf,cap_perfmon+ep
		{"CapEff:\t000000c000000000\n", "CapEff has CAP_BPF CAP_PERFMON, lacks CAP_SYS_ADMIN", false},
		{"CapPrm:\t0\n", "", true},
		{"CapEff:\tzz\n", "", true},
	}
	for _, tc := range tests {
		m, err := parseCapEff(strings.NewReader(tc.status))
		if (err != nil) != tc.err {
			t.Errorf("parseCapEff(%q) error %v, want error %v", tc.status, err, tc.err)
			continue
		}
		if err == nil && describeCaps(m) != tc.want {
			t.Errorf("describeCaps(%#x) = %q, want %q", m, describeCaps(m), tc.want)
		}
	}
}

func TestFindTracefsInMountinfo(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"mountinfo-no-tracefs", ""},
		{"mountinfo-tracefs", "/sys/kernel/tracing"},
		// An escaped space, and an instance subtree that must not be chosen.
		{"mountinfo-tracefs-escaped", "/mnt/my trace"},
		{"mountinfo-tracefs-subtree", ""},
	}
	for _, tc := range tests {
		f, err := os.Open(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got := findTracefsInMountinfo(f)
		f.Close()
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.file, got, tc.want)
		}
	}
}

// TestTracepointsResult points the tracepoint check at directories laid out
// like tracefs, with one or both tracepoints missing.
func TestTracepointsResult(t *testing.T) {
	mk := func(t *testing.T, tps ...string) string {
		dir := t.TempDir()
		for _, tp := range tps {
			p := filepath.Join(dir, "events", tp, "id")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("42\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name   string
		tps    []string
		want   Status
		detail string
	}{
		{"both", []string{"syscalls/sys_enter_execve", "sched/sched_process_exec"}, OK, "syscalls:sys_enter_execve, sched:sched_process_exec present"},
		{"no syscalls", []string{"sched/sched_process_exec"}, Missing, "no syscalls:sys_enter_execve tracepoint"},
		{"no sched", []string{"syscalls/sys_enter_execve"}, Missing, "no sched:sched_process_exec tracepoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tracepointsResult(mk(t, tc.tps...))
			if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("got %s %q, want %s with %q", r.Status, r.Detail, tc.want, tc.detail)
			}
		})
	}
}

// TestLoaderSymbolsWithoutDebugFile points the check at an empty debug root:
// the real, stripped ld.so then has no symbols anywhere.
func TestLoaderSymbolsWithoutDebugFile(t *testing.T) {
	interp, err := HostInterpreter()
	if err != nil {
		t.Skip(err)
	}
	if miss, err := missingSymbols(interp, loaderSymbols); err == nil && len(miss) == 0 {
		t.Skipf("%s is not stripped; the fallback path cannot be reached", interp)
	}
	r := loaderSymbolsAt(interp, t.TempDir())
	if r.Status != Warn || r.Required || r.Fix != "apt-get install libc6-dbg" {
		t.Errorf("got %+v; want an optional WARN with fix apt-get install libc6-dbg", r)
	}
	for _, want := range []string{interp, "is absent", "_dl_debug_state", "_dl_relocate_object"} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("detail %q lacks %q", r.Detail, want)
		}
	}
}

func TestFindBuildIDNote(t *testing.T) {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	note := func(name string, typ uint32, desc []byte) []byte {
		var b []byte
		b = append(b, le(uint32(len(name)+1))...)
		b = append(b, le(uint32(len(desc)))...)
		b = append(b, le(typ)...)
		n := append([]byte(name), 0)
		for len(n)%4 != 0 {
			n = append(n, 0)
		}
		b = append(b, n...)
		d := append([]byte{}, desc...)
		for len(d)%4 != 0 {
			d = append(d, 0)
		}
		return append(b, d...)
	}
	abi := note("GNU", 1, []byte{0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
	id := note("GNU", 3, []byte{0xde, 0xad, 0xbe, 0xef, 0x01})
	tests := []struct {
		name string
		in   []byte
		want string
		ok   bool
	}{
		{"alone", id, "deadbeef01", true},
		{"after ABI tag", append(append([]byte{}, abi...), id...), "deadbeef01", true},
		{"other owner", note("Go", 3, []byte{1, 2}), "", false},
		{"truncated", id[:15], "", false},
		{"empty", nil, "", false},
	}
	for _, tc := range tests {
		got, ok := findBuildIDNote(tc.in, binary.LittleEndian)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCgroupAtNonCgroup(t *testing.T) {
	r := cgroupAt(t.TempDir())
	if r.Status != Warn || r.Fix == "" || r.Required {
		t.Errorf("a plain directory as cgroup root: got %+v, want an optional WARN with a fix", r)
	}
	if r := cgroupAt("/nonexistent/cgroup"); r.Status != Warn || !strings.Contains(r.Detail, "/nonexistent/cgroup") {
		t.Errorf("missing cgroup root: got %+v", r)
	}
}

func TestDetectCgroupMatchesMountinfo(t *testing.T) {
	// mountinfoMode is what /proc/self/mountinfo says the layout is.
	mountinfoMode := func() (CgroupMode, string, bool) {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		var rootType string
		unified := false
		for _, line := range strings.Split(string(b), "\n") {
			pre, post, ok := strings.Cut(line, " - ")
			if !ok {
				continue
			}
			pf, sf := strings.Fields(pre), strings.Fields(post)
			switch pf[4] {
			case CgroupRoot:
				rootType = sf[0] // the last mount on a point wins
			case CgroupRoot + "/unified":
				unified = sf[0] == "cgroup2"
			}
		}
		want := map[string]CgroupMode{"cgroup2": CgroupV2, "tmpfs": CgroupV1}[rootType]
		if want == CgroupV1 && unified {
			want = CgroupHybrid
		}
		return want, rootType, unified
	}
	// Both views are read twice, a moment apart: CI once saw them disagree
	// while other jobs on the machine were starting containers, and a
	// layout that changes under the test is not DetectCgroup's error. A
	// disagreement that persists is.
	var mode, want CgroupMode
	var rootType string
	var unified bool
	for try := 0; try < 2; try++ {
		var err error
		if mode, err = DetectCgroup(CgroupRoot); err != nil {
			t.Skip(err)
		}
		if want, rootType, unified = mountinfoMode(); mode == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("DetectCgroup = %s; mountinfo has %s at %s (unified cgroup2: %v)", mode, rootType, CgroupRoot, unified)
}

func TestARM64KernelAt(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	image := make([]byte, 0x1000)
	copy(image[0x38:], "ARM\x64")
	tests := []struct {
		name, path string
		want       Status
		detail     string
	}{
		{"missing", filepath.Join(dir, "nope"), Warn, "no kernel at"},
		{"short", write("short", []byte("ARM")), Warn, "too short"},
		{"x86 bzImage-like", write("bz", make([]byte, 0x1000)), Warn, "not an arm64 kernel Image"},
		{"arm64 Image", write("vmlinuz", image), OK, "(arm64 Image)"},
	}
	for _, tc := range tests {
		r := arm64KernelAt(tc.path)
		if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) || r.Required {
			t.Errorf("%s: got %+v; want optional %s with %q", tc.name, r, tc.want, tc.detail)
		}
		if r.Status != OK && !strings.HasPrefix(r.Fix, "initprof doctor --fix") {
			t.Errorf("%s: fix %q, want initprof doctor --fix (which works without a checkout)", tc.name, r.Fix)
		}
	}
}

func TestARM64KernelPath(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if p, _ := ARM64KernelPath(); p != "/x/cache/initprof/arm64/vmlinuz" {
		t.Errorf("with XDG_CACHE_HOME: %s", p)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if p, _ := ARM64KernelPath(); p != "/home/u/.cache/initprof/arm64/vmlinuz" {
		t.Errorf("with HOME: %s", p)
	}
}

func TestVerdict(t *testing.T) {
	ok := Result{Name: "a", Status: OK, Required: true}
	missing := Result{Name: "tracefs", Status: Missing, Required: true}
	priv := Result{Name: "bpf", Status: Missing, Required: true, Privileges: true}
	optional := Result{Name: "runc/crun", Status: Missing}
	warn := Result{Name: "arm64 kernel", Status: Warn, Privileges: true}
	tests := []struct {
		name              string
		in                []Result
		ready, privileges bool
		failing           []string
	}{
		{"none", nil, true, false, nil},
		{"all ok", []Result{ok, ok}, true, false, nil},
		{"optional missing only", []Result{ok, optional, warn}, true, false, nil},
		{"required missing", []Result{ok, missing, optional}, false, false, []string{"tracefs"}},
		{"privilege", []Result{priv, ok}, false, true, []string{"bpf"}},
		{"both", []Result{missing, priv}, false, true, []string{"tracefs", "bpf"}},
	}
	for _, tc := range tests {
		ready, privileges := Verdict(tc.in)
		if ready != tc.ready || privileges != tc.privileges {
			t.Errorf("%s: Verdict = %v, %v; want %v, %v", tc.name, ready, privileges, tc.ready, tc.privileges)
		}
		if got := Failing(tc.in); strings.Join(got, ",") != strings.Join(tc.failing, ",") {
			t.Errorf("%s: Failing = %v, want %v", tc.name, got, tc.failing)
		}
	}
}

// TestEntryFileOffset holds the uprobe address against readelf's view of the
// same binary.
func TestEntryFileOffset(t *testing.T) {
	if _, err := exec.LookPath("readelf"); err != nil {
		t.Skip("needs readelf")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	off, err := entryFileOffset(exe)
	if err != nil {
		t.Fatal(err)
	}
	// Read the bytes at off and at the entry through the kernel's mapping of
	// this very process: they must be the same instruction bytes.
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fromFile := make([]byte, 16)
	if _, err := f.ReadAt(fromFile, int64(off)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("readelf", "-hW", exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	var entry uint64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Entry point address:"); ok {
			if entry, err = strconv.ParseUint(strings.TrimSpace(v), 0, 64); err != nil {
				t.Fatalf("readelf entry %q: %v", v, err)
			}
		}
	}
	if entry == 0 {
		t.Fatal("readelf shows no entry point")
	}
	mem := make([]byte, 16)
	mf, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Skip(err)
	}
	defer mf.Close()
	if _, err := mf.ReadAt(mem, int64(entry)); err != nil {
		t.Skipf("reading /proc/self/mem at %#x (PIE test binary?): %v", entry, err)
	}
	if string(mem) != string(fromFile) {
		t.Errorf("bytes at file offset %#x (%x) differ from memory at entry %#x (%x)", off, fromFile, entry, mem)
	}
}

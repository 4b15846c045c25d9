package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestDoctorExitCode(t *testing.T) {
	ok := doctor.Result{Name: "kernel", Status: doctor.OK, Required: true}
	noTracefs := doctor.Result{Name: "tracefs", Status: doctor.Missing, Required: true}
	noBPF := doctor.Result{Name: "bpf", Status: doctor.Missing, Required: true, Privileges: true}
	noRunc := doctor.Result{Name: "runc/crun", Status: doctor.Missing}
	noDbg := doctor.Result{Name: "ld.so symbols", Status: doctor.Warn}
	warnPriv := doctor.Result{Name: "uprobe_multi", Status: doctor.Warn, Privileges: true}
	tests := []struct {
		name string
		in   []doctor.Result
		want int
	}{
		{"all OK", []doctor.Result{ok, ok}, exitOK},
		{"optional items missing", []doctor.Result{ok, noRunc, noDbg, warnPriv}, exitOK},
		{"tracefs missing", []doctor.Result{ok, noTracefs, noRunc}, exitFailure},
		{"bpf refused", []doctor.Result{ok, noBPF}, exitPrivileges},
		{"privileges win over the rest", []doctor.Result{noTracefs, noBPF}, exitPrivileges},
	}
	for _, tc := range tests {
		if got := doctorExitCode(tc.in); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
		err := doctorError(tc.in)
		if (err == nil) != (tc.want == exitOK) {
			t.Errorf("%s: doctorError = %v", tc.name, err)
		}
		var ee *exitError
		if err != nil && (!errors.As(err, &ee) || ee.code != tc.want) {
			t.Errorf("%s: doctorError carries %v, want code %d", tc.name, err, tc.want)
		}
	}
}

func TestWriteDoctorTable(t *testing.T) {
	var b bytes.Buffer
	doctor.WriteTable(&b, []doctor.Result{
		{Name: "kernel", Status: doctor.OK, Detail: "6.18.44 (BTF: /sys/kernel/btf/vmlinux)", Fix: "ignored when OK"},
		{Name: "runc/crun", Status: doctor.Missing, Detail: "neither found on PATH", Fix: "apt-get install runc (or use --sandbox process)"},
		{Name: "ld.so symbols", Status: doctor.Warn, Detail: "no debug file"},
	})
	want := "" +
		"OK       kernel         6.18.44 (BTF: /sys/kernel/btf/vmlinux)\n" +
		"MISSING  runc/crun      neither found on PATH — fix: apt-get install runc (or use --sandbox process)\n" +
		"WARN     ld.so symbols  no debug file\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// runDoctor runs the built binary and returns stdout, stderr and the exit code.
func runDoctor(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return stdout.String(), stderr.String(), code
}

// TestDoctorCLI runs the real binary: the table and the JSON agree, the exit
// code follows the results, and lines are true on this machine.
func TestDoctorCLI(t *testing.T) {
	bin := testutil.BuildInitprof(t)

	out, stderr, code := runDoctor(t, exec.Command(bin, "doctor", "--json"))
	var results []doctor.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("doctor --json is not a JSON array of results: %v\n%s", err, out)
	}
	// Every check, then what dead initprofs left behind (doctor.Leftovers).
	if len(results) != len(doctor.Checks())+1 {
		t.Fatalf("%d results, want %d (the checks and the leftovers line)", len(results), len(doctor.Checks())+1)
	}
	if want := doctorExitCode(results); code != want {
		t.Errorf("doctor --json exited %d, its results say %d (stderr %q)", code, want, stderr)
	}
	if code != exitOK && !strings.Contains(stderr, doctor.Failing(results)[0]) {
		t.Errorf("stderr %q does not name the missing %s", stderr, doctor.Failing(results)[0])
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if rel := unix.ByteSliceToString(u.Release[:]); !strings.Contains(results[0].Detail, rel) {
		t.Errorf("kernel line %q does not name %s", results[0].Detail, rel)
	}

	table, _, tcode := runDoctor(t, exec.Command(bin, "doctor"))
	if tcode != code {
		t.Errorf("table exit %d, JSON exit %d", tcode, code)
	}
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != len(results) {
		t.Fatalf("table has %d lines for %d results:\n%s", len(lines), len(results), table)
	}
	col := strings.Index(lines[0], results[0].Detail)
	for i, r := range results {
		// Every line: status, name, detail in aligned columns; a fix when not OK.
		if !strings.HasPrefix(lines[i], string(r.Status)+" ") || !strings.Contains(lines[i], " "+r.Name+" ") {
			t.Errorf("line %d %q does not match %s %s", i, lines[i], r.Status, r.Name)
		}
		if strings.Index(lines[i], r.Detail) != col {
			t.Errorf("line %d: detail not in the column at %d: %q", i, col, lines[i])
		}
		if r.Status != doctor.OK && !strings.HasSuffix(lines[i], " — fix: "+r.Fix) {
			t.Errorf("line %d %q does not end with its fix %q", i, lines[i], r.Fix)
		}
	}

	_, stderr, code = runDoctor(t, exec.Command(bin, "doctor", "extra"))
	if code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "extra") {
		t.Errorf("doctor extra: exit %d, stderr %q; want exit %d with one line naming the argument", code, stderr, exitBadInput)
	}
}

// TestDoctorUnprivileged runs the binary as nobody (needs root to switch):
// the BPF line must then be MISSING and the exit code exitPrivileges.
func TestDoctorUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	bin := testutil.BuildInitprof(t)
	// t.TempDir is 0700; nobody needs a directory it can enter.
	dir, err := os.MkdirTemp("", "initprof-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	nbin := filepath.Join(dir, "initprof")
	if err := os.WriteFile(nbin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", nbin, "doctor", "--json")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, stderr, code := runDoctor(t, cmd)
	var results []doctor.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("doctor --json as nobody: %v\nstdout %s\nstderr %s", err, out, stderr)
	}
	for _, r := range results {
		if r.Name == "bpf" && (r.Status != doctor.Missing || !r.Privileges || !strings.Contains(r.Fix, "setcap cap_bpf,cap_perfmon+ep")) {
			t.Errorf("as nobody, bpf is %+v; want MISSING with the setcap fix", r)
		}
	}
	if code != exitPrivileges {
		t.Errorf("as nobody, doctor exited %d, want %d (stderr %q)", code, exitPrivileges, stderr)
	}
}

// TestDoctorTracefsFix applies the printed tracefs fix in a private mount
// namespace (the host stays as it is) and checks that doctor then says OK:
// the fix it prints really fixes.
func TestDoctorTracefsFix(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireTool(t, "unshare")
	bin := testutil.BuildInitprof(t)
	fix := ""
	for _, r := range doctor.Run() {
		if r.Name == "tracefs" {
			fix = r.Fix
		}
	}
	if fix == "" {
		// Already mounted here (CI mounts it): unmount it inside the private
		// namespace first, so the fix is applied to a machine that needs it.
		fix = "mount -t tracefs nodev /sys/kernel/tracing"
	}
	if !strings.HasPrefix(fix, "mount ") {
		t.Skipf("the tracefs fix here is not a mount command: %q", fix)
	}
	out, stderr, _ := runDoctor(t, exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", "umount /sys/kernel/tracing 2>/dev/null; "+fix+" && exec "+bin+" doctor --json"))
	var results []doctor.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("after %q: %v\nstdout %s\nstderr %s", fix, err, out, stderr)
	}
	for _, r := range results {
		if r.Name == "tracefs" && r.Status != doctor.OK {
			t.Errorf("after %q, tracefs is still %s: %s", fix, r.Status, r.Detail)
		}
	}
}

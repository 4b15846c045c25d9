package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
)

// requireVM skips unless the arm64 microVM can run here: qemu, the cached
// arm64 kernel (make arm64-kernel), the arm64 samples and initprof-arm64.
func requireVM(t *testing.T) (bin string) {
	t.Helper()
	requireRunEnv(t)
	testutil.RequireTool(t, "qemu-system-aarch64")
	k, err := doctor.ARM64KernelPath()
	if err == nil {
		_, err = os.Stat(k)
	}
	if err != nil {
		t.Skipf("no arm64 kernel for the microVM (%v): run make arm64-kernel", err)
	}
	root := testutil.Root(t)
	for _, s := range []string{"cext-arm64", "goext-arm64"} {
		if _, err := os.Stat(filepath.Join(root, "build", "samples", s)); err != nil {
			t.Skipf("%s not built: run make arm64-samples", s)
		}
	}
	// initprof looks for initprof-arm64 next to itself.
	dir := t.TempDir()
	bin = filepath.Join(dir, "initprof")
	for _, b := range []struct{ out, arch string }{{bin, "amd64"}, {filepath.Join(dir, "initprof-arm64"), "arm64"}} {
		cmd := exec.Command("go", "build", "-o", b.out, "./cmd/initprof")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+b.arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build (%s): %v\n%s", b.arch, err, out)
		}
	}
	return bin
}

// TestRunARM64 profiles the arm64 C and Go samples in the microVM end to end
// (issue 8): every checkpoint, including ld-linux-aarch64.so.1's relocation
// checkpoints, the platform's Init Duration and critical path, and the
// emulated label.
func TestRunARM64(t *testing.T) {
	bin := requireVM(t)
	root := testutil.Root(t)
	out := t.TempDir()
	stdout, stderr, code := runInitprof(t, bin, "run", "--arch", "arm64", "-n", "2", "--out", out, "--flamegraph", "--sample-runs", "2",
		"--rootfs", filepath.Join(root, "build", "arm64-sysroot"),
		filepath.Join(root, "build", "samples", "cext-arm64"), filepath.Join(root, "build", "samples", "goext-arm64"))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "emulated — timings are not representative of Graviton") {
		t.Errorf("the report is not labelled emulated:\n%s", stdout)
	}
	if strings.Contains(stderr, "guest kernel crashed") {
		t.Logf("the guest kernel crashed and the run was retried in a fresh microVM:\n%s", stderr)
	}
	for _, name := range []string{"cpu.pb.gz", "flame.svg", "stacks.folded", "trace.json"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s did not come back from the VM: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(out, "stacks.folded")); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "_dl_relocate_object") {
				var c int
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &c)
				n += c
			}
		}
		t.Logf("%d arm64 samples under _dl_relocate_object", n)
		if n == 0 {
			head := string(b)
			if len(head) > 4000 {
				head = head[:4000]
			}
			t.Errorf("the arm64 samples show no _dl_relocate_object frame\nstderr:\n%s\nstacks.folded:\n%s", stderr, head)
		}
	}
	rep := readResults(t, out)
	if rep.InitDuration.N != 2 || rep.Critical.Leader == "" {
		t.Errorf("Init Duration n=%d, critical path leader %q", rep.InitDuration.N, rep.Critical.Leader)
	}
	// The guest kernel has FUSE built in: the default lambda storage serves
	// the extensions through lazyfs there, and each cold start fetches.
	for _, r := range rep.Runs {
		if r.Storage == nil || r.Storage.Chunks["/opt/extensions/goext-arm64"] == 0 {
			t.Errorf("run %d: no lambda storage account from the guest: %+v", r.Index, r.Storage)
		}
	}
	for _, r := range rep.Runs {
		for _, c := range []struct {
			proc string
			cks  []string
		}{
			{"cext-arm64", []string{profile.CkExec, profile.CkExecDone, profile.CkLdsoStart, profile.CkDepsLoaded, profile.CkRelocated,
				profile.CkEntry, profile.CkMain, profile.CkRegisterSent, profile.CkRegisterOK, profile.CkListenerBound,
				profile.CkSubscribeSent, profile.CkSubscribeOK, profile.CkNext}},
			{"goext-arm64", []string{profile.CkExec, profile.CkExecDone, profile.CkEntry, profile.CkMain, profile.CkRegisterSent,
				profile.CkRegisterOK, profile.CkListenerBound, profile.CkSubscribeSent, profile.CkSubscribeOK, profile.CkNext}},
		} {
			p := findProc(r, c.proc)
			if p == nil {
				t.Fatalf("run %d: no process %s", r.Index, c.proc)
			}
			for _, ck := range c.cks {
				if _, ok := p.Checkpoint(ck); !ok {
					t.Errorf("run %d: %s lacks %s (has %v)", r.Index, c.proc, ck, p.Checkpoints)
				}
			}
		}
	}
}

// TestRunARM64OCI runs the arm64 sample in a container inside the microVM,
// with Debian's arm64 runc and crun, on the guest's cgroup v2 (this host is
// v1) and an initramfs root (--no-pivot). Every run must hold Lambda's
// memory limit and CPU quota, read back from the guest's cgroup v2 files.
func TestRunARM64OCI(t *testing.T) {
	bin := requireVM(t)
	root := testutil.Root(t)
	sysroot := filepath.Join(root, "build", "arm64-sysroot")
	for _, rt := range []struct{ name, path string }{{"runc", "usr/sbin/runc"}, {"crun", "usr/bin/crun"}} {
		t.Run(rt.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(sysroot, rt.path)); err != nil {
				t.Skipf("no arm64 %s in %s: run make arm64-sysroot", rt.name, sysroot)
			}
			out := t.TempDir()
			const memMB = 512
			stdout, stderr, code := runInitprof(t, bin, "run", "--arch", "arm64", "--sandbox", "oci", "--oci-runtime", rt.name,
				"-n", "2", "--memory", fmt.Sprint(memMB), "--out", out, "--rootfs", sysroot, filepath.Join(root, "build", "samples", "cmini-arm64"))
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			rep := readResults(t, out)
			quota, period := container.CPUQuota(memMB)
			// Lambda's init CPU (2 vCPUs) until init ends, then the invoke quota.
			want := profile.Limits{Cgroup: "v2", MemoryBytes: memMB << 20, CPUQuotaUS: quota, CPUPeriodUS: int64(period), InitCPUQuotaUS: 2 * int64(period)}
			if len(rep.Runs) != 2 {
				t.Fatalf("%d runs, want 2", len(rep.Runs))
			}
			for _, r := range rep.Runs {
				if r.Sandbox == nil || !strings.Contains(r.Sandbox.Kind, rt.name) || !strings.Contains(r.Sandbox.Kind, "cgroup v2") {
					t.Errorf("run %d: sandbox %+v, want %s on cgroup v2", r.Index, r.Sandbox, rt.name)
					continue
				}
				var got profile.Limits
				if r.Sandbox.Limits != nil {
					got = *r.Sandbox.Limits
				}
				if got.SwitchMonoNs == 0 || got.SwitchErr != "" {
					t.Errorf("run %d: the invoke quota was not applied at the end of init: %+v", r.Index, got)
				}
				got.SwitchMonoNs = 0
				if got != want {
					t.Errorf("run %d: limits %+v, want %+v", r.Index, got, want)
				}
				p := findProc(r, "cmini-arm64")
				if p == nil {
					t.Fatalf("run %d: no process cmini-arm64", r.Index)
				}
				for _, ck := range []string{profile.CkRelocated, profile.CkMain, profile.CkNext} {
					if _, ok := p.Checkpoint(ck); !ok {
						t.Errorf("run %d: lacks %s (has %v)", r.Index, ck, p.Checkpoints)
					}
				}
			}
			if !strings.Contains(stdout, "limits read back from cgroup v2: memory 512 MiB") {
				t.Errorf("the report does not state the limits:\n%s", stdout)
			}
		})
	}
	_, stderr, code := runInitprof(t, bin, "run", "--arch", "arm64", "--sandbox", "oci", "--oci-runtime", "youki",
		"--rootfs", sysroot, filepath.Join(root, "build", "samples", "cmini-arm64"))
	if code != exitBadInput || !strings.Contains(stderr, "use runc (the default) or crun") {
		t.Errorf("--oci-runtime youki in the microVM: exit %d, %s", code, stderr)
	}
}

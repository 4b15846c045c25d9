package probes

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/internal/doctor"
	"github.com/initprof/initprof/internal/testutil"
)

// traceLine matches one event line of `initprof trace`: time, fault delta, pid/tid, the rest.
var traceLine = regexp.MustCompile(`^\s*(-?[0-9.]+) µs\s+\+\s*(\d+) flt\s+(\d+)/(\d+) (.*)$`)

// TestARM64 runs `initprof trace` in the arm64 microVM (qemu TCG, Debian's
// arm64 kernel) over the arm64 samples: the arm64 BPF object loads, pt_regs
// arguments are read right (link_map names), page faults are counted through
// the perf-event fallback, and Go's main.main is found.
func TestARM64(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-aarch64")
	if testing.Short() {
		t.Skip("boots a VM (about 5 s per run)")
	}
	kernel, err := doctor.ARM64KernelPath()
	if err != nil {
		t.Skipf("arm64 kernel: %v", err)
	}
	if _, err := os.Stat(kernel); err != nil {
		t.Skipf("no arm64 kernel at %s (make arm64-kernel)", kernel)
	}
	root := testutil.Root(t)
	sysroot := filepath.Join(root, "build", "arm64-sysroot")
	for _, s := range []string{"cmini-arm64", "goext-arm64"} {
		if _, err := os.Stat(filepath.Join(root, "build", "samples", s)); err != nil {
			t.Skipf("no %s (make -C testdata/samples arm64)", s)
		}
	}
	initprof := filepath.Join(t.TempDir(), "initprof-arm64")
	build := exec.Command("go", "build", "-trimpath", "-o", initprof, "./cmd/initprof")
	build.Dir = root
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building arm64 initprof: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		sample string
		want   []string // event prefixes, in order
	}{
		{"cmini-arm64", []string{"exec /opt/ext", "exec_done", "uprobe ldso_start", "uprobe dl_main", "uprobe deps_start",
			"uretprobe deps_loaded", "uprobe relocate /lib/aarch64-linux-gnu/libc.so.6", "uretprobe relocated",
			"uprobe relocate /lib/ld-linux-aarch64.so.1", "uprobe dl_start_user", "uprobe dl_init", "uprobe entry", "uprobe main", "connect", "exit"}},
		{"goext-arm64", []string{"exec /opt/ext", "exec_done", "uprobe entry", "uprobe main.main", "connect", "exit"}},
	} {
		t.Run(tc.sample, func(t *testing.T) {
			bin := filepath.Join(root, "build", "samples", tc.sample)
			files, err := vm.ClosureFiles(bin, "/opt/ext", sysroot)
			if err != nil {
				t.Skipf("arm64 closure of %s: %v", tc.sample, err)
			}
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			// The platform address refuses connections: the run ends at its first connect.
			res, err := vm.Run(ctx, vm.Config{
				Kernel: kernel, Initprof: initprof, Files: files,
				Argv:   []string{"trace", "--", "/opt/ext"},
				Env:    []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:1", "GODEBUG=asyncpreemptoff=1"},
				Stdout: "/out/trace.txt",
			}, out)
			if err != nil {
				t.Fatalf("VM: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(out, "trace.txt"))
			if err != nil {
				t.Fatalf("no trace output (exit %d): %v\n%s", res.ExitCode, err, res.ConsoleTail)
			}
			var pid string
			var faults int
			var got []string
			for _, l := range strings.Split(string(b), "\n") {
				m := traceLine.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				if strings.HasPrefix(m[5], "exec /opt/ext") {
					pid = m[3]
				}
				if pid != "" && m[3] == pid {
					got = append(got, m[5])
					n, _ := strconv.Atoi(m[2])
					faults += n
				}
			}
			i := 0
			for _, ev := range got {
				if i < len(tc.want) && strings.HasPrefix(ev, tc.want[i]) {
					i++
				}
			}
			if i < len(tc.want) {
				t.Errorf("missing or out of order: %q\ntrace:\n%s", tc.want[i], b)
			}
			if faults == 0 {
				t.Errorf("no page faults counted on arm64:\n%s", b)
			}
		})
	}
}

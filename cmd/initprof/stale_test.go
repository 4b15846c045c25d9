package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
)

// debris lists every resource initprof names after its owner: containers
// (per runtime), cgroup directories, sandbox directories and VM images.
func debris(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, rt := range []string{"runc", "crun"} {
		p, err := exec.LookPath(rt)
		if err != nil {
			continue
		}
		b, err := exec.Command(p, "list", "--format", "json").Output()
		if err != nil {
			continue
		}
		var list []struct {
			ID string `json:"id"`
		}
		if s := strings.TrimSpace(string(b)); s != "" && s != "null" {
			if err := json.Unmarshal(b, &list); err != nil {
				t.Fatalf("%s list: %v\n%s", rt, err, b)
			}
		}
		for _, c := range list {
			if strings.HasPrefix(c.ID, "initprof-") {
				out[rt+" container "+c.ID] = true
			}
		}
	}
	globs := []string{"/sys/fs/cgroup/initprof-*", "/sys/fs/cgroup/*/initprof-*",
		"/var/tmp/initprof-sandbox-*", filepath.Join(os.TempDir(), "initprof-sandbox-*"),
		filepath.Join(os.TempDir(), "initprof-vm-*.cpio.gz")}
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		for _, p := range m {
			out[p] = true
		}
	}
	return out
}

// ownerRE finds the owner pid in a resource's name.
var ownerRE = regexp.MustCompile(`initprof-(?:sandbox-|vm-)?(\d+)-`)

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// TestSIGKILLLeavesNothingBehind kills `initprof run` with SIGKILL in the
// middle of its cold starts, runs it once more, and checks that the second
// run removed every container, cgroup and sandbox directory the first left.
func TestSIGKILLLeavesNothingBehind(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := exec.LookPath("crun"); err != nil {
			t.Skip("needs runc or crun on PATH (install it with .ci/deps)")
		}
	}
	bin := testutil.BuildInitprof(t)
	ext := testutil.Sample(t, "cext")
	before := debris(t)
	tmp := t.TempDir()

	var stderr bytes.Buffer
	victim := exec.Command(bin, "run", "-n", "20", "--out", filepath.Join(tmp, "killed"), ext)
	victim.Stderr = &stderr
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	pid := victim.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- victim.Wait() }()

	// Mid-run: a container of the victim exists (its cgroup directory does).
	mine := "initprof-" + strconv.Itoa(pid) + "-"
	found := false
	for deadline := time.Now().Add(5 * time.Minute); !found && time.Now().Before(deadline); {
		select {
		case err := <-exited:
			t.Fatalf("initprof run exited (%v) before a container appeared:\n%s", err, stderr.String())
		default:
		}
		for _, g := range []string{"/sys/fs/cgroup/" + mine + "*", "/sys/fs/cgroup/*/" + mine + "*"} {
			if m, _ := filepath.Glob(g); len(m) > 0 {
				found = true
			}
		}
		if !found {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if !found {
		victim.Process.Kill()
		t.Fatalf("no container of pid %d appeared:\n%s", pid, stderr.String())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited

	left := debris(t)
	var new []string
	for k := range left {
		if !before[k] {
			new = append(new, k)
		}
	}
	sort.Strings(new)
	t.Logf("after SIGKILL of pid %d: %d new resources: %s", pid, len(new), strings.Join(new, ", "))
	sandboxLeft := false
	for _, k := range new {
		if strings.Contains(k, "initprof-sandbox-"+strconv.Itoa(pid)+"-") {
			sandboxLeft = true
		}
	}
	if !sandboxLeft {
		t.Errorf("the SIGKILLed run left no sandbox directory named after pid %d (%v): the test did not kill it mid-run, or the names lost the owner", pid, new)
	}

	next := exec.Command(bin, "run", "-n", "1", "--out", filepath.Join(tmp, "next"), ext)
	out, err := next.CombinedOutput()
	if err != nil {
		t.Fatalf("the next run failed: %v\n%s", err, out)
	}
	if len(new) > 0 && !strings.Contains(string(out), "removed what dead initprof processes left behind") {
		t.Errorf("the next run did not say what it removed:\n%s", out)
	}
	var still []string
	for _, k := range keys(debris(t)) {
		if before[k] {
			continue
		}
		if m := ownerRE.FindStringSubmatch(k); m != nil {
			if owner, _ := strconv.Atoi(m[1]); owner != pid && syscall.Kill(owner, 0) == nil {
				t.Logf("ignored: %s belongs to pid %d, alive (another initprof on this machine)", k, owner)
				continue
			}
		}
		still = append(still, k)
	}
	if len(still) > 0 {
		t.Errorf("left behind after the next run: %s\nnext run said:\n%s", strings.Join(still, "\n  "), out)
	}
}

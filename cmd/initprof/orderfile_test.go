package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/orderfile"
)

// cminiFS builds the cmini sample (libc only; its hot_ctor constructor
// linked in) with function sections and lld, plus extra link flags.
func cminiFS(t *testing.T, out string, ldflags ...string) (string, []byte) {
	t.Helper()
	for _, tool := range []string{"gcc", "ld.lld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: no %s (apt-get install build-essential lld; .ci/deps installs both)", tool)
		}
	}
	src := "../../testdata/samples/cext/"
	args := append([]string{"-O2", "-g", "-Wall", "-pthread", "-ffunction-sections", "-fdata-sections", "-fuse-ld=lld", "-Wl,-z,now",
		"-o", out, src + "cext.c", src + "http_sock.c", src + "hot.c"}, ldflags...)
	msg, err := exec.Command("gcc", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, msg)
	}
	return out, msg
}

// TestOrderfileC: for a C extension built with -ffunction-sections,
// `initprof orderfile --format lld` names its constructor and main and only
// symbols it defines; lld relinks with it without a warning; compare of the
// relinked build against the original reports pages and chunks touched.
func TestOrderfileC(t *testing.T) {
	requireRunEnv(t)
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	orig, _ := cminiFS(t, filepath.Join(dir, "cmini"))
	order := filepath.Join(dir, "order.txt")
	stdout, stderr, code := runInitprof(t, bin, "orderfile", "-n", "3", "--out", filepath.Join(dir, "out"), "--format", "lld", "-o", order, orig)
	if code != exitOK {
		t.Fatalf("orderfile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "symbols in first-touch order") || !strings.Contains(stdout, "--symbol-ordering-file="+order) {
		t.Errorf("orderfile's summary lacks the count or how to apply it:\n%s", stdout)
	}
	b, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := orderfile.ReadSymbols(orig)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	has := map[string]bool{}
	for _, l := range lines {
		has[l] = true
		if _, ok := syms.Defined[l]; !ok {
			t.Errorf("%s is in the orderfile but not defined by the binary", l)
		}
	}
	for _, want := range []string{"hot_ctor", "main"} {
		if !has[want] {
			t.Errorf("the orderfile lacks %s:\n%s", want, b)
		}
	}
	relinked, msg := cminiFS(t, filepath.Join(dir, "cmini-ordered"), "-Wl,--symbol-ordering-file="+order, "-Wl,--warn-symbol-ordering")
	if len(strings.TrimSpace(string(msg))) > 0 {
		t.Errorf("lld warned relinking with the orderfile:\n%s", msg)
	}
	cmp := filepath.Join(dir, "cmp")
	stdout, stderr, code = runInitprof(t, bin, "compare", "-n", "3", "--out", cmp, "orig="+orig, "ordered="+relinked)
	if code != exitOK {
		t.Fatalf("compare: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"pages touched (exec→next)", "chunks touched (exec→next)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("compare lacks %q:\n%s", want, stdout)
		}
	}
}

// TestOrderfileRefuses: a Go binary cannot be reordered and a stripped one
// names nothing; both are bad input before any cold start.
func TestOrderfileRefuses(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	stripped := filepath.Join(dir, "stripped")
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("SKIP: no gcc")
	}
	if msg, err := exec.Command("gcc", "-O2", "-s", "-o", stripped, "../../profile/orderfile/testdata/ordered.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, msg)
	}
	for _, tc := range []struct {
		name string
		ext  string
		want string
	}{
		{"go", bin, "Go linker"},
		{"stripped", stripped, "--symbols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runInitprof(t, bin, "orderfile", "-o", filepath.Join(dir, tc.name+".txt"), tc.ext)
			if code != exitBadInput || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitBadInput, tc.want)
			}
		})
	}
}

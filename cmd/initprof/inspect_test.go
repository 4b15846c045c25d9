package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/internal/testutil"
)

const inspectC = `#include <stdio.h>
static const char *s[] = {"a", "b", "c"};
int main(int argc, char **argv) { puts(s[argc % 3]); return 0; }
`

// buildC compiles inspectC with each flag set, returning the paths.
func buildC(t *testing.T, flags map[string][]string) map[string]string {
	t.Helper()
	testutil.RequireTool(t, "gcc")
	if runtime.GOARCH != "amd64" {
		t.Skip("asserts x86_64 facts")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "x.c")
	if err := os.WriteFile(src, []byte(inspectC), 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, args := range flags {
		p := filepath.Join(dir, name)
		if b, err := exec.Command("gcc", append([]string{"-o", p, src}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
		out[name] = p
	}
	return out
}

func TestInspectJSON(t *testing.T) {
	bins := buildC(t, map[string][]string{"lazy": {"-Wl,-z,lazy"}, "now": {"-Wl,-z,now"}})
	var stdout, stderr bytes.Buffer
	if err := runInspect(&stdout, &stderr, []string{bins["lazy"], bins["now"]}, true, ""); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, stdout.String())
	}
	if len(got) != 2 {
		t.Fatalf("got %d objects, want 2", len(got))
	}
	for k, want := range []bool{false, true} {
		o := got[k]
		if o["schema"] != elfinfo.Schema {
			t.Errorf("schema = %v", o["schema"])
		}
		if o["bind_now"] != want {
			t.Errorf("%v: bind_now = %v, want %v", o["path"], o["bind_now"], want)
		}
		for _, key := range []string{"arch", "linkage", "relro", "relocs", "reloc_pages", "segments", "closure", "toolchain", "file_size"} {
			if _, ok := o[key]; !ok {
				t.Errorf("%v: key %q missing", o["path"], key)
			}
		}
		cc, _ := o["closure_cost"].(map[string]any)
		if r, _ := cc["relocs"].(map[string]any); r == nil || r["total"].(float64) <= 0 {
			t.Errorf("closure_cost has no relocations: %v", o["closure_cost"])
		}
		c, _ := o["closure"].(map[string]any)
		if libs, _ := c["libs"].([]any); len(libs) == 0 {
			t.Errorf("closure has no libs: %v", o["closure"])
		}
	}
}

func TestInspectTable(t *testing.T) {
	bins := buildC(t, map[string][]string{"plain": {"-Wl,-z,nopack-relative-relocs"}, "relr": {"-Wl,-z,pack-relative-relocs"}})
	a, err := elfinfo.Open(bins["plain"])
	if err != nil {
		t.Fatal(err)
	}
	b, err := elfinfo.Open(bins["relr"])
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runInspect(&stdout, &stderr, []string{bins["plain"], bins["relr"]}, false, ""); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		// Cells are separated by two or more spaces.
		var cells []string
		for _, c := range strings.Split(line, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		if len(cells) >= 3 {
			rows[cells[0]] = cells[1:]
		}
	}
	check := func(row string, want ...string) {
		t.Helper()
		got := rows[row]
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %q = %q, want %q\n%s", row, got, want, out)
		}
	}
	check("DT_RELR", "no", "yes")
	check("linkage", "dynamic-pie", "dynamic-pie")
	check("of which RELR", "0", elfinfo.FormatDiff(int64(b.Relocs.RelrRelative), 0))
	check("relocs RELATIVE", itoa(a.Relocs.Relative), elfinfo.FormatDiff(int64(b.Relocs.Relative), int64(a.Relocs.Relative)))
	check("file size", itoa(int(a.FileSize)), elfinfo.FormatDiff(b.FileSize, a.FileSize))
	check("glibc required", "2.34", "2.36")
	if !strings.Contains(out, "warning: DT_RELR needs glibc >= 2.36") {
		t.Errorf("no DT_RELR warning in\n%s", out)
	}
	if !strings.Contains(out, "libc.so.6") {
		t.Errorf("closure not listed in\n%s", out)
	}
}

func itoa(n int) string { return elfinfo.FormatDiff(int64(n), int64(n)) }

func TestFormatDiff(t *testing.T) {
	for _, tc := range []struct {
		v, base int64
		want    string
	}{
		{1333, 1789, "1333 (-456)"},
		{10, 3, "10 (+7)"},
		{5, 5, "5"},
	} {
		if got := elfinfo.FormatDiff(tc.v, tc.base); got != tc.want {
			t.Errorf("elfinfo.FormatDiff(%d, %d) = %q, want %q", tc.v, tc.base, got, tc.want)
		}
	}
}

// TestInspectBadInput: each bad file gets one line naming it, the good ones are
// still printed, and the exit status is exitBadInput.
func TestInspectBadInput(t *testing.T) {
	bins := buildC(t, map[string][]string{"good": nil})
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("#!/bin/bash\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	missing := filepath.Join(dir, "missing")
	elf32 := filepath.Join(testutil.Root(t), "elfinfo", "testdata", "elf32-i386.bin")

	var stdout, stderr bytes.Buffer
	args := []string{bins["good"], text, empty, dir, missing, elf32}
	err := runInspect(&stdout, &stderr, args, true, "")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitBadInput {
		t.Fatalf("err = %v, want exit code %d", err, exitBadInput)
	}
	var got []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got) != 1 || got[0]["path"] != bins["good"] {
		t.Errorf("stdout should hold the one good file: %v\n%s", err, stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != len(args)-1 {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(args)-1, stderr.String())
	}
	for k, want := range []string{`not an ELF file (starts with "#!/bi")`, "empty file", "is a directory", "no such file", "32-bit ELF"} {
		p := args[k+1]
		if !strings.HasPrefix(lines[k], "initprof inspect: "+p+": ") || !strings.Contains(lines[k], want) {
			t.Errorf("line %q, want %q about %s", lines[k], want, p)
		}
	}

	// Through the dispatcher: exit codes.
	if code := run([]string{"inspect", text}); code != exitBadInput {
		t.Errorf("inspect TEXT exit %d, want %d", code, exitBadInput)
	}
	if code := run([]string{"inspect"}); code != exitBadInput {
		t.Errorf("inspect with no args exit %d, want %d", code, exitBadInput)
	}
	if code := run([]string{"inspect", "--rootfs", missing, bins["good"]}); code != exitBadInput {
		t.Errorf("inspect --rootfs MISSING exit %d, want %d", code, exitBadInput)
	}
	if code := run([]string{"inspect", "--help"}); code != exitOK {
		t.Errorf("inspect --help exit %d, want 0", code)
	}
	if code := run([]string{"inspect", bins["good"]}); code != exitOK {
		t.Errorf("inspect GOOD exit %d, want 0", code)
	}
}

package vm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cpioEntry is one entry read back by readCPIO, the test's own newc reader
// (written from the format description, independent of the writer).
type cpioEntry struct {
	name         string
	mode         uint32
	data         []byte
	rmaj, rmin   uint32
	nlink, inode uint32
}

func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatalf("offset %d: field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("archive ends at %d without a trailer", off)
		}
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("offset %d: magic %q, want 070701", off, b[off:off+6])
		}
		e := cpioEntry{inode: field(0), mode: field(1), nlink: field(4), rmaj: field(9), rmin: field(10)}
		size, namesize := int(field(6)), int(field(11))
		nameEnd := off + 110 + namesize
		if b[nameEnd-1] != 0 {
			t.Fatalf("offset %d: name not NUL-terminated", off)
		}
		e.name = string(b[off+110 : nameEnd-1])
		dataOff := align(nameEnd)
		e.data = b[dataOff : dataOff+size]
		off = align(dataOff + size)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIORoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	steps := []error{
		w.File("/init", 0o755, []byte("#!/bin/true\n")),
		w.CharDev("/dev/console", 0o600, 5, 1),
		w.File("/opt/extensions/goext", 0o755, big),
		w.File("/opt/extensions/x", 0o644, nil),                          // empty file
		w.File("/lib/aarch64-linux-gnu/libc.so.6", 0o755, []byte("abc")), // 3 bytes: data padding
		w.Symlink("/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu/ld-linux-aarch64.so.1"),
		w.Dir("/proc", 0o555),
		w.Dir("/proc", 0o555), // twice: written once
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := readCPIO(t, buf.Bytes())
	var names []string
	byName := map[string]cpioEntry{}
	inodes := map[uint32]bool{}
	for _, e := range got {
		names = append(names, e.name)
		if _, dup := byName[e.name]; dup {
			t.Errorf("%s written twice", e.name)
		}
		byName[e.name] = e
		if inodes[e.inode] {
			t.Errorf("%s reuses inode %d (the kernel would hard-link it)", e.name, e.inode)
		}
		inodes[e.inode] = true
	}
	want := "init dev dev/console opt opt/extensions opt/extensions/goext opt/extensions/x lib lib/aarch64-linux-gnu lib/aarch64-linux-gnu/libc.so.6 lib/ld-linux-aarch64.so.1 proc"
	if strings.Join(names, " ") != want {
		t.Errorf("entries:\n got %s\nwant %s", strings.Join(names, " "), want)
	}
	checks := []struct {
		name string
		mode uint32
		data []byte
	}{
		{"init", cpioRegular | 0o755, []byte("#!/bin/true\n")},
		{"dev", cpioDir | 0o755, nil},
		{"opt/extensions/goext", cpioRegular | 0o755, big},
		{"opt/extensions/x", cpioRegular | 0o644, nil},
		{"lib/aarch64-linux-gnu/libc.so.6", cpioRegular | 0o755, []byte("abc")},
		{"lib/ld-linux-aarch64.so.1", cpioSymlink | 0o777, []byte("aarch64-linux-gnu/ld-linux-aarch64.so.1")},
		{"proc", cpioDir | 0o555, nil},
	}
	for _, c := range checks {
		e := byName[c.name]
		if e.mode != c.mode || !bytes.Equal(e.data, c.data) {
			t.Errorf("%s: mode %o, %d bytes; want mode %o, %d bytes", c.name, e.mode, len(e.data), c.mode, len(c.data))
		}
	}
	if c := byName["dev/console"]; c.mode != cpioCharDev|0o600 || c.rmaj != 5 || c.rmin != 1 {
		t.Errorf("dev/console: mode %o rdev %d:%d, want char device 5:1", c.mode, c.rmaj, c.rmin)
	}

	// The system's cpio, when installed, must list the same entries.
	if p, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command(p, "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio -t: %v", err)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != want {
			t.Errorf("cpio -t lists:\n%s\nwant %s", got, want)
		}
	} else {
		t.Log("cpio not installed: checked with the test's own reader only")
	}
}

func TestCPIOBadNames(t *testing.T) {
	for _, name := range []string{"", "/", "a\nb", "x\x00y", "/.."} {
		w := newCPIOWriter(io.Discard)
		if err := w.File(name, 0o644, nil); err == nil {
			t.Errorf("File(%q): no error", name)
		}
	}
	// Relative and unclean names are made absolute and cleaned, not refused.
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	if err := w.File("a/../b//c", 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got := readCPIO(t, buf.Bytes())
	if s := fmt.Sprint(len(got), " ", got[len(got)-1].name); s != "2 b/c" {
		t.Errorf("got %s, want b and b/c", s)
	}
}

// TestInitramfsContents checks what the guest will find, without booting it.
func TestInitramfsContents(t *testing.T) {
	dir := t.TempDir()
	initprof := filepath.Join(dir, "initprof")
	ext := filepath.Join(dir, "ext")
	os.WriteFile(initprof, []byte("\x7fELF fake initprof"), 0o755)
	os.WriteFile(ext, []byte("\x7fELF fake extension"), 0o644)
	cfg := Config{Initprof: initprof, Argv: []string{"platform", "--extensions", "/opt/extensions"},
		Env: []string{"A=b"}, OutDir: "/out", Stdout: "/out/stdout.txt",
		Files: []File{
			{GuestPath: "/opt/extensions/ext", HostPath: ext},
			{GuestPath: "/lib/ld-linux-aarch64.so.1", HostPath: ext, Mode: 0o700},
			{GuestPath: "/lib/../lib/ld-linux-aarch64.so.1", HostPath: initprof}, // same path twice: first wins
		}}
	var z bytes.Buffer
	if err := writeInitramfs(&z, cfg); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&z)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]cpioEntry{}
	for _, e := range readCPIO(t, raw) {
		if _, dup := entries[e.name]; dup {
			t.Errorf("%s twice", e.name)
		}
		entries[e.name] = e
	}
	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"init", cpioRegular | 0o755, "\x7fELF fake initprof"},
		{"opt/extensions/ext", cpioRegular | 0o755, "\x7fELF fake extension"}, // ELF: executable
		{"lib/ld-linux-aarch64.so.1", cpioRegular | 0o700, "\x7fELF fake extension"},
		{"dev/console", cpioCharDev | 0o600, ""},
		{"proc", cpioDir | 0o755, ""},
		{"sys", cpioDir | 0o755, ""},
		{"tmp", cpioDir | 0o755, ""},
	}
	for _, w := range want {
		e, ok := entries[w.name]
		if !ok || e.mode != w.mode || string(e.data) != w.data {
			t.Errorf("%s: present %v, mode %o, data %q; want mode %o, data %q", w.name, ok, e.mode, e.data, w.mode, w.data)
		}
	}
	var j job
	if err := json.Unmarshal(entries[strings.TrimPrefix(jobPath, "/")].data, &j); err != nil {
		t.Fatalf("job: %v", err)
	}
	if fmt.Sprint(j) != fmt.Sprint(job{Argv: cfg.Argv, Env: cfg.Env, OutDir: "/out", Stdout: "/out/stdout.txt"}) {
		t.Errorf("job %+v does not match the config", j)
	}
}

package vm

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
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

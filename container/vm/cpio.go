package vm

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes the "newc" (SVR4, no CRC) cpio format, the only one the
// kernel's initramfs unpacker reads (Documentation/driver-api/early-userspace/
// buffer-format.rst). It is written here rather than shelled out to cpio(1) so
// that building an initramfs needs no tool on the host and no files on disk.
//
// Each entry is a 110-byte ASCII header, the NUL-terminated name, padding to 4
// bytes, the data, padding to 4 bytes. The archive ends with "TRAILER!!!".
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool // directories already written, so parents are written once
	err  error
}

// File type bits of c_mode (same as st_mode).
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{".": true, "": true}}
}

// cleanName turns an absolute guest path into the archive's relative name.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "\x00\n") {
		return "", fmt.Errorf("initramfs: bad path %q", name)
	}
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" {
		return "", fmt.Errorf("initramfs: path %q names the root directory", name)
	}
	return n, nil
}

func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	// magic ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	_, c.err = io.WriteString(c.w, hdr+name+"\x00"+pad4(len(hdr)+len(name)+1))
}

func (c *cpioWriter) data(b []byte) {
	if c.err != nil {
		return
	}
	if _, c.err = c.w.Write(b); c.err == nil {
		_, c.err = io.WriteString(c.w, pad4(len(b)))
	}
}

func pad4(n int) string { return strings.Repeat("\x00", (4-n%4)%4) }

// parents writes every missing ancestor directory of name (mode 0755).
func (c *cpioWriter) parents(name string) {
	d := path.Dir(name)
	if c.dirs[d] {
		return
	}
	c.parents(d)
	c.dirs[d] = true
	c.header(d, cpioDir|0o755, 0, 0, 0)
}

// Dir writes a directory (and its parents).
func (c *cpioWriter) Dir(name string, perm uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	if !c.dirs[n] {
		c.parents(n)
		c.dirs[n] = true
		c.header(n, cpioDir|perm&0o7777, 0, 0, 0)
	}
	return c.err
}

// File writes a regular file with its contents (and its parent directories).
func (c *cpioWriter) File(name string, perm uint32, contents []byte) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, cpioRegular|perm&0o7777, len(contents), 0, 0)
	c.data(contents)
	return c.err
}

// Symlink writes a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, cpioSymlink|0o777, len(target), 0, 0)
	c.data([]byte(target))
	return c.err
}

// CharDev writes a character device node, e.g. /dev/console (5, 1), which the
// kernel opens as init's stdin/stdout/stderr before devtmpfs is mounted.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.parents(n)
	c.header(n, cpioCharDev|perm&0o7777, 0, major, minor)
	return c.err
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}

package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink chains while materializing a path, like the
// kernel's ELOOP limit, so a cycle in a user rootfs is an error, not a hang.
const maxSymlinks = 40

// tree builds a root filesystem directory by copying files out of a source
// root ("/" for the host, or a user rootfs) at the same inside paths, and
// recreating every symlink met on the way. The loader inside then walks the
// same path (e.g. /lib64 -> usr/lib64, ld-linux-x86-64.so.2 -> ../lib/...)
// as it does on the source, so its open() calls are the real ones.
type tree struct {
	src   string // source root; "/" for the host
	dst   string // rootfs directory being built; "" resolves only (dry run)
	files map[string]bool
	// from is the host file each copied rootfs file came from, so that two
	// different files wanted at one path are an error, not a silent pick.
	from map[string]string
}

func newTree(src, dst string) *tree {
	return &tree{src: src, dst: dst, files: map[string]bool{}, from: map[string]string{}}
}

// hostPath is where an inside path of the source lives on the host.
func (t *tree) hostPath(inside string) string {
	return filepath.Join(t.src, inside)
}

// materialize makes inside (an absolute path in the source root) exist in the
// rootfs with the same directories, symlinks and file contents. It returns the
// host path of the regular file finally copied.
func (t *tree) materialize(inside string) (string, error) {
	return t.walk(path.Clean("/"+inside), 0)
}

func (t *tree) walk(inside string, depth int) (string, error) {
	if depth > maxSymlinks {
		return "", fmt.Errorf("%s: too many levels of symbolic links in %s", inside, t.src)
	}
	parts := strings.Split(strings.TrimPrefix(inside, "/"), "/")
	cur := "/"
	for i, p := range parts {
		next := path.Join(cur, p)
		last := i == len(parts)-1
		st, err := os.Lstat(t.hostPath(next))
		if err != nil {
			return "", fmt.Errorf("%s: %v", next, errors.Unwrap(err))
		}
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(t.hostPath(next))
			if err != nil {
				return "", err
			}
			if err := t.symlink(next, target); err != nil {
				return "", err
			}
			resolved := target
			if !path.IsAbs(target) {
				resolved = path.Join(cur, target)
			}
			rest := path.Join(append([]string{resolved}, parts[i+1:]...)...)
			return t.walk(path.Clean("/"+rest), depth+1)
		case st.IsDir():
			if last {
				return "", fmt.Errorf("%s is a directory, not a file", next)
			}
			if t.dst == "" {
				break
			}
			if err := os.MkdirAll(filepath.Join(t.dst, next), 0o755); err != nil {
				return "", err
			}
		case st.Mode().IsRegular():
			if !last {
				return "", fmt.Errorf("%s is a file, not a directory", next)
			}
			if err := t.copyFile(t.hostPath(next), next, st.Mode().Perm()); err != nil {
				return "", err
			}
			return t.hostPath(next), nil
		default:
			return "", fmt.Errorf("%s is not a regular file, directory or symlink", next)
		}
		cur = next
	}
	return "", fmt.Errorf("%s: empty path", inside)
}

// symlink recreates a source symlink, accepting one that already matches.
func (t *tree) symlink(inside, target string) error {
	at := filepath.Join(t.dst, inside)
	if t.dst == "" {
		return nil
	}
	if old, err := os.Readlink(at); err == nil {
		if old == target {
			return nil
		}
		return fmt.Errorf("rootfs %s: symlink to %s already exists, want %s", inside, old, target)
	}
	if t.dst == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, at)
}

// copyFile copies a regular file into the rootfs at inside. Copying (not
// hard-linking) keeps the sandbox's pages separate from the host's: evicting
// them cannot slow the host, and a host process mapping the original cannot
// pin them in the cache.
func (t *tree) copyFile(from, inside string, mode os.FileMode) error {
	if t.dst == "" {
		t.files[from] = true // dry run: record the host file the loader reads
		return nil
	}
	to := filepath.Join(t.dst, inside)
	if from == to {
		// Already in place: an archive unpacked into the rootfs itself.
		t.files[to] = true
		return nil
	}
	if t.files[to] {
		if prev := t.from[to]; prev != from && !sameContent(prev, from) {
			return fmt.Errorf("%s is wanted from both %s and %s, which differ", inside, prev, from)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := copyRegular(from, to, mode); err != nil {
		return err
	}
	t.files[to] = true
	t.from[to] = from
	return nil
}

// sameContent reports whether two files have the same bytes.
func sameContent(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}

// place copies a host file to an inside path that differs from its source
// (an extension going to /opt/extensions/NAME).
func (t *tree) place(from, inside string, mode os.FileMode) error {
	return t.copyFile(from, path.Clean("/"+inside), mode)
}

// record notes files already written into the rootfs (an unpacked image or
// layer): they are evicted with the rest, and never copied onto again.
func (t *tree) record(files []string) {
	for _, f := range files {
		t.files[f] = true
		t.from[f] = f
	}
}

// Files returns the host paths of every regular file copied (for a dry run,
// of every file that would be), sorted.
func (t *tree) Files() []string {
	out := make([]string, 0, len(t.files))
	for f := range t.files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func copyRegular(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o400)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %v", from, err)
	}
	// Flush now so a later eviction finds clean pages (dirty pages can't be
	// dropped) and the first cold run does not pay for writeback.
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, mode|0o400)
}

// writeFile creates a small generated file (/etc/hosts...) in the rootfs.
func writeFile(root, inside, content string, mode os.FileMode) error {
	p := filepath.Join(root, inside)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}

// isTmpfs reports whether dir lives on a tmpfs (or ramfs), where files can
// never leave memory.
func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// etcHosts is Lambda's view of itself: `sandbox` and `sandbox.localdomain`
// are the environment, which is where telemetry destinations point.
const etcHosts = `127.0.0.1	localhost
127.0.0.1	sandbox.localdomain sandbox
::1	localhost ip6-localhost ip6-loopback
`

// etcPasswd gives uid 0 a name, which some libraries look up at start.
const etcPasswd = "root:x:0:0:root:/tmp:/sbin/nologin\n"
const etcGroup = "root:x:0:\n"

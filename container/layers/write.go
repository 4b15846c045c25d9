package layers

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// writer lays files out under a root directory as if root were "/": a
// symlink met on the way (one the archive made, such as lib -> usr/lib) is
// followed inside root, absolute targets restarting at root and ".."
// stopping there, so no archive can make it write anywhere else. The last
// component is never followed: a later entry replaces whatever an earlier
// one left at its path, as unzip -o and an image's layer order do.
type writer struct {
	root  string
	files map[string]bool        // host paths of regular files written
	dirs  map[string]fs.FileMode // host dir -> the mode it ends with
	// limit, when positive, bounds the bytes written (an image's size
	// quota); over is the error to return past it.
	limit, written int64
	over           func(int64) error
}

func newWriter(root string) *writer {
	return &writer{root: root, files: map[string]bool{}, dirs: map[string]fs.FileMode{}}
}

const maxLinks = 40

// parent returns the host path of rel's directory, made when missing, with
// every symlink in it resolved inside root.
func (w *writer) parent(rel string) (string, error) {
	cur := "/"
	rest := strings.Split(path.Dir(path.Clean("/"+rel)), "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(w.root, next)
		st, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(host, 0o755); err != nil {
				return "", err
			}
			cur = next
		case err != nil:
			return "", err
		case st.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
			}
			t, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if path.IsAbs(t) {
				cur = "/"
			}
			rest = append(strings.Split(t, "/"), rest...)
		case st.IsDir():
			cur = next
		default:
			return "", fmt.Errorf("%s: %s is a file, not a directory", rel, next)
		}
	}
	return filepath.Join(w.root, cur), nil
}

// at is the host path rel is written at, its parent made; what was there
// is removed unless keepDir and it is a directory.
func (w *writer) at(rel string, keepDir bool) (string, error) {
	dir, err := w.parent(rel)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, path.Base(path.Clean("/"+rel)))
	st, err := os.Lstat(p)
	if err == nil {
		if keepDir && st.IsDir() {
			return p, nil
		}
		if err := os.RemoveAll(p); err != nil {
			return "", err
		}
		w.forget(p)
	}
	return p, nil
}

// forget drops what was recorded at or under p (it has been replaced).
func (w *writer) forget(p string) {
	for f := range w.files {
		if f == p || strings.HasPrefix(f, p+"/") {
			delete(w.files, f)
		}
	}
	for d := range w.dirs {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(w.dirs, d)
		}
	}
}

func (w *writer) dir(rel string, mode fs.FileMode) error {
	p, err := w.at(rel, true)
	if err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Applied in finish: a read-only directory must still take its files.
	w.dirs[p] = mode.Perm()
	return nil
}

func (w *writer) symlink(rel, target string) error {
	p, err := w.at(rel, false)
	if err != nil {
		return err
	}
	return os.Symlink(target, p)
}

// file writes r at rel with mode, kept as the archive gives it (Lambda runs
// only what is executable there).
func (w *writer) file(rel string, r io.Reader, mode fs.FileMode) error {
	p, err := w.at(rel, false)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if w.limit > 0 {
		r = &counting{r: r, w: w}
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	// Flushed now: a cold run evicts these pages, and dirty ones cannot be.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	w.files[p] = true
	return os.Chmod(p, mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// link makes rel a hard link to target (both archive paths, as tar gives them).
func (w *writer) link(rel, target string) error {
	tdir, err := w.parent(target)
	if err != nil {
		return err
	}
	tp := filepath.Join(tdir, path.Base(path.Clean("/"+target)))
	st, err := os.Lstat(tp)
	if err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("hard link %s to %s: the target is not a file written before it", rel, target)
	}
	p, err := w.at(rel, false)
	if err != nil {
		return err
	}
	if err := os.Link(tp, p); err != nil {
		return err
	}
	w.files[p] = true
	return nil
}

// remove deletes rel (an image's whiteout); a missing path is no error.
func (w *writer) remove(rel string) error {
	dir, err := w.parent(rel)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, path.Base(path.Clean("/"+rel)))
	w.forget(p)
	return os.RemoveAll(p)
}

// finish gives each directory the mode the archive set for it.
func (w *writer) finish() error {
	dirs := make([]string, 0, len(w.dirs))
	for d := range w.dirs {
		dirs = append(dirs, d)
	}
	// Deepest first, so a read-only parent does not block its child's chmod.
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if err := os.Chmod(d, w.dirs[d]); err != nil {
			return err
		}
	}
	return nil
}

// regular are the host paths of the regular files laid out, sorted.
func (w *writer) regular() []string {
	out := make([]string, 0, len(w.files))
	for f := range w.files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// counting charges the bytes read to the writer's limit.
type counting struct {
	r io.Reader
	w *writer
}

func (c *counting) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.w.written += int64(n)
	if c.w.written > c.w.limit {
		return n, c.w.over(c.w.written)
	}
	return n, err
}

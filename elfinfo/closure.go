package elfinfo

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Closure is what the dynamic loader opens before main: the ELF interpreter and
// every shared library in the DT_NEEDED closure.
type Closure struct {
	// Interp is the interpreter path as the binary names it (PT_INTERP), e.g.
	// /lib64/ld-linux-x86-64.so.2; "" for a static or static-pie binary.
	Interp string `json:"interp,omitempty"`
	// InterpHost is where to read the interpreter on this host: symlinks resolved
	// within the rootfs, rootfs-joined. "" when it does not exist (then Interp is
	// also listed in Missing).
	InterpHost string `json:"interp_host,omitempty"`
	// Libs are the libraries in the loader's breadth-first order, deduplicated.
	Libs []Lib `json:"libs"`
	// Missing lists sonames no search directory had (and the interpreter path if
	// absent). A binary with anything missing will not start.
	Missing []string `json:"missing,omitempty"`
	// Binary is the resolved binary's path as the loader sees it (inside the
	// rootfs when it lies there, else its absolute host path): the Origin of
	// the libraries its own $ORIGIN search paths found.
	Binary string `json:"binary,omitempty"`
}

// Lib is one resolved DT_NEEDED entry.
type Lib struct {
	Soname string `json:"soname"` // as written in DT_NEEDED
	// Path is the absolute path as seen inside the rootfs (or host), as the loader
	// found it: search dir + soname, e.g. /lib/x86_64-linux-gnu/libc.so.6.
	Path string `json:"path"`
	// HostPath is the real file to read on this host: symlinks resolved within the
	// rootfs, rootfs-joined.
	HostPath string `json:"host_path"`
	// NeededBy is the Path of the first object whose DT_NEEDED named this library
	// ("" for the main binary). It explains why a library is in the closure.
	NeededBy string `json:"needed_by,omitempty"`
	// Origin is set when the library was found through a search directory that
	// starts with $ORIGIN: it is the Path of the object whose directory $ORIGIN
	// stood for (Closure.Binary, or an earlier Lib's Path). Such a library is
	// found relative to that object, so it must move with it: see PlacedAt.
	Origin string `json:"origin,omitempty"`
}

// PlacedAt returns, for each of c.Libs in order, the path where the loader
// will look for it once the binary is installed at binaryAt (an absolute path,
// e.g. /opt/extensions/NAME in a sandbox) instead of where it was resolved. A
// library found through $ORIGIN keeps its place relative to the object whose
// $ORIGIN found it (so $ORIGIN/../lib next to /opt/extensions/NAME is
// /opt/lib); every other library stays at its Path.
func (c *Closure) PlacedAt(binaryAt string) []string {
	moved := map[string]string{c.Binary: path.Clean(binaryAt)}
	out := make([]string, len(c.Libs))
	for i, l := range c.Libs {
		out[i] = l.Path
		if l.Origin != "" {
			if at, ok := moved[l.Origin]; ok {
				if rel, err := filepath.Rel(path.Dir(l.Origin), l.Path); err == nil {
					out[i] = path.Join(path.Dir(at), filepath.ToSlash(rel))
				}
			}
		}
		if _, ok := moved[l.Path]; !ok {
			moved[l.Path] = out[i]
		}
	}
	return out
}

// ResolveClosure resolves the ELF interpreter and the full DT_NEEDED closure of
// path, as the dynamic loader would: DT_RPATH (of the requester and its loaders,
// when the requester has no DT_RUNPATH) or DT_RUNPATH, with $ORIGIN, $LIB and
// $PLATFORM expanded; then the directories of /etc/ld.so.conf (and its includes)
// when present, standing in for ld.so.cache; then the default directories for the
// binary's architecture (Debian multiarch, /lib64, /usr/lib64, /lib, /usr/lib).
// LD_LIBRARY_PATH is ignored: a Lambda function does not set it for extensions.
//
// Files are looked up under rootfs when rootfs != "" (else the host "/"), and
// symlinks there resolve relative to rootfs, not the host. path itself is a host
// path; when it lies inside rootfs its $ORIGIN is the in-rootfs directory,
// otherwise $ORIGIN directories are read from the host next to path.
// Candidates of the wrong class or machine are skipped, as ld.so skips them.
func ResolveClosure(path, rootfs string) (*Closure, error) {
	o, err := openObject(path)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return resolveClosure(o, rootfs)
}

// resolver carries the per-closure lookup state.
type resolver struct {
	rootfs  string
	machine elf.Machine
	cfgDirs []string // from ld.so.conf, in order
	defDirs []string
	lib     string // $LIB expansion
	plat    string // $PLATFORM expansion
	// valid caches candidate checks by host path.
	valid map[string]bool
}

// node is one loaded object in the breadth-first walk.
type node struct {
	seen   string // path inside rootfs (or a host path when outside it)
	host   string // host file
	origin string // $ORIGIN: directory in the same namespace as seen
	// originHost tells whether origin is a host path (main binary outside rootfs).
	originHost bool
	runpath    []string
	rpath      []string
	needed     []string
	loader     *node
}

func resolveClosure(o *object, rootfs string) (*Closure, error) {
	if rootfs != "" {
		abs, err := filepath.Abs(rootfs)
		if err != nil {
			return nil, fmt.Errorf("rootfs %s: %v", rootfs, err)
		}
		st, err := os.Stat(abs)
		if err != nil || !st.IsDir() {
			return nil, badFile(rootfs, "rootfs is not a directory")
		}
		rootfs = abs
	}
	r := &resolver{rootfs: rootfs, machine: o.ef.Machine, valid: map[string]bool{}}
	r.defDirs = defaultDirs(o.ef.Machine)
	r.plat = archName(o.ef.Machine)
	r.lib = "lib64"
	if t := multiarch(o.ef.Machine); t != "" {
		if st, err := os.Stat(r.hostOf("/lib/" + t)); err == nil && st.IsDir() {
			r.lib = "lib/" + t
		}
	}
	r.cfgDirs = r.readLdSoConf()

	c := &Closure{Libs: []Lib{}}
	interp, err := o.interp()
	if err != nil {
		return nil, badFile(o.path, "%v", err)
	}
	c.Interp = interp
	interpSoname := ""
	if interp != "" {
		if h, err := r.resolve(interp); err == nil && isRegular(h) {
			c.InterpHost = h
			if io, err := openObject(h); err == nil {
				if s := io.dynStrings(elf.DT_SONAME); len(s) > 0 {
					interpSoname = s[0]
				}
				io.Close()
			}
		} else {
			c.Missing = append(c.Missing, interp)
		}
		if interpSoname == "" {
			interpSoname = path.Base(interp)
		}
	}

	main := &node{
		host:    o.path,
		runpath: o.dynStrings(elf.DT_RUNPATH),
		rpath:   o.dynStrings(elf.DT_RPATH),
		needed:  o.dynStrings(elf.DT_NEEDED),
	}
	main.seen, main.originHost = r.seenOfHost(o.path)
	main.origin = path.Dir(main.seen)
	c.Binary = main.seen

	loaded := map[string]bool{}
	missing := map[string]bool{}
	queue := []*node{main}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, soname := range n.needed {
			if loaded[soname] || missing[soname] {
				continue
			}
			if soname == interpSoname && c.InterpHost != "" {
				// ld.so is already in memory; a DT_NEEDED on it (libc.so.6 has one)
				// binds to the running loader, not a second copy.
				loaded[soname] = true
				c.Libs = append(c.Libs, Lib{Soname: soname, Path: c.Interp, HostPath: c.InterpHost, NeededBy: n.seen})
				continue
			}
			f, ok := r.find(soname, n)
			if !ok {
				missing[soname] = true
				c.Missing = append(c.Missing, soname)
				continue
			}
			seen, host, onHost := f.seen, f.host, f.onHost
			loaded[soname] = true
			c.Libs = append(c.Libs, Lib{Soname: soname, Path: seen, HostPath: host, NeededBy: n.seen, Origin: f.origin})
			lo, err := openObject(host)
			if err != nil {
				continue // find() validated it; a race or an unreadable file
			}
			child := &node{
				seen:    seen,
				host:    host,
				origin:  path.Dir(seen),
				runpath: lo.dynStrings(elf.DT_RUNPATH),
				rpath:   lo.dynStrings(elf.DT_RPATH),
				needed:  lo.dynStrings(elf.DT_NEEDED),
				loader:  n,
			}
			child.originHost = onHost
			lo.Close()
			queue = append(queue, child)
		}
	}
	return c, nil
}

// found is where find located a library.
type found struct {
	seen, host string
	// onHost is true when the library was found on the host next to a main
	// binary that lives outside the rootfs (an $ORIGIN path).
	onHost bool
	// origin is the seen path of the object whose $ORIGIN began the search
	// directory, "" for any other directory.
	origin string
}

// find searches for soname on behalf of requester n, in ld.so's order.
func (r *resolver) find(soname string, n *node) (found, bool) {
	if strings.Contains(soname, "/") {
		// A DT_NEEDED with a slash is a path; ld.so opens it as given.
		if !path.IsAbs(soname) {
			return found{}, false
		}
		if h, ok := r.candidate(soname, false); ok {
			return found{seen: soname, host: h}, true
		}
		return found{}, false
	}
	try := func(dirs []string, from *node) (found, bool) {
		for _, d := range dirs {
			e, onHost := r.expand(d, from)
			if e == "" {
				continue
			}
			p := path.Join(e, soname)
			if h, ok := r.candidate(p, onHost); ok {
				f := found{seen: p, host: h, onHost: onHost}
				if from != nil && startsWithOrigin(d) {
					f.origin = from.seen
				}
				return f, true
			}
		}
		return found{}, false
	}
	if len(n.runpath) == 0 {
		// DT_RPATH of the requester, then of each object that loaded it.
		for l := n; l != nil; l = l.loader {
			if len(l.runpath) == 0 {
				if f, ok := try(splitPath(l.rpath), l); ok {
					return f, true
				}
			}
		}
	} else if f, ok := try(splitPath(n.runpath), n); ok {
		return f, true
	}
	if f, ok := try(r.cfgDirs, nil); ok {
		return f, true
	}
	return try(r.defDirs, nil)
}

// startsWithOrigin reports whether a search directory is $ORIGIN or below it,
// i.e. names a place relative to the object that carries it.
func startsWithOrigin(d string) bool {
	for _, tok := range []string{"$ORIGIN", "${ORIGIN}"} {
		if d == tok || strings.HasPrefix(d, tok+"/") {
			return true
		}
	}
	return false
}

func splitPath(list []string) []string {
	var out []string
	for _, l := range list {
		for _, d := range strings.Split(l, ":") {
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// expand substitutes $ORIGIN, $LIB and $PLATFORM. onHost is true when the result
// is a host path (an $ORIGIN of a main binary that lives outside the rootfs).
func (r *resolver) expand(d string, from *node) (string, bool) {
	onHost := false
	if strings.Contains(d, "$") {
		for _, v := range []string{"ORIGIN", "LIB", "PLATFORM"} {
			val := ""
			switch v {
			case "ORIGIN":
				if from == nil {
					return "", false
				}
				val = from.origin
				if strings.Contains(d, "$ORIGIN") || strings.Contains(d, "${ORIGIN}") {
					onHost = from.originHost
				}
			case "LIB":
				val = r.lib
			case "PLATFORM":
				val = r.plat
			}
			d = strings.ReplaceAll(d, "${"+v+"}", val)
			d = strings.ReplaceAll(d, "$"+v, val)
		}
		if strings.Contains(d, "$") {
			return "", false // unknown token: ld.so ignores the entry
		}
	}
	if !path.IsAbs(d) {
		return "", false // relative RPATH entries resolve against the cwd; skip
	}
	return path.Clean(d), onHost
}

// candidate reports whether p (inside the rootfs, or on the host when onHost) is
// a loadable library for this binary: a regular ELF64 file of the same machine.
func (r *resolver) candidate(p string, onHost bool) (string, bool) {
	var h string
	var err error
	if onHost {
		h, err = filepath.EvalSymlinks(p)
	} else {
		h, err = r.resolve(p)
	}
	if err != nil {
		return "", false
	}
	if v, ok := r.valid[h]; ok {
		return h, v
	}
	ok := false
	if o, err := openObject(h); err == nil {
		ok = o.ef.Machine == r.machine && o.ef.Type == elf.ET_DYN
		o.Close()
	}
	r.valid[h] = ok
	return h, ok
}

// seenOfHost maps a host path to the path the loader would see: inside the
// rootfs when it lies there, else the host path itself (onHost true).
func (r *resolver) seenOfHost(p string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = p
	}
	if r.rootfs == "" {
		return abs, false
	}
	if rel, err := filepath.Rel(r.rootfs, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return "/" + filepath.ToSlash(rel), false
	}
	return abs, true
}

// hostOf joins an in-rootfs path to the rootfs without resolving symlinks.
func (r *resolver) hostOf(p string) string {
	if r.rootfs == "" {
		return p
	}
	return filepath.Join(r.rootfs, p)
}

// resolve returns the host path of p (absolute, inside the rootfs), following
// symlinks as the kernel would with the rootfs as "/": absolute link targets
// restart at the rootfs, and ".." never climbs above it.
func (r *resolver) resolve(p string) (string, error) {
	if r.rootfs == "" {
		return filepath.EvalSymlinks(p)
	}
	return ResolveInRoot(r.rootfs, p)
}

// ResolveInRoot returns the host path of the in-rootfs absolute path p, with every
// symlink resolved as if rootfs were "/" (absolute targets restart at rootfs, ".."
// stops at it). The final file must exist.
func ResolveInRoot(rootfs, p string) (string, error) {
	const maxLinks = 40
	links := 0
	cur := "/" // resolved in-root prefix
	rest := strings.Split(path.Clean("/"+p), "/")
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
		host := filepath.Join(rootfs, next)
		st, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxLinks {
			return "", &os.PathError{Op: "resolve", Path: p, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(rootfs, cur), nil
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// multiarch is the Debian multiarch triplet of a machine.
func multiarch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case elf.EM_RISCV:
		return "riscv64-linux-gnu"
	case elf.EM_PPC64:
		return "powerpc64le-linux-gnu"
	case elf.EM_S390:
		return "s390x-linux-gnu"
	}
	return ""
}

// defaultDirs are the loader's built-in directories: Debian's multiarch ones
// first (its glibc is configured with them), then the upstream 64-bit ones that
// Amazon Linux uses, then the generic ones.
func defaultDirs(m elf.Machine) []string {
	var d []string
	if t := multiarch(m); t != "" {
		d = append(d, "/lib/"+t, "/usr/lib/"+t)
	}
	return append(d, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// readLdSoConf returns the directories of /etc/ld.so.conf and its includes, in
// order. ld.so itself reads /etc/ld.so.cache, which ldconfig builds from these
// directories; reading the directories gives the same answer without parsing the
// cache format, as long as ldconfig has been run.
func (r *resolver) readLdSoConf() []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(p string, depth int)
	read = func(p string, depth int) {
		if depth > 8 {
			return
		}
		h, err := r.resolve(p)
		if err != nil {
			return
		}
		b, err := os.ReadFile(h)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.FieldsFunc(line, func(c rune) bool {
				return c == ' ' || c == '\t' || c == ',' || c == ':' || c == '\r'
			})
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !path.IsAbs(pat) {
						pat = path.Join(path.Dir(p), pat)
					}
					matches, _ := filepath.Glob(r.hostOf(pat))
					for _, m := range matches {
						inRoot := m
						if r.rootfs != "" {
							rel, err := filepath.Rel(r.rootfs, m)
							if err != nil {
								continue
							}
							inRoot = "/" + filepath.ToSlash(rel)
						}
						read(inRoot, depth+1)
					}
				}
			case "hwcap":
			default:
				for _, d := range fields {
					if path.IsAbs(d) && !seen[d] {
						seen[d] = true
						dirs = append(dirs, path.Clean(d))
					}
				}
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	return dirs
}

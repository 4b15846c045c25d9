package container

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/initprof/initprof/elfinfo"
)

// rootfsLayout is the result of assembling a rootfs: where it is and which
// copied files a cold run must evict.
type rootfsLayout struct {
	dir   string
	files []string
}

// buildRootfs assembles the sandbox's root filesystem in dir: the image's
// files when there is one, the layers under /opt and the function under
// /var/task, the extensions under /opt/extensions, the bootstrap, the
// interpreter and library closure of each (from the host, cfg.Rootfs or the
// image), Lambda's /etc files, and empty mount points for what the runtime
// mounts. It is done once per build under test.
func buildRootfs(cfg *Config, dir string) (*rootfsLayout, error) {
	src := "/"
	if cfg.Rootfs != "" {
		abs, err := filepath.Abs(cfg.Rootfs)
		if err != nil {
			return nil, err
		}
		src = abs
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var unpacked []string
	if cfg.Image != "" {
		var err error
		if src, unpacked, err = layOutImage(cfg, dir); err != nil {
			return nil, err
		}
	}
	rootfs := cfg.Rootfs
	if cfg.Image != "" {
		rootfs = src // the extensions' libraries are the image's
	}
	t := newTree(src, dir)
	made := []string{ExtensionsDir, "/var/runtime", "/var/task", "/tmp", "/proc", "/dev", "/sys", OutMount, "/etc", "/opt/lib", "/opt/bin"}
	if cfg.Image != "" {
		if err := unlinkOwned(dir, append(made, InitprofPath, "/etc/hosts", "/etc/passwd", "/etc/group")); err != nil {
			return nil, err
		}
	}
	for _, d := range made {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "/tmp"), 0o1777); err != nil {
		return nil, err
	}
	// Mount point for the bind-mounted initprof binary: the root is read-only,
	// so it must exist before the runtime mounts over it.
	if err := writeFile(dir, InitprofPath, "", 0o755); err != nil {
		return nil, err
	}
	zipped, err := layOutZips(cfg, dir)
	if err != nil {
		return nil, err
	}
	t.record(append(unpacked, zipped...))
	if cfg.Image != "" {
		if err := imageExtensions(cfg, dir); err != nil {
			return nil, err
		}
	}
	if err := checkPlaced(cfg); err != nil {
		return nil, err
	}
	for _, e := range cfg.Extensions {
		inside := path.Join(ExtensionsDir, e.Name)
		if err := t.place(e.Path, inside, 0o755); err != nil {
			return nil, fmt.Errorf("extension %s: %v", e.Name, err)
		}
		if err := addLoadable(t, t, rootfs, e.Path, inside, "extension "+e.Name, 0); err != nil {
			return nil, err
		}
	}
	// What the archives brought is in place already; its loader and
	// libraries come along as a plain extension's do.
	for _, e := range cfg.placed {
		inside := path.Join(ExtensionsDir, e.Name)
		if err := addLoadable(t, t, rootfs, e.Path, inside, "extension "+e.Name+" (from "+filepath.Base(e.Layer)+")", 0); err != nil {
			return nil, err
		}
	}
	if cfg.Function != "" {
		if err := addLoadable(t, t, rootfs, inRoot(dir, cfg.runtimePath()), cfg.runtimePath(), "bootstrap (from "+filepath.Base(cfg.Function)+")", 0); err != nil {
			return nil, err
		}
	}
	if cfg.Bootstrap != "" {
		if err := t.place(cfg.Bootstrap, BootstrapPath, 0o755); err != nil {
			return nil, fmt.Errorf("bootstrap: %v", err)
		}
		if err := addLoadable(t, t, rootfs, cfg.Bootstrap, BootstrapPath, "bootstrap", 0); err != nil {
			return nil, err
		}
	}
	for name, content := range map[string]string{"/etc/hosts": etcHosts, "/etc/passwd": etcPasswd, "/etc/group": etcGroup} {
		if err := writeFile(dir, name, content, 0o644); err != nil {
			return nil, err
		}
	}
	// The loader consults ld.so.cache first; without it every lookup walks the
	// default directories, which is not what a real environment does.
	if _, err := os.Stat(t.hostPath("/etc/ld.so.cache")); err == nil {
		if _, err := t.materialize("/etc/ld.so.cache"); err != nil {
			return nil, fmt.Errorf("ld.so.cache: %v", err)
		}
	}
	return &rootfsLayout{dir: dir, files: t.Files()}, nil
}

// addLoadable copies what the kernel and the loader will open to start the
// executable at host path p, installed in the sandbox at inside: its ELF
// interpreter and DT_NEEDED closure, or a script's interpreter (and that one's
// closure). The interpreter and the libraries found in fixed directories go
// into t at the paths they have in the source root. A library found through
// $ORIGIN (a RUNPATH such as $ORIGIN/../lib) is found relative to the
// executable, so it goes into origin at the same place relative to inside:
// build/samples/cext's build/lib/libcexthot.so is /opt/lib/libcexthot.so next
// to /opt/extensions/cext, as a Lambda layer lays them out.
func addLoadable(t, origin *tree, rootfs, p, inside, what string, depth int) error {
	if depth > 4 {
		return fmt.Errorf("%s %s: interpreter chain too deep", what, p)
	}
	head, err := readHead(p, 256)
	if err != nil {
		return fmt.Errorf("%s %s: %v", what, p, err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		interp := scriptInterpreter(head)
		if interp == "" {
			return badInput("%s %s: a script with an empty #! line", what, p)
		}
		if m := emptyAtStart(interp); m != "" && t.dst != "" {
			return badInput("%s %s: its interpreter %s is under %s, which the sandbox (like Lambda) mounts empty at start, so the script cannot run: put the interpreter elsewhere (a layer's /opt/bin, or /usr/bin) and name that on the #! line", what, p, interp, m)
		}
		host, err := t.materialize(interp)
		if err != nil {
			return badInput("%s %s: its interpreter %s is missing from %s: %v", what, p, interp, t.src, err)
		}
		if err := addLoadable(t, origin, rootfs, host, interp, what+" (interpreter "+interp+")", depth+1); err != nil {
			return err
		}
		// `#!/usr/bin/env PROG`: env finds PROG on PATH in the sandbox, so
		// PROG and its closure come along too.
		_, args, _, _ := ScriptInterpreter(p)
		prog := envProgram(interp, args)
		if prog == "" {
			return nil
		}
		inside, err := lookScriptProgram(prog, t.src)
		if err != nil {
			return badInput("%s %s: #!%s %s: %v", what, p, interp, prog, err)
		}
		phost, err := t.materialize(inside)
		if err != nil {
			return badInput("%s %s: %s (for #!%s) is missing from %s: %v", what, p, inside, interp, t.src, err)
		}
		return addLoadable(t, origin, rootfs, phost, inside, what+" (program "+inside+")", depth+1)
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
	default:
		return badInput("%s %s: not an ELF executable or a #! script", what, p)
	}
	if err := checkArch(p); err != nil {
		return badInput("%s %s: %v", what, p, err)
	}
	c, err := elfinfo.ResolveClosure(p, rootfs)
	if err != nil {
		if elfinfo.IsBadInput(err) {
			return badInput("%s: %v", what, err)
		}
		return fmt.Errorf("%s: %v", what, err)
	}
	if len(c.Missing) > 0 {
		where := "on this host"
		if rootfs != "" {
			where = "in rootfs " + rootfs
		}
		return badInput("%s %s: cannot resolve %s %s: install the missing libraries or pass --rootfs with them",
			what, p, strings.Join(c.Missing, ", "), where)
	}
	if c.Interp != "" {
		if _, err := t.materialize(c.Interp); err != nil {
			// The interpreter exists (it is not Missing) but not along a path the
			// tree can walk: copy the resolved file to the named path.
			if err2 := t.place(c.InterpHost, c.Interp, 0o755); err2 != nil {
				return fmt.Errorf("%s: interpreter %s: %v", what, c.Interp, err)
			}
		}
	}
	placed := c.PlacedAt(inside)
	for i, l := range c.Libs {
		if l.Origin != "" {
			if err := origin.place(l.HostPath, placed[i], 0o755); err != nil {
				return fmt.Errorf("%s: library %s (found through $ORIGIN at %s) at %s: %v", what, l.Soname, l.Path, placed[i], err)
			}
			continue
		}
		if _, err := t.materialize(l.Path); err != nil {
			if err2 := t.place(l.HostPath, l.Path, 0o755); err2 != nil {
				return fmt.Errorf("%s: library %s (%s): %v", what, l.Soname, l.Path, err)
			}
		}
	}
	return nil
}

// checkArch refuses a binary this machine cannot execute: the sandbox runs
// natively, with no emulation.
func checkArch(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("not a readable ELF file: %v", err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM, "riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("built for %s, but this machine runs %s (%s): run it on a matching machine", machineName(f.Machine), machineName(want), runtime.GOARCH)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s is not an executable", f.Type)
	}
	return nil
}

func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.TrimPrefix(m.String(), "EM_")
}

func readHead(p string, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.Read(buf)
	if k == 0 && err != nil {
		return nil, fmt.Errorf("empty or unreadable: %v", err)
	}
	return buf[:k], nil
}

// emptyAtStart returns the mount of the sandbox's spec (ociSpec) that hides
// whatever the rootfs holds at p ("" if none): /tmp, /dev, /proc and /sys
// start empty or virtual, on Lambda as here.
func emptyAtStart(p string) string {
	p = path.Clean("/" + p)
	for _, m := range []string{"/tmp", "/dev", "/proc", "/sys"} {
		if p == m || strings.HasPrefix(p, m+"/") {
			return m
		}
	}
	return ""
}

// scriptInterpreter returns the path on a #! line.
func scriptInterpreter(head []byte) string {
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

package coldstart

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/layers"
	"github.com/initprof/initprof/elfinfo"
)

// Extensions checks that every path is an executable ELF for this machine
// whose libraries resolve, and names it as Lambda will see it. A path that
// is a zip is a layer (container.Extension.Layer): the sandbox lays it out
// under /opt, and its extensions/* are checked and named there (name does
// not rename them; the layer names its own).
func Extensions(args []string, name, rootfs string) ([]container.Extension, error) {
	var exts []container.Extension
	seen := map[string]bool{}
	for _, a := range args {
		if layers.IsZip(a) {
			abs, _ := filepath.Abs(a)
			exts = append(exts, container.Extension{Layer: abs})
			continue
		}
		elfPath := a
		if _, _, script, err := container.ScriptInterpreter(a); err != nil && !script {
			return nil, kindErr(BadInput, err)
		} else if script {
			// Lambda runs #! extensions (a /bin/sh wrapper is common): the
			// interpreter, and for #!/usr/bin/env PROG the PROG, come into
			// the sandbox with their libraries; the checks below are theirs.
			if _, elfPath, err = container.ResolveScript(a, rootfs); err != nil {
				return nil, kindErr(BadInput, err)
			}
		}
		info, err := elfinfo.Open(elfPath)
		if err != nil {
			return nil, kindErr(BadInput, err)
		}
		if want := HostArch(); info.Arch != want {
			return nil, kindErr(BadInput, fmt.Errorf("%s is a %s binary; this host runs %s. Build it for %s, or profile it in the arm64 microVM with --arch arm64 (on an x86 host)", a, info.Arch, want, want))
		}
		if info.Interp != "" {
			cl, err := elfinfo.ResolveClosure(elfPath, rootfs)
			if err != nil {
				return nil, kindErr(BadInput, fmt.Errorf("%s: %v", a, err))
			}
			if len(cl.Missing) > 0 {
				where := "on this host"
				if rootfs != "" {
					where = "under " + rootfs
				}
				return nil, kindErr(BadInput, fmt.Errorf("%s: cannot resolve %s %s (install them, or give --rootfs DIR)", a, strings.Join(cl.Missing, ", "), where))
			}
		}
		n := filepath.Base(a)
		if name != "" {
			n = name
		}
		if seen[n] {
			return nil, kindErr(BadInput, fmt.Errorf("two extensions are named %q; Lambda needs distinct file names in /opt/extensions", n))
		}
		seen[n] = true
		abs, _ := filepath.Abs(a)
		exts = append(exts, container.Extension{Name: n, Path: abs})
	}
	return exts, nil
}

// HostArch is the elfinfo architecture name of this machine.
func HostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// CheckPackages checks the layer zips among exts and the function zip
// together, as Lambda does at deploy time (paths, links, architecture,
// 5 layers, 250 MB unzipped), from their directories alone: a bad archive
// is refused before the engine opens, with no privileges needed.
func CheckPackages(exts []container.Extension, function string, runtimeGiven bool) error {
	d := layers.Deployment{Function: function, Others: runtimeGiven}
	for _, e := range exts {
		if e.Layer != "" {
			d.Layers = append(d.Layers, e.Layer)
		} else {
			d.Others = true
		}
	}
	if len(d.Layers) == 0 && function == "" {
		return nil
	}
	if _, err := layers.Check(d, layers.Options{}); err != nil {
		return kindErr(BadInput, err)
	}
	return nil
}

// RunPackages is what initprof run profiles: the extensions args name
// (Extensions, renamed to name), their layers and c's function zip checked
// together (CheckPackages), and a bootstrap runtime (c.Runtime not "sim")
// given an extension's checks: an ELF (or #! script) for this machine whose
// libraries resolve. Errors are of kind BadInput.
func RunPackages(args []string, name string, c Config) ([]container.Extension, error) {
	exts, err := Extensions(args, name, c.Rootfs)
	if err != nil {
		return nil, err
	}
	if err := CheckPackages(exts, c.Function, c.Runtime != "sim"); err != nil {
		return nil, err
	}
	if c.Runtime != "sim" {
		if _, err := Extensions([]string{c.Runtime}, "bootstrap", c.Rootfs); err != nil {
			return nil, fmt.Errorf("--runtime: %w", err)
		}
	}
	return exts, nil
}

// SeriesName names the series of a run over args: the arguments as given,
// or, with no extension, "function " and what brings the function's own
// init (c's function zip, image or runtime).
func SeriesName(args []string, c Config) string {
	if len(args) > 0 {
		return strings.Join(args, " ")
	}
	for _, s := range []string{c.Function, c.Image, c.Runtime} {
		if s != "" {
			return "function " + s
		}
	}
	return "function "
}

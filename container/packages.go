package container

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/initprof/initprof/container/layers"
	"github.com/initprof/initprof/elfinfo"
)

// inRoot is the host path of inside in the rootfs at dir, its symlinks
// resolved as the sandbox will (an absolute target is the rootfs's own
// path, never the host's).
func inRoot(dir, inside string) string {
	if p, err := elfinfo.ResolveInRoot(dir, inside); err == nil {
		return p
	}
	return filepath.Join(dir, inside)
}

// unlinkOwned removes the symlinks an image has at or above the paths the
// sandbox makes or writes in every rootfs (/tmp, /etc/hosts...): following
// one, an absolute target would be the host's path, and Lambda mounts its
// own over them anyway.
func unlinkOwned(dir string, paths []string) error {
	for _, p := range paths {
		cur := dir
		for _, c := range strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/") {
			cur = filepath.Join(cur, c)
			st, err := os.Lstat(cur)
			if err != nil {
				break
			}
			if st.Mode()&os.ModeSymlink != 0 {
				if err := os.Remove(cur); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// splitLayers moves the layer entries of Extensions into Layers, in their
// order, so the rest of the sandbox sees plain extensions only.
func (c *Config) splitLayers() {
	var plain []Extension
	var zips []string
	for _, e := range c.Extensions {
		if e.Layer != "" {
			zips = append(zips, e.Layer)
			continue
		}
		plain = append(plain, e)
	}
	if len(zips) > 0 {
		c.Extensions = plain
		c.Layers = append(c.Layers, zips...)
	}
}

// checkPackages refuses the combinations Lambda has no equivalent of.
func (c *Config) checkPackages() error {
	if c.Image != "" {
		switch {
		case c.Rootfs != "":
			return fmt.Errorf("--image and --rootfs: the image is the root filesystem; give one of them")
		case len(c.Layers) > 0:
			return fmt.Errorf("--image with layer zips: Lambda attaches no layers to a container image function; COPY the layer's files into the image's /opt instead")
		case c.Function != "":
			return fmt.Errorf("--image and --function: a function is either a zip or an image")
		case c.Bootstrap != "":
			return fmt.Errorf("--image and --runtime: the image's ENTRYPOINT/CMD is the runtime")
		}
	}
	if c.Function != "" && c.Bootstrap != "" {
		return fmt.Errorf("--function and --runtime: the function zip's bootstrap is the runtime; give one of them")
	}
	return nil
}

// layOutImage unpacks the image into dir, the rootfs being built, and
// returns the source root the tree copies the loader and libraries from
// (the image itself, written in place) and the files written (the caller
// records them in its tree: they are evicted, and never copied onto
// themselves).
func layOutImage(cfg *Config, dir string) (string, []string, error) {
	im, files, err := layers.UnpackImage(cfg.Image, dir, layers.Options{})
	if err != nil {
		if layers.IsBadInput(err) {
			return "", nil, &inputError{err}
		}
		return "", nil, fmt.Errorf("unpacking %s: %w", cfg.Image, err)
	}
	cfg.runtime = im.Cmd
	cfg.imageEnv = im.Env
	cfg.cwd = im.WorkingDir
	return dir, files, nil
}

// layOutZips unpacks the layers under dir/opt and the function under
// dir/var/task, and returns the extensions they brought.
func layOutZips(cfg *Config, dir string) ([]string, error) {
	if len(cfg.Layers) == 0 && cfg.Function == "" {
		return nil, nil
	}
	d := layers.Deployment{Layers: cfg.Layers, Function: cfg.Function, Others: len(cfg.Extensions) > 0 || cfg.Bootstrap != ""}
	man, files, err := layers.Unpack(d, dir, layers.Options{})
	if err != nil {
		if layers.IsBadInput(err) {
			return nil, &inputError{err}
		}
		return nil, fmt.Errorf("unpacking the layers: %w", err)
	}
	for _, e := range man.Extensions {
		cfg.placed = append(cfg.placed, Extension{Name: e.Name, Path: inRoot(dir, path.Join(ExtensionsDir, e.Name)), Layer: e.Layer})
	}
	if man.Bootstrap != "" {
		cfg.runtime = []string{man.Bootstrap}
	}
	return files, nil
}

// imageExtensions lists what an image's /opt/extensions holds: Lambda runs
// each file there, as it does a layer's.
func imageExtensions(cfg *Config, dir string) error {
	ents, err := os.ReadDir(filepath.Join(dir, ExtensionsDir))
	if err != nil {
		return nil // no extensions in the image
	}
	for _, e := range ents {
		p := inRoot(dir, path.Join(ExtensionsDir, e.Name()))
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		cfg.placed = append(cfg.placed, Extension{Name: e.Name(), Path: p, Layer: cfg.Image})
	}
	return nil
}

// checkPlaced refuses a plain extension named like one a layer brought:
// both would be /opt/extensions/NAME.
func checkPlaced(cfg *Config) error {
	have := map[string]string{}
	for _, e := range cfg.placed {
		have[e.Name] = e.Layer
	}
	for _, e := range cfg.Extensions {
		if l, ok := have[e.Name]; ok {
			return badInput("extension %s is given as a file and is in %s too: both would be /opt/extensions/%s; rename one (--name)", e.Name, l, e.Name)
		}
	}
	return nil
}

// allExtensions are the given extensions and those the archives brought,
// sorted by name as Lambda starts them.
func (c *Config) allExtensions() []Extension {
	out := append(append([]Extension(nil), c.Extensions...), c.placed...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// runtimePath is the runtime's executable inside the sandbox ("" for the
// simulated runtime).
func (c *Config) runtimePath() string {
	if len(c.runtime) > 0 {
		return path.Clean(c.runtime[0])
	}
	if c.Bootstrap != "" {
		return BootstrapPath
	}
	return ""
}

package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/initprof/initprof/elfinfo"
)

// Image is what a container image function runs, from its config.
type Image struct {
	// Cmd is ENTRYPOINT followed by CMD, as Lambda runs them, its first
	// element made absolute inside the image (looked up on the image's PATH).
	Cmd []string
	// Env is the image's ENV; Lambda's own variables and the customer's
	// are applied over it.
	Env []string
	// WorkingDir is the image's WORKDIR ("" if unset).
	WorkingDir string
	// Arch is the image's architecture as its config names it (amd64, arm64).
	Arch string
	// Size is the image unpacked: every layer's files, counted in full.
	Size int64
}

// UnpackImage lays the image in the tarball at tarPath (a `docker save`
// tarball, or an OCI image layout in a tar) out as the root filesystem at
// root, layer by layer, whiteouts applied, and returns its config and the
// host paths of the regular files written. It refuses an image for the
// other architecture, one over Lambda's image size quota, one whose layers
// write outside the root, and one that names no runtime (ENTRYPOINT/CMD).
func UnpackImage(tarPath, root string, opt Options) (*Image, []string, error) {
	img, cleanup, err := openImage(tarPath, opt)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, bad(tarPath, "", "reading the image config: %v", err)
	}
	want := goArch(opt.arch())
	if cf.Architecture != "" && want != "" && cf.Architecture != want {
		return nil, nil, bad(tarPath, "", "a %s/%s image, but the target is %s: build it for linux/%s (docker build --platform linux/%s)", cf.OS, cf.Architecture, want, want, want)
	}
	im := &Image{
		Cmd:        append(append([]string(nil), cf.Config.Entrypoint...), cf.Config.Cmd...),
		Env:        cf.Config.Env,
		WorkingDir: cf.Config.WorkingDir,
		Arch:       cf.Architecture,
	}
	if len(im.Cmd) == 0 {
		return nil, nil, bad(tarPath, "", "the image has no ENTRYPOINT and no CMD: Lambda runs them as the runtime (a Lambda base image's ENTRYPOINT is /lambda-entrypoint.sh; a provided.al2023 one needs CMD [\"bootstrap\"] or an ENTRYPOINT)")
	}
	lim := opt.limits()
	ls, err := img.Layers()
	if err != nil {
		return nil, nil, bad(tarPath, "", "reading the image's layers: %v", err)
	}
	var zipped int64
	for _, l := range ls {
		if n, err := l.Size(); err == nil {
			zipped += n
		}
	}
	over := func(n int64) error {
		return bad(tarPath, "", "the image unpacks to more than %s (%s compressed, %d layers): over Lambda's %s limit for a container image, uncompressed with all its layers; slim the image (multi-stage build, fewer layers that rewrite the same files)", gb(n), gb(zipped), len(ls), gb(lim.Image))
	}
	if lim.Image > 0 && zipped > lim.Image {
		return nil, nil, over(zipped)
	}
	w := newWriter(root)
	w.limit, w.over = lim.Image, over
	for i, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, nil, bad(tarPath, "", "layer %d: %v", i+1, err)
		}
		err = w.tarLayer(tar.NewReader(rc), tarPath, fmt.Sprintf("layer %d", i+1))
		rc.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	if err := w.finish(); err != nil {
		return nil, nil, err
	}
	im.Size = w.written
	if err := im.resolveCmd(root, tarPath, opt); err != nil {
		return nil, nil, err
	}
	return im, w.regular(), nil
}

// openImage reads the image of a docker save tarball directly; an OCI
// layout tarball is unpacked to a temporary directory first (the layout
// package reads a directory), and cleanup removes it.
func openImage(tarPath string, opt Options) (v1.Image, func(), error) {
	noop := func() {}
	names, err := tarNames(tarPath)
	if err != nil {
		return nil, noop, err
	}
	switch {
	case names["manifest.json"]:
		img, err := tarball.ImageFromPath(tarPath, nil)
		if err != nil {
			return nil, noop, bad(tarPath, "", "reading the docker save tarball: %v (save one image: docker save IMAGE:TAG -o image.tar)", err)
		}
		return img, noop, nil
	case names["index.json"]:
		dir, err := os.MkdirTemp("", "initprof-oci-layout-")
		if err != nil {
			return nil, noop, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		f, err := os.Open(tarPath)
		if err != nil {
			cleanup()
			return nil, noop, err
		}
		err = newWriter(dir).tarLayer(tar.NewReader(f), tarPath, "the layout")
		f.Close()
		if err != nil {
			cleanup()
			return nil, noop, err
		}
		img, err := layoutImage(dir, tarPath, goArch(opt.arch()))
		if err != nil {
			cleanup()
			return nil, noop, err
		}
		return img, cleanup, nil
	}
	return nil, noop, bad(tarPath, "", "neither a docker save tarball (no manifest.json) nor an OCI image layout (no index.json): give `docker save IMAGE -o image.tar`, or an OCI layout tarred from its directory")
}

// layoutImage picks the image for arch from the layout's index (descending
// into a nested index, as docker's and buildx's layouts have).
func layoutImage(dir, tarPath, arch string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, bad(tarPath, "", "reading the OCI layout: %v", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, bad(tarPath, "", "reading the OCI layout's index: %v", err)
	}
	for depth := 0; depth < 4; depth++ {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, bad(tarPath, "", "reading the OCI layout's index: %v", err)
		}
		var pick *v1.Descriptor
		var seen []string
		for i := range im.Manifests {
			d := &im.Manifests[i]
			if d.Platform != nil && d.Platform.Architecture == "unknown" {
				continue // a build attestation, not an image
			}
			if d.Platform != nil {
				seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
			}
			if d.Platform == nil || d.Platform.Architecture == arch || arch == "" {
				if pick == nil {
					pick = d
				}
			}
		}
		if pick == nil {
			return nil, bad(tarPath, "", "the OCI layout has no image for linux/%s (it has %s): build it for that platform", arch, strings.Join(seen, ", "))
		}
		if pick.MediaType.IsIndex() {
			if idx, err = idx.ImageIndex(pick.Digest); err != nil {
				return nil, bad(tarPath, "", "reading the OCI layout's nested index: %v", err)
			}
			continue
		}
		img, err := idx.Image(pick.Digest)
		if err != nil {
			return nil, bad(tarPath, "", "reading the OCI layout's image %s: %v", pick.Digest, err)
		}
		return img, nil
	}
	return nil, bad(tarPath, "", "the OCI layout's indexes nest too deep")
}

// tarNames lists the top-level members of a tarball.
func tarNames(p string) (map[string]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, bad(p, "", "%v", unwrapPath(err))
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, bad(p, "", "not a readable tar archive (%v): give `docker save IMAGE -o image.tar` or an OCI image layout in a tar", err)
		}
		names[path.Clean(strings.TrimPrefix(h.Name, "/"))] = true
	}
}

// tarLayer applies one tar stream to the tree: an image layer (whiteouts
// remove what lower layers made) or an OCI layout's files.
func (w *writer) tarLayer(tr *tar.Reader, archive, what string) error {
	wrote := map[string]bool{} // this layer's own paths, which its opaque whiteouts keep
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return bad(archive, "", "%s: corrupt tar: %v", what, err)
		}
		rel, err := tarPath(h.Name)
		if err != nil {
			return bad(archive, h.Name, "%s: %v", what, err)
		}
		if rel == "" {
			continue
		}
		dir, base := path.Split(rel)
		switch {
		case base == ".wh..wh..opq":
			// Opaque directory: what lower layers put in it is gone.
			if err := w.opaque(strings.TrimSuffix(dir, "/"), wrote); err != nil {
				return err
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			if err := w.remove(dir + strings.TrimPrefix(base, ".wh.")); err != nil {
				return err
			}
			continue
		}
		wrote[rel] = true
		switch h.Typeflag {
		case tar.TypeDir:
			err = w.dir(rel, os.FileMode(h.Mode).Perm())
		case tar.TypeReg:
			err = w.file(rel, tr, os.FileMode(h.Mode))
		case tar.TypeSymlink:
			// Inside an image, every link resolves in the image: an absolute
			// target is the image's own path, never the host's.
			err = w.symlink(rel, h.Linkname)
		case tar.TypeLink:
			var t string
			if t, err = tarPath(h.Linkname); err == nil {
				err = w.link(rel, t)
			}
		default:
			// Devices and fifos: the sandbox's /dev is its own.
		}
		if err != nil {
			if IsBadInput(err) {
				return err
			}
			return bad(archive, h.Name, "%s: %v", what, err)
		}
	}
}

// opaque empties dir of what earlier layers wrote, keeping this layer's.
func (w *writer) opaque(dir string, keep map[string]bool) error {
	pdir, err := w.parent(dir + "/x")
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(pdir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if !keep[path.Join(dir, e.Name())] {
			if err := w.remove(path.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// tarPath cleans a member name to a path relative to the root, refusing
// one that climbs out of it.
func tarPath(name string) (string, error) {
	n := path.Clean("/" + name)
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New("climbs out of the root with '..' (tar-slip): unpacked it would overwrite files outside the image; rebuild the image with a standard tool (docker build, buildah)")
		}
	}
	return strings.TrimPrefix(n, "/"), nil
}

// resolveCmd makes the runtime's executable an absolute path in the image
// (Lambda execs ENTRYPOINT[0] through the image's PATH) and checks it runs.
func (im *Image) resolveCmd(root, tarPath string, opt Options) error {
	exe := im.Cmd[0]
	if !strings.Contains(exe, "/") {
		pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, kv := range im.Env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				pathVar = v
			}
		}
		found := ""
		for _, d := range filepath.SplitList(pathVar) {
			c := path.Join("/", d, exe)
			if st, err := statIn(root, c); err == nil && st.Mode().IsRegular() {
				found = c
				break
			}
		}
		if found == "" {
			return bad(tarPath, "", "its ENTRYPOINT/CMD runs %q, which is not on the image's PATH (%s): give an absolute path", exe, pathVar)
		}
		exe = found
	} else if !path.IsAbs(exe) {
		wd := im.WorkingDir
		if wd == "" {
			wd = "/"
		}
		exe = path.Join(wd, exe)
	}
	host, err := elfinfo.ResolveInRoot(root, exe)
	if err != nil {
		return bad(tarPath, "", "its ENTRYPOINT/CMD runs %s, which the image does not have", exe)
	}
	st, err := os.Stat(host)
	if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return bad(tarPath, "", "its ENTRYPOINT/CMD runs %s, which is not an executable file in the image (chmod +x it in the Dockerfile)", exe)
	}
	head, err := readHead(host, 64)
	if err != nil {
		return err
	}
	if arch, ok := elfinfo.HeaderArch(head); ok {
		if want := opt.arch(); want != "" && arch != want {
			return bad(tarPath, exe, "the runtime is an %s binary, but the target is %s: rebuild it for %s", arch, want, want)
		}
	} else if !strings.HasPrefix(string(head), "#!") {
		return bad(tarPath, exe, "the runtime (ENTRYPOINT/CMD) is neither an ELF executable nor a #! script")
	}
	im.Cmd[0] = exe
	return nil
}

func statIn(root, p string) (os.FileInfo, error) {
	host, err := elfinfo.ResolveInRoot(root, p)
	if err != nil {
		return nil, err
	}
	return os.Stat(host)
}

func readHead(p string, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(n)))
}

// goArch is an elfinfo architecture in the OCI naming image configs use.
func goArch(a string) string {
	switch a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

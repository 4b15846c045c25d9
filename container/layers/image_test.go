package layers

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tarEntry is one member of an image layer a test builds.
type tarEntry struct {
	name string
	body string
	mode int64
	typ  byte // 0: a regular file, or a directory when name ends in /
	link string
}

func layer(t testing.TB, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.name, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// image builds an image of layers with a config, as a Dockerfile would.
func image(t testing.TB, cfg v1.Config, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Config = arch, "linux", cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// dockerSave writes img as `docker save` does.
func dockerSave(t testing.TB, dir string, img v1.Image) string {
	t.Helper()
	p := filepath.Join(dir, "image.tar")
	tag, _ := name.NewTag("initprof.test/fn:latest")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociTar writes img as an OCI image layout, tarred (docker buildx
// --output type=oci, skopeo copy oci-archive:).
func ociTar(t testing.TB, dir string, img v1.Image, arch string) string {
	t.Helper()
	ld := filepath.Join(dir, "layout")
	p, err := layout.Write(ld, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch})); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "oci.tar")
	f, _ := os.Create(out)
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(ld)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	f.Close()
	return out
}

// TestUnpackImage lays a two-layer image out as its rootfs, in both
// tarball formats: the second layer's whiteouts remove what the first made,
// links resolve inside the image, and ENTRYPOINT+CMD become the runtime.
func TestUnpackImage(t *testing.T) {
	exe := elfHead(t)
	arch := goArch(elfinfoHost())
	base := layer(t,
		tarEntry{name: "usr/"}, tarEntry{name: "usr/bin/"},
		tarEntry{name: "usr/bin/runtime", body: exe, mode: 0o755},
		tarEntry{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		tarEntry{name: "etc/", mode: 0o755}, tarEntry{name: "etc/gone", body: "x"},
		tarEntry{name: "cache/"}, tarEntry{name: "cache/old", body: "x"},
		tarEntry{name: "opt/extensions/ext", body: exe, mode: 0o755},
	)
	top := layer(t,
		tarEntry{name: "etc/.wh.gone"},
		tarEntry{name: "cache/.wh..wh..opq"}, tarEntry{name: "cache/new", body: "y"},
		// An absolute link resolves in the image, never on the host.
		tarEntry{name: "hostetc", typ: tar.TypeSymlink, link: "/etc"},
		tarEntry{name: "hostetc/written", body: "inside"},
		tarEntry{name: "usr/bin/again", typ: tar.TypeLink, link: "usr/bin/runtime"},
	)
	cfg := v1.Config{Entrypoint: []string{"runtime"}, Cmd: []string{"handler.fn"}, Env: []string{"PATH=/bin", "FOO=bar"}, WorkingDir: "/var/task"}
	img := image(t, cfg, arch, base, top)
	for _, format := range []string{"docker save", "oci layout"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			tarPath := dockerSave(t, dir, img)
			if format == "oci layout" {
				tarPath = ociTar(t, dir, img, arch)
			}
			root := filepath.Join(dir, "root")
			os.Mkdir(root, 0o755)
			im, files, err := UnpackImage(tarPath, root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(im.Cmd, " "); got != "/bin/runtime handler.fn" {
				t.Errorf("cmd %q, want /bin/runtime handler.fn (ENTRYPOINT on the image's PATH, then CMD)", got)
			}
			if im.WorkingDir != "/var/task" || len(im.Env) != 2 || im.Arch != arch {
				t.Errorf("config %+v", im)
			}
			for p, want := range map[string]bool{"etc/gone": false, "cache/old": false, "cache/new": true, "etc/written": true, "usr/bin/again": true, "opt/extensions/ext": true} {
				if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
					t.Errorf("%s: exists %v, want %v", p, err == nil, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "written")); err == nil {
				t.Error("a link in the image wrote outside its root")
			}
			if len(files) != 5 { // runtime, again, ext, cache/new, etc/written
				t.Errorf("files %v", files)
			}
			if im.Size == 0 {
				t.Error("no size counted")
			}
		})
	}
}

// elfinfoHost is the target when Options leave it: this machine.
func elfinfoHost() string { return Options{}.arch() }

// TestBadImages holds each image Lambda would refuse, or could not run, to
// its error.
func TestBadImages(t *testing.T) {
	exe := elfHead(t)
	other, otherArch := otherArchHead(t)
	arch := goArch(elfinfoHost())
	run := v1.Config{Entrypoint: []string{"/runtime"}}
	ok := tarEntry{name: "runtime", body: exe, mode: 0o755}
	cases := []struct {
		name   string
		img    func() v1.Image
		limits *Limits
		raw    string // a file that is not an image at all
		want   []string
	}{
		{name: "wrong architecture", img: func() v1.Image { return image(t, run, "s390x", layer(t, ok)) }, want: []string{"linux/s390x image", "the target is " + arch}},
		{name: "runtime for the other arch", img: func() v1.Image {
			return image(t, run, arch, layer(t, tarEntry{name: "runtime", body: other, mode: 0o755}))
		}, want: []string{"an " + otherArch + " binary"}},
		{name: "no entrypoint", img: func() v1.Image { return image(t, v1.Config{}, arch, layer(t, ok)) }, want: []string{"no ENTRYPOINT and no CMD"}},
		{name: "entrypoint missing", img: func() v1.Image {
			return image(t, v1.Config{Entrypoint: []string{"/nowhere"}}, arch, layer(t, ok))
		}, want: []string{"/nowhere", "does not have"}},
		{name: "entrypoint not on PATH", img: func() v1.Image {
			return image(t, v1.Config{Cmd: []string{"bootstrap"}}, arch, layer(t, ok))
		}, want: []string{`"bootstrap"`, "not on the image's PATH"}},
		{name: "entrypoint not executable", img: func() v1.Image {
			return image(t, run, arch, layer(t, tarEntry{name: "runtime", body: exe, mode: 0o644}))
		}, want: []string{"not an executable file"}},
		{name: "tar-slip", img: func() v1.Image {
			return image(t, run, arch, layer(t, ok, tarEntry{name: "../../etc/evil", body: "x"}))
		}, want: []string{"../../etc/evil", "tar-slip"}},
		{name: "over the image limit", limits: &Limits{Image: 100}, img: func() v1.Image {
			return image(t, run, arch, layer(t, ok, tarEntry{name: "big", body: strings.Repeat("x", 5000)}))
		}, want: []string{"over Lambda's 0.0 GB limit for a container image"}},
		{name: "not an image", raw: "plain text", want: []string{"not a readable tar archive"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var p string
			if c.raw != "" {
				p = filepath.Join(dir, "image.tar")
				os.WriteFile(p, []byte(c.raw), 0o644)
			} else {
				p = dockerSave(t, dir, c.img())
			}
			root := filepath.Join(dir, "root")
			os.Mkdir(root, 0o755)
			_, _, err := UnpackImage(p, root, Options{Limits: c.limits})
			if err == nil {
				t.Fatal("no error")
			}
			if !IsBadInput(err) {
				t.Errorf("%v: not a bad-input error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

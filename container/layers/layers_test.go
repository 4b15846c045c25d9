package layers

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/elfinfo"
)

// entry is one member of a zip a test builds.
type entry struct {
	name string
	body string
	mode os.FileMode // 0: 0644 for files, 0755 for directories
	link string      // a symlink's target
}

// elfHead is an ELF header for this machine (the test binary's own first
// bytes), enough for Check, which reads no further.
func elfHead(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:64])
}

// otherArchHead is an ELF header for the architecture this machine is not.
func otherArchHead(t testing.TB) (string, string) {
	b := []byte(elfHead(t))
	if elfinfo.HostArch() == "aarch64" {
		b[18], b[19] = 62, 0 // EM_X86_64
		return string(b), "x86_64"
	}
	b[18], b[19] = 183, 0 // EM_AARCH64
	return string(b), "aarch64"
}

// mkzip writes a zip with Unix modes (creator 3), as Info-ZIP's zip does.
func mkzip(t testing.TB, dir, name string, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		switch {
		case e.link != "":
			mode = os.ModeSymlink | 0o777
		case strings.HasSuffix(e.name, "/"):
			if mode == 0 {
				mode = 0o755
			}
			mode |= os.ModeDir
		case mode == 0:
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if e.link != "" {
			body = e.link
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnpackLayers lays out two layers and a function as Lambda does: in
// order, the later layer's file winning, modes and links kept.
func TestUnpackLayers(t *testing.T) {
	dir := t.TempDir()
	exe := elfHead(t)
	a := mkzip(t, dir, "a.zip", []entry{
		{name: "extensions/", mode: 0o755},
		{name: "extensions/alpha", body: exe, mode: 0o755},
		{name: "lib/libshared.so", body: "from a"},
		{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o700},
		{name: "etc/private/", mode: 0o750},
	})
	b := mkzip(t, dir, "b.zip", []entry{
		{name: "lib/libshared.so", body: "from b"},
		{name: "lib/libalias.so", link: "libshared.so"},
		{name: "extensions/beta", link: "../bin/beta"},
		{name: "bin/beta", body: exe, mode: 0o755},
	})
	fn := mkzip(t, dir, "fn.zip", []entry{{name: "bootstrap", body: exe, mode: 0o755}, {name: "handler.txt", body: "hi"}})
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	man, files, err := Unpack(Deployment{Layers: []string{a, b}, Function: fn}, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(man.Extensions); got != "alpha(a.zip) beta(b.zip)" {
		t.Errorf("extensions %s, want alpha(a.zip) beta(b.zip)", got)
	}
	if man.Bootstrap != "/var/task/bootstrap" {
		t.Errorf("bootstrap %q", man.Bootstrap)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
	if got := read("opt/lib/libshared.so"); got != "from b" {
		t.Errorf("libshared.so holds %q: the later layer must win", got)
	}
	if got := read("opt/lib/libalias.so"); got != "from b" {
		t.Errorf("the symlink reads %q", got)
	}
	if got := read("var/task/handler.txt"); got != "hi" {
		t.Errorf("function file %q", got)
	}
	for p, want := range map[string]os.FileMode{
		"opt/extensions/alpha": 0o755, "opt/bin/tool": 0o700, "opt/etc/private": 0o750 | os.ModeDir,
		"opt/lib/libshared.so": 0o644, "var/task/bootstrap": 0o755,
	} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := st.Mode() & (os.ModePerm | os.ModeDir); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	if l, _ := os.Readlink(filepath.Join(root, "opt/extensions/beta")); l != "../bin/beta" {
		t.Errorf("extensions/beta links to %q", l)
	}
	want := map[string]bool{}
	for _, p := range []string{"opt/extensions/alpha", "opt/lib/libshared.so", "opt/bin/tool", "opt/bin/beta", "var/task/bootstrap", "var/task/handler.txt"} {
		want[filepath.Join(root, p)] = true
	}
	if len(files) != len(want) {
		t.Errorf("files %v, want %d of them", files, len(want))
	}
	for _, f := range files {
		if !want[f] {
			t.Errorf("unexpected file %s", f)
		}
	}
}

func names(es []Extension) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Name+"("+filepath.Base(e.Layer)+")")
	}
	return strings.Join(s, " ")
}

// TestBadLayers holds each archive Lambda would refuse, or could not run,
// to its error: what is wrong, where, and which limit.
func TestBadLayers(t *testing.T) {
	exe := elfHead(t)
	other, otherArch := otherArchHead(t)
	ext := entry{name: "extensions/ok", body: exe, mode: 0o755}
	small := &Limits{Unzipped: 1000, Layers: 5, Image: 1 << 30, Zipped: 1 << 20}
	cases := []struct {
		name   string
		layers [][]entry
		fn     []entry // a function zip, when set
		others bool
		limits *Limits
		want   []string
	}{
		{name: "zip-slip", layers: [][]entry{{ext, {name: "../../etc/cron.d/evil", body: "x"}}}, want: []string{"../../etc/cron.d/evil", "zip-slip", "climbs out of /opt"}},
		{name: "zip-slip inside", layers: [][]entry{{ext, {name: "lib/../../x", body: "x"}}}, want: []string{"lib/../../x", "zip-slip"}},
		{name: "absolute path", layers: [][]entry{{ext, {name: "/etc/passwd", body: "x"}}}, want: []string{"/etc/passwd", "absolute path"}},
		{name: "symlink climbing out", layers: [][]entry{{ext, {name: "lib/libc.so", link: "../../etc/shadow"}}}, want: []string{"lib/libc.so", "symlink to ../../etc/shadow", "outside /opt"}},
		{name: "absolute symlink outside", layers: [][]entry{{ext, {name: "lib/libc.so", link: "/usr/lib/libc.so"}}}, want: []string{"outside /opt"}},
		{name: "function symlink outside", layers: [][]entry{{ext}}, fn: []entry{{name: "bootstrap", body: exe, mode: 0o755}, {name: "conf", link: "/opt/conf"}}, want: []string{"outside /var/task"}},
		{name: "no extensions", layers: [][]entry{{{name: "lib/libx.so", body: "x"}}}, want: []string{"no extensions/", "nothing to run", "holds lib"}},
		{name: "zipped one level up", layers: [][]entry{{{name: "layer/extensions/foo", body: exe, mode: 0o755}}}, want: []string{"no extensions/", "top level holds layer"}},
		{name: "extension not executable", layers: [][]entry{{{name: "extensions/foo", body: exe, mode: 0o644}}}, want: []string{"extensions/foo", "not executable (mode 0644)", "chmod +x"}},
		{name: "extension not a program", layers: [][]entry{{{name: "extensions/README", body: "hello, this is text", mode: 0o755}}}, want: []string{"extensions/README", "neither an ELF executable nor a #! script"}},
		{name: "wrong architecture", layers: [][]entry{{{name: "extensions/foo", body: other, mode: 0o755}}}, want: []string{"extensions/foo", "an " + otherArch + " binary", "the target is " + elfinfo.HostArch()}},
		{name: "wrong architecture through a link", layers: [][]entry{{{name: "extensions/foo", link: "../bin/foo"}, {name: "bin/foo", body: other, mode: 0o755}}}, want: []string{"bin/foo", "an " + otherArch + " binary"}},
		{name: "over the unzipped limit", limits: small, layers: [][]entry{{ext, {name: "lib/big", body: strings.Repeat("x", 600)}}, {{name: "lib/big2", body: strings.Repeat("y", 600)}}}, want: []string{"over Lambda's 0.0 MB limit for a function and all its layers unzipped", "l0.zip", "l1.zip"}},
		{name: "six layers", layers: [][]entry{{ext}, {}, {}, {}, {}, {}}, want: []string{"6 layers given", "at most 5 layers"}},
		{name: "function without bootstrap", layers: [][]entry{{ext}}, fn: []entry{{name: "main", body: exe, mode: 0o755}}, want: []string{"fn.zip", "no bootstrap at the zip's top level", "holds main"}},
		{name: "function bootstrap for the other arch", fn: []entry{{name: "bootstrap", body: other, mode: 0o755}}, want: []string{"bootstrap", "an " + otherArch + " binary"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := Deployment{Others: c.others}
			for i, l := range c.layers {
				d.Layers = append(d.Layers, mkzip(t, dir, "l"+string(rune('0'+i))+".zip", l))
			}
			if c.fn != nil {
				d.Function = mkzip(t, dir, "fn.zip", c.fn)
			}
			_, err := Check(d, Options{Limits: c.limits})
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
			// Unpack refuses it too, before writing anything.
			root := filepath.Join(dir, "root")
			os.Mkdir(root, 0o755)
			if _, _, err := Unpack(d, root, Options{Limits: c.limits}); err == nil {
				t.Error("Unpack took it")
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Errorf("Unpack wrote %d entries before refusing", len(ents))
			}
		})
	}
}

// TestLayerNotes: what Lambda takes but a user should know is a note, not
// an error (a zip over the direct-upload limit goes through S3), and a
// library layer next to a plain extension is no mistake.
func TestLayerNotes(t *testing.T) {
	dir := t.TempDir()
	lib := mkzip(t, dir, "lib.zip", []entry{{name: "lib/libx.so", body: strings.Repeat("z", 5000)}})
	man, err := Check(Deployment{Layers: []string{lib}, Others: true}, Options{Limits: &Limits{Unzipped: 1 << 20, Layers: 5, Zipped: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Notes) != 1 || !strings.Contains(man.Notes[0], "direct upload") || !strings.Contains(man.Notes[0], "S3") {
		t.Errorf("notes %q, want the direct-upload limit", man.Notes)
	}
	if len(man.Extensions) != 0 {
		t.Errorf("extensions %v", man.Extensions)
	}
}

func TestNotAZip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "layer.zip")
	os.WriteFile(p, []byte("not a zip at all"), 0o644)
	if IsZip(p) {
		t.Error("IsZip took plain text")
	}
	_, err := Check(Deployment{Layers: []string{p}}, Options{})
	if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), "not a readable zip archive") {
		t.Errorf("err %v", err)
	}
	if !IsZip(mkzip(t, dir, "ok.zip", []entry{{name: "x", body: "y"}})) {
		t.Error("IsZip refused a zip")
	}
}

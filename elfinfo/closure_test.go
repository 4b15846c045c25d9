package elfinfo

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// gccBuild compiles src (C) into dir/name with args; it skips the test without gcc.
func gccBuild(t *testing.T, dir, name, src string, args ...string) string {
	t.Helper()
	return ccBuild(t, "gcc", dir, name, src, args...)
}

func ccBuild(t *testing.T, cc, dir, name, src string, args ...string) string {
	t.Helper()
	testutil.RequireTool(t, cc)
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(cc, append([]string{"-o", out, c}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, b)
	}
	return out
}

// TestResolveClosureMatchesLdd resolves host binaries and checks the files, in
// load order, against ldd, which asks the real loader.
func TestResolveClosureMatchesLdd(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("host loader layout only known for amd64/arm64")
	}
	testutil.RequireTool(t, "ldd")
	dir := t.TempDir()
	bins := map[string]string{
		"libm": gccBuild(t, dir, "m", "#include <math.h>\n#include <stdio.h>\nint main(int c,char**v){printf(\"%f\\n\",cos(c));return 0;}\n", "-lm"),
	}
	// libcurl pulls in ~30 libraries, several levels deep: a real BFS order test.
	if _, err := os.Stat("/usr/include/x86_64-linux-gnu/curl/curl.h"); err == nil || fileExists("/usr/include/curl/curl.h") {
		bins["libcurl"] = gccBuild(t, dir, "curl", "#include <curl/curl.h>\nint main(){return curl_global_init(CURL_GLOBAL_DEFAULT);}\n", "-lcurl")
	} else {
		t.Log("libcurl headers absent (apt-get install libcurl4-openssl-dev): only the libm case runs")
	}
	for name, bin := range bins {
		t.Run(name, func(t *testing.T) {
			c, err := ResolveClosure(bin, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Missing) != 0 {
				t.Errorf("missing %v", c.Missing)
			}
			var mine []string
			for _, l := range c.Libs {
				if _, err := os.Stat(l.HostPath); err != nil {
					t.Errorf("%s: host path %s: %v", l.Soname, l.HostPath, err)
				}
				if l.Path != c.Interp {
					mine = append(mine, l.Path)
				}
			}
			out, err := exec.Command("ldd", bin).Output()
			if err != nil {
				t.Fatalf("ldd: %v", err)
			}
			var want []string
			interp := ""
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 3 && f[1] == "=>":
					want = append(want, f[2])
				case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
					interp = f[0]
				}
			}
			// ldd lists libraries in the loader's load order (breadth-first).
			if strings.Join(mine, " ") != strings.Join(want, " ") {
				t.Errorf("closure differs from ldd\n mine: %v\n ldd:  %v", mine, want)
			}
			if c.Interp != interp || c.InterpHost == "" {
				t.Errorf("interp %q (host %q), ldd says %q", c.Interp, c.InterpHost, interp)
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestResolveClosureRootfs builds a small rootfs whose symlinks are absolute and
// would point at the host's files if followed outside the rootfs, plus $ORIGIN
// RUNPATH/RPATH lookups and a wrong-machine decoy that ld.so would skip.
func TestResolveClosureRootfs(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("builds x86_64 libraries with the host gcc")
	}
	dir := t.TempDir()
	host, err := ResolveClosure(gccBuild(t, dir, "probe", "int main(){return 0;}"), "")
	if err != nil {
		t.Fatal(err)
	}
	var libc string
	for _, l := range host.Libs {
		if l.Soname == "libc.so.6" {
			libc = l.HostPath
		}
	}
	if libc == "" || host.InterpHost == "" {
		t.Fatalf("host closure lacks libc or ld.so: %+v", host)
	}

	root := filepath.Join(dir, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(src, dst string) {
		t.Helper()
		b, err := os.ReadFile(src)
		must(err)
		must(os.MkdirAll(filepath.Dir(dst), 0o755))
		must(os.WriteFile(dst, b, 0o755))
	}
	// Debian-like merged /usr: /lib -> usr/lib, plus an absolute ld.so link.
	ma := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	copyFile(libc, filepath.Join(ma, "libc.so.6.real"))
	must(os.Symlink("/usr/lib/x86_64-linux-gnu/libc.so.6.real", filepath.Join(ma, "libc.so.6")))
	copyFile(host.InterpHost, filepath.Join(ma, "ld-linux-x86-64.so.2"))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.MkdirAll(filepath.Join(root, "lib64"), 0o755))
	must(os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "lib64/ld-linux-x86-64.so.2")))

	// libfoo (RUNPATH $ORIGIN/../lib from the app), libbar (RPATH of libfoo).
	app := filepath.Join(root, "opt/app/bin")
	must(os.MkdirAll(app, 0o755))
	must(os.MkdirAll(filepath.Join(root, "opt/app/lib"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "opt/app/bar"), 0o755))
	gccBuild(t, filepath.Join(root, "opt/app/bar"), "libbar.so", "int bar(void){return 2;}", "-shared", "-fPIC", "-Wl,-soname,libbar.so")
	gccBuild(t, filepath.Join(root, "opt/app/lib"), "libfoo.so", "int bar(void); int foo(void){return bar()+1;}", "-shared", "-fPIC",
		"-Wl,-soname,libfoo.so", "-L"+filepath.Join(root, "opt/app/bar"), "-lbar", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../bar")
	// A wrong-machine libbaz in /usr/local/lib (listed by ld.so.conf, so searched
	// first) must be skipped for the right one in /lib/x86_64-linux-gnu.
	gccBuild(t, dir, "libbaz.so", "int baz(void){return 3;}", "-shared", "-fPIC", "-Wl,-soname,libbaz.so")
	copyFile(filepath.Join(dir, "libbaz.so"), filepath.Join(ma, "libbaz.so"))
	decoy, err := os.ReadFile(filepath.Join(dir, "libbaz.so"))
	must(err)
	binary.LittleEndian.PutUint16(decoy[18:], 183) // e_machine = EM_AARCH64
	must(os.MkdirAll(filepath.Join(root, "usr/local/lib"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/local/lib/libbaz.so"), decoy, 0o755))
	must(os.MkdirAll(filepath.Join(root, "etc/ld.so.conf.d"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("include /etc/ld.so.conf.d/*.conf\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/ld.so.conf.d/local.conf"), []byte("# local\n/usr/local/lib\n"), 0o644))

	// libnotthere.so.1 exists only at link time, outside the rootfs.
	must(os.MkdirAll(filepath.Join(dir, "stub"), 0o755))
	gccBuild(t, filepath.Join(dir, "stub"), "libnotthere_stub.so", "int nt(void){return 0;}", "-shared", "-fPIC", "-Wl,-soname,libnotthere.so.1")
	gccBuild(t, app, "app", "int foo(void); int baz(void); int nt(void); int main(){return foo()+baz()+nt()-6;}",
		"-L"+filepath.Join(root, "opt/app/lib"), "-lfoo", "-L"+ma, "-lbaz", "-lnotthere_stub",
		"-L"+filepath.Join(dir, "stub"), "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
	c, err := ResolveClosure(filepath.Join(app, "app"), root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Lib{}
	for _, l := range c.Libs {
		got[l.Soname] = l
		if !strings.HasPrefix(l.HostPath, root+"/") {
			t.Errorf("%s resolved outside the rootfs: %s", l.Soname, l.HostPath)
		}
	}
	want := map[string]string{
		"libfoo.so":            "/opt/app/lib/libfoo.so",
		"libbar.so":            "/opt/app/bar/libbar.so",
		"libbaz.so":            "/lib/x86_64-linux-gnu/libbaz.so",
		"libc.so.6":            "/lib/x86_64-linux-gnu/libc.so.6",
		"ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
	}
	for so, p := range want {
		if got[so].Path != p {
			t.Errorf("%s: path %q, want %q", so, got[so].Path, p)
		}
	}
	if h := got["libc.so.6"].HostPath; h != filepath.Join(ma, "libc.so.6.real") {
		t.Errorf("libc host path %s, want the rootfs symlink target", h)
	}
	if c.Interp != "/lib64/ld-linux-x86-64.so.2" || c.InterpHost != filepath.Join(ma, "ld-linux-x86-64.so.2") {
		t.Errorf("interp %q host %q", c.Interp, c.InterpHost)
	}
	if strings.Join(c.Missing, ",") != "libnotthere.so.1" {
		t.Errorf("missing = %v, want [libnotthere.so.1]", c.Missing)
	}
	// Breadth-first: the app's direct needs come before libbar (needed by libfoo).
	order := map[string]int{}
	for i, l := range c.Libs {
		order[l.Soname] = i
	}
	if order["libbar.so"] < order["libbaz.so"] || order["libbar.so"] < order["libfoo.so"] {
		t.Errorf("not breadth-first: %v", c.Libs)
	}
}

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.WriteFile(filepath.Join(root, "a/b/f"), nil, 0o644)
	os.Symlink("/a/b", filepath.Join(root, "abs"))
	os.Symlink("../../../../a/b/f", filepath.Join(root, "a/b/up"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	for _, tc := range []struct{ in, want string }{
		{"/abs/f", "/a/b/f"},
		{"/a/b/up", "/a/b/f"},
		{"/a/../../a/b/f", "/a/b/f"},
		{"/loop", ""},
		{"/nope", ""},
	} {
		got, err := ResolveInRoot(root, tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: resolved to %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != filepath.Join(root, tc.want) {
			t.Errorf("%s: %q, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// TestOriginPlacement builds a binary in bin/ whose libraries are found through
// $ORIGIN (its RUNPATH or RPATH ../lib, and a library's own $ORIGIN/sub), then
// checks each Lib names the object whose $ORIGIN found it, and that PlacedAt
// moves exactly those libraries along with the binary: installed at
// /opt/extensions/app, $ORIGIN/../lib is /opt/lib, while libc stays put.
func TestOriginPlacement(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("host loader layout only known for amd64/arm64")
	}
	for _, tc := range []struct {
		name, tags string
		// the object whose $ORIGIN found libinner: libouter's own RUNPATH, or,
		// with DT_RPATH and no RUNPATH in libouter, the binary's inherited RPATH
		innerOrigin string
		innerAt     string
	}{
		{"runpath", "--enable-new-dtags", "outer", "/opt/lib/sub/libinner.so"},
		{"rpath", "--disable-new-dtags", "binary", "/opt/lib/libinner.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lib, bin := filepath.Join(dir, "lib"), filepath.Join(dir, "bin")
			innerDir := lib
			if tc.innerOrigin == "outer" {
				innerDir = filepath.Join(lib, "sub")
			}
			outerFlags := []string{"-shared", "-fPIC", "-Wl,-soname,libouter.so", "-L" + innerDir, "-linner"}
			if tc.innerOrigin == "outer" {
				outerFlags = append(outerFlags, "-Wl,"+tc.tags+",-rpath,$ORIGIN/sub")
			}
			for _, d := range []string{innerDir, bin} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			inner := gccBuild(t, innerDir, "libinner.so", "int inner(void){return 1;}", "-shared", "-fPIC", "-Wl,-soname,libinner.so")
			outer := gccBuild(t, lib, "libouter.so", "int inner(void); int outer(void){return inner()+1;}", outerFlags...)
			app := gccBuild(t, bin, "app", "int outer(void); int main(){return outer()-2;}",
				"-L"+lib, "-louter", "-Wl,"+tc.tags+",-rpath,/nonexistent:$ORIGIN/../lib", "-Wl,-rpath-link,"+innerDir)
			if out, err := exec.Command(app).CombinedOutput(); err != nil {
				t.Fatalf("the test binary does not run on the host: %v\n%s", err, out)
			}
			c, err := ResolveClosure(app, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Missing) != 0 {
				t.Fatalf("missing %v", c.Missing)
			}
			if c.Binary != app {
				t.Errorf("Binary %q, want %q", c.Binary, app)
			}
			wantOrigin := map[string]string{"libouter.so": app, "libinner.so": app, "libc.so.6": ""}
			if tc.innerOrigin == "outer" {
				wantOrigin["libinner.so"] = outer
			}
			wantAt := map[string]string{"libouter.so": "/opt/lib/libouter.so", "libinner.so": tc.innerAt}
			placed := c.PlacedAt("/opt/extensions/app")
			for i, l := range c.Libs {
				if w, ok := wantOrigin[l.Soname]; ok && l.Origin != w {
					t.Errorf("%s: Origin %q, want %q", l.Soname, l.Origin, w)
				}
				want, ok := wantAt[l.Soname]
				if !ok {
					want = l.Path // not found through $ORIGIN: stays where it is
				}
				if placed[i] != want {
					t.Errorf("%s: placed at %q, want %q", l.Soname, placed[i], want)
				}
				if l.Soname == "libinner.so" && l.HostPath != inner {
					t.Errorf("libinner host path %s, want %s", l.HostPath, inner)
				}
			}
		})
	}
}

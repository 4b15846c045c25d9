package elfinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// cSrc has something for each relocation kind in a PIE: a pointer table
// (RELATIVE), a function pointer to a libc function (GLOB_DAT), calls through
// the PLT (JUMP_SLOT), and a large zero-filled array (bss).
const cSrc = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static const char *names[] = {"alpha", "beta", "gamma", "delta"};
size_t (*len_fn)(const char *) = strlen;
char big[100000];
int main(int argc, char **argv) {
	const char *h = getenv("HOME");
	printf("%s %zu %d\n", names[argc & 3], len_fn(h ? h : ""), big[argc]);
	return 0;
}
`

const goSrc = `package main

import "fmt"

func main() { fmt.Println("hello") }
`

const rustSrc = `fn main() {
    let v: Vec<String> = std::env::args().collect();
    println!("{:?}", v);
}
`

const cgoSrc = `package main

// #include <stdlib.h>
import "C"

import "fmt"

func main() { fmt.Println(C.abs(-3)) }
`

type build struct {
	name string
	cc   string   // "gcc", "aarch64-linux-gnu-gcc", or "go"
	args []string // compiler/linker flags
	env  []string // for go builds
	src  string
	want func(t *testing.T, i *Info)
}

var builds = []build{
	{name: "c-lazy", cc: "gcc", args: []string{"-Wl,-z,lazy"}, want: func(t *testing.T, i *Info) {
		eq(t, "linkage", i.Linkage, "dynamic-pie")
		eq(t, "bind_now", i.BindNow, false)
		eq(t, "df_1_now", i.DF1Now, false)
		eq(t, "lazy_binding", i.LazyBinding, true)
		eq(t, "relro", i.RELRO, "partial")
		nonzero(t, "jump_slot", i.Relocs.JumpSlot)
	}},
	{name: "c-now", cc: "gcc", args: []string{"-Wl,-z,now"}, want: func(t *testing.T, i *Info) {
		eq(t, "linkage", i.Linkage, "dynamic-pie")
		eq(t, "bind_now", i.BindNow, true)
		eq(t, "df_1_now", i.DF1Now, true)
		eq(t, "lazy_binding", i.LazyBinding, false)
		eq(t, "relro", i.RELRO, "full")
	}},
	{name: "c-pie", cc: "gcc", args: []string{"-fPIE", "-pie"}, want: func(t *testing.T, i *Info) {
		eq(t, "type", i.Type, "DYN")
		eq(t, "linkage", i.Linkage, "dynamic-pie")
		eq(t, "df_1_pie", i.DF1PIE, true)
		nonzero(t, "relative", i.Relocs.Relative)
		eq(t, "needed", strings.Join(i.Needed, ","), "libc.so.6")
		eq(t, "interp", i.Interp, "/lib64/ld-linux-x86-64.so.2")
	}},
	{name: "c-nopie", cc: "gcc", args: []string{"-fno-PIE", "-no-pie"}, want: func(t *testing.T, i *Info) {
		eq(t, "type", i.Type, "EXEC")
		eq(t, "linkage", i.Linkage, "dynamic")
		eq(t, "df_1_pie", i.DF1PIE, false)
		// Absolute addresses are fixed at link time: nothing RELATIVE to apply.
		eq(t, "relative", i.Relocs.Relative, 0)
	}},
	{name: "c-static", cc: "gcc", args: []string{"-static"}, want: func(t *testing.T, i *Info) {
		eq(t, "type", i.Type, "EXEC")
		eq(t, "linkage", i.Linkage, "static")
		eq(t, "interp", i.Interp, "")
		eq(t, "needed", len(i.Needed), 0)
		eq(t, "imported", i.ImportedSymbols, 0)
		// glibc's ifuncs (memcpy, strlen...) are IRELATIVE in .rela.plt.
		nonzero(t, "IRELATIVE", i.Relocs.OtherByType["IRELATIVE"])
		eq(t, "glibc_required", i.GlibcRequired, "")
	}},
	{name: "c-static-pie", cc: "gcc", args: []string{"-static-pie"}, want: func(t *testing.T, i *Info) {
		eq(t, "type", i.Type, "DYN")
		eq(t, "linkage", i.Linkage, "static-pie")
		eq(t, "interp", i.Interp, "")
		eq(t, "needed", len(i.Needed), 0)
		nonzero(t, "relative", i.Relocs.Relative)
		eq(t, "glob_dat", i.Relocs.GlobDat, 0)
	}},
	{name: "c-relr", cc: "gcc", args: []string{"-Wl,-z,pack-relative-relocs"}, want: func(t *testing.T, i *Info) {
		eq(t, "relr", i.Relr, true)
		nonzero(t, "relr_relative", i.Relocs.RelrRelative)
		eq(t, "relative==relr_relative", i.Relocs.Relative, i.Relocs.RelrRelative)
		nonzero(t, "relr_bytes", int(i.Relocs.RelrBytes))
		eq(t, "glibc_required", i.GlibcRequired, "2.36")
		if len(i.Warnings) == 0 || !strings.Contains(i.Warnings[0], "2.36") || !strings.Contains(i.Warnings[0], "AL2023") && !strings.Contains(i.Warnings[0], "Amazon Linux 2023") {
			t.Errorf("warnings = %q, want the glibc 2.36 / AL2023 warning", i.Warnings)
		}
	}},
	{name: "c-norelr", cc: "gcc", args: []string{"-Wl,-z,nopack-relative-relocs"}, want: func(t *testing.T, i *Info) {
		eq(t, "relr", i.Relr, false)
		eq(t, "relr_relative", i.Relocs.RelrRelative, 0)
		eq(t, "glibc_required", i.GlibcRequired, "2.34")
		eq(t, "warnings", len(i.Warnings), 0)
	}},
	{name: "c-stripped", cc: "gcc", args: []string{"-s", "-Wl,--hash-style=sysv"}, want: func(t *testing.T, i *Info) {
		eq(t, "stripped", i.Stripped, true)
		eq(t, "debug_info", i.DebugInfo, false)
		eq(t, "sysv_hash", i.SysVHash, true)
		eq(t, "gnu_hash", i.GNUHash, false)
	}},
	{name: "c-debug", cc: "gcc", args: []string{"-g", "-Wl,--hash-style=both"}, want: func(t *testing.T, i *Info) {
		eq(t, "stripped", i.Stripped, false)
		eq(t, "debug_info", i.DebugInfo, true)
		eq(t, "sysv_hash", i.SysVHash, true)
		eq(t, "gnu_hash", i.GNUHash, true)
		eq(t, "language", i.Toolchain.Language, "c")
		if !strings.HasPrefix(i.Toolchain.GCC, "GCC: ") {
			t.Errorf("gcc = %q", i.Toolchain.GCC)
		}
		nonzero(t, "build_id", len(i.BuildID))
	}},
	{name: "go-pure", cc: "go", env: []string{"CGO_ENABLED=0"}, src: goSrc, want: func(t *testing.T, i *Info) {
		eq(t, "linkage", i.Linkage, "static")
		eq(t, "language", i.Toolchain.Language, "go")
		if g := i.Toolchain.Go; g == nil {
			t.Errorf("no Go build info")
		} else {
			eq(t, "go version", g.Version, runtime.Version())
			eq(t, "module", g.Module, "example.com/inspectme")
			eq(t, "cgo_enabled", g.CgoEnabled, "0")
		}
		eq(t, "relocs total", i.Relocs.Total, 0)
		eq(t, "reloc_pages", i.RelocPages, 0)
	}},
	{name: "go-cgo", cc: "go", env: []string{"CGO_ENABLED=1"}, src: cgoSrc, want: func(t *testing.T, i *Info) {
		if i.Linkage != "dynamic" && i.Linkage != "dynamic-pie" {
			t.Errorf("linkage = %s, want dynamic", i.Linkage)
		}
		nonzero(t, "interp", len(i.Interp))
		if !slices.Contains(i.Needed, "libc.so.6") {
			t.Errorf("needed = %v, want libc.so.6", i.Needed)
		}
		if g := i.Toolchain.Go; g == nil {
			t.Errorf("no Go build info")
		} else {
			eq(t, "cgo_enabled", g.CgoEnabled, "1")
		}
		eq(t, "language", i.Toolchain.Language, "go")
	}},
	// rustc links Linux binaries with full RELRO and BIND_NOW by default: "-z now"
	// changes nothing there, and only "-z lazy" drops it.
	{name: "rust", cc: "rustc", args: []string{"-O"}, src: rustSrc, want: func(t *testing.T, i *Info) {
		eq(t, "language", i.Toolchain.Language, "rust")
		if !strings.HasPrefix(i.Toolchain.Rustc, "rustc version ") {
			t.Errorf("rustc = %q", i.Toolchain.Rustc)
		}
		eq(t, "linkage", i.Linkage, "dynamic-pie")
		eq(t, "bind_now", i.BindNow, true)
		eq(t, "df_1_now", i.DF1Now, true)
		eq(t, "relro", i.RELRO, "full")
	}},
	{name: "rust-lazy", cc: "rustc", args: []string{"-O", "-C", "link-arg=-Wl,-z,lazy"}, src: rustSrc, want: func(t *testing.T, i *Info) {
		eq(t, "language", i.Toolchain.Language, "rust")
		eq(t, "bind_now", i.BindNow, false)
		eq(t, "df_1_now", i.DF1Now, false)
		eq(t, "relro", i.RELRO, "partial")
	}},
	{name: "clang", cc: "clang-14", want: func(t *testing.T, i *Info) {
		eq(t, "language", i.Toolchain.Language, "c")
		if !strings.Contains(i.Toolchain.Clang, "clang version") {
			t.Errorf("clang = %q", i.Toolchain.Clang)
		}
	}},
	{name: "arm64-now", cc: "aarch64-linux-gnu-gcc", args: []string{"-Wl,-z,now"}, want: func(t *testing.T, i *Info) {
		eq(t, "arch", i.Arch, "aarch64")
		eq(t, "linkage", i.Linkage, "dynamic-pie")
		eq(t, "interp", i.Interp, "/lib/ld-linux-aarch64.so.1")
		eq(t, "bind_now", i.BindNow, true)
		nonzero(t, "relative", i.Relocs.Relative)
		nonzero(t, "glob_dat", i.Relocs.GlobDat)
		nonzero(t, "jump_slot", i.Relocs.JumpSlot)
	}},
	{name: "arm64-static", cc: "aarch64-linux-gnu-gcc", args: []string{"-static"}, want: func(t *testing.T, i *Info) {
		eq(t, "arch", i.Arch, "aarch64")
		eq(t, "linkage", i.Linkage, "static")
		nonzero(t, "IRELATIVE", i.Relocs.OtherByType["IRELATIVE"])
	}},
}

var installHint = map[string]string{
	"gcc":                   "apt-get install gcc",
	"go":                    "Go toolchain",
	"rustc":                 "apt-get install rustc, or rustup",
	"clang-14":              "apt-get install clang-14",
	"aarch64-linux-gnu-gcc": "apt-get install gcc-aarch64-linux-gnu",
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func nonzero(t *testing.T, what string, n int) {
	t.Helper()
	if n == 0 {
		t.Errorf("%s = 0, want > 0", what)
	}
}

var buildDir struct {
	once sync.Once
	dir  string
}

// buildOne compiles b into a directory shared by the tests of this binary.
func buildOne(t *testing.T, b build) string {
	t.Helper()
	buildDir.once.Do(func() {
		d, err := os.MkdirTemp("", "elfinfo-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir.dir = d
	})
	out := filepath.Join(buildDir.dir, b.name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	testutil.RequireTool(t, b.cc)
	dir := filepath.Join(buildDir.dir, b.name+".src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if b.cc == "go" {
		if strings.Contains(strings.Join(b.env, " "), "CGO_ENABLED=1") {
			testutil.RequireTool(t, "gcc")
		}
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/inspectme\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(b.src), 0o644)
		cmd = exec.Command("go", append([]string{"build", "-o", out}, b.args...)...)
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
		cmd.Env = append(cmd.Env, b.env...)
	} else if b.cc == "rustc" {
		rs := filepath.Join(dir, "main.rs")
		os.WriteFile(rs, []byte(b.src), 0o644)
		cmd = exec.Command("rustc", append([]string{"-o", out, rs}, b.args...)...)
	} else {
		src := b.src
		if src == "" {
			src = cSrc
		}
		c := filepath.Join(dir, "main.c")
		os.WriteFile(c, []byte(src), 0o644)
		cmd = exec.Command(b.cc, append([]string{"-O1", "-o", out, c}, b.args...)...)
	}
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", b.cc, b.args, err, o)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir.dir != "" {
		os.RemoveAll(buildDir.dir)
	}
	os.Exit(code)
}

// TestOpenBuilds builds small binaries with known flags, asserts the facts the
// flags imply, and cross-checks every build against readelf.
func TestOpenBuilds(t *testing.T) {
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			if (b.cc == "gcc" || b.cc == "rustc" || b.cc == "clang-14") && runtime.GOARCH != "amd64" {
				t.Skip("the gcc cases assert x86_64 facts")
			}
			if _, err := exec.LookPath(b.cc); err != nil {
				t.Skipf("needs %s on PATH (%s)", b.cc, installHint[b.cc])
			}
			p := buildOne(t, b)
			i, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "schema", i.Schema, Schema)
			eq(t, "class", i.Class, "ELF64")
			eq(t, "page_size", i.PageSize, 4096)
			st, _ := os.Stat(p)
			eq(t, "file_size", i.FileSize, st.Size())
			nonzero(t, "text", int(i.Segments.Text))
			if b.src == "" {
				// big[100000] is zero-filled: it lives in bss, not in the file.
				if i.Segments.BSS < 100000 {
					t.Errorf("bss = %d, want >= 100000", i.Segments.BSS)
				}
			}
			b.want(t, i)
			crossCheckReadelf(t, p, i)
		})
	}
}

// TestClosureArm64 resolves an arm64 binary's closure in the cross toolchain's
// sysroot, which is laid out like an arm64 root filesystem (/lib/ld-linux-aarch64.so.1).
func TestClosureArm64(t *testing.T) {
	const sysroot = "/usr/aarch64-linux-gnu"
	if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err != nil {
		t.Skip("needs aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)")
	}
	p := buildOne(t, builds[slices.IndexFunc(builds, func(b build) bool { return b.name == "arm64-now" })])
	c, err := ResolveClosure(p, sysroot)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "interp", c.Interp, "/lib/ld-linux-aarch64.so.1")
	if !strings.HasPrefix(c.InterpHost, sysroot+"/") {
		t.Errorf("interp host %q is not in the sysroot", c.InterpHost)
	}
	eq(t, "missing", len(c.Missing), 0)
	if len(c.Libs) == 0 || c.Libs[0].Soname != "libc.so.6" || c.Libs[0].Path != "/lib/libc.so.6" {
		t.Errorf("libs = %+v, want libc.so.6 at /lib/libc.so.6 first", c.Libs)
	}
	// On the x86_64 host the same binary's libc is the wrong machine: skipped.
	if runtime.GOARCH == "amd64" {
		h, err := ResolveClosure(p, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(h.Missing, "libc.so.6") {
			t.Errorf("host closure of an arm64 binary = %+v; want libc.so.6 missing (x86_64 libc skipped)", h)
		}
	}
}

var hexRe = regexp.MustCompile(`^[0-9a-f]{8,16}$`)

// crossCheckReadelf compares Info with what binutils' readelf says, an
// independent implementation of the same formats.
func crossCheckReadelf(t *testing.T, p string, i *Info) {
	t.Helper()
	if _, err := exec.LookPath("readelf"); err != nil {
		t.Log("readelf missing: cross-check skipped (apt-get install binutils)")
		return
	}
	run := func(args ...string) string {
		out, err := exec.Command("readelf", append(args, p)...).Output()
		if err != nil {
			t.Fatalf("readelf %v: %v", args, err)
		}
		return string(out)
	}

	// Relocations: counts by kind and the distinct pages they write.
	var rel, glob, jump, other, relr int
	pages := map[uint64]bool{}
	inRelr := false
	for _, line := range strings.Split(run("-rW"), "\n") {
		if strings.HasPrefix(line, "Relocation section") {
			inRelr = strings.Contains(line, ".relr")
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || !hexRe.MatchString(f[0]) {
			continue
		}
		off, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			t.Fatalf("readelf line %q: %v", line, err)
		}
		pages[off/4096] = true
		if inRelr {
			relr++
			continue
		}
		if len(f) < 3 {
			t.Fatalf("readelf relocation line %q", line)
		}
		typ := f[2]
		switch {
		case strings.HasSuffix(typ, "_NONE"):
			delete(pages, off/4096)
		case typ == "R_X86_64_RELATIVE" || typ == "R_AARCH64_RELATIVE":
			rel++
		case typ == "R_X86_64_GLOB_DAT" || typ == "R_AARCH64_GLOB_DAT":
			glob++
		case typ == "R_X86_64_JUMP_SLOT" || typ == "R_AARCH64_JUMP_SLOT":
			jump++
		default:
			other++
		}
	}
	eq(t, "readelf RELATIVE (incl. RELR)", i.Relocs.Relative, rel+relr)
	eq(t, "readelf RELR", i.Relocs.RelrRelative, relr)
	eq(t, "readelf GLOB_DAT", i.Relocs.GlobDat, glob)
	eq(t, "readelf JUMP_SLOT", i.Relocs.JumpSlot, jump)
	eq(t, "readelf other", i.Relocs.Other, other)
	eq(t, "readelf relocated pages", i.RelocPages, len(pages))

	// Dynamic section flags and DT_NEEDED.
	var needed []string
	var bindNow, df1Now, df1PIE, relrTag, gnuHash, sysvHash bool
	for _, line := range strings.Split(run("-dW"), "\n") {
		switch {
		case strings.Contains(line, "(NEEDED)"):
			if a, b := strings.Index(line, "["), strings.LastIndex(line, "]"); a >= 0 && b > a {
				needed = append(needed, line[a+1:b])
			}
		case strings.Contains(line, "(BIND_NOW)"):
			bindNow = true
		case strings.Contains(line, "(FLAGS)"):
			bindNow = bindNow || strings.Contains(line, "BIND_NOW")
		case strings.Contains(line, "(FLAGS_1)"):
			fl := strings.Fields(line[strings.Index(line, "(FLAGS_1)"):])
			df1Now = slices.Contains(fl, "NOW")
			df1PIE = slices.Contains(fl, "PIE")
		case strings.Contains(line, "(RELR)"):
			relrTag = true
		case strings.Contains(line, "(GNU_HASH)"):
			gnuHash = true
		case strings.Contains(line, "(HASH)"):
			sysvHash = true
		}
	}
	if needed == nil {
		needed = []string{}
	}
	eq(t, "readelf NEEDED", strings.Join(i.Needed, " "), strings.Join(needed, " "))
	eq(t, "readelf BIND_NOW", i.BindNow, bindNow)
	eq(t, "readelf FLAGS_1 NOW", i.DF1Now, df1Now)
	eq(t, "readelf FLAGS_1 PIE", i.DF1PIE, df1PIE)
	if relrTag {
		eq(t, "readelf RELR tag", i.Relr, true)
	}
	eq(t, "readelf GNU_HASH", i.GNUHash, gnuHash)
	eq(t, "readelf HASH", i.SysVHash, sysvHash)

	// Build ID.
	id := ""
	if m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindStringSubmatch(run("-nW")); m != nil {
		id = m[1]
	}
	eq(t, "readelf build-id", i.BuildID, id)

	// Highest GLIBC version needed.
	best := ""
	for _, m := range regexp.MustCompile(`Name: GLIBC_([0-9][0-9.]*)`).FindAllStringSubmatch(run("-VW"), -1) {
		if best == "" || versionLess(best, m[1]) {
			best = m[1]
		}
	}
	if strings.Contains(run("-VW"), "GLIBC_ABI_DT_RELR") && versionLess(best, "2.36") {
		best = "2.36"
	}
	eq(t, "readelf glibc", i.GlibcRequired, best)

	// Imported dynamic symbols (UND with a name).
	imported := 0
	inDyn := false
	for _, line := range strings.Split(run("--dyn-syms", "-W"), "\n") {
		if strings.HasPrefix(line, "Symbol table") {
			inDyn = strings.Contains(line, ".dynsym")
			continue
		}
		f := strings.Fields(line)
		if inDyn && len(f) >= 8 && f[6] == "UND" {
			imported++
		}
	}
	eq(t, "readelf imported symbols", i.ImportedSymbols, imported)

	// Stripped: readelf lists .symtab.
	eq(t, "readelf stripped", i.Stripped, !strings.Contains(run("-SW"), " .symtab "))
}

package probes

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// TestMainFromStart builds C programs with known flags, strips a copy of each,
// and checks that the main found through _start in the stripped copy is the
// address the unstripped symbol table gives.
func TestMainFromStart(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	if err := os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type build struct {
		cc    string
		flags []string
	}
	builds := map[string]build{
		"pie":         {"gcc", []string{"-pie", "-fPIE"}},
		"nopie":       {"gcc", []string{"-no-pie", "-fno-pie"}},
		"static":      {"gcc", []string{"-static"}},
		"static-pie":  {"gcc", []string{"-static-pie"}},
		"arm64-pie":   {"aarch64-linux-gnu-gcc", []string{"-pie", "-fPIE"}},
		"arm64-nopie": {"aarch64-linux-gnu-gcc", []string{"-no-pie", "-fno-pie"}},
	}
	for name, b := range builds {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(b.cc); err != nil {
				t.Skipf("%s not installed", b.cc)
			}
			out := filepath.Join(dir, name)
			if o, err := exec.Command(b.cc, append(b.flags, "-O2", "-o", out, src)...).CombinedOutput(); err != nil {
				t.Skipf("%s %v: %v %s", b.cc, b.flags, err, o)
			}
			want := symbolAddr(t, out, "main")
			stripped := out + ".stripped"
			strip := "strip"
			if b.cc != "gcc" {
				strip = "aarch64-linux-gnu-strip"
			}
			if o, err := exec.Command(strip, "-o", stripped, out).CombinedOutput(); err != nil {
				t.Fatalf("strip: %v %s", err, o)
			}
			f, err := elf.Open(stripped)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := mainFromStart(f)
			if err != nil {
				t.Fatalf("mainFromStart: %v", err)
			}
			if got != want {
				t.Errorf("main at %#x, want %#x", got, want)
			}
		})
	}
}

// TestMainFromStartRust: the stripped production Rust sample, when built.
func TestMainFromStartRust(t *testing.T) {
	p := filepath.Join(testutil.Root(t), "build", "samples", "rustext-prod")
	f, err := elf.Open(p)
	if err != nil {
		t.Skipf("rustext-prod not built (make rust-samples): %v", err)
	}
	defer f.Close()
	if _, err := mainFromStart(f); err != nil {
		t.Errorf("stripped Rust binary: %v", err)
	}
}

// TestMainFromStartGo: Go's _start is not glibc's; it must say so, not guess.
func TestMainFromStartGo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.FileHeader.Machine != elf.EM_X86_64 && f.FileHeader.Machine != elf.EM_AARCH64 {
		t.Skip("no decoder for this machine")
	}
	if f.Section(".interp") != nil {
		t.Skip("this test binary is linked by the system linker")
	}
	if v, err := mainFromStart(f); err == nil {
		t.Errorf("a Go binary's _start gave main at %#x; want an error", v)
	}
}

func symbolAddr(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value
		}
	}
	t.Fatalf("%s has no symbol %s", path, name)
	return 0
}

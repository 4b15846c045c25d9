package elfinfo

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// selfHead returns the first n bytes of this test binary, a real ELF64 file.
func selfHead(t testing.TB, n int) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if n > len(b) {
		n = len(b)
	}
	return b[:n]
}

func TestOpenBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A header whose program headers point past the end of the file.
	hdrOnly := selfHead(t, 4096)
	elf32, err := os.ReadFile("testdata/elf32-i386.bin")
	if err != nil {
		t.Fatal(err)
	}
	badClass := append([]byte(nil), hdrOnly[:64]...)
	badClass[4] = 7
	hugePhnum := append([]byte(nil), hdrOnly...)
	binary.LittleEndian.PutUint16(hugePhnum[56:], 0xffff) // e_phnum

	for _, tc := range []struct {
		name string
		path string
		want string
	}{
		{"text", write("script.sh", []byte("#!/bin/sh\necho hi\n")), `not an ELF file (starts with "#!/bi")`},
		{"empty", write("empty", nil), "empty file"},
		{"magic only", write("magic", []byte("\x7fELF")), "truncated ELF file"},
		{"truncated header", write("trunc40", hdrOnly[:40]), "truncated ELF file"},
		{"truncated segments", write("trunc4k", hdrOnly), "truncated ELF file"},
		{"directory", dir, "is a directory"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"32-bit", "testdata/elf32-i386.bin", "32-bit ELF"},
		{"32-bit copy", write("elf32", elf32), "32-bit ELF"},
		{"bad class", write("badclass", badClass), "invalid ELF class 7"},
		{"huge phnum", write("phnum", hugePhnum), "ELF file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := Open(tc.path)
			if err == nil {
				t.Fatalf("Open succeeded: %+v", i)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.path+": ") {
				t.Errorf("error %q does not start with the path", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			if !IsBadInput(err) {
				t.Errorf("IsBadInput(%v) = false", err)
			}
			if _, err := ResolveClosure(tc.path, ""); err == nil {
				t.Errorf("ResolveClosure succeeded")
			}
		})
	}
}

func TestDecodeRelr(t *testing.T) {
	le := binary.LittleEndian
	var b []byte
	for _, e := range []uint64{
		0x1000,          // address 0x1000; next base 0x1008
		1 | 1<<1 | 1<<3, // 0x1008, 0x1018; next base 0x1008+63*8
		1 | 1<<63,       // last word of that bitmap: 0x1200+62*8
		0x3000,          // address
		1,               // empty bitmap
	} {
		b = le.AppendUint64(b, e)
	}
	var got []uint64
	n := decodeRelr(b, le, func(a uint64) { got = append(got, a) })
	want := []uint64{0x1000, 0x1008, 0x1018, 0x1008 + 63*8 + 62*8, 0x3000}
	if n != len(want) || len(got) != len(want) {
		t.Fatalf("decoded %d %#x, want %#x", n, got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("entry %d = %#x, want %#x", k, got[k], want[k])
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"2.9", "2.34", true},
		{"2.34", "2.34", false},
		{"2.2.5", "2.3", true},
		{"2.36", "2.34", false},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to Open and ResolveClosure: they must return
// facts or an error naming the file, never panic or hang.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("#!/bin/sh\n"))
	f.Add([]byte("\x7fELF"))
	if b, err := os.ReadFile("testdata/elf32-i386.bin"); err == nil {
		f.Add(b)
	}
	f.Add(minimalELF64())
	f.Add(selfHead(f, 512))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		i, err := Open(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), p+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error format: %q", err)
			}
			return
		}
		if i.Relocs.Total < 0 || i.RelocPages > i.Relocs.Total {
			t.Fatalf("inconsistent: %d relocations write %d pages", i.Relocs.Total, i.RelocPages)
		}
		i.ResolveClosure(dir)
	})
}

// minimalELF64 builds a tiny x86_64 ET_DYN with PT_LOAD, PT_DYNAMIC, PT_INTERP,
// DT_NEEDED, DT_RELA (one RELATIVE, one GLOB_DAT) and DT_RELR, so the fuzzer
// starts from an input that reaches every parser.
func minimalELF64() []byte {
	le := binary.LittleEndian
	const (
		phoff   = 64
		nph     = 3
		interpO = phoff + nph*56 // 232
		strO    = interpO + 32   // 264
		relaO   = strO + 32      // 296
		relrO   = relaO + 48     // 344
		dynO    = relrO + 16     // 360
		ndyn    = 12
		size    = dynO + ndyn*16 // 552
	)
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 3)  // ET_DYN
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x100) // entry
	le.PutUint64(b[32:], phoff)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], nph)
	ph := func(k int, typ, flags uint32, off, filesz, memsz uint64) {
		p := b[phoff+k*56:]
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], flags)
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], off) // vaddr == offset
		le.PutUint64(p[24:], off)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		le.PutUint64(p[48:], 0x1000)
	}
	ph(0, 3, 4, interpO, 28, 28)      // PT_INTERP
	ph(1, 1, 6, 0, size, size+0x2000) // PT_LOAD RW with bss
	ph(2, 2, 6, dynO, ndyn*16, ndyn*16)
	copy(b[interpO:], "/lib64/ld-linux-x86-64.so.2\x00")
	copy(b[strO:], "\x00libc.so.6\x00")
	le.PutUint64(b[relaO:], 0x1000)
	le.PutUint64(b[relaO+8:], 8) // R_X86_64_RELATIVE
	le.PutUint64(b[relaO+24:], 0x2008)
	le.PutUint64(b[relaO+32:], 1<<32|6) // R_X86_64_GLOB_DAT sym 1
	le.PutUint64(b[relrO:], 0x3000)
	le.PutUint64(b[relrO+8:], 0b1011)
	d := b[dynO:]
	for k, e := range [][2]uint64{
		{1, 1},              // DT_NEEDED libc.so.6
		{5, strO}, {10, 11}, // DT_STRTAB, DT_STRSZ
		{7, relaO}, {8, 48}, // DT_RELA, DT_RELASZ
		{9, 24},               // DT_RELAENT
		{36, relrO}, {35, 16}, // DT_RELR, DT_RELRSZ
		{37, 8},               // DT_RELRENT
		{30, 8},               // DT_FLAGS = BIND_NOW
		{0x6ffffffb, 1 << 27}, // DT_FLAGS_1 = PIE
		{0, 0},
	} {
		le.PutUint64(d[k*16:], e[0])
		le.PutUint64(d[k*16+8:], e[1])
	}
	return b
}

func TestMinimalELF64(t *testing.T) {
	p := filepath.Join(t.TempDir(), "min")
	os.WriteFile(p, minimalELF64(), 0o755)
	i, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "linkage", i.Linkage, "dynamic-pie")
	eq(t, "needed", strings.Join(i.Needed, ","), "libc.so.6")
	eq(t, "relative", i.Relocs.Relative, 1+3)
	eq(t, "relr_relative", i.Relocs.RelrRelative, 3)
	eq(t, "glob_dat", i.Relocs.GlobDat, 1)
	eq(t, "bind_now", i.BindNow, true)
	eq(t, "df_1_pie", i.DF1PIE, true)
	// 0x1000 | 0x2008 | 0x3000, 0x3008, 0x3018: three pages.
	eq(t, "reloc_pages", i.RelocPages, 3)
	eq(t, "bss", i.Segments.BSS, 0x2000)
}

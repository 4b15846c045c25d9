package elfinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestInterp(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte("not ELF\n"), 0o644)
	ldso := map[string]string{"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}[runtime.GOARCH]
	for _, tc := range []struct {
		name, path, want string
	}{
		{"dynamic (Debian's /bin/true)", "/bin/true", ldso},
		{"32-bit ELF, no PT_INTERP", "testdata/elf32-i386.bin", ""},
		{"not ELF", text, ""},
		{"missing", filepath.Join(t.TempDir(), "gone"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" && tc.path == "/bin/true" {
				t.Skip("no known loader path for " + runtime.GOARCH)
			}
			if got := Interp(tc.path); got != tc.want {
				t.Errorf("Interp(%s) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	for _, tc := range []struct {
		infos []*Info
		want  string
	}{
		{nil, "[]\n"},
		{[]*Info{}, "[]\n"},
		{[]*Info{{Schema: Schema, Path: "a", Linkage: "static"}}, `"linkage": "static"`},
	} {
		var b strings.Builder
		if err := WriteJSON(&b, tc.infos); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("WriteJSON(%v) = %q, want %q in it", tc.infos, b.String(), tc.want)
		}
	}
}

func TestOpenAll(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte("not ELF\n"), 0o644)
	for _, tc := range []struct {
		paths      []string
		infos, bad int
	}{
		{nil, 0, 0},
		{[]string{"/bin/true"}, 1, 0},
		{[]string{"/bin/true", text, "testdata/elf32-i386.bin", "/bin/true"}, 2, 2},
	} {
		infos, errs := OpenAll(tc.paths, "")
		if len(infos) != tc.infos || len(errs) != tc.bad {
			t.Errorf("OpenAll(%v): %d infos, %d errors (%v); want %d, %d", tc.paths, len(infos), len(errs), errs, tc.infos, tc.bad)
		}
		for _, i := range infos {
			if i.Linkage != "static" && i.Linkage != "static-pie" && i.Closure == nil && i.ClosureError == "" {
				t.Errorf("%s: the closure was not resolved", i.Path)
			}
		}
	}
}

func TestInspect(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte("not ELF\n"), 0o644)
	for _, tc := range []struct {
		name       string
		paths      []string
		rootfs     string
		infos, bad int
		wantErr    string
	}{
		{name: "one binary", paths: []string{"/bin/true"}, infos: 1},
		{name: "one bad file", paths: []string{text}, wantErr: text},
		{name: "a bad file among others", paths: []string{"/bin/true", text}, infos: 1, bad: 1},
		{name: "every file bad", paths: []string{text, text}, bad: 2},
		{name: "rootfs", paths: []string{"/bin/true"}, rootfs: "/", infos: 1},
		{name: "rootfs not a directory", paths: []string{"/bin/true"}, rootfs: text, wantErr: "--rootfs " + text + ": not a directory"},
		{name: "rootfs missing", paths: []string{"/bin/true"}, rootfs: text + ".d", wantErr: "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, errs, err := Inspect(tc.paths, tc.rootfs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || infos != nil || errs != nil {
					t.Fatalf("Inspect = %d infos, %v, %v; want only an error with %q", len(infos), errs, err, tc.wantErr)
				}
				return
			}
			if err != nil || len(infos) != tc.infos || len(errs) != tc.bad {
				t.Errorf("Inspect = %d infos, %d errors (%v), %v; want %d, %d", len(infos), len(errs), errs, err, tc.infos, tc.bad)
			}
		})
	}
}

package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/elfinfo"
)

func TestELFFacts(t *testing.T) {
	for _, tc := range []struct {
		name string
		info elfinfo.Info
		want map[string]string
	}{
		{"static-pie", elfinfo.Info{FileSize: 4096, Linkage: "static-pie", Relr: true, Relocs: elfinfo.Relocs{Relative: 12}},
			map[string]string{"size": "4096", "linkage": "static-pie", "BIND_NOW": "no", "RELR": "yes", "relocs RELATIVE": "12", "NEEDED": ""}},
		{"dynamic, DF_1_NOW", elfinfo.Info{Linkage: "dynamic-pie", DF1Now: true, Needed: []string{"libc.so.6", "libm.so.6"},
			Relocs: elfinfo.Relocs{GlobDat: 3, JumpSlot: 4, Other: 1}, RelocPages: 7},
			map[string]string{"BIND_NOW": "yes", "relocs GLOB_DAT": "3", "relocs JUMP_SLOT": "4", "relocs other": "1", "relocated pages": "7", "NEEDED": "libc.so.6 libm.so.6"}},
		{"BIND_NOW", elfinfo.Info{BindNow: true}, map[string]string{"BIND_NOW": "yes", "RELR": "no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			facts := ELFFacts(&tc.info)
			got := map[string]string{}
			for _, f := range facts {
				got[f.Name] = f.Value
			}
			if len(facts) != 10 {
				t.Errorf("%d facts, want 10: %v", len(facts), facts)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestLoadFacts(t *testing.T) {
	exe, err := os.Executable() // the test binary: a 64-bit ELF for this machine
	if err != nil {
		t.Fatal(err)
	}
	notELF := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notELF, []byte("just notes\n"), 0o644)
	if f := LoadFacts(exe); len(f) != 10 || f[0].Name != "size" || f[0].Value == "0" {
		t.Errorf("LoadFacts(the test binary) = %v", f)
	}
	if f := LoadFacts(notELF); len(f) != 1 || f[0].Name != "error" || !strings.Contains(f[0].Value, "notes.txt") {
		t.Errorf("LoadFacts(a text file) = %v, want one error fact naming it", f)
	}
}

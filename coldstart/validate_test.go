package coldstart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "notes.txt")
	os.WriteFile(plain, []byte("x"), 0o644)
	exe := filepath.Join(dir, "bootstrap")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero value", Config{}, ""},
		{"lambda defaults", Config{MemoryMB: 1024, InitCPU: 2, Sandbox: "oci", Storage: "lambda", ReadAhead: 128 << 10, InitTimeout: 10 * time.Second}, ""},
		{"invoke quota", Config{InitCPU: -1}, ""},
		{"memory too small", Config{MemoryMB: 64}, "--memory 64: Lambda allows 128 to 10240 MB"},
		{"memory too large", Config{MemoryMB: 10241}, "--memory"},
		{"too many vCPUs", Config{InitCPU: 7}, "--init-cpu 7"},
		{"bad sandbox", Config{Sandbox: "vm"}, `--sandbox "vm"`},
		{"bad storage", Config{Storage: "s3"}, `--storage "s3"`},
		{"lambda storage warm", Config{Storage: "lambda", Warm: true}, "--cache warm"},
		{"local storage warm", Config{Storage: "local", Warm: true}, ""},
		{"readahead too small", Config{ReadAhead: 1 << 10}, "--readahead 1"},
		{"readahead too large", Config{ReadAhead: 128 << 20}, "--readahead"},
		{"negative invokes", Config{Invokes: -1}, "--invokes -1"},
		{"negative init timeout", Config{InitTimeout: -time.Second}, "--init-timeout"},
		{"negative runtime init", Config{RuntimeInit: -time.Millisecond}, "--runtime-init"},
		{"negative runtime invoke", Config{RuntimeInvoke: -time.Millisecond}, "--runtime-invoke"},
		{"env without =", Config{Env: []string{"FOO"}}, "--env"},
		{"empty uprobe", Config{Uprobes: []string{" "}}, "--uprobe"},
		{"uprobe without symbol", Config{Uprobes: []string{"libc.so.6:"}}, "want SYMBOL or FILE:SYMBOL"},
		{"uprobe", Config{Uprobes: []string{"libc.so.6:malloc", "main"}}, ""},
		{"missing runtime", Config{Runtime: filepath.Join(dir, "nope")}, "no such file"},
		{"runtime not executable", Config{Runtime: plain}, "not an executable"},
		{"runtime directory", Config{Runtime: dir}, "not an executable"},
		{"runtime", Config{Runtime: exe}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
			case err != nil && KindOf(err) != BadInput:
				t.Errorf("Validate() = %v of kind %v, want BadInput", err, KindOf(err))
			}
		})
	}
}

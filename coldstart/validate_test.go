package coldstart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/initprof/initprof/container/lazyfs"
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
			wantBadInput(t, tc.cfg.Validate(), tc.want)
		})
	}
}

func TestInvocationValidate(t *testing.T) {
	dir := t.TempDir()
	zip := filepath.Join(dir, "layer.zip")
	os.WriteFile(zip, []byte("PK\x03\x04rest"), 0o644)
	flags := Invocation{Runs: 10, InitCPU: 2, Cache: "cold", ReadAheadKiB: 128}
	with := func(f func(*Invocation)) Invocation { inv := flags; f(&inv); return inv }
	cfg := Config{Runtime: "sim", InitTimeout: 10 * time.Second}
	cfgWith := func(f func(*Config)) Config { c := cfg; f(&c); return c }
	for _, tc := range []struct {
		name string
		inv  Invocation
		cfg  Config
		args []string
		want string // "" for valid
	}{
		{"defaults", flags, cfg, []string{"ext"}, ""},
		{"no extension", flags, cfg, nil, "no extension given"},
		{"function without extension", flags, cfgWith(func(c *Config) { c.Function = zip }), nil, ""},
		{"runtime with function", flags, cfgWith(func(c *Config) { c.Function, c.Runtime = zip, "./bootstrap" }), nil, "--runtime with --function or --image"},
		{"function and image", flags, cfgWith(func(c *Config) { c.Function, c.Image = zip, zip }), nil, "--function and --image"},
		{"no runs", with(func(i *Invocation) { i.Runs = 0 }), cfg, []string{"ext"}, "--runs must be at least 1"},
		{"negative init cpu", with(func(i *Invocation) { i.InitCPU = -1 }), cfg, []string{"ext"}, "--init-cpu -1"},
		{"invoke quota", with(func(i *Invocation) { i.InitCPU = 0 }), cfg, []string{"ext"}, ""},
		{"too many vCPUs (Config.Validate)", with(func(i *Invocation) { i.InitCPU = 7 }), cfg, []string{"ext"}, "--init-cpu 7"},
		{"bad cache", with(func(i *Invocation) { i.Cache = "lukewarm" }), cfg, []string{"ext"}, `--cache "lukewarm"`},
		{"warm cache", with(func(i *Invocation) { i.Cache = "warm" }), cfg, []string{"ext"}, ""},
		{"warm lambda storage", with(func(i *Invocation) { i.Cache = "warm" }), cfgWith(func(c *Config) { c.Storage = "lambda" }), []string{"ext"}, "--cache warm"},
		{"readahead too small", with(func(i *Invocation) { i.ReadAheadKiB = 2 }), cfg, []string{"ext"}, "--readahead 2"},
		{"readahead too large", with(func(i *Invocation) { i.ReadAheadKiB = 128 << 10 }), cfg, []string{"ext"}, "--readahead"},
		{"zero init timeout", flags, cfgWith(func(c *Config) { c.InitTimeout = 0 }), []string{"ext"}, "--init-timeout 0s: must be positive"},
		{"name for two", with(func(i *Invocation) { i.Name = "x" }), cfg, []string{"a", "b"}, "--name renames one extension; 2 were given"},
		{"name for a layer", with(func(i *Invocation) { i.Name = "x" }), cfg, []string{zip}, "--name renames a plain executable"},
		{"name with a path", with(func(i *Invocation) { i.Name = "../x" }), cfg, []string{"ext"}, "--name: "},
		{"name", with(func(i *Invocation) { i.Name = "datadog-agent" }), cfg, []string{"ext"}, ""},
		{"bad checkpoint", with(func(i *Invocation) { i.Checkpoints = []string{"("} }), cfg, []string{"ext"}, `--checkpoint "("`},
		{"bad storage model", with(func(i *Invocation) { i.Model.Latency = "worker=fast" }), cfg, []string{"ext"}, "not a duration"},
		{"memory (Config.Validate)", flags, cfgWith(func(c *Config) { c.MemoryMB = 64 }), []string{"ext"}, "--memory 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantBadInput(t, tc.inv.Validate(tc.cfg, tc.args), tc.want)
		})
	}
}

func TestInvocationConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inv       Invocation
		initCPU   float64
		warm      bool
		readAhead int
		checks    int
		seed      uint64
	}{
		{"defaults", Invocation{InitCPU: 2, Cache: "cold", ReadAheadKiB: 128}, 2, false, 128 << 10, 0, 1},
		{"invoke quota", Invocation{InitCPU: 0, Cache: "cold", ReadAheadKiB: 128}, -1, false, 128 << 10, 0, 1},
		{"warm, checkpoints, seed", Invocation{InitCPU: 1.5, Cache: "warm", ReadAheadKiB: 512, Checkpoints: []string{`INIT (\w+)`, `ready`}, Model: lazyfs.ModelFlags{Seed: 9}}, 1.5, true, 512 << 10, 2, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.inv.Config(Config{MemoryMB: 512})
			if err != nil {
				t.Fatal(err)
			}
			if c.InitCPU != tc.initCPU || c.Warm != tc.warm || c.ReadAhead != tc.readAhead || len(c.Checkpoints) != tc.checks || c.MemoryMB != 512 {
				t.Errorf("Config() = InitCPU %g, Warm %v, ReadAhead %d, %d checkpoints, memory %d; want %g, %v, %d, %d, 512",
					c.InitCPU, c.Warm, c.ReadAhead, len(c.Checkpoints), c.MemoryMB, tc.initCPU, tc.warm, tc.readAhead, tc.checks)
			}
			if c.StorageModel == nil || c.StorageModel.Seed != tc.seed {
				t.Errorf("Config().StorageModel = %+v, want seed %d", c.StorageModel, tc.seed)
			}
		})
	}
}

func TestInvocationVMStorage(t *testing.T) {
	for _, tc := range []struct {
		inv     Invocation
		storage string
		want    VMStorage
	}{
		{Invocation{Cache: "cold", ReadAheadKiB: 128}, "", VMStorage{ReadAheadKiB: 128}},
		{Invocation{Cache: "warm", ReadAheadKiB: 128}, "local", VMStorage{Warm: true, Storage: "local", ReadAheadKiB: 128}},
		{Invocation{Cache: "cold", ReadAheadKiB: 512, Model: lazyfs.ModelFlags{Latency: "worker=0", FunctionMix: "worker=100%", BaseMix: "host=100%", Seed: 3}}, "lambda",
			VMStorage{Storage: "lambda", ReadAheadKiB: 512, ChunkLatency: "worker=0", ChunkMix: "worker=100%", BaseMix: "host=100%", Seed: 3}},
	} {
		if got := tc.inv.VMStorage(tc.storage); got != tc.want {
			t.Errorf("VMStorage(%q) = %+v, want %+v", tc.storage, got, tc.want)
		}
	}
}

// wantBadInput checks a Validate result: nil when want is "", else a
// BadInput error whose message holds want.
func wantBadInput(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("Validate() = %v, want nil", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("Validate() = %v, want an error with %q", err, want)
	case err != nil && KindOf(err) != BadInput:
		t.Errorf("Validate() = %v of kind %v, want BadInput", err, KindOf(err))
	}
}

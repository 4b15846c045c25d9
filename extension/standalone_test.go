package extension

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStandaloneConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	boot := filepath.Join(dir, "bootstrap")
	os.WriteFile(boot, []byte("#!/bin/sh\n"), 0o755)
	ok := Standalone{Runtime: "sim", Invokes: 1, InitTimeout: 10 * time.Second, MemoryMB: 1024, FunctionName: "f"}
	with := func(f func(*Standalone)) Standalone { o := ok; f(&o); return o }
	for _, tc := range []struct {
		name string
		o    Standalone
		want string // "" for valid
		bad  bool   // the error is ErrBadOption
	}{
		{"defaults", ok, "", false},
		{"negative invokes", with(func(o *Standalone) { o.Invokes = -1 }), "--invokes -1", true},
		{"zero init timeout", with(func(o *Standalone) { o.InitTimeout = 0 }), "--init-timeout", true},
		{"negative runtime init", with(func(o *Standalone) { o.RuntimeInit = -time.Second }), "--runtime-init", true},
		{"memory", with(func(o *Standalone) { o.MemoryMB = 100 }), "128 to 10240", true},
		{"env", with(func(o *Standalone) { o.Env = []string{"NOEQUALS"} }), "--env", true},
		{"extensions not a dir", with(func(o *Standalone) { o.ExtensionsDir = file }), "not a directory", true},
		{"extensions dir", with(func(o *Standalone) { o.ExtensionsDir = dir }), "", false},
		{"keep-log regexp", with(func(o *Standalone) { o.KeepLogs = []string{"("} }), "--keep-log", true},
		{"runtime not executable", with(func(o *Standalone) { o.Runtime = file }), "not an executable", true},
		{"runtime", with(func(o *Standalone) { o.Runtime = boot }), "", false},
		{"timeline", with(func(o *Standalone) { o.Timeline = filepath.Join(dir, "t.jsonl") }), "", false},
		{"timeline bad fd", with(func(o *Standalone) { o.Timeline = "fd:x" }), "--timeline", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, sink, err := tc.o.Config()
			if sink != nil {
				defer sink.Close()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Config() = %v", err)
				}
				if cfg.Function.MemoryMB != tc.o.MemoryMB || cfg.Invokes != tc.o.Invokes || cfg.Runtime.Path == "" {
					t.Errorf("Config() = %+v, does not carry %+v", cfg, tc.o)
				}
				if (tc.o.Timeline != "") != (sink != nil && cfg.Timeline != nil) {
					t.Errorf("timeline %q: sink %v, Timeline %v", tc.o.Timeline, sink, cfg.Timeline)
				}
				if tc.o.Runtime == "sim" && !strings.Contains(strings.Join(cfg.Runtime.Env, " "), SimRuntimeEnv+"=1") {
					t.Errorf("sim runtime spec %+v lacks %s", cfg.Runtime, SimRuntimeEnv)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Config() = %v, want an error with %q", err, tc.want)
			}
			if errors.Is(err, ErrBadOption) != tc.bad {
				t.Errorf("errors.Is(%v, ErrBadOption) = %v, want %v", err, !tc.bad, tc.bad)
			}
		})
	}
}

func TestResultInitError(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{InitStatus: "success"}, ""},
		{Result{InitStatus: "timeout", EndedBy: "ext"}, "init timeout: ext"},
		{Result{InitStatus: "error", InitErrorType: "Extension.Crash", EndedBy: "ext exited"}, "init error (Extension.Crash): ext exited"},
	} {
		got := ""
		if err := tc.r.InitError(); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("InitError() = %q, want %q", got, tc.want)
		}
	}
}

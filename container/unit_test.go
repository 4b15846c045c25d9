package container

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCPUQuota(t *testing.T) {
	tests := []struct {
		mem   int
		quota int64
	}{
		{128, 7235},
		{512, 28942},
		{1024, 57885},
		{1769, 100000},
		{3538, 200000},
		{10240, 578858},
	}
	for _, tc := range tests {
		q, p := CPUQuota(tc.mem)
		if q != tc.quota || p != 100000 {
			t.Errorf("CPUQuota(%d) = %d/%d, want %d/100000", tc.mem, q, p, tc.quota)
		}
	}
}

func TestParseV2Limits(t *testing.T) {
	tests := []struct {
		mem, cpu string
		want     Limits
		err      string
	}{
		{"1073741824\n", "57885 100000\n", Limits{Cgroup: "v2", MemoryBytes: 1 << 30, CPUQuotaUS: 57885, CPUPeriodUS: 100000}, ""},
		{"max\n", "max 100000\n", Limits{Cgroup: "v2", MemoryBytes: -1, CPUQuotaUS: -1, CPUPeriodUS: 100000}, ""},
		{"", "max 100000", Limits{}, "memory.max is empty"},
		{"12x", "max 100000", Limits{}, `memory.max "12x"`},
		{"max", "57885", Limits{}, `want "QUOTA PERIOD"`},
		{"max", "abc 100000", Limits{}, `quota "abc"`},
	}
	for _, tc := range tests {
		got, err := ParseV2Limits(tc.mem, tc.cpu)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseV2Limits(%q, %q) err = %v, want %q", tc.mem, tc.cpu, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseV2Limits(%q, %q) = %+v, %v; want %+v", tc.mem, tc.cpu, got, err, tc.want)
		}
	}
}

func TestCheckLimits(t *testing.T) {
	ok := Limits{Cgroup: "v1", MemoryBytes: 512 << 20, CPUQuotaUS: 28942, CPUPeriodUS: 100000}
	if err := checkLimits(ok, &Config{MemoryMB: 512}); err != nil {
		t.Errorf("matching limits rejected: %v", err)
	}
	for _, bad := range []Limits{
		{MemoryBytes: -1, CPUQuotaUS: 28942, CPUPeriodUS: 100000},
		{MemoryBytes: 512 << 20, CPUQuotaUS: -1, CPUPeriodUS: 100000},
		{MemoryBytes: 512 << 20, CPUQuotaUS: 28942, CPUPeriodUS: 50000},
	} {
		if err := checkLimits(bad, &Config{MemoryMB: 512}); err == nil {
			t.Errorf("limits %+v accepted for 512 MB", bad)
		}
	}
}

func TestParseCgroupMounts(t *testing.T) {
	tests := []struct {
		file string
		want []cgroupMount
	}{
		{"testdata/mountinfo-hybrid", []cgroupMount{
			{dir: "/sys/fs/cgroup/unified", v2: true, options: "rw,nsdelegate"},
			{dir: "/sys/fs/cgroup/memory", options: "rw,memory"},
			{dir: "/sys/fs/cgroup/cpu,cpuacct", options: "rw,cpu,cpuacct"},
			{dir: "/sys/fs/cgroup/with space", options: "rw,pids"},
		}},
		{"testdata/mountinfo-v2", []cgroupMount{
			{dir: "/sys/fs/cgroup", v2: true, options: "rw,nsdelegate,memory_recursiveprot"},
		}},
	}
	for _, tc := range tests {
		f, err := os.Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseCgroupMounts(f)
		f.Close()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v\nwant %+v", tc.file, got, err, tc.want)
		}
	}
}

func TestEnv(t *testing.T) {
	cfg := Config{MemoryMB: 512, Env: []string{"AWS_REGION=eu-west-1", "DD_API_KEY=x"}}
	env := cfg.env()
	got := map[string]string{}
	count := map[string]int{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
		count[k]++
	}
	for k, want := range map[string]string{
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"AWS_REGION":                      "eu-west-1", // the customer's value wins
		"DD_API_KEY":                      "x",
		"AWS_LAMBDA_RUNTIME_API":          "127.0.0.1:9001",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"TZ":                              ":UTC",
		"LAMBDA_TASK_ROOT":                "/var/task",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for k, n := range count {
		if n > 1 {
			t.Errorf("%s appears %d times", k, n)
		}
	}
}

func TestPlatformArgs(t *testing.T) {
	tests := []struct {
		cfg  Config
		boot string
		want []string
	}{
		{Config{PlatformArgs: []string{"--invokes", "1"}}, "", []string{"/var/runtime/initprof", "platform", "--extensions", "/opt/extensions",
			"--addr", "127.0.0.1:9001", "--timeline", "/run/initprof/timeline.jsonl", "--memory", "1024", "--invokes", "1"}},
		{Config{MemoryMB: 512, Env: []string{"A=1", "B=2"}}, BootstrapPath, []string{"/var/runtime/initprof", "platform", "--extensions", "/opt/extensions",
			"--addr", "127.0.0.1:9001", "--timeline", "/run/initprof/timeline.jsonl", "--memory", "512",
			"--runtime", "/var/runtime/bootstrap", "--env", "A=1", "--env", "B=2"}},
	}
	for _, tc := range tests {
		got := tc.cfg.platformArgs(InitprofPath, ExtensionsDir, tc.boot, OutMount+"/"+TimelineName)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("platformArgs = %q\nwant %q", got, tc.want)
		}
	}
}

func TestScriptInterpreter(t *testing.T) {
	for head, want := range map[string]string{
		"#!/bin/sh\necho":           "/bin/sh",
		"#! /usr/bin/env python3\n": "/usr/bin/env",
		"#!\n":                      "",
	} {
		if got := scriptInterpreter([]byte(head)); got != want {
			t.Errorf("scriptInterpreter(%q) = %q, want %q", head, got, want)
		}
	}
}

func TestTail(t *testing.T) {
	tl := newTail(8)
	tl.copyFrom(strings.NewReader("0123456789abcdef"), nil)
	if got := string(tl.bytes()); got != "89abcdef" {
		t.Errorf("tail = %q, want the last 8 bytes", got)
	}
}

// TestCgroupLayouts reads limits and removes a run's directories on fake
// hierarchies laid out as cgroup v1 (this CI machine), hybrid, and v2 (which
// this machine can't give runc: its memory and cpu controllers are in v1).
func TestCgroupLayouts(t *testing.T) {
	type file struct{ path, content string }
	tests := []struct {
		name   string
		mounts []cgroupMount // dir is relative to a temp root
		files  []file
		want   Limits
	}{
		{"v1", []cgroupMount{{dir: "memory", options: "rw,memory"}, {dir: "cpu,cpuacct", options: "rw,cpu,cpuacct"}, {dir: "pids", options: "rw,pids"}},
			[]file{
				{"memory/initprof-1/memory.limit_in_bytes", "536870912\n"},
				{"cpu,cpuacct/initprof-1/cpu.cfs_quota_us", "28942\n"},
				{"cpu,cpuacct/initprof-1/cpu.cfs_period_us", "100000\n"},
				{"pids/initprof-1/pids.max", "1024\n"},
			}, Limits{Cgroup: "v1", MemoryBytes: 512 << 20, CPUQuotaUS: 28942, CPUPeriodUS: 100000}},
		{"hybrid", []cgroupMount{{dir: "unified", v2: true}, {dir: "memory", options: "rw,memory"}, {dir: "cpu", options: "rw,cpu"}},
			[]file{
				{"unified/initprof-1/cgroup.procs", ""},
				{"memory/initprof-1/memory.limit_in_bytes", "1073741824\n"},
				{"cpu/initprof-1/cpu.cfs_quota_us", "57885\n"},
				{"cpu/initprof-1/cpu.cfs_period_us", "100000\n"},
			}, Limits{Cgroup: "v1", MemoryBytes: 1 << 30, CPUQuotaUS: 57885, CPUPeriodUS: 100000}},
		{"v2", []cgroupMount{{dir: ".", v2: true}},
			[]file{
				{"initprof-1/memory.max", "1073741824\n"},
				{"initprof-1/cpu.max", "57885 100000\n"},
			}, Limits{Cgroup: "v2", MemoryBytes: 1 << 30, CPUQuotaUS: 57885, CPUPeriodUS: 100000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			var ms []cgroupMount
			for _, m := range tc.mounts {
				m.dir = filepath.Join(root, m.dir)
				ms = append(ms, m)
			}
			for _, f := range tc.files {
				p := filepath.Join(root, f.path)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(f.content), 0o644)
			}
			got, err := readLimitsIn(ms, "/initprof-1")
			if err != nil || got != tc.want {
				t.Errorf("limits = %+v, %v; want %+v", got, err, tc.want)
			}
			if n := len(cgroupDirsIn(ms, "/initprof-1")); n != len(tc.mounts) {
				t.Errorf("found %d run directories, want one per hierarchy (%d)", n, len(tc.mounts))
			}
			// A real cgroup directory's files vanish with it; here only an
			// emptied directory can be removed, as the kernel requires.
			if err := removeCgroupsIn(ms, "/initprof-1"); err == nil {
				t.Errorf("removing non-empty directories reported success")
			}
			for _, f := range tc.files {
				os.Remove(filepath.Join(root, f.path))
			}
			if err := removeCgroupsIn(ms, "/initprof-1"); err != nil {
				t.Errorf("remove: %v", err)
			}
			if d := cgroupDirsIn(ms, "/initprof-1"); len(d) != 0 {
				t.Errorf("left behind: %v", d)
			}
		})
	}
}

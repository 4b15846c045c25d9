package container

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

func TestInitQuota(t *testing.T) {
	tests := []struct {
		mem     int
		initCPU float64
		quota   int64
		switch_ bool
	}{
		{128, 0, 7235, false},    // the invoke quota throughout
		{128, 2, 200000, true},   // Lambda's init: 2 vCPUs, then 128/1769
		{1024, 1, 100000, true},  // 1 vCPU, then 1024/1769
		{1769, 1, 100000, false}, // init and invoke quotas are the same
		{3008, 2, 200000, true},  // 2 vCPUs, then 1.70
		{10240, 2, 200000, true}, // less during init than after: still a switch
	}
	for _, tc := range tests {
		c := Config{MemoryMB: tc.mem, InitCPU: tc.initCPU}
		q, p := c.initQuota()
		if q != tc.quota || p != cfsPeriod {
			t.Errorf("memory %d, init CPU %g: init quota %d/%d, want %d/%d", tc.mem, tc.initCPU, q, p, tc.quota, cfsPeriod)
		}
		if got := c.switchesCPU(); got != tc.switch_ {
			t.Errorf("memory %d, init CPU %g: switchesCPU = %v, want %v", tc.mem, tc.initCPU, got, tc.switch_)
		}
	}
}

// TestInitCPUSwitch runs a cold start at 128 MB with 2 vCPUs for init: the
// cgroup holds the init quota at create, and the invoke quota is in place
// after the last /next and before the invoke, as on Lambda.
func TestInitCPUSwitch(t *testing.T) {
	testutil.RequireRoot(t)
	rt := requireOCI(t, "runc")
	bin := initprofWithPlatform(t)
	sb, err := NewOCI(Config{
		Extensions:   []Extension{{Name: "cext", Path: testutil.Sample(t, "cext")}},
		Initprof:     bin,
		OCIRuntime:   rt,
		MemoryMB:     128,
		InitCPU:      2,
		PlatformArgs: []string{"--invokes", "1", "--runtime-init", "5ms"},
		WorkDir:      workTemp(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	in, err := sb.Create(context.Background(), "initcpu")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Delete()
	if l := in.Limits(); l.InitCPUQuotaUS != 200000 || l.CPUQuotaUS != 7235 || l.SwitchMonoNs != 0 {
		t.Errorf("before start: limits %+v, want init quota 200000, invoke 7235, no switch yet", l)
	}
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := in.Wait(context.Background()); err != nil || code != 0 {
		t.Fatalf("platform exit = %d, %v\n%s", code, err, in.Output())
	}
	l := in.Limits()
	if l.SwitchErr != "" || l.SwitchMonoNs == 0 {
		t.Fatalf("the invoke quota was not applied: %+v\n%s", l, in.Output())
	}
	f, err := os.Open(filepath.Join(in.OutDir(), TimelineName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lastNext, invoke int64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e struct {
			MonoNs int64          `json:"mono_ns"`
			Kind   string         `json:"kind"`
			Detail map[string]any `json:"detail"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case e.Kind == "init_end":
			if v, ok := e.Detail["last_next_mono_ns"].(float64); ok {
				lastNext = int64(v)
			}
		case e.Kind == "invoke" && invoke == 0:
			invoke = e.MonoNs
		}
	}
	if lastNext == 0 || invoke == 0 {
		t.Fatalf("timeline lacks init_end/last_next_mono_ns or an invoke (%d, %d)", lastNext, invoke)
	}
	if l.SwitchMonoNs < lastNext || l.SwitchMonoNs > invoke {
		t.Errorf("quota switched at %d, want between the last /next (%d) and the invoke (%d)", l.SwitchMonoNs, lastNext, invoke)
	}
	t.Logf("switch %.3f ms after the last /next, %.3f ms before the invoke", float64(l.SwitchMonoNs-lastNext)/1e6, float64(invoke-l.SwitchMonoNs)/1e6)
}

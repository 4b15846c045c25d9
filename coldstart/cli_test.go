package coldstart

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseBuilds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error text; "" for valid
	}{
		{[]string{"a=./a", "b=./b"}, ""},
		{[]string{"a=./a"}, "compare needs at least two builds"},
		{[]string{"a=./a", "./b"}, `"./b": want NAME=PATH`},
		{[]string{"a=./a", "b c=./b"}, `build name "b c": use letters`},
		{[]string{"a=./a", "a=./b"}, `build name "a" is used twice`},
	} {
		bs, err := ParseBuilds(tc.args)
		if tc.want == "" {
			if err != nil || len(bs) != 2 || bs[1].Name != "b" || bs[1].Path != "./b" {
				t.Errorf("%q: %+v, %v", tc.args, bs, err)
			}
			if got := ExtensionName(bs, ""); got != "a" {
				t.Errorf("ExtensionName = %q, want the first build's file name", got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || KindOf(err) != BadInput {
			t.Errorf("%q: error %v (kind %d), want BadInput with %q", tc.args, err, KindOf(err), tc.want)
		}
	}
}

func TestNewVMJob(t *testing.T) {
	cfg := Config{MemoryMB: 512, InitCPU: -1, RuntimeInit: 180 * time.Millisecond, RuntimeInvoke: time.Millisecond,
		Invokes: 2, InitTimeout: 10 * time.Second, Env: []string{"K=V"}, Uprobes: []string{"init_foo"},
		Checkpoints: []*regexp.Regexp{regexp.MustCompile(`INIT \| phase=(\w+)`)}}
	job := NewVMJob(cfg, GuestCommand{Cmd: "compare", Runs: 3, Seed: 7, Format: "markdown", Sample: &SampleOptions{Hz: 999, Runs: 2, OffCPU: true}},
		[]VMItem{{Label: "a", Path: "./a"}, {Label: "b", Path: "./b"}})
	want := "compare -n 3 --memory 512 --invokes 2 --init-timeout 10s --runtime-init 180ms --runtime-invoke 1ms --init-cpu 0" +
		" --seed 7 --format markdown --env K=V --uprobe init_foo --checkpoint INIT \\| phase=(\\w+)" +
		" --flamegraph --sample-hz 999 --sample-runs 2 --offcpu"
	if got := strings.Join(job.Command, " "); got != want {
		t.Errorf("command\n got %s\nwant %s", got, want)
	}
	if job.MemoryMB != 512 || len(job.Items) != 2 || job.Timeout != 6*40*time.Second+5*time.Minute {
		t.Errorf("job %+v", job)
	}
	run := NewVMJob(Config{MemoryMB: 1024, InitCPU: 2, InitTimeout: time.Second}, GuestCommand{Cmd: "run", Runs: 1}, nil)
	if got := strings.Join(run.Command, " "); strings.Contains(got, "--seed") || strings.Contains(got, "--flamegraph") || !strings.Contains(got, "--init-cpu 2") {
		t.Errorf("run command %s", got)
	}
}

func TestTraceCommand(t *testing.T) {
	var o TraceOptions
	if err := o.Command([]string{"sh", "-c", "true"}, "none"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(o.Argv[0], "/") || o.Name != "sh" || o.LdSo != "" || len(o.Argv) != 3 {
		t.Errorf("%+v", o)
	}
	if err := o.Command([]string{"no-such-command-here"}, ""); KindOf(err) != BadInput || !strings.Contains(err.Error(), `command "no-such-command-here"`) {
		t.Errorf("missing command: %v", err)
	}
}

func TestPlanOrder(t *testing.T) {
	for _, n := range []string{"goext", "cext"} {
		if _, err := os.Stat("../build/samples/" + n); err != nil {
			t.Skipf("%v: run make samples", err)
		}
	}
	if _, err := PlanOrder("../build/samples/goext", OrderOptions{Output: "o.txt"}); KindOf(err) != BadInput || !strings.Contains(err.Error(), "goext: ") {
		t.Errorf("a Go binary: %v, want a BadInput refusal", err)
	}
	if _, err := PlanOrder("../build/samples/cext", OrderOptions{Output: "o.txt", Extend: "/nonexistent/order.txt"}); KindOf(err) != BadInput || !strings.HasPrefix(err.Error(), "--extend: ") {
		t.Errorf("a missing --extend: %v", err)
	}
	if _, err := PlanOrder("/nonexistent/ext", OrderOptions{}); KindOf(err) != BadInput || !strings.HasPrefix(err.Error(), "/nonexistent/ext: ") {
		t.Errorf("a missing binary: %v", err)
	}
	if p, err := PlanOrder("../build/samples/cext", OrderOptions{Output: "o.txt"}); err != nil || p.syms == nil {
		t.Errorf("cext: %v", err)
	}
}

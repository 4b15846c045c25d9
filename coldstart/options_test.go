package coldstart

import (
	"runtime"
	"strings"
	"testing"
)

func TestNeedsVM(t *testing.T) {
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	for _, tc := range []struct {
		arch    string
		want    bool
		wantErr string
	}{
		{"", false, ""},
		{runtime.GOARCH, false, ""},
		{HostArch(), false, ""},
		{other, runtime.GOARCH == "amd64", map[bool]string{true: "", false: "only arm64 can be emulated"}[runtime.GOARCH == "amd64"]},
		{"riscv64", false, `--arch "riscv64": use amd64 or arm64`},
	} {
		got, err := NeedsVM(tc.arch)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || KindOf(err) != BadInput {
				t.Errorf("NeedsVM(%q) = %v, %v; want a BadInput error with %q", tc.arch, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("NeedsVM(%q) = %v, %v; want %v", tc.arch, got, err, tc.want)
		}
	}
}

func TestSampleOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		in       SampleOptions
		timing   int
		wantRuns int
		wantErr  string
	}{
		{SampleOptions{Hz: DefaultSampleHz}, 10, 5, ""},
		{SampleOptions{Hz: DefaultSampleHz}, 3, 3, ""},
		{SampleOptions{Hz: 20000, Runs: 8}, 3, 8, ""},
		{SampleOptions{Hz: 0}, 10, 0, "--sample-hz 0"},
		{SampleOptions{Hz: 100001}, 10, 0, "--sample-hz"},
		{SampleOptions{Hz: 1000, Runs: -1}, 10, 0, "--sample-runs -1"},
	} {
		o := tc.in
		err := o.Validate(tc.timing)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || KindOf(err) != BadInput {
				t.Errorf("%+v.Validate(%d) = %v, want a BadInput error with %q", tc.in, tc.timing, err, tc.wantErr)
			}
		case err != nil || o.Runs != tc.wantRuns:
			t.Errorf("%+v.Validate(%d) = %v, Runs %d; want Runs %d", tc.in, tc.timing, err, o.Runs, tc.wantRuns)
		}
	}
}

func TestVMStorageArgs(t *testing.T) {
	for _, tc := range []struct {
		s    VMStorage
		want string
	}{
		{VMStorage{Warm: true, Storage: "lambda"}, "--cache warm --storage local"},
		{VMStorage{Storage: "local"}, "--cache warm --storage local"},
		{VMStorage{ReadAheadKiB: 128}, "--cache cold --storage lambda --readahead 128"},
		{VMStorage{Storage: "lambda", ReadAheadKiB: 512, ChunkLatency: "worker=0,az=0,s3=0", ChunkMix: "worker=100%", BaseMix: "host=100%", Seed: 7},
			"--cache cold --storage lambda --readahead 512 --chunk-latency worker=0,az=0,s3=0 --chunk-mix worker=100% --base-mix host=100% --storage-seed 7"},
	} {
		if got := strings.Join(tc.s.args(), " "); got != tc.want {
			t.Errorf("%+v.args() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

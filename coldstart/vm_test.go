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

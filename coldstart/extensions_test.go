package coldstart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunPackages(t *testing.T) {
	self, err := os.Executable() // an ELF for this machine whose libraries resolve
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not an ELF"), 0o755)
	for _, tc := range []struct {
		name    string
		args    []string
		rename  string
		cfg     Config
		want    []string // the extensions' names
		wantErr string
	}{
		{name: "one extension", args: []string{self}, cfg: Config{Runtime: "sim"}, want: []string{filepath.Base(self)}},
		{name: "renamed", args: []string{self}, rename: "datadog-agent", cfg: Config{Runtime: "sim"}, want: []string{"datadog-agent"}},
		{name: "twice the same name", args: []string{self, self}, cfg: Config{Runtime: "sim"}, wantErr: "two extensions are named"},
		{name: "not an ELF", args: []string{text}, cfg: Config{Runtime: "sim"}, wantErr: text},
		{name: "a bootstrap runtime", args: []string{self}, cfg: Config{Runtime: self}, want: []string{filepath.Base(self)}},
		{name: "a bootstrap alone", cfg: Config{Runtime: self}, want: []string{}},
		{name: "a bad bootstrap", args: []string{self}, cfg: Config{Runtime: text}, wantErr: "--runtime: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exts, err := RunPackages(tc.args, tc.rename, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || KindOf(err) != BadInput {
					t.Fatalf("RunPackages = %v, want a BadInput error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, e := range exts {
				names = append(names, e.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("RunPackages names %v, want %v", names, tc.want)
			}
		})
	}
}

func TestSeriesName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		cfg  Config
		want string
	}{
		{[]string{"./ext"}, Config{Runtime: "sim"}, "./ext"},
		{[]string{"a.zip", "./b"}, Config{Function: "code.zip"}, "a.zip ./b"},
		{nil, Config{Runtime: "sim", Function: "code.zip"}, "function code.zip"},
		{nil, Config{Runtime: "sim", Image: "fn.tar"}, "function fn.tar"},
		{nil, Config{Runtime: "./bootstrap"}, "function ./bootstrap"},
	} {
		if got := SeriesName(tc.args, tc.cfg); got != tc.want {
			t.Errorf("SeriesName(%q, %+v) = %q, want %q", tc.args, tc.cfg, got, tc.want)
		}
	}
}

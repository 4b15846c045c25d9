package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	results := []Result{
		{Name: "kernel", Status: OK, Detail: "6.18 (BTF)", Required: true},
		{Name: "runc/crun", Status: Missing, Detail: "neither found", Fix: "apt-get install runc"},
		{Name: "bpf", Status: Missing, Detail: "EPERM", Fix: "run as root", Required: true, Privileges: true},
	}
	for _, tc := range []struct {
		name   string
		asJSON bool
		want   []string // in the output
		reject []string // not in it
	}{
		{"table", false, []string{"OK       kernel", "MISSING  runc/crun", "neither found — fix: apt-get install runc"}, []string{`"name"`}},
		{"json", true, []string{"[\n  {\n    \"name\": \"kernel\"", `"status": "MISSING"`, `"privileges": true`, `"fix": "run as root"`}, []string{" — fix: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, results, tc.asJSON); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(out, r) {
					t.Errorf("output has %q:\n%s", r, out)
				}
			}
			if tc.asJSON {
				var back []Result
				if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != len(results) || back[2] != results[2] {
					t.Errorf("the JSON does not read back: %v, %+v", err, back)
				}
				if strings.Contains(out, `"privileges": false`) {
					t.Errorf("privileges is not omitted when false:\n%s", out)
				}
			}
		})
	}
}

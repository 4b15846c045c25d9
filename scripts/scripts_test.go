package scripts

import (
	"strings"
	"testing"
)

// TestRunUnknown: a name that is not embedded fails before anything runs.
func TestRunUnknown(t *testing.T) {
	var out strings.Builder
	if err := Run(&out, "nope.sh"); err == nil || !strings.Contains(err.Error(), "no embedded script") {
		t.Errorf("Run(nope.sh) = %v", err)
	}
}

// TestEmbedded: the scripts doctor --fix runs are in the binary, with the
// helper they source beside them.
func TestEmbedded(t *testing.T) {
	for _, name := range []string{"arm64-kernel.sh", "arm64-sysroot.sh", "lib-apt.sh"} {
		b, err := files.ReadFile(name)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: not embedded (%v)", name, err)
		}
		if name != "lib-apt.sh" && !strings.Contains(string(b), "lib-apt.sh") {
			t.Errorf("%s no longer sources lib-apt.sh; update this list", name)
		}
	}
}

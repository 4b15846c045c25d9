package coldstart_test

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's cold starts only where they can run: as root
// (CI is root). Elsewhere it says so and runs none, rather than fail.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "coldstart: SKIP every cold start (the example included): needs root for BPF, cgroups and the OCI runtime; CI runs as root")
		flag.Set("test.run", "^$")
	} else if _, err := os.Stat("../build/samples/goext"); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart: the example needs the sample extensions: run 'make samples'")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

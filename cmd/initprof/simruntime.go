package main

import (
	"os"

	"github.com/initprof/initprof/extension"
)

// The simulated runtime is the initprof binary itself, re-exec'd by
// `initprof platform --runtime sim` with INITPROF_SIM_RUNTIME=1. It must be a
// separate process so it starts, connects and blocks in /next exactly like a
// real runtime; reusing the binary means it exists in any sandbox rootfs the
// platform runs in. The hook runs before main, so no CLI parsing happens.
func init() {
	if os.Getenv(extension.SimRuntimeEnv) == "1" {
		os.Exit(extension.SimRuntimeMain())
	}
}

package coldstart

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/extension"
)

// Validate checks c before anything is made, so that a bad option costs no
// sandbox and no probe; Open checks it too. Zero values stand for the
// defaults. The messages name the initprof flags that set each field, since
// that is where a user meets them. Every error is of kind BadInput.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error { return kindErr(BadInput, fmt.Errorf(format, args...)) }
	if c.MemoryMB != 0 && (c.MemoryMB < 128 || c.MemoryMB > 10240) {
		return bad("--memory %d: Lambda allows 128 to 10240 MB", c.MemoryMB)
	}
	if c.InitCPU > 6 {
		return bad("--init-cpu %g: give 0 (the invoke quota) or up to 6 vCPUs (Lambda's most)", c.InitCPU)
	}
	switch c.Sandbox {
	case "", "oci", "process":
	default:
		return bad("--sandbox %q: use 'oci' or 'process'", c.Sandbox)
	}
	switch c.Storage {
	case "", container.StorageLocal:
	case container.StorageLambda:
		if c.Warm {
			return bad("--storage lambda with --cache warm: a warm cache fetches nothing; use --cache cold (the default), or --storage local")
		}
	default:
		return bad("--storage %q: use 'lambda' or 'local'", c.Storage)
	}
	if c.ReadAhead != 0 && (c.ReadAhead < 4<<10 || c.ReadAhead > 64<<20) {
		return bad("--readahead %d: give KiB between 4 and 65536 (128 is Linux's default)", c.ReadAhead>>10)
	}
	if c.Invokes < 0 {
		return bad("--invokes %d: must be 0 or more", c.Invokes)
	}
	if c.InitTimeout < 0 {
		return bad("--init-timeout %s: must be positive (Lambda's is 10s)", c.InitTimeout)
	}
	if c.RuntimeInit < 0 || c.RuntimeInvoke < 0 {
		return bad("--runtime-init/--runtime-invoke: must not be negative")
	}
	if err := extension.ValidateEnv(c.Env); err != nil {
		return bad("--env: %v", err)
	}
	for _, u := range c.Uprobes {
		if strings.TrimSpace(u) == "" || strings.HasSuffix(u, ":") {
			return bad("--uprobe %q: want SYMBOL or FILE:SYMBOL", u)
		}
	}
	for _, f := range []struct{ flag, path string }{{"--function", c.Function}, {"--image", c.Image}} {
		if _, err := os.Stat(f.path); f.path != "" && err != nil {
			return bad("%s %s: %v", f.flag, f.path, unwrapPath(err))
		}
	}
	// A function package or an image brings its own runtime.
	if c.Runtime != "" && c.Runtime != "sim" && c.Function == "" && c.Image == "" {
		if st, err := os.Stat(c.Runtime); err != nil {
			return bad("--runtime %s: %v (give 'sim' or the path of a bootstrap executable)", c.Runtime, unwrapPath(err))
		} else if st.IsDir() || st.Mode()&0o111 == 0 {
			return bad("--runtime %s: not an executable file (give 'sim' or the path of a bootstrap executable)", c.Runtime)
		}
	}
	return nil
}

// unwrapPath drops the *os.PathError's operation and path, for a message
// that names the file already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

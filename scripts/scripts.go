// Package scripts carries the shell scripts that fetch the arm64 microVM's
// kernel and sysroot (Debian packages, downloaded with a private apt state),
// so that an initprof installed with `go install`, far from any checkout, can
// fill its cache itself (`initprof doctor --fix`, or first use).
package scripts

import (
	"embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed *.sh
var files embed.FS

// Run runs the embedded script name (e.g. "arm64-kernel.sh") with bash and
// args, its output going to out. The scripts are written to a temporary
// directory laid out as in the checkout (DIR/scripts/*.sh), because they find
// their helpers relative to themselves.
func Run(out io.Writer, name string, args ...string) error {
	if _, err := files.Open(name); err != nil {
		return fmt.Errorf("no embedded script %s", name)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		return fmt.Errorf("%s needs bash: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "initprof-scripts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ents, err := files.ReadDir(".")
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "scripts"), 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "scripts", e.Name()), b, 0o755); err != nil {
			return err
		}
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(dir, "scripts", name)}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

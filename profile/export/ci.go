package export

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/initprof/initprof/profile"
)

// CI is compare's outputs for PRs and CI: what it prints (Format: text,
// markdown or json), hyperfine's --export-json shape (ExportJSON, a file)
// and the --fail-if gates (FailIf, parsed into Gates by Parse).
type CI struct {
	Format, ExportJSON, FailIf string
	Gates                      []profile.FailIf
}

// ErrUsage marks the errors of CI that are the caller's input to fix (the
// messages name compare's flags); ErrRegression the error of Finish that
// says a gate tripped.
var (
	ErrUsage      = errors.New("bad usage")
	ErrRegression = errors.New("regression")
)

type ciError struct {
	error
	kind error
}

func (e ciError) Is(target error) bool { return target == e.kind }
func (e ciError) Unwrap() error        { return e.error }

func usage(format string, args ...any) error {
	return ciError{fmt.Errorf(format, args...), ErrUsage}
}

// Parse checks Format and parses FailIf (profile.ParseFailIf) into Gates.
func (c *CI) Parse() error {
	switch c.Format {
	case "text", "markdown", "md", "json":
	default:
		return usage("--format %q: use text, markdown or json", c.Format)
	}
	if c.FailIf != "" {
		g, err := profile.ParseFailIf(c.FailIf)
		if err != nil {
			return usage("%v", err)
		}
		c.Gates = g
	}
	return nil
}

// Markdown says whether Format asks for the Markdown table
// (CompareMarkdown).
func (c *CI) Markdown() bool { return c.Format == "markdown" || c.Format == "md" }

// Finish writes ExportJSON (WriteHyperfine) for the builds' results of a
// finished comparison and applies the gates (Comparison.Regressions): each
// regression is a line on stdout, and their count an ErrRegression error.
// progress receives what was written and, when no gate tripped, that none
// did.
func (c *CI) Finish(cmp *profile.Comparison, results []profile.BuildRuns, stdout io.Writer, progress func(string)) error {
	if c.ExportJSON != "" {
		f, err := os.Create(c.ExportJSON)
		if err != nil {
			return usage("--export-json: %v", err)
		}
		err = WriteHyperfine(f, results)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		progress(fmt.Sprintf("wrote %s (hyperfine's JSON shape)", c.ExportJSON))
	}
	if len(c.Gates) == 0 {
		return nil
	}
	regs, err := cmp.Regressions(c.Gates)
	if err != nil {
		return usage("%v", err)
	}
	for _, r := range regs {
		fmt.Fprintln(stdout, r)
	}
	if len(regs) > 0 {
		return ciError{fmt.Errorf("--fail-if %s: %d regression(s)", c.FailIf, len(regs)), ErrRegression}
	}
	progress(fmt.Sprintf("--fail-if %s: no significant regression past the threshold", c.FailIf))
	return nil
}

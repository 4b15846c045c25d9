// Command initprof profiles the cold-start init of AWS Lambda extension
// binaries: from execve to the extension's first /next.
//
// Each subcommand lives in its own file and registers itself with
// register(), so that adding one never touches another's code.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/probes"
)

// Exit codes. They are part of the CLI contract: scripts and CI branch on them.
const (
	exitOK          = 0
	exitFailure     = 1 // something went wrong that is not the user's input
	exitBadInput    = 2 // bad flags, missing or unusable files
	exitPrivileges  = 3 // the kernel refused: missing capability or feature
	exitInitFailed  = 4 // the extension under test failed its init
	exitRegression  = 5 // compare --fail-if: a significant slowdown passed the threshold
	exitInterrupted = 130
)

// exitError carries an exit code through ordinary error returns.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// badInput is the common case of withCode(exitBadInput, fmt.Errorf(...)).
func badInput(format string, args ...any) error {
	return withCode(exitBadInput, fmt.Errorf(format, args...))
}

// command is one subcommand.
type command struct {
	name    string
	summary string // one line for the top-level help
	usage   string // the argument synopsis, e.g. "[flags] BINARY..."
	long    string // a paragraph or two that teaches; examples welcome
	hidden  bool   // internal (spawned by initprof itself): not in the top-level help
	// flags defines the command's flags on fs and returns the function that runs it.
	setup func(fs *pflag.FlagSet) func(args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("initprof: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func topUsage() string {
	var b strings.Builder
	b.WriteString(`initprof measures where the cold-start init of an AWS Lambda extension goes:
loading and linking the binary, or the order of its init steps. It watches
from execve to the extension's first /next with eBPF.

Usage:
  initprof COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		if commands[n].hidden {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-11s %s\n", n, commands[n].summary)
	}
	b.WriteString(`
Run 'initprof COMMAND --help' for a command's flags and examples.
`)
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			if c, ok := commands[args[1]]; ok {
				fs := newFlagSet(c)
				c.setup(fs)
				fs.Usage()
				return exitOK
			}
		}
		fmt.Print(topUsage())
		if len(args) == 0 {
			return exitBadInput
		}
		return exitOK
	}
	if args[0] == probes.CalibrationArg {
		// The calibration child of a profiling run (probes.Calibrate).
		return probes.CalibrationChild(args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Println("initprof", version())
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "initprof: unknown command %q\n\n%s", args[0], topUsage())
		return exitBadInput
	}
	fs := newFlagSet(c)
	runFn := c.setup(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(os.Stderr, "initprof %s: %v\nRun 'initprof %s --help' for usage.\n", c.name, err, c.name)
		return exitBadInput
	}
	if err := runFn(fs.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "initprof %s: %v\n", c.name, err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return exitFailure
	}
	return exitOK
}

func newFlagSet(c *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: initprof %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.long))
		if fs.HasFlags() {
			fmt.Fprintf(os.Stderr, "\nFlags:\n%s", fs.FlagUsages())
		}
	}
	return fs
}

package coldstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/probes"
)

// TraceOptions describe one command run on the host under every timing probe
// (`initprof trace`): no sandbox, no platform; a debugging view of what the
// probes see in a binary.
type TraceOptions struct {
	Argv    []string // the executable's path and its arguments
	Name    string   // argv[0] as the command sees it ("" keeps Argv[0])
	LdSo    string   // the dynamic loader to probe, "" for none
	Uprobes []string // extra checkpoints: SYMBOL or FILE:SYMBOL
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Command sets Argv and Name from a command line as typed: args[0] looked
// up on PATH and made absolute, as it is traced; and LdSo from ldso: ""
// is the executable's PT_INTERP, "none" no loader. Errors are of kind
// BadInput.
func (o *TraceOptions) Command(args []string, ldso string) error {
	if len(args) == 0 {
		return kindErr(BadInput, errors.New("no command given: initprof trace -- COMMAND [ARGS...]"))
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return kindErr(BadInput, fmt.Errorf("command %q: %v", args[0], err))
	}
	bin, _ = filepath.Abs(bin)
	switch ldso {
	case "":
		ldso = elfinfo.Interp(bin)
	case "none":
		ldso = ""
	}
	o.Argv, o.Name, o.LdSo = append([]string{bin}, args[1:]...), args[0], ldso
	return nil
}

// TraceResult is what the probes saw.
type TraceResult struct {
	Events      []probes.Event
	Stats       probes.Stats
	Unavailable []probes.Missing // checkpoints that could not be attached, and why
	Interrupted bool             // ctx ended first: the command got SIGINT
}

// Trace runs the command under the probes until it exits (or ctx ends, when
// it is sent SIGINT and waited for) and returns every event. The probes are
// detached before it returns.
func Trace(ctx context.Context, o TraceOptions) (*TraceResult, error) {
	if len(o.Argv) == 0 {
		return nil, kindErr(BadInput, errors.New("no command given"))
	}
	t, err := probes.New(probes.Options{Executables: []string{o.Argv[0]}, LdSo: o.LdSo, UserProbes: o.Uprobes})
	if err != nil {
		if errors.Is(err, probes.ErrPermission) {
			return nil, kindErr(Privileges, err)
		}
		return nil, err
	}
	defer t.Close()
	res := &TraceResult{Unavailable: t.Unavailable()}
	// The command is this process's child: follow the children.
	if err := t.FollowChildren(os.Getpid()); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Argv[0], o.Argv[1:]...)
	if o.Name != "" {
		cmd.Args[0] = o.Name
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	if err := cmd.Start(); err != nil {
		return nil, kindErr(BadInput, fmt.Errorf("starting %s: %v", o.Argv[0], err))
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-ctx.Done():
		res.Interrupted = true
		cmd.Process.Signal(os.Interrupt)
		<-waited
	}
	if res.Events, res.Stats, err = t.Collect(); err != nil {
		return nil, err
	}
	return res, nil
}

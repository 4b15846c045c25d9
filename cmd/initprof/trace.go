package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/probes"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:    "trace",
		summary: "run a command under the eBPF probes and print its timeline (debugging)",
		usage:   "[flags] -- COMMAND [ARGS...]",
		long: `trace runs one command on the host with every initprof timing probe attached
and prints what the probes saw, one line per event, in µs after the command's
execve: the loader's steps (ld.so entry, dependencies loaded, each object's
relocation, constructors), the entry point, main, sockets and the HTTP requests
the command wrote. It is the quickest way to check that the probes see a binary,
and which checkpoints are unavailable and why (e.g. ld.so without symbols).

It needs root (or CAP_BPF and CAP_PERFMON). Page faults are shown as deltas since
the previous line; off-CPU intervals are summed at the end unless --all is given.

Examples:
  initprof trace -- /bin/true
  initprof trace --uprobe curl_global_init -- build/samples/cext
  initprof trace --all --ldso /lib64/ld-linux-x86-64.so.2 -- ./myext`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			ldso := fs.String("ldso", "", "the dynamic loader to probe (default: the command's PT_INTERP; 'none' to skip)")
			ups := fs.StringArray("uprobe", nil, "extra checkpoint: SYMBOL (in the command) or FILE:SYMBOL; repeatable")
			all := fs.Bool("all", false, "print every event, including off-CPU intervals, mmaps and opens")
			return func(args []string) error { return runTrace(args, *ldso, *ups, *all) }
		},
	})
}

func runTrace(args []string, ldso string, ups []string, all bool) error {
	o := coldstart.TraceOptions{Uprobes: ups, Stdin: os.Stdin, Stdout: os.Stderr, Stderr: os.Stderr}
	if err := o.Command(args, ldso); err != nil {
		return engineErr(err)
	}
	// SIGINT stops the command; the engine still detaches the probes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := coldstart.Trace(ctx, o)
	if err != nil {
		return engineErr(err)
	}
	for _, m := range res.Unavailable {
		fmt.Fprintf(os.Stderr, "unavailable: %s\n", m)
	}
	probes.WriteTimeline(os.Stdout, res.Events, all)
	probes.WritePhases(os.Stdout, res.Events)
	probes.WriteStats(os.Stdout, res.Stats)
	if res.Interrupted {
		return withCode(exitInterrupted, errors.New("interrupted"))
	}
	return nil
}

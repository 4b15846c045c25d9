package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

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
	if len(args) == 0 {
		return badInput("no command given: initprof trace -- COMMAND [ARGS...]")
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return badInput("command %q: %v", args[0], err)
	}
	bin, _ = filepath.Abs(bin)
	if ldso == "" {
		ldso = interpOf(bin)
	} else if ldso == "none" {
		ldso = ""
	}
	t, err := probes.New(probes.Options{Executables: []string{bin}, LdSo: ldso, UserProbes: ups})
	if err != nil {
		if errors.Is(err, probes.ErrPermission) {
			return withCode(exitPrivileges, err)
		}
		return err
	}
	defer t.Close()
	for _, m := range t.Unavailable() {
		fmt.Fprintf(os.Stderr, "unavailable: %s\n", m)
	}
	// SIGINT stops the command; Close still runs through the deferred call.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if err := t.FollowChildren(os.Getpid()); err != nil {
		return err
	}
	cmd := exec.Command(bin, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return badInput("starting %s: %v", bin, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	interrupted := false
	select {
	case <-waited:
	case <-sigs:
		interrupted = true
		cmd.Process.Signal(os.Interrupt)
		<-waited
	}
	events, st, err := t.Collect()
	if err != nil {
		return err
	}
	printTimeline(events, all)
	printPhases(events)
	fmt.Printf("# %d events, %d uprobe sites (uprobe_multi=%v)\n", st.Events, st.Uprobes, st.Multi)
	if st.Dropped > 0 {
		fmt.Printf("# WARNING: %d EVENTS WERE DROPPED (ring buffer full): the timeline has holes\n", st.Dropped)
	}
	if interrupted {
		return withCode(exitInterrupted, errors.New("interrupted"))
	}
	return nil
}

// interpOf returns bin's PT_INTERP, "" for a static binary.
func interpOf(bin string) string {
	f, err := elf.Open(bin)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

func printTimeline(events []probes.Event, all bool) {
	var t0, lastFaults uint64
	offcpu := map[bool]uint64{}
	for _, e := range events {
		if t0 == 0 && e.Kind == probes.KindExec {
			t0 = e.Time
		}
	}
	if t0 == 0 && len(events) > 0 {
		t0 = events[0].Time
	}
	for _, e := range events {
		if e.Kind == probes.KindOffCPU {
			offcpu[e.Runnable] += e.Time - e.Start
		}
		if !all && (e.Kind == probes.KindOffCPU || e.Kind == probes.KindMmap || e.Kind == probes.KindOpen) {
			continue
		}
		rel := float64(int64(e.Time-t0)) / 1e3
		df := e.Faults - lastFaults
		if e.Faults < lastFaults {
			df = 0
		}
		lastFaults = e.Faults
		fmt.Printf("%10.1f µs  +%4d flt  %s\n", rel, df, e.String())
	}
	fmt.Printf("# off-CPU: runnable %.1f µs, blocked %.1f µs\n", float64(offcpu[true])/1e3, float64(offcpu[false])/1e3)
}

// printPhases splits the exec'd process's start into the loader's phases and
// says, for each, how much of it was on CPU, runnable (waiting for a CPU) and
// blocked, and how many page faults it took. Absent checkpoints skip a phase.
func printPhases(events []probes.Event) {
	var pid uint32
	marks := map[string]probes.Event{}
	mark := func(name string, e probes.Event) {
		if _, ok := marks[name]; !ok {
			marks[name] = e
		}
	}
	for _, e := range events {
		if pid == 0 && e.Kind == probes.KindExec {
			pid = e.PID
		}
		if pid == 0 || e.PID != pid {
			continue
		}
		switch {
		case e.Kind == probes.KindExec:
			mark("exec", e)
		case e.Kind == probes.KindExecDone:
			mark("exec_done", e)
		case e.Kind == probes.KindUprobe || e.Kind == probes.KindUretprobe:
			mark(e.Checkpoint, e)
		case e.Kind == probes.KindSend && strings.HasPrefix(string(e.Data), "GET /2020-01-01/extension/event/next"):
			mark("next", e)
		}
	}
	if pid == 0 {
		return
	}
	type phase struct{ name, from, to string }
	phases := []phase{
		{"exec (kernel)", "exec", "exec_done"},
		{"to ld.so entry", "exec_done", probes.CheckpointLdsoStart},
		{"ld.so setup", probes.CheckpointLdsoStart, probes.CheckpointDepsStart},
		{"load dependencies", probes.CheckpointDepsStart, probes.CheckpointDepsLoaded},
		{"relocation", probes.CheckpointDepsLoaded, probes.CheckpointDlStartUser},
		{"library constructors", probes.CheckpointDlInit, probes.CheckpointEntry},
		{"entry → main", probes.CheckpointEntry, probes.CheckpointMain},
		{"entry → main.main", probes.CheckpointEntry, probes.CheckpointGoMain},
		{"main → first /next", probes.CheckpointMain, "next"},
		{"main.main → first /next", probes.CheckpointGoMain, "next"},
	}
	fmt.Printf("# phases of pid %d (µs; the CPU split is the main thread's): total = on-CPU + runnable + blocked, faults\n", pid)
	for _, ph := range phases {
		a, ok1 := marks[ph.from]
		b, ok2 := marks[ph.to]
		if !ok1 || !ok2 || b.Time < a.Time {
			continue
		}
		var runnable, blocked uint64
		for _, e := range events {
			if e.Kind != probes.KindOffCPU || e.TID != pid { // the main thread only: threads overlap
				continue
			}
			lo, hi := max(e.Start, a.Time), min(e.Time, b.Time)
			if hi <= lo {
				continue
			}
			if e.Runnable {
				runnable += hi - lo
			} else {
				blocked += hi - lo
			}
		}
		total := b.Time - a.Time
		on := total - min(total, runnable+blocked)
		fmt.Printf("#   %-24s %9.1f = %9.1f + %8.1f + %8.1f  %5d flt\n", ph.name,
			float64(total)/1e3, float64(on)/1e3, float64(runnable)/1e3, float64(blocked)/1e3, b.Faults-a.Faults)
	}
}

package probes

import (
	"fmt"
	"io"
	"strings"
)

// WriteTimeline prints events one per line, in µs after the first exec, with
// the page faults since the previous line; off-CPU intervals, mmaps and
// opens only with all (off-CPU time is summed at the end). It is the
// debugging view of `initprof trace`.
func WriteTimeline(w io.Writer, events []Event, all bool) {
	var t0, lastFaults uint64
	offcpu := map[bool]uint64{}
	for _, e := range events {
		if t0 == 0 && e.Kind == KindExec {
			t0 = e.Time
		}
	}
	if t0 == 0 && len(events) > 0 {
		t0 = events[0].Time
	}
	for _, e := range events {
		if e.Kind == KindOffCPU {
			offcpu[e.Runnable] += e.Time - e.Start
		}
		if !all && (e.Kind == KindOffCPU || e.Kind == KindMmap || e.Kind == KindOpen) {
			continue
		}
		rel := float64(int64(e.Time-t0)) / 1e3
		df := e.Faults - lastFaults
		if e.Faults < lastFaults {
			df = 0
		}
		lastFaults = e.Faults
		fmt.Fprintf(w, "%10.1f µs  +%4d flt  %s\n", rel, df, e.String())
	}
	fmt.Fprintf(w, "# off-CPU: runnable %.1f µs, blocked %.1f µs\n", float64(offcpu[true])/1e3, float64(offcpu[false])/1e3)
}

// WritePhases splits the exec'd process's start into the loader's phases and
// says, for each, how much of it was on CPU, runnable (waiting for a CPU) and
// blocked, and how many page faults it took. Absent checkpoints skip a phase.
func WritePhases(w io.Writer, events []Event) {
	var pid uint32
	marks := map[string]Event{}
	mark := func(name string, e Event) {
		if _, ok := marks[name]; !ok {
			marks[name] = e
		}
	}
	for _, e := range events {
		if pid == 0 && e.Kind == KindExec {
			pid = e.PID
		}
		if pid == 0 || e.PID != pid {
			continue
		}
		switch {
		case e.Kind == KindExec:
			mark("exec", e)
		case e.Kind == KindExecDone:
			mark("exec_done", e)
		case e.Kind == KindUprobe || e.Kind == KindUretprobe:
			mark(e.Checkpoint, e)
		case e.Kind == KindSend && strings.HasPrefix(string(e.Data), "GET /2020-01-01/extension/event/next"):
			mark("next", e)
		}
	}
	if pid == 0 {
		return
	}
	type phase struct{ name, from, to string }
	phases := []phase{
		{"exec (kernel)", "exec", "exec_done"},
		{"to ld.so entry", "exec_done", CheckpointLdsoStart},
		{"ld.so setup", CheckpointLdsoStart, CheckpointDepsStart},
		{"load dependencies", CheckpointDepsStart, CheckpointDepsLoaded},
		{"relocation", CheckpointDepsLoaded, CheckpointDlStartUser},
		{"library constructors", CheckpointDlInit, CheckpointEntry},
		{"entry → main", CheckpointEntry, CheckpointMain},
		{"entry → main.main", CheckpointEntry, CheckpointGoMain},
		{"main → first /next", CheckpointMain, "next"},
		{"main.main → first /next", CheckpointGoMain, "next"},
	}
	fmt.Fprintf(w, "# phases of pid %d (µs; the CPU split is the main thread's): total = on-CPU + runnable + blocked, faults\n", pid)
	for _, ph := range phases {
		a, ok1 := marks[ph.from]
		b, ok2 := marks[ph.to]
		if !ok1 || !ok2 || b.Time < a.Time {
			continue
		}
		var runnable, blocked uint64
		for _, e := range events {
			if e.Kind != KindOffCPU || e.TID != pid { // the main thread only: threads overlap
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
		fmt.Fprintf(w, "#   %-24s %9.1f = %9.1f + %8.1f + %8.1f  %5d flt\n", ph.name,
			float64(total)/1e3, float64(on)/1e3, float64(runnable)/1e3, float64(blocked)/1e3, b.Faults-a.Faults)
	}
}

// WriteStats ends `initprof trace`'s view: how many events and uprobe
// sites, and a warning when the ring buffer dropped events (the timeline
// above then has holes).
func WriteStats(w io.Writer, st Stats) {
	fmt.Fprintf(w, "# %d events, %d uprobe sites (uprobe_multi=%v)\n", st.Events, st.Uprobes, st.Multi)
	if st.Dropped > 0 {
		fmt.Fprintf(w, "# WARNING: %d EVENTS WERE DROPPED (ring buffer full): the timeline has holes\n", st.Dropped)
	}
}

package assemble

import (
	"regexp"
	"testing"

	"github.com/initprof/initprof/extension"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
)

// A small run, as the probes and the platform would report it: times in µs
// after an arbitrary origin. The probes are the real ones' event shapes; the
// input is synthetic because this is a unit test of the join, not of capture.
func sampleInput() Input {
	const us = 1000
	pid := uint32(4242)
	ev := func(t uint64, k probes.Kind, f func(*probes.Event)) probes.Event {
		e := probes.Event{Time: t * us, Kind: k, PID: pid, TID: pid}
		if f != nil {
			f(&e)
		}
		return e
	}
	evs := []probes.Event{
		ev(110, probes.KindExec, func(e *probes.Event) { e.Start = 100 * us; e.Path = "/opt/extensions/ext" }),
		ev(300, probes.KindExecDone, nil),
		ev(310, probes.KindUprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointLdsoStart; e.Faults = 5 }),
		ev(900, probes.KindUretprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointDepsLoaded; e.Faults = 60 }),
		ev(950, probes.KindUretprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointRelocateDone; e.Faults = 70 }),
		ev(1500, probes.KindUretprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointRelocateDone; e.Faults = 90 }),
		ev(1600, probes.KindUprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointDlInit; e.Faults = 91 }),
		ev(2000, probes.KindUprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointEntry; e.Faults = 100 }),
		ev(2100, probes.KindUprobe, func(e *probes.Event) { e.Checkpoint = probes.CheckpointMain }),
		ev(2300, probes.KindSend, func(e *probes.Event) {
			e.Start = 2290 * us
			e.FD = 5
			e.Data = []byte("POST /2020-01-01/extension/register HTTP/1.1\r\n")
		}),
		ev(2400, probes.KindRecv, func(e *probes.Event) { e.FD = 6; e.Data = []byte("HTTP/1.1 200 OK") }), // another socket: ignored
		ev(2500, probes.KindRecv, func(e *probes.Event) { e.FD = 5; e.Data = []byte("HTTP/1.1 200 OK") }),
		ev(2600, probes.KindBind, func(e *probes.Event) { e.Family = 2; e.Port = 0 }),
		ev(2700, probes.KindSend, func(e *probes.Event) { e.FD = 5; e.Data = []byte("PUT /2022-07-01/telemetry HTTP/1.1") }),
		ev(2800, probes.KindRecv, func(e *probes.Event) { e.FD = 5; e.Data = []byte("HTTP/1.1 200 OK") }),
		ev(2900, probes.KindSend, func(e *probes.Event) { e.FD = 5; e.Data = []byte("GET /2020-01-01/extension/event/next HTTP/1.1") }),
		// Blocked 100 µs inside register, preempted 50 µs inside load_deps.
		ev(2450, probes.KindOffCPU, func(e *probes.Event) { e.Start = 2350 * us }),
		ev(550, probes.KindOffCPU, func(e *probes.Event) { e.Start = 500 * us; e.Runnable = true }),
	}
	tl := []extension.Entry{
		{MonoNs: 50 * us, Kind: extension.KindState, Name: extension.NamePlatform, Event: "initStart"},
		{MonoNs: 60 * us, Kind: extension.KindSpawn, Name: "ext", PID: 7, Path: "/opt/extensions/ext"},
		{MonoNs: 2150 * us, Kind: extension.KindLog, Name: "ext", PID: 7, Line: "INIT | checkpoint=main mono_ns=2105000"},
		{MonoNs: 2160 * us, Kind: extension.KindLog, Name: "ext", PID: 7, Line: "INIT | phase=config_loaded mono_ns=2200000"},
		{MonoNs: 2950 * us, Kind: extension.KindInitEnd, Name: "ext", State: "success", Detail: map[string]any{
			"duration_ms": 2.86, "status": "success", "ended_by": "ext", "last_next_mono_ns": float64(2910 * us), "init_start_mono_ns": float64(50 * us)}},
	}
	return Input{Index: 3, Build: "b", Events: evs, Timeline: tl, Checkpoints: []*regexp.Regexp{regexp.MustCompile(`INIT \| phase=(\w+)`)}}
}

func TestAssemble(t *testing.T) {
	res, err := Assemble(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Run.Processes) != 1 {
		t.Fatalf("processes: %+v", res.Run.Processes)
	}
	p := res.Run.Processes[0]
	if p.PID != 4242 || res.PIDs["ext"] != 4242 {
		t.Errorf("the extension was not matched to its host pid by exec path: %+v", p)
	}
	want := map[string]int64{
		profile.CkSpawn:         60,
		profile.CkExec:          100, // sys_enter_execve, not its return
		profile.CkExecDone:      300,
		profile.CkLdsoStart:     310,
		profile.CkDepsLoaded:    900,
		profile.CkRelocated:     1500, // the last relocation's return
		profile.CkEntry:         2000,
		profile.CkMain:          2100,
		profile.CkRegisterSent:  2290, // the write's entry
		profile.CkRegisterOK:    2500, // the response on the same socket
		profile.CkListenerBound: 2600,
		profile.CkSubscribeSent: 2700,
		profile.CkSubscribeOK:   2800,
		profile.CkNext:          2900,
		"log:config_loaded":     2200, // its own mono_ns, not when the platform read it
	}
	for name, us := range want {
		got, ok := p.Checkpoint(name)
		if !ok || got != us*1000 {
			t.Errorf("%s = %d (present %v), want %d µs", name, got, ok, us)
		}
	}
	if n := len(res.Truth); n != 1 || res.Truth[0].Name != "main" || res.Truth[0].MonoNs != 2105000 {
		t.Errorf("ground truth: %+v", res.Truth)
	}
	if got := p.BlockedNs["register"]; got != 100000 {
		t.Errorf("blocked in register = %d ns, want 100000", got)
	}
	if got := p.RunnableNs["load_deps"]; got != 50000 {
		t.Errorf("runnable in load_deps = %d ns, want 50000", got)
	}
	if got := p.Faults["load_deps"]; got != 55 {
		t.Errorf("faults in load_deps = %d, want 55", got)
	}
	if res.Run.InitStartNs != 50000 || res.Run.InitDurationMs != 2.86 || res.Run.EndedBy != "ext" || res.Run.InitStatus != "success" {
		t.Errorf("platform facts: start %d, duration %.2f ms, ended by %q, status %q",
			res.Run.InitStartNs, res.Run.InitDurationMs, res.Run.EndedBy, res.Run.InitStatus)
	}
}

// TestAssembleNoExec: when the probes saw no exec of a spawned file, only the
// platform's checkpoint remains, and the run says why.
func TestAssembleNoExec(t *testing.T) {
	in := sampleInput()
	in.Events = nil
	res, err := Assemble(in)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Run.Processes[0]
	if len(p.Checkpoints) != 2 { // spawn and the log-line checkpoint
		t.Errorf("checkpoints %+v", p.Checkpoints)
	}
	if len(res.Run.Notes) == 0 {
		t.Error("no note explains the missing probe checkpoints")
	}
}

func TestAssembleNoTimeline(t *testing.T) {
	if _, err := Assemble(Input{}); err == nil {
		t.Error("a run without a platform timeline must be an error")
	}
}

// TestAssembleIOPerPhase: the running major-fault and read-bytes counts the
// events carry become per-phase differences, like faults.
func TestAssembleIOPerPhase(t *testing.T) {
	const mib = 1 << 20
	set := map[string][2]uint64{ // checkpoint → {major faults, bytes read} at its event
		probes.CheckpointLdsoStart:    {1, 64 << 10},
		probes.CheckpointDepsLoaded:   {34, 12 * mib},
		probes.CheckpointRelocateDone: {40, 13 * mib}, // both relocation returns
		probes.CheckpointDlInit:       {40, 13 * mib},
		probes.CheckpointEntry:        {41, 13*mib + 4096},
	}
	in := sampleInput()
	for i := range in.Events {
		if v, ok := set[in.Events[i].Checkpoint]; ok {
			in.Events[i].MajFaults, in.Events[i].ReadBytes = v[0], v[1]
		}
	}
	res, err := Assemble(in)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Run.Processes[0]
	for _, tc := range []struct {
		phase     string
		major, rd int64
	}{
		{"load_deps", 33, 12*mib - 64<<10},
		{"relocate", 6, mib},
		{"constructors", 1, 4096},
	} {
		maj, ok1 := p.MajorFaults[tc.phase]
		rd, ok2 := p.BytesRead[tc.phase]
		if !ok1 || !ok2 || maj != tc.major || rd != tc.rd {
			t.Errorf("%s: major faults %d (present %v), bytes read %d (present %v); want %d, %d",
				tc.phase, maj, ok1, rd, ok2, tc.major, tc.rd)
		}
	}
	// A run without disk reads measures zero, not "unmeasured".
	res, err = Assemble(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	if rd, ok := res.Run.Processes[0].BytesRead["load_deps"]; !ok || rd != 0 {
		t.Errorf("warm run: load_deps bytes read %d (present %v), want a measured 0", rd, ok)
	}
}

// TestListenerIsTheTelemetryBind: an extension shaped like Datadog's binds
// other listeners (8124, 8126, UDP 8125) before its telemetry one (8999);
// listener_bound is the bind of the port it subscribes to, whichever comes
// first, and the first IP bind when no subscription names a port it bound.
func TestListenerIsTheTelemetryBind(t *testing.T) {
	const us = 1000
	binds := []struct {
		at   uint64
		port int
		fam  int
		ret  int64
	}{
		{2550, 8125, afInet, 0},   // UDP, still an IP bind
		{2560, 8124, afInet6, 0},  // trace agent
		{2570, 8999, afInet, -98}, // EADDRINUSE: not bound
		{2580, 8126, afInet, 0},
		{2600, 8999, afInet, 0}, // the telemetry listener
		{2650, 0, 1, 0},         // AF_UNIX: never a listener here
	}
	for _, tc := range []struct {
		name string
		port any // the subscribe entry's detail, as JSON would give it
		want int64
	}{
		{"subscribed 8999 (json float)", float64(8999), 2600},
		{"subscribed 8999 (in-process int)", 8999, 2600},
		{"no subscription port", nil, 2550},
		{"subscribed a port someone else binds", float64(4243), 2550},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := sampleInput()
			var evs []probes.Event
			for _, e := range in.Events {
				if e.Kind != probes.KindBind {
					evs = append(evs, e)
				}
			}
			for _, b := range binds {
				evs = append(evs, probes.Event{Time: b.at * us, Kind: probes.KindBind, PID: 4242, TID: 4242, Port: b.port, Family: b.fam, Ret: b.ret})
			}
			in.Events = evs
			if tc.port != nil {
				in.Timeline = append(in.Timeline, extension.Entry{MonoNs: 2710 * us, Kind: extension.KindTelemetry, Name: "ext", Event: "subscribe",
					Detail: map[string]any{"port": tc.port}})
			}
			res, err := Assemble(in)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := res.Run.Processes[0].Checkpoint(profile.CkListenerBound)
			if !ok || got != tc.want*us {
				t.Errorf("listener_bound at %d µs (present %v), want %d µs", got/us, ok, tc.want)
			}
		})
	}
}

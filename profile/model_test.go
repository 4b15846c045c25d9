package profile

import (
	"reflect"
	"strings"
	"testing"
)

// proc builds a process from name/µs pairs.
func proc(role string, cks ...any) Process {
	p := Process{Name: "ext", Role: role}
	if role == RoleRuntime {
		p.Name = "bootstrap"
	}
	for i := 0; i < len(cks); i += 2 {
		p.Checkpoints = append(p.Checkpoints, Checkpoint{Name: cks[i].(string), MonoNs: int64(cks[i+1].(int)) * 1000, Source: SourceEBPF})
	}
	return p
}

func names(spans []Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func TestPhases(t *testing.T) {
	full := []any{}
	for i, c := range Checkpoints {
		full = append(full, c, 100*i)
	}
	tests := []struct {
		name      string
		p         Process
		want      []string
		wantFrom  []string
		missing   []string
		outOfOrd  []string
		wantDurUs []int64
	}{
		{
			name: "every checkpoint",
			p:    proc(RoleExtension, full...),
			want: []string{"spawn", "exec", "to_ldso", "load_deps", "relocate", "constructors", "to_entry", "to_main",
				"to_register", "register", "listener", "to_subscribe", "subscribe", "to_next"},
		},
		{
			name:      "one missing checkpoint folds two phases",
			p:         proc(RoleExtension, CkExec, 0, CkExecDone, 10, CkDepsLoaded, 50, CkRelocated, 80),
			want:      []string{"exec", "to_ldso+load_deps", "relocate"},
			wantFrom:  []string{CkExec, CkExecDone, CkDepsLoaded},
			wantDurUs: []int64{10, 40, 30},
			missing: []string{CkSpawn, CkLdsoStart, CkConstructorsDone, CkEntry, CkMain, CkRegisterSent, CkRegisterOK,
				CkListenerBound, CkSubscribeSent, CkSubscribeOK, CkNext},
		},
		{
			name:    "runtime seen only at exec and next",
			p:       proc(RoleRuntime, CkExec, 0, CkExecDone, 5, CkNext, 180000),
			want:    []string{"exec", "exec_done_to_next"},
			missing: []string{CkLdsoStart, CkDepsLoaded, CkRelocated, CkConstructorsDone, CkEntry, CkMain},
		},
		{
			name: "runtime skips register and subscribe without folding them",
			p:    proc(RoleRuntime, CkExec, 0, CkExecDone, 5, CkLdsoStart, 6, CkDepsLoaded, 7, CkRelocated, 8, CkConstructorsDone, 9, CkEntry, 10, CkMain, 11, CkNext, 20),
			want: []string{"exec", "to_ldso", "load_deps", "relocate", "constructors", "to_entry", "to_main", "to_next"},
		},
		{
			name:     "user checkpoint inserted by time",
			p:        proc(RoleExtension, CkMain, 0, CkRegisterSent, 10, CkRegisterOK, 20, "telemetry_subscribed", 35, CkNext, 50),
			want:     []string{"to_register", "register", "telemetry_subscribed", "telemetry_subscribed_to_next"},
			wantFrom: []string{CkMain, CkRegisterSent, CkRegisterOK, "telemetry_subscribed"},
		},
		{
			name:      "out of canonical order: cut by time, never negative",
			p:         proc(RoleExtension, CkMain, 0, CkListenerBound, 5, CkRegisterSent, 10, CkRegisterOK, 20, CkSubscribeSent, 30, CkSubscribeOK, 40, CkNext, 50),
			want:      []string{"listener", "to_register", "register", "to_subscribe", "subscribe", "to_next"},
			wantDurUs: []int64{5, 5, 10, 10, 10, 10},
			outOfOrd:  []string{"listener_bound before register_sent", "listener_bound before register_ok"},
		},
		{
			name:      "unsorted input and a repeated checkpoint",
			p:         proc(RoleExtension, CkEntry, 30, CkExec, 0, CkExec, 7, CkExecDone, 10),
			want:      []string{"exec", "exec_done_to_entry"},
			wantDurUs: []int64{10, 20},
		},
		{
			name: "one checkpoint: no phase",
			p:    proc(RoleExtension, CkExec, 0),
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spans := Phases(tc.p)
			if got := names(spans); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("phases = %q, want %q", got, tc.want)
			}
			for i, s := range spans {
				if s.DurNs() < 0 {
					t.Errorf("span %s has negative length %d", s.Name, s.DurNs())
				}
				if i > 0 && s.StartNs != spans[i-1].EndNs {
					t.Errorf("span %s does not start where %s ends", s.Name, spans[i-1].Name)
				}
				if tc.wantFrom != nil && s.From != tc.wantFrom[i] {
					t.Errorf("span %s from %s, want %s", s.Name, s.From, tc.wantFrom[i])
				}
				if tc.wantDurUs != nil && s.DurNs() != tc.wantDurUs[i]*1000 {
					t.Errorf("span %s = %d µs, want %d", s.Name, s.DurNs()/1000, tc.wantDurUs[i])
				}
			}
			if tc.missing != nil {
				if got := Missing(tc.p); !reflect.DeepEqual(got, tc.missing) {
					t.Errorf("Missing = %q, want %q", got, tc.missing)
				}
			}
			if got := OutOfOrder(tc.p); !reflect.DeepEqual(got, tc.outOfOrd) {
				t.Errorf("OutOfOrder = %q, want %q", got, tc.outOfOrd)
			}
		})
	}
}

// Every canonical checkpoint except spawn names exactly one phase, and phase
// names are unique: they are pprof label values.
func TestPhaseNamesTable(t *testing.T) {
	seen := map[string]string{}
	for _, c := range Checkpoints[1:] {
		n, ok := PhaseNames[c]
		if !ok || n == "" {
			t.Errorf("checkpoint %s has no phase name", c)
		}
		if prev, dup := seen[n]; dup {
			t.Errorf("phase name %q used by %s and %s", n, prev, c)
		}
		seen[n] = c
		if strings.ContainsAny(n, " /=+") {
			t.Errorf("phase name %q has a character that breaks labels or benchmark names", n)
		}
	}
	if len(PhaseNames) != len(Checkpoints)-1 {
		t.Errorf("PhaseNames has %d entries, want %d", len(PhaseNames), len(Checkpoints)-1)
	}
}

func TestAggregatesOfProcess(t *testing.T) {
	p := proc(RoleExtension, CkExec, 100, CkEntry, 400, CkNext, 1100)
	if v, ok := Load(p); !ok || v != 300_000 {
		t.Errorf("Load = %d %v, want 300000", v, ok)
	}
	if v, ok := OwnInit(p); !ok || v != 700_000 {
		t.Errorf("OwnInit = %d %v, want 700000", v, ok)
	}
	if v, ok := TimeToReady(p); !ok || v != 1_000_000 {
		t.Errorf("TimeToReady = %d %v, want 1000000", v, ok)
	}
	if _, ok := Load(proc(RoleExtension, CkExec, 0, CkNext, 10)); ok {
		t.Error("Load without entry: want not ok")
	}
}

func TestCriticalPath(t *testing.T) {
	ext := proc(RoleExtension, CkExec, 0, CkNext, 4000)
	slowRT := proc(RoleRuntime, CkExec, 0, CkNext, 180000)
	fastRT := proc(RoleRuntime, CkExec, 0, CkNext, 1000)
	tests := []struct {
		name       string
		run        Run
		wantBy     string
		wantRunner string
		wantMargin int64
		wantSource string
		ok         bool
	}{
		{"slow runtime ends init", Run{Processes: []Process{ext, slowRT}}, RoleRuntime, "ext", 176_000_000, "checkpoints", true},
		{"fast runtime: the extension ends init", Run{Processes: []Process{ext, fastRT}}, "ext", RoleRuntime, 3_000_000, "checkpoints", true},
		{"platform agrees", Run{EndedBy: RoleRuntime, Processes: []Process{ext, slowRT}}, RoleRuntime, "ext", 176_000_000, "platform", true},
		{"platform overrides a missed next", Run{EndedBy: "other", Processes: []Process{ext, fastRT}}, "other", "", 0, "platform", true},
		{"single process", Run{Processes: []Process{ext}}, "ext", "", 0, "checkpoints", true},
		{"no next anywhere", Run{Processes: []Process{proc(RoleExtension, CkExec, 0)}}, "", "", 0, "checkpoints", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, ok := CriticalPath(tc.run)
			if ok != tc.ok || rc.EndedBy != tc.wantBy || rc.RunnerUp != tc.wantRunner || rc.MarginNs != tc.wantMargin || rc.Source != tc.wantSource {
				t.Errorf("CriticalPath = %+v, %v; want by %q runner-up %q margin %d source %s ok %v",
					rc, ok, tc.wantBy, tc.wantRunner, tc.wantMargin, tc.wantSource, tc.ok)
			}
		})
	}
}

func TestInitDuration(t *testing.T) {
	if d, ok := (Run{InitDurationMs: 81.5, InitStartNs: 1, InitEndNs: 5}).InitDurationNs(); !ok || d != 81_500_000 {
		t.Errorf("initReport figure: %d %v, want 81500000 (it wins over the timeline)", d, ok)
	}
	if d, ok := (Run{InitStartNs: 1000, InitEndNs: 6000}).InitDurationNs(); !ok || d != 5000 {
		t.Errorf("timeline: %d %v, want 5000", d, ok)
	}
	if _, ok := (Run{}).InitDurationNs(); ok {
		t.Error("nothing known: want not ok")
	}
}

func TestInitStatuses(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"success"}, "success×1"},
		{[]string{"success", "timeout", "success", "error"}, "error×1, success×2, timeout×1"},
	} {
		var runs []Run
		for _, s := range tc.in {
			runs = append(runs, Run{InitStatus: s})
		}
		if got := InitStatuses(runs); got != tc.want {
			t.Errorf("InitStatuses(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

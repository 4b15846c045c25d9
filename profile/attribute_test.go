package profile

import (
	"reflect"
	"testing"
)

func TestAttribution(t *testing.T) {
	spans := Phases(proc(RoleExtension, CkExec, 0, CkExecDone, 10, CkLdsoStart, 15, CkDepsLoaded, 40))
	// exec [0,10) to_ldso [10,15) load_deps [15,40) — in µs.
	us := func(v int64) int64 { return v * 1000 }
	for _, tc := range []struct {
		t    int64
		want string
	}{{us(0), "exec"}, {us(9), "exec"}, {us(10), "to_ldso"}, {us(39), "load_deps"}, {us(40), ""}, {-1, ""}} {
		if got := PhaseAt(spans, tc.t); got != tc.want {
			t.Errorf("PhaseAt(%d) = %q, want %q", tc.t, got, tc.want)
		}
	}
	got := TimePerPhase(spans, []Interval{
		{us(-5), us(2)},   // 2 µs in exec, the rest before exec is not counted
		{us(8), us(20)},   // 2 in exec, 5 in to_ldso, 5 in load_deps
		{us(30), us(100)}, // 10 in load_deps
		{us(50), us(60)},  // after the last phase
		{us(5), us(5)},    // empty
	})
	want := map[string]int64{"exec": us(4), "to_ldso": us(5), "load_deps": us(15)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TimePerPhase = %v, want %v", got, want)
	}
	counts := CountPerPhase(spans, []int64{us(1), us(2), us(12), us(39), us(41)})
	if want := map[string]int64{"exec": 2, "to_ldso": 1, "load_deps": 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("CountPerPhase = %v, want %v", counts, want)
	}
	if PhaseAt(nil, 5) != "" || len(TimePerPhase(nil, []Interval{{0, 5}})) != 0 {
		t.Error("no spans: want nothing attributed")
	}
}

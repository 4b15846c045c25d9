package symbolize

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/profile/sample"
)

func TestDemangle(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"main", "main"},
		{"_ZN3foo3barEv", "foo::bar"},
		{"_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back"},
		// Rust legacy: the hash suffix goes, so builds compare by name.
		{"_ZN4core3fmt5write17h0123456789abcdefE", "core::fmt::write"},
		// Rust v0.
		{"_RNvCs1234_7mycrate4main", "mycrate::main"},
		{"_Zinvalid", "_Zinvalid"},
	} {
		if got := Demangle(tc.in); got != tc.want {
			t.Errorf("Demangle(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKernelSymbols(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kallsyms")
	os.WriteFile(p, []byte("ffffffff81000000 T _stext\nffffffff81000100 t do_one\nffffffff81000200 D some_data\nffffffff81000300 T do_two\n"), 0o644)
	s := &Symbolizer{Kallsyms: p}
	for _, tc := range []struct {
		pc   uint64
		want string
	}{
		{0xffffffff81000105, "do_one"},
		{0xffffffff81000250, "do_one"}, // data symbols are skipped
		{0xffffffff81000300, "do_two"},
		{0x10, ""},
	} {
		f := s.Kernel(tc.pc)
		if f.Func != tc.want || !f.Kernel {
			t.Errorf("Kernel(%#x) = %q (kernel %v), want %q", tc.pc, f.Func, f.Kernel, tc.want)
		}
	}
}

// TestUnknownFiles: a mapping whose file is gone still yields a frame named by
// module and offset, never a panic.
func TestUnknownFiles(t *testing.T) {
	s := New()
	m := &sample.Mapping{Start: 0x1000, End: 0x2000, Offset: 0x3000, Path: "/nonexistent/libgone.so"}
	f := s.User(m, 0x1100, false)
	if f.Name() != "libgone.so+0x3100" {
		t.Errorf("frame of a missing file named %q, want libgone.so+0x3100", f.Name())
	}
	if f := s.User(nil, 0x42, true); f.Name() != "0x42" {
		t.Errorf("frame without mapping named %q", f.Name())
	}
}

// TestSelfSymbols resolves this test binary's own function through its
// /proc/self/maps, the way mappings are captured for live processes.
func TestSelfSymbols(t *testing.T) {
	maps, err := sample.ReadProcMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pc := funcPC()
	m := sample.Find(maps, pc)
	if m == nil {
		t.Fatalf("pc %#x of this test is in no mapping of /proc/self/maps", pc)
	}
	f := New().User(m, pc, false)
	if f.Func != "github.com/initprof/initprof/profile/symbolize.funcPC" || f.Line == 0 {
		t.Errorf("own function resolved as %+v", f)
	}
}

func TestFromSchedule(t *testing.T) {
	k := func(names ...string) []sample.Frame {
		var fs []sample.Frame
		for _, n := range names {
			fs = append(fs, sample.Frame{Func: n, Kernel: true})
		}
		return fs
	}
	for _, tc := range []struct {
		name string
		in   []sample.Frame
		want int // frames kept
	}{
		{"observer frames dropped", k("bpf_prog_1_x", "bpf_trace_run4", "__traceiter_sched_switch", "__schedule", "schedule", "do_nanosleep"), 3},
		{"already at __schedule", k("__schedule", "schedule"), 2},
		{"no __schedule: kept whole", k("a", "b"), 2},
		{"empty", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromSchedule(tc.in)
			if len(got) != tc.want || (tc.want > 0 && len(tc.in) > 2 && tc.in[0].Func != "a" && got[0].Func != "__schedule") {
				t.Errorf("kept %d frames %v, want %d from __schedule", len(got), got, tc.want)
			}
		})
	}
}

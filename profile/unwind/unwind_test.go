package unwind

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/initprof/initprof/profile/sample"
)

// stack builds a stack copy at base from 8-byte words.
func stack(words ...uint64) []byte {
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// TestEdges: the unwinder never fails; it says why it stopped. The mapped file
// does not exist, so every step is by frame pointers.
func TestEdges(t *testing.T) {
	const sp = 0x7ff000
	maps := []sample.Mapping{{Start: 0x400000, End: 0x500000, Path: "/nonexistent/prog"}}
	for _, tc := range []struct {
		name   string
		s      sample.RawSample
		pcs    int
		end    string
		method string
	}{
		{"unsupported arch", sample.RawSample{Arch: "riscv64", Regs: sample.Regs{IP: 0x400100}}, 0, "unsupported architecture", ""},
		{"pc outside mappings", sample.RawSample{Regs: sample.Regs{IP: 0x900000, SP: sp}}, 1, "outside every mapping", ""},
		{"no frame pointer", sample.RawSample{Regs: sample.Regs{IP: 0x400100, SP: sp}}, 1, "no frame pointer", ""},
		{
			// fp chain: [sp]=sp+16 (next fp), [sp+8]=ret 0x400200; [sp+16]=0, [sp+24]=0 (end).
			"frame pointers to the end",
			sample.RawSample{Regs: sample.Regs{IP: 0x400100, SP: sp, BP: sp}, Stack: stack(sp+16, 0x400200, 0, 0)},
			2, "root", "fp",
		},
		{
			"frame pointer outside the copy",
			sample.RawSample{Regs: sample.Regs{IP: 0x400100, SP: sp, BP: sp + 4096}, Stack: stack(0, 0)},
			1, "outside the stack copy", "",
		},
		{
			"frame pointer chain going down",
			sample.RawSample{Regs: sample.Regs{IP: 0x400100, SP: sp, BP: sp + 16}, Stack: stack(0, 0, sp, 0x400200)},
			1, "goes down", "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New().Unwind(tc.s, maps)
			if len(r.PCs) != tc.pcs || !strings.Contains(r.End, tc.end) || r.Method != tc.method {
				t.Errorf("got %d pcs, end %q, method %q; want %d, %q, %q", len(r.PCs), r.End, r.Method, tc.pcs, tc.end, tc.method)
			}
		})
	}
}

func TestBuildIDNotes(t *testing.T) {
	// namesz=4 descsz=4 type=3 "GNU\0" desc=de ad be ef
	note := []byte{4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0, 0xde, 0xad, 0xbe, 0xef}
	if got := buildIDFromNotes(note, binary.LittleEndian); got != "deadbeef" {
		t.Errorf("build-id %q, want deadbeef", got)
	}
	if got := buildIDFromNotes(note[:15], binary.LittleEndian); got != "" {
		t.Errorf("truncated note gave %q", got)
	}
}

func TestIsCall(t *testing.T) {
	amd, arm := archs[sample.AMD64], archs[sample.ARM64]
	for _, tc := range []struct {
		name string
		a    arch
		code []byte // the 8 bytes before the return address
		want bool
	}{
		{"call rel32", amd, []byte{0x90, 0x90, 0x90, 0xe8, 1, 2, 3, 4}, true},
		{"call *disp32(%rip)", amd, []byte{0x90, 0x90, 0xff, 0x15, 1, 2, 3, 4}, true},
		{"call *%rax", amd, []byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xff, 0xd0}, true},
		{"call *8(%rax)", amd, []byte{0x90, 0x90, 0x90, 0x90, 0x90, 0xff, 0x50, 0x08}, true},
		{"jmp *%rax is not a call", amd, []byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xff, 0xe0}, false},
		{"plain data", amd, []byte{0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"arm64 bl", arm, []byte{0, 0, 0, 0, 0x10, 0, 0, 0x94}, true},
		{"arm64 blr x8", arm, []byte{0, 0, 0, 0, 0x00, 0x01, 0x3f, 0xd6}, true},
		{"arm64 ret", arm, []byte{0, 0, 0, 0, 0xc0, 0x03, 0x5f, 0xd6}, false},
	} {
		if got := isCall(tc.a, tc.code); got != tc.want {
			t.Errorf("%s: isCall = %v, want %v", tc.name, got, tc.want)
		}
	}
}

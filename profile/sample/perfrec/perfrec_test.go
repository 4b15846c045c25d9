package perfrec

import (
	"encoding/binary"
	"testing"

	"github.com/initprof/initprof/profile/sample"
)

func TestParseSample(t *testing.T) {
	ar := archRegs{mask: 1<<6 | 1<<7 | 1<<8, bp: 0, sp: 1, ip: 2, lr: -1, arch: sample.AMD64}
	var b []byte
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	u64(0x401000) // ip
	b = binary.LittleEndian.AppendUint32(b, 10)
	b = binary.LittleEndian.AppendUint32(b, 11) // pid, tid
	u64(123456789)                              // time
	u64(5)                                      // callchain nr
	u64(contextKernel)
	u64(0xffffffff81000010)
	u64(contextUser)
	u64(0x401000)
	u64(0x401234)
	u64(2)        // regs abi (64-bit)
	u64(0x7ff0)   // bp
	u64(0x7f00)   // sp
	u64(0x401000) // ip
	u64(16)       // stack size
	b = append(b, make([]byte, 16)...)
	u64(8) // dyn size
	s, err := parseSample(b, ar)
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != 10 || s.TID != 11 || s.MonoNs != 123456789 || s.Regs.IP != 0x401000 || s.Regs.SP != 0x7f00 || s.Regs.BP != 0x7ff0 {
		t.Errorf("sample %+v", s)
	}
	if len(s.KStack) != 1 || len(s.FPStack) != 2 || len(s.Stack) != 8 {
		t.Errorf("kstack %v fpstack %v stack %d bytes", s.KStack, s.FPStack, len(s.Stack))
	}
	for n := 0; n < len(b); n += 7 {
		if _, err := parseSample(b[:n], ar); err == nil {
			t.Fatalf("truncated record of %d bytes parsed", n)
		}
	}
}

func TestParseMmap2(t *testing.T) {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, 42)
	b = le.AppendUint32(b, 42)
	b = le.AppendUint64(b, 0x7f0000001000)
	b = le.AppendUint64(b, 0x2000)
	b = le.AppendUint64(b, 0x1000)
	b = le.AppendUint32(b, 8) // maj
	b = le.AppendUint32(b, 1) // min
	b = le.AppendUint64(b, 777)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint32(b, 5) // PROT_READ|PROT_EXEC
	b = le.AppendUint32(b, 2)
	b = append(b, "/lib/libc.so.6\x00\x00"...)
	pid, m, ok := parseMmap2(b, 0)
	if !ok || pid != 42 || m.Start != 0x7f0000001000 || m.End != 0x7f0000003000 || m.Offset != 0x1000 || m.Inode != 777 || m.Path != "/lib/libc.so.6" {
		t.Errorf("parseMmap2 = %d %+v %v", pid, m, ok)
	}
	le.PutUint32(b[56:], 1) // PROT_READ only: not code
	if _, _, ok := parseMmap2(b, 0); ok {
		t.Error("a non-executable mapping was kept")
	}
}

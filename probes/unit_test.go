package probes

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// record builds a ring-buffer record the way the BPF side lays it out.
func record(kind Kind, a [4]int64, cookie uint64, str string) []byte {
	b := make([]byte, hdrSize, hdrSize+256)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 2000)
	le.PutUint64(b[8:], 1000)
	le.PutUint64(b[16:], 42)
	le.PutUint64(b[24:], cookie)
	for i, v := range a {
		le.PutUint64(b[32+8*i:], uint64(v))
	}
	le.PutUint32(b[64:], 7)
	le.PutUint32(b[68:], 8)
	le.PutUint16(b[72:], uint16(kind))
	le.PutUint16(b[74:], uint16(len(str)))
	le.PutUint64(b[80:], 5)
	le.PutUint64(b[88:], 3<<20)
	if str != "" {
		s := make([]byte, 256)
		copy(s, str)
		b = append(b, s...)
	}
	return b
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   []byte
		check func(e Event) bool
	}{
		{"fork", record(KindFork, [4]int64{10, 11}, 0, ""), func(e Event) bool { return e.Parent == 10 && e.Child == 11 }},
		{"exit status 3", record(KindExit, [4]int64{3 << 8}, 0, ""), func(e Event) bool { return e.ExitCode == 3 && e.Signal == 0 }},
		{"killed by SIGKILL", record(KindExit, [4]int64{9}, 0, ""), func(e Event) bool { return e.ExitCode == 0 && e.Signal == 9 }},
		{"bind", record(KindBind, [4]int64{6, 9001, 0, 2}, 0, ""), func(e Event) bool {
			return e.FD == 6 && e.Port == 9001 && e.Ret == 0 && e.Family == 2 && e.Start == 1000 && e.Time == 2000
		}},
		{"send payload", record(KindSend, [4]int64{5, 197, 197, 1}, 0, "POST /x HTTP/1.1\r\n"), func(e Event) bool {
			return e.Syscall == "sendto" && string(e.Data) == "POST /x HTTP/1.1\r\n" && e.Len == 197
		}},
		{"recv bad syscall index", record(KindRecv, [4]int64{5, 10, 0, 99}, 0, ""), func(e Event) bool { return e.Syscall == "" && len(e.Data) == 0 }},
		{"openat NUL counted", record(KindOpen, [4]int64{-100, 0, 3}, 0, "/etc/ld.so.cache\x00"), func(e Event) bool {
			return e.Path == "/etc/ld.so.cache" && e.Ret == 3 && e.FD == -100
		}},
		{"uprobe link_map", record(KindUprobe, [4]int64{0x1234}, cookieLinkMap|3, "/lib/libc.so.6\x00"), func(e Event) bool {
			return e.Object == "/lib/libc.so.6" && e.Arg == 0x1234
		}},
		{"offcpu runnable", record(KindOffCPU, [4]int64{1}, 0, ""), func(e Event) bool { return e.Runnable && e.Faults == 42 && e.PID == 7 && e.TID == 8 }},
		{"io counts", record(KindUretprobe, [4]int64{}, 0, ""), func(e Event) bool { return e.MajFaults == 5 && e.ReadBytes == 3<<20 && e.Faults == 42 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, err := decode(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(e) {
				t.Errorf("decoded %+v", e)
			}
		})
	}
	if _, _, err := decode(make([]byte, hdrSize-1)); err == nil {
		t.Error("a short record decoded without error")
	}
	// A length larger than the record is clamped, not a panic.
	raw := record(KindOpen, [4]int64{}, 0, "x")
	binary.LittleEndian.PutUint16(raw[74:], 9999)
	if _, _, err := decode(raw); err != nil {
		t.Error(err)
	}
}

func TestParseBuildIDNotes(t *testing.T) {
	note := func(name string, typ uint32, desc []byte) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, []uint32{uint32(len(name) + 1), uint32(len(desc)), typ})
		n := append([]byte(name), 0)
		for len(n)%4 != 0 {
			n = append(n, 0)
		}
		b.Write(n)
		b.Write(desc)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		return b.Bytes()
	}
	id := []byte{0xab, 0xcd, 0xef, 0x01, 0x23}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"gnu build id", note("GNU", 3, id), "abcdef0123"},
		{"after another note", append(note("GNU", 1, []byte{1, 2, 3, 4}), note("GNU", 3, id)...), "abcdef0123"},
		{"wrong owner", note("Go", 3, id), ""},
		{"truncated", note("GNU", 3, id)[:14], ""},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseBuildIDNotes(tc.data, binary.LittleEndian); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLoadSymbolsLdSo checks that the stripped ld.so's loader functions are
// found through its build-ID debug file, as file offsets.
func TestLoadSymbolsLdSo(t *testing.T) {
	s, err := loadSymbols(hostLdSo, DefaultDebugDir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.full {
		t.Skipf("no debug symbols for %s (install libc6-dbg; .ci/deps does)", hostLdSo)
	}
	if s.entry == 0 {
		t.Error("no entry offset")
	}
	for _, sym := range []string{"_dl_relocate_object", "_dl_map_object_deps", "_dl_init", "dl_main", "_dl_start_user", "_dl_debug_state"} {
		if _, ok := s.offsets[sym]; !ok {
			t.Errorf("%s not found", sym)
		}
	}
	if s.debug == "" {
		t.Log("ld.so has its own .symtab")
	}
	// The entry is _start's offset.
	if off, ok := s.offsets["_start"]; ok && off != s.entry {
		t.Errorf("entry offset %#x != _start %#x", s.entry, off)
	}
}

// TestMissingReasons: a stripped ld.so with no debug file degrades to the
// fallback checkpoints and says how to get the rest.
func TestMissingReasons(t *testing.T) {
	empty := t.TempDir()
	sites, missing, err := planUprobes(Options{LdSo: hostLdSo, Executables: []string{"/bin/true"}, DebugDir: empty})
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(hostLdSo)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.Symbols()
	f.Close()
	if len(syms) > 0 {
		t.Skip("this ld.so is not stripped")
	}
	have := map[string]bool{}
	for _, s := range sites {
		have[s.checkpoint] = true
	}
	// main too: /bin/true is stripped, and main comes from decoding _start.
	for _, cp := range []string{CheckpointLdsoStart, CheckpointDlDebugState, CheckpointEntry, CheckpointMain} {
		if !have[cp] {
			t.Errorf("fallback checkpoint %s not planned", cp)
		}
	}
	var reasons []string
	for _, m := range missing {
		reasons = append(reasons, m.String())
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"relocate", "deps_loaded", "libc6-dbg"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing reasons lack %q:\n%s", want, all)
		}
	}
}

func TestPlanUserProbes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "t.c")
	os.WriteFile(src, []byte("int probe_me(int x){return x+1;}\nint main(int c,char**v){return probe_me(c)-2;}\n"), 0o644)
	bin := filepath.Join(dir, "t")
	if out, err := exec.Command("gcc", "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("gcc: %v %s", err, out)
	}
	for _, tc := range []struct {
		name    string
		probes  []string
		wantErr string
		want    string
	}{
		{"symbol in the executables", []string{"probe_me"}, "", "uprobe:probe_me"},
		{"file:symbol", []string{bin + ":probe_me"}, "", "uprobe:probe_me"},
		{"unknown symbol", []string{"nope"}, "symbol nope not found", ""},
		{"empty symbol", []string{bin + ":"}, "want SYMBOL or FILE:SYMBOL", ""},
		{"missing file", []string{"/no/such/file:x"}, "/no/such/file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sites, _, err := planUprobes(Options{Executables: []string{bin}, UserProbes: tc.probes})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range sites {
				found = found || s.checkpoint == tc.want
			}
			if !found {
				t.Errorf("no %s site in %+v", tc.want, sites)
			}
		})
	}
}

func TestRingSize(t *testing.T) {
	page := uint32(os.Getpagesize())
	for _, tc := range []struct {
		in   int
		want uint32
	}{{0, 8 << 20}, {1, page}, {3 << 20, 4 << 20}, {8 << 20, 8 << 20}} {
		if got := ringSize(tc.in); got != tc.want {
			t.Errorf("ringSize(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestPlanBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not an ELF file\n"), 0o644)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"missing executable", Options{Executables: []string{"/no/such/ext"}}, "/no/such/ext"},
		{"directory", Options{Executables: []string{dir}}, "not a regular file"},
		{"text file", Options{Executables: []string{text}}, "not a readable ELF file"},
		{"missing ld.so", Options{LdSo: "/no/ld.so"}, "/no/ld.so"},
		{"user probe without executables", Options{UserProbes: []string{"main"}}, "names no file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := planUprobes(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	// The same executable twice is probed once.
	sites, _, err := planUprobes(Options{Executables: []string{"/bin/true", "/bin/../bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	for _, s := range sites {
		if s.checkpoint == CheckpointEntry {
			entries++
		}
	}
	if entries != 1 {
		t.Errorf("%d entry probes for one binary named twice", entries)
	}
}

func TestWriteStats(t *testing.T) {
	for _, tc := range []struct {
		st   Stats
		want []string
		not  string
	}{
		{Stats{Events: 12, Uprobes: 3, Multi: true}, []string{"# 12 events, 3 uprobe sites (uprobe_multi=true)"}, "DROPPED"},
		{Stats{Events: 5, Dropped: 2}, []string{"# 5 events", "# WARNING: 2 EVENTS WERE DROPPED"}, "\n\n"},
	} {
		var b strings.Builder
		WriteStats(&b, tc.st)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("WriteStats(%+v) = %q, lacks %q", tc.st, b.String(), w)
			}
		}
		if strings.Contains(b.String(), tc.not) {
			t.Errorf("WriteStats(%+v) = %q, has %q", tc.st, b.String(), tc.not)
		}
	}
}

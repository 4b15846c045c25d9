package vm

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

// feed runs a serial transcript through a decoder, as qemu's stdout would
// arrive: \r\n line ends (the console's ONLCR).
func feed(s string) (*decoder, []string) {
	d := &decoder{}
	var console []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\n", "\r\n"), "\n") {
		if l == "" {
			continue
		}
		if d.Line(l) == lineConsole {
			console = append(console, strings.TrimRight(l, "\r"))
		}
	}
	d.end()
	return d, console
}

func frame(t *testing.T, name string, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeFrame(&b, name, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFrameRoundTrip(t *testing.T) {
	random := make([]byte, 10_000)
	rand.Read(random)
	files := []struct {
		name string
		data []byte
	}{
		{"doctor.json", []byte(`[{"name":"kernel","status":"OK"}]` + "\n")},
		{"empty", nil},
		{"one", []byte{0}},
		{"sub/dir/timeline.jsonl", random},
		{"57bytes", bytes.Repeat([]byte{'x'}, 57)}, // exactly one base64 line
		{"name with spaces.txt", []byte("ok")},
		{"stacks.folded", bytes.Repeat([]byte("main;init;dl_relocate_object 12\n"), 500)}, // gzip
	}
	var s strings.Builder
	s.WriteString("[    0.000000] Booting Linux on physical CPU 0x0\n")
	s.WriteString("INITPROF-BOOTED mono=123456789 kernel=6.12.117+deb12-cloud-arm64 machine=aarch64\n")
	s.WriteString("job output line\n")
	for _, f := range files {
		s.WriteString(frame(t, f.name, f.data))
	}
	s.WriteString("INITPROF-RESULT exit=3 run_ns=42\n[    3.3] reboot: Power down\n")

	d, console := feed(s.String())
	if len(d.errors) > 0 {
		t.Fatalf("errors: %v", d.errors)
	}
	if !d.booted || d.bootNS != 123456789 || d.kernel != "6.12.117+deb12-cloud-arm64" || d.mach != "aarch64" {
		t.Errorf("boot marker: booted=%v mono=%d kernel=%q machine=%q", d.booted, d.bootNS, d.kernel, d.mach)
	}
	if !d.done || d.exit != 3 || d.runNS != 42 {
		t.Errorf("result marker: done=%v exit=%d run_ns=%d, want exit=3 run_ns=42", d.done, d.exit, d.runNS)
	}
	if len(d.files) != len(files) {
		t.Fatalf("got %d files, want %d", len(d.files), len(files))
	}
	for i, f := range files {
		if d.files[i].Name != f.name || !bytes.Equal(d.files[i].Data, f.data) {
			t.Errorf("file %d: got %q (%d bytes), want %q (%d bytes)", i, d.files[i].Name, len(d.files[i].Data), f.name, len(f.data))
		}
	}
	want := []string{"[    0.000000] Booting Linux on physical CPU 0x0", "job output line", "[    3.3] reboot: Power down"}
	if strings.Join(console, "|") != strings.Join(want, "|") {
		t.Errorf("console lines:\n got %q\nwant %q", console, want)
	}
}

func TestFrameCorruption(t *testing.T) {
	// Random bytes do not compress: the frame is raw, so the size and hash
	// checks themselves are exercised.
	data := make([]byte, 920)
	rand.Read(data)
	good := frame(t, "t.jsonl", data)
	if !strings.Contains(good, " raw t.jsonl\n") {
		t.Fatalf("random data framed as %q, want raw", good[:100])
	}
	text := bytes.Repeat([]byte("initprof timeline line\n"), 400)
	gz := strings.Split(strings.TrimSuffix(frame(t, "t.jsonl", text), "\n"), "\n")
	if !strings.Contains(gz[0], " gzip t.jsonl") || len(gz) > 6 {
		t.Fatalf("compressible data framed as %q in %d lines, want a few gzip lines", gz[0], len(gz))
	}
	gzFlipped := append([]string(nil), gz...)
	gzFlipped[2] = strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, gzFlipped[2][:8]) + gzFlipped[2][8:]
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }
	with := func(i int, l string) []string {
		c := append([]string(nil), lines...)
		c[i] = l
		return c
	}
	// flip one base64 character of the second data line: still valid base64
	flipped := []byte(lines[2])
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	cases := []struct {
		name, stream, wantErr string
	}{
		{"bad hash", join(with(2, string(flipped))), "SHA-256 mismatch"},
		{"dropped line", join(append(append([]string(nil), lines[:2]...), lines[3:]...)), "got 863 bytes over the console, the guest sent 920"},
		{"kernel message inside a line", join(with(2, lines[2][:10]+"[ 2.1] oops"+lines[2][10:])), "bytes over the console"},
		{"cut off by the next frame", join(lines[:3]) + frame(t, "b", []byte("b")), "frame cut off"},
		{"stream ends inside", join(lines[:3]), "stream ended inside"},
		{"wrong end name", join(with(len(lines)-1, "INITPROF-END other")), `ended as "other"`},
		{"corrupt gzip payload", join(gzFlipped), "corrupted over the console"},
		{"bad header", "INITPROF-FILE x y z\n", "bad frame header"},
		{"unknown encoding", "INITPROF-FILE 1 " + strings.Repeat("0", 64) + " zstd x\n", "bad frame header"},
		{"unsafe name", "INITPROF-FILE 1 " + strings.Repeat("0", 64) + " raw ../etc/passwd\n", "bad frame header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, _ := feed(c.stream)
			if len(d.files) != 0 && c.name != "cut off by the next frame" {
				t.Errorf("a corrupt file was accepted: %v", d.files[0].Name)
			}
			if len(d.errors) == 0 || !strings.Contains(d.errors[0].Error(), c.wantErr) {
				t.Fatalf("errors %v, want one containing %q", d.errors, c.wantErr)
			}
		})
	}

	// A whole kernel line between two data lines is console output, and the
	// file still arrives intact.
	ls := append(append(append([]string(nil), lines[:3]...), "[    2.5] random: crng init done"), lines[3:]...)
	d, console := feed(join(ls))
	if len(d.errors) > 0 || len(d.files) != 1 || !bytes.Equal(d.files[0].Data, data) {
		t.Fatalf("interleaved kernel line: errors %v, %d files", d.errors, len(d.files))
	}
	if len(console) != 1 {
		t.Errorf("console %q, want the kernel line", console)
	}
}

func TestFrameNames(t *testing.T) {
	for _, n := range []string{"", "/abs", "../x", "a/../../x", "a//b", ".", "a\nb", " lead"} {
		if err := writeFrame(&bytes.Buffer{}, n, nil); err == nil {
			t.Errorf("writeFrame(%q): no error", n)
		}
	}
}

func TestCrashLine(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		ok         bool
	}{
		{"[    4.890192] Internal error: Oops: 0000000096000007 [#1] SMP", "Internal error: Oops: 0000000096000007 [#1] SMP", true},
		{"[    9.1] Kernel panic - not syncing: sysrq triggered crash", "Kernel panic - not syncing: sysrq triggered crash", true},
		{"[    9.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009", "", false}, // /init died: not the kernel's fault
		{"[    4.88] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000028", "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000028", true},
		{"initprof: cext-arm64: 2 sampling runs at 2000 Hz", "", false},
		{"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]", "", false},
	} {
		got, ok := crashLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("crashLine(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

package elfinfo

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/initprof/initprof/internal/testutil"
)

// symOff is a symbol's file offset found independently of Layout: through
// the section that holds it.
func symOff(t *testing.T, path, name string) (uint64, bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name == name && int(s.Section) < len(f.Sections) {
			sec := f.Sections[s.Section]
			return s.Value - sec.Addr + sec.Offset, true
		}
	}
	return 0, false
}

// sectionOf is the name of the section holding file offset off.
func sectionOf(t *testing.T, path string, off uint64) string {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS && s.Size > 0 && off >= s.Offset && off < s.Offset+s.Size {
			return s.Name
		}
	}
	return ""
}

func TestLayout(t *testing.T) {
	root := testutil.Root(t)
	fidelity := filepath.Join(root, "build", "fidelity", "go-bootstrap")
	for _, c := range []struct {
		name     string
		path     func() string
		stripped bool
		isGo     bool
		symbol   string // a function Split must name at its own offset ("" for none)
		section  string // the section of that offset
		data     string // a section whose offsets have no symbol in a stripped file
	}{
		{"goext", func() string { return testutil.Sample(t, "goext") }, false, true, "main.main", ".text", ""},
		{"cext", func() string { return testutil.Sample(t, "cext") }, false, false, "main", ".text", ""},
		{"go-bootstrap (stripped)", func() string { return fidelity }, true, true, "", "", ".gopclntab"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.path()
			if _, err := os.Stat(p); err != nil {
				t.Skipf("%s not built (make fidelity): %v", p, err)
			}
			l, err := OpenLayout(p)
			if err != nil {
				t.Fatal(err)
			}
			if l.Stripped != c.stripped || l.Go != c.isGo {
				t.Errorf("stripped %v go %v, want %v %v", l.Stripped, l.Go, c.stripped, c.isGo)
			}
			// Every byte of the file is in exactly one part.
			var sum uint64
			for off := uint64(0); off < uint64(l.Size); off += 4096 {
				for _, pt := range l.Split(off, 4096) {
					sum += pt.Bytes
				}
			}
			if want := (uint64(l.Size) + 4095) &^ 4095; sum != want {
				t.Errorf("Split over the file covers %d bytes, want %d", sum, want)
			}
			for i := 1; i < len(l.Symbols); i++ {
				if l.Symbols[i].Off < l.Symbols[i-1].End() {
					t.Fatalf("symbols overlap: %+v and %+v", l.Symbols[i-1], l.Symbols[i])
				}
			}
			if c.symbol != "" {
				off, ok := symOff(t, p, c.symbol)
				if !ok {
					t.Fatalf("no %s in %s", c.symbol, p)
				}
				parts := l.Split(off, 1)
				if len(parts) != 1 || parts[0].Symbol != c.symbol || parts[0].Section != c.section {
					t.Errorf("Split(%#x, 1) = %+v, want %s in %s", off, parts, c.symbol, c.section)
				}
			}
			if c.data != "" {
				var sec *Range
				for i := range l.Sections {
					if l.Sections[i].Name == c.data {
						sec = &l.Sections[i]
					}
				}
				if sec == nil {
					t.Fatalf("no %s section", c.data)
				}
				mid := sec.Off + sec.Size/2
				if got := sectionOf(t, p, mid); got != c.data {
					t.Fatalf("debug/elf puts %#x in %q", mid, got)
				}
				parts := l.Split(mid, 1)
				if len(parts) != 1 || parts[0].Section != c.data || (c.stripped && parts[0].Symbol != "") {
					t.Errorf("Split(%#x, 1) = %+v, want %s with no symbol", mid, parts, c.data)
				}
			}
		})
	}
}

func TestSplitSynthetic(t *testing.T) {
	l := &Layout{
		Sections: []Range{{".a", 0x10, 0x30}, {".b", 0x50, 0x20}},
		Symbols:  []Range{{"f", 0x20, 0x10}, {"g", 0x58, 0x100}},
	}
	got := l.Split(0, 0x80)
	want := []Part{{"", "", 0x10}, {".a", "", 0x10}, {".a", "f", 0x10}, {".a", "", 0x10}, {"", "", 0x10}, {".b", "", 0x8}, {".b", "g", 0x18}, {"", "g", 0x10}}
	if len(got) != len(want) {
		t.Fatalf("Split = %+v\nwant   %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("part %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if d := dropOverlaps([]Range{{"a", 0, 10}, {"b", 5, 10}, {"c", 6, 2}, {"d", 20, 1}}); len(d) != 3 || d[1] != (Range{"b", 10, 5}) {
		t.Errorf("dropOverlaps = %+v", d)
	}
}

package capture

import "testing"

func TestParseMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want Mapping
	}{
		{"7f00a000-7f00b000 r-xp 00026000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6", true,
			Mapping{Start: 0x7f00a000, End: 0x7f00b000, Offset: 0x26000, Inode: 1234, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"}},
		{"7f00a000-7f00b000 rw-p 00000000 00:00 0 ", false, Mapping{}},
		{"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]", true,
			Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Path: "[vsyscall]"}},
		{"garbage", false, Mapping{}},
		{"1000-2000 r-xp 0 00:00 0 /path with space", true, Mapping{Start: 0x1000, End: 0x2000, Path: "/path with space"}},
	} {
		m, ok := parseMapsLine(tc.line)
		if ok != tc.ok || (ok && m != tc.want) {
			t.Errorf("parseMapsLine(%q) = %+v, %v; want %+v, %v", tc.line, m, ok, tc.want, tc.ok)
		}
	}
}

func TestFindPrefersLaterMappings(t *testing.T) {
	maps := []Mapping{{Start: 0x1000, End: 0x3000, Path: "old"}, {Start: 0x2000, End: 0x3000, Path: "new"}}
	if m := Find(maps, 0x2500); m == nil || m.Path != "new" {
		t.Errorf("Find after a remap = %+v, want the later mapping", m)
	}
	if m := Find(maps, 0x1500); m == nil || m.Path != "old" {
		t.Errorf("Find = %+v, want old", m)
	}
	if Find(maps, 0x5000) != nil {
		t.Error("Find outside every mapping should be nil")
	}
}

package touched

import (
	"reflect"
	"testing"

	"github.com/initprof/initprof/elfinfo"
)

func TestSymbolTouches(t *testing.T) {
	// .text [0x1000, 0x4000): a [0x1000,0x1100) and b [0x1100,0x1200) share
	// page 1; c [0x1f00, 0x2100) spans pages 1 and 2; d on page 3.
	// .rodata [0x4000, 0x5000): tbl on page 4.
	l := &elfinfo.Layout{
		Sections: []elfinfo.Range{{Name: ".text", Off: 0x1000, Size: 0x3000}, {Name: ".rodata", Off: 0x4000, Size: 0x1000}},
		Symbols: []elfinfo.Range{{Name: "a", Off: 0x1000, Size: 0x100}, {Name: "b", Off: 0x1100, Size: 0x100},
			{Name: "c", Off: 0x1f00, Size: 0x200}, {Name: "d", Off: 0x3000, Size: 0x10}, {Name: "tbl", Off: 0x4000, Size: 0x40}},
	}
	pages := []Page{
		{Index: 3, Time: 1100, Faulted: true},
		{Index: 2, Time: 1200, Faulted: true},
		{Index: 4, Time: 1050, Faulted: false}, // readahead only
		{Index: 1, Time: 1300, Faulted: true},
	}
	names := func(ts []SymbolTouch) []string {
		var s []string
		for _, x := range ts {
			s = append(s, x.Symbol)
		}
		return s
	}
	for _, tc := range []struct {
		name        string
		faultedOnly bool
		want        []string
	}{
		// c is first touched through page 2, before page 1 holding a and b.
		{"faulted", true, []string{"d", "c", "a", "b"}},
		{"all pages", false, []string{"tbl", "d", "c", "a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SymbolTouches(l, pages, 1000, tc.faultedOnly)
			if !reflect.DeepEqual(names(got), tc.want) {
				t.Fatalf("order %v, want %v", names(got), tc.want)
			}
			if got[0].FirstNs != 100 && tc.faultedOnly {
				t.Errorf("d first touched at %d ns since the origin, want 100", got[0].FirstNs)
			}
			for _, x := range got {
				want := ".text"
				if x.Symbol == "tbl" {
					want = ".rodata"
				}
				if x.Section != want {
					t.Errorf("%s in section %q, want %q", x.Symbol, x.Section, want)
				}
			}
		})
	}
	if SymbolTouches(nil, pages, 0, false) != nil {
		t.Error("no layout: want no touches")
	}
}

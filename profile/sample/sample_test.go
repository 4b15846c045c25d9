package sample

import "testing"

func TestFrameName(t *testing.T) {
	for _, tc := range []struct {
		f    Frame
		want string
	}{
		{Frame{Func: "main"}, "main"},
		{Frame{Module: "/lib/libx.so", Offset: 0x1f}, "libx.so+0x1f"},
		{Frame{Addr: 0xabc}, "0xabc"},
	} {
		if got := tc.f.Name(); got != tc.want {
			t.Errorf("%+v.Name() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

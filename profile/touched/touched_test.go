package touched

import (
	"testing"

	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/profile"
)

func TestOwner(t *testing.T) {
	for _, c := range []struct {
		sym  string
		goSy bool
		want string
	}{
		// Rust, legacy mangling: the first path component is the crate.
		{"_ZN5tokio7runtime7context13CONTEXT_GUARD17h0123456789abcdefE", false, "tokio"},
		// ... also inside an impl block, <T as Trait>::method.
		{"_ZN65_$LT$tokio..runtime..Runtime$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE", false, "tokio"},
		// ... on a primitive type: core.
		{"_ZN42_$LT$str$u20$as$u20$core..fmt..Display$GT$3fmt17h0123456789abcdefE", false, "core"},
		// Rust v0.
		{"_RNvCs15kBYyAo9fc_7mycrate7example", false, "mycrate"},
		{"_RNvNtCsbmNqQUJIY6D_4core3ptr13drop_in_place", false, "core"},
		// C++: the namespace.
		{"_ZNSt6vectorIiSaIiEE9push_backERKi", false, "std"},
		// C: none (the caller names the file).
		{"curl_easy_init", false, ""},
		// Go: the import path.
		{"main.main", true, "main"},
		{"net/http.(*Client).Do", true, "net/http"},
		{"golang.org/x/net/http2.(*Framer).ReadFrame", true, "golang.org/x/net/http2"},
		{"runtime.gcenable.func1", true, "runtime"},
		{"sync/atomic.(*Pointer[go.shape.struct { net/http.x int }]).Load", true, "sync/atomic"},
		{"gopkg.in/yaml%2ev3.Unmarshal", true, "gopkg.in/yaml%2ev3"},
		{"type:*net/http.Client", true, "type:"},
		{"go:string.*", true, "go:string"},
		{"go:itab.*net/http.http2erringRoundTripper,net/http.RoundTripper", true, "go:itab"},
	} {
		if got := Owner(c.sym, c.goSy); got != c.want {
			t.Errorf("Owner(%q, go=%v) = %q, want %q", c.sym, c.goSy, got, c.want)
		}
	}
}

// A made-up layout: headers [0, 0x100), .text [0x1000, 0x3000) holding
// main.main [0x1000, 0x1800) and net/http.get [0x2000, 0x2400), .rodata
// [0x3000, 0x83000) without symbols.
var fakeLayout = &elfinfo.Layout{
	Path: "/host/ext", Size: 0x83000, Go: true,
	Sections: []elfinfo.Range{{Name: ".interp", Off: 0, Size: 0x100}, {Name: ".text", Off: 0x1000, Size: 0x2000}, {Name: ".rodata", Off: 0x3000, Size: 0x80000}},
	Symbols:  []elfinfo.Range{{Name: "main.main", Off: 0x1000, Size: 0x800}, {Name: "net/http.get", Off: 0x2000, Size: 0x400}},
}

func TestProcess(t *testing.T) {
	a := &Attributor{Lookup: func(p string) *File {
		if p == "/opt/extensions/ext" {
			return &File{Path: p, Size: fakeLayout.Size, Layout: fakeLayout}
		}
		return nil
	}}
	p := &profile.Process{Name: "ext", Role: profile.RoleExtension, PID: 7, Checkpoints: []profile.Checkpoint{
		{Name: profile.CkSpawn, MonoNs: 50}, {Name: profile.CkExec, MonoNs: 100}, {Name: profile.CkExecDone, MonoNs: 200},
		{Name: profile.CkEntry, MonoNs: 300}, {Name: profile.CkNext, MonoNs: 400},
	}}
	exe := "/opt/extensions/ext"
	pages := []Page{
		{PID: 7, File: exe, Index: 0, Time: 150, Kind: profile.TouchReadahead},                // exec: headers
		{PID: 7, File: exe, Index: 1, Time: 150, Kind: profile.TouchReadahead, Faulted: true}, // exec: main.main
		{PID: 7, File: exe, Index: 2, Time: 250, Kind: profile.TouchMajor, Faulted: true},     // main.main, net/http.get
		{PID: 7, File: exe, Index: 0x80, Time: 260, Kind: profile.TouchMinor, Faulted: true},  // .rodata, chunk 1
		{PID: 7, File: "/lib/libc.so.6", Index: 5, Time: 350, Kind: profile.TouchMinor},       // a file without layout
		{PID: 7, File: exe, Index: 3, Time: 450, Kind: profile.TouchMajor},                    // after next: not init
		{PID: 7, File: exe, Index: 4, Time: 60, Kind: profile.TouchMajor},                     // before exec
		{PID: 8, File: exe, Index: 9, Time: 250, Kind: profile.TouchMajor},                    // another process
	}
	a.Process(p, pages, exe)
	if p.TouchedInit == nil {
		t.Fatal("no TouchedInit")
	}
	want := map[string]profile.TouchedPages{
		"exec": {Readahead: 2, Total: 2, Faulted: 1},
		"to_ldso+load_deps+relocate+constructors+to_entry": {},
	}
	_ = want
	ex := p.Touched["exec"]
	if ex == nil || ex.Pages != (profile.TouchedPages{Readahead: 2, Total: 2, Faulted: 1}) || ex.Chunks != 1 || ex.FaultedChunks != 1 {
		t.Errorf("exec: %+v", ex)
	}
	var names []string
	for n := range p.Touched {
		names = append(names, n)
	}
	t.Logf("phases touched: %v", names)
	if len(p.Touched) != 3 {
		t.Errorf("phases touched: %v, want exec, exec_done_to_entry and entry_to_next", names)
	}
	ti := p.TouchedInit
	if ti.Pages != (profile.TouchedPages{Major: 1, Minor: 2, Readahead: 2, Total: 5, Faulted: 3}) {
		t.Errorf("init pages %+v", ti.Pages)
	}
	if ti.Chunks != 3 { // ext chunk 0, ext chunk 1, libc chunk 0
		t.Errorf("init chunks %d, want 3", ti.Chunks)
	}
	var sum, chunks int64
	for _, tc := range p.Touched {
		for _, r := range tc.Rows {
			sum += r.Bytes
			chunks += r.Chunks
		}
	}
	if sum != ti.Pages.Total*profile.PageSize || chunks != ti.Chunks {
		t.Errorf("rows hold %d bytes and %d chunks, want %d and %d", sum, chunks, ti.Pages.Total*profile.PageSize, ti.Chunks)
	}
	var f *profile.TouchedFile
	for i := range ti.Files {
		if ti.Files[i].Path == exe {
			f = &ti.Files[i]
		}
	}
	if f == nil || !f.Exe || f.OwnerKind != "package" {
		t.Fatalf("exe file: %+v", f)
	}
	// page 0: .interp 0x100, the rest no section; page 1: main.main 0x800
	// in .text, the rest .text; page 2: 0x400 net/http.get in .text, rest
	// .text; page 0x80: .rodata.
	wantSec := map[string]int64{".interp": 0x100, NoSection: 0xf00, ".text": 0x2000, ".rodata": 0x1000}
	for k, v := range wantSec {
		if f.Sections[k] != v {
			t.Errorf("section %s: %#x bytes, want %#x (all: %v)", k, f.Sections[k], v, f.Sections)
		}
	}
	if f.Owners["main"] != 0x800 || f.Owners["net/http"] != 0x400 {
		t.Errorf("owners %v", f.Owners)
	}
	// The chunk of page 2 was first touched in exec (page 0); the .rodata
	// chunk's first page is .rodata with no symbol.
	for _, r := range p.Touched["entry_to_next"].Rows {
		if r.Chunks != 1 || r.File != "/lib/libc.so.6" || r.Section != NoSection {
			t.Errorf("to_next row %+v", r)
		}
	}
}

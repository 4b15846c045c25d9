package coldstart_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	gpprof "github.com/google/pprof/profile"

	"github.com/initprof/initprof/coldstart"
	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/pprofout"
)

// TestTouched cold-starts the Go and C samples together and checks what
// their inits touched: pages and chunks in the phases, the Go binary's code
// and tables among its top sections, touched.pb.gz summing to the runs'
// totals, and the probes against mincore(2) after each run.
func TestTouched(t *testing.T) {
	if testing.Short() {
		t.Skip("cold starts are skipped in -short mode")
	}
	var exts []container.Extension
	for _, n := range []string{"cext", "goext"} {
		p, _ := filepath.Abs("../build/samples/" + n)
		exts = append(exts, container.Extension{Name: n, Path: p})
	}
	eng, err := coldstart.Open(coldstart.Config{MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s, err := eng.NewSeries("touched", exts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const runs = 3
	for i := 0; i < runs; i++ {
		if _, err := s.Run(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, r := range s.Runs() {
		c := r.TouchedCheck
		if c == nil {
			t.Fatalf("run %d: no mincore check (notes %v)", r.Index, r.Notes)
		}
		// The sandbox's files were evicted before the run, so what became
		// resident is what its processes read; the probes must have seen
		// (nearly) all of it, and nothing that did not become resident.
		if c.Resident == 0 || c.Agreement < 0.9 {
			t.Errorf("run %d: mincore check %+v: the probes and mincore disagree", r.Index, c)
		}
		for _, p := range r.Processes {
			if p.TouchedInit == nil {
				if p.Role == profile.RoleExtension {
					t.Errorf("run %d: %s touched nothing", r.Index, p.Name)
				}
				continue
			}
			total += p.TouchedInit.Pages.Bytes()
			var sum int64
			for _, tc := range p.Touched {
				sum += tc.Pages.Total
			}
			if sum != p.TouchedInit.Pages.Total {
				t.Errorf("run %d %s: phases hold %d pages, init %d", r.Index, p.Name, sum, p.TouchedInit.Pages.Total)
			}
			if p.Role != profile.RoleExtension {
				continue
			}
			if tc := p.Touched["exec"]; tc == nil || tc.Pages.Total == 0 || tc.Chunks == 0 {
				t.Errorf("run %d %s: the exec phase touched %+v", r.Index, p.Name, tc)
			}
			if p.TouchedInit.Chunks == 0 || p.TouchedInit.FaultedChunks == 0 {
				t.Errorf("run %d %s: chunks %d, faulted %d", r.Index, p.Name, p.TouchedInit.Chunks, p.TouchedInit.FaultedChunks)
			}
		}
	}
	rep := s.Report()
	for _, pr := range rep.Processes {
		if pr.Role != profile.RoleExtension {
			continue
		}
		tr := pr.Touched
		if tr == nil || tr.Exe == "" {
			t.Fatalf("%s: no touched report: %+v", pr.Name, tr)
		}
		t.Logf("%s: %s", pr.Name, tr.TouchedLine())
		if pr.Name == "goext" {
			top := map[string]bool{}
			for i, sh := range tr.Sections {
				if i < 3 {
					top[sh.Name] = true
				}
			}
			if !top[".text"] && !top[".gopclntab"] {
				t.Errorf("goext: neither .text nor .gopclntab among its top sections %v", tr.Sections)
			}
			if tr.OwnerKind != "package" || len(tr.Owners) == 0 {
				t.Errorf("goext: owners %q %v", tr.OwnerKind, tr.Owners)
			}
		}
		if pr.Name == "cext" && tr.Files.Median < 2 {
			t.Errorf("cext: touched %v files, want its libraries too", tr.Files.Median)
		}
	}
	var buf bytes.Buffer
	if err := pprofout.WriteTouched(&buf, s.Runs()); err != nil {
		t.Fatal(err)
	}
	p, err := gpprof.Parse(&buf)
	if err != nil {
		t.Fatalf("touched.pb.gz does not parse: %v", err)
	}
	var sum int64
	for _, smp := range p.Sample {
		sum += smp.Value[0]
	}
	if sum != total || total == 0 {
		t.Errorf("touched.pb.gz holds %d bytes, the runs %d", sum, total)
	}
}

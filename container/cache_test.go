package container

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEvictPageCache checks eviction with mincore on a file we control: fully
// resident after writing, zero after eviction; and that a mapped file's pages
// stay and are reported, not hidden.
func TestEvictPageCache(t *testing.T) {
	dir := workTemp(t)
	data := make([]byte, 1<<20)
	rand.Read(data)
	free, mapped := filepath.Join(dir, "free.bin"), filepath.Join(dir, "mapped.bin")
	for _, p := range []string{free, mapped} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, pages, err := Residency(free)
	if err != nil {
		t.Fatal(err)
	}
	if pages != len(data)/os.Getpagesize() || res != pages {
		t.Fatalf("a file just written: %d of %d pages resident, want all %d", res, pages, len(data)/os.Getpagesize())
	}
	// Map and touch the second file, as a running process mapping a library does.
	f, err := os.Open(mapped)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	sum := 0
	for i := 0; i < len(m); i += os.Getpagesize() {
		sum += int(m[i])
	}
	t.Logf("touched the mapping (checksum %d)", sum)

	ev, err := EvictPageCache([]string{free, mapped})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Files != 2 || ev.Pages != 2*pages || ev.Before != 2*pages {
		t.Errorf("eviction report %+v: want 2 files, %d pages, all resident before", ev, 2*pages)
	}
	if r, _, _ := Residency(free); r != 0 {
		t.Errorf("unmapped file: %d pages still resident after eviction, want 0", r)
	}
	if ev.After != pages || len(ev.Residual) != 1 || ev.Residual[0].Path != mapped {
		t.Errorf("mapped file: after=%d residual=%+v; want its %d mapped pages reported as residual", ev.After, ev.Residual, pages)
	}
	t.Log(ev)

	if _, err := EvictPageCache([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Errorf("evicting a missing file gave no error")
	}
}

// probeChild mirrors testdata/probe's ChildResult.
type probeChild struct {
	ExitCode int   `json:"exit_code"`
	MajFlt   int64 `json:"majflt"`
	InBlock  int64 `json:"inblock"`
	WallNS   int64 `json:"wall_ns"`
}

// TestColdCacheMoreMajorFaults runs a libcurl-linked binary (curl or the C
// sample, 30-odd libraries) inside the OCI sandbox, cold (bundle evicted) and warm, pairwise,
// and compares the major faults the probe measured for it with getrusage.
func TestColdCacheMoreMajorFaults(t *testing.T) {
	requireOCI(t, "runc")
	bin, args, mustSucceed := libcurlBinary(t)
	p := probeBinary(t)
	sb, err := NewOCI(Config{
		Extensions: []Extension{{Name: "curlish", Path: bin}},
		Initprof:   p,
		Init:       append([]string{InitprofPath, "exec", "/opt/extensions/curlish"}, args...),
		WorkDir:    workTemp(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if n := len(sb.Files()); n < 10 {
		t.Fatalf("bundle has %d files; want curl with its library closure", n)
	}
	run := func(id string) probeChild {
		in, code := runOnce(t, sb, id)
		var c probeChild
		readJSON(t, filepath.Join(in.OutDir(), "out.json"), &c)
		if mustSucceed && code != 0 {
			t.Fatalf("%s %v in the sandbox exited %d\n%s", bin, args, code, in.Output())
		}
		if err := in.Delete(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	var cold, warm []int64
	for i := 0; i < 3; i++ {
		ev, err := EvictPageCache(sb.Files())
		if err != nil {
			t.Fatal(err)
		}
		if ev.After != 0 {
			t.Errorf("after eviction %d pages stay resident: %v", ev.After, ev.Residual)
		}
		if i > 0 && ev.Before == 0 {
			t.Errorf("a warm bundle had no resident pages before eviction: %v", ev)
		}
		c := run("cold" + itoa(i))
		w := run("warm" + itoa(i))
		cold, warm = append(cold, c.MajFlt), append(warm, w.MajFlt)
		t.Logf("pair %d: cold majflt %d (inblock %d, %.1f ms), warm majflt %d (%.1f ms); %v",
			i, c.MajFlt, c.InBlock, float64(c.WallNS)/1e6, w.MajFlt, float64(w.WallNS)/1e6, ev)
	}
	if mc, mw := median(cold), median(warm); mc <= mw {
		t.Errorf("median major faults cold %d <= warm %d: eviction did not make the run cold", mc, mw)
	}
}

func median(v []int64) int64 {
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

package lazyfs

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChunks(t *testing.T) {
	const c = ChunkSize
	for _, tc := range []struct {
		off, n      int64
		first, last int64
	}{
		{0, 1, 0, 0},
		{0, c, 0, 0},
		{0, c + 1, 0, 1},
		{c - 1, 2, 0, 1},
		{c, 128 << 10, 1, 1},
		{3*c + 5, 2 * c, 3, 5},
		{10, 0, 0, -1},
	} {
		f, l := Chunks(tc.off, tc.n, c)
		if f != tc.first || l != tc.last {
			t.Errorf("Chunks(%d, %d) = %d..%d, want %d..%d", tc.off, tc.n, f, l, tc.first, tc.last)
		}
	}
}

func TestClassOf(t *testing.T) {
	m := DefaultModel()
	for _, tc := range []struct{ path, class string }{
		{"/opt/extensions/x", "function"},
		{"/opt", "function"},
		{"/optx/y", "function"}, // no prefix matches: the first class
		{"/var/runtime/bootstrap", "function"},
		{"/var/task/f.py", "function"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "base"},
		{"/lib64/ld-linux-x86-64.so.2", "base"},
		{"/usr/lib/libssl.so.3", "base"},
		{"/etc/ld.so.cache", "base"},
	} {
		if got := m.Classes[m.ClassOf(tc.path)].Name; got != tc.class {
			t.Errorf("ClassOf(%s) = %s, want %s", tc.path, got, tc.class)
		}
	}
	// Longest prefix wins: a base file under /opt/lib.
	m.SetClass("base", nil, append(m.Classes[1].Prefixes, "/opt/lib"))
	if got := m.Classes[m.ClassOf("/opt/lib/libz.so")].Name; got != "base" {
		t.Errorf("longest prefix: /opt/lib/libz.so is %s, want base", got)
	}
}

func TestDrawDeterministicAndDistributed(t *testing.T) {
	m := DefaultModel()
	counts := make([]int, len(m.Tiers))
	const n = 200000
	for c := int64(0); c < n; c++ {
		i, lat := m.Draw("/opt/extensions/x", c)
		j, lat2 := m.Draw("/opt/extensions/x", c)
		if i != j || lat != lat2 {
			t.Fatalf("chunk %d drew %d then %d", c, i, j)
		}
		if lat != m.Tiers[i].Latency {
			t.Fatalf("latency %v is not tier %s's", lat, m.Tiers[i].Name)
		}
		counts[i]++
	}
	for i, tier := range m.Tiers {
		want := DefaultFunctionMix[tier.Name]
		got := float64(counts[i]) / n
		if math.Abs(got-want) > 4*math.Sqrt(want*(1-want)/n)+1e-4 {
			t.Errorf("tier %s: %.4f of draws, want %.4f", tier.Name, got, want)
		}
	}
	// Base files: all resident on the worker (the host tier).
	for c := int64(0); c < 1000; c++ {
		if i, _ := m.Draw("/lib/libc.so.6", c); m.Tiers[i].Name != "host" {
			t.Fatalf("base chunk %d from %s", c, m.Tiers[i].Name)
		}
	}
	// Another seed gives another (but as reproducible) draw.
	m2 := m
	m2.Seed = 2
	diff := 0
	for c := int64(0); c < 1000; c++ {
		a, _ := m.Draw("/opt/extensions/x", c)
		b, _ := m2.Draw("/opt/extensions/x", c)
		if a != b {
			diff++
		}
	}
	if diff == 0 {
		t.Error("seeds 1 and 2 drew the same 1000 tiers")
	}
}

func TestExpected(t *testing.T) {
	m := DefaultModel()
	want := time.Duration(0.67*1.6*float64(time.Millisecond) + 0.329*6.4*float64(time.Millisecond) + 0.001*48*float64(time.Millisecond))
	if got := m.Expected("/opt/extensions/x"); got != want {
		t.Errorf("function expected %v, want %v", got, want)
	}
	if got := m.Expected("/lib/libc.so.6"); got != 0 {
		t.Errorf("base expected %v, want 0 (resident)", got)
	}
}

func TestModelFromFlags(t *testing.T) {
	for _, tc := range []struct {
		lat, mix, base string
		err            string
		check          func(m Model) string
	}{
		{lat: "worker=0,az=0,s3=0", check: func(m Model) string {
			if !m.Zero() {
				return "not zero"
			}
			return ""
		}},
		{lat: "worker=250us", check: func(m Model) string {
			if m.Tiers[0].Latency != 250*time.Microsecond || m.Tiers[1].Latency != DefaultAZLatency {
				return "worker not set alone"
			}
			return ""
		}},
		{mix: "worker=50%,az=50%", check: func(m Model) string {
			if m.Classes[0].Mix["az"] != 0.5 {
				return "mix not set"
			}
			return ""
		}},
		{lat: "worker=fast", err: "not a duration"},
		{mix: "disk=100%", err: "not one of the tiers"},
		{base: "worker=0", err: "no tier with a positive share"},
		{mix: "worker", err: "want TIER=SHARE"},
	} {
		m, err := ModelFrom(tc.lat, tc.mix, tc.base, 0)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ModelFrom(%q,%q,%q) error %v, want %q", tc.lat, tc.mix, tc.base, err, tc.err)
			}
		case err != nil:
			t.Errorf("ModelFrom(%q,%q,%q): %v", tc.lat, tc.mix, tc.base, err)
		default:
			if msg := tc.check(m); msg != "" {
				t.Errorf("ModelFrom(%q,%q,%q): %s", tc.lat, tc.mix, tc.base, msg)
			}
		}
	}
}

func TestModelString(t *testing.T) {
	s := DefaultModel().String()
	for _, want := range []string{"512 KiB chunks", "worker 1.6ms", "az 6.4ms", "s3 48ms", "worker=67%", "az=32.9%", "s3=0.1%", "base", "ATC '23", "seed 1"} {
		if !strings.Contains(s, want) {
			t.Errorf("Model.String() lacks %q: %s", want, s)
		}
	}
}

func TestLedgerCharges(t *testing.T) {
	const c = ChunkSize
	type read struct {
		path    string
		off, n  int64
		fetched int // new chunks this read fetches
	}
	for _, tc := range []struct {
		name  string
		reads []read
		total int
	}{
		{"one read one chunk", []read{{"/opt/x", 0, 4096, 1}}, 1},
		{"rereads are free", []read{{"/opt/x", 0, 4096, 1}, {"/opt/x", 4096, 4096, 0}, {"/opt/x", c - 1, 1, 0}}, 1},
		{"spanning read fetches both", []read{{"/opt/x", c - 4096, 8192, 2}, {"/opt/x", c, 10, 0}}, 2},
		{"files are separate", []read{{"/opt/x", 0, 1, 1}, {"/opt/y", 0, 1, 1}}, 2},
		{"128 KiB readahead: 4 reads per chunk", []read{{"/opt/x", 0, 128 << 10, 1}, {"/opt/x", 128 << 10, 128 << 10, 0}, {"/opt/x", 256 << 10, 128 << 10, 0}, {"/opt/x", 384 << 10, 128 << 10, 0}, {"/opt/x", 512 << 10, 128 << 10, 1}}, 2},
		{"empty read", []read{{"/opt/x", 0, 0, 0}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := DefaultModel()
			l := newLedger(m)
			var slept time.Duration
			l.sleep = func(d time.Duration) { slept += d }
			for _, r := range tc.reads {
				before := l.stats().Chunks
				l.charge(r.path, r.off, r.n)
				if got := l.stats().Chunks - before; got != r.fetched {
					t.Errorf("read %s@%d+%d fetched %d chunks, want %d", r.path, r.off, r.n, got, r.fetched)
				}
			}
			st := l.stats()
			if st.Chunks != tc.total {
				t.Errorf("total chunks %d, want %d", st.Chunks, tc.total)
			}
			if time.Duration(st.WaitNs) != slept {
				t.Errorf("stats wait %v, slept %v", time.Duration(st.WaitNs), slept)
			}
			l.reset(7)
			if st := l.stats(); st.Chunks != 0 || st.Seed != 7 {
				t.Errorf("after reset: %d chunks, seed %d", st.Chunks, st.Seed)
			}
		})
	}
}

// Concurrent first reads of one chunk fetch it once; the others wait for it.
func TestLedgerConcurrentFetchOnce(t *testing.T) {
	m := DefaultModel()
	m.Tiers = []Tier{{"worker", 20 * time.Millisecond}, {"az", 20 * time.Millisecond}, {"s3", 20 * time.Millisecond}}
	l := newLedger(m)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total time.Duration
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, _ := l.charge("/opt/x", int64(i)*4096, 4096)
			mu.Lock()
			total += d
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if st := l.stats(); st.Chunks != 1 || st.Reads != 8 {
		t.Errorf("8 concurrent reads of one chunk: %d chunks fetched, %d reads; want 1, 8", st.Chunks, st.Reads)
	}
	if total != 20*time.Millisecond {
		t.Errorf("fetch time charged %v, want one fetch (20ms)", total)
	}
}

// BenchmarkSleepOvershoot reports how much longer than asked a modelled
// fetch's sleep takes, for preciseSleep and for time.Sleep, at latencies that
// are and are not whole milliseconds (time.Sleep rounds up to the next one).
func BenchmarkSleepOvershoot(b *testing.B) {
	for _, c := range []struct {
		name  string
		sleep func(time.Duration)
	}{{"precise", preciseSleep}, {"time.Sleep", time.Sleep}} {
		for _, d := range []time.Duration{time.Millisecond, 1100 * time.Microsecond, 4400 * time.Microsecond} {
			b.Run(c.name+"/"+d.String(), func(b *testing.B) {
				var over time.Duration
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					c.sleep(d)
					over += time.Since(t0) - d
				}
				b.ReportMetric(float64(over.Microseconds())/float64(b.N), "µs-over/op")
			})
		}
	}
}

func TestModelFlagsServeModel(t *testing.T) {
	custom := DefaultModel()
	custom.Seed = 42
	js, err := json.Marshal(custom)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		flags     ModelFlags
		modelJSON string
		err       string
		seed      uint64
	}{
		{name: "defaults", seed: DefaultModel().Seed},
		{name: "flags", flags: ModelFlags{Latency: "worker=0,az=0,s3=0", Seed: 7}, seed: 7},
		{name: "bad flags", flags: ModelFlags{FunctionMix: "worker"}, err: "want TIER=SHARE"},
		{name: "json", modelJSON: string(js), seed: 42},
		{name: "json over the flags", flags: ModelFlags{Seed: 7}, modelJSON: string(js), seed: 42},
		{name: "bad json", modelJSON: "{", err: "--model-json: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.flags.ServeModel(tc.modelJSON)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("ServeModel error %v, want %q", err, tc.err)
				}
			case err != nil:
				t.Errorf("ServeModel: %v", err)
			case m.Seed != tc.seed:
				t.Errorf("ServeModel seed %d, want %d", m.Seed, tc.seed)
			}
		})
	}
}

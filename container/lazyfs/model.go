// Package lazyfs serves a directory through FUSE the way Lambda's storage
// serves function code: the first read of each 512 KiB chunk of each file
// pays a fetch from a tiered cache, later reads come from the page cache.
//
// On Lambda, a container image (or zip) is flattened into one ext4 file
// system cut into 512 KiB chunks; the microVM sees a block device whose
// chunks a worker-local agent fetches on first read, from the worker's own
// cache, the AZ-level cache, or S3 (Brooker et al., "On-demand Container
// Loading in AWS Lambda", USENIX ATC '23). Locally, the same files come from
// this machine's disk in microseconds, so a cold start measured here misses
// that load. The server charges a modelled fetch latency (Model) to each
// chunk the kernel asks for, so what readahead, page faults and exec touch
// costs what it would cost there.
//
// The server runs in its own process (Serve, behind the hidden `initprof
// lazyfs` subcommand) and is driven by Client over its stdin/stdout.
package lazyfs

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ChunkSize is Lambda's storage chunk: 512 KiB (Brooker et al., ATC '23, §3).
const ChunkSize = 512 << 10

// DefaultReadAhead is Linux's default readahead (128 KiB), which Lambda's guest
// applies to its ext4 block device; it decides how many chunks a read touches.
const DefaultReadAhead = 128 << 10

// Tier is one level of the chunk cache and what a fetch from it costs.
type Tier struct {
	Name    string
	Latency time.Duration
}

// Class is a set of files (by path prefix inside the served tree) that share
// a mix of tiers: function code is mostly in the worker cache and partly in
// the AZ cache; a base image every function on the worker shares is, in
// effect, always in the worker cache.
type Class struct {
	Name     string
	Prefixes []string // paths inside the tree; "/opt" matches /opt and /opt/...
	// Mix is the share of chunk reads each tier serves, by tier name. The
	// shares need not sum to one: they are normalised.
	Mix map[string]float64
}

// Model is the storage model: which tiers exist, what they cost, which file
// gets which mix, and the seed of the draw.
type Model struct {
	ChunkSize int64 // 0: ChunkSize
	Tiers     []Tier
	// Classes are matched by longest prefix; a file no prefix matches is in
	// the first class.
	Classes []Class
	// Seed makes the draw reproducible: the tier of chunk c of file p depends
	// only on (Seed, p, c), not on the order reads arrive in.
	Seed uint64
	// Source names where the ratios come from, for reports.
	Source string
}

// Lambda's storage, as fitted. The hit ratios are the paper's; the latencies
// and the base image's tier are fitted (coldstart's BenchmarkFidelity against
// lambda-perf's Init Durations, LAMBDA-FIDELITY.md §1).
//
// Source of the ratios: Brooker, Danilov, Greenwood, Piwonka, "On-demand
// Container Loading in AWS Lambda", USENIX ATC '23: about 67 % of chunk reads
// hit the worker-local cache, 32 % the AZ-level cache and under 0.1 % go to
// S3. The latencies are not published. They are scaled together in the
// ratio 1:4:30 (local SSD-backed cache, an in-AZ round trip, an S3 GET) and
// the scale k is fitted (the README's "How close to Lambda", make
// fidelity-bench). Both functions' init is close to linear in k: Go about
// 11 ms + 22.5 ms·k (14 chunks), Rust about 10 ms + 3 ms·k (its 3 function
// chunks; the rest is base image). k = 1.6 (1.6 ms, 6.4 ms, 48 ms) puts both
// within 5 % of lambda-perf at 128 and 1024 MB; the earlier fit's step
// between k = 1.0 and 1.1 was time.Sleep rounding fetches up to whole
// milliseconds (preciseSleep). The base image fits at no cost at all: Rust's
// 9 loader and libc chunks at the worker's latency would put it 60-80 % over.
var (
	DefaultWorkerLatency = 1600 * time.Microsecond
	DefaultAZLatency     = 6400 * time.Microsecond
	DefaultS3Latency     = 48 * time.Millisecond
	// DefaultHostLatency is the "host" tier: chunks already resident on
	// the worker (the shared base image), free to read.
	DefaultHostLatency time.Duration = 0

	DefaultFunctionMix = map[string]float64{"worker": 0.67, "az": 0.329, "s3": 0.001}
	// DefaultBaseMix: the runtime image's loader and libraries are shared by
	// every function on a worker, so they are taken as resident there (the
	// fit: any per-chunk cost on them overshoots the Rust function).
	DefaultBaseMix = map[string]float64{"host": 1}

	DefaultFunctionPrefixes = []string{"/opt", "/var/runtime", "/var/task"}
	DefaultBasePrefixes     = []string{"/lib", "/lib64", "/lib32", "/usr", "/etc", "/bin", "/sbin"}
)

// SourceATC23 is the citation printed with the default model.
const SourceATC23 = "hit ratios: Brooker et al., On-demand Container Loading in AWS Lambda, USENIX ATC '23; latencies and base tier: fitted to lambda-perf's Init Durations (BenchmarkFidelity)"

// DefaultModel is Lambda's storage with the fitted latencies.
func DefaultModel() Model {
	return Model{
		ChunkSize: ChunkSize,
		Tiers: []Tier{
			{"worker", DefaultWorkerLatency},
			{"az", DefaultAZLatency},
			{"s3", DefaultS3Latency},
			{"host", DefaultHostLatency},
		},
		Classes: []Class{
			{Name: "function", Prefixes: append([]string(nil), DefaultFunctionPrefixes...), Mix: copyMix(DefaultFunctionMix)},
			{Name: "base", Prefixes: append([]string(nil), DefaultBasePrefixes...), Mix: copyMix(DefaultBaseMix)},
		},
		Seed:   1,
		Source: SourceATC23,
	}
}

func copyMix(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (m *Model) chunkSize() int64 {
	if m.ChunkSize <= 0 {
		return ChunkSize
	}
	return m.ChunkSize
}

// Validate checks that every class's mix names known tiers and has weight.
func (m *Model) Validate() error {
	if len(m.Tiers) == 0 {
		return fmt.Errorf("storage model: no tiers")
	}
	if len(m.Classes) == 0 {
		return fmt.Errorf("storage model: no file classes")
	}
	known := map[string]bool{}
	for _, t := range m.Tiers {
		if t.Name == "" || known[t.Name] {
			return fmt.Errorf("storage model: tier name %q is empty or repeated", t.Name)
		}
		if t.Latency < 0 {
			return fmt.Errorf("storage model: tier %s has a negative latency", t.Name)
		}
		known[t.Name] = true
	}
	for _, c := range m.Classes {
		sum := 0.0
		for name, w := range c.Mix {
			if !known[name] {
				return fmt.Errorf("storage model: class %s uses tier %q, which is not one of the tiers (%s)", c.Name, name, m.tierNames())
			}
			if w < 0 || math.IsNaN(w) {
				return fmt.Errorf("storage model: class %s: tier %s has a negative share", c.Name, name)
			}
			sum += w
		}
		if sum <= 0 {
			return fmt.Errorf("storage model: class %s has no tier with a positive share", c.Name)
		}
	}
	return nil
}

func (m *Model) tierNames() string {
	var s []string
	for _, t := range m.Tiers {
		s = append(s, t.Name)
	}
	return strings.Join(s, ", ")
}

// ClassOf returns the index of the class of the file at p (a path inside the
// served tree): the longest matching prefix wins, else the first class.
func (m *Model) ClassOf(p string) int {
	p = path.Clean("/" + p)
	best, bestLen := 0, -1
	for i, c := range m.Classes {
		for _, pre := range c.Prefixes {
			pre = path.Clean("/" + pre)
			if (p == pre || strings.HasPrefix(p, strings.TrimSuffix(pre, "/")+"/")) && len(pre) > bestLen {
				best, bestLen = i, len(pre)
			}
		}
	}
	return best
}

// Draw returns the tier that serves chunk c of the file at p, and its
// latency. It is a pure function of (Seed, p, c, the class's mix).
func (m *Model) Draw(p string, c int64) (tier int, lat time.Duration) {
	cl := m.Classes[m.ClassOf(p)]
	u := unitHash(m.Seed, p, c)
	total := 0.0
	for _, t := range m.Tiers {
		total += cl.Mix[t.Name]
	}
	acc := 0.0
	last := -1
	for i, t := range m.Tiers {
		w := cl.Mix[t.Name]
		if w <= 0 {
			continue
		}
		last = i
		acc += w / total
		if u < acc {
			return i, t.Latency
		}
	}
	return last, m.Tiers[last].Latency // rounding: u just under 1
}

// Expected is the mean fetch latency of one chunk of the file at p.
func (m *Model) Expected(p string) time.Duration {
	cl := m.Classes[m.ClassOf(p)]
	total, e := 0.0, 0.0
	for _, t := range m.Tiers {
		total += cl.Mix[t.Name]
		e += cl.Mix[t.Name] * float64(t.Latency)
	}
	return time.Duration(e / total)
}

// Zero reports whether every tier costs nothing (the FUSE layer alone).
func (m *Model) Zero() bool {
	for _, t := range m.Tiers {
		if t.Latency != 0 {
			return false
		}
	}
	return true
}

// unitHash maps (seed, path, chunk) to [0, 1).
func unitHash(seed uint64, p string, c int64) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(c))
	h.Write(b[:8])
	h.Write([]byte(p))
	h.Write(b[8:])
	x := h.Sum64()
	// fnv's low bits mix poorly for close inputs: finish with splitmix64.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// String is the model as every report prints it, e.g.
// "lambda storage: 512 KiB chunks; tiers worker 1.6ms, az 6.4ms, s3 48ms;
// function (/opt /var/runtime /var/task) worker 67% az 32.9% s3 0.1%; ...".
func (m Model) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lambda storage: %d KiB chunks, first read of each fetched; tiers", m.chunkSize()>>10)
	for i, t := range m.Tiers {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %s", t.Name, t.Latency)
	}
	for _, c := range m.Classes {
		fmt.Fprintf(&b, "; %s (%s):", c.Name, strings.Join(c.Prefixes, " "))
		b.WriteString(" " + FormatMix(c.Mix, m.Tiers))
		fmt.Fprintf(&b, " = %s/chunk expected", m.Expected(firstOr(c.Prefixes, "/")).Round(time.Microsecond))
	}
	fmt.Fprintf(&b, "; seed %d", m.Seed)
	if m.Source != "" {
		b.WriteString(" (" + m.Source + ")")
	}
	return b.String()
}

func firstOr(s []string, d string) string {
	if len(s) > 0 {
		// Expected depends on the class, and the class of its own first
		// prefix is itself unless a longer prefix of another class covers
		// it; good enough for printing.
		return s[0]
	}
	return d
}

// FormatMix prints a mix as "worker=67%,az=32.9%,s3=0.1%", in tier order.
func FormatMix(mix map[string]float64, tiers []Tier) string {
	total := 0.0
	for _, w := range mix {
		total += w
	}
	var parts []string
	for _, t := range tiers {
		if w, ok := mix[t.Name]; ok {
			parts = append(parts, t.Name+"="+strconv.FormatFloat(100*w/total, 'g', 4, 64)+"%")
		}
	}
	return strings.Join(parts, ",")
}

// ParseLatencies sets tier latencies from "worker=1ms,az=4ms,s3=30ms". A
// name not yet a tier adds one (it then needs a share in some mix).
func (m *Model) ParseLatencies(s string) error {
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("chunk latency %q: want TIER=DURATION, e.g. worker=1ms,az=4ms,s3=30ms", kv)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			return fmt.Errorf("chunk latency %q: %q is not a duration like 1ms or 250us", kv, v)
		}
		k = strings.TrimSpace(k)
		found := false
		for i := range m.Tiers {
			if m.Tiers[i].Name == k {
				m.Tiers[i].Latency, found = d, true
			}
		}
		if !found {
			m.Tiers = append(m.Tiers, Tier{k, d})
		}
	}
	return nil
}

// ParseMix reads "worker=67%,az=32.9%,s3=0.1%" (or plain fractions,
// "worker=0.67,...") into a mix.
func ParseMix(s string) (map[string]float64, error) {
	mix := map[string]float64{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("tier mix %q: want TIER=SHARE, e.g. worker=67%%,az=32.9%%,s3=0.1%%", kv)
		}
		v = strings.TrimSpace(v)
		pct := strings.HasSuffix(v, "%")
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("tier mix %q: %q is not a share like 67%% or 0.67", kv, v)
		}
		if pct {
			f /= 100
		}
		mix[strings.TrimSpace(k)] = f
	}
	if len(mix) == 0 {
		return nil, fmt.Errorf("tier mix %q is empty", s)
	}
	return mix, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// SetClass replaces (or adds) the named class's mix and, when prefixes is
// non-nil, its prefixes.
func (m *Model) SetClass(name string, mix map[string]float64, prefixes []string) {
	for i := range m.Classes {
		if m.Classes[i].Name == name {
			if mix != nil {
				m.Classes[i].Mix = mix
			}
			if prefixes != nil {
				m.Classes[i].Prefixes = prefixes
			}
			return
		}
	}
	m.Classes = append(m.Classes, Class{Name: name, Mix: mix, Prefixes: prefixes})
}

// Chunks returns the chunk indexes [first, last] a read of n bytes at off
// covers; n <= 0 covers none (first > last).
func Chunks(off, n, chunk int64) (first, last int64) {
	if n <= 0 {
		return 0, -1
	}
	return off / chunk, (off + n - 1) / chunk
}

// sortedKeys is a helper for stable output.
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// ModelFrom is DefaultModel with the command-line overrides applied:
// latencies ("worker=1ms,az=4ms,s3=30ms"), the function class's mix and the
// base class's mix ("worker=67%,az=32.9%,s3=0.1%"); "" keeps a default.
func ModelFrom(latencies, functionMix, baseMix string, seed uint64) (Model, error) {
	m := DefaultModel()
	if latencies != "" {
		if err := m.ParseLatencies(latencies); err != nil {
			return m, err
		}
	}
	for _, c := range []struct{ name, spec string }{{"function", functionMix}, {"base", baseMix}} {
		if c.spec == "" {
			continue
		}
		mix, err := ParseMix(c.spec)
		if err != nil {
			return m, fmt.Errorf("%s mix: %v", c.name, err)
		}
		m.SetClass(c.name, mix, nil)
	}
	if seed != 0 {
		m.Seed = seed
	}
	if latencies != "" || functionMix != "" || baseMix != "" {
		m.Source = "hit ratios from Brooker et al., USENIX ATC '23 unless overridden; set by flags"
	}
	return m, m.Validate()
}

// ModelFlags are the lambda storage model's parameters as a command line
// gives them (ModelFrom's arguments); "" and 0 keep a default.
type ModelFlags struct {
	Latency, FunctionMix, BaseMix string
	Seed                          uint64
}

// Model is DefaultModel with f applied (ModelFrom).
func (f ModelFlags) Model() (Model, error) {
	return ModelFrom(f.Latency, f.FunctionMix, f.BaseMix, f.Seed)
}

// ServeModel is the model of a lazyfs server: modelJSON, the whole model
// as JSON (what initprof passes to the server it spawns), when given, else
// f's model.
func (f ModelFlags) ServeModel(modelJSON string) (Model, error) {
	if modelJSON == "" {
		return f.Model()
	}
	var m Model
	if err := json.Unmarshal([]byte(modelJSON), &m); err != nil {
		return m, fmt.Errorf("--model-json: %v", err)
	}
	return m, nil
}

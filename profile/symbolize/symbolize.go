// Package symbolize names the addresses of an unwound stack: function, source
// file and line, for user code (ELF .symtab/.dynsym, the build-id debug file
// under /usr/lib/debug/.build-id, DWARF line tables, Go's pclntab) and for the
// kernel (/proc/kallsyms). Rust (legacy and v0) and C++ names are demangled,
// and Rust's "::h<hash>" suffix is dropped so the same function has the same
// name in every build (a differential flamegraph depends on it).
//
// Every file is read once and cached by build-id, because a profile holds
// thousands of samples from a handful of files.
package symbolize

import (
	"bufio"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ianlancetaylor/demangle"

	"github.com/initprof/initprof/profile/sample"
	"github.com/initprof/initprof/profile/unwind"
)

// Symbolizer resolves addresses to frames. It is safe for concurrent use.
type Symbolizer struct {
	// PathFor maps a mapping to the file to read on this host (e.g. inside a
	// container's rootfs). Nil means Mapping.Path as is.
	PathFor func(sample.Mapping) string
	// DebugDir is where build-id debug files live; "" means /usr/lib/debug.
	DebugDir string
	// Kallsyms is the kernel symbol file; "" means /proc/kallsyms.
	Kallsyms string

	mu     sync.Mutex
	files  map[string]*symFile
	kOnce  sync.Once
	kernel []ksym
}

// New returns a Symbolizer reading the host's files.
func New() *Symbolizer { return &Symbolizer{} }

type sym struct {
	addr, size uint64
	name       string
	global     bool
}

type segment struct{ off, vaddr, filesz uint64 }

type symFile struct {
	path string
	segs []segment
	syms []sym       // sorted by addr
	plt  [][2]uint64 // [start, end) of .plt, .plt.sec, .plt.got
	gosy *gosym.Table
	dw   *dwarf.Data
	err  error

	lmu   sync.Mutex
	lines map[uint64]lineInfo
}

type lineInfo struct {
	file string
	line int
}

func (s *Symbolizer) file(m *sample.Mapping) *symFile {
	path := m.Path
	if s.PathFor != nil {
		path = s.PathFor(*m)
	}
	key := fmt.Sprintf("p:%s:%d", path, m.Inode)
	if m.BuildID != "" {
		key = "b:" + m.BuildID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string]*symFile{}
	}
	if f, ok := s.files[key]; ok {
		return f
	}
	f := loadSyms(path, s.DebugDir)
	s.files[key] = f
	return f
}

func loadSyms(path, debugDir string) (sf *symFile) {
	sf = &symFile{path: path, lines: map[uint64]lineInfo{}}
	defer func() {
		if r := recover(); r != nil {
			sf.err = fmt.Errorf("%s: malformed ELF: %v", path, r)
		}
	}()
	f, err := elf.Open(path)
	if err != nil {
		sf.err = fmt.Errorf("open %s for symbols: %w", path, err)
		return sf
	}
	// f stays open: DWARF line lookups read it lazily.
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			sf.segs = append(sf.segs, segment{p.Off, p.Vaddr, p.Filesz})
		}
	}
	for _, sec := range f.Sections {
		if sec.Name == ".plt" || sec.Name == ".plt.sec" || sec.Name == ".plt.got" || sec.Name == ".iplt" {
			sf.plt = append(sf.plt, [2]uint64{sec.Addr, sec.Addr + sec.Size})
		}
	}
	seen := map[uint64]int{}
	addSyms := func(ef *elf.File, ss []elf.Symbol) {
		for _, x := range ss {
			switch elf.ST_TYPE(x.Info) {
			case elf.STT_FUNC, elf.STT_GNU_IFUNC:
			case elf.STT_NOTYPE:
				// Assembly labels such as ld.so's _dl_start_user are NOTYPE;
				// keep them when they sit in code.
				if int(x.Section) >= len(ef.Sections) || ef.Sections[x.Section].Flags&elf.SHF_EXECINSTR == 0 ||
					strings.HasPrefix(x.Name, ".L") || strings.HasPrefix(x.Name, "$") || x.Name == "" {
					continue
				}
			default:
				continue
			}
			if x.Value == 0 || x.Section == elf.SHN_UNDEF {
				continue
			}
			name := x.Name
			if i := strings.Index(name, "@"); i > 0 { // versioned dynsym
				name = name[:i]
			}
			name = strings.TrimSuffix(name, ".localalias")
			global := elf.ST_BIND(x.Info) != elf.STB_LOCAL
			if i, ok := seen[x.Value]; ok {
				// Aliases at one address: prefer the global name (what the
				// source calls it) over local aliases.
				if global && !sf.syms[i].global {
					sf.syms[i] = sym{x.Value, x.Size, name, true}
				}
				continue
			}
			seen[x.Value] = len(sf.syms)
			sf.syms = append(sf.syms, sym{x.Value, x.Size, name, global})
		}
	}
	if ss, err := f.Symbols(); err == nil {
		addSyms(f, ss)
	}
	if ss, err := f.DynamicSymbols(); err == nil {
		addSyms(f, ss)
	}
	if id := unwind.BuildID(f); len(id) > 2 {
		dir := debugDir
		if dir == "" {
			dir = "/usr/lib/debug"
		}
		if df, err := elf.Open(filepath.Join(dir, ".build-id", id[:2], id[2:]+".debug")); err == nil {
			if ss, err := df.Symbols(); err == nil {
				addSyms(df, ss)
			}
			if d, err := df.DWARF(); err == nil {
				sf.dw = d
			}
		}
	}
	if sf.dw == nil && f.Section(".debug_info") != nil {
		if d, err := f.DWARF(); err == nil {
			sf.dw = d
		}
	}
	if pcln := f.Section(".gopclntab"); pcln != nil {
		if data, err := pcln.Data(); err == nil {
			text := f.Section(".text")
			if text != nil {
				if t, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr)); err == nil {
					sf.gosy = t
				}
			}
		}
	}
	sort.Slice(sf.syms, func(i, j int) bool { return sf.syms[i].addr < sf.syms[j].addr })
	return sf
}

func (sf *symFile) toELF(m *sample.Mapping, pc uint64) uint64 {
	foff := pc - m.Start + m.Offset
	for _, s := range sf.segs {
		if foff >= s.off && foff < s.off+s.filesz {
			return foff - s.off + s.vaddr
		}
	}
	return foff
}

func (sf *symFile) lookup(addr uint64) (string, bool) {
	for _, r := range sf.plt {
		// PLT stubs have no symbols; without this they would be named after
		// the symbol before them (_init).
		if addr >= r[0] && addr < r[1] {
			return "[plt]", true
		}
	}
	i := sort.Search(len(sf.syms), func(i int) bool { return sf.syms[i].addr > addr }) - 1
	if i < 0 {
		return "", false
	}
	s := sf.syms[i]
	if s.size != 0 && addr >= s.addr+s.size {
		return "", false
	}
	if s.size == 0 && i+1 < len(sf.syms) && addr >= sf.syms[i+1].addr {
		return "", false
	}
	return s.name, true
}

func (sf *symFile) line(addr uint64) (lineInfo, bool) {
	if sf.dw == nil {
		return lineInfo{}, false
	}
	sf.lmu.Lock()
	defer sf.lmu.Unlock()
	if li, ok := sf.lines[addr]; ok {
		return li, li.file != ""
	}
	li := lineInfo{}
	func() {
		defer func() { _ = recover() }()
		r := sf.dw.Reader()
		cu, err := r.SeekPC(addr)
		if err != nil || cu == nil {
			return
		}
		lr, err := sf.dw.LineReader(cu)
		if err != nil || lr == nil {
			return
		}
		var le dwarf.LineEntry
		if err := lr.SeekPC(addr, &le); err != nil || le.File == nil {
			return
		}
		li = lineInfo{le.File.Name, le.Line}
	}()
	sf.lines[addr] = li
	return li, li.file != ""
}

var rustHash = regexp.MustCompile(`::h[0-9a-f]{16}$`)

// Demangle returns the readable form of a C++ or Rust (legacy or v0) symbol,
// without parameter lists and without Rust's hash suffix; other names are
// returned unchanged.
func Demangle(name string) string {
	if strings.HasPrefix(name, "_Z") || strings.HasPrefix(name, "_R") || strings.HasPrefix(name, "__Z") {
		name = demangle.Filter(name, demangle.NoParams, demangle.NoClones)
	}
	return rustHash.ReplaceAllString(name, "")
}

// User resolves one user address inside mapping m. isReturn says pc is a
// return address (every frame but the leaf): the call instruction is at
// pc-1, which is what must be looked up.
func (s *Symbolizer) User(m *sample.Mapping, pc uint64, isReturn bool) sample.Frame {
	fr := sample.Frame{Addr: pc, Mapping: m}
	if m == nil {
		return fr
	}
	fr.Module = m.Path
	sf := s.file(m)
	look := pc
	if isReturn {
		look = pc - 1
	}
	addr := sf.toELF(m, look)
	fr.Offset = addr
	if sf.err != nil {
		return fr
	}
	if sf.gosy != nil {
		if file, line, fn := sf.gosy.PCToLine(addr); fn != nil {
			fr.Func, fr.File, fr.Line = fn.Name, file, line
			return fr
		}
	}
	if name, ok := sf.lookup(addr); ok {
		fr.Func = Demangle(name)
	}
	if li, ok := sf.line(addr); ok {
		fr.File, fr.Line = li.file, li.line
	}
	return fr
}

type ksym struct {
	addr uint64
	name string
}

func (s *Symbolizer) loadKernel() {
	path := s.Kallsyms
	if path == "" {
		path = "/proc/kallsyms"
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		if t := fields[1]; t != "t" && t != "T" && t != "w" && t != "W" {
			continue
		}
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		s.kernel = append(s.kernel, ksym{a, fields[2]})
	}
	sort.Slice(s.kernel, func(i, j int) bool { return s.kernel[i].addr < s.kernel[j].addr })
}

// Kernel resolves a kernel address with /proc/kallsyms (read once).
func (s *Symbolizer) Kernel(pc uint64) sample.Frame {
	s.kOnce.Do(s.loadKernel)
	fr := sample.Frame{Addr: pc, Kernel: true, Module: "[kernel]"}
	i := sort.Search(len(s.kernel), func(i int) bool { return s.kernel[i].addr > pc }) - 1
	if i >= 0 {
		fr.Func = s.kernel[i].name
		fr.Offset = pc - s.kernel[i].addr
	} else {
		fr.Offset = pc
	}
	return fr
}

// Stack symbolizes one sample: kernel frames first (leaf first), then the user
// frames of the CFI unwind u. When the CFI walk did not reach a root frame but
// the kernel's frame-pointer stack (raw.FPStack) does, the latter is used.
func (s *Symbolizer) Stack(raw sample.RawSample, maps []sample.Mapping, u unwind.Result) sample.Stack {
	st := sample.Stack{MonoNs: raw.MonoNs, PID: raw.PID, TID: raw.TID, Method: u.Method}
	if raw.OffCPUNs > 0 {
		st.OffCPU, st.Weight = true, raw.OffCPUNs
		leaf := sample.FrameBlocked
		if raw.Runnable {
			leaf = sample.FrameRunnable
		}
		st.Frames = append(st.Frames, sample.Frame{Func: leaf})
	}
	var kframes []sample.Frame
	for _, pc := range raw.KStack {
		kframes = append(kframes, s.Kernel(pc))
	}
	if raw.OffCPUNs > 0 {
		kframes = fromSchedule(kframes)
	}
	st.Frames = append(st.Frames, kframes...)
	pcs := u.PCs
	if len(pcs) > 0 && len(raw.KStack) > 0 && sample.Find(maps, pcs[0]) == nil {
		// In the kernel with no user context of this image (e.g. inside
		// execve, before the new program ran): the user registers are stale.
		pcs = nil
	}
	user := s.userFrames(pcs, maps)
	// Complete: the outermost frame is a known entry function, or the CFI
	// itself marks it outermost (return address undefined, as _start and
	// thread entry points do; this is what counts in stripped binaries).
	complete := len(user) > 0 && (sample.IsRoot(user[len(user)-1].Func) || u.End == "root")
	if !complete && len(raw.FPStack) > 0 {
		fp := s.userFrames(raw.FPStack, maps)
		if len(fp) > 0 && sample.IsRoot(fp[len(fp)-1].Func) {
			user, complete, st.Method = fp, true, "fp-kernel"
		} else if len(user) == 0 {
			user, st.Method = fp, "fp-kernel"
		}
	}
	st.Frames = append(st.Frames, user...)
	st.Complete = complete
	return st
}

// fromSchedule drops an off-CPU kernel stack's frames leafward of
// __schedule: the sched_switch tracepoint and the BPF program that recorded
// the stack, which are the observer, not where the thread waited.
func fromSchedule(k []sample.Frame) []sample.Frame {
	for i, f := range k {
		if f.Func == "__schedule" {
			return k[i:]
		}
	}
	return k
}

func (s *Symbolizer) userFrames(pcs []uint64, maps []sample.Mapping) []sample.Frame {
	out := make([]sample.Frame, 0, len(pcs))
	for i, pc := range pcs {
		look := pc
		if i > 0 {
			look = pc - 1
		}
		out = append(out, s.User(sample.Find(maps, look), pc, i > 0))
	}
	return out
}

// Resolve unwinds and symbolizes raw samples; maps holds each process's
// executable mappings by pid. Labels (Process, Phase, Run, Build) and Weight
// are left for the caller, who knows the run.
func Resolve(u *unwind.Unwinder, s *Symbolizer, raws []sample.RawSample, maps map[uint32][]sample.Mapping) []sample.Stack {
	out := make([]sample.Stack, 0, len(raws))
	for _, r := range raws {
		m := maps[r.PID]
		out = append(out, s.Stack(r, m, u.Unwind(r, m)))
	}
	return out
}

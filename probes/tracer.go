package probes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Checkpoint names carried by KindUprobe/KindUretprobe events.
const (
	CheckpointLdsoStart    = "ldso_start"     // ld.so's entry (_start = its e_entry)
	CheckpointDlMain       = "dl_main"        // ld.so's dl_main: the loader proper begins
	CheckpointDepsStart    = "deps_start"     // _dl_map_object_deps entry (uprobe)
	CheckpointDepsLoaded   = "deps_loaded"    // _dl_map_object_deps return (uretprobe): every DT_NEEDED object is mapped
	CheckpointRelocate     = "relocate"       // _dl_relocate_object entry, Object = the object's name (uprobe)
	CheckpointRelocateDone = "relocated"      // _dl_relocate_object return (uretprobe; pair with the entry by TID)
	CheckpointDlStartUser  = "dl_start_user"  // _dl_start_user: relocation is over, constructors are next
	CheckpointDlInit       = "dl_init"        // _dl_init: the libraries' constructors start; they end at the executable's entry
	CheckpointDlDebugState = "dl_debug_state" // _dl_debug_state: the fallback when ld.so has no symbols
	CheckpointEntry        = "entry"          // the executable's e_entry
	CheckpointExeInit      = "exe_init"       // the executable's _init: since glibc 2.34 libc's __libc_start_main runs the executable's own constructors, after entry
	CheckpointMain         = "main"           // C/C++/Rust main
	CheckpointGoMain       = "main.main"      // Go's main.main (entry only: uretprobes corrupt Go stacks)
	UserCheckpointPrefix   = "uprobe:"        // user probes are "uprobe:SYMBOL"
)

// Options says what to watch.
type Options struct {
	// Executables are host paths of the binaries under test. Each gets uprobes
	// on its entry point and on main / main.main when it has them.
	Executables []string
	// LdSo is the host path of the dynamic loader the targets use (for a
	// container, the copy inside its rootfs). "" skips the loader checkpoints.
	LdSo string
	// UserProbes are "SYMBOL" (in every executable) or "FILE:SYMBOL".
	UserProbes []string
	// RingBytes is the ring buffer size; rounded up to a power of two. 0 = 8 MiB.
	RingBytes int
	// DebugDir holds build-ID debug files; "" = /usr/lib/debug.
	DebugDir string
	// NoUprobeMulti forces perf-event uprobes (the fallback for kernels < 6.6).
	NoUprobeMulti bool
	// NoFaultTracepoint counts page faults with per-CPU software perf events,
	// as on arm64, even where exceptions:page_fault_user exists (for tests).
	NoFaultTracepoint bool
	// Calibration is the host path of a Go binary built with this package
	// (initprof itself): its calibration function gets a uprobe, so that
	// Tracer.Calibrate can measure what a hit costs here. "" = none; a binary
	// without the symbol (stripped) leaves the tracer uncalibrated, no error.
	Calibration string
	// NoTouched leaves out the page-touch probes (filemap:mm_filemap_add_to_page_cache
	// and the fault-address lookup): Touched returns nothing. For measuring their cost.
	NoTouched bool
	// NoTouchFaults keeps the page-cache adds but not the fault probes
	// (no minor faults, and major ones count as readahead).
	NoTouchFaults bool
}

// Missing is a checkpoint that could not be attached, and why.
type Missing struct {
	Checkpoint string
	File       string
	Reason     string
}

func (m Missing) String() string {
	if m.File != "" {
		return fmt.Sprintf("%s (%s): %s", m.Checkpoint, m.File, m.Reason)
	}
	return fmt.Sprintf("%s: %s", m.Checkpoint, m.Reason)
}

// Stats counts what a run produced and lost.
type Stats struct {
	Events  int    // events collected since the last Follow
	Dropped uint64 // events the BPF side could not queue (ring buffer full)
	Uprobes int    // uprobe and uretprobe sites attached
	Multi   bool   // uprobes use uprobe_multi links (else one perf event each)
	// UprobeReturnNs was added to each uprobe time: the calibrated trap
	// return (0 before Calibrate). Subtract it for the raw probe timestamps.
	UprobeReturnNs int64
}

// ErrPermission is returned (wrapped, with the capability named) when the
// kernel refuses to load or attach BPF programs for lack of privileges.
var ErrPermission = errors.New("insufficient privileges for eBPF")

// probeSite is one uprobe: where it is and what its cookie means.
type probeSite struct {
	file       string
	offset     uint64
	checkpoint string
	ret        bool
	linkmap    bool
}

const cookieLinkMap = 1 << 32

// Tracer holds the loaded programs and their links; see the package doc.
type Tracer struct {
	coll    *ebpf.Collection
	links   []link.Link
	rd      *ringbuf.Reader
	sites   []probeSite
	missing []Missing
	multi   bool
	// calibrated: a site for the calibration function was planned.
	calibrated bool
	// uprobeReturnNs is the calibrated trap return (Costs.UprobeReturnNs),
	// added to every uprobe time Collect returns: a uprobe's timestamp is
	// taken in the trap, the program resumes that much later.
	uprobeReturnNs int64
	faultTP        bool  // page faults from the exceptions:page_fault_user tracepoint
	perfFDs        []int // software page-fault perf events (the fallback), closed by Close
	touchTP        bool  // the page-touch probes are attached (Touched)
	touchFaults    bool  // ... with the fault tracepoints (minor and major faults)
	touchBase      [2]uint64

	mu        sync.Mutex
	events    []rawEvent
	dropBase  uint64
	flushWait []chan struct{}
	readErr   error
	done      chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type rawEvent struct {
	ev     Event
	cookie uint64
}

// New loads the programs and attaches every probe once. It follows nothing
// until Follow or FollowChildren is called.
func New(opts Options) (_ *Tracer, err error) {
	if err := checkCapabilities(); err != nil {
		return nil, err
	}
	if opts.DebugDir == "" {
		opts.DebugDir = DefaultDebugDir
	}
	t := &Tracer{done: make(chan struct{})}
	defer func() {
		if err != nil {
			t.Close() // whatever was attached before the failure
		}
	}()

	sites, missing, err := planUprobes(opts)
	if err != nil {
		return nil, err
	}
	t.sites, t.missing = sites, missing
	for _, st := range sites {
		t.calibrated = t.calibrated || st.checkpoint == calibrationCheckpoint
	}

	spec, err := loadInitprof()
	if err != nil {
		return nil, fmt.Errorf("probes: reading the embedded BPF object: %w", err)
	}
	spec.Maps["events"].MaxEntries = ringSize(opts.RingBytes)
	t.multi = !opts.NoUprobeMulti && features.HaveBPFLinkUprobeMulti() == nil
	if t.multi {
		delete(spec.Programs, "initprof_u")
		delete(spec.Programs, "initprof_ur")
	} else {
		delete(spec.Programs, "initprof_um")
		delete(spec.Programs, "initprof_urm")
	}
	t.faultTP = !opts.NoFaultTracepoint && haveTracepoint("exceptions", "page_fault_user")
	if t.faultTP {
		delete(spec.Programs, "initprof_pfev")
	} else {
		delete(spec.Programs, "initprof_pgflt")
	}
	t.touchTP = !opts.NoTouched && haveTracepoint("filemap", "mm_filemap_add_to_page_cache")
	t.touchFaults = t.touchTP && !opts.NoTouchFaults
	if t.touchFaults && !(haveTracepoint("filemap", "mm_filemap_fault") && haveTracepoint("filemap", "mm_filemap_map_pages")) {
		t.touchFaults = false
		t.missing = append(t.missing, Missing{Checkpoint: "touched_faults", Reason: "this kernel has no filemap:mm_filemap_fault and mm_filemap_map_pages tracepoints (6.11+): touched pages are the page-cache adds only, with no minor faults"})
	}
	if t.touchFaults {
		if err := spec.Variables["touch_faults"].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("probes: enabling the fault-address lookup: %w", err)
		}
	} else {
		delete(spec.Programs, "initprof_pgfil")
		delete(spec.Programs, "initprof_pgmap")
	}
	if !t.touchTP {
		delete(spec.Programs, "initprof_pgadd")
		if !opts.NoTouched {
			t.missing = append(t.missing, Missing{Checkpoint: "touched_pages", Reason: "this kernel has no filemap:mm_filemap_add_to_page_cache tracepoint"})
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, permissionError("loading the BPF programs", err)
	}
	t.coll = coll

	if err := t.attachKernel(); err != nil {
		return nil, err
	}
	if err := t.attachUprobes(); err != nil {
		return nil, err
	}
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		return nil, fmt.Errorf("probes: opening the ring buffer: %w", err)
	}
	t.rd = rd
	go t.readLoop()
	go t.pollLoop()
	return t, nil
}

func ringSize(n int) uint32 {
	if n <= 0 {
		n = 8 << 20
	}
	size := uint32(os.Getpagesize())
	for int(size) < n && size < 1<<30 {
		size <<= 1
	}
	return size
}

// syscallRoles says what each traced syscall is, for the BPF dispatcher: the
// low 32 bits are the event kind, the high 32 bits a sub-code (sysNames).
// Numbers come from x/sys/unix for the architecture being built.
var syscallRoles = []struct {
	name string
	nr   int
	role uint64
}{
	{"execve", unix.SYS_EXECVE, uint64(KindExec)},
	{"bind", unix.SYS_BIND, uint64(KindBind)},
	{"listen", unix.SYS_LISTEN, uint64(KindListen)},
	{"connect", unix.SYS_CONNECT, uint64(KindConnect)},
	{"accept", unix.SYS_ACCEPT, uint64(KindAccept)},
	{"accept4", unix.SYS_ACCEPT4, uint64(KindAccept)},
	{"write", unix.SYS_WRITE, uint64(KindSend) | 0<<32},
	{"sendto", unix.SYS_SENDTO, uint64(KindSend) | 1<<32},
	{"read", unix.SYS_READ, uint64(KindRecv) | 2<<32},
	{"recvfrom", unix.SYS_RECVFROM, uint64(KindRecv) | 3<<32},
	{"sendmsg", unix.SYS_SENDMSG, uint64(KindSend) | 4<<32},
	{"recvmsg", unix.SYS_RECVMSG, uint64(KindRecv) | 5<<32},
	{"writev", unix.SYS_WRITEV, uint64(KindSend) | 6<<32},
	{"readv", unix.SYS_READV, uint64(KindRecv) | 7<<32},
	{"openat", unix.SYS_OPENAT, uint64(KindOpen)},
	{"mmap", unix.SYS_MMAP, uint64(KindMmap)},
}

func (t *Tracer) attachKernel() error {
	for _, tp := range []string{"initprof_fork", "initprof_execd", "initprof_exit", "initprof_swtch"} {
		l, err := link.AttachTracing(link.TracingOptions{Program: t.coll.Programs[tp]})
		if err != nil {
			return permissionError("attaching "+tp, err)
		}
		t.links = append(t.links, l)
	}
	if t.faultTP {
		l, err := link.Tracepoint("exceptions", "page_fault_user", t.coll.Programs["initprof_pgflt"], nil)
		if err != nil {
			return permissionError("attaching exceptions:page_fault_user", err)
		}
		t.links = append(t.links, l)
	} else if err := t.attachFaultEvents(); err != nil {
		t.missing = append(t.missing, Missing{Checkpoint: "page_faults", Reason: err.Error()})
	}
	for _, tp := range []struct {
		on         bool
		name, prog string
	}{
		{t.touchTP, "mm_filemap_add_to_page_cache", "initprof_pgadd"},
		{t.touchFaults, "mm_filemap_fault", "initprof_pgfil"},
		{t.touchFaults, "mm_filemap_map_pages", "initprof_pgmap"},
	} {
		if !tp.on {
			continue
		}
		l, err := link.Tracepoint("filemap", tp.name, t.coll.Programs[tp.prog], nil)
		if err != nil {
			return permissionError("attaching filemap:"+tp.name, err)
		}
		t.links = append(t.links, l)
	}
	roles := t.coll.Maps["sysroles"]
	for _, r := range syscallRoles {
		if err := roles.Update(uint32(r.nr), r.role, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("probes: registering syscall %s (%d): %w", r.name, r.nr, err)
		}
	}
	for _, tp := range []string{"initprof_sys_i", "initprof_sys_o"} {
		l, err := link.AttachTracing(link.TracingOptions{Program: t.coll.Programs[tp]})
		if err != nil {
			return permissionError("attaching "+tp, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

func haveTracepoint(group, name string) bool {
	for _, root := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(root, "events", group, name)); err == nil {
			return true
		}
	}
	return false
}

// attachFaultEvents opens one software page-fault counter per CPU, system-wide,
// with the counting program attached; faults taken in kernel mode are excluded
// to match page_fault_user.
func (t *Tracer) attachFaultEvents() error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("counting CPUs: %w", err)
	}
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_PAGE_FAULTS,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample:      1,
		Bits:        unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
		Sample_type: 0,
	}
	attached := 0
	for cpu := 0; cpu < ncpu; cpu++ {
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) {
			continue // an offline CPU
		}
		if err != nil {
			return fmt.Errorf("perf_event_open(page faults, cpu %d): %w", cpu, err)
		}
		t.perfFDs = append(t.perfFDs, fd)
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: t.coll.Programs["initprof_pfev"], Attach: ebpf.AttachPerfEvent})
		if err != nil {
			return fmt.Errorf("attaching the page-fault counter to cpu %d: %w", cpu, err)
		}
		t.links = append(t.links, l)
		attached++
	}
	if attached == 0 {
		return errors.New("no online CPU accepted a page-fault perf event")
	}
	return nil
}

// planUprobes resolves every checkpoint to a file offset, and says which ones
// cannot be placed and why.
func planUprobes(opts Options) ([]probeSite, []Missing, error) {
	var sites []probeSite
	var missing []Missing
	cache := map[string]*symbols{}
	load := func(path string) (*symbols, error) {
		if s, ok := cache[path]; ok {
			return s, nil
		}
		if err := checkFile(path); err != nil {
			return nil, fmt.Errorf("probes: %w", err)
		}
		s, err := loadSymbols(path, opts.DebugDir)
		if err != nil {
			return nil, fmt.Errorf("probes: %w", err)
		}
		cache[path] = s
		return s, nil
	}

	if opts.LdSo != "" {
		s, err := load(opts.LdSo)
		if err != nil {
			return nil, nil, err
		}
		if s.entry != 0 {
			sites = append(sites, probeSite{file: s.path, offset: s.entry, checkpoint: CheckpointLdsoStart})
		} else {
			missing = append(missing, Missing{CheckpointLdsoStart, s.path, "its e_entry lies in no PT_LOAD segment"})
		}
		why := ""
		if !s.full {
			why = "ld.so is stripped and has no build-ID debug file"
			if p := s.debugPath(opts.DebugDir); p != "" {
				why += " (" + p + ")"
			}
			why += ": install libc6-dbg (Debian/Ubuntu) or glibc-debuginfo (Fedora/AL2023)"
		}
		for _, c := range []struct {
			sym, cp      string
			ret, linkmap bool
		}{
			{"dl_main", CheckpointDlMain, false, false},
			{"_dl_map_object_deps", CheckpointDepsStart, false, false},
			{"_dl_map_object_deps", CheckpointDepsLoaded, true, false},
			{"_dl_relocate_object", CheckpointRelocate, false, true},
			{"_dl_relocate_object", CheckpointRelocateDone, true, false},
			{"_dl_start_user", CheckpointDlStartUser, false, false},
			{"_dl_init", CheckpointDlInit, false, false},
		} {
			off, ok := s.offsets[c.sym]
			if !ok {
				r := why
				if r == "" {
					r = "symbol " + c.sym + " not found in ld.so's symbol table"
				}
				name := c.cp
				if c.ret {
					name += " (return)"
				}
				missing = append(missing, Missing{name, s.path, r})
				continue
			}
			sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: c.cp, ret: c.ret, linkmap: c.linkmap})
		}
		if !s.full {
			if off, ok := s.offsets["_dl_debug_state"]; ok {
				sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: CheckpointDlDebugState})
			}
		}
	}

	seen := map[string]bool{}
	for _, exe := range opts.Executables {
		if seen[filepath.Clean(exe)] {
			continue // the same binary twice would double every event
		}
		seen[filepath.Clean(exe)] = true
		s, err := load(exe)
		if err != nil {
			return nil, nil, err
		}
		if s.entry != 0 {
			sites = append(sites, probeSite{file: s.path, offset: s.entry, checkpoint: CheckpointEntry})
		} else {
			missing = append(missing, Missing{CheckpointEntry, s.path, "its e_entry lies in no PT_LOAD segment"})
		}
		if off, ok := s.offsets["_init"]; ok {
			sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: CheckpointExeInit})
		}
		found := false
		if off, ok := s.offsets["main"]; ok {
			sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: CheckpointMain})
			found = true
		}
		if s.goMainSite != 0 {
			sites = append(sites, probeSite{file: s.path, offset: s.goMainSite, checkpoint: CheckpointGoMain})
			found = true
		}
		if !found {
			r := "no symbol main or main.main"
			if !s.full {
				r += ": the binary is stripped and has no build-ID debug file"
			}
			missing = append(missing, Missing{CheckpointMain, s.path, r})
		}
	}

	for _, up := range opts.UserProbes {
		files := opts.Executables
		sym := up
		if i := strings.LastIndex(up, ":"); i > 0 {
			files, sym = []string{up[:i]}, up[i+1:]
		}
		if sym == "" {
			return nil, nil, fmt.Errorf("probes: user probe %q: want SYMBOL or FILE:SYMBOL", up)
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("probes: user probe %q names no file and no executable is given", up)
		}
		for _, f := range files {
			s, err := load(f)
			if err != nil {
				return nil, nil, err
			}
			off, ok := s.offsets[sym]
			if !ok {
				return nil, nil, fmt.Errorf("probes: user probe %q: symbol %s not found in %s", up, sym, f)
			}
			sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: UserCheckpointPrefix + sym})
		}
	}
	if opts.Calibration != "" {
		// Optional: a stripped initprof has no symbols, and runs go on
		// with the per-event costs of the development VM.
		if s, err := load(opts.Calibration); err == nil {
			if off, ok := s.offsets[calibProbedSym]; ok {
				sites = append(sites, probeSite{file: s.path, offset: off, checkpoint: calibrationCheckpoint})
			}
			if s.calibClockSite != 0 {
				sites = append(sites, probeSite{file: s.path, offset: s.calibClockSite, checkpoint: calibrationClockCheckpoint})
			}
		}
	}
	return sites, missing, nil
}

func (t *Tracer) attachUprobes() error {
	type group struct {
		offs, cookies []uint64
	}
	byFile := map[string]*[2]group{}
	var order []string
	for i, s := range t.sites {
		g, ok := byFile[s.file]
		if !ok {
			g = &[2]group{}
			byFile[s.file] = g
			order = append(order, s.file)
		}
		cookie := uint64(i)
		if s.linkmap {
			cookie |= cookieLinkMap
		}
		k := 0
		if s.ret {
			k = 1
		}
		g[k].offs = append(g[k].offs, s.offset)
		g[k].cookies = append(g[k].cookies, cookie)
	}
	for _, file := range order {
		ex, err := link.OpenExecutable(file)
		if err != nil {
			return fmt.Errorf("probes: %s: %w", file, err)
		}
		for k, g := range byFile[file] {
			if len(g.offs) == 0 {
				continue
			}
			if t.multi {
				var l link.Link
				opts := &link.UprobeMultiOptions{Addresses: g.offs, Cookies: g.cookies}
				if k == 0 {
					l, err = ex.UprobeMulti(nil, t.coll.Programs["initprof_um"], opts)
				} else {
					l, err = ex.UretprobeMulti(nil, t.coll.Programs["initprof_urm"], opts)
				}
				if err != nil {
					return permissionError("attaching uprobes to "+file, err)
				}
				t.links = append(t.links, l)
				continue
			}
			for i, off := range g.offs {
				var l link.Link
				opts := &link.UprobeOptions{Address: off, Cookie: g.cookies[i]}
				if k == 0 {
					l, err = ex.Uprobe("", t.coll.Programs["initprof_u"], opts)
				} else {
					l, err = ex.Uretprobe("", t.coll.Programs["initprof_ur"], opts)
				}
				if err != nil {
					return permissionError("attaching a uprobe to "+file, err)
				}
				t.links = append(t.links, l)
			}
		}
	}
	return nil
}

// Follow starts a new run that tracks pid and everything it forks from now
// on. Events and drop counts of the previous run are discarded.
func (t *Tracer) Follow(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("probes: Follow: invalid pid %d", pid)
	}
	return t.reset(uint32(pid), 0)
}

// FollowChildren starts a new run that tracks every process parentPID forks
// from now on (and their descendants), but not parentPID itself. It suits a
// profiler that starts the target with os/exec: call it with os.Getpid()
// before cmd.Start, and the child is tracked from its fork, before its execve.
func (t *Tracer) FollowChildren(parentPID int) error {
	if parentPID <= 0 {
		return fmt.Errorf("probes: FollowChildren: invalid pid %d", parentPID)
	}
	return t.reset(0, uint32(parentPID))
}

func (t *Tracer) reset(root, parent uint32) error {
	if err := t.Stop(); err != nil {
		return err
	}
	zero := uint32(0)
	cfg := make([]byte, 8)
	if err := t.flush(); err != nil {
		return err
	}
	t.mu.Lock()
	t.events = nil
	t.dropBase = t.drops()
	t.mu.Unlock()
	if err := t.clearTouched(); err != nil {
		return fmt.Errorf("probes: clearing the touched pages: %w", err)
	}
	if root != 0 {
		if err := t.coll.Maps["tracked"].Update(root, uint64(0), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("probes: tracking pid %d: %w", root, err)
		}
	}
	if parent != 0 {
		cfg[0], cfg[1], cfg[2], cfg[3] = byte(parent), byte(parent>>8), byte(parent>>16), byte(parent>>24)
		if err := t.coll.Maps["config"].Update(zero, cfg, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("probes: setting the parent pid: %w", err)
		}
	}
	return nil
}

// Stop stops following: no new events are recorded, and those collected so
// far stay available to Collect until the next Follow. The probes stay attached.
func (t *Tracer) Stop() error {
	if t.coll == nil {
		return errors.New("probes: tracer is closed")
	}
	if err := t.coll.Maps["config"].Update(uint32(0), make([]byte, 8), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("probes: clearing config: %w", err)
	}
	for _, name := range []string{"tracked", "pending", "offcpu"} {
		if err := clearMap(t.coll.Maps[name]); err != nil {
			return fmt.Errorf("probes: clearing %s: %w", name, err)
		}
	}
	return nil
}

func clearMap(m *ebpf.Map) error {
	var keys []uint32
	var k uint32
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

func (t *Tracer) drops() uint64 {
	var per []uint64
	if err := t.coll.Maps["drops"].Lookup(uint32(0), &per); err != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

func (t *Tracer) readLoop() {
	defer close(t.done)
	var rec ringbuf.Record
	for {
		err := t.rd.ReadInto(&rec)
		switch {
		case err == nil:
			ev, cookie, derr := decode(rec.RawSample)
			if derr != nil {
				continue
			}
			t.mu.Lock()
			t.events = append(t.events, rawEvent{ev, cookie})
			t.mu.Unlock()
		case errors.Is(err, ringbuf.ErrFlushed):
			t.mu.Lock()
			for _, c := range t.flushWait {
				close(c)
			}
			t.flushWait = nil
			t.mu.Unlock()
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		default:
			t.mu.Lock()
			t.readErr = err
			t.mu.Unlock()
			return
		}
	}
}

// pollInterval is how often the reader drains the ring: the BPF side submits
// without waking it (a wakeup costs the traced thread µs per event).
const pollInterval = 10 * time.Millisecond

func (t *Tracer) pollLoop() {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.rd.Flush()
		}
	}
}

// flush waits until every record queued so far has been read.
func (t *Tracer) flush() error {
	c := make(chan struct{})
	t.mu.Lock()
	if t.readErr != nil {
		t.mu.Unlock()
		return fmt.Errorf("probes: reading the ring buffer: %w", t.readErr)
	}
	t.flushWait = append(t.flushWait, c)
	t.mu.Unlock()
	if err := t.rd.Flush(); err != nil {
		return fmt.Errorf("probes: flushing the ring buffer: %w", err)
	}
	select {
	case <-c:
		return nil
	case <-t.done:
		return errors.New("probes: ring buffer reader stopped")
	case <-time.After(5 * time.Second):
		return errors.New("probes: ring buffer flush timed out after 5s")
	}
}

// Collect returns the events of the current run so far, sorted by time, and
// the run's counters. Call it after the target has exited (or reached the
// point of interest); following continues until the next Follow.
// Stats.Dropped > 0 means the timeline has holes: say so.
func (t *Tracer) Collect() ([]Event, Stats, error) {
	return t.collect(true)
}

// collect is Collect; corrected says whether uprobe times get the calibrated
// trap return (Calibrate's own collection must see the raw times).
func (t *Tracer) collect(corrected bool) ([]Event, Stats, error) {
	if t.coll == nil {
		return nil, Stats{}, errors.New("probes: tracer is closed")
	}
	if err := t.flush(); err != nil {
		return nil, Stats{}, err
	}
	t.mu.Lock()
	raw := append([]rawEvent(nil), t.events...)
	base := t.dropBase
	t.mu.Unlock()
	var ret int64
	if corrected {
		ret = t.uprobeReturnNs
	}
	if ret > 0 {
		for i := range raw {
			if k := raw[i].ev.Kind; k == KindUprobe || k == KindUretprobe {
				raw[i].ev.Time += uint64(ret)
			}
		}
	}
	sort.SliceStable(raw, func(i, j int) bool { return raw[i].ev.Time < raw[j].ev.Time })
	out := make([]Event, len(raw))
	type fdKey struct {
		pid uint32
		fd  int
	}
	paths := map[fdKey]string{}
	for i, r := range raw {
		e := r.ev
		switch e.Kind {
		case KindUprobe, KindUretprobe:
			idx := int(uint32(r.cookie))
			if idx < len(t.sites) {
				e.Checkpoint = t.sites[idx].checkpoint
				e.File = t.sites[idx].file
			}
		case KindOpen:
			if e.Ret >= 0 {
				paths[fdKey{e.PID, int(e.Ret)}] = e.Path
			}
		case KindMmap:
			if p, ok := paths[fdKey{e.PID, e.FD}]; ok && filepath.Base(p) == e.Path {
				e.Path = p
			}
		case KindExecDone:
			for k := range paths {
				if k.pid == e.PID {
					delete(paths, k)
				}
			}
		}
		out[i] = e
	}
	return out, Stats{Events: len(out), Dropped: t.drops() - base, Uprobes: len(t.sites), Multi: t.multi, UprobeReturnNs: ret}, nil
}

// Unavailable lists the checkpoints that could not be attached, with the reason.
func (t *Tracer) Unavailable() []Missing { return append([]Missing(nil), t.missing...) }

// Close detaches and unloads everything. It is safe to call more than once.
// Every link is a file descriptor, so even if the process dies without Close
// the kernel removes the probes with it.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		if t.rd != nil {
			errs = append(errs, t.rd.Close())
			<-t.done
		}
		// Links detach one by one; perf-event ones take ~0.1 s each, so close them concurrently.
		var wg sync.WaitGroup
		lerrs := make([]error, len(t.links))
		for i, l := range t.links {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lerrs[i] = l.Close()
			}()
		}
		wg.Wait()
		errs = append(errs, lerrs...)
		t.links = nil
		for _, fd := range t.perfFDs {
			unix.Close(fd)
		}
		t.perfFDs = nil
		if t.coll != nil {
			t.coll.Close()
			t.coll = nil
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// Capabilities (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkCapabilities names the missing capability before the kernel answers
// with a bare EPERM.
func checkCapabilities() error {
	eff, err := effectiveCaps()
	if err != nil {
		return nil // can't tell; let the kernel decide
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var need []string
	if !has(capBPF) {
		need = append(need, "CAP_BPF")
	}
	if !has(capPerfmon) {
		need = append(need, "CAP_PERFMON")
	}
	return fmt.Errorf("%w: loading BPF programs and attaching uprobes needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this process lacks %s: %s",
		ErrPermission, strings.Join(need, " and "), setcapAdvice)
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

// setcapAdvice is the one command that lets a non-root user run initprof:
// CAP_BPF and CAP_PERFMON load and attach everything (tracefs, readable by
// root only, is not needed: without it page faults are counted through perf
// events instead of the exceptions tracepoint).
const setcapAdvice = "run initprof as root, or grant it the capabilities with `sudo setcap cap_bpf,cap_perfmon+ep $(which initprof)`"

// permissionError wraps err; EPERM/EACCES become ErrPermission with advice.
func permissionError(what string, err error) error {
	if errors.Is(err, unix.EACCES) && strings.Contains(err.Error(), "tracing/") {
		return fmt.Errorf("%w: %s: %v: tracefs is readable by root only: reading it needs CAP_DAC_READ_SEARCH: %s", ErrPermission, what, err, setcapAdvice)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: %s: %v: the kernel refused: it needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): %s; a kernel in lockdown=confidentiality mode refuses even root", ErrPermission, what, err, setcapAdvice)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("probes: %s: this kernel lacks a needed feature: %w", what, err)
	}
	return fmt.Errorf("probes: %s: %w", what, err)
}

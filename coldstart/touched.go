package coldstart

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/elfinfo"
	"github.com/initprof/initprof/probes"
	"github.com/initprof/initprof/profile"
	"github.com/initprof/initprof/profile/touched"
)

// What init touched (DESIGN.md, "Alongside the instants, each phase carries
// what it touched"): the probes record each page a sandbox process touched
// first by (dev, ino, index); this file names the files, attributes the
// pages (profile/touched) and checks the probes against mincore(2).

type fileID struct{ dev, ino uint64 }

// touchState is one series' file index and attribution cache.
type touchState struct {
	byID   map[fileID]string // (st_dev, st_ino) → the path inside the sandbox
	host   map[string]string // inside path → host path
	attrib *touched.Attributor
}

// residency is, per host file, which of its pages are in the page cache.
type residency map[string][]bool

// touchedBefore is called after the eviction, before the run: what stayed
// resident is not the run's doing. nil when the probes see no page adds.
func (s *Series) touchedBefore() residency {
	if !s.tr.TouchAvailable() {
		return nil
	}
	return residentPages(s.sb.Files())
}

// touchedAfter attributes the run's touched pages to r's processes and adds
// the mincore cross-check to the run's notes. Errors become notes: what
// init touched is an addition to a run, never a reason to lose it.
func (s *Series) touchedAfter(r *profile.Run, evs []probes.Event, before residency) {
	if before == nil {
		return
	}
	pages, st, err := s.tr.Touched()
	if err != nil {
		r.Notes = append(r.Notes, "what init touched: "+err.Error())
		return
	}
	// mincore first: reading the ELF files for the attribution would bring
	// their headers and symbol tables into the page cache.
	after := residentPages(s.sb.Files())
	ts := s.touchIndex(evs)
	r.TouchedCheck = mincoreCheck(before, after, pages, ts)
	if st.Dropped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("WARNING: what init touched is incomplete: %d page touches did not fit the probes' map", st.Dropped))
	}
	exe := map[int]string{}
	for _, e := range evs {
		if e.Kind == probes.KindExecDone {
			exe[int(e.PID)] = e.Path
		}
	}
	var tp []touched.Page
	for _, p := range pages {
		name, ok := ts.byID[fileID{p.Dev, p.Ino}]
		if !ok {
			name = fmt.Sprintf("(dev %d:%d ino %d)", unix.Major(p.Dev), unix.Minor(p.Dev), p.Ino)
		}
		tp = append(tp, touched.Page{PID: int(p.PID), File: name, Index: p.Index, Time: int64(p.Time), Kind: p.Kind.String(), Faulted: p.Faulted})
	}
	s.pendingInit = map[string]exeInit{}
	for i := range r.Processes {
		pr := &r.Processes[i]
		if pr.Role == profile.RolePlatform {
			continue
		}
		ts.attrib.Process(pr, tp, exe[pr.PID])
		if pr.Role == profile.RoleExtension {
			s.pendingInit[pr.Name] = initPagesOf(pr, tp, exe[pr.PID], ts.host[exe[pr.PID]])
		}
	}
}

// exeInit is what one extension's init (exec → /next) touched of its own
// executable in one run: the raw pages, kept for SymbolTouches (an
// orderfile needs times per page, which the per-phase rows sum away).
type exeInit struct {
	host   string // the executable's host path
	origin int64  // its exec (CLOCK_MONOTONIC ns)
	pages  []touched.Page
}

func initPagesOf(p *profile.Process, pages []touched.Page, exe, host string) exeInit {
	from, ok := p.Checkpoint(profile.CkExec)
	if !ok {
		from, _ = p.Checkpoint(profile.CkExecDone)
	}
	to, ok := p.Checkpoint(profile.CkNext)
	if !ok {
		to = int64(^uint64(0) >> 1) // no /next: everything after exec
	}
	ei := exeInit{host: host, origin: from}
	for _, pg := range pages {
		if pg.PID == p.PID && pg.File == exe && pg.Time >= from && pg.Time < to {
			ei.pages = append(ei.pages, pg)
		}
	}
	return ei
}

// SymbolTouches is, for each timing run so far, when the init (exec →
// /next) of extension ext first touched each symbol of its executable, in
// ns since its exec (touched.SymbolTouches, faulted pages only: what init
// used, not what readahead brought along). It is what an orderfile is made
// of (profile/orderfile.Merge).
//
// symbols names the ELF file to take the symbols from: "" reads the
// executable itself; a stripped extension needs an unstripped build of the
// same code (same layout: Rust's -C strip=none, C without -s), checked by
// its sections.
func (s *Series) SymbolTouches(ext, symbols string) ([][]touched.SymbolTouch, error) {
	if !s.tr.TouchAvailable() {
		return nil, errors.New("the page-touch probes are not attached (the kernel lacks the filemap tracepoints): no first touches to order by")
	}
	var runs [][]touched.SymbolTouch
	layouts := map[string]*elfinfo.Layout{}
	for i, byExt := range s.initPages {
		ei, ok := byExt[ext]
		if !ok {
			return nil, fmt.Errorf("run %d: no extension process named %q (the extension's name in /opt/extensions)", i+1, ext)
		}
		if ei.host == "" {
			return nil, fmt.Errorf("run %d: %s's executable was not seen exec'd", i+1, ext)
		}
		l := layouts[ei.host]
		if l == nil {
			var err error
			if l, err = symbolLayout(ei.host, symbols); err != nil {
				return nil, err
			}
			layouts[ei.host] = l
		}
		runs = append(runs, touched.SymbolTouches(l, ei.pages, ei.origin, true))
	}
	if len(runs) == 0 {
		return nil, errors.New("no cold start has run yet")
	}
	return runs, nil
}

// symbolLayout is the layout whose symbols name exe's pages: exe's own, or
// that of symbols, an unstripped build with the same sections.
func symbolLayout(exe, symbols string) (*elfinfo.Layout, error) {
	l, err := elfinfo.OpenLayout(exe)
	if err != nil {
		return nil, err
	}
	if symbols == "" {
		if l.Stripped {
			return nil, kindErr(BadInput, fmt.Errorf("%s is stripped: it has no symbols to order; give --symbols with an unstripped build of the same code (Rust: the same profile with -C strip=none; C: the build before strip)", exe))
		}
		return l, nil
	}
	sl, err := elfinfo.OpenLayout(symbols)
	if err != nil {
		return nil, kindErr(BadInput, fmt.Errorf("--symbols: %w", err))
	}
	if sl.Stripped {
		return nil, kindErr(BadInput, fmt.Errorf("--symbols %s is stripped too: give a build with its symbol table", symbols))
	}
	for _, name := range []string{".text", ".rodata", ".data.rel.ro"} {
		a, b := section(l, name), section(sl, name)
		if a != b {
			return nil, kindErr(BadInput, fmt.Errorf("--symbols %s is not a build of the profiled code: its %s is at %#x+%#x, the extension's at %#x+%#x", symbols, name, b.Off, b.Size, a.Off, a.Size))
		}
	}
	return sl, nil
}

func section(l *elfinfo.Layout, name string) elfinfo.Range {
	for _, s := range l.Sections {
		if s.Name == name {
			return s
		}
	}
	return elfinfo.Range{}
}

// touchIndex maps the sandbox's files to their (dev, ino): every file the
// sandbox is made of (Files), and every path the run's processes opened,
// mapped or exec'd, as they named it. With a FUSE storage layer the inodes
// are the mount's, which stat through the host path returns.
func (s *Series) touchIndex(evs []probes.Event) *touchState {
	if s.touch == nil {
		s.touch = &touchState{byID: map[fileID]string{}, host: map[string]string{}}
		s.touch.attrib = &touched.Attributor{Lookup: s.touchedFile}
		if self := s.e.cfg.Self; self != "" {
			// bind-mounted, so not under the bundle's rootfs
			s.touch.add(container.InitprofPath, self, false)
		}
	}
	// The names the processes used first, then the bundle's.
	seen := map[string]bool{}
	for _, e := range evs {
		if (e.Kind == probes.KindOpen || e.Kind == probes.KindMmap || e.Kind == probes.KindExecDone) && strings.HasPrefix(e.Path, "/") && !seen[e.Path] {
			seen[e.Path] = true
			s.touch.add(e.Path, s.sb.HostPath(e.Path), e.Kind == probes.KindExecDone)
		}
	}
	// Every run: a storage layer may give the files new inodes per run.
	root := s.sb.HostPath("/")
	for _, hp := range s.sb.Files() {
		inside := hp
		if rel, ok := strings.CutPrefix(hp, strings.TrimSuffix(root, "/")+"/"); ok && root != "/" {
			inside = "/" + rel
		}
		s.touch.add(inside, hp, false)
	}
	return s.touch
}

// add names the file at host inside. The first name of an inode wins,
// except that an exec'd path (exe) always does: a process's executable is
// recognised by the name it was exec'd by.
func (t *touchState) add(inside, host string, exe bool) {
	t.host[inside] = host
	var st syscall.Stat_t
	if host == "" || syscall.Stat(host, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	id := fileID{st.Dev, st.Ino}
	if _, ok := t.byID[id]; !ok || exe {
		t.byID[id] = inside
	}
}

// touchedFile is the Attributor's lookup: size and ELF layout of a file.
func (s *Series) touchedFile(inside string) *touched.File {
	hp := s.touch.host[inside]
	if inside == container.InitprofPath && s.e.cfg.Self != "" {
		hp = s.e.cfg.Self // bind-mounted: the rootfs holds only its mount point
	}
	if hp == "" {
		return nil
	}
	f := &touched.File{Path: inside}
	if fi, err := os.Stat(hp); err == nil {
		f.Size = fi.Size()
	}
	if l, err := elfinfo.OpenLayout(hp); err == nil {
		f.Layout = l
	}
	return f
}

// mincoreCheck compares the pages the probes say the sandbox's processes
// added to the page cache (major and readahead touches) with the pages
// mincore says became resident in the sandbox's files during the run.
func mincoreCheck(before, after residency, pages []probes.PageTouch, ts *touchState) *profile.TouchedCheck {
	hostOf := map[fileID]string{}
	for id, inside := range ts.byID {
		hostOf[id] = ts.host[inside]
	}
	added := map[string]map[uint64]bool{}
	for _, p := range pages {
		if p.Kind == probes.TouchMinor {
			continue
		}
		hp := hostOf[fileID{p.Dev, p.Ino}]
		if _, ok := after[hp]; !ok {
			continue // not one of the sandbox's files
		}
		if added[hp] == nil {
			added[hp] = map[uint64]bool{}
		}
		added[hp][p.Index] = true
	}
	c := &profile.TouchedCheck{}
	for hp, now := range after {
		was := before[hp]
		for i, res := range now {
			if !res || (i < len(was) && was[i]) {
				continue
			}
			c.Resident++
			if added[hp][uint64(i)] {
				c.Both++
			}
		}
		for i := range added[hp] {
			if int(i) < len(was) && was[i] {
				continue // was resident before the run: re-added after a reclaim, or counted in Before
			}
			c.Added++
		}
	}
	if u := c.Resident + c.Added - c.Both; u > 0 {
		c.Agreement = float64(c.Both) / float64(u)
	}
	return c
}

// residentPages runs mincore over each file; unreadable files are left out.
func residentPages(files []string) residency {
	out := residency{}
	for _, p := range files {
		if v, err := mincoreFile(p); err == nil {
			out[p] = v
		}
	}
	return out
}

func mincoreFile(p string) ([]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(m)
	vec := make([]byte, (fi.Size()+profile.PageSize-1)/profile.PageSize)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return nil, e
	}
	out := make([]bool, len(vec))
	for i, b := range vec {
		out[i] = b&1 != 0
	}
	return out, nil
}

// touchedNote sums the mincore cross-check over the runs ("" when no run
// had one).
func touchedNote(runs []profile.Run) string {
	var res, added, both int64
	var agree []float64
	n := 0
	for _, r := range runs {
		if c := r.TouchedCheck; c != nil {
			if c.Resident+c.Added == 0 {
				continue // nothing to compare
			}
			n++
			res, added, both = res+c.Resident, added+c.Added, both+c.Both
			agree = append(agree, c.Agreement)
		}
	}
	if n == 0 {
		for _, r := range runs {
			if r.TouchedCheck != nil {
				return "what init touched: mincore(2) found nothing newly resident and the probes saw no page-cache adds: the sandbox's files are not read through the page cache here (in memory: a tmpfs or the microVM's initramfs), so every touch is a minor fault"
			}
		}
		return ""
	}
	sort.Float64s(agree)
	return fmt.Sprintf("what init touched, checked with mincore(2) after each cold run: over %d runs %d pages of the sandbox's files became resident, the probes saw %d added by the sandbox's processes, %d in both (agreement %.1f %% median, %.1f %% worst run); the rest are pages read by processes outside the sandbox or reclaimed during the run",
		n, res, added, both, 100*agree[len(agree)/2], 100*agree[0])
}

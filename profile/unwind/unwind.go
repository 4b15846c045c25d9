// Package unwind turns a raw CPU sample (registers plus a copy of the user
// stack) into the chain of return addresses, offline, after the process may
// have exited.
//
// Most binaries that matter (Rust release builds, Debian's and Amazon Linux's C
// libraries) have no frame pointers, so the kernel's frame-pointer walk stops
// after a couple of frames and returns junk past the leaf. This package reads
// the call-frame information (.eh_frame, .debug_frame, and the build-id debug
// file's .debug_frame) that every such binary carries for C++ exceptions and
// debuggers, and replays it on the copied stack: CFA = reg+offset, saved return
// address and registers at CFA+offset, DWARF expressions where delve's
// evaluator supports them. The CFI parser is delve's pkg/dwarf/frame (a
// maintained reader used by a Go debugger), not a home-grown one. Frames
// without CFI fall back to frame pointers (Go keeps them on amd64 and arm64).
package unwind

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/op"

	"github.com/initprof/initprof/profile/sample"
)

// MaxFrames bounds an unwind; deeper stacks are cut (and not Complete).
const MaxFrames = 256

// Result is the user stack of one sample.
type Result struct {
	// PCs are leaf first: PCs[0] is the sampled instruction pointer, the rest are
	// return addresses (symbolize them at PC-1 to land on the call).
	PCs []uint64
	// Method is "cfi" when every step used CFI, "cfi+fp" when some used frame
	// pointers, "fp" when none used CFI.
	Method string
	// End says why the walk stopped: "root" (the CFI marks the return address
	// undefined, as _start and thread entry points do, or it reached 0), or the
	// reason it could not go on.
	End string
}

// Unwinder caches the CFI of every ELF file it has seen, keyed by build-id
// (or path and inode), so a profile with thousands of samples parses each
// file once. It is safe for concurrent use.
type Unwinder struct {
	// PathFor maps a mapping to the file to read on this host (e.g. inside a
	// container's rootfs). Nil means Mapping.Path as is.
	PathFor func(sample.Mapping) string
	// DebugDir is where build-id debug files live; "" means /usr/lib/debug.
	DebugDir string

	mu    sync.Mutex
	files map[string]*cfiFile
}

// New returns an Unwinder reading files from the host's file system.
func New() *Unwinder { return &Unwinder{} }

type segment struct{ off, vaddr, filesz uint64 }

type cfiFile struct {
	path  string // host path, for reading code bytes (call-site checks)
	fdes  frame.FrameDescriptionEntries
	segs  []segment
	order binary.ByteOrder
	err   error
}

// toELF converts a runtime address inside m into the file's virtual address
// space (the space CFI and symbols are written in).
func toELF(m *sample.Mapping, segs []segment, pc uint64) uint64 {
	foff := pc - m.Start + m.Offset
	for _, s := range segs {
		if foff >= s.off && foff < s.off+s.filesz {
			return foff - s.off + s.vaddr
		}
	}
	return foff
}

func fileKey(m *sample.Mapping, path string) string {
	if m.BuildID != "" {
		return "b:" + m.BuildID
	}
	return fmt.Sprintf("p:%s:%d", path, m.Inode)
}

func (u *Unwinder) file(m *sample.Mapping) *cfiFile {
	path := m.Path
	if u.PathFor != nil {
		path = u.PathFor(*m)
	}
	key := fileKey(m, path)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.files == nil {
		u.files = map[string]*cfiFile{}
	}
	if f, ok := u.files[key]; ok {
		return f
	}
	f := loadCFI(path, u.DebugDir)
	u.files[key] = f
	return f
}

// loadCFI reads .eh_frame and .debug_frame of path and of its build-id debug
// file, merged. Errors are kept in the entry: a file without CFI still
// unwinds by frame pointers.
func loadCFI(path, debugDir string) (cf *cfiFile) {
	cf = &cfiFile{path: path, order: binary.LittleEndian}
	defer func() {
		if r := recover(); r != nil { // a malformed section must not kill the profile
			cf.err = fmt.Errorf("%s: malformed CFI: %v", path, r)
		}
	}()
	f, err := elf.Open(path)
	if err != nil {
		cf.err = fmt.Errorf("open %s for unwinding: %w", path, err)
		return cf
	}
	defer f.Close()
	cf.order = f.ByteOrder
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			cf.segs = append(cf.segs, segment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz})
		}
	}
	ptr := 8
	if f.Class == elf.ELFCLASS32 {
		ptr = 4
	}
	var all frame.FrameDescriptionEntries
	add := func(ef *elf.File, name string) {
		s := ef.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return
		}
		data, err := s.Data()
		if err != nil || len(data) == 0 {
			return
		}
		ehAddr := uint64(0)
		if name == ".eh_frame" {
			ehAddr = s.Addr
			if ehAddr == 0 { // delve tells the formats apart by a nonzero address
				return
			}
		}
		fdes, err := parseFrames(data, ef.ByteOrder, ptr, ehAddr)
		if err != nil {
			return
		}
		all = all.Append(fdes)
	}
	add(f, ".eh_frame")
	add(f, ".debug_frame")
	if id := BuildID(f); id != "" && len(id) > 2 {
		dir := debugDir
		if dir == "" {
			dir = "/usr/lib/debug"
		}
		if df, err := elf.Open(filepath.Join(dir, ".build-id", id[:2], id[2:]+".debug")); err == nil {
			add(df, ".debug_frame")
			df.Close()
		}
	}
	cf.fdes = all
	if len(all) == 0 {
		cf.err = fmt.Errorf("%s has no .eh_frame or .debug_frame", path)
	}
	return cf
}

func parseFrames(data []byte, order binary.ByteOrder, ptr int, ehAddr uint64) (fdes frame.FrameDescriptionEntries, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed CFI: %v", r)
		}
	}()
	return frame.Parse(data, order, 0, ptr, ehAddr)
}

// BuildID returns the hex GNU build-id of f, or "".
func BuildID(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		if id := buildIDFromNotes(data, f.ByteOrder); id != "" {
			return id
		}
	}
	if s := f.Section(".note.gnu.build-id"); s != nil {
		if data, err := s.Data(); err == nil {
			return buildIDFromNotes(data, f.ByteOrder)
		}
	}
	return ""
}

func buildIDFromNotes(data []byte, bo binary.ByteOrder) string {
	for len(data) >= 12 {
		nsz, dsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		name := align4(uint64(nsz))
		desc := align4(uint64(dsz))
		if uint64(len(data)) < 12+name+desc {
			return ""
		}
		n := data[12 : 12+nsz]
		if typ == 3 && bytes.Equal(bytes.TrimRight(n, "\x00"), []byte("GNU")) {
			return fmt.Sprintf("%x", data[12+name:12+name+uint64(dsz)])
		}
		data = data[12+name+desc:]
	}
	return ""
}

func align4(v uint64) uint64 { return (v + 3) &^ 3 }

// arch describes the DWARF register numbering of one architecture.
type arch struct {
	pc, sp, fp, lr, ra uint64 // ra: the CFI return-address column
	nregs              int
}

var archs = map[sample.Arch]arch{
	sample.AMD64: {pc: 16, sp: 7, fp: 6, lr: ^uint64(0), ra: 16, nregs: 17},
	sample.ARM64: {pc: 32, sp: 31, fp: 29, lr: 30, ra: 30, nregs: 33},
}

// regset is the unwinder's view of the registers of one frame.
type regset struct {
	val   [33]uint64
	valid [33]bool
}

func (r *regset) get(i uint64) (uint64, bool) {
	if i >= uint64(len(r.val)) || !r.valid[i] {
		return 0, false
	}
	return r.val[i], true
}

func (r *regset) set(i, v uint64) {
	if i < uint64(len(r.val)) {
		r.val[i], r.valid[i] = v, true
	}
}

func (r *regset) clear(i uint64) {
	if i < uint64(len(r.val)) {
		r.valid[i] = false
	}
}

// stackMem reads the copied user stack.
type stackMem struct {
	base uint64
	data []byte
}

var errOutside = errors.New("address outside the stack copy")

func (s stackMem) u64(addr uint64) (uint64, error) {
	if addr < s.base || addr+8 > s.base+uint64(len(s.data)) || addr+8 < addr {
		return 0, errOutside
	}
	return binary.LittleEndian.Uint64(s.data[addr-s.base:]), nil
}

func (s stackMem) read(buf []byte, addr uint64) (int, error) {
	if addr < s.base || addr+uint64(len(buf)) > s.base+uint64(len(s.data)) {
		return 0, errOutside
	}
	return copy(buf, s.data[addr-s.base:]), nil
}

// Unwind walks the user stack of s through maps (the process's executable
// mappings). It never fails: the Result says how far it got and why it
// stopped.
func (u *Unwinder) Unwind(s sample.RawSample, maps []sample.Mapping) Result {
	a, ok := archs[s.Arch]
	if s.Arch == "" {
		a, ok = archs[sample.AMD64], true
	}
	if !ok {
		return Result{End: fmt.Sprintf("unsupported architecture %q", s.Arch)}
	}
	mem := stackMem{base: s.Regs.SP, data: s.Stack}
	var rs regset
	rs.set(a.sp, s.Regs.SP)
	rs.set(a.fp, s.Regs.BP)
	if a.lr != ^uint64(0) {
		rs.set(a.lr, s.Regs.LR)
	}
	pc := s.Regs.IP
	res := Result{}
	usedCFI, usedFP, usedScan := false, false, false
	for len(res.PCs) < MaxFrames {
		if pc == 0 {
			res.End = "root"
			break
		}
		lookup := pc
		if len(res.PCs) > 0 {
			lookup = pc - 1 // a return address points after the call
		}
		m := sample.Find(maps, lookup)
		if m == nil {
			if len(res.PCs) == 0 {
				res.PCs = append(res.PCs, pc) // the sampled pc is a fact, even if unmapped
			}
			// A return address outside every mapping is junk: leave it out
			// of the stack rather than draw a bogus frame.
			res.End = fmt.Sprintf("pc %#x is outside every mapping", pc)
			break
		}
		res.PCs = append(res.PCs, pc)
		cf := u.file(m)
		sp, _ := rs.get(a.sp)
		var next uint64
		var end string
		var err error
		done := false
		if cf.err == nil {
			next, done, err = stepCFI(cf, a, &rs, mem, toELF(m, cf.segs, lookup))
			if err == nil {
				usedCFI = true
			}
		} else {
			err = cf.err
		}
		if err != nil {
			// No CFI for this pc: try frame pointers, as Go code and
			// -fno-omit-frame-pointer code allow.
			var ferr error
			next, ferr = stepFP(a, &rs, mem, len(res.PCs) == 1)
			if ok, known := u.callSite(a, maps, next); ferr == nil && next != 0 && known && !ok {
				ferr = fmt.Errorf("frame pointer leads to %#x, not after a call", next)
			}
			if ferr != nil {
				// Code without CFI nor frame pointers (crti's _init, hand-written
				// assembly): look for a return address on the stack.
				var serr error
				next, serr = u.stepScan(a, &rs, mem, maps)
				if serr != nil {
					end = fmt.Sprintf("no CFI (%v), no frame pointer (%v), no return address on the stack (%v)", err, ferr, serr)
				} else {
					usedScan = true
				}
			} else {
				usedFP = true
			}
		}
		if end != "" {
			res.End = end
			break
		}
		if done {
			res.End = "root"
			break
		}
		nsp, _ := rs.get(a.sp)
		if nsp < sp || (nsp == sp && next == pc) {
			res.End = "stack pointer did not move up"
			break
		}
		pc = next
	}
	if res.End == "" {
		res.End = "too many frames"
	}
	var parts []string
	for _, m := range []struct {
		used bool
		name string
	}{{usedCFI, "cfi"}, {usedFP, "fp"}, {usedScan, "scan"}} {
		if m.used {
			parts = append(parts, m.name)
		}
	}
	res.Method = strings.Join(parts, "+")
	return res
}

// stepCFI unwinds one frame with the CFI row for pc (an ELF address). It
// returns the caller's pc, or done when the CFI says this is the outermost
// frame (return address undefined).
func stepCFI(cf *cfiFile, a arch, rs *regset, mem stackMem, pc uint64) (next uint64, done bool, err error) {
	fde, err := cf.fdes.FDEForPC(pc)
	if err != nil {
		return 0, false, err
	}
	ctx, err := establish(fde, pc)
	if err != nil {
		return 0, false, err
	}
	var cfa uint64
	switch ctx.CFA.Rule {
	case frame.RuleCFA:
		v, ok := rs.get(ctx.CFA.Reg)
		if !ok {
			return 0, false, fmt.Errorf("CFA register %d unknown", ctx.CFA.Reg)
		}
		cfa = uint64(int64(v) + ctx.CFA.Offset)
	case frame.RuleExpression, frame.RuleValExpression:
		v, err := evalExpr(ctx.CFA.Expression, a, rs, mem, 0)
		if err != nil {
			return 0, false, fmt.Errorf("CFA expression: %w", err)
		}
		cfa = v
	default:
		return 0, false, fmt.Errorf("unsupported CFA rule %d", ctx.CFA.Rule)
	}
	raCol := ctx.RetAddrReg
	if r, ok := ctx.Regs[raCol]; ok && r.Rule == frame.RuleUndefined {
		return 0, true, nil
	}
	old := *rs
	for reg, rule := range ctx.Regs {
		switch rule.Rule {
		case frame.RuleUndefined:
			rs.clear(reg)
		case frame.RuleSameVal:
		case frame.RuleOffset:
			v, err := mem.u64(uint64(int64(cfa) + rule.Offset))
			if err != nil {
				if reg == raCol {
					return 0, false, fmt.Errorf("return address: %w", err)
				}
				rs.clear(reg)
				continue
			}
			rs.set(reg, v)
		case frame.RuleValOffset:
			rs.set(reg, uint64(int64(cfa)+rule.Offset))
		case frame.RuleRegister:
			if v, ok := old.get(rule.Reg); ok {
				rs.set(reg, v)
			} else {
				rs.clear(reg)
			}
		case frame.RuleExpression:
			addr, err := evalExpr(rule.Expression, a, &old, mem, cfa)
			if err == nil {
				var v uint64
				v, err = mem.u64(addr)
				if err == nil {
					rs.set(reg, v)
					continue
				}
			}
			if reg == raCol {
				return 0, false, fmt.Errorf("return address expression: %w", err)
			}
			rs.clear(reg)
		case frame.RuleValExpression:
			v, err := evalExpr(rule.Expression, a, &old, mem, cfa)
			if err != nil {
				rs.clear(reg)
				continue
			}
			rs.set(reg, v)
		default:
			if reg == raCol {
				return 0, false, fmt.Errorf("unsupported rule %d for the return address", rule.Rule)
			}
			rs.clear(reg)
		}
	}
	ra, ok := rs.get(raCol)
	if !ok {
		return 0, false, errors.New("return address unknown")
	}
	rs.set(a.sp, cfa)
	if a.lr != ^uint64(0) && raCol == a.lr {
		// arm64: LR now holds the caller's pc; the caller's own LR is unknown
		// unless its CFI restores it.
		rs.clear(a.lr)
	}
	if ra == 0 {
		return 0, true, nil
	}
	return ra, false, nil
}

func establish(fde *frame.FrameDescriptionEntry, pc uint64) (ctx *frame.FrameContext, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed CFI program: %v", r)
		}
	}()
	return fde.EstablishFrame(pc)
}

// evalExpr runs a DWARF expression (PLT entries and signal frames use them)
// with delve's evaluator; unsupported operations end the unwind cleanly.
func evalExpr(expr []byte, a arch, rs *regset, mem stackMem, cfa uint64) (v uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("DWARF expression: %v", r)
		}
	}()
	regs := make([]*op.DwarfRegister, a.nregs)
	for i := range regs {
		if val, ok := rs.get(uint64(i)); ok {
			regs[i] = op.DwarfRegisterFromUint64(val)
		}
	}
	lr := a.lr
	if lr == ^uint64(0) {
		lr = 0
	}
	dr := op.NewDwarfRegisters(0, regs, binary.LittleEndian, a.pc, a.sp, a.fp, lr)
	dr.CFA = int64(cfa)
	addr, pieces, err := op.ExecuteStackProgram(*dr, expr, 8, mem.read)
	if err != nil {
		return 0, err
	}
	if len(pieces) > 0 {
		return 0, errors.New("DWARF expression yields pieces")
	}
	return uint64(addr), nil
}

// stepFP unwinds one frame by frame pointers: [fp] is the caller's fp and
// [fp+8] the return address on both amd64 and arm64. At the leaf on arm64 the
// return address is still in LR.
func stepFP(a arch, rs *regset, mem stackMem, leaf bool) (uint64, error) {
	fp, ok := rs.get(a.fp)
	if !ok || fp == 0 {
		return 0, errors.New("frame pointer unknown")
	}
	sp, _ := rs.get(a.sp)
	if fp < sp {
		return 0, errors.New("frame pointer below the stack pointer")
	}
	ra, err := mem.u64(fp + 8)
	if err != nil {
		return 0, err
	}
	nfp, err := mem.u64(fp)
	if err != nil {
		return 0, err
	}
	if nfp != 0 && nfp <= fp {
		return 0, errors.New("frame pointer chain goes down")
	}
	rs.set(a.fp, nfp)
	rs.set(a.sp, fp+16)
	if a.lr != ^uint64(0) {
		rs.clear(a.lr)
	}
	return ra, nil
}

// scanWords bounds the stack scan: frames without CFI are small (crti's
// _init adjusts SP by 8, assembly leaf functions by a few words).
const scanWords = 16

// stepScan finds the nearest word above SP that is a plausible return
// address: inside an executable mapping, right after a call instruction, with
// CFI for the caller (so the walk can go on by CFI). This is breakpad's "stack
// scanning", used only for frames that have neither CFI nor a frame pointer.
func (u *Unwinder) stepScan(a arch, rs *regset, mem stackMem, maps []sample.Mapping) (uint64, error) {
	sp, ok := rs.get(a.sp)
	if !ok {
		return 0, errors.New("stack pointer unknown")
	}
	if a.lr != ^uint64(0) {
		// arm64 leaf functions keep the return address in LR.
		if lr, ok := rs.get(a.lr); ok && u.isReturnAddress(a, maps, lr) {
			rs.clear(a.lr)
			return lr, nil
		}
	}
	for i := uint64(0); i < scanWords; i++ {
		addr := sp + 8*i
		v, err := mem.u64(addr)
		if err != nil {
			return 0, err
		}
		if u.isReturnAddress(a, maps, v) {
			if m := sample.Find(maps, v-1); m != nil {
				if cf := u.file(m); cf.err == nil {
					if _, err := cf.fdes.FDEForPC(toELF(m, cf.segs, v-1)); err != nil {
						continue
					}
				}
			}
			rs.set(a.sp, addr+8)
			if a.lr != ^uint64(0) {
				rs.clear(a.lr)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("none in the %d words above SP", scanWords)
}

// isReturnAddress says whether ra certainly follows a call instruction.
func (u *Unwinder) isReturnAddress(a arch, maps []sample.Mapping, ra uint64) bool {
	ok, known := u.callSite(a, maps, ra)
	return ok && known
}

// callSite says whether ra follows a call instruction in the file mapped at
// ra (read from the file: the process may be gone); known is false when the
// code cannot be read (no mapping, a pseudo-file, a file not on this host).
func (u *Unwinder) callSite(a arch, maps []sample.Mapping, ra uint64) (ok, known bool) {
	if ra < 8 {
		return false, true
	}
	m := sample.Find(maps, ra-1)
	if m == nil {
		return false, true
	}
	if m.Path == "" || strings.HasPrefix(m.Path, "[") {
		return false, false
	}
	cf := u.file(m)
	foff := ra - m.Start + m.Offset
	if foff < 8 {
		return false, true
	}
	code := make([]byte, 8)
	f, err := os.Open(cf.path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	if _, err := f.ReadAt(code, int64(foff-8)); err != nil {
		return false, false
	}
	return isCall(a, code), true
}

// isCall says whether the 8 bytes before a return address end with a call.
func isCall(a arch, code []byte) bool {
	if a.lr != ^uint64(0) { // arm64: BL imm26 or BLR Xn just before ra
		insn := binary.LittleEndian.Uint32(code[4:])
		return insn&0xfc000000 == 0x94000000 || insn&0xfffffc1f == 0xd63f0000
	}
	// amd64: code[8-k] is the byte k before ra.
	b := func(k int) byte { return code[8-k] }
	isCallModrm := func(modrm byte) bool { return modrm&0x38 == 0x10 }
	switch {
	case b(5) == 0xe8: // call rel32
		return true
	case b(6) == 0xff && b(5) == 0x15: // call *disp32(%rip)
		return true
	case b(2) == 0xff && isCallModrm(b(1)) && b(1)&0xc0 == 0xc0: // call *%reg
		return true
	case b(3) == 0xff && isCallModrm(b(2)) && b(2)&0xc0 == 0x40: // call *disp8(%reg)
		return true
	case b(6) == 0xff && isCallModrm(b(5)) && b(5)&0xc0 == 0x80: // call *disp32(%reg)
		return true
	case b(3) == 0xff && isCallModrm(b(2)) && b(2)&0xc7 == 0x04: // call *(%reg,%reg,s)
		return true
	case b(4) == 0xff && isCallModrm(b(3)) && b(3)&0xc7 == 0x44: // call *disp8(sib)
		return true
	case b(7) == 0xff && isCallModrm(b(6)) && b(6)&0xc7 == 0x84: // call *disp32(sib)
		return true
	}
	return false
}

package lazyfs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FSType is the mount's type as /proc/self/mountinfo shows it; stale
// cleanup finds leftover mounts by it.
const FSType = "fuse.initprof-lazyfs"

// fsNamePrefix starts the mount's source ("initprof-lazyfs:owner=PID"): the
// owner is the profiler that spawned the server.
const fsNamePrefix = "initprof-lazyfs:owner="

// cacheTimeout is the entry and attribute timeout: the tree does not change
// while it is served, so the kernel never needs to ask again.
const cacheTimeout = time.Hour

// ServeOptions configures one server.
type ServeOptions struct {
	Backing string // the directory served
	Mount   string // where it appears
	Model   Model
	// ReadAhead is the kernel's readahead for the mount (bytes); 0 means
	// DefaultReadAhead, Lambda's guest's ext4 default.
	ReadAhead int
	// Owner is the pid of the profiler that spawned the server, recorded in
	// the mount's source so that stale cleanup can tell whose it is.
	Owner int
	// Debug logs every FUSE request to stderr (slow: never for timing runs).
	Debug bool
}

func (o *ServeOptions) readAhead() int {
	if o.ReadAhead <= 0 {
		return DefaultReadAhead
	}
	return o.ReadAhead
}

// server is the mounted file system and its accounts.
type server struct {
	opts   ServeOptions
	ledger *ledger
	fuse   *fuse.Server
	// readAhead is the mount's effective readahead, read back from sysfs.
	readAhead int
	slept     atomic.Int64 // ns blocked in modelled fetches (own, or waiting for another read's)
	// awake holds the PM QoS request that keeps idle CPUs polling (nil:
	// refused, awakeErr says why).
	awake    *os.File
	awakeErr error
	opsMu    sync.Mutex
	ops      map[string]OpStats // requests and ns in handlers (modelled sleeps included) by FUSE operation, since the last reset
}

// lazyNode is a loopback node whose reads are charged by the ledger and
// whose opens keep the page cache (eviction between cold starts is the
// caller's, through posix_fadvise on the mount's files).
type lazyNode struct {
	fs.LoopbackNode
	srv *server
	rel atomic.Pointer[string]
}

var (
	_ fs.NodeOpener = (*lazyNode)(nil)
	_ fs.NodeReader = (*lazyNode)(nil)
)

func (n *lazyNode) path() string {
	if p := n.rel.Load(); p != nil {
		return *p
	}
	p := "/" + n.Path(nil)
	n.rel.Store(&p)
	return p
}

// Open opens the backing file read-only ourselves (a pread per FUSE read, no
// splice machinery) and asks the kernel to keep its page cache across opens.
// Writes go to the loopback as usual.
func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&(syscall.O_TRUNC|syscall.O_CREAT) != 0 {
		return n.LoopbackNode.Open(ctx, flags)
	}
	fd, err := syscall.Open(filepath.Join(n.RootData.Path, n.path()), syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return &roFile{fd: fd}, fuse.FOPEN_KEEP_CACHE, 0
}

// Read charges the chunks the read covers, then reads.
func (n *lazyNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var tid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		tid = c.Pid // the reading thread, in our (the host's) pid namespace
	}
	_, blocked := n.srv.ledger.chargeFor(tid, n.path(), off, int64(len(dest)))
	n.srv.slept.Add(int64(blocked))
	if r, ok := f.(*roFile); ok {
		k, err := syscall.Pread(r.fd, dest, off)
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	if r, ok := f.(fs.FileReader); ok {
		return r.Read(ctx, dest, off)
	}
	return nil, syscall.EBADF
}

// roFile is a read-only handle on a backing file.
type roFile struct{ fd int }

var (
	_ fs.FileReleaser  = (*roFile)(nil)
	_ fs.FileGetattrer = (*roFile)(nil)
	_ fs.FileLseeker   = (*roFile)(nil)
)

func (f *roFile) Release(ctx context.Context) syscall.Errno {
	return fs.ToErrno(syscall.Close(f.fd))
}

func (f *roFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (f *roFile) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(f.fd, int64(off), int(whence))
	return uint64(n), fs.ToErrno(err)
}

// timedFS counts every request and the time spent answering it.
type timedFS struct {
	fuse.RawFileSystem
	srv *server
}

func (t *timedFS) done(op string, t0 time.Time) {
	d := int64(time.Since(t0))
	t.srv.opsMu.Lock()
	if t.srv.ops == nil {
		t.srv.ops = map[string]OpStats{}
	}
	o := t.srv.ops[op]
	o.Count++
	o.ServiceNs += d
	t.srv.ops[op] = o
	t.srv.opsMu.Unlock()
}

func (t *timedFS) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	defer t.done("Lookup", time.Now())
	return t.RawFileSystem.Lookup(c, h, name, out)
}
func (t *timedFS) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	defer t.done("GetAttr", time.Now())
	return t.RawFileSystem.GetAttr(c, in, out)
}
func (t *timedFS) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer t.done("Open", time.Now())
	return t.RawFileSystem.Open(c, in, out)
}
func (t *timedFS) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	defer t.done("Read", time.Now())
	return t.RawFileSystem.Read(c, in, buf)
}
func (t *timedFS) Release(c <-chan struct{}, in *fuse.ReleaseIn) {
	defer t.done("Release", time.Now())
	t.RawFileSystem.Release(c, in)
}
func (t *timedFS) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	defer t.done("Readlink", time.Now())
	return t.RawFileSystem.Readlink(c, h)
}
func (t *timedFS) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	defer t.done("GetXAttr", time.Now())
	return t.RawFileSystem.GetXAttr(c, h, attr, dest)
}
func (t *timedFS) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	defer t.done("Access", time.Now())
	return t.RawFileSystem.Access(c, in)
}
func (t *timedFS) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	defer t.done("Statx", time.Now())
	return t.RawFileSystem.Statx(c, in, out)
}
func (t *timedFS) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer t.done("OpenDir", time.Now())
	return t.RawFileSystem.OpenDir(c, in, out)
}
func (t *timedFS) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	defer t.done("ReadDirPlus", time.Now())
	return t.RawFileSystem.ReadDirPlus(c, in, out)
}
func (t *timedFS) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	defer t.done("ReadDir", time.Now())
	return t.RawFileSystem.ReadDir(c, in, out)
}

// ErrNoFUSE is wrapped by mount errors that mean this machine cannot serve
// FUSE at all (no /dev/fuse, or mount(2) refused).
var ErrNoFUSE = errors.New("FUSE unavailable")

// Check reports whether this machine can mount a FUSE file system here:
// /dev/fuse must exist and open, and the caller must be root.
func Check() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: /dev/fuse: %v (load the fuse module, or use --storage local)", ErrNoFUSE, err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mounting needs root (there is no fusermount path): run as root or use --storage local", ErrNoFUSE)
	}
	return nil
}

// mount mounts the backing tree and starts serving it.
func mount(o ServeOptions) (*server, error) {
	if err := o.Model.Validate(); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	s := &server{opts: o, ledger: newLedger(o.Model)}
	var st syscall.Stat_t
	if err := syscall.Stat(o.Backing, &st); err != nil {
		return nil, fmt.Errorf("backing dir %s: %v", o.Backing, err)
	}
	lr := &fs.LoopbackRoot{Path: o.Backing, Dev: uint64(st.Dev)}
	lr.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &lazyNode{LoopbackNode: fs.LoopbackNode{RootData: r}, srv: s}
	}
	root := lr.NewNode(lr, nil, "", &st)
	lr.RootNode = root
	timeout := cacheTimeout
	fo := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		MountOptions: fuse.MountOptions{
			AllowOther:   true, // the container's processes are not the mounter
			DirectMount:  true, // no fusermount binary is needed (or present)
			FsName:       fsNamePrefix + strconv.Itoa(o.Owner),
			Name:         strings.TrimPrefix(FSType, "fuse."),
			MaxReadAhead: o.readAhead(),
			Debug:        o.Debug,
			// Extended attributes would be one more round trip per file
			// for nothing: the tree has none that matter to a loader.
			DisableXAttrs:        true,
			IgnoreSecurityLabels: true,
			MaxBackground:        64,
			// The loader resolves /lib64 -> usr/lib64 and friends on every
			// open; without this each is a round trip (44 per cold start of
			// a Rust function), none of which Lambda's ext4 would pay.
			EnableSymlinkCaching: true,
		},
	}
	raw := fs.NewNodeFS(root, fo)
	fsrv, err := fuse.NewServer(&timedFS{RawFileSystem: raw, srv: s}, o.Mount, &fo.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("%w: mounting %s over %s: %v (use --storage local to run without the storage model)", ErrNoFUSE, o.Backing, o.Mount, err)
	}
	go fsrv.Serve()
	if err := fsrv.WaitMount(); err != nil {
		detach(o.Mount)
		return nil, fmt.Errorf("%w: mount %s did not come up: %v (use --storage local)", ErrNoFUSE, o.Mount, err)
	}
	s.fuse = fsrv
	if err := setReadAhead(o.Mount, o.readAhead()); err != nil {
		s.unmount()
		return nil, err
	}
	s.readAhead = readAheadOf(o.Mount)
	s.awake, s.awakeErr = holdCPUsAwake()
	return s, nil
}

// holdCPUsAwake asks the kernel's PM QoS for zero CPU wake-up latency
// (/dev/cpu_dma_latency = 0, as tuned's latency-performance profile does)
// for as long as the server runs: idle CPUs then poll instead of halting.
//
// Why: every FUSE request is a round trip between the reading thread and this
// server, and on a virtual machine a halted vCPU takes tens of µs to wake.
// On this kind of machine (a Firecracker guest) that made the layer itself
// cost 11–14 ms per cold start at zero fetch latency, against 4 ms with the
// hold (go and rust functions, medians of 14). On Lambda the chunk fetch is
// served outside the guest, so the round trip is this model's artifact, not
// Lambda's cost. The kernel drops the request when the file closes, so a
// killed server leaves nothing behind.
func holdCPUsAwake() (*os.File, error) {
	f, err := os.OpenFile("/dev/cpu_dma_latency", os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	var zero [4]byte // an s32 of 0 µs
	if _, err := f.Write(zero[:]); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// setReadAhead sets the mount's readahead through its backing device info.
// FUSE's INIT reply can only lower the kernel's default (128 KiB), never
// raise it: /sys/class/bdi/MAJ:MIN/read_ahead_kb can do both.
func setReadAhead(mnt string, bytes int) error {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	want := strconv.Itoa(bytes >> 10)
	if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) == want {
		return nil
	}
	if err := os.WriteFile(p, []byte(want), 0); err != nil {
		return fmt.Errorf("setting the readahead of %s to %s KiB (%s): %v", mnt, want, p, err)
	}
	if cur, err := os.ReadFile(p); err != nil || strings.TrimSpace(string(cur)) != want {
		return fmt.Errorf("readahead of %s: wrote %s KiB to %s, reads back %q", mnt, want, p, strings.TrimSpace(string(cur)))
	}
	return nil
}

// readAheadOf reads the mount's effective readahead in bytes (0: unknown).
func readAheadOf(mnt string) int {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return 0
	}
	kb, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return kb << 10
}

// detach lazily unmounts mnt: it leaves the namespace at once, and the
// kernel drops it when its last user goes.
func detach(mnt string) error {
	err := unix.Unmount(mnt, unix.MNT_DETACH)
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil // not mounted
	}
	return err
}

// unmount stops serving: lazy unmount, then wait briefly for the serve loop.
func (s *server) unmount() error {
	if s.awake != nil {
		s.awake.Close()
		s.awake = nil
	}
	err := detach(s.opts.Mount)
	done := make(chan struct{})
	go func() { s.fuse.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		// Files still open keep the connection; exiting closes /dev/fuse,
		// which aborts it.
	}
	return err
}

func (s *server) stats() Stats {
	st := s.ledger.stats()
	st.ReadAhead = s.readAhead
	st.CPUsAwake = s.awake != nil
	if s.awakeErr != nil {
		st.CPUsAwakeErr = s.awakeErr.Error()
	}
	s.opsMu.Lock()
	if len(s.ops) > 0 {
		st.Ops = make(map[string]OpStats, len(s.ops))
		for k, v := range s.ops {
			if k == "Read" {
				v.ServiceNs -= s.slept.Load() // the layer's own time only
			}
			st.Ops[k] = v
			st.Requests += v.Count
			st.ServiceNs += v.ServiceNs
		}
	}
	s.opsMu.Unlock()
	return st
}

func (s *server) reset(seed uint64) {
	s.ledger.reset(seed)
	s.slept.Store(0)
	s.opsMu.Lock()
	s.ops = nil
	s.opsMu.Unlock()
}

// Serve mounts o.Backing at o.Mount and answers the control protocol on
// in/out until "quit", EOF on in (the parent died), or SIGTERM/SIGINT/SIGHUP;
// it always unmounts before returning.
//
// The protocol is one command per line, one reply line each:
//
//	ready {"mount":...}              (sent once, when the mount is up)
//	reset [SEED]   -> ok SEED        new cold start: forget fetched chunks
//	stats          -> stats {json}   Stats since the last reset
//	quit           -> ok             unmount and exit
//
// An error reply is "error MESSAGE".
func Serve(o ServeOptions, in io.Reader, out io.Writer) error {
	s, err := mount(o)
	if err != nil {
		return err
	}
	defer s.unmount()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	w := bufio.NewWriter(out)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	hello, _ := json.Marshal(map[string]any{"mount": o.Mount, "backing": o.Backing, "pid": os.Getpid(), "readahead": o.readAhead()})
	reply("ready %s", hello)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-sig:
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil // parent gone: unmount
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "reset":
				seed := s.ledger.seed() + 1
				if len(f) > 1 {
					v, err := strconv.ParseUint(f[1], 10, 64)
					if err != nil {
						reply("error reset: bad seed %q", f[1])
						continue
					}
					seed = v
				}
				s.reset(seed)
				reply("ok %d", seed)
			case "stats":
				b, _ := json.Marshal(s.stats())
				reply("stats %s", b)
			case "quit":
				err := s.unmount()
				if err != nil {
					reply("error unmount: %v", err)
				} else {
					reply("ok")
				}
				return err
			default:
				reply("error unknown command %q (reset, stats, quit)", f[0])
			}
		}
	}
}

package probes

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Kind says what an Event records. The values are shared with bpf/initprof.bpf.c.
type Kind uint16

const (
	KindFork      Kind = 1  // a tracked process forked a child (Parent, Child)
	KindExec      Kind = 2  // sys_enter_execve (Path = filename as passed)
	KindExecDone  Kind = 3  // sched_process_exec: the new image is in place (Path)
	KindExit      Kind = 4  // the process (thread group leader) exited (ExitCode, Signal)
	KindBind      Kind = 5  // bind returned (FD, Port, Ret); Time is sys_exit, Start sys_enter
	KindListen    Kind = 6  // listen returned (FD, Ret)
	KindConnect   Kind = 7  // connect returned (FD, Port, Ret)
	KindAccept    Kind = 8  // accept/accept4 returned (FD = listener, Ret = new fd)
	KindSend      Kind = 9  // write/sendto/sendmsg on a socket (FD, Len, Ret, Data = first bytes)
	KindRecv      Kind = 10 // read/recvfrom/recvmsg on a socket returned ≥ 0 (Data = first bytes read)
	KindOpen      Kind = 11 // openat returned (Path, Ret = fd or -errno)
	KindMmap      Kind = 12 // mmap of a file returned (FD, Prot, Len, Path, Ret = address)
	KindUprobe    Kind = 13 // a checkpoint uprobe fired (Checkpoint, Object for relocations)
	KindUretprobe Kind = 14 // a checkpoint's function returned (Checkpoint)
	KindOffCPU    Kind = 15 // the thread was off CPU from Start to Time (Runnable says why)
	KindExecFail  Kind = 16 // execve failed (Ret = -errno)
)

var kindNames = map[Kind]string{
	KindFork: "fork", KindExec: "exec", KindExecDone: "exec_done", KindExit: "exit",
	KindBind: "bind", KindListen: "listen", KindConnect: "connect", KindAccept: "accept",
	KindSend: "send", KindRecv: "recv", KindOpen: "openat", KindMmap: "mmap",
	KindUprobe: "uprobe", KindUretprobe: "uretprobe", KindOffCPU: "offcpu", KindExecFail: "exec_fail",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint16(k))
}

// Event is one thing the probes saw. Times are CLOCK_MONOTONIC nanoseconds
// (bpf_ktime_get_ns), the clock the targets and the platform print.
type Event struct {
	Time  uint64 // when it happened; for syscalls, the return
	Start uint64 // syscall entry, or when an off-CPU interval began; 0 if none
	Kind  Kind
	PID   uint32 // thread group id (the process)
	TID   uint32 // thread id
	// Faults is the process's user page-fault count when the event was emitted:
	// the difference between two events is the faults taken in between.
	Faults uint64
	// MajFaults and ReadBytes are the process's major page faults and the bytes
	// it caused to be read from storage (block reads it submitted: faults,
	// readahead and read(2) alike, /proc/PID/io's read_bytes) when the event
	// was emitted, summed over its threads. Like Faults, differences between
	// events split them per phase. Another thread's latest reads may not be in
	// yet (they are folded in at its next fault, event, switch-in or exit).
	MajFaults uint64
	ReadBytes uint64

	Checkpoint string // uprobes: the checkpoint name (see the Checkpoint* constants)
	File       string // uprobes: the host path of the file the probe is in
	Object     string // _dl_relocate_object: the object's l_name ("" for the executable)
	Path       string // exec filename, openat path, mmap'd file (full path when its openat was seen)
	Syscall    string // send/recv: write, sendto, sendmsg, read, recvfrom, recvmsg
	Data       []byte // send/recv: the first bytes of the payload (at most 128)

	FD       int
	Port     int    // bind, connect: the port (host order); listen: the backlog
	Family   int    // bind, connect: the address family
	Ret      int64  // the syscall's return value
	Len      uint64 // send/recv: bytes asked for; mmap: length
	Prot     int    // mmap: PROT_* bits
	Parent   uint32 // fork
	Child    uint32 // fork
	ExitCode int    // exit: the exit status
	Signal   int    // exit: the terminating signal, 0 if none
	Runnable bool   // offcpu: preempted while runnable (true) or blocked (false)
	Arg      uint64 // uprobe: the first argument; uretprobe: the return value
}

// PROT_EXEC as mmap takes it.
const protExec = 0x4

// Exec reports whether an mmap event mapped code.
func (e *Event) Exec() bool { return e.Kind == KindMmap && e.Prot&protExec != 0 }

// String is one human-readable line, used by `initprof trace` and test failures.
func (e *Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d %s", e.PID, e.TID, e.Kind)
	switch e.Kind {
	case KindFork:
		fmt.Fprintf(&b, " parent=%d child=%d", e.Parent, e.Child)
	case KindExec, KindExecDone:
		fmt.Fprintf(&b, " %s", e.Path)
	case KindExecFail:
		fmt.Fprintf(&b, " ret=%d", e.Ret)
	case KindExit:
		fmt.Fprintf(&b, " code=%d signal=%d", e.ExitCode, e.Signal)
	case KindBind, KindConnect:
		fmt.Fprintf(&b, " fd=%d port=%d ret=%d", e.FD, e.Port, e.Ret)
	case KindListen, KindAccept:
		fmt.Fprintf(&b, " fd=%d ret=%d", e.FD, e.Ret)
	case KindSend, KindRecv:
		fmt.Fprintf(&b, " %s fd=%d ret=%d %q", e.Syscall, e.FD, e.Ret, firstLine(e.Data))
	case KindOpen:
		fmt.Fprintf(&b, " %s ret=%d", e.Path, e.Ret)
	case KindMmap:
		fmt.Fprintf(&b, " %s prot=%#x len=%d", e.Path, e.Prot, e.Len)
	case KindUprobe, KindUretprobe:
		fmt.Fprintf(&b, " %s", e.Checkpoint)
		if e.Object != "" {
			fmt.Fprintf(&b, " %s", e.Object)
		}
	case KindOffCPU:
		state := "blocked"
		if e.Runnable {
			state = "runnable"
		}
		fmt.Fprintf(&b, " %s %.1fµs", state, float64(e.Time-e.Start)/1e3)
	}
	return b.String()
}

// firstLine returns data up to its first CR or LF, for display.
func firstLine(data []byte) string {
	s := string(data)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// hdrSize is sizeof(struct ev_hdr) in the BPF program.
const hdrSize = 96

var sysNames = [...]string{"write", "sendto", "read", "recvfrom", "sendmsg", "recvmsg"}

// decode turns one ring-buffer record into an Event. Checkpoint names are
// filled in by the caller from the cookie.
func decode(raw []byte) (Event, uint64, error) {
	if len(raw) < hdrSize {
		return Event{}, 0, fmt.Errorf("probes: short ring buffer record (%d bytes)", len(raw))
	}
	le := binary.LittleEndian // both supported targets (amd64, arm64) are little-endian
	e := Event{
		Time:   le.Uint64(raw[0:]),
		Start:  le.Uint64(raw[8:]),
		Faults: le.Uint64(raw[16:]),
		PID:    le.Uint32(raw[64:]),
		TID:    le.Uint32(raw[68:]),
		Kind:   Kind(le.Uint16(raw[72:])),

		MajFaults: le.Uint64(raw[80:]),
		ReadBytes: le.Uint64(raw[88:]),
	}
	cookie := le.Uint64(raw[24:])
	var a [4]int64
	for i := range a {
		a[i] = int64(le.Uint64(raw[32+8*i:]))
	}
	n := int(le.Uint16(raw[74:]))
	var str []byte
	if len(raw) > hdrSize {
		str = raw[hdrSize:]
		if n > len(str) {
			n = len(str)
		}
		str = str[:n]
	}
	cstr := func() string { // bpf_probe_read_*_str counts the NUL
		return strings.TrimRight(string(str), "\x00")
	}
	switch e.Kind {
	case KindFork:
		e.Parent, e.Child = uint32(a[0]), uint32(a[1])
	case KindExec:
		e.Path = cstr()
	case KindExecDone:
		e.Path = cstr()
	case KindExit:
		e.ExitCode = int(a[0]>>8) & 0xff
		e.Signal = int(a[0] & 0x7f)
	case KindBind, KindConnect:
		e.FD, e.Port, e.Ret, e.Family = int(a[0]), int(a[1]), a[2], int(a[3])
	case KindListen:
		e.FD, e.Port, e.Ret = int(a[0]), int(a[1]), a[2]
	case KindAccept, KindExecFail:
		e.FD, e.Ret = int(a[0]), a[2]
	case KindSend, KindRecv:
		e.FD, e.Len, e.Ret = int(a[0]), uint64(a[1]), a[2]
		if int(a[3]) < len(sysNames) && a[3] >= 0 {
			e.Syscall = sysNames[a[3]]
		}
		e.Data = append([]byte(nil), str...)
	case KindOpen:
		e.FD, e.Ret, e.Path = int(int32(a[0])), a[2], cstr()
	case KindMmap:
		e.FD, e.Prot, e.Ret, e.Len, e.Path = int(a[0]), int(a[1]), a[2], uint64(a[3]), cstr()
	case KindUprobe:
		e.Arg = uint64(a[0])
		e.Object = cstr()
	case KindUretprobe:
		e.Arg = uint64(a[0])
	case KindOffCPU:
		e.Runnable = a[0] != 0
	}
	return e, cookie, nil
}

package extension

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one child process: an extension or the runtime.
type proc struct {
	name   string
	pid    int
	done   chan struct{} // closed once reaped
	status unix.WaitStatus
	rusage unix.Rusage
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process group, so helpers it forked go too.
func (p *proc) signal(sig syscall.Signal) {
	if p.alive() {
		_ = unix.Kill(-p.pid, sig)
		_ = unix.Kill(p.pid, sig)
	}
}

// describe renders the exit status for the timeline.
func (p *proc) describe() map[string]any {
	ws := p.status
	d := map[string]any{"max_rss_kb": p.rusage.Maxrss}
	switch {
	case ws.Exited():
		d["exit_code"] = ws.ExitStatus()
	case ws.Signaled():
		d["signal"] = unix.SignalName(ws.Signal())
	}
	return d
}

// reaper collects exit statuses. As PID 1 (inside the sandbox) it must reap
// every child, orphans included, with wait4(-1), or zombies pile up; outside
// it waits for its own pids only, so it never steals another part of the
// program's children (the test binary runs `go build`, for example).
type reaper struct {
	pid1    bool
	mu      sync.Mutex
	procs   map[int]*proc
	early   map[int]reaped // pid1 mode: reaped before registered
	kick    chan struct{}
	stopped chan struct{}
}

type reaped struct {
	ws unix.WaitStatus
	ru unix.Rusage
}

func newReaper(pid1 bool) *reaper {
	r := &reaper{pid1: pid1, procs: map[int]*proc{}, early: map[int]reaped{}, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	if pid1 {
		go r.loop()
	}
	return r
}

func (r *reaper) stop() {
	select {
	case <-r.stopped:
	default:
		close(r.stopped)
	}
}

func (r *reaper) loop() {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, 0, &ru)
		switch {
		case err == nil && pid > 0:
			r.mu.Lock()
			if p, ok := r.procs[pid]; ok {
				delete(r.procs, pid)
				p.status, p.rusage = ws, ru
				close(p.done)
			} else {
				// Either a child Start has not registered yet, or an orphan
				// reparented to PID 1. Orphans are never claimed; bound them.
				if len(r.early) > 4096 {
					clear(r.early)
				}
				r.early[pid] = reaped{ws, ru}
			}
			r.mu.Unlock()
		case errors.Is(err, unix.EINTR):
		default: // ECHILD: nothing to wait for until the next spawn or orphan
			select {
			case <-r.kick:
			case <-time.After(50 * time.Millisecond):
			case <-r.stopped:
				return
			}
		}
	}
}

// start runs cmd and registers its process with the reaper. The lock is held
// across Start so the PID-1 loop cannot dispatch the pid before it is known.
func (r *reaper) start(name string, cmd *exec.Cmd) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, pid: cmd.Process.Pid, done: make(chan struct{})}
	if r.pid1 {
		if st, ok := r.early[p.pid]; ok {
			delete(r.early, p.pid)
			p.status, p.rusage = st.ws, st.ru
			close(p.done)
		} else {
			r.procs[p.pid] = p
		}
		select {
		case r.kick <- struct{}{}:
		default:
		}
	} else {
		go func() {
			for {
				_, err := unix.Wait4(p.pid, &p.status, 0, &p.rusage)
				if !errors.Is(err, unix.EINTR) {
					break
				}
			}
			close(p.done)
		}()
	}
	// The pid is reaped with wait4 above, not through os.Process; release the
	// handle (and its pidfd) so nothing leaks.
	go func() { <-p.done; _ = cmd.Process.Release() }()
	return p, nil
}

// spawnSpec is what to exec for one process.
type spawnSpec struct {
	name string
	path string
	args []string
	env  []string
	dir  string
	// onLine gets each output line (without the newline) as it arrives.
	onLine func(stream string, line string, monoNs int64)
}

// maxLogLine bounds one log line; longer lines are cut, as Lambda does.
const maxLogLine = 256 << 10

// spawn starts s with stdout and stderr pumped line by line. monoNs is the
// instant the platform decided to exec (before fork).
func (r *reaper) spawn(s spawnSpec, pumps *sync.WaitGroup) (p *proc, monoNs int64, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: stdout pipe: %w", s.name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, 0, fmt.Errorf("%s: stderr pipe: %w", s.name, err)
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = outW, errW
	// Own process group: SIGKILL at the shutdown deadline takes its helpers
	// too. Pdeathsig: if the platform dies, nothing outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	monoNs = MonoNow()
	p, err = r.start(s.name, cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, monoNs, fmt.Errorf("starting %s (%s): %w", s.name, s.path, err)
	}
	for _, st := range []struct {
		name string
		f    *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		pumps.Add(1)
		go func(stream string, f *os.File) {
			defer pumps.Done()
			defer f.Close()
			pumpLines(f, func(line string) {
				if s.onLine != nil {
					s.onLine(stream, line, MonoNow())
				}
			})
		}(st.name, st.f)
	}
	return p, monoNs, nil
}

// pumpLines calls fn for each line of r, cutting lines at maxLogLine.
func pumpLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) >= maxLogLine {
				fn(string(buf[:maxLogLine]))
				buf = buf[:0]
			}
			continue
		}
		if len(buf) > 0 {
			line := buf
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			fn(string(line))
			buf = buf[:0]
		}
		if err != nil {
			return
		}
	}
}

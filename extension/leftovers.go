package extension

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBadFD is wrapped by WaitFD's error when fd is not open.
var ErrBadFD = errors.New("bad file descriptor")

// WaitFD blocks until fd is readable or closed by the other end: the sandbox
// holds it until its probes are attached, so nothing is missed.
func WaitFD(ctx context.Context, fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("%w: --wait-fd %d: not an open file descriptor: %v", ErrBadFD, fd, err)
	}
	unix.CloseOnExec(fd)
	defer unix.Close(fd)
	for ctx.Err() == nil {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("--wait-fd %d: poll: %w", fd, err)
		}
		if n > 0 && pfd[0].Revents != 0 {
			return nil
		}
	}
	return fmt.Errorf("interrupted while waiting on --wait-fd %d: %w", fd, ctx.Err())
}

// KillLeftovers SIGKILLs every descendant of this process still alive once
// the platform has ended (Lambda freezes and discards the whole
// environment), reaps them, and returns how many it killed.
func KillLeftovers() int {
	killed := map[int]bool{}
	for round := 0; round < 50; round++ {
		kids := descendants(os.Getpid())
		if len(kids) == 0 {
			break
		}
		for _, pid := range kids {
			if unix.Kill(pid, unix.SIGKILL) == nil {
				killed[pid] = true
			}
		}
		reapAvailable()
		time.Sleep(time.Millisecond)
	}
	reapAvailable()
	return len(killed)
}

// reapAvailable reaps the children that have exited, without blocking.
func reapAvailable() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// descendants lists the live descendants of pid, from
// /proc/PID/task/TID/children.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				c, err := strconv.Atoi(f)
				if err != nil || c <= 0 {
					continue
				}
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c)); err == nil {
					if i := strings.LastIndexByte(string(st), ')'); i >= 0 && len(st) > i+2 && st[i+2] == 'Z' {
						continue // a zombie: reapAvailable takes it
					}
				}
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// RunStandalone runs p, made from cfg, as a platform on its own
// (Standalone): by hand on the host, or as the process sandbox's platform.
// Outside a container (not PID 1) the orphans of the extensions (a helper
// double-forked out of its process group and session) become our children,
// so that KillLeftovers finds them when the environment is discarded; in a
// container, PID 1 is the subreaper anyway and the runtime kills what is
// left. The summary of the timeline (Summarize) goes to summary; warn
// receives what else is worth saying (processes killed, no summary, a
// timeline that could not be written).
func RunStandalone(ctx context.Context, p *Platform, cfg Config, summary io.Writer, warn func(string)) (*Result, error) {
	standalone := os.Getpid() != 1
	if standalone {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	res, err := p.Run(ctx)
	if standalone {
		if n := KillLeftovers(); n > 0 {
			warn(fmt.Sprintf("killed %d process(es) the extensions or the runtime left running", n))
		}
	}
	if res != nil && len(res.Timeline) > 0 {
		if s, serr := Summarize(res.Timeline); serr == nil {
			s.WriteText(summary)
		} else {
			warn(fmt.Sprintf("no summary: %v", serr))
		}
	}
	if cfg.Timeline != nil && cfg.Timeline.Err() != nil {
		warn(fmt.Sprintf("timeline: %v", cfg.Timeline.Err()))
	}
	return res, err
}

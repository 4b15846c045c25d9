package container

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
)

// lifecycle is the bookkeeping the OCI and process sandboxes share: the work
// directory (removed on Close only when the sandbox made it), the closed flag
// that makes Close idempotent and Create refuse afterwards, and the run
// counter that numbers runs. Both embed it so the two Close and Create paths
// cannot drift apart.
type lifecycle struct {
	work  string
	owned bool // work was made by the sandbox (Config.WorkDir was empty)

	mu     sync.Mutex
	closed bool
	runs   int
	// lazy is the lazyfs server of --storage lambda (nil: local storage). It
	// is closed after the instances and before any directory is removed:
	// removing a live mount's tree would go through it.
	lazy *lazyRoot
}

// unsafeRunID matches what may not appear in a run's directory or container
// name: runtimes accept only [A-Za-z0-9_.-] in container IDs.
var unsafeRunID = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// nextRun claims the next run number n and names the run: runID made safe
// for a file or container name, or n when runID is "". It fails once the
// sandbox is closed.
func (l *lifecycle) nextRun(runID string) (n int, name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, "", fmt.Errorf("sandbox is closed")
	}
	l.runs++
	n = l.runs
	if runID == "" {
		runID = strconv.Itoa(n)
	}
	return n, unsafeRunID.ReplaceAllString(runID, "_"), nil
}

// close is a sandbox's Close: the first call deletes the sandbox's live
// instances (s is the sandbox that embeds l), then removes dirs (those that
// are not "") and the work directory if the sandbox made it; later calls do
// nothing. It returns the first error.
func (l *lifecycle) close(s Sandbox, dirs ...string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := cleanupOwned(s)
	if e := l.lazy.close(); e != nil {
		if err == nil {
			err = e
		}
		// The mount may still be there: never RemoveAll through it.
		return err
	}
	if l.owned {
		dirs = append(dirs, l.work)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if e := os.RemoveAll(d); e != nil && err == nil {
			err = e
		}
	}
	return err
}

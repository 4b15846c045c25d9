package lazyfs

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Leftover is a lazyfs mount found in this mount namespace.
type Leftover struct {
	Mount string
	Owner int // the profiler that spawned its server (0: unknown)
}

// Mounts lists the lazyfs mounts in this thread's mount namespace.
//
// It reads /proc/thread-self, not /proc/self: /proc/self is the thread
// group leader's view, and Go wedges (never reuses) a main thread whose
// locked goroutine exited after it unshared or joined another mount
// namespace (the crun and process sandboxes do so on locked threads), so
// the leader's view may be a private namespace.
func Mounts() []Leftover {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		f, err = os.Open("/proc/self/mountinfo")
	}
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Leftover
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 || qf[0] != FSType {
			continue
		}
		l := Leftover{Mount: unescapeMount(pf[4])}
		if o, ok := strings.CutPrefix(qf[1], fsNamePrefix); ok {
			l.Owner, _ = strconv.Atoi(o)
		}
		out = append(out, l)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CleanupStale lazily unmounts every lazyfs mount whose owner is dead
// (ownerDead decides; an unknown owner is not ours: left alone). It returns the
// mounts removed.
func CleanupStale(ownerDead func(pid int) bool) ([]string, error) {
	var done []string
	var firstErr error
	// Deepest first: a mount under another goes before its parent.
	ms := Mounts()
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Owner == 0 || !ownerDead(m.Owner) {
			continue
		}
		if err := detach(m.Mount); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		done = append(done, m.Mount)
	}
	return done, firstErr
}

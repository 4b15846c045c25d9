package container

import (
	"errors"
	"sync"
)

// live holds every instance created and not yet deleted, so that a CLI can
// clean up on SIGINT/SIGTERM without tracking them itself.
var live = struct {
	sync.Mutex
	m map[Instance]struct{}
}{m: map[Instance]struct{}{}}

func register(in Instance) {
	live.Lock()
	live.m[in] = struct{}{}
	live.Unlock()
}

func unregister(in Instance) {
	live.Lock()
	delete(live.m, in)
	live.Unlock()
}

// Live returns how many instances exist (created, not yet deleted).
func Live() int {
	live.Lock()
	defer live.Unlock()
	return len(live.m)
}

// CleanupAll deletes every live instance of every sandbox in this process, in
// parallel. Call it from a signal handler path (SIGINT, SIGTERM) before
// exiting: it kills the containers, deletes them and removes their cgroups.
func CleanupAll() error {
	return cleanup(func(Instance) bool { return true })
}

// cleanupOwned deletes the live instances of one sandbox (its Close).
func cleanupOwned(s Sandbox) error {
	return cleanup(func(in Instance) bool {
		switch v := in.(type) {
		case *ociInstance:
			return v.sb == s
		case *procInstance:
			return v.sb == s
		}
		return false
	})
}

func cleanup(match func(Instance) bool) error {
	live.Lock()
	var ins []Instance
	for in := range live.m {
		if match(in) {
			ins = append(ins, in)
		}
	}
	live.Unlock()
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = in.Delete()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

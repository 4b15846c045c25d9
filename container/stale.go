package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// staleRE matches the container IDs Create makes: initprof-<owner pid>-<run>.
var staleRE = regexp.MustCompile(`^initprof-(\d+)-`)

// CleanupStale deletes the containers (and their cgroups) of initprof
// processes that died without cleaning up: a SIGKILL or a crash can't run
// CleanupAll. Containers whose owner is still alive are left alone, so it is
// safe to call at the start of every `initprof run`. runtime is as
// Config.OCIRuntime. It returns the IDs it removed.
func CleanupStale(runtime string) ([]string, error) {
	rt, err := FindRuntime(runtime)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := outputRuntime(rt, exec.CommandContext(ctx, rt, "list", "--format", "json"))
	if err != nil {
		return nil, fmt.Errorf("%s list: %v", filepath.Base(rt), err)
	}
	var list []struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
	}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("%s list: %v", filepath.Base(rt), err)
		}
	}
	var removed []string
	var errs []error
	for _, c := range list {
		m := staleRE.FindStringSubmatch(c.ID)
		if m == nil {
			continue
		}
		owner, _ := strconv.Atoi(m[1])
		if owner <= 0 || syscall.Kill(owner, 0) != syscall.ESRCH {
			continue // its owner lives (or we can't tell): not ours to touch
		}
		var buf bytes.Buffer
		cmd := exec.CommandContext(ctx, rt, "delete", "--force", c.ID)
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := runRuntime(rt, cmd)
		b := buf.Bytes()
		if err != nil && !notExist(b) {
			errs = append(errs, fmt.Errorf("%s delete %s: %s", filepath.Base(rt), c.ID, firstLine(b, err)))
			continue
		}
		if c.PID > 0 {
			// If we are a subreaper, the orphaned first process became our child.
			var ws syscall.WaitStatus
			for i := 0; i < 100; i++ {
				if p, err := syscall.Wait4(c.PID, &ws, syscall.WNOHANG, nil); p != 0 || err != nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if err := removeCgroups("/" + c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, c.ID)
	}
	return removed, errors.Join(errs...)
}

package coldstart

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/container/vm"
)

func TestVMOutcome(t *testing.T) {
	withStdout := t.TempDir()
	os.WriteFile(filepath.Join(withStdout, "stdout.txt"), []byte("the guest's report\n"), 0o644)
	empty := t.TempDir()
	res := &vm.Result{Kernel: "6.12"}
	exit := func(code int) error { return &vm.ExitError{Code: code, ConsoleTail: "line 1\nline 2\n"} }
	for _, tc := range []struct {
		name    string
		ctxErr  error
		res     *vm.Result
		err     error
		out     string
		wantRes bool
		stdout  string
		wantErr string // "" for nil
		kind    ErrorKind
	}{
		{"ok", nil, res, nil, withStdout, true, "the guest's report\n", "", Failure},
		{"ok, no stdout.txt", nil, res, nil, empty, true, "", "", Failure},
		{"interrupted before the guest wrote", context.Canceled, nil, errors.New("killed"), withStdout, false, "", "interrupted; the microVM was stopped", Interrupted},
		{"interrupted with partial results", context.Canceled, res, exit(130), withStdout, false, "the guest's report\n", "stopped after writing the partial results to " + withStdout, Interrupted},
		{"boot failure", nil, nil, errors.New("no qemu"), withStdout, false, "", "no qemu", Failure},
		{"bad input in the guest", nil, res, exit(2), withStdout, true, "the guest's report\n", "run in the microVM exited 2:\n  | line 1\n  | line 2", BadInput},
		{"privileges in the guest", nil, res, exit(3), withStdout, true, "the guest's report\n", "exited 3", Privileges},
		{"init failed in the guest", nil, res, exit(4), withStdout, true, "the guest's report\n", "exited 4", InitFailed},
		{"other exit", nil, res, exit(1), withStdout, true, "the guest's report\n", "exited 1", Failure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			got, err := vmOutcome(tc.ctxErr, tc.res, tc.err, "run", tc.out, &stdout)
			if (got != nil) != tc.wantRes {
				t.Errorf("result %v, want one: %v", got, tc.wantRes)
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			case err != nil && KindOf(err) != tc.kind:
				t.Errorf("error %v of kind %v, want %v", err, KindOf(err), tc.kind)
			}
		})
	}
}

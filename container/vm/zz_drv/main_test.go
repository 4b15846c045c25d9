package drv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/initprof/initprof/container/vm"
)

func TestDrv(t *testing.T) {
	res, err := vm.Run(context.Background(), vm.Config{
		Initprof: "/tmp/vmt/initprof-arm64",
		Argv:     []string{"doctor", "--json"},
		Console:  os.Stdout,
		Timeout:  3 * time.Minute,
	}, "/tmp/vmt/out")
	t.Logf("res=%+v err=%v", res, err)
}

package vm

import (
	"context"
	"testing"
	"time"
)

func TestZZDrv(t *testing.T) {
	for i := 0; i < 8; i++ {
		zzNoGz = i%2 == 1
		res, err := Run(context.Background(), Config{
			Initprof: "/tmp/vmt/initprof-arm64",
			Argv:     []string{"doctor", "--json"},
			Stdout:   "/out/doctor.json",
			Timeout:  3 * time.Minute,
		}, "/tmp/vmt/out")
		t.Logf("nogz=%v boot=%v run=%v guestrun=%v total=%v size=%d files=%v err=%v", zzNoGz, res.Boot, res.Run, res.GuestRun, res.Total, res.InitramfsBytes, res.Files, err)
	}
}

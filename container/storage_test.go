package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/internal/testutil"
)

func requireFUSE(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	if err := lazyfs.Check(); err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
}

// TestStorageLambdaColdStarts runs two cold starts of the Go sample
// extension through the OCI sandbox (and the process sandbox) with --storage lambda, and checks each fetched its chunks
// afresh, through the mount, and that nothing stays mounted.
func TestStorageLambdaColdStarts(t *testing.T) {
	requireFUSE(t)
	bin := initprofWithPlatform(t)
	for _, kind := range []string{"oci", "process"} {
		t.Run(kind, func(t *testing.T) {
			m := lazyfs.DefaultModel()
			if err := m.ParseLatencies("worker=200us,az=500us,s3=2ms"); err != nil {
				t.Fatal(err)
			}
			cfg := Config{
				Extensions:   []Extension{{Name: "cext", Path: testutil.Sample(t, "cext")}, {Name: "goext", Path: testutil.Sample(t, "goext")}},
				Initprof:     bin,
				PlatformArgs: []string{"--invokes", "1", "--runtime-init", "5ms"},
				WorkDir:      workTemp(t),
				Storage:      &Storage{Kind: StorageLambda, Model: m},
			}
			var sb Sandbox
			var err error
			if kind == "oci" {
				requireOCI(t, "runc")
				sb, err = NewOCI(cfg)
			} else {
				sb, err = NewProcess(cfg)
			}
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					sb.Close()
				}
			}()
			if !strings.Contains(sb.Kind(), "storage lambda") {
				t.Errorf("Kind %q does not name the storage", sb.Kind())
			}
			ext := sb.HostPath(ExtensionsDir + "/goext")
			if !onLazyfs(ext) {
				t.Errorf("HostPath(/opt/extensions/goext) = %s, not on the lazyfs mount", ext)
			}
			var chunks []int
			for i := 0; i < 2; i++ {
				ev, err := EvictPageCache(sb.Files())
				if err != nil {
					t.Fatal(err)
				}
				if ev.After > 0 && kind == "oci" {
					t.Logf("eviction left %d pages: %s", ev.After, ev)
				}
				in, code := runOnce(t, sb, "lazy")
				if code != 0 {
					t.Fatalf("run %d: exit %d\n%s", i, code, in.Output())
				}
				if err := in.Delete(); err != nil {
					t.Fatal(err)
				}
				st := in.Storage()
				if st == nil {
					t.Fatal("Storage() is nil with storage lambda")
				}
				ch := st.ChunksByFile()["/opt/extensions/goext"]
				if ch == 0 {
					t.Errorf("run %d: no chunk of /opt/extensions/goext fetched: %+v", i, st)
				}
				if st.WaitNs <= 0 || st.Requests == 0 || !strings.Contains(st.Model, "512 KiB") {
					t.Errorf("run %d: stats %+v", i, st)
				}
				if want := uint64(1 + i); st.Seed != want {
					t.Errorf("run %d: seed %d, want %d", i, st.Seed, want)
				}
				chunks = append(chunks, ch)
				if kind == "oci" {
					// The C extension's loader and libc come through the mount.
					libs := 0
					for _, f := range st.Files {
						if f.Class == "base" && f.Chunks > 0 {
							libs++
						}
					}
					if libs == 0 {
						t.Errorf("run %d: no base-image file (loader, libc) fetched: %v", i, st.ChunksByFile())
					}
					t.Logf("run %d: %v", i, st.ChunksByFile())
				}
			}
			t.Logf("%s: goext chunks per cold start %v", kind, chunks)
			mnt := filepath.Dir(filepath.Dir(ext))
			if err := sb.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			closed = true
			for _, l := range lazyfs.Mounts() {
				if strings.HasPrefix(l.Mount, filepath.Dir(mnt)) {
					t.Errorf("%s still mounted after Close", l.Mount)
				}
			}
		})
	}
}

func onLazyfs(p string) bool {
	for _, l := range lazyfs.Mounts() {
		if strings.HasPrefix(p, l.Mount+"/") {
			return true
		}
	}
	return false
}

// A stale mount whose owner is dead is unmounted by CleanupStale.
func TestCleanupStaleLazyfsMount(t *testing.T) {
	requireFUSE(t)
	bin := initprofWithPlatform(t)
	base := workTemp(t)
	backing, mnt := filepath.Join(base, "b"), filepath.Join(base, "m")
	os.MkdirAll(backing, 0o755)
	os.MkdirAll(mnt, 0o755)
	// Owner: a pid that is surely dead (the helper exits at once).
	dead := deadPID(t)
	c, err := lazyfs.Start(bin, lazyfs.ServeOptions{Backing: backing, Mount: mnt, Model: lazyfs.DefaultModel(), Owner: dead})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !onLazyfs(mnt + "/x") {
		t.Fatalf("not mounted: %v", lazyfs.Mounts())
	}
	st, err := CleanupStaleAll("")
	if err != nil {
		t.Logf("cleanup errors (other resources): %v", err)
	}
	found := false
	for _, m := range st.Mounts {
		found = found || m == mnt
	}
	if !found {
		t.Errorf("CleanupStaleAll did not unmount %s (owner %d dead): %s", mnt, dead, st)
	}
	if onLazyfs(mnt + "/x") {
		t.Errorf("%s still mounted", mnt)
	}
}

func deadPID(t testing.TB) int {
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Pid
}

func TestStorageCheck(t *testing.T) {
	for _, tc := range []struct {
		s   *Storage
		err string
	}{
		{nil, ""},
		{&Storage{Kind: "local"}, ""},
		{&Storage{Kind: "lambda", Model: lazyfs.DefaultModel()}, ""},
		{&Storage{Kind: "lambda"}, "no tiers"},
		{&Storage{Kind: "s3fs"}, "want lambda or local"},
	} {
		err := tc.s.check()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("check(%+v) = %v, want %q", tc.s, err, tc.err)
		}
	}
}

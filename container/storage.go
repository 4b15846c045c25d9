package container

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/initprof/initprof/container/lazyfs"
)

// Storage kinds.
const (
	// StorageLocal serves the sandbox's files from this machine's disk, as
	// they are (with the page cache evicted between cold starts).
	StorageLocal = "local"
	// StorageLambda serves them through lazyfs: the first read of each
	// 512 KiB chunk of each file pays a fetch from Lambda's tiered cache.
	StorageLambda = "lambda"
)

// Storage says where the sandbox's files come from. A nil *Storage is
// StorageLocal.
type Storage struct {
	Kind  string // StorageLocal or StorageLambda
	Model lazyfs.Model
	// ReadAhead is the lazyfs mount's readahead in bytes (0: 128 KiB, what
	// Lambda's guest uses on its ext4 block device).
	ReadAhead int
}

// StorageStats is one run's storage account (nil for local storage).
type StorageStats = lazyfs.Stats

// Lambda reports whether s serves through lazyfs.
func (s *Storage) Lambda() bool { return s != nil && s.Kind == StorageLambda }

func (s *Storage) check() error {
	if s == nil {
		return nil
	}
	switch s.Kind {
	case "", StorageLocal:
		return nil
	case StorageLambda:
		return s.Model.Validate()
	}
	return fmt.Errorf("storage %q: want %s or %s", s.Kind, StorageLambda, StorageLocal)
}

// String is how Kind names the storage.
func (s *Storage) String() string {
	if !s.Lambda() {
		return "storage local (this machine's disk)"
	}
	ra := s.ReadAhead
	if ra <= 0 {
		ra = lazyfs.DefaultReadAhead
	}
	return fmt.Sprintf("storage lambda (lazyfs FUSE, %d KiB readahead)", ra>>10)
}

// lazyRoot is a tree served through a lazyfs server in its own process.
type lazyRoot struct {
	client  *lazyfs.Client
	backing string
	mount   string
	seed    uint64
}

// serveLazy mounts backing at mount through a lazyfs server spawned from the
// initprof binary at initprof.
func serveLazy(cfg *Config, backing, mount string) (*lazyRoot, error) {
	if cfg.Initprof == "" {
		return nil, badInput("--storage lambda needs the initprof binary (Config.Initprof) to run its FUSE server: build one with make build, or use --storage local")
	}
	if err := lazyfs.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(mount, 0o755); err != nil {
		return nil, err
	}
	c, err := lazyfs.Start(cfg.Initprof, lazyfs.ServeOptions{
		Backing:   backing,
		Mount:     mount,
		Model:     cfg.Storage.Model,
		ReadAhead: cfg.Storage.ReadAhead,
		Owner:     os.Getpid(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (--storage local runs without the storage model)", err)
	}
	return &lazyRoot{client: c, backing: backing, mount: mount, seed: cfg.Storage.Model.Seed}, nil
}

// through maps a path under the backing tree to the same file through the
// mount: what processes run, what uprobes (keyed by inode) attach to, and
// what eviction drops (the FUSE inode's pages).
func (l *lazyRoot) through(p string) string {
	if rel, err := filepath.Rel(l.backing, p); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.Join(l.mount, rel)
	}
	return p
}

func (l *lazyRoot) throughAll(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = l.through(p)
	}
	return out
}

// reset starts cold start n (1-based): nothing fetched, seed Seed+n-1.
func (l *lazyRoot) reset(n int) error {
	return l.client.Reset(l.seed + uint64(n-1))
}

func (l *lazyRoot) stats() *StorageStats {
	st, err := l.client.Stats()
	if err != nil {
		return &StorageStats{Model: "error: " + err.Error()}
	}
	return &st
}

func (l *lazyRoot) close() error {
	if l == nil {
		return nil
	}
	return l.client.Close()
}

// regularFiles lists the non-empty regular files under dir, sorted.
func regularFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() > 0 {
			out = append(out, p)
		}
		return nil
	})
	return out
}

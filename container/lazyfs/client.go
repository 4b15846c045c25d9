package lazyfs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client drives a server running in its own process (`initprof lazyfs`):
// the FUSE layer's threads, allocations and GC never share the profiler's
// process, and the profiler's never stall it.
type Client struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	mu     sync.Mutex
	mount  string
	stderr *limitedWriter
	closed bool
	exited chan struct{}
}

// Args is the server's command line after the initprof binary: the hidden
// subcommand and its flags.
func Args(o ServeOptions) ([]string, error) {
	b, err := json.Marshal(o.Model)
	if err != nil {
		return nil, err
	}
	args := []string{"lazyfs", "--backing", o.Backing, "--mount", o.Mount, "--model-json", string(b),
		"--readahead", strconv.Itoa(o.readAhead()), "--owner", strconv.Itoa(o.Owner)}
	if o.Debug {
		args = append(args, "--debug")
	}
	return args, nil
}

// Start spawns `initprof lazyfs` (initprof is the path of an initprof
// binary) and waits until the mount is up. The server is in its own process
// group, so a Ctrl-C at the terminal reaches the profiler only, which then
// shuts it down in order; if the profiler dies instead, the server sees EOF
// on its stdin and unmounts.
func Start(initprof string, o ServeOptions) (*Client, error) {
	if o.Owner == 0 {
		o.Owner = os.Getpid()
	}
	if err := o.Model.Validate(); err != nil {
		return nil, err
	}
	args, err := Args(o)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(initprof, args...)
	// No Pdeathsig: it fires when the forking *thread* exits, which Go does
	// at will; EOF on stdin is the parent-death signal, and our end of the
	// pipe is close-on-exec, so no other child holds it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &Client{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), mount: o.Mount, stderr: &limitedWriter{n: 16 << 10}, exited: make(chan struct{})}
	c.lines.Buffer(make([]byte, 64<<10), 64<<20)
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the lazyfs server (%s lazyfs): %v", initprof, err)
	}
	go func() { cmd.Wait(); close(c.exited) }()
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() { l, err := c.readLine(); ch <- res{l, err} }()
	select {
	case r := <-ch:
		if r.err == nil && strings.HasPrefix(r.line, "ready ") {
			return c, nil
		}
		c.kill()
		return nil, fmt.Errorf("lazyfs server did not mount %s: %s", o.Mount, c.why(r.line, r.err))
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, fmt.Errorf("lazyfs server did not mount %s within 30s: %s", o.Mount, c.why("", nil))
	}
}

func (c *Client) why(line string, err error) string {
	<-c.exitedOrTimeout(2 * time.Second)
	msg := strings.TrimSpace(c.stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(line)
	}
	if msg == "" && err != nil {
		msg = err.Error()
	}
	if msg == "" {
		msg = "no message"
	}
	return msg
}

func (c *Client) exitedOrTimeout(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-c.exited:
		case <-time.After(d):
		}
		close(ch)
	}()
	return ch
}

func (c *Client) readLine() (string, error) {
	if c.lines.Scan() {
		return c.lines.Text(), nil
	}
	if err := c.lines.Err(); err != nil {
		return "", err
	}
	return "", io.EOF
}

// call sends one command and returns its reply's payload.
func (c *Client) call(cmd, want string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", fmt.Errorf("lazyfs server for %s is closed", c.mount)
	}
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("lazyfs server for %s: %v (%s)", c.mount, err, c.why("", nil))
	}
	line, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("lazyfs server for %s: no reply to %s: %s", c.mount, cmd, c.why("", err))
	}
	if p, ok := strings.CutPrefix(line, want+" "); ok {
		return p, nil
	}
	if line == want {
		return "", nil
	}
	return "", fmt.Errorf("lazyfs server for %s: %s: %s", c.mount, cmd, line)
}

// Mount is where the tree is served.
func (c *Client) Mount() string { return c.mount }

// PID is the server's process id.
func (c *Client) PID() int { return c.cmd.Process.Pid }

// Reset starts a new cold start: every chunk counts as never fetched again,
// and the draw uses seed.
func (c *Client) Reset(seed uint64) error {
	_, err := c.call("reset "+strconv.FormatUint(seed, 10), "ok")
	return err
}

// Stats returns the account since the last Reset.
func (c *Client) Stats() (Stats, error) {
	p, err := c.call("stats", "stats")
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	if err := json.Unmarshal([]byte(p), &s); err != nil {
		return Stats{}, fmt.Errorf("lazyfs stats: %v", err)
	}
	return s, nil
}

// Close unmounts and waits for the server to exit. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	_, err := c.call("quit", "ok")
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.kill()
	}
	// Whatever the server managed, the mount must not stay.
	if derr := detach(c.mount); derr != nil && err == nil {
		err = fmt.Errorf("unmounting %s: %v", c.mount, derr)
	}
	return err
}

func (c *Client) kill() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
	<-c.exitedOrTimeout(5 * time.Second)
	detach(c.mount)
}

type limitedWriter struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (w *limitedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.n - w.b.Len(); room > 0 {
		if len(p) > room {
			w.b.Write(p[:room])
		} else {
			w.b.Write(p)
		}
	}
	return len(p), nil
}

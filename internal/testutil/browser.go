package testutil

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Page is a file opened in headless Chromium (Debian's chromium package)
// over the DevTools protocol: tests evaluate JavaScript in it and read
// every console error, uncaught exception and browser-log error (a failed
// load, a blocked request), which a screenshot cannot show.
type Page struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
	// LoadTime is from navigation to the load event, scripts included.
	LoadTime time.Duration
}

// OpenPage opens path in headless Chromium and waits for its load event;
// the browser closes at the end of the test. It skips the test when
// chromium is not installed, saying how to install it.
func OpenPage(t testing.TB, path string) *Page {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs headless Chromium on PATH: apt-get install chromium (it is in .ci/deps)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	p := &Page{ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				p.mu.Lock()
				p.errs = append(p.errs, m.String()+" ("+m.URL+")")
				p.mu.Unlock()
			}
		}
	}()
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+abs)); err != nil {
		t.Fatalf("chromium: opening %s: %v", abs, err)
	}
	p.LoadTime = time.Since(start)
	return p
}

// Eval evaluates a JavaScript expression in the page and decodes its
// (JSON) value into out.
func (p *Page) Eval(t testing.TB, js string, out any) {
	t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		t.Fatalf("chromium: evaluating %s: %v", js, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("chromium: %s gave %s: %v", js, raw, err)
	}
}

// Poll waits until a JavaScript expression is truthy.
func (p *Page) Poll(t testing.TB, js string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("chromium: waiting for %s: %v", js, err)
	}
}

// Do runs chromedp actions (clicks, typing) on the page.
func (p *Page) Do(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// Errors are the console errors, exceptions and browser-log errors so far.
func (p *Page) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

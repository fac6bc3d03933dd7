package graphclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// seen is one request as the fake Graph received it.
type seen struct {
	Method   string
	Path     string // r.URL.Path
	RawPath  string // r.URL.EscapedPath()
	RawQuery string
	Header   http.Header
	Body     []byte // decompressed
}

// fakeGraph is a scripted HTTP server on 127.0.0.1 that records what it
// receives. handle answers each request; it defaults to 204.
type fakeGraph struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	handle func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newFakeGraph(t testing.TB) *fakeGraph {
	t.Helper()
	f := &fakeGraph{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err == nil {
				body, _ = io.ReadAll(zr)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
			RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		h := f.handle
		f.mu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGraph) setHandler(h func(w http.ResponseWriter, r *http.Request, body []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle = h
}

func (f *fakeGraph) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func (f *fakeGraph) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = nil
}

// reply returns a handler answering status with a JSON body (if any) and
// extra headers given as name, value pairs.
func reply(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, r *http.Request, _ []byte) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if body != "" && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// testLogger sends client logs to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// newTestClient returns a Client with a static token against base.
func newTestClient(t testing.TB, base string, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: base, Token: "test-token", Logger: testLogger(t)}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// testCtx is a context bounded so that no test can hang.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const testUser = "11111111-2222-3333-4444-555555555555"

// fakeClock is a backoff.Clock with fake timers. In auto mode a timer fires
// as soon as it starts, after moving the clock forward by its duration (no
// real sleeping); otherwise timers fire when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool
	timers []*fakeTimer
	waits  []time.Duration // every timer duration started, in order
}

func newFakeClock(auto bool) *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), auto: auto}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer() backoff.Timer {
	return &fakeTimer{c: c, ch: make(chan time.Time, 1)}
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *fakeClock) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.deadline.After(c.now) {
			select {
			case t.ch <- c.now:
			default:
			}
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

// pending is the number of started, unfired, unstopped timers.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *fakeClock) startedWaits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

type fakeTimer struct {
	c        *fakeClock
	ch       chan time.Time
	deadline time.Time
}

func (t *fakeTimer) Start(d time.Duration) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	if c.auto {
		c.now = c.now.Add(d)
	}
	t.deadline = c.now.Add(d)
	if c.auto {
		t.deadline = c.now
	}
	c.timers = append(c.timers, t)
	c.fireLocked()
}

func (t *fakeTimer) Stop() {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// waitFor polls cond until it holds or the test's time runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// ChildConfig is what a drain child needs to run a worker against the
// parent's JetStream server and emulator.
type ChildConfig struct {
	// NATSURL is the parent's JetStream server.
	NATSURL string
	// GraphURL is the emulator's Graph root (…/v1.0).
	GraphURL string
	// Token is the emulator's bearer token. Pass it to the child in its
	// environment, never on its command line.
	Token string
	// Concurrency and Partitions configure the worker.
	Concurrency, Partitions int
}

// Validate names the first missing or out-of-range field.
func (c ChildConfig) Validate() error {
	switch {
	case c.NATSURL == "":
		return errors.New("the NATS URL is required")
	case c.GraphURL == "":
		return errors.New("the Graph URL is required")
	case c.Token == "":
		return errors.New("the Graph token is required")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("concurrency must be within 1..1024, got %d", c.Concurrency)
	case c.Partitions < 1 || c.Partitions > 1000:
		return fmt.Errorf("partitions must be within 1..1000, got %d", c.Partitions)
	}
	return nil
}

// childMessage is one JSON line of a drain child on its stdout.
type childMessage struct {
	Ready     bool   `json:"ready,omitempty"`     // the worker is consuming
	PeakRSSKB int64  `json:"peakRssKb,omitempty"` // VmHWM at exit
	Error     string `json:"error,omitempty"`
}

// RunDrainChild is the child side of the backlog scenario: it runs a
// worker against cc, writes {"ready":true} on stdout as soon as the worker
// is consuming, and when stdin reaches EOF (the parent saw the backlog
// drained) or ctx ends, stops the worker and writes its peak resident set
// size. It shares no memory with the parent, so the figure is the worker's.
func RunDrainChild(ctx context.Context, cc ChildConfig, stdin io.Reader, stdout io.Writer) error {
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("drain child: %w", err)
	}
	enc := json.NewEncoder(stdout)
	w, err := startWorker(ctx, workerSpec{natsURL: cc.NATSURL, graphURL: cc.GraphURL, token: cc.Token,
		concurrency: cc.Concurrency, partitions: cc.Partitions})
	if err != nil {
		_ = enc.Encode(childMessage{Error: err.Error()})
		return err
	}
	if err := w.waitReady(ctx); err != nil {
		_ = w.stop()
		_ = enc.Encode(childMessage{Error: err.Error()})
		return err
	}
	if err := enc.Encode(childMessage{Ready: true}); err != nil {
		_ = w.stop()
		return fmt.Errorf("drain child: %w", err)
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	stopErr := w.stop()
	peak, err := peakRSSKB()
	msg := childMessage{PeakRSSKB: peak}
	if err != nil {
		msg.Error = err.Error()
	}
	if err := enc.Encode(msg); err != nil {
		return fmt.Errorf("drain child: %w", err)
	}
	return stopErr
}

// peakRSSKB reads this process's peak resident set size (VmHWM) in KiB.
func peakRSSKB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak rss: %w", err)
	}
	return parseVmHWM(b)
}

// parseVmHWM finds "VmHWM:   1234 kB" in a /proc/PID/status file.
func parseVmHWM(status []byte) (int64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("peak rss: unexpected VmHWM line %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("peak rss: unexpected VmHWM line %q", line)
		}
		return n, nil
	}
	return 0, errors.New("peak rss: no VmHWM line in /proc/self/status")
}

// runMemory: drain a large backlog with a worker in a child process, and
// measure the child's peak RSS and the time from its start to ready.
func runMemory(ctx context.Context, cfg Config, r *Report) error {
	e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, sync: cfg.Sync, users: cfg.Users, partitions: cfg.Partitions,
		faults: graphclienttest.Faults{}, log: cfg.Logger})
	if err != nil {
		return err
	}
	defer e.close()
	pubStart := time.Now()
	if err := e.publishBacklog(ctx, "m", 0, cfg.Backlog); err != nil {
		return err
	}
	pubTook := time.Since(pubStart)
	t, err := e.countResults(cfg.Backlog, false)
	if err != nil {
		return err
	}
	defer t.stop()

	var m Memory
	if cfg.ChildCommand != nil {
		m, err = drainInChild(ctx, cfg, e, t)
	} else {
		m, err = drainInProcess(ctx, cfg, e, t)
	}
	if err != nil {
		return err
	}
	if err := settle(ctx, e, t); err != nil {
		return err
	}
	if err := t.checkResults("backlog drain"); err != nil {
		return err
	}
	m.Backlog, m.Drained, m.PublishRate = cfg.Backlog, t.count(), float64(cfg.Backlog)/pubTook.Seconds()
	r.Memory = m
	cfg.Logger.Info("bench memory", "drained", m.Drained, "drain_eps", m.DrainRate, "peak_rss_mb", m.PeakRSSMB, "ready", m.Ready.String())
	return nil
}

func drainInProcess(ctx context.Context, cfg Config, e *env, t *tally) (Memory, error) {
	start := time.Now()
	w, err := startWorker(ctx, workerSpec{natsURL: e.ns.ClientURL(), graphURL: e.graphURL, token: e.token,
		concurrency: cfg.Concurrency, partitions: cfg.Partitions})
	if err != nil {
		return Memory{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = w.waitReady(rctx)
	cancel()
	if err != nil {
		_ = w.stop()
		return Memory{}, err
	}
	ready := time.Now()
	t.wait(ctx, ready.Add(cfg.DrainTimeout))
	arrivals, _, _ := t.snapshot()
	if err := w.stop(); err != nil {
		return Memory{}, err
	}
	peak, err := peakRSSKB()
	if err != nil {
		return Memory{}, err
	}
	return Memory{InProcess: true, Ready: ready.Sub(start), PeakRSSMB: float64(peak) / 1024,
		DrainRate: steadyRate(ready, arrivals, cfg.Backlog), DrainTook: drainTook(ready, arrivals)}, nil
}

func drainInChild(ctx context.Context, cfg Config, e *env, t *tally) (Memory, error) {
	cctx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout+time.Minute)
	defer cancel()
	cmd, err := cfg.ChildCommand(cctx, ChildConfig{NATSURL: e.ns.ClientURL(), GraphURL: e.graphURL, Token: e.token,
		Concurrency: cfg.Concurrency, Partitions: cfg.Partitions})
	if err != nil {
		return Memory{}, fmt.Errorf("drain child: %w", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Memory{}, fmt.Errorf("drain child: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Memory{}, fmt.Errorf("drain child: %w", err)
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Memory{}, fmt.Errorf("drain child: %w", err)
	}
	msgs := make(chan childMessage, 4)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m childMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
	}()
	fail := func(err error) (Memory, error) {
		_ = stdin.Close()
		cancel()
		_ = cmd.Wait()
		return Memory{}, fmt.Errorf("drain child: %w (stderr: %q)", err, stderr.String())
	}

	var ready time.Time
	select {
	case m, ok := <-msgs:
		switch {
		case !ok:
			return fail(errors.New("exited before it was ready"))
		case m.Error != "":
			return fail(errors.New(m.Error))
		case !m.Ready:
			return fail(errors.New("unexpected first message"))
		}
		ready = time.Now()
	case <-time.After(30 * time.Second):
		return fail(errors.New("not ready after 30s"))
	}
	t.wait(ctx, ready.Add(cfg.DrainTimeout))
	arrivals, _, _ := t.snapshot()
	_ = stdin.Close() // tells the child to stop and report
	var final childMessage
	select {
	case m, ok := <-msgs:
		if !ok {
			return fail(errors.New("exited without its report"))
		}
		final = m
	case <-time.After(30 * time.Second):
		return fail(errors.New("no report 30s after it was told to stop"))
	}
	if err := cmd.Wait(); err != nil {
		return Memory{}, fmt.Errorf("drain child: %w (stderr: %q)", err, stderr.String())
	}
	if final.Error != "" {
		return Memory{}, fmt.Errorf("drain child: %s", final.Error)
	}
	return Memory{Ready: ready.Sub(start), PeakRSSMB: float64(final.PeakRSSKB) / 1024,
		DrainRate: steadyRate(ready, arrivals, cfg.Backlog), DrainTook: drainTook(ready, arrivals)}, nil
}

// drainTook is the time from ready to the last result.
func drainTook(ready time.Time, arrivals []time.Time) time.Duration {
	if len(arrivals) == 0 {
		return 0
	}
	return arrivals[len(arrivals)-1].Sub(ready)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

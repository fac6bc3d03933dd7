package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// Defaults of Config.
const (
	DefaultDuration    = 15 * time.Second
	DefaultEvents      = 20_000
	DefaultBacklog     = 100_000
	DefaultLatency     = 50 * time.Millisecond
	DefaultBudget      = 200.0
	DefaultConcurrency = 32
	DefaultPartitions  = 64
	DefaultUsers       = 2_000

	DefaultInteractiveBacklog = 20_000
)

// Config configures Run. Zero values take the documented defaults.
type Config struct {
	// Duration is the length of each timed measurement: the worker and the
	// bare loop at zero latency (each in three turns of a third), the
	// worker and the script at Latency, the throttled worker, the latency
	// run. Defaults to 15 s.
	Duration time.Duration
	// Events is the backlog drained by the zero-latency throughput
	// measurements (worker and bare loop), each cut at Duration. Defaults
	// to 20,000.
	Events int
	// Backlog is the number of events of the memory scenario. Defaults to
	// 100,000.
	Backlog int
	// DrainTimeout bounds the backlog drain; the peak RSS is that of the
	// drain so far. Defaults to 4 × Duration.
	DrainTimeout time.Duration
	// Latency is the emulated Graph latency of the concurrency, throttling
	// and latency scenarios. Defaults to 50 ms.
	Latency time.Duration
	// Budget is the emulator's request budget in the throttling scenario,
	// in requests per second. Defaults to 200.
	Budget float64
	// Concurrency is the worker's Concurrency and the bare loop's number
	// of goroutines. Defaults to 32.
	Concurrency int
	// Partitions is the worker's Partitions, at most 1,000: a nats-server
	// refuses more consumers per stream by default. Defaults to 64.
	Partitions int
	// Users is how many users the emulator is seeded with; events rotate
	// over them. Defaults to 2,000.
	Users int
	// InteractiveBacklog is the number of bulk events stored before the
	// interactive scenario's worker starts; helpdesk events arrive while
	// it drains them. Defaults to 20,000.
	InteractiveBacklog int
	// Sync makes the JetStream server sync every write to disk
	// (SyncAlways, as `authflow dev` does). Defaults to false: the
	// server's default, which syncs every 2 minutes, so that the figures
	// measure authflow rather than the disk.
	Sync bool
	// Dir is where the temporary JetStream stores go. Defaults to
	// os.TempDir().
	Dir string
	// ChildCommand returns the command that runs RunDrainChild with cc in
	// another process, for the backlog scenario (the caller knows its own
	// executable and flags). Nil runs the drain in this process: its RSS
	// then includes the JetStream server and the emulator.
	ChildCommand func(ctx context.Context, cc ChildConfig) (*exec.Cmd, error)
	// Logger receives a line per measurement at info level. Defaults to
	// discarding.
	Logger *slog.Logger
}

// QuickConfig is a smoke run of about ten seconds: every scenario runs,
// too briefly for its figures to mean much.
func QuickConfig() Config {
	return Config{
		Duration:     time.Second,
		Events:       1_500,
		Backlog:      1_000,
		DrainTimeout: 5 * time.Second,
		Concurrency:  16,
		Partitions:   16,
		Users:        500,
		// About two seconds of drain at the quick concurrency.
		InteractiveBacklog: 200,
	}
}

func (c Config) withDefaults() Config {
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Events = cmp.Or(c.Events, DefaultEvents)
	c.Backlog = cmp.Or(c.Backlog, DefaultBacklog)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 4*c.Duration)
	c.Latency = cmp.Or(c.Latency, DefaultLatency)
	c.Budget = cmp.Or(c.Budget, DefaultBudget)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.Users = cmp.Or(c.Users, DefaultUsers)
	c.InteractiveBacklog = cmp.Or(c.InteractiveBacklog, DefaultInteractiveBacklog)
	c.Dir = cmp.Or(c.Dir, os.TempDir())
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports the first setting out of range, naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("Duration must be at least 100ms, got %s", c.Duration)
	case c.Events < 100:
		return fmt.Errorf("Events must be at least 100, got %d", c.Events)
	case c.Backlog < 100:
		return fmt.Errorf("Backlog must be at least 100, got %d", c.Backlog)
	case c.DrainTimeout < time.Second:
		return fmt.Errorf("DrainTimeout must be at least 1s, got %s", c.DrainTimeout)
	case c.Latency < time.Millisecond || c.Latency > 10*time.Second || c.Latency%time.Millisecond != 0:
		return fmt.Errorf("Latency must be whole milliseconds within 1ms..10s, got %s", c.Latency)
	case !(c.Budget >= 1 && c.Budget <= 100_000):
		return fmt.Errorf("Budget must be within 1..100000 requests/s, got %g", c.Budget)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("Concurrency must be within 1..1024, got %d", c.Concurrency)
	case c.Partitions < 1 || c.Partitions > 1000:
		return fmt.Errorf("Partitions must be within 1..1000, got %d", c.Partitions)
	case c.Users < 10 || c.Users > 200_000:
		return fmt.Errorf("Users must be within 10..200000, got %d", c.Users)
	case c.InteractiveBacklog < 100 || c.InteractiveBacklog > 1_000_000:
		return fmt.Errorf("InteractiveBacklog must be within 100..1000000, got %d", c.InteractiveBacklog)
	}
	return nil
}

// Run runs every scenario, one after the other, and reports. It fails
// when a scenario cannot run or when an event does not succeed (figures
// about failing work would mean nothing); a target that is missed is not
// an error, it is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	cfg = cfg.withDefaults()
	r := &Report{Machine: machine(cfg.Sync), Config: cfg}
	steps := []struct {
		name string
		run  func(context.Context, Config, *Report) error
	}{
		{"overhead", runOverhead},
		{"concurrency", runConcurrency},
		{"throttling", runThrottling},
		{"latency", runLatency},
		{"memory", runMemory},
		{"interactive", runInteractive},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := s.run(ctx, cfg, r); err != nil {
			return nil, fmt.Errorf("bench %s: %w", s.name, err)
		}
		cfg.Logger.Info("bench scenario done", "scenario", s.name, "took", time.Since(start).Round(time.Millisecond).String())
	}
	return r, nil
}

// drain is one timed drain of a pre-published backlog.
type drain struct {
	rate     float64 // steady-state events per second
	done     int     // results
	requests int     // Graph requests
	rpe      float64 // requests per result
}

// consumerFunc starts a consumer on an env and returns its stop.
type consumerFunc func(ctx context.Context, e *env) (stop func() error, err error)

// timedDrain publishes n events on a fresh env, starts the consumer and
// measures until n results or for d.
func timedDrain(ctx context.Context, cfg Config, faults graphclienttest.Faults, n int, d time.Duration, start consumerFunc) (drain, error) {
	e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, sync: cfg.Sync, users: cfg.Users, partitions: cfg.Partitions, faults: faults, log: cfg.Logger})
	if err != nil {
		return drain{}, err
	}
	defer e.close()
	if err := e.publishBacklog(ctx, "d", 0, n); err != nil {
		return drain{}, err
	}
	t, err := e.countResults(n, false)
	if err != nil {
		return drain{}, err
	}
	defer t.stop()
	t0 := time.Now()
	stop, err := start(ctx, e)
	if err != nil {
		return drain{}, err
	}
	t.wait(ctx, t0.Add(d))
	arrivals, _, _ := t.snapshot()
	if err := stop(); err != nil {
		return drain{}, err
	}
	if err := settle(ctx, e, t); err != nil {
		return drain{}, err
	}
	if err := t.checkResults("drain"); err != nil {
		return drain{}, err
	}
	dr := drain{rate: steadyRate(t0, arrivals, n), done: t.count()}
	dr.requests, _ = graphRequests(e.emu.Stats())
	if dr.done > 0 {
		dr.rpe = float64(dr.requests) / float64(dr.done)
	}
	return dr, nil
}

// settle waits until the results published before a consumer stopped have
// reached the observer: the consumer's publishes were acknowledged, so a
// round trip on the observer's connection brings every one of them in, and
// then the subscription's queue must empty.
func settle(ctx context.Context, e *env, t *tally) error {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flush observer: %w", err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		n, _, err := t.sub.Pending()
		if err != nil || n == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-fctx.Done():
			return fmt.Errorf("observer still has %d results queued: %w", n, fctx.Err())
		}
	}
}

func workerConsumer(cfg Config) consumerFunc {
	return func(ctx context.Context, e *env) (func() error, error) {
		w, err := startWorker(ctx, workerSpec{natsURL: e.ns.ClientURL(), graphURL: e.graphURL, token: e.token,
			concurrency: cfg.Concurrency, partitions: cfg.Partitions})
		if err != nil {
			return nil, err
		}
		return w.stop, nil
	}
}

func bareConsumerFunc(cfg Config) consumerFunc {
	return func(ctx context.Context, e *env) (func() error, error) {
		stop, _, err := startBare(ctx, e, cfg.Concurrency)
		return stop, err
	}
}

// overheadRounds is how many times the worker and the bare loop take turns
// in the overhead scenario (one when Duration is under 3 s). At zero
// latency both are CPU-bound, so a neighbour's compile shifts them; short
// alternating turns (W B, B W, W B) and medians keep the ratio honest.
const overheadRounds = 3

// runOverhead: Graph at zero latency, the worker against the bare loop.
func runOverhead(ctx context.Context, cfg Config, r *Report) error {
	rounds := overheadRounds
	if cfg.Duration < 3*time.Second {
		rounds = 1
	}
	turn := cfg.Duration / time.Duration(rounds)
	var ws, bs, ratios []float64
	o := Overhead{Rounds: rounds}
	var wReq, bReq int
	for i := range rounds {
		order := []bool{true, false} // worker first
		if i%2 == 1 {
			order = []bool{false, true}
		}
		var w, b drain
		for _, isWorker := range order {
			var err error
			if isWorker {
				if w, err = timedDrain(ctx, cfg, graphclienttest.Faults{}, cfg.Events, turn, workerConsumer(cfg)); err != nil {
					return fmt.Errorf("worker: %w", err)
				}
			} else if b, err = timedDrain(ctx, cfg, graphclienttest.Faults{}, cfg.Events, turn, bareConsumerFunc(cfg)); err != nil {
				return fmt.Errorf("bare loop: %w", err)
			}
		}
		ws, bs, ratios = append(ws, w.rate), append(bs, b.rate), append(ratios, ratio(w.rate, b.rate))
		o.WorkerEvents, o.BareEvents = o.WorkerEvents+w.done, o.BareEvents+b.done
		wReq, bReq = wReq+w.requests, bReq+b.requests
		cfg.Logger.Debug("bench overhead round", "round", i+1, "worker_eps", w.rate, "bare_eps", b.rate)
	}
	o.WorkerRate, o.BareRate, o.Ratio = median(ws), median(bs), median(ratios)
	if o.WorkerEvents > 0 {
		o.WorkerRequestsPerEvent = float64(wReq) / float64(o.WorkerEvents)
	}
	if o.BareEvents > 0 {
		o.BareRequestsPerEvent = float64(bReq) / float64(o.BareEvents)
	}
	r.Overhead = o
	cfg.Logger.Info("bench overhead", "worker_eps", o.WorkerRate, "bare_eps", o.BareRate, "ratio", o.Ratio,
		"worker_rpe", o.WorkerRequestsPerEvent, "bare_rpe", o.BareRequestsPerEvent)
	return nil
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parallelism is how many events the worker can work on at once: one per
// partition (MaxAckPending 1), at most Concurrency.
// parallelism is how many events the worker can have in flight: its
// concurrency, bounded by what the partitions hand out at once.
func (c Config) parallelism() int {
	return min(c.Concurrency, c.Partitions*worker.DefaultPartitionInflight(c.Concurrency, c.Partitions))
}

// runConcurrency: Graph at a fixed latency, the worker against its
// theoretical throughput and against a script.
func runConcurrency(ctx context.Context, cfg Config, r *Report) error {
	faults := graphclienttest.Faults{LatencyMs: int(cfg.Latency / time.Millisecond)}
	// Enough events to keep the worker busy for the whole Duration even
	// at its theoretical best (three requests per event).
	best := float64(cfg.parallelism()) / (3 * cfg.Latency.Seconds())
	n := max(100, int(math.Ceil(best*cfg.Duration.Seconds()*1.25)))
	w, err := timedDrain(ctx, cfg, faults, n, cfg.Duration, workerConsumer(cfg))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	theoretical := 0.0
	if w.rpe > 0 {
		theoretical = float64(cfg.parallelism()) / (w.rpe * cfg.Latency.Seconds())
	}

	e, err := newEnv(ctx, envConfig{users: cfg.Users, faults: faults, noNATS: true, log: cfg.Logger})
	if err != nil {
		return fmt.Errorf("script: %w", err)
	}
	defer e.close()
	t0 := time.Now()
	done, err := runScript(ctx, e.graphURL, e.token, cfg.Users, 0, math.MaxInt, t0.Add(cfg.Duration))
	elapsed := time.Since(t0)
	if err != nil {
		return err
	}
	scriptRate := float64(done) / elapsed.Seconds()
	total, _ := graphRequests(e.emu.Stats())

	r.Concurrency = Concurrency{
		WorkerRate: w.rate, TheoreticalRate: theoretical, Efficiency: ratio(w.rate, theoretical),
		ScriptRate: scriptRate, Speedup: ratio(w.rate, scriptRate), RequestsPerEvent: w.rpe,
		Parallelism: cfg.parallelism(), WorkerEvents: w.done, ScriptEvents: done,
	}
	if done > 0 {
		r.Concurrency.ScriptRequestsPerEvent = float64(total) / float64(done)
	}
	cfg.Logger.Info("bench concurrency", "worker_eps", w.rate, "theoretical_eps", theoretical, "script_eps", scriptRate)
	return nil
}

// runThrottling: the emulator enforces a request budget with 429 and
// Retry-After; how much of it does the worker use, and how politely.
func runThrottling(ctx context.Context, cfg Config, r *Report) error {
	faults := graphclienttest.Faults{LatencyMs: int(cfg.Latency / time.Millisecond), ThrottleRPS: cfg.Budget}
	e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, sync: cfg.Sync, users: cfg.Users, partitions: cfg.Partitions, faults: faults, log: cfg.Logger})
	if err != nil {
		return err
	}
	defer e.close()
	// Half again as many events as the budget allows in Duration.
	n := max(100, int(math.Ceil(cfg.Budget/3*cfg.Duration.Seconds()*1.5)))
	if err := e.publishBacklog(ctx, "t", 0, n); err != nil {
		return err
	}
	t, err := e.countResults(n, false)
	if err != nil {
		return err
	}
	defer t.stop()
	start := time.Now()
	w, err := startWorker(ctx, workerSpec{natsURL: e.ns.ClientURL(), graphURL: e.graphURL, token: e.token,
		concurrency: cfg.Concurrency, partitions: cfg.Partitions})
	if err != nil {
		return err
	}
	// The window leaves out the first fifth: the emulator's bucket starts
	// full (one second's worth) and the throttle has not learnt yet.
	warm := max(cfg.Duration/5, min(time.Second, cfg.Duration/2))
	finished := t.wait(ctx, start.Add(warm))
	s0, c0, t0 := e.emu.Stats(), t.count(), time.Now()
	if !finished {
		t.wait(ctx, start.Add(cfg.Duration))
	}
	s1, c1, t1 := e.emu.Stats(), t.count(), time.Now()
	limit := w.graph.Throttle().Limit()
	if err := w.stop(); err != nil {
		return err
	}
	if err := settle(ctx, e, t); err != nil {
		return err
	}
	if err := t.checkResults("throttled drain"); err != nil {
		return err
	}
	total0, ok0 := graphRequests(s0)
	total1, ok1 := graphRequests(s1)
	window := t1.Sub(t0).Seconds()
	th := Throttling{Budget: cfg.Budget, RetryAfterViolations: e.emu.Stats().RetryAfterViolations, FinalLimit: limit}
	if window > 0 {
		th.SuccessRate = float64(ok1-ok0) / window
		th.Utilisation = th.SuccessRate / cfg.Budget
		th.EventRate = float64(c1-c0) / window
	}
	if total1 > total0 {
		th.Share429 = float64(s1.Throttled-s0.Throttled) / float64(total1-total0)
	}
	r.Throttling = th
	cfg.Logger.Info("bench throttling", "ok_rps", th.SuccessRate, "utilisation", th.Utilisation, "share_429", th.Share429, "violations", th.RetryAfterViolations)
	return nil
}

// runLatency: publish-to-result latency at half the capacity measured in
// the concurrency scenario, an open-loop publisher at a fixed rate.
func runLatency(ctx context.Context, cfg Config, r *Report) error {
	rate := r.Concurrency.WorkerRate / 2
	if rate <= 0 {
		return errors.New("no capacity measured")
	}
	faults := graphclienttest.Faults{LatencyMs: int(cfg.Latency / time.Millisecond)}
	e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, sync: cfg.Sync, users: cfg.Users, partitions: cfg.Partitions, faults: faults, log: cfg.Logger})
	if err != nil {
		return err
	}
	defer e.close()
	n := max(20, int(math.Ceil(rate*cfg.Duration.Seconds())))
	t, err := e.countResults(n, true)
	if err != nil {
		return err
	}
	defer t.stop()
	w, err := startWorker(ctx, workerSpec{natsURL: e.ns.ClientURL(), graphURL: e.graphURL, token: e.token,
		concurrency: cfg.Concurrency, partitions: cfg.Partitions})
	if err != nil {
		return err
	}
	lat, err := measureLatency(ctx, cfg, e, t, w, rate, n)
	if stopErr := w.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	rpe := cmp.Or(r.Concurrency.RequestsPerEvent, 3)
	r.Latency = Latency{
		Rate: rate, Events: len(lat), P50: percentile(lat, 50), P99: percentile(lat, 99), Max: percentile(lat, 100),
		Bound: time.Duration(rpe*float64(cfg.Latency)) + 50*time.Millisecond,
	}
	cfg.Logger.Info("bench latency", "rate", rate, "p50", r.Latency.P50.String(), "p99", r.Latency.P99.String())
	return nil
}

// measureLatency publishes n events at rate once the worker is ready and
// returns their publish-to-result latencies, but for the first tenth.
func measureLatency(ctx context.Context, cfg Config, e *env, t *tally, w *workerRun, rate float64, n int) ([]time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := w.waitReady(rctx)
	cancel()
	if err != nil {
		return nil, err
	}
	sent := make([]time.Time, n)
	ids := make([]string, n)
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	for i := range n {
		// Open loop: event i leaves at t0 + i·interval whatever happened
		// to the ones before.
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ev, err := newEvent("l", i, cfg.Users, time.Now())
		if err != nil {
			return nil, err
		}
		ids[i], sent[i] = ev.id, time.Now()
		if _, err := e.js.PublishMsgAsync(ev.message()); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	if !t.wait(ctx, time.Now().Add(30*time.Second+cfg.Duration)) {
		return nil, fmt.Errorf("only %d of %d results after the publisher stopped", t.count(), n)
	}
	if err := t.checkResults("latency"); err != nil {
		return nil, err
	}
	// The first tenth warms up connections and pulls.
	lat := make([]time.Duration, 0, n-n/10)
	for i := n / 10; i < n; i++ {
		at, ok := t.arrivalOf(ids[i])
		if !ok {
			return nil, fmt.Errorf("no result for event %s", ids[i])
		}
		lat = append(lat, at.Sub(sent[i]))
	}
	return lat, nil
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/limits"
	"github.com/authflow/authflow/notify"
)

// Worker consumes events and executes them. Create it with New, run it with
// Run; several Workers (replicas) may share one stream.
type Worker struct {
	cfg     Config
	js      jetstream.JetStream
	ledger  ledger
	limiter *limits.Limiter // nil when the policy sets no limits
	x       *executor
	log     *slog.Logger
	metrics *Metrics
	slots   *slots // Concurrency, by class (slots.go)

	// Keeping each key's order with several events of a partition in
	// flight (order.go).
	turns    *turnstile
	floors   floorCache
	streamMu sync.Mutex
	stream   jetstream.Stream

	readyMu sync.Mutex
	ready   bool
}

// New checks the configuration, connects to JetStream and creates or updates
// the streams, the ledger bucket and the partition consumers.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if cfg.SealKey == nil {
		kp, err := nkeys.CreateCurveKeys()
		if err != nil {
			return nil, fmt.Errorf("worker seal key: %w", err)
		}
		cfg.SealKey = kp
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("worker jetstream: %w", err)
	}
	topo := Topology{
		Partitions:        cfg.Partitions,
		Replicas:          cfg.Replicas,
		LedgerTTL:         cfg.LedgerTTL,
		EventsMaxAge:      cfg.LedgerTTL,
		ResultsMaxAge:     30 * 24 * time.Hour,
		DLQMaxAge:         90 * 24 * time.Hour,
		ResultsDuplicates: 24 * time.Hour,
		AckWait:           cfg.AckWait,
		MaxMsgBytes:       MaxMessageBytes,
		PartitionInflight: cfg.PartitionInflight,
	}
	kv, err := ensureTopologyRetrying(ctx, js, log0(cfg), topo)
	if err != nil {
		return nil, err
	}
	// Notifications go to a stream of their own, delivered off the
	// critical path by the notify package's consumer; they live as long as
	// the results they accompany (the audit record is both).
	if err := notify.EnsureStream(ctx, js, notify.StreamConfig{Replicas: cfg.Replicas,
		MaxAge: topo.ResultsMaxAge, Duplicates: topo.ResultsDuplicates}); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	var limiter *limits.Limiter
	if rules := cfg.Policy.Limits(); len(rules) > 0 || cfg.Policy.MaxBulkWindow() > 0 {
		limiter, err = limits.Open(ctx, js, limits.Config{MaxWindow: max(cfg.Policy.MaxLimitWindow(), cfg.Policy.MaxBulkWindow()), Replicas: cfg.Replicas,
			Metrics: limits.NewMetrics(cfg.Metrics.reg, rules)})
		if err != nil {
			return nil, fmt.Errorf("worker rate limits: %w", err)
		}
	}
	log := log0(cfg)
	if g, ok := cfg.Graph.(interface{ Throttle() *graphclient.Throttle }); ok && g.Throttle() != nil {
		cfg.Metrics.SetGraphLimit(g.Throttle().Limit)
	}
	w := &Worker{
		cfg:     cfg,
		js:      js,
		ledger:  ledger{kv: kv, timeout: cfg.NATSTimeout, tries: 3},
		limiter: limiter,
		log:     log,
		metrics: cfg.Metrics,
		slots:   newSlots(cfg.Concurrency),
		turns:   newTurnstile(),
		x: &executor{
			graph:   cfg.Graph,
			retry:   *cfg.Retry,
			sealKey: cfg.SealKey,
			pwMode:  cfg.PasswordMode,
			now:     cfg.Now,
			hook:    cfg.Hook,
			metrics: cfg.Metrics,
			prefs:   betaPrefs(cfg),
		},
	}
	return w, nil
}

// SealPublicKey is the curve public key secrets are sealed from; a recipient
// needs it (it is also in every sealed secret) to open them.
func (w *Worker) SealPublicKey() string {
	pub, _ := w.cfg.SealKey.PublicKey()
	return pub
}

// Ready reports whether Run is consuming.
func (w *Worker) Ready() bool {
	w.readyMu.Lock()
	defer w.readyMu.Unlock()
	return w.ready && w.cfg.NATS.IsConnected()
}

func (w *Worker) setReady(v bool) {
	w.readyMu.Lock()
	w.ready = v
	w.readyMu.Unlock()
}

// Run consumes every partition until ctx is cancelled. Then it stops
// pulling, hands back what it had received but not started, waits up to
// ShutdownTimeout for events in flight, and hands back the rest (their
// ledger entries stay "in progress", so another replica resumes them).
func (w *Worker) Run(ctx context.Context) error {
	// work is cancelled only when the shutdown grace period is over.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var wg sync.WaitGroup
	iters := make([]jetstream.MessagesContext, 0, w.cfg.Partitions)
	for p := 0; p < w.cfg.Partitions; p++ {
		cons, err := w.js.Consumer(ctx, EventsStream, consumerName(p))
		if err != nil {
			for _, it := range iters {
				it.Stop()
			}
			if ctx.Err() != nil {
				return nil // stopped before it began consuming: nothing was taken
			}
			return fmt.Errorf("worker consumer %d: %w", p, err)
		}
		it, err := cons.Messages(
			jetstream.PullMaxMessages(w.cfg.PartitionInflight),
			jetstream.PullExpiry(5*time.Second),
		)
		if err != nil {
			for _, it := range iters {
				it.Stop()
			}
			return fmt.Errorf("worker consume partition %d: %w", p, err)
		}
		iters = append(iters, it)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.consume(ctx, work, it)
		}()
	}
	{
		if err := w.runLanes(ctx, work, &wg); err != nil {
			for _, it := range iters {
				it.Stop()
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	stopStats := w.pollConsumerStats(ctx)
	w.setReady(true)
	w.log.Info("worker running", "partitions", w.cfg.Partitions, "partition_inflight", w.cfg.PartitionInflight,
		"concurrency", w.cfg.Concurrency, "seal_key", w.SealPublicKey())

	<-ctx.Done()
	w.setReady(false)
	stopStats()
	// Stop pulling; buffered messages are handed back by consume.
	for _, it := range iters {
		it.Drain()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn("shutdown grace period over; handing back events in flight")
		cancelWork()
		<-done
	}
	w.log.Info("worker stopped")
	return nil
}

// consume is one partition's loop. With PartitionInflight 1 the server
// hands out one event at a time and the loop handles them serially; above
// 1 each event gets its own goroutine and waits for the earlier events of
// its key first (order.go).
func (w *Worker) consume(ctx, work context.Context, it jetstream.MessagesContext) {
	var running sync.WaitGroup
	defer running.Wait()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("pull failed", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		if ctx.Err() != nil {
			// Received while shutting down: hand it back untouched.
			_ = msg.Nak()
			continue
		}
		// Keep the message alive from the moment it is ours, also while it
		// waits for a free slot, so the server does not hand it to another
		// replica meanwhile.
		stop := w.keepAlive(msg)
		if w.cfg.PartitionInflight == 1 {
			w.runDelivery(ctx, work, msg, false)
			stop()
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			defer stop()
			w.runDelivery(ctx, work, msg, true)
		}()
	}
}

// runDelivery handles one partition delivery in a slot of Concurrency,
// after the earlier events of its key when ordered.
func (w *Worker) runDelivery(ctx, work context.Context, msg jetstream.Msg, ordered bool) {
	if ordered && w.parkedCopy(ctx, msg.Headers(), msg.Data()) {
		ordered = false // it takes the original's place (approval.go)
	}
	if ordered {
		if md, err := msg.Metadata(); err == nil {
			seq := md.Sequence.Stream
			w.turns.enter(seq)
			defer w.turns.leave(seq)
			err := w.inOrder(ctx, msg.Subject(), seq, true, func(ctx context.Context, m *jetstream.RawStreamMsg) string {
				if w.slots.acquire(ctx, classBulk) != nil {
					return outcomeAbandoned
				}
				defer w.slots.release()
				return w.handle(work, &storedMsg{m: m})
			})
			if err != nil {
				if ctx.Err() != nil {
					_ = msg.Nak()
					return
				}
				w.log.Warn("could not check the order of an event's key (NATS); handing it back", "stream_seq", seq, "err", err)
				w.metrics.retries.WithLabelValues("redelivery").Inc()
				_ = msg.NakWithDelay(time.Second)
				return
			}
		}
	}
	if w.slots.acquire(ctx, classBulk) != nil {
		_ = msg.Nak()
		return
	}
	w.handle(work, msg)
	w.slots.release()
}

// pollConsumerStats refreshes the pending gauges every few seconds.
func (w *Worker) pollConsumerStats(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			var pending, ackPending uint64
			for p := 0; p < w.cfg.Partitions; p++ {
				cctx, c := context.WithTimeout(ctx, 2*time.Second)
				cons, err := w.js.Consumer(cctx, EventsStream, consumerName(p))
				if err == nil {
					// Consumer fetched the info just now.
					info := cons.CachedInfo()
					pending += info.NumPending
					ackPending += uint64(info.NumAckPending)
				}
				c()
			}
			w.metrics.pending.Set(float64(pending))
			w.metrics.ackPending.Set(float64(ackPending))
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// keepLease renews h's lease every third of its length until stop is
// called. A renewal that fails for good (another attempt took the event)
// is remembered by h: the attempt's next write or ledger save stops it.
func (w *Worker) keepLease(ctx context.Context, h *hold) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(h.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := h.renew(ctx); err != nil {
					w.log.Warn("lease renewal failed", "err", err)
					if errors.Is(err, errLost) {
						return
					}
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// keepAlive sends InProgress for msg every third of AckWait until stop is
// called, so a long Graph call does not make the server redeliver.
func (w *Worker) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(w.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// A failure here is not fatal: the lease in the ledger, not
				// the server's ack deadline, decides who may write.
				if err := msg.InProgress(); err != nil {
					w.log.Debug("in-progress signal failed (NATS)", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func log0(cfg Config) *slog.Logger { return cfg.Logger.With("instance", cfg.Instance) }

// ensureTopologyRetrying retries EnsureTopology for up to a minute: on a
// fresh cluster the JetStream API answers only once a meta leader is
// elected, and several replicas start at once.
func ensureTopologyRetrying(ctx context.Context, js jetstream.JetStream, log *slog.Logger, t Topology) (jetstream.KeyValue, error) {
	deadline := time.Now().Add(time.Minute)
	wait := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		kv, err := EnsureTopology(actx, js, t)
		cancel()
		if err == nil {
			return kv, nil
		}
		if perr := permanentTopologyError(err, t); perr != nil {
			return nil, perr
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		log.Warn("JetStream topology not ready; retrying", "err", err, "in", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// permanentTopologyError returns err, explained, when JetStream answered
// with an error that retrying cannot change (a configuration the server
// refuses); nil when it may be transient (no meta leader yet, a cluster
// still forming, timeouts).
func permanentTopologyError(err error, t Topology) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch apiErr.ErrorCode {
	case 10008, 10009, 10005: // temporarily unavailable, not leader, no peers yet
		return nil
	case 10074: // replicas > 1 not supported in non-clustered mode
		return fmt.Errorf("%w: Replicas %d needs a JetStream cluster of at least %d servers; this server is not clustered: use 1 replica (authflow worker --stream-replicas 1)", err, t.Replicas, t.Replicas)
	}
	return fmt.Errorf("%w (JetStream refused the configuration; retrying would not help)", err)
}

// Package limits enforces the policy's rate limits (events.Policy
// LimitChecks): at most N events per user, requester, signer key or source
// within a sliding window, counted in a JetStream KV bucket that every
// worker replica shares. Each counter is updated with compare-and-set, so
// the limit is exact however many replicas race; an event is counted once
// however often it is delivered.
package limits

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/authflow/authflow/events"
)

// Bucket is the KV bucket of the counters. It is a contract with
// operators (deploy/nats grants): change it only with a migration.
const Bucket = "AUTHFLOW_LIMITS"

// markerTTL is how long the server keeps the marker of a counter whose
// TTL ran out; setting it turns per-key TTLs on (nats-server 2.11+).
const markerTTL = time.Minute

// maxConflicts bounds the compare-and-set retries of one counter update.
// Each conflict means another update succeeded, so under any realistic
// contention the loop ends long before.
const maxConflicts = 1000

// Config configures a Limiter.
type Config struct {
	// MaxWindow is the longest window of any rule (Policy.MaxLimitWindow):
	// the bucket keeps a counter at most this long after its last write.
	// Required.
	MaxWindow time.Duration
	// Replicas of the bucket. Defaults to 1.
	Replicas int
	// Metrics, if set, counts refusals by rule.
	Metrics *Metrics
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Limiter checks and counts events against limit rules. It is safe for
// concurrent use, also from several processes sharing the bucket.
type Limiter struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	subject string // the bucket's subject prefix, "$KV.<bucket>."
	msgTTL  bool   // the bucket takes per-message TTLs
	metrics *Metrics
	now     func() time.Time
	log     *slog.Logger
}

// Open creates or updates the bucket (with per-key TTLs where the server
// has them) and returns a Limiter on it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Limiter, error) {
	if cfg.MaxWindow <= 0 {
		return nil, errors.New("limits: Config.MaxWindow must be positive")
	}
	l := &Limiter{js: js, subject: "$KV." + Bucket + ".", metrics: cfg.Metrics, now: cfg.Now, log: cfg.Logger}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "authflow rate-limit counters (events.Policy limits)",
		History:     1,
		// A counter's entries are all older than the longest window by
		// then; a minute of slack for clocks.
		TTL:            cfg.MaxWindow + time.Minute,
		Storage:        jetstream.FileStorage,
		Replicas:       max(cfg.Replicas, 1),
		LimitMarkerTTL: markerTTL,
	}
	kv, err := js.KeyValue(ctx, Bucket)
	if err == nil {
		st, serr := kv.Status(ctx)
		if serr != nil || st.TTL() < kvc.TTL {
			kv = nil
		}
	}
	if kv == nil || err != nil {
		kv, err = js.CreateOrUpdateKeyValue(ctx, kvc)
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			// An older server: counters live for the bucket's TTL.
			kvc.LimitMarkerTTL = 0
			kv, err = js.CreateOrUpdateKeyValue(ctx, kvc)
		}
		if err != nil {
			return nil, fmt.Errorf("limits: ensure bucket %s: %w", Bucket, err)
		}
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("limits: bucket %s status: %w", Bucket, err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		l.msgTTL = bs.StreamInfo().Config.AllowMsgTTL
	}
	l.kv = kv
	return l, nil
}

// Decision is the outcome of Take.
type Decision struct {
	// Allowed reports that every check had room (or had already counted
	// the event).
	Allowed bool
	// Refused is the check that had no room; nil when allowed.
	Refused *events.LimitCheck
	// Count is the refusing counter's events in its window (its Max);
	// 0 when allowed.
	Count int
}

// Err is the error of a refused decision (code rate_limited), nil when
// allowed.
func (d Decision) Err() error {
	if d.Allowed || d.Refused == nil {
		return nil
	}
	return events.RateLimitError(d.Refused.Rule)
}

// Take counts the event with idempotency key eventKey (events.Event.Key)
// against every check, all or nothing: when one check has no room, the
// event is taken out of the counters it was added to before, and the
// decision names the refusing rule. Taking an event again (a redelivery)
// gives the same answer and counts it once. An error (NATS) leaves nothing
// counted but, at worst, the event in some counters until their window
// ends: the caller should retry later, and a retry finds them.
func (l *Limiter) Take(ctx context.Context, eventKey string, checks []events.LimitCheck) (Decision, error) {
	if eventKey == "" {
		return Decision{}, errors.New("limits: take: empty event key")
	}
	tag := entryTag(eventKey)
	for i := range checks {
		c := &checks[i]
		ok, count, err := l.take(ctx, c, tag)
		if err == nil && ok {
			continue
		}
		if rerr := l.release(ctx, tag, checks[:i]); rerr != nil {
			l.log.Warn("rate limit: could not take an event out of its counters; they keep it until their window ends",
				"rule", c.Rule.Name, "err", rerr)
		}
		if err != nil {
			return Decision{}, fmt.Errorf("limits: take %s: %w", c.Rule.Name, err)
		}
		if l.metrics != nil {
			l.metrics.refused.WithLabelValues(c.Rule.Name).Inc()
		}
		refused := *c
		return Decision{Refused: &refused, Count: count}, nil
	}
	return Decision{Allowed: true}, nil
}

// Admit counts the event with key eventKey in the counter of c when it
// has room, and reports whether the event is counted (now or by an earlier
// call): events.ApprovalCounter, for the policy's bulk approval rules. A
// full counter leaves the event out and reports false; unlike Take, that
// is no refusal, so the metrics do not count it.
func (l *Limiter) Admit(ctx context.Context, eventKey string, c events.LimitCheck) (bool, error) {
	if eventKey == "" {
		return false, errors.New("limits: admit: empty event key")
	}
	ok, _, err := l.take(ctx, &c, entryTag(eventKey))
	if err != nil {
		return false, fmt.Errorf("limits: admit %s: %w", c.Rule.Name, err)
	}
	return ok, nil
}

// Release takes the event out of the checks' counters (an event that was
// counted but then not run, e.g. parked for approval and denied). Releasing
// an event that is not counted does nothing.
func (l *Limiter) Release(ctx context.Context, eventKey string, checks []events.LimitCheck) error {
	if err := l.release(ctx, entryTag(eventKey), checks); err != nil {
		return fmt.Errorf("limits: release: %w", err)
	}
	return nil
}

// Count returns how many events the check's counter holds in its window
// now (for tests and tools).
func (l *Limiter) Count(ctx context.Context, c events.LimitCheck) (int, error) {
	st, _, err := l.read(ctx, counterKey(c))
	if err != nil {
		return 0, fmt.Errorf("limits: count %s: %w", c.Rule.Name, err)
	}
	return len(st.live(l.now(), c.Rule.Window)), nil
}

func (l *Limiter) take(ctx context.Context, c *events.LimitCheck, tag string) (allowed bool, count int, err error) {
	key := counterKey(*c)
	err = l.update(ctx, key, c.Rule.Window, func(st *state, now time.Time) bool {
		allowed, count = false, 0 // a retry after a conflict decides afresh
		st.E = st.live(now, c.Rule.Window)
		if slices.ContainsFunc(st.E, func(e entry) bool { return e.K == tag }) {
			allowed = true // counted by an earlier delivery
			return false
		}
		if len(st.E) >= c.Rule.Max {
			count = len(st.E)
			return false
		}
		st.E = append(st.E, entry{K: tag, T: now.UnixMilli()})
		allowed = true
		return true
	})
	return allowed, count, err
}

func (l *Limiter) release(ctx context.Context, tag string, checks []events.LimitCheck) error {
	var errs []error
	for _, c := range checks {
		err := l.update(ctx, counterKey(c), c.Rule.Window, func(st *state, now time.Time) bool {
			n := len(st.E)
			st.E = slices.DeleteFunc(st.E, func(e entry) bool { return e.K == tag })
			return len(st.E) != n
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Rule.Name, err))
		}
	}
	return errors.Join(errs...)
}

// update reads a counter, lets change edit it (it reports whether to
// write) and writes it back only if nobody wrote in between, retrying on a
// conflict with a fresh read.
func (l *Limiter) update(ctx context.Context, key string, window time.Duration, change func(*state, time.Time) bool) error {
	for conflicts := 0; ; conflicts++ {
		st, rev, err := l.read(ctx, key)
		if err != nil {
			return err
		}
		if !change(&st, l.now()) {
			return nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		err = l.write(ctx, key, b, rev, window)
		if err == nil {
			return nil
		}
		if !conflict(err) {
			return err
		}
		if conflicts >= maxConflicts {
			return fmt.Errorf("counter %s: %d compare-and-set conflicts in a row", key, conflicts)
		}
		// A short random pause spreads the racers out.
		t := time.NewTimer(time.Duration(rand.IntN(2000)) * time.Microsecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// read returns a counter and its revision (0 when absent or deleted).
func (l *Limiter) read(ctx context.Context, key string) (state, uint64, error) {
	var st state
	e, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return st, 0, nil
	case err != nil:
		return st, 0, err
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A counter we cannot read is replaced: failing open by at most
		// one window beats refusing every event of the scope for good.
		l.log.Error("rate limit: unreadable counter replaced", "key", key, "err", err)
		return state{}, e.Revision(), nil
	}
	return st, e.Revision(), nil
}

// write stores a counter if its revision is still rev (0: if it does not
// exist), with a TTL of window where the bucket takes per-key TTLs.
func (l *Limiter) write(ctx context.Context, key string, value []byte, rev uint64, window time.Duration) error {
	if rev == 0 {
		var opts []jetstream.KVCreateOpt
		if l.msgTTL {
			opts = append(opts, jetstream.KeyTTL(window))
		}
		// Create also handles a key whose last revision is a delete marker.
		_, err := l.kv.Create(ctx, key, value, opts...)
		return err
	}
	if !l.msgTTL {
		_, err := l.kv.Update(ctx, key, value, rev)
		return err
	}
	// KeyValue.Update takes no TTL: publish the update as Update itself
	// does, with the compare-and-set header and a TTL, so the counter goes
	// away a window after its last write.
	m := &nats.Msg{Subject: l.subject + key, Data: value}
	_, err := l.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(window))
	return err
}

// conflict reports whether a write failed because the counter changed.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var ae *jetstream.APIError
	// Wrong last sequence; on a replicated stream, its other code.
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// state is a counter: the events in its window, oldest first.
type state struct {
	E []entry `json:"e"`
}

// entry is one counted event: a tag of its key and when it was counted
// (Unix milliseconds).
type entry struct {
	K string `json:"k"`
	T int64  `json:"t"`
}

// live returns the entries newer than window before now.
func (s state) live(now time.Time, window time.Duration) []entry {
	from := now.Add(-window).UnixMilli()
	out := s.E[:0:0]
	for _, e := range s.E {
		if e.T > from {
			out = append(out, e)
		}
	}
	return out
}

// counterKey is the KV key of a check's counter: the rule's name and a
// digest of what it counts by, so that no user name, requester or key is
// stored in the clear and any scope makes a valid key.
func counterKey(c events.LimitCheck) string {
	h := sha256.Sum256([]byte(c.Rule.Per + "\x00" + c.Scope))
	return c.Rule.Name + "." + hex.EncodeToString(h[:16])
}

// entryTag shortens an event key to 16 hex digits: unique enough within
// one counter (at most 10,000 entries) and a quarter of the size.
func entryTag(eventKey string) string {
	h := sha256.Sum256([]byte(eventKey))
	return hex.EncodeToString(h[:8])
}

// Metrics are the limiter's Prometheus metrics.
type Metrics struct {
	refused *prometheus.CounterVec // rule
}

// NewMetrics registers authflow_rate_limited_total{rule} on reg, with a
// zero series for each of rules so that alerts see the first refusal.
func NewMetrics(reg prometheus.Registerer, rules []events.LimitRule) *Metrics {
	m := &Metrics{refused: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "authflow_rate_limited_total",
		Help: "Events refused (rejected, rate_limited) because a policy limit was used up, by rule.",
	}, []string{"rule"})}
	for _, r := range rules {
		m.refused.WithLabelValues(r.Name)
	}
	return m
}

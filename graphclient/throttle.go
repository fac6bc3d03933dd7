package graphclient

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// ThrottleConfig configures a Throttle. Zero fields take the defaults named
// in their comments.
type ThrottleConfig struct {
	// MinLimit is the floor of the concurrency limit. Defaults to 1.
	MinLimit int
	// MaxLimit is the ceiling of the concurrency limit. Defaults to 32.
	MaxLimit int
	// InitialLimit is the limit to start with. Defaults to MaxLimit.
	InitialLimit int
	// DefaultPause is how long everyone waits after a 429 that carries no
	// Retry-After. Defaults to 1 s.
	DefaultPause time.Duration
	// MaxPause caps one pause, whatever the server asks. Defaults to 5 min.
	MaxPause time.Duration
	// Clock tells the time (tests use a fake). Defaults to the system clock.
	Clock backoff.Clock
	// NewTimer makes the timers used to wait out a pause (tests use a
	// fake). Defaults to a time.Timer.
	NewTimer func() backoff.Timer
}

// Defaults of a ThrottleConfig.
const (
	DefaultThrottleMinLimit     = 1
	DefaultThrottleMaxLimit     = 32
	DefaultThrottleDefaultPause = time.Second
	DefaultThrottleMaxPause     = 5 * time.Minute
)

// additiveSlowdown slows the additive increase of the concurrency limit.
const additiveSlowdown = 8

// Throttle makes a 429 slow every request of the worker, not just the one
// that got it. It is shared by all calls of a Client and may be shared by
// several Clients (pass the same *Throttle in their Config).
//
// Two mechanisms:
//   - a pause: after a 429 or 503 with Retry-After until T, no new request
//     starts before T;
//   - an adaptive concurrency limit (AIMD): halved on a 429 or 503, grown by
//     about one for each eight limits' worth of successful responses, between
//     MinLimit and MaxLimit, so that sustained throttling settles near the
//     service's budget instead of hammering it.
//
// A Throttle is safe for concurrent use.
type Throttle struct {
	clock        backoff.Clock
	newTimer     func() backoff.Timer
	minLimit     float64
	maxLimit     float64
	defaultPause time.Duration
	maxPause     time.Duration

	mu          sync.Mutex
	limit       float64
	inFlight    int
	pausedUntil time.Time
	epoch       uint64 // counts decreases; a response only decreases the limit if its request started after the last one
	waiters     []chan struct{}
}

// NewThrottle returns a Throttle.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MinLimit <= 0 {
		cfg.MinLimit = DefaultThrottleMinLimit
	}
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = DefaultThrottleMaxLimit
	}
	if cfg.MaxLimit < cfg.MinLimit {
		cfg.MaxLimit = cfg.MinLimit
	}
	if cfg.InitialLimit <= 0 {
		cfg.InitialLimit = cfg.MaxLimit
	}
	cfg.InitialLimit = min(max(cfg.InitialLimit, cfg.MinLimit), cfg.MaxLimit)
	if cfg.DefaultPause <= 0 {
		cfg.DefaultPause = DefaultThrottleDefaultPause
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = DefaultThrottleMaxPause
	}
	if cfg.Clock == nil {
		cfg.Clock = backoff.SystemClock
	}
	if cfg.NewTimer == nil {
		cfg.NewTimer = newSystemTimer
	}
	return &Throttle{
		clock:        cfg.Clock,
		newTimer:     cfg.NewTimer,
		minLimit:     float64(cfg.MinLimit),
		maxLimit:     float64(cfg.MaxLimit),
		defaultPause: cfg.DefaultPause,
		maxPause:     cfg.MaxPause,
		limit:        float64(cfg.InitialLimit),
	}
}

// maxIdle is how many connections the throttle can ever have in use.
func (t *Throttle) maxIdle() int { return int(t.maxLimit) }

// Limit is the current concurrency limit (for metrics).
func (t *Throttle) Limit() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.limit)
}

// InFlight is the number of requests holding a slot (for metrics).
func (t *Throttle) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight
}

// PausedUntil is the end of the current pause; zero or past when none.
func (t *Throttle) PausedUntil() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pausedUntil
}

// permit is a slot held by one request.
type permit struct {
	epoch uint64
}

// acquire waits until no pause is on and a slot is free, then takes it. The
// caller must call release exactly once with the permit.
func (t *Throttle) acquire(ctx context.Context) (permit, error) {
	for {
		if err := ctx.Err(); err != nil {
			return permit{}, err
		}
		t.mu.Lock()
		if wait := t.pausedUntil.Sub(t.clock.Now()); wait > 0 {
			t.mu.Unlock()
			if err := t.sleep(ctx, wait); err != nil {
				return permit{}, err
			}
			continue
		}
		if float64(t.inFlight) < math.Floor(t.limit) {
			t.inFlight++
			p := permit{epoch: t.epoch}
			t.mu.Unlock()
			return p, nil
		}
		ch := make(chan struct{})
		t.waiters = append(t.waiters, ch)
		t.mu.Unlock()
		select {
		case <-ch:
			// A slot may be free now: try again (another caller may win it).
		case <-ctx.Done():
			t.mu.Lock()
			if !t.removeWaiterLocked(ch) {
				// We were woken but will not use the chance: pass it on.
				t.wakeLocked()
			}
			t.mu.Unlock()
			return permit{}, ctx.Err()
		}
	}
}

// release gives the slot back and feeds the response into the limits:
// status is the HTTP status of the response (0 = no response) and
// retryAfter the server's Retry-After (negative = none sent).
func (t *Throttle) release(p permit, status int, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inFlight--
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		pause := retryAfter
		if pause < 0 && status == http.StatusTooManyRequests {
			pause = t.defaultPause
		}
		if pause > t.maxPause {
			pause = t.maxPause
		}
		if until := t.clock.Now().Add(pause); pause > 0 && until.After(t.pausedUntil) {
			t.pausedUntil = until
		}
		// Halve once per round: responses to requests sent before the last
		// decrease say nothing new about the current limit.
		if p.epoch == t.epoch {
			t.limit = max(t.minLimit, t.limit/2)
			t.epoch++
		}
	case status >= 200 && status < 500:
		// Grow by one per eight limits' worth of successes: growing by one
		// per limit (classic AIMD) added about 20 slots a second at 50 ms
		// latency, overshot the service's budget before its bucket ran dry,
		// and had 5% of requests answered 429 (authflow bench); this keeps
		// it under 1% at the same utilisation.
		t.limit = min(t.maxLimit, t.limit+1/(additiveSlowdown*t.limit))
	}
	t.wakeLocked()
}

// wakeLocked wakes as many waiters as there are free slots.
func (t *Throttle) wakeLocked() {
	free := int(math.Floor(t.limit)) - t.inFlight
	for ; free > 0 && len(t.waiters) > 0; free-- {
		close(t.waiters[0])
		t.waiters = t.waiters[1:]
	}
}

func (t *Throttle) removeWaiterLocked(ch chan struct{}) bool {
	for i, w := range t.waiters {
		if w == ch {
			t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func (t *Throttle) sleep(ctx context.Context, d time.Duration) error {
	timer := t.newTimer()
	defer timer.Stop()
	timer.Start(d)
	select {
	case <-timer.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package graphclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// ThrottleConfig configures a Throttle. Zero fields take the defaults named
// in their comments; a value outside the range its comment names is an
// error ([ThrottleConfig.Validate]), never silently replaced.
type ThrottleConfig struct {
	// MinLimit is the floor of the concurrency limit: 0 (the default, 1)
	// or 1..MaxLimit.
	MinLimit int
	// MaxLimit is the ceiling of the concurrency limit: 0 (the default,
	// 32) or MinLimit..MaxThrottleLimit.
	MaxLimit int
	// InitialLimit is the limit to start with: 0 (the default, MaxLimit)
	// or MinLimit..MaxLimit.
	InitialLimit int
	// DefaultPause is how long everyone waits after a 429 that carries no
	// Retry-After: 0 (the default, 1 s) or more than 0 and at most
	// MaxPause.
	DefaultPause time.Duration
	// MaxPause caps one pause, whatever the server asks: 0 (the default,
	// 5 min) or more than 0 and at most MaxThrottlePause.
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

// Upper bounds of a ThrottleConfig. The transport keeps up to MaxLimit idle
// connections, and a server's Retry-After is capped at an hour anyway, so a
// longer MaxPause could never take effect.
const (
	MaxThrottleLimit = 1024
	MaxThrottlePause = maxRetryAfter
)

// Validate reports every field outside its documented range, each error
// naming the field and the range. NewThrottle calls it.
func (c ThrottleConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("graphclient: ThrottleConfig."+format, a...))
	}
	minL := cmp.Or(c.MinLimit, DefaultThrottleMinLimit)
	maxL := cmp.Or(c.MaxLimit, DefaultThrottleMaxLimit)
	minOK := c.MinLimit >= 0 && c.MinLimit <= MaxThrottleLimit
	maxOK := c.MaxLimit >= 0 && c.MaxLimit <= MaxThrottleLimit
	if !minOK {
		bad("MinLimit is %d; want 0 (the default, %d) or 1..MaxLimit", c.MinLimit, DefaultThrottleMinLimit)
	}
	switch {
	case !maxOK:
		bad("MaxLimit is %d; want 0 (the default, %d) or MinLimit..%d", c.MaxLimit, DefaultThrottleMaxLimit, MaxThrottleLimit)
	case minOK && maxL < minL:
		bad("MaxLimit is %d%s, below MinLimit %d; want 0 (the default, %d) or MinLimit..%d",
			maxL, defaultNote(c.MaxLimit == 0), minL, DefaultThrottleMaxLimit, MaxThrottleLimit)
	}
	switch {
	case c.InitialLimit < 0:
		bad("InitialLimit is %d; want 0 (the default, MaxLimit) or MinLimit..MaxLimit", c.InitialLimit)
	case c.InitialLimit != 0 && minOK && maxOK && (c.InitialLimit < minL || c.InitialLimit > maxL):
		bad("InitialLimit is %d; want 0 (the default, MaxLimit) or MinLimit..MaxLimit (%d..%d)", c.InitialLimit, minL, maxL)
	}
	maxP := cmp.Or(c.MaxPause, DefaultThrottleMaxPause)
	maxPOK := c.MaxPause >= 0 && c.MaxPause <= MaxThrottlePause
	if !maxPOK {
		bad("MaxPause is %s; want 0 (the default, %s) or more than 0 and at most %s",
			durText(c.MaxPause), durText(DefaultThrottleMaxPause), durText(MaxThrottlePause))
	}
	switch {
	case c.DefaultPause < 0:
		bad("DefaultPause is %s; want 0 (the default, %s) or more than 0 and at most MaxPause",
			durText(c.DefaultPause), durText(DefaultThrottleDefaultPause))
	case maxPOK && cmp.Or(c.DefaultPause, DefaultThrottleDefaultPause) > maxP:
		bad("DefaultPause is %s%s, above MaxPause %s; want 0 (the default, %s) or more than 0 and at most MaxPause",
			durText(cmp.Or(c.DefaultPause, DefaultThrottleDefaultPause)), defaultNote(c.DefaultPause == 0),
			durText(maxP), durText(DefaultThrottleDefaultPause))
	}
	return errors.Join(errs...)
}

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

// NewThrottle returns a Throttle, or Validate's error.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.MinLimit = cmp.Or(cfg.MinLimit, DefaultThrottleMinLimit)
	cfg.MaxLimit = cmp.Or(cfg.MaxLimit, DefaultThrottleMaxLimit)
	cfg.InitialLimit = cmp.Or(cfg.InitialLimit, cfg.MaxLimit)
	cfg.DefaultPause = cmp.Or(cfg.DefaultPause, DefaultThrottleDefaultPause)
	cfg.MaxPause = cmp.Or(cfg.MaxPause, DefaultThrottleMaxPause)
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
	}, nil
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

package graphclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy retries one logical Graph operation: exponential backoff with
// jitter, the server's Retry-After as a floor on the next wait, a time
// budget and an optional attempt limit. It stops at once on an error that
// is not retryable and when ctx is done. It is the only retry layer: the
// Client itself sends each call once.
//
// The zero value is usable: every zero field takes the default named in its
// comment. A value outside the range its comment names is an error
// ([RetryPolicy.Validate]), never silently replaced. A RetryPolicy is a
// value; Do does not modify it and may run concurrently.
type RetryPolicy struct {
	// Initial is the first backoff interval: 0 (the default, 500 ms) or
	// more than 0 and at most MaxRetryInterval.
	Initial time.Duration
	// Max caps one backoff interval (Retry-After may exceed it): 0 (the
	// default, 30 s) or from Initial to MaxRetryInterval.
	Max time.Duration
	// Multiplier grows the interval after each attempt: 0 (the default, 2)
	// or a finite number of at least 1.
	Multiplier float64
	// Randomization spreads each interval over [i*(1-r), i*(1+r)]: 0 (the
	// default, 0.5), more than 0 and at most 1, or negative for no jitter.
	Randomization float64
	// MaxElapsed is the time budget: no wait starts that would end more
	// than MaxElapsed after the first attempt began. 0 (the default, 60 s)
	// or more than 0 and at most MaxRetryElapsed.
	MaxElapsed time.Duration
	// MaxAttempts caps the attempts, the first one included: 0 (the
	// default: only MaxElapsed bounds them) or at least 1.
	MaxAttempts int
	// Retryable decides whether an error is worth another attempt. Defaults
	// to IsTransient.
	Retryable func(error) bool
	// Notify, if set, is called before each wait with the number of the
	// attempt that failed, its error and the wait (for metrics and logs).
	Notify func(attempt int, err error, wait time.Duration)
	// Clock tells the time (tests use a fake). Defaults to the system clock.
	Clock backoff.Clock
	// NewTimer makes the timer that waits between attempts (tests use a
	// fake). Defaults to a time.Timer.
	NewTimer func() backoff.Timer

	// random draws the jitter in [0, 1) (tests use a fixed sequence).
	// Defaults to math/rand/v2's Float64.
	random func() float64
}

// Defaults of a RetryPolicy.
const (
	DefaultRetryInitial       = 500 * time.Millisecond
	DefaultRetryMax           = 30 * time.Second
	DefaultRetryMultiplier    = 2.0
	DefaultRetryRandomization = 0.5
	DefaultRetryMaxElapsed    = 60 * time.Second
)

// Upper bounds of a RetryPolicy's durations. Graph's Retry-After is capped
// at an hour too (longer waits belong to JetStream's redelivery), and the
// bounds keep the budget arithmetic far from overflow.
const (
	MaxRetryInterval = time.Hour      // Initial and Max
	MaxRetryElapsed  = 24 * time.Hour // MaxElapsed
)

// DefaultRetryPolicy returns the policy with every default spelled out.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Initial:       DefaultRetryInitial,
		Max:           DefaultRetryMax,
		Multiplier:    DefaultRetryMultiplier,
		Randomization: DefaultRetryRandomization,
		MaxElapsed:    DefaultRetryMaxElapsed,
	}
}

// Validate reports every field outside its documented range, each error
// naming the field and the range. Do calls it first; call it when a policy
// is configured to fail at start rather than at the first retry.
func (p RetryPolicy) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("graphclient: RetryPolicy."+format, a...))
	}
	if p.Initial < 0 || p.Initial > MaxRetryInterval {
		bad("Initial is %s; want 0 (the default, %s) or more than 0 and at most %s",
			durText(p.Initial), durText(DefaultRetryInitial), durText(MaxRetryInterval))
	}
	initial := cmp.Or(p.Initial, DefaultRetryInitial)
	switch {
	case p.Max < 0 || p.Max > MaxRetryInterval:
		bad("Max is %s; want 0 (the default, %s) or from Initial to %s",
			durText(p.Max), durText(DefaultRetryMax), durText(MaxRetryInterval))
	case cmp.Or(p.Max, DefaultRetryMax) < initial && initial <= MaxRetryInterval:
		bad("Max is %s%s, below Initial %s; want 0 (the default, %s) or from Initial to %s",
			durText(cmp.Or(p.Max, DefaultRetryMax)), defaultNote(p.Max == 0), durText(initial), durText(DefaultRetryMax), durText(MaxRetryInterval))
	}
	if p.Multiplier != 0 && !(p.Multiplier >= 1 && !math.IsInf(p.Multiplier, 1)) {
		bad("Multiplier is %v; want 0 (the default, %v) or a finite number of at least 1", p.Multiplier, DefaultRetryMultiplier)
	}
	if math.IsNaN(p.Randomization) || p.Randomization > 1 {
		bad("Randomization is %v; want 0 (the default, %v), more than 0 and at most 1, or negative for no jitter",
			p.Randomization, DefaultRetryRandomization)
	}
	if p.MaxElapsed < 0 || p.MaxElapsed > MaxRetryElapsed {
		bad("MaxElapsed is %s; want 0 (the default, %s) or more than 0 and at most %s",
			durText(p.MaxElapsed), durText(DefaultRetryMaxElapsed), durText(MaxRetryElapsed))
	}
	if p.MaxAttempts < 0 {
		bad("MaxAttempts is %d; want 0 (no limit) or at least 1", p.MaxAttempts)
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero fields of a valid policy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	p.Initial = cmp.Or(p.Initial, DefaultRetryInitial)
	p.Max = cmp.Or(p.Max, DefaultRetryMax)
	p.Multiplier = cmp.Or(p.Multiplier, DefaultRetryMultiplier)
	switch {
	case p.Randomization == 0:
		p.Randomization = DefaultRetryRandomization
	case p.Randomization < 0:
		p.Randomization = 0 // documented: negative means no jitter
	}
	p.MaxElapsed = cmp.Or(p.MaxElapsed, DefaultRetryMaxElapsed)
	if p.Retryable == nil {
		p.Retryable = IsTransient
	}
	if p.Clock == nil {
		p.Clock = backoff.SystemClock
	}
	if p.NewTimer == nil {
		p.NewTimer = newSystemTimer
	}
	if p.random == nil {
		p.random = rand.Float64
	}
	return p
}

func defaultNote(isDefault bool) string {
	if isDefault {
		return " (the default)"
	}
	return ""
}

// durText writes a duration without trailing zero units: 1h, 5m, 500ms.
func durText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// jitter spreads d over [d*(1-r), d*(1+r)] with u in [0, 1), the formula
// of backoff's ExponentialBackOff, which is given no randomization itself
// so that tests can fix the draws.
func jitter(d time.Duration, r, u float64) time.Duration {
	if r <= 0 {
		return d
	}
	delta := r * float64(d)
	lo, hi := float64(d)-delta, float64(d)+delta
	return time.Duration(lo + u*(hi-lo+1))
}

// Do runs op until it succeeds, fails with an error that is not retryable,
// runs out of attempts or budget, or ctx is done. It returns the number of
// attempts made and the last error. Errors from an exhausted budget or
// attempt limit wrap the last error, so they keep its class (e.g.
// ErrTransient, and RetryAfter still works on them); when ctx ends during a
// wait the error wraps both ctx.Err() and the last error. An invalid
// policy returns Validate's error without calling op.
func (p RetryPolicy) Do(ctx context.Context, op func(ctx context.Context) error) (attempts int, err error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	p = p.withDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: 0, // jitter below
		Multiplier:          p.Multiplier,
		MaxInterval:         p.Max,
		Stop:                backoff.Stop,
		Clock:               p.Clock,
		// MaxElapsedTime stays 0: the budget below also counts Retry-After.
	}
	b.Reset()
	start := p.Clock.Now()
	var timer backoff.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return attempts, fmt.Errorf("retry stopped: %w; last error: %w", cerr, err)
			}
			return attempts, cerr
		}
		attempts++
		err = op(ctx)
		if err == nil {
			return attempts, nil
		}
		if !p.Retryable(err) {
			return attempts, err
		}
		if p.MaxAttempts > 0 && attempts >= p.MaxAttempts {
			return attempts, fmt.Errorf("gave up after %d attempts: %w", attempts, err)
		}
		wait := jitter(b.NextBackOff(), p.Randomization, p.random())
		if ra, ok := RetryAfter(err); ok && ra > wait {
			wait = ra
		}
		if elapsed := p.Clock.Now().Sub(start); elapsed+wait > p.MaxElapsed {
			return attempts, fmt.Errorf("retry budget of %s exhausted after %d attempts: %w", p.MaxElapsed, attempts, err)
		}
		if p.Notify != nil {
			p.Notify(attempts, err, wait)
		}
		if timer == nil {
			timer = p.NewTimer()
		}
		timer.Start(wait)
		select {
		case <-timer.C():
		case <-ctx.Done():
			return attempts, fmt.Errorf("retry stopped: %w; last error: %w", ctx.Err(), err)
		}
	}
}

// systemTimer is backoff's default timer, which the package does not export.
type systemTimer struct{ t *time.Timer }

func newSystemTimer() backoff.Timer { return &systemTimer{} }

func (s *systemTimer) Start(d time.Duration) {
	if s.t == nil {
		s.t = time.NewTimer(d)
		return
	}
	s.t.Reset(d)
}

func (s *systemTimer) Stop() {
	if s.t != nil {
		s.t.Stop()
	}
}

func (s *systemTimer) C() <-chan time.Time { return s.t.C }

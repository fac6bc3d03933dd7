package graphclient

import (
	"context"
	"fmt"
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
// comment. A RetryPolicy is a value; Do does not modify it and may run
// concurrently.
type RetryPolicy struct {
	// Initial is the first backoff interval. Defaults to 500 ms.
	Initial time.Duration
	// Max caps one backoff interval (Retry-After may exceed it). Defaults
	// to 30 s.
	Max time.Duration
	// Multiplier grows the interval after each attempt. Defaults to 2.
	Multiplier float64
	// Randomization spreads each interval over [i*(1-r), i*(1+r)]. Defaults
	// to 0.5; a negative value disables jitter.
	Randomization float64
	// MaxElapsed is the time budget: no wait starts that would end more
	// than MaxElapsed after the first attempt began. Defaults to 60 s.
	MaxElapsed time.Duration
	// MaxAttempts caps the attempts, the first one included. Defaults to 0:
	// only MaxElapsed bounds them.
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
}

// Defaults of a RetryPolicy.
const (
	DefaultRetryInitial       = 500 * time.Millisecond
	DefaultRetryMax           = 30 * time.Second
	DefaultRetryMultiplier    = 2.0
	DefaultRetryRandomization = 0.5
	DefaultRetryMaxElapsed    = 60 * time.Second
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

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = DefaultRetryInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryMax
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.Multiplier < 1 {
		p.Multiplier = DefaultRetryMultiplier
	}
	switch {
	case p.Randomization == 0:
		p.Randomization = DefaultRetryRandomization
	case p.Randomization < 0:
		p.Randomization = 0
	case p.Randomization > 1:
		p.Randomization = 1
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultRetryMaxElapsed
	}
	if p.Retryable == nil {
		p.Retryable = IsTransient
	}
	if p.Clock == nil {
		p.Clock = backoff.SystemClock
	}
	if p.NewTimer == nil {
		p.NewTimer = newSystemTimer
	}
	return p
}

// Do runs op until it succeeds, fails with an error that is not retryable,
// runs out of attempts or budget, or ctx is done. It returns the number of
// attempts made and the last error. Errors from an exhausted budget or
// attempt limit wrap the last error, so they keep its class (e.g.
// ErrTransient, and RetryAfter still works on them); when ctx ends during a
// wait the error wraps both ctx.Err() and the last error.
func (p RetryPolicy) Do(ctx context.Context, op func(ctx context.Context) error) (attempts int, err error) {
	p = p.withDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: p.Randomization,
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
		wait := b.NextBackOff()
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

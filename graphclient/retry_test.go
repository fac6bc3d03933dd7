package graphclient

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// script returns an op that fails with errs in turn, then succeeds.
func script(errs ...error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= len(errs) {
			return errs[calls-1]
		}
		return nil
	}, &calls
}

func transient(status int, retryAfter time.Duration) error {
	return &APIError{Op: "test", Status: status, RetryAfter: retryAfter}
}

// noJitter is a policy with deterministic waits on a fake clock.
func noJitter(clock *fakeClock) RetryPolicy {
	return RetryPolicy{
		Initial:       100 * time.Millisecond,
		Max:           time.Second,
		Multiplier:    2,
		Randomization: -1,
		MaxElapsed:    time.Minute,
		Clock:         clock,
		NewTimer:      clock.NewTimer,
	}
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	permanent := &APIError{Op: "test", Status: 400}
	tests := []struct {
		name         string
		policy       func(RetryPolicy) RetryPolicy
		errs         []error
		wantAttempts int
		wantWaits    []time.Duration
		wantErr      error // errors.Is target; nil = success
	}{
		{"success at once", nil, nil, 1, nil, nil},
		{"transient then success", nil, []error{transient(503, 0), transient(500, 0)}, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, nil},
		{"exponential growth capped at Max", nil,
			[]error{transient(503, 0), transient(503, 0), transient(503, 0), transient(503, 0), transient(503, 0), transient(503, 0)}, 7,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}, nil},
		{"Retry-After is a floor", nil, []error{transient(429, 5*time.Second), transient(429, 10*time.Millisecond)}, 3,
			[]time.Duration{5 * time.Second, 200 * time.Millisecond}, nil},
		{"permanent stops at once", nil, []error{permanent}, 1, nil, ErrConflict},
		{"not found is not retried", nil, []error{&APIError{Op: "t", Status: 404}}, 1, nil, ErrNotFound},
		{"invalid input is not retried", nil, []error{invalidf("bad")}, 1, nil, ErrInvalidInput},
		{"transient then permanent", nil, []error{transient(502, 0), permanent}, 2, []time.Duration{100 * time.Millisecond}, ErrConflict},
		{"MaxAttempts", func(p RetryPolicy) RetryPolicy { p.MaxAttempts = 3; return p },
			[]error{transient(503, 0), transient(503, 0), transient(503, 0), transient(503, 0)}, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, ErrTransient},
		{"budget exhausted by backoff", func(p RetryPolicy) RetryPolicy { p.MaxElapsed = 350 * time.Millisecond; return p },
			[]error{transient(503, 0), transient(503, 0), transient(503, 0), transient(503, 0)}, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, ErrTransient},
		{"Retry-After beyond budget stops without waiting", func(p RetryPolicy) RetryPolicy { p.MaxElapsed = 10 * time.Second; return p },
			[]error{transient(429, 30*time.Second)}, 1, nil, ErrTransient},
		{"custom Retryable", func(p RetryPolicy) RetryPolicy {
			p.Retryable = func(err error) bool { return errors.Is(err, ErrConflict) }
			return p
		}, []error{permanent}, 2, []time.Duration{100 * time.Millisecond}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock(true)
			p := noJitter(clock)
			if tc.policy != nil {
				p = tc.policy(p)
			}
			var notified []int
			p.Notify = func(attempt int, err error, wait time.Duration) {
				if err == nil || wait <= 0 {
					t.Errorf("Notify(%d, %v, %v)", attempt, err, wait)
				}
				notified = append(notified, attempt)
			}
			op, calls := script(tc.errs...)
			attempts, err := p.Do(context.Background(), op)
			if attempts != tc.wantAttempts || *calls != tc.wantAttempts {
				t.Errorf("attempts = %d (op called %d times), want %d", attempts, *calls, tc.wantAttempts)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("err = %v, want success", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if got := clock.startedWaits(); !slices.Equal(got, tc.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tc.wantWaits)
			}
			if len(notified) != len(tc.wantWaits) {
				t.Errorf("Notify called for attempts %v, want %d calls", notified, len(tc.wantWaits))
			}
		})
	}
}

// TestRetryPolicyKeepsRetryAfter: the give-up error still carries the
// server's Retry-After, so the worker can NakWithDelay by it.
func TestRetryPolicyKeepsRetryAfter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(true)
	p := noJitter(clock)
	p.MaxElapsed = time.Second
	_, err := p.Do(context.Background(), func(context.Context) error { return transient(429, 42*time.Second) })
	if d, ok := RetryAfter(err); !ok || d != 42*time.Second {
		t.Fatalf("RetryAfter(%v) = %v, %v", err, d, ok)
	}
}

func TestRetryPolicyJitter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(true)
	p := noJitter(clock)
	p.Randomization = 0.5
	p.MaxAttempts = 40
	_, _ = p.Do(context.Background(), func(context.Context) error { return transient(503, 0) })
	waits := clock.startedWaits()
	if len(waits) != 39 {
		t.Fatalf("%d waits", len(waits))
	}
	distinct := map[time.Duration]bool{}
	for i, w := range waits {
		base := min(100*time.Millisecond<<i, time.Second)
		if i >= 4 {
			base = time.Second
		}
		if w < base/2 || w > base*3/2+time.Nanosecond {
			t.Errorf("wait %d = %v outside [%v, %v]", i, w, base/2, base*3/2)
		}
		distinct[w] = true
	}
	if len(distinct) < 10 {
		t.Errorf("only %d distinct waits in 39: no jitter?", len(distinct))
	}
}

func TestRetryPolicyContext(t *testing.T) {
	t.Parallel()
	t.Run("cancelled during a wait", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock(false) // timers never fire by themselves
		p := noJitter(clock)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var attempts int
		var err error
		go func() {
			defer close(done)
			attempts, err = p.Do(ctx, func(context.Context) error { return transient(503, 0) })
		}()
		waitFor(t, "the retry wait", func() bool { return clock.pending() == 1 })
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Do did not return after cancel")
		}
		if attempts != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTransient) {
			t.Errorf("attempts = %d, err = %v; want 1 and both context.Canceled and the last error", attempts, err)
		}
	})
	t.Run("already done", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		op, calls := script()
		attempts, err := noJitter(newFakeClock(true)).Do(ctx, op)
		if attempts != 0 || *calls != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("attempts = %d, calls = %d, err = %v", attempts, *calls, err)
		}
	})
	t.Run("op returns the context error", func(t *testing.T) {
		t.Parallel()
		op, calls := script(context.DeadlineExceeded)
		attempts, err := noJitter(newFakeClock(true)).Do(context.Background(), op)
		if attempts != 1 || *calls != 1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("attempts = %d, err = %v", attempts, err)
		}
	})
}

func TestRetryPolicyDefaults(t *testing.T) {
	t.Parallel()
	d := DefaultRetryPolicy()
	z := RetryPolicy{}.withDefaults()
	if z.Initial != d.Initial || z.Max != d.Max || z.Multiplier != d.Multiplier ||
		z.Randomization != d.Randomization || z.MaxElapsed != d.MaxElapsed || z.MaxAttempts != 0 {
		t.Errorf("zero policy defaults %+v differ from DefaultRetryPolicy %+v", z, d)
	}
	if z.Retryable == nil || z.Clock == nil || z.NewTimer == nil {
		t.Error("missing function defaults")
	}
	// A real wait, short: the system timer works.
	p := RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Randomization: -1, MaxElapsed: time.Second}
	op, calls := script(transient(503, 0), transient(503, 0))
	if n, err := p.Do(context.Background(), op); err != nil || n != 3 || *calls != 3 {
		t.Errorf("Do = %d, %v", n, err)
	}
}

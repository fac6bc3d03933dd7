package graphclient

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
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

// TestRetryPolicyJitter: each wait is the backoff interval spread by the
// draw u over [i*(1-r), i*(1+r)], with the draws fixed so that the test
// is deterministic.
func TestRetryPolicyJitter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(true)
	p := noJitter(clock)
	p.Randomization = 0.5
	p.MaxAttempts = 7
	draws := []float64{0, 0.5, 0.999999, 0.25, 0.75, 0.1}
	n := 0
	p.random = func() float64 { u := draws[n%len(draws)]; n++; return u }
	_, _ = p.Do(context.Background(), func(context.Context) error { return transient(503, 0) })
	got := clock.startedWaits()
	if len(got) != 6 || n != 6 {
		t.Fatalf("%d waits from %d draws, want 6", len(got), n)
	}
	// Intervals 100, 200, 400, 800 ms, then the 1 s cap.
	intervals := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	for i, iv := range intervals {
		lo, hi := float64(iv)/2, float64(iv)*3/2
		w := time.Duration(lo + draws[i]*(hi-lo+1))
		if got[i] != w {
			t.Errorf("wait %d = %v, want %v (interval %v, draw %v)", i, got[i], w, iv, draws[i])
		}
	}
	if got[0] != 50*time.Millisecond || got[1] != 200*time.Millisecond || got[3] != 600*time.Millisecond {
		t.Errorf("waits %v: want 50ms, 200ms and 600ms at draws 0, 0.5 and 0.25", got)
	}
	// No jitter with a negative Randomization: the draws are not used.
	p.Randomization = -1
	n = 0
	clock2 := newFakeClock(true)
	p.Clock, p.NewTimer = clock2, clock2.NewTimer
	p.MaxAttempts = 3
	_, _ = p.Do(context.Background(), func(context.Context) error { return transient(503, 0) })
	if got := clock2.startedWaits(); !slices.Equal(got, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}) {
		t.Errorf("without jitter waits = %v", got)
	}
}

// TestRetryPolicyValidate: every field out of its range is an error naming
// the field and the range; Do then makes no attempt. Nothing is clamped.
func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy RetryPolicy
		want   []string // substrings of the error; none: valid
	}{
		{"zero", RetryPolicy{}, nil},
		{"defaults", DefaultRetryPolicy(), nil},
		{"no jitter", RetryPolicy{Randomization: -1}, nil},
		{"full jitter", RetryPolicy{Randomization: 1}, nil},
		{"constant backoff", RetryPolicy{Multiplier: 1}, nil},
		{"Max equals Initial", RetryPolicy{Initial: time.Second, Max: time.Second}, nil},
		{"Max below default Initial is fine when Initial is set", RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond}, nil},
		{"upper bounds", RetryPolicy{Initial: MaxRetryInterval, Max: MaxRetryInterval, MaxElapsed: MaxRetryElapsed, MaxAttempts: 1}, nil},
		{"negative Initial", RetryPolicy{Initial: -time.Second},
			[]string{"RetryPolicy.Initial is -1s; want 0 (the default, 500ms) or more than 0 and at most 1h"}},
		{"Initial too long", RetryPolicy{Initial: 2 * time.Hour}, []string{"Initial is 2h"}},
		{"negative Max", RetryPolicy{Max: -1}, []string{"RetryPolicy.Max is -1ns; want 0 (the default, 30s) or from Initial to 1h"}},
		{"Max too long", RetryPolicy{Max: 61 * time.Minute}, []string{"Max is 1h1m"}},
		{"Max below Initial", RetryPolicy{Initial: 2 * time.Second, Max: time.Second}, []string{"RetryPolicy.Max is 1s, below Initial 2s"}},
		{"Max below the default Initial", RetryPolicy{Max: 100 * time.Millisecond}, []string{"Max is 100ms, below Initial 500ms"}},
		{"default Max below Initial", RetryPolicy{Initial: time.Minute}, []string{"Max is 30s (the default), below Initial 1m"}},
		{"Multiplier below 1", RetryPolicy{Multiplier: 0.5}, []string{"RetryPolicy.Multiplier is 0.5; want 0 (the default, 2) or a finite number of at least 1"}},
		{"negative Multiplier", RetryPolicy{Multiplier: -2}, []string{"Multiplier is -2"}},
		{"NaN Multiplier", RetryPolicy{Multiplier: math.NaN()}, []string{"Multiplier is NaN"}},
		{"infinite Multiplier", RetryPolicy{Multiplier: math.Inf(1)}, []string{"Multiplier is +Inf"}},
		{"Randomization above 1", RetryPolicy{Randomization: 1.5},
			[]string{"RetryPolicy.Randomization is 1.5; want 0 (the default, 0.5), more than 0 and at most 1, or negative for no jitter"}},
		{"NaN Randomization", RetryPolicy{Randomization: math.NaN()}, []string{"Randomization is NaN"}},
		{"negative MaxElapsed", RetryPolicy{MaxElapsed: -time.Minute},
			[]string{"RetryPolicy.MaxElapsed is -1m; want 0 (the default, 1m) or more than 0 and at most 24h"}},
		{"MaxElapsed too long", RetryPolicy{MaxElapsed: 25 * time.Hour}, []string{"MaxElapsed is 25h"}},
		{"negative MaxAttempts", RetryPolicy{MaxAttempts: -1}, []string{"RetryPolicy.MaxAttempts is -1; want 0 (no limit) or at least 1"}},
		{"several at once", RetryPolicy{Initial: -1, Multiplier: 0.1, MaxAttempts: -3},
			[]string{"Initial is -1ns", "Multiplier is 0.1", "MaxAttempts is -3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.policy.Validate()
			op, calls := script()
			p := tc.policy
			clock := newFakeClock(true)
			p.Clock, p.NewTimer = clock, clock.NewTimer
			n, derr := p.Do(context.Background(), op)
			if len(tc.want) == 0 {
				if err != nil || derr != nil || n != 1 {
					t.Fatalf("Validate = %v; Do = %d, %v; want valid", err, n, derr)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if derr == nil || derr.Error() != err.Error() || n != 0 || *calls != 0 {
				t.Errorf("Do = %d attempts (op called %d times), %v; want 0 and Validate's error", n, *calls, derr)
			}
		})
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

package graphclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func newTestThrottle(clock *fakeClock, minL, maxL, initial int) *Throttle {
	return mustThrottle(ThrottleConfig{MinLimit: minL, MaxLimit: maxL, InitialLimit: initial,
		Clock: clock, NewTimer: clock.NewTimer})
}

func mustThrottle(cfg ThrottleConfig) *Throttle {
	th, err := NewThrottle(cfg)
	if err != nil {
		panic(err)
	}
	return th
}

func mustAcquire(t *testing.T, th *Throttle) permit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := th.acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return p
}

// TestThrottleAIMD: halve on 429/503 (once per round), grow by about one
// per limit's worth of successes, stay within floor and ceiling.
func TestThrottleAIMD(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(true)
	th := newTestThrottle(clock, 2, 16, 16)
	if got := th.Limit(); got != 16 {
		t.Fatalf("initial limit %d", got)
	}

	// Four requests in flight get 429 together: one halving, not four.
	var ps []permit
	for range 4 {
		ps = append(ps, mustAcquire(t, th))
	}
	for _, p := range ps {
		th.release(p, 429, 0)
	}
	if got := th.Limit(); got != 8 {
		t.Errorf("after one round of 429s limit = %d, want 8", got)
	}
	// A request sent after the decrease may decrease again.
	clock.Advance(time.Hour) // past any pause
	th.release(mustAcquire(t, th), 503, 0)
	if got := th.Limit(); got != 4 {
		t.Errorf("after 503 limit = %d, want 4", got)
	}
	for range 10 {
		th.release(mustAcquire(t, th), 429, 0)
		clock.Advance(time.Hour)
	}
	if got := th.Limit(); got != 2 {
		t.Errorf("limit = %d, want the floor 2", got)
	}

	// Additive increase: from 2, about 8 × limit successes per +1 (each
	// adds 1/(8·limit): 2 -> 2.06 -> ... -> 2.99 after 19 -> 3.01 after 20).
	for range 19 {
		th.release(mustAcquire(t, th), 200, 0)
	}
	if got := th.Limit(); got != 2 {
		t.Errorf("after 19 successes at limit 2: %d, want still 2", got)
	}
	th.release(mustAcquire(t, th), 200, 0)
	if got := th.Limit(); got != 3 {
		t.Errorf("after 20 successes at limit 2: %d, want 3", got)
	}
	for range 5000 {
		th.release(mustAcquire(t, th), 204, 0)
	}
	if got := th.Limit(); got != 16 {
		t.Errorf("after many successes limit = %d, want the ceiling 16", got)
	}
	// Other failures neither grow nor shrink it; a 4xx is the service
	// answering, so it counts as capacity.
	th.release(mustAcquire(t, th), 0, 0)
	th.release(mustAcquire(t, th), 500, 0)
	if got := th.Limit(); got != 16 {
		t.Errorf("after 0/500 limit = %d, want 16", got)
	}
	if th.InFlight() != 0 {
		t.Errorf("in flight = %d after all releases", th.InFlight())
	}
}

// TestThrottlePause: after a 429 with Retry-After, new requests wait until
// the pause ends; the wait is context-aware.
func TestThrottlePause(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(false)
	th := newTestThrottle(clock, 1, 8, 8)
	start := clock.Now()
	th.release(mustAcquire(t, th), 429, 3*time.Second)
	if got, want := th.PausedUntil(), start.Add(3*time.Second); !got.Equal(want) {
		t.Fatalf("PausedUntil = %v, want %v", got, want)
	}

	got := make(chan error, 1)
	go func() {
		p, err := th.acquire(context.Background())
		if err == nil {
			th.release(p, 200, 0)
		}
		got <- err
	}()
	waitFor(t, "the pause wait", func() bool { return clock.pending() == 1 })
	select {
	case err := <-got:
		t.Fatalf("acquire returned during the pause: %v", err)
	default:
	}
	if w := clock.startedWaits(); len(w) != 1 || w[0] != 3*time.Second {
		t.Errorf("waits = %v, want [3s]", w)
	}
	clock.Advance(3 * time.Second)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("acquire after the pause: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire did not return after the pause")
	}

	// A shorter Retry-After does not shorten a longer pause; a 429 without
	// one pauses for the default (with "Retry-After: 0", not at all); a 503
	// without one does not pause.
	th.release(mustAcquire(t, th), 429, 10*time.Second)
	clock.Advance(10 * time.Second)
	now := clock.Now()
	th2 := newTestThrottle(clock, 1, 8, 8)
	th2.pausedUntil = now.Add(time.Minute)
	th2.inFlight++
	th2.release(permit{}, 429, time.Second)
	if !th2.PausedUntil().Equal(now.Add(time.Minute)) {
		t.Errorf("a shorter Retry-After shortened the pause")
	}
	th3 := newTestThrottle(clock, 1, 8, 8)
	th3.inFlight += 2
	th3.release(permit{}, 503, -1)
	if !th3.PausedUntil().IsZero() {
		t.Errorf("503 without Retry-After paused until %v", th3.PausedUntil())
	}
	th5 := newTestThrottle(clock, 1, 8, 8)
	th5.release(mustAcquire(t, th5), 429, 0)
	if !th5.PausedUntil().IsZero() {
		t.Errorf("429 with Retry-After: 0 paused until %v", th5.PausedUntil())
	}
	th3.release(permit{epoch: 1}, 429, -1)
	if got := th3.PausedUntil(); !got.Equal(now.Add(DefaultThrottleDefaultPause)) {
		t.Errorf("429 without Retry-After paused until %v, want %v", got, now.Add(DefaultThrottleDefaultPause))
	}
	th4 := mustThrottle(ThrottleConfig{MaxPause: time.Minute, Clock: clock, NewTimer: clock.NewTimer})
	th4.release(mustAcquire(t, th4), 429, time.Hour)
	if got := th4.PausedUntil(); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("pause not capped by MaxPause: until %v", got)
	}

	// Cancellation during a pause.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := th4.acquire(ctx); errc <- err }()
	waitFor(t, "the second pause wait", func() bool { return clock.pending() == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("acquire err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire did not return after cancel")
	}
}

// TestThrottleConcurrencyLimit: no more than Limit requests hold a slot;
// a waiter gets the slot when one is released; a cancelled waiter leaves.
func TestThrottleConcurrencyLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(true)
	th := newTestThrottle(clock, 1, 2, 2)
	a := mustAcquire(t, th)
	b := mustAcquire(t, th)

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := th.acquire(ctx); cancelled <- err }()
	waiting := make(chan permit, 1)
	go func() {
		waitFor(t, "first waiter", func() bool { th.mu.Lock(); defer th.mu.Unlock(); return len(th.waiters) == 1 })
		p, err := th.acquire(context.Background())
		if err != nil {
			t.Errorf("acquire: %v", err)
		}
		waiting <- p
	}()
	waitFor(t, "two waiters", func() bool { th.mu.Lock(); defer th.mu.Unlock(); return len(th.waiters) == 2 })
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	select {
	case <-waiting:
		t.Fatal("a third request got a slot while the limit is 2")
	default:
	}
	if th.InFlight() != 2 {
		t.Fatalf("in flight = %d", th.InFlight())
	}
	th.release(a, 200, 0)
	select {
	case p := <-waiting:
		th.release(p, 200, 0)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the released slot")
	}
	th.release(b, 200, 0)
	if th.InFlight() != 0 {
		t.Errorf("in flight = %d", th.InFlight())
	}
}

func TestThrottleConfigDefaults(t *testing.T) {
	t.Parallel()
	th := mustThrottle(ThrottleConfig{})
	if th.Limit() != DefaultThrottleMaxLimit || th.minLimit != DefaultThrottleMinLimit || th.maxLimit != DefaultThrottleMaxLimit ||
		th.defaultPause != DefaultThrottleDefaultPause || th.maxPause != DefaultThrottleMaxPause {
		t.Errorf("defaults: limit %d min %v max %v pause %v..%v", th.Limit(), th.minLimit, th.maxLimit, th.defaultPause, th.maxPause)
	}
	th = mustThrottle(ThrottleConfig{MinLimit: 3, MaxLimit: 5})
	if th.Limit() != 5 {
		t.Errorf("InitialLimit 0 starts at %d, want MaxLimit 5", th.Limit())
	}
}

// TestThrottleConfigValidate: every field out of its range is an error
// naming the field and the range; nothing is clamped.
func TestThrottleConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ThrottleConfig
		want []string // substrings of the error; none: valid
	}{
		{"zero", ThrottleConfig{}, nil},
		{"all set", ThrottleConfig{MinLimit: 2, MaxLimit: 16, InitialLimit: 4, DefaultPause: time.Second, MaxPause: time.Minute}, nil},
		{"limits equal", ThrottleConfig{MinLimit: 7, MaxLimit: 7, InitialLimit: 7}, nil},
		{"upper bounds", ThrottleConfig{MinLimit: MaxThrottleLimit, MaxLimit: MaxThrottleLimit, DefaultPause: time.Hour, MaxPause: MaxThrottlePause}, nil},
		{"negative MinLimit", ThrottleConfig{MinLimit: -1}, []string{"ThrottleConfig.MinLimit is -1; want 0 (the default, 1) or 1..MaxLimit"}},
		{"MinLimit too large", ThrottleConfig{MinLimit: MaxThrottleLimit + 1, MaxLimit: MaxThrottleLimit}, []string{"MinLimit is 1025"}},
		{"negative MaxLimit", ThrottleConfig{MaxLimit: -4}, []string{"ThrottleConfig.MaxLimit is -4; want 0 (the default, 32) or MinLimit..1024"}},
		{"MaxLimit too large", ThrottleConfig{MaxLimit: 5000}, []string{"MaxLimit is 5000"}},
		{"max below min", ThrottleConfig{MinLimit: 5, MaxLimit: 3}, []string{"MaxLimit is 3, below MinLimit 5"}},
		{"default max below min", ThrottleConfig{MinLimit: 40}, []string{"MaxLimit is 32 (the default), below MinLimit 40"}},
		{"initial above max", ThrottleConfig{MinLimit: 2, MaxLimit: 8, InitialLimit: 100}, []string{"InitialLimit is 100; want 0 (the default, MaxLimit) or MinLimit..MaxLimit (2..8)"}},
		{"initial below min", ThrottleConfig{MinLimit: 4, InitialLimit: 2}, []string{"InitialLimit is 2"}},
		{"negative initial", ThrottleConfig{InitialLimit: -1}, []string{"InitialLimit is -1"}},
		{"negative DefaultPause", ThrottleConfig{DefaultPause: -time.Second}, []string{"ThrottleConfig.DefaultPause is -1s; want 0 (the default, 1s) or more than 0 and at most MaxPause"}},
		{"DefaultPause above MaxPause", ThrottleConfig{DefaultPause: 2 * time.Minute, MaxPause: time.Minute}, []string{"DefaultPause is 2m, above MaxPause 1m"}},
		{"DefaultPause above default MaxPause", ThrottleConfig{DefaultPause: 10 * time.Minute}, []string{"DefaultPause is 10m, above MaxPause 5m"}},
		{"default DefaultPause above MaxPause", ThrottleConfig{MaxPause: 500 * time.Millisecond}, []string{"DefaultPause is 1s (the default), above MaxPause 500ms"}},
		{"negative MaxPause", ThrottleConfig{MaxPause: -time.Minute}, []string{"ThrottleConfig.MaxPause is -1m; want 0 (the default, 5m) or more than 0 and at most 1h"}},
		{"MaxPause too long", ThrottleConfig{MaxPause: 2 * time.Hour}, []string{"MaxPause is 2h"}},
		{"several at once", ThrottleConfig{MinLimit: -1, MaxPause: -1}, []string{"MinLimit is -1", "MaxPause is -1ns"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			th, nerr := NewThrottle(tc.cfg)
			if len(tc.want) == 0 {
				if err != nil || nerr != nil || th == nil {
					t.Fatalf("Validate = %v, NewThrottle = %v, %v; want valid", err, th, nerr)
				}
				return
			}
			if err == nil || nerr == nil || th != nil {
				t.Fatalf("Validate = %v, NewThrottle = %v, %v; want an error", err, th, nerr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if nerr.Error() != err.Error() {
				t.Errorf("NewThrottle error %q differs from Validate's %q", nerr, err)
			}
		})
	}
}

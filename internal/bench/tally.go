package bench

import (
	"context"
	"fmt"
	"maps"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// tally counts the results published on an env, as a client subscribed to
// authflow.results.> sees them, and notes when each arrived.
type tally struct {
	sub *nats.Subscription

	mu        sync.Mutex
	arrivals  []time.Time
	bad       int    // results whose status is not succeeded
	badStatus string // the first such status
	byID      map[string]time.Time
	target    int
	reached   chan struct{}
}

// countResults subscribes to every result. Once target results have
// arrived, reached is closed. With recordIDs, the arrival time of each
// event id (header Authflow-Event-Id) is kept too, and target counts
// distinct events: an event applied by the interactive lane has its result
// republished when its partition reaches it.
func (e *env) countResults(target int, recordIDs bool) (*tally, error) {
	t := &tally{target: target, reached: make(chan struct{})}
	if recordIDs {
		t.byID = make(map[string]time.Time, target)
	}
	if target <= 0 {
		close(t.reached)
	}
	sub, err := e.nc.Subscribe(worker.ResultsSubjectPrefix+">", t.observe)
	if err != nil {
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	// Never drop a result: a slow observer would look like a slow worker.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	if err := e.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	t.sub = sub
	return t, nil
}

func (t *tally) observe(m *nats.Msg) {
	now := time.Now()
	status := m.Header.Get(worker.HeaderStatus)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.arrivals = append(t.arrivals, now)
	if status != string(events.StatusSucceeded) {
		if t.bad == 0 {
			t.badStatus = status
		}
		t.bad++
	}
	if t.byID != nil {
		if id := m.Header.Get(worker.HeaderEventID); id != "" {
			if _, dup := t.byID[id]; !dup {
				t.byID[id] = now
			}
		}
	}
	n := len(t.arrivals)
	if t.byID != nil {
		n = len(t.byID)
	}
	if n == t.target {
		close(t.reached)
	}
}

// wait waits until target results have arrived (true) or until the
// deadline or ctx (false).
func (t *tally) wait(ctx context.Context, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-t.reached:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// count is the number of results so far.
func (t *tally) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.arrivals)
}

// snapshot returns the arrival times so far and the number of results
// that were not succeeded (with the first such status).
func (t *tally) snapshot() (arrivals []time.Time, bad int, badStatus string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.arrivals...), t.bad, t.badStatus
}

// arrivalOf returns when the result of event id arrived.
func (t *tally) arrivalOf(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.byID[id]
	return at, ok
}

// distinct is the number of events with a result so far (with recordIDs).
func (t *tally) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// byIDSnapshot is a copy of the first arrival of each event's result.
func (t *tally) byIDSnapshot() map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.byID)
}

func (t *tally) stop() { _ = t.sub.Unsubscribe() }

// checkResults fails when a result was not succeeded: the bench measures
// work done, and a failing event would make any figure meaningless.
func (t *tally) checkResults(what string) error {
	_, bad, status := t.snapshot()
	if bad > 0 {
		return fmt.Errorf("%s: %d results not succeeded (first: status %q)", what, bad, status)
	}
	return nil
}

// steadyRate is the throughput of a drain: the completions between the 5th
// and the 95th percent of the expected count per second, so that neither
// the ramp-up nor the uneven tail of the partitions weighs in. When fewer
// results arrived (the drain was cut short), the window ends at the last.
// With too few results for a window it falls back to count / time since
// start.
func steadyRate(start time.Time, arrivals []time.Time, expected int) float64 {
	n := len(arrivals)
	if n == 0 {
		return 0
	}
	lo := expected / 20
	hi := min(n-1, expected*95/100)
	if hi-lo >= 10 {
		if d := arrivals[hi].Sub(arrivals[lo]); d > 0 {
			return float64(hi-lo) / d.Seconds()
		}
	}
	if d := arrivals[n-1].Sub(start); d > 0 {
		return float64(n) / d.Seconds()
	}
	return 0
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

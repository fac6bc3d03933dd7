package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// InteractiveRate is the rate of the interactive scenario's helpdesk
// events, per second: a busy helpdesk, far below the worker's capacity.
const InteractiveRate = 2.0

// interactiveExtraUsers are seeded beside Users for the interactive events
// of users with nothing queued: no bulk event targets them.
const interactiveExtraUsers = 1_000

// interactivePhaseEnd is the share of the backlog drained at which the
// interactive events stop, so that users with queued bulk events remain
// to the last one.
const interactivePhaseEnd = 0.8

// interactiveSlack is what the issue allows an interactive event on top of
// its own work and that of the bulk events it brings forward.
const interactiveSlack = 2 * time.Second

// runInteractive: InteractiveBacklog bulk events are stored, the worker
// starts, and while it drains them helpdesk events arrive at
// InteractiveRate, alternately for a user with nothing queued and for a
// user who still has bulk events queued (which the event must bring
// forward). Graph at Latency, no budget.
func runInteractive(ctx context.Context, cfg Config, r *Report) error {
	n := cfg.InteractiveBacklog
	faults := graphclienttest.Faults{LatencyMs: int(cfg.Latency / time.Millisecond)}
	e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, sync: cfg.Sync, users: cfg.Users, extraUsers: interactiveExtraUsers,
		partitions: cfg.Partitions, faults: faults, log: cfg.Logger})
	if err != nil {
		return err
	}
	defer e.close()
	if err := e.publishBacklog(ctx, "b", 0, n); err != nil {
		return err
	}
	t, err := e.countResults(math.MaxInt, true)
	if err != nil {
		return err
	}
	defer t.stop()
	w, err := startWorker(ctx, workerSpec{natsURL: e.ns.ClientURL(), graphURL: e.graphURL, token: e.token,
		concurrency: cfg.Concurrency, partitions: cfg.Partitions})
	if err != nil {
		return err
	}
	sent, err := sendInteractive(ctx, cfg, e, t, w, n)
	if stopErr := w.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	if err := settle(ctx, e, t); err != nil {
		return err
	}
	if err := t.checkResults("interactive under bulk"); err != nil {
		return err
	}
	rpe := cmp.Or(r.Concurrency.RequestsPerEvent, 3)
	in, err := interactiveFigures(t.byIDSnapshot(), sent, n, cfg.Users, time.Duration(rpe*float64(cfg.Latency)), r.Concurrency.TheoreticalRate)
	if err != nil {
		return err
	}
	r.Interactive = in
	cfg.Logger.Info("bench interactive", "free_p99", in.Free.P99.String(), "queued_p99", in.Queued.P99.String(),
		"inherited_mean", in.InheritedMean, "bulk_eps", in.BulkRate, "drain_vs_limit", in.DrainVsLimit)
	return nil
}

// interactiveSent is one interactive event: whom it was for and when it
// left.
type interactiveSent struct {
	id     string
	user   int
	queued bool // for a user with bulk events in the backlog
	at     time.Time
}

// sendInteractive publishes the interactive events once the worker is
// ready, at InteractiveRate, until interactivePhaseEnd of the backlog has
// results (at least two of each kind), then waits for every result.
func sendInteractive(ctx context.Context, cfg Config, e *env, t *tally, w *workerRun, n int) ([]interactiveSent, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := w.waitReady(rctx)
	cancel()
	if err != nil {
		return nil, err
	}
	bulkUsers := min(cfg.Users, n)
	interval := time.Duration(float64(time.Second) / InteractiveRate)
	var sent []interactiveSent
	t0 := time.Now()
	for i := 0; ; i++ {
		// Results of bulk events so far, at least: every interactive
		// event sent is counted as having its result.
		bulkDone := max(0, t.distinct()-len(sent))
		if i >= 4 && i%2 == 0 && float64(bulkDone) >= interactivePhaseEnd*float64(n) {
			break
		}
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		s := interactiveSent{queued: i%2 == 1}
		if s.queued {
			// A user with an event well ahead of the drain: a stream
			// position between the drain's and the end (a Weyl sequence,
			// deterministic), so users bring forward from one to all of
			// their remaining events.
			ahead := max(1, n-bulkDone)
			s.user = (bulkDone + (i/2*7919)%ahead) % bulkUsers
			s.id = "iq-" + strconv.Itoa(i/2)
		} else {
			s.user = cfg.Users + (i/2)%interactiveExtraUsers
			s.id = "if-" + strconv.Itoa(i/2)
		}
		ev, err := phoneEvent(interactiveSource, s.id, s.user, interactiveNumber(s.user), time.Now())
		if err != nil {
			return nil, err
		}
		s.at = time.Now()
		if _, err := e.js.PublishMsgAsync(ev.message()); err != nil {
			return nil, fmt.Errorf("publish interactive event: %w", err)
		}
		sent = append(sent, s)
	}
	// The rest of the backlog at a tenth of scenario 2's pace at worst.
	deadline := time.Now().Add(time.Minute + time.Duration(float64(n)*float64(time.Second)/10))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for t.distinct() < n+len(sent) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d results after the interactive events", t.distinct(), n+len(sent))
		}
	}
	return sent, nil
}

// interactiveFigures computes the scenario's figures from the first
// arrival of each event's result. An interactive event's inherited events
// are its user's bulk events whose result came after it was published.
func interactiveFigures(arrivals map[string]time.Time, sent []interactiveSent, n, users int, perEvent time.Duration, limit float64) (Interactive, error) {
	in := Interactive{Backlog: n, Rate: InteractiveRate, PerEvent: perEvent, Limit: limit}
	if len(sent) == 0 {
		return in, fmt.Errorf("no interactive event sent")
	}
	var free, queued []time.Duration
	inherited := 0
	for _, s := range sent {
		at, ok := arrivals[s.id]
		if !ok {
			return in, fmt.Errorf("no result for interactive event %s", s.id)
		}
		lat := at.Sub(s.at)
		if !s.queued {
			free = append(free, lat)
			continue
		}
		queued = append(queued, lat)
		k := 0
		for m := s.user; m < n; m += users {
			if bt, ok := arrivals["b-"+strconv.Itoa(m)]; ok && bt.After(s.at) {
				k++
			}
		}
		inherited += k
		in.InheritedMax = max(in.InheritedMax, k)
		if lat <= time.Duration(k+1)*perEvent+interactiveSlack {
			in.WithinBound++
		}
	}
	in.Free, in.Queued = latencyStats(free), latencyStats(queued)
	if len(queued) > 0 {
		in.InheritedMean = float64(inherited) / float64(len(queued))
	}
	// The bulk drain while the interactive events arrived.
	first, last := sent[0].at, sent[len(sent)-1].at
	in.Window = last.Sub(first)
	bulk := 0
	for id, at := range arrivals {
		if strings.HasPrefix(id, "b-") && !at.Before(first) && !at.After(last) {
			bulk++
		}
	}
	if in.Window > 0 {
		in.BulkRate = float64(bulk) / in.Window.Seconds()
	}
	in.DrainVsLimit = ratio(in.BulkRate, limit)
	return in, nil
}

func latencyStats(ds []time.Duration) LatencyStats {
	return LatencyStats{Events: len(ds), P50: percentile(ds, 50), P99: percentile(ds, 99), Max: percentile(ds, 100)}
}

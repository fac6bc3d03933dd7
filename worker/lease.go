package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/authflow/authflow/events"
)

// Fencing. JetStream alone cannot promise that only one worker works on an
// event: after a NATS server restart (or a worker paused past AckWait) the
// server may hand an event to a second worker while the first is alive.
// So an attempt owns its event through a lease in the ledger record:
//
//   - claiming writes Owner, a fresh Token, Attempt+1 and LeaseUntil =
//     now + AckWait, by compare-and-set on the revision read;
//   - the owner renews the lease (compare-and-set again) every AckWait/3
//     while it works, and every ledger write it makes is a renewal too;
//   - before each Graph write the owner checks that its lease has at least
//     MaxClockSkew left, and sends the write with a deadline of
//     LeaseUntil - MaxClockSkew: a worker that could not renew (NATS
//     down, paused, lost the record to another) stops before writing;
//   - another attempt may take the event over only when, on its own clock,
//     now >= LeaseUntil + MaxClockSkew; until then its delivery is handed
//     back with a delay, and it never touches Graph.
//
// With clocks that differ by less than MaxClockSkew, the last moment the old
// owner may start a write is before the first moment a new owner may claim:
// at most one attempt writes to Graph at any time, and an attempt that lost
// its lease learns it at its next renewal and stops (errLost).

// errLeaseExpired means the attempt could not renew its lease in time
// (NATS unreachable or the process was paused): it must not write to Graph.
var errLeaseExpired = errors.New("lease on the event expired (could not renew it with NATS)")

// hold is one attempt's ownership of its event's ledger record. Its methods
// are safe for concurrent use: the keep-alive renews while the attempt
// writes checkpoints.
type hold struct {
	l    ledger
	key  string
	ttl  time.Duration // lease length
	skew time.Duration // MaxClockSkew
	now  func() time.Time

	mu   sync.Mutex
	rec  *record
	rev  uint64
	lost error // set once the lease is lost for good
}

// snapshot returns a copy of the current record for reading.
func (h *hold) snapshot() record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.rec
}

// save applies change to the record and writes it, renewing the lease.
func (h *hold) save(ctx context.Context, change func(r *record)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	next := cloneRecord(h.rec)
	if change != nil {
		change(next)
	}
	next.Write++
	next.LeaseUntil = h.now().Add(h.ttl)
	rev, err := h.l.update(ctx, h.key, next, h.rev)
	if errors.Is(err, errLost) {
		h.lost = err
		return err
	}
	if err != nil {
		return err
	}
	h.rec, h.rev = next, rev
	return nil
}

// release ends the lease early (best effort): the attempt stops here and
// will not write to Graph again, so the next attempt need not wait.
func (h *hold) release(ctx context.Context) { h.releaseWith(ctx, nil) }

// releaseWith releases the lease, applying change in the same write.
func (h *hold) releaseWith(ctx context.Context, change func(r *record)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil || h.rec.State != stateInProgress {
		return
	}
	next := cloneRecord(h.rec)
	if change != nil {
		change(next)
	}
	next.Write++
	next.LeaseUntil = h.now().Add(-2 * h.skew)
	if rev, err := h.l.update(ctx, h.key, next, h.rev); err == nil {
		h.rec, h.rev = next, rev
	}
	h.lost = errLeaseExpired // nothing more from this attempt
}

// renew extends the lease; a finished record needs none.
func (h *hold) renew(ctx context.Context) error {
	h.mu.Lock()
	done := h.rec.State != stateInProgress // done, or parked: nothing to keep
	h.mu.Unlock()
	if done {
		return nil
	}
	return h.save(ctx, nil)
}

// fence returns a context for one Graph write: it fails when the lease has
// less than MaxClockSkew left (after trying to renew it), and otherwise
// carries a deadline MaxClockSkew before the lease ends.
func (h *hold) fence(ctx context.Context) (context.Context, context.CancelFunc, error) {
	h.mu.Lock()
	until, lost := h.rec.LeaseUntil, h.lost
	h.mu.Unlock()
	if lost != nil {
		return nil, nil, lost
	}
	// Renew first when less than a third of the lease is left, so that a
	// write does not start with only a sliver of lease.
	if until.Sub(h.now()) < h.ttl/3+h.skew {
		if err := h.renew(ctx); err != nil && errors.Is(err, errLost) {
			return nil, nil, err
		}
		h.mu.Lock()
		until = h.rec.LeaseUntil
		h.mu.Unlock()
	}
	deadline := until.Add(-h.skew)
	if !h.now().Before(deadline) {
		return nil, nil, errLeaseExpired
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	return wctx, cancel, nil
}

// leaseWait says whether a record's lease lets another attempt take over.
// It returns how long to wait before it does (0: take over now).
func leaseWait(r *record, now time.Time, skew time.Duration) time.Duration {
	if r.State != stateInProgress || r.LeaseUntil.IsZero() {
		return 0
	}
	free := r.LeaseUntil.Add(skew)
	if now.Before(free) {
		return free.Sub(now)
	}
	return 0
}

func cloneRecord(r *record) *record {
	c := *r
	if r.Approval != nil {
		a := *r.Approval
		c.Approval = &a
	}
	if r.Intents != nil {
		c.Intents = make(map[int]intent, len(r.Intents))
		for k, v := range r.Intents {
			c.Intents[k] = v
		}
	}
	if r.Checkpoints != nil {
		c.Checkpoints = make(map[int][]events.OpResult, len(r.Checkpoints))
		for k, v := range r.Checkpoints {
			c.Checkpoints[k] = v
		}
	}
	return &c
}

// describeLease is for logs.
func describeLease(r *record, now time.Time) string {
	return fmt.Sprintf("owner %s, attempt %d, lease ends in %s", r.Owner, r.Attempt, r.LeaseUntil.Sub(now).Round(time.Millisecond))
}

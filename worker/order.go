package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// Order with several events of a partition in flight. With
// PartitionInflight 1 the server keeps each key's order: it hands out a
// partition's next event only once the previous one is acked, and serves a
// redelivery first. Above 1 it hands out the next events while earlier ones
// are still unacked, and on a crash failover it redelivers an earlier event
// after later ones (nats-jetstream.md §3 measured it), so the worker keeps
// the order itself, from the ledger:
//
//	an event runs only once every earlier event stored on its subject (its
//	key) is finished — done in the ledger, at or below its partition's ack
//	floor, or unable to act (undecodable).
//
// Before an event of a partition runs, inOrder walks the key's earlier
// events above the ack floor (direct gets by subject, next_by_subj) and, for
// the first unfinished one, waits for the attempt that holds it, waits until
// a retry it was handed back for is due, or — nobody is on it — applies it
// itself through the one handling path (its own delivery, reached later, is
// answered from the ledger). The interactive lane uses the same walk for its
// priority inheritance. Each event is still claimed through its lease, so
// whichever way an event is reached it takes effect once, and no event of a
// key starts before the previous one has its result: the order survives
// crashes, restarts and failovers because it is read from the ledger, not
// from the order of deliveries.

// predState is what an earlier event of the same key needs.
type predState int

const (
	predDone  predState = iota // finished, or it cannot act
	predHeld                   // a live attempt holds it
	predLater                  // handed back for a retry that is due later
	predOpen                   // nobody is on it: the waiting event applies it
)

// inOrder returns nil once every event stored before seq on subject is
// finished. apply runs one such event that nobody is working on, returning
// the outcome of its handling. localHeld says whether a partition delivery
// of this replica that has not started yet counts as held (the partition
// path: it will run soon) or not (the interactive lane, which must not wait
// behind bulk work).
func (w *Worker) inOrder(ctx context.Context, subject string, seq uint64, localHeld bool,
	apply func(context.Context, *jetstream.RawStreamMsg) string) error {
	p, ok := partitionOfStored(subject)
	if !ok {
		return nil
	}
	floor, err := w.floors.get(ctx, w, p)
	if err != nil {
		return err
	}
	stream, err := w.eventsStream(ctx)
	if err != nil {
		return err
	}
	pause := orderPauseMin
	for from := floor + 1; from < seq; {
		m, err := w.getStored(ctx, stream, from, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Sequence >= seq {
			return nil
		}
		st, until, err := w.predecessor(ctx, m)
		if err != nil {
			return err
		}
		if st == predOpen && localHeld && w.turns.held(m.Sequence) {
			st = predHeld
		}
		wait := pause
		switch st {
		case predDone:
			from, pause = m.Sequence+1, orderPauseMin
			continue
		case predOpen:
			switch apply(ctx, m) {
			case outcomeSucceeded, outcomeFailed, outcomeRejected, outcomeDuplicate:
				from, pause = m.Sequence+1, orderPauseMin
				continue
			}
			// busy, retry, abandoned: look at it again after a pause.
		case predHeld:
			if !until.IsZero() {
				wait = min(wait, time.Until(until))
			}
		case predLater:
			wait = min(time.Until(until), orderPauseLater)
		}
		w.metrics.orderWaits.Inc()
		if !w.turns.wait(ctx, m.Sequence, max(wait, time.Millisecond)) {
			return ctx.Err()
		}
		pause = min(2*pause, orderPauseMax)
	}
	return nil
}

const (
	orderPauseMin   = 20 * time.Millisecond
	orderPauseMax   = time.Second
	orderPauseLater = 30 * time.Second
)

// predecessor reads what the stored event m needs from the ledger.
func (w *Worker) predecessor(ctx context.Context, m *jetstream.RawStreamMsg) (predState, time.Time, error) {
	src, id, _ := peekIdentity(m.Header, m.Data)
	if src == "" || id == "" {
		return predDone, time.Time{}, nil
	}
	rec, _, err := w.ledger.get(ctx, ledgerKey(src, id))
	if errors.Is(err, errCorrupt) {
		return predOpen, time.Time{}, nil // its handling ends it as failed
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	now := w.cfg.Now()
	switch {
	case rec == nil:
		doc := m.Data
		if events.IsBinary(m.Header) {
			if doc, err = events.StructuredFromBinary(m.Header, m.Data); err != nil {
				return predDone, time.Time{}, nil // its own delivery dead-letters it
			}
		}
		if _, err := w.cfg.Decoder.Decode(doc); err != nil {
			// Undecodable: it cannot act; its own delivery dead-letters it
			// (applying it here too would dead-letter it twice).
			return predDone, time.Time{}, nil
		}
		return predOpen, time.Time{}, nil
	case rec.State == stateDone, rec.State == stateRedrive, rec.State == stateScheduled, rec.State == stateCancelled:
		// A re-drive is a new message, later in the stream, with its own
		// place; so is the copy of a scheduled event, at its effectiveAt.
		return predDone, time.Time{}, nil
	}
	if rec.State == stateParked && rec.Approval != nil {
		// Later events wait behind a parked one, up to its timeout.
		// A decision may come at any time: look again as for a held
		// event (up to every second), not only at its timeout.
		return predHeld, rec.Approval.ExpiresAt, nil
	}
	if wait := leaseWait(rec, now, w.cfg.MaxClockSkew); wait > 0 {
		return predHeld, now.Add(wait), nil
	}
	if rec.NotBefore.After(now) {
		return predLater, rec.NotBefore, nil
	}
	return predOpen, time.Time{}, nil
}

// turnstile knows which partition deliveries this replica has in hand and
// wakes the events waiting for one of them as soon as it ends, so an event
// waiting for an earlier one of its key on the same replica does not poll.
type turnstile struct {
	mu    sync.Mutex
	hands map[uint64]int
	wakes map[uint64]*wake
}

type wake struct {
	c       chan struct{}
	waiters int
}

func newTurnstile() *turnstile {
	return &turnstile{hands: map[uint64]int{}, wakes: map[uint64]*wake{}}
}

// enter records that the delivery of seq is in this replica's hands.
func (t *turnstile) enter(seq uint64) {
	t.mu.Lock()
	t.hands[seq]++
	t.mu.Unlock()
}

// leave ends enter and wakes the waiters of seq.
func (t *turnstile) leave(seq uint64) {
	t.mu.Lock()
	if t.hands[seq]--; t.hands[seq] <= 0 {
		delete(t.hands, seq)
	}
	t.mu.Unlock()
	t.done(seq)
}

func (t *turnstile) held(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hands[seq] > 0
}

// done wakes the waiters of seq: its handling ended here.
func (t *turnstile) done(seq uint64) {
	t.mu.Lock()
	if wk := t.wakes[seq]; wk != nil {
		close(wk.c)
		delete(t.wakes, seq)
	}
	t.mu.Unlock()
}

// wait waits up to d for the handling of seq to end here; false when ctx ended.
func (t *turnstile) wait(ctx context.Context, seq uint64, d time.Duration) bool {
	t.mu.Lock()
	wk := t.wakes[seq]
	if wk == nil {
		wk = &wake{c: make(chan struct{})}
		t.wakes[seq] = wk
	}
	wk.waiters++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if wk.waiters--; wk.waiters == 0 && t.wakes[seq] == wk {
			delete(t.wakes, seq)
		}
		t.mu.Unlock()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-wk.c:
	case <-timer.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// floorCache keeps each partition's ack floor for a short while: a floor
// read earlier is never above the current one, so a stale floor only makes
// inOrder look at more (finished) events, never skip an unfinished one.
type floorCache struct {
	mu  sync.Mutex
	at  map[int]time.Time
	seq map[int]uint64
}

const floorMaxAge = time.Second

func (f *floorCache) get(ctx context.Context, w *Worker, p int) (uint64, error) {
	f.mu.Lock()
	if at, ok := f.at[p]; ok && time.Since(at) < floorMaxAge {
		s := f.seq[p]
		f.mu.Unlock()
		return s, nil
	}
	f.mu.Unlock()
	s, err := w.partitionFloor(ctx, p)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	if f.at == nil {
		f.at, f.seq = map[int]time.Time{}, map[int]uint64{}
	}
	f.at[p], f.seq[p] = time.Now(), max(s, f.seq[p])
	f.mu.Unlock()
	return s, nil
}

// eventsStream is the events stream's handle, looked up once.
func (w *Worker) eventsStream(ctx context.Context) (jetstream.Stream, error) {
	w.streamMu.Lock()
	defer w.streamMu.Unlock()
	if w.stream != nil {
		return w.stream, nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.NATSTimeout)
	defer cancel()
	s, err := w.js.Stream(cctx, EventsStream)
	if err != nil {
		return nil, err
	}
	w.stream = s
	return s, nil
}

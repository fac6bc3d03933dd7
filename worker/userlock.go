package worker

import (
	"context"
	"strings"
	"time"
)

// One user, one lane. Publishers may name one Entra user by object id or by
// UPN, and so under two keys: two partitions, or the interactive lane and a
// partition, could then work on the same user at once. So once an attempt
// has resolved its user, it also takes a lease on the user ("u." + object
// id in the ledger bucket), with the same fencing rules as the event's own
// lease, before any write; another event of that user is handed back
// (busy) until the lease is released at the end of the event, or lapses.
// Two events of one user therefore never run at the same time, whatever
// their keys; between keys, their order is the order in which the workers
// reach them (per key it stays publish order).

func userKey(objectID string) string { return "u." + strings.ToLower(objectID) }

// lockUser takes the user's lease for this attempt, or reports how long
// another attempt still holds it.
func (d *delivery) lockUser(ctx context.Context, objectID string) (*hold, time.Duration, error) {
	w := d.w
	key := userKey(objectID)
	now := w.cfg.Now()
	tok := d.h.snapshot().Token
	next := &record{State: stateInProgress, Owner: w.cfg.Instance, Token: tok, Write: 1,
		LeaseUntil: now.Add(w.cfg.AckWait), BodyHash: d.lkey}
	cur, rev, err := w.ledger.get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	if cur == nil {
		rev, err = w.ledger.create(ctx, key, next)
	} else {
		if cur.Token != tok {
			if wait := leaseWait(cur, now, w.cfg.MaxClockSkew); wait > 0 {
				return nil, wait, nil
			}
		}
		rev, err = w.ledger.update(ctx, key, next, rev)
	}
	if err != nil {
		return nil, 0, err
	}
	return &hold{l: w.ledger, key: key, ttl: w.cfg.AckWait, skew: w.cfg.MaxClockSkew, now: w.cfg.Now, rec: next, rev: rev}, 0, nil
}

// bothFences fences a write by the event's lease and the user's: the
// deadline is the earlier of the two.
type bothFences struct{ a, b *hold }

func (f bothFences) fence(ctx context.Context) (context.Context, context.CancelFunc, error) {
	ctx1, cancel1, err := f.a.fence(ctx)
	if err != nil {
		return nil, nil, err
	}
	ctx2, cancel2, err := f.b.fence(ctx1)
	if err != nil {
		cancel1()
		return nil, nil, err
	}
	return ctx2, func() { cancel2(); cancel1() }, nil
}

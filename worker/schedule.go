package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// Future-dated events. An event whose data.effectiveAt is in the future is
// decoded, authenticated and policy-checked at once, answered with an
// interim result (status scheduled), and handed to JetStream's own message
// scheduler: a schedule message on authflow.schedules.<event key> in the
// events stream, with `Nats-Schedule: @at <time>` and `Nats-Schedule-Target:
// authflow.events.<key>`. At that time the server publishes the event again
// to its subject — it survives restarts, replicas and node loss, as any
// stream message does — and that copy is applied with every normal
// guarantee: re-checked against the policy in force then, ordered among the
// user's events at its effectiveAt, claimed through its lease.
//
// The ledger record of a scheduled event (state scheduled) is what later
// copies find; a stream's and the ledger's retention (LedgerTTL) would drop
// a schedule or a record that waits longer, so a schedule further ahead
// than half the ledger's retention fires early at a "hop": the worker sees
// the time has not come, refreshes the record and schedules the next hop.

const stateScheduled = "scheduled"

// outcomeScheduled: a future-dated event accepted and (re)scheduled.
const outcomeScheduled = "scheduled"

// scheduleSubject is the subject of the schedule of the event with key k.
func scheduleSubject(eventKey string) string { return SchedulesSubjectPrefix + eventKey }

// scheduledFor reports whether the event must still wait for its
// effectiveAt, and until when (dueNow: the scheduler's copy is due within a
// tolerance).
func (d *delivery) scheduledFor() (time.Time, bool) {
	at := d.ev.EffectiveAt
	if at.IsZero() || (d.rec != nil && d.rec.State != stateScheduled) {
		return time.Time{}, false
	}
	return at, d.dueNow().Before(at)
}

// dueNow is the time against which a delivery's due time is judged: now,
// or a little later for the copy the scheduler published (it carries
// Nats-Scheduler): the server's clock decided it, and the worker's may be a
// little behind.
func (d *delivery) dueNow() time.Time {
	now := d.w.cfg.Now()
	if d.msg.Headers().Get("Nats-Scheduler") != "" {
		now = now.Add(max(d.w.cfg.MaxClockSkew, scheduleTolerance))
	}
	return now
}

// scheduleTolerance: a scheduler's copy this early still runs.
const scheduleTolerance = 2 * time.Second

// fireTime is when the next schedule fires: at (rounded up to a whole
// second, the schedule's resolution) or, further ahead than half the
// ledger's retention, at a hop.
func fireTime(now, at time.Time, ledgerTTL time.Duration) time.Time {
	fire := at.Truncate(time.Second)
	if fire.Before(at) {
		fire = fire.Add(time.Second)
	}
	if hop := now.Add(ledgerTTL / 2).Truncate(time.Second); ledgerTTL > 0 && hop.Before(fire) {
		fire = hop
	}
	return fire
}

// schedule records the event as scheduled, schedules its next firing (at
// effectiveAt, or at a hop) and publishes the interim result; then acks.
// Every step is idempotent, so a crash anywhere is repaired by the
// redelivery.
func (d *delivery) schedule(ctx context.Context, at time.Time) string {
	w := d.w
	now := w.cfg.Now()
	if d.rec == nil {
		if ahead := w.cfg.Policy.MaxScheduleAhead(); at.Sub(now) > ahead {
			return d.reject(ctx, &events.Error{Code: events.CodeInvalidEvent, Field: "data.effectiveAt",
				Message: fmt.Sprintf("is %s ahead; the policy allows up to %s (maxScheduleAhead)", at.Sub(now).Round(time.Second), ahead)})
		}
	}
	// Write the record (create, or refresh a scheduled one so that the
	// ledger keeps it until the next hop).
	next := record{State: stateScheduled, BodyHash: d.hash, Received: d.received, EffectiveAt: at}
	var err error
	if d.rec == nil {
		_, err = w.ledger.create(ctx, d.lkey, &next)
	} else {
		next.Received = d.rec.Received
		_, err = w.ledger.update(ctx, d.lkey, &next, d.rev)
	}
	if err != nil {
		return d.retryLater(err)
	}
	fire := fireTime(now, at, w.cfg.LedgerTTL)
	if err := d.publishSchedule(ctx, fire); err != nil {
		return d.retryLater(err)
	}
	res := d.buildResult(events.StatusScheduled, nil, nil, nil)
	res.ID = events.InterimResultID(d.ev.Source, d.ev.ID, events.StatusScheduled)
	res.Data.Attempts = 0
	body, err := res.Marshal()
	if err != nil {
		return d.retryLater(err)
	}
	if err := d.publishResult(ctx, ResultSubject(d.key), "result:"+res.ID, body, events.StatusScheduled, res.Data.Event); err != nil {
		return d.retryLater(err)
	}
	d.ack(ctx)
	w.log.Info("event scheduled", "event_id", d.ev.ID, "source", d.ev.Source, "effective_at", at.Format(time.RFC3339), "fires", fire.Format(time.RFC3339))
	return outcomeScheduled
}

// publishSchedule stores the schedule message: the event's own bytes and
// headers (signature included, so the copy is authenticated again when it
// runs), minus the ones JetStream would act on.
func (d *delivery) publishSchedule(ctx context.Context, fire time.Time) error {
	m := nats.NewMsg(scheduleSubject(d.ev.Key()))
	m.Data = d.raw
	for k, vs := range d.msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		m.Header[k] = vs
	}
	m.Header.Set("Nats-Schedule", "@at "+fire.UTC().Format(time.RFC3339))
	m.Header.Set("Nats-Schedule-Target", EventsSubjectPrefix+d.key)
	// One schedule message per firing time: a redelivery's copy is dropped.
	return d.w.publish(ctx, "schedule", m, "schedule:"+d.ev.Key()+":"+fire.UTC().Format(time.RFC3339))
}

// stateCancelled: a scheduled event cancelled before its time; its copy
// ends it with the final status cancelled.
const stateCancelled = "cancelled"

// cancelScheduled handles authflow.schedule.cancel.v1: the named event
// must still wait for its effectiveAt and come from this event's source;
// its record is marked cancelled (compare-and-set) and its schedule made to
// fire at once, so that it ends cancelled now.
func (d *delivery) cancelScheduled(ctx context.Context) string {
	w := d.w
	p, _ := d.ev.Payload.(*events.ScheduleCancel)
	if p == nil {
		return d.reject(ctx, &events.Error{Code: events.CodeInternal, Message: "schedule cancel without its payload"})
	}
	tkey := "e." + p.EventKey
	trec, trev, err := w.ledger.get(ctx, tkey)
	if err != nil && !errors.Is(err, errCorrupt) {
		return d.retryLater(err)
	}
	if trec == nil || trec.State != stateScheduled {
		return d.reject(ctx, &events.Error{Code: events.CodeInvalidEvent, Field: "data.eventKey",
			Message: "no event waits for its effectiveAt under key " + p.EventKey + " (never scheduled, already run or cancelled)"})
	}
	src, err := w.scheduledSource(ctx, p.EventKey)
	if err != nil {
		return d.retryLater(err)
	}
	if src != d.ev.Source {
		return d.reject(ctx, &events.Error{Code: events.CodePolicyDenied, Field: "source",
			Message: "a scheduled event is cancelled by its own source only"})
	}
	if err := d.claim(ctx, true); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	stop := w.keepLease(ctx, d.h)
	defer stop()
	next := cloneRecord(trec)
	next.State = stateCancelled
	next.Write++
	if _, err := w.ledger.update(ctx, tkey, next, trev); err != nil {
		return d.retryLater(err) // it started meanwhile, or NATS failed: the retry sees which
	}
	if err := w.refire(ctx, p.EventKey); err != nil {
		w.log.Warn("cancel recorded; the scheduled event ends at its effectiveAt instead of now", "event_key", p.EventKey, "err", err)
	}
	return d.settle(ctx, events.StatusSucceeded, nil, nil, nil)
}

// lastSchedule reads the schedule of the event with key (the subject keeps
// only the latest).
func (w *Worker) lastSchedule(ctx context.Context, key string) (*jetstream.RawStreamMsg, error) {
	s, err := w.eventsStream(ctx)
	if err != nil {
		return nil, err
	}
	var m *jetstream.RawStreamMsg
	err = natsCall(ctx, "read schedule", w.cfg.NATSTimeout, 3, func(ctx context.Context) error {
		var err error
		m, err = s.GetLastMsgForSubject(ctx, scheduleSubject(key))
		return err
	})
	return m, err
}

// scheduledSource reads the source of the event scheduled under key, ""
// when there is no schedule.
func (w *Worker) scheduledSource(ctx context.Context, key string) (string, error) {
	m, err := w.lastSchedule(ctx, key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	src, _, _ := peekIdentity(m.Header, m.Data)
	return src, nil
}

// endCancelled ends a cancelled event: claimed, then settled cancelled.
func (d *delivery) endCancelled(ctx context.Context) string {
	if err := d.claim(ctx, false); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	return d.settle(ctx, events.StatusCancelled, nil, nil, nil)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// Outcomes of handling one delivery. Final outcomes end an event and are
// counted once in authflow_events_total; the others in
// authflow_deliveries_total.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed"
	outcomeRejected  = "rejected"

	outcomeDuplicate = "duplicate" // a finished event delivered again: its result republished
	outcomeRetry     = "retry"     // handed back to JetStream with a delay
	outcomeBusy      = "busy"      // another attempt holds a live lease: handed back until it lapses
	outcomeAbandoned = "abandoned" // stopped without acking: lost the lease, crash hook, shutdown
)

func finalOutcome(o string) bool {
	return o == outcomeSucceeded || o == outcomeFailed || o == outcomeRejected
}

// delivery is one delivery of one message being handled.
type delivery struct {
	w        *Worker
	msg      jetstream.Msg
	md       *jetstream.MsgMetadata
	key      string    // the publisher's user key (last subject token)
	raw      []byte    // the message body as stored (dead letters copy it)
	doc      []byte    // the event in structured mode: raw, or built from a binary-mode message
	received time.Time // this delivery

	ev   *events.Event
	lkey string  // ledger key
	hash string  // body hash
	rec  *record // the ledger record as read, nil when absent
	rev  uint64
	h    *hold // set once this attempt has claimed the event
	// approval is the parked event's approval once decided (approval.go).
	approval *approvalRecord
	authed   bool // the event passed CheckAuth
	tr       eventTrace
}

// handle processes one delivery; it never returns an error: every path ends
// in an ack (with a result or a dead letter), a delayed redelivery, or — on
// a crash, a lost lease or shutdown — no ack at all, so the server
// redelivers. A panic ends the event as failed (internal) with a dead
// letter instead of crashing every replica in turn.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) string {
	w.metrics.inFlight.Inc()
	defer w.metrics.inFlight.Dec()

	d := &delivery{w: w, msg: msg, key: keyOfStoredSubject(msg.Subject()), raw: msg.Data(), received: w.cfg.Now()}
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without metadata; handing back", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return outcomeRetry
	}
	d.md = md
	// Whatever the outcome, an event waiting for this one looks again.
	defer w.turns.done(md.Sequence.Stream)
	d.traceBegin()
	outcome := d.protected(ctx, d.process)
	d.traceEnd(outcome)
	typ := "invalid"
	if d.ev != nil {
		typ = d.ev.Type
	}
	if finalOutcome(outcome) {
		w.metrics.events.WithLabelValues(typ, outcome).Inc()
		w.metrics.duration.WithLabelValues(typ).Observe(w.cfg.Now().Sub(d.received).Seconds())
		w.metrics.lastProcessed.SetToCurrentTime()
	} else {
		w.metrics.deliveries.WithLabelValues(outcome).Inc()
		if outcome == outcomeDuplicate {
			w.metrics.lastProcessed.SetToCurrentTime()
		}
	}
	log := w.log.With("outcome", outcome, "type", typ, "stream_seq", md.Sequence.Stream, "delivery", md.NumDelivered)
	if d.ev != nil {
		log = log.With("event_id", d.ev.ID, "source", d.ev.Source)
	}
	log.Info("event handled", "ms", w.cfg.Now().Sub(d.received).Milliseconds())
	return outcome
}

// protected runs fn and turns a panic into a failed result (internal) with
// a dead letter; a panic while doing that dead-letters the raw bytes and
// terminates the message, so every path ends.
func (d *delivery) protected(ctx context.Context, fn func(context.Context) string) (outcome string) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		d.w.log.Error("panic while handling an event", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		outcome = d.afterPanic(ctx, r)
	}()
	return fn(ctx)
}

func (d *delivery) afterPanic(ctx context.Context, p any) (outcome string) {
	defer func() {
		if r := recover(); r != nil {
			d.w.log.Error("panic while settling a panicked event; dead-lettering its bytes", "panic", fmt.Sprint(r))
			outcome = d.terminate(ctx, events.CodeInternal, fmt.Sprintf("panic: %v", r))
		}
	}()
	info := errorInfo(events.CodeInternal, fmt.Sprintf("internal error (panic): %v", p))
	if d.ev == nil {
		return d.terminate(ctx, events.CodeInternal, info.Message)
	}
	return d.settle(ctx, events.StatusFailed, nil, nil, info)
}

// hardCap bounds the deliveries of one message whatever happens (a process
// that crashes on it, NATS failing every publish): past it the message is
// dead-lettered and terminated without decoding it. Attempts that ran the
// plan are bounded by MaxAttempts through the ledger.
func (w *Worker) hardCap() int { return 20*w.cfg.MaxAttempts + 20 }

func (d *delivery) process(ctx context.Context) string {
	w := d.w
	// Before anything else: a message that never got through is stopped.
	if n := int(d.md.NumDelivered); n > w.hardCap() {
		return d.terminate(ctx, events.CodeRetriesExhausted, fmt.Sprintf("delivered %d times without finishing", n))
	}
	d.doc = d.raw
	if events.IsBinary(d.msg.Headers()) {
		// The NATS binding's binary mode: attributes in ce- headers.
		doc, err := events.StructuredFromBinary(d.msg.Headers(), d.raw)
		if err != nil {
			return d.poison(d.traceDecoded(ctx, nil, err), err)
		}
		d.doc = doc
	}
	ev, err := w.cfg.Decoder.Decode(d.doc)
	ctx = d.traceDecoded(ctx, ev, err)
	if err != nil {
		return d.poison(ctx, err)
	}
	d.ev = ev
	d.lkey = ledgerKey(ev.Source, ev.ID)
	d.hash = bodyHash(d.doc)

	d.rec, d.rev, err = w.ledger.get(ctx, d.lkey)
	if errors.Is(err, errCorrupt) {
		return d.corrupt(ctx, err)
	}
	if err != nil {
		return d.retryLater(err)
	}
	if d.rec != nil && d.rec.BodyHash != d.hash {
		return d.conflict(ctx)
	}
	if d.rec != nil && d.rec.State == stateDone {
		return d.republish(ctx)
	}

	// Authenticity and policy first: no Graph call for a rejected event,
	// and a rejected event never takes the ledger slot of its source and id.
	if err := d.checkAuth(ctx); err != nil {
		return d.reject(ctx, err)
	}
	d.authed = true
	if d.rec == nil {
		// Freshness only on first acceptance: an event accepted once and
		// interrupted must finish, however late its retry comes.
		if err := d.checkFreshness(ctx); err != nil {
			return d.reject(ctx, err)
		}
	}
	plan, err := d.plan(ctx)
	if err != nil {
		return d.reject(ctx, err)
	}
	if at, wait := d.scheduledFor(); wait {
		return d.schedule(ctx, at)
	}

	if d.rec != nil && d.rec.State == stateCancelled {
		return d.endCancelled(ctx)
	}
	if d.rec != nil && d.rec.State == stateParked {
		if out := d.fromParked(ctx); out != "" {
			return out
		}
	}
	if d.rec != nil && d.rec.Approval != nil && d.rec.Approval.Decision == events.DecisionGranted {
		d.approval = d.rec.Approval // granted: runs, and never parks again
	}
	if d.rec != nil && d.rec.State == stateInProgress {
		if wait := leaseWait(d.rec, w.cfg.Now(), w.cfg.MaxClockSkew); wait > 0 {
			return d.busy(wait)
		}
	}
	if events.IsApproval(ev.Type) {
		return d.decide(ctx)
	}
	if ev.Type == events.TypeScheduleCancel {
		return d.cancelScheduled(ctx)
	}
	exhausted := d.rec != nil && d.rec.State == stateInProgress && d.rec.Attempt >= w.cfg.MaxAttempts
	if err := d.claim(ctx, !exhausted); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	stop := d.w.keepLease(ctx, d.h)
	defer stop()
	if exhausted {
		return d.exhausted(ctx, nil, fmt.Errorf("%d attempts did not finish", d.rec.Attempt))
	}

	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	// Every Graph request of this event carries its W3C trace context.
	actx = graphclient.WithTraceParent(actx, ev.TraceParent)
	user, err := d.resolve(actx)
	if err != nil {
		return d.afterError(ctx, nil, err)
	}
	uh, wait, err := d.lockUser(ctx, user.ID)
	if err != nil {
		if errors.Is(err, errLost) {
			return d.busyReleasing(time.Second)
		}
		return d.retryLater(err)
	}
	if uh == nil {
		return d.busyReleasing(wait)
	}
	stopUser := w.keepLease(ctx, uh)
	defer func() { stopUser(); uh.release(context.Background()) }()
	target := events.Target{ObjectID: user.ID, UPN: user.UserPrincipalName}
	if w.cfg.Policy.NeedsRoles(ev) {
		err := w.x.call(actx, func(ctx context.Context) error {
			var err error
			target.DirectoryRoles, err = w.cfg.Graph.DirectoryRoles(ctx, user.ID)
			return err
		})
		if err != nil {
			return d.afterError(ctx, nil, err)
		}
	}
	if err := d.checkTarget(ctx, target); err != nil {
		return d.settle(ctx, events.StatusRejected, &user, nil, infoOf(err))
	}
	if err := checkGuest(plan, user); err != nil {
		return d.settle(ctx, events.StatusRejected, &user, nil, infoOf(err))
	}

	if w.limiter != nil {
		checks := w.cfg.Policy.LimitChecks(ev, target, provenance(ev, d.msg.Headers(), d.authed).Signer)
		if len(checks) > 0 {
			dec, err := w.limiter.Take(actx, ev.Key(), checks)
			if err != nil {
				return d.retryLater(err)
			}
			if !dec.Allowed {
				return d.settle(ctx, events.StatusRejected, &user, nil, infoOf(dec.Err()))
			}
		}
	}

	if d.approval == nil && len(w.cfg.Policy.Approvals()) > 0 {
		var counter events.ApprovalCounter
		if w.limiter != nil {
			counter = w.limiter // a nil *Limiter in the interface would not be nil
		}
		rule, park, err := w.cfg.Policy.ApprovalRule(actx, ev, target, counter)
		if err != nil {
			return d.retryLater(err)
		}
		if park {
			return d.park(ctx, &user, rule)
		}
	}

	r := &run{x: w.x, user: user, dry: ev.DryRun, ck: d, h: bothFences{d.h, uh}}
	ops, err := r.execute(actx, plan)
	if err != nil {
		return d.afterError(ctx, ops, err)
	}
	status, info := events.StatusSucceeded, (*events.ErrorInfo)(nil)
	for _, o := range ops {
		if o.Outcome == events.OutcomeFailed {
			status, info = events.StatusFailed, o.Error
			break
		}
	}
	return d.settle(ctx, status, &user, ops, info)
}

// checkGuest refuses, before any write, what Graph does not offer guests.
func checkGuest(plan []events.Op, u graphclient.User) error {
	if u.UserType != "Guest" {
		return nil
	}
	for _, op := range plan {
		if op.Kind == events.OpIssueTAP {
			return &events.Error{Code: events.CodeGuestUser, Field: "subject",
				Message: "a Temporary Access Pass cannot be issued to a guest user"}
		}
	}
	return nil
}

// resolve finds the user in Graph.
func (d *delivery) resolve(ctx context.Context) (graphclient.User, error) {
	ref := d.ev.User.ObjectID
	if ref == "" {
		ref = d.ev.User.UPN
	}
	var u graphclient.User
	err := d.w.x.call(ctx, func(ctx context.Context) error {
		var err error
		u, err = d.w.cfg.Graph.ResolveUser(ctx, ref)
		return err
	})
	if err != nil {
		if errors.Is(err, graphclient.ErrNotFound) {
			return u, fmt.Errorf("resolve user: %w", graphclient.ErrUserNotFound)
		}
		return u, fmt.Errorf("resolve user: %w", err)
	}
	return u, nil
}

// afterError ends an attempt that hit err outside the per-operation results.
func (d *delivery) afterError(ctx context.Context, ops []events.OpResult, err error) string {
	switch {
	case errors.Is(err, errCrash):
		d.w.log.Warn("simulated crash", "event_id", d.ev.ID, "err", err)
		return outcomeAbandoned
	case errors.Is(err, errLost), errors.Is(err, errLeaseExpired):
		d.w.log.Warn("stopped: this attempt no longer owns the event", "event_id", d.ev.ID, "err", err)
		return outcomeAbandoned
	case ctx.Err() != nil:
		// Shutting down: hand the event back at once; the ledger says it is
		// in progress, so the next replica resumes it once the lease lapses.
		_ = d.msg.Nak()
		return outcomeAbandoned
	}
	info, transient := classify(err)
	if transient != nil {
		if d.h.snapshot().Attempt >= d.w.cfg.MaxAttempts {
			return d.exhausted(ctx, ops, err)
		}
		return d.retryLater(transient)
	}
	return d.settle(ctx, events.StatusFailed, nil, ops, info)
}

// claim records the event as in progress under a fresh lease of this
// attempt: a new record, a takeover of an interrupted attempt whose lease
// lapsed, or a re-drive an operator asked for. run says whether this
// attempt will run the plan (and so counts as one).
func (d *delivery) claim(ctx context.Context, run bool) error {
	w := d.w
	now := w.cfg.Now()
	var next record
	if d.rec == nil {
		next = record{State: stateInProgress, BodyHash: d.hash, Received: d.received}
	} else {
		next = *cloneRecord(d.rec)
		if next.State == stateRedrive {
			// A new run of a failed event: its own attempts and times.
			next.Attempt, next.Received, next.Started = 0, d.received, time.Time{}
			next.Intents, next.Checkpoints = nil, nil
			next.Result, next.ResultSubject, next.ResultMsgID = nil, "", ""
		}
		next.State = stateInProgress
	}
	if run {
		next.Attempt++
	}
	next.Owner, next.Token, next.Write = w.cfg.Instance, newUUID(), 1
	next.LeaseUntil = now.Add(w.cfg.AckWait)
	next.NotBefore = time.Time{}
	if next.Received.IsZero() {
		next.Received = d.received
	}
	if next.Started.IsZero() {
		next.Started = now
	}
	var (
		rev uint64
		err error
	)
	if d.rec == nil {
		rev, err = w.ledger.create(ctx, d.lkey, &next)
	} else {
		rev, err = w.ledger.update(ctx, d.lkey, &next, d.rev)
	}
	if err != nil {
		return err
	}
	d.h = &hold{l: w.ledger, key: d.lkey, ttl: w.cfg.AckWait, skew: w.cfg.MaxClockSkew, now: w.cfg.Now, rec: &next, rev: rev}
	return nil
}

// checkpoints over the held ledger record.

func (d *delivery) prior(i int) ([]events.OpResult, bool) {
	r, ok := d.h.snapshot().Checkpoints[i]
	return r, ok
}

func (d *delivery) priorIntent(i int) (intent, bool) {
	t, ok := d.h.snapshot().Intents[i]
	return t, ok
}

// intent records that step i is about to call Graph for a secret, with the
// results of the steps before it: a retry must not run those again (a
// removal step would delete the secret this step issues).
func (d *delivery) intent(ctx context.Context, i int, in intent, before map[int][]events.OpResult) error {
	return d.h.save(ctx, func(r *record) {
		if r.Intents == nil {
			r.Intents = map[int]intent{}
		}
		r.Intents[i] = in
		if r.Checkpoints == nil {
			r.Checkpoints = map[int][]events.OpResult{}
		}
		for j, res := range before {
			r.Checkpoints[j] = res
		}
	})
}

func (d *delivery) done(ctx context.Context, i int, res []events.OpResult) error {
	return d.h.save(ctx, func(r *record) {
		if r.Checkpoints == nil {
			r.Checkpoints = map[int][]events.OpResult{}
		}
		r.Checkpoints[i] = res
	})
}

// retryLater hands the event back to JetStream with a growing delay. The
// later events of its key wait meanwhile (order.go): the price of per-user
// order; other keys go on.
func (d *delivery) retryLater(cause error) string {
	n := int(d.md.NumDelivered)
	delay := redeliveryDelay(d.w.cfg.RedeliveryDelay, n)
	if d.h != nil {
		// Handing back: this attempt writes nothing more, so whoever has the
		// event next need not wait for the lease to lapse; a later event of
		// the key waits until the retry is due (order.go).
		notBefore := d.w.cfg.Now().Add(delay)
		d.h.releaseWith(context.Background(), func(r *record) { r.NotBefore = notBefore })
	}
	d.w.log.Warn("handing event back for a later attempt", "delivery", n, "delay", delay.String(), "err", cause)
	d.w.metrics.retries.WithLabelValues("redelivery").Inc()
	if err := d.msg.NakWithDelay(delay); err != nil {
		d.w.log.Warn("nak failed (NATS); the server redelivers after AckWait", "err", err)
	}
	return outcomeRetry
}

// busy hands back a delivery of an event another attempt still holds: it
// comes back once that lease has lapsed (or the other attempt finished).
func (d *delivery) busy(wait time.Duration) string {
	d.w.log.Info("event held by another attempt; handing it back until its lease lapses",
		"event_id", d.ev.ID, "lease", describeLease(d.rec, d.w.cfg.Now()))
	// Look again soon: the other attempt may finish long before its lease
	// would lapse.
	wait = min(wait, 2*time.Second) + time.Duration(rand.Int64N(int64(100*time.Millisecond)))
	if err := d.msg.NakWithDelay(wait); err != nil {
		d.w.log.Warn("nak failed (NATS); the server redelivers after AckWait", "err", err)
	}
	return outcomeBusy
}

// busyReleasing hands back a claimed event whose user another attempt is
// working on: its own lease is released first, so the event is not held up.
func (d *delivery) busyReleasing(wait time.Duration) string {
	// The plan did not run: this claim is not an attempt.
	d.h.releaseWith(context.Background(), func(r *record) { r.Attempt = max(0, r.Attempt-1) })
	d.w.log.Info("the user is being worked on by another event; handing this one back", "event_id", d.ev.ID)
	wait = min(wait, 2*time.Second) + time.Duration(rand.Int64N(int64(100*time.Millisecond)))
	if err := d.msg.NakWithDelay(wait); err != nil {
		d.w.log.Warn("nak failed (NATS); the server redelivers after AckWait", "err", err)
	}
	return outcomeBusy
}

// redeliveryDelay is base·2^(n-1), capped at 5 minutes, with ±20% jitter.
func redeliveryDelay(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// exhausted ends an event whose attempts are used up.
func (d *delivery) exhausted(ctx context.Context, ops []events.OpResult, cause error) string {
	info := errorInfo(events.CodeRetriesExhausted, fmt.Sprintf("gave up after %d attempts: %v", d.h.snapshot().Attempt, cause))
	return d.settle(ctx, events.StatusFailed, nil, ops, info)
}

// reject ends an event that authentication, policy or validation refused
// before it was accepted: no Graph write, no ledger slot.
func (d *delivery) reject(ctx context.Context, err error) string {
	return d.settle(ctx, events.StatusRejected, nil, nil, infoOf(err))
}

// conflict answers an event that re-uses an accepted event's source and id
// with a different body: rejected (with the reason authentication gives
// when it fails, else replayed), and the original is left alone.
func (d *delivery) conflict(ctx context.Context) string {
	if err := d.checkAuth(ctx); err != nil {
		return d.reject(ctx, err)
	}
	info := errorInfo(events.CodeReplayed, "source and id were already used by an event with a different body")
	return d.settle(ctx, events.StatusRejected, nil, nil, info)
}

// corrupt ends an event whose ledger record cannot be read: failed
// (internal) with a dead letter, and the record replaced by the result so
// that the next delivery answers from it.
func (d *delivery) corrupt(ctx context.Context, cause error) string {
	d.w.log.Error("ledger record undecodable; ending the event as failed", "event_id", d.ev.ID, "err", cause)
	d.rec = nil
	d.h = &hold{l: d.w.ledger, key: d.lkey, ttl: d.w.cfg.AckWait, skew: d.w.cfg.MaxClockSkew, now: d.w.cfg.Now,
		rec: &record{State: stateInProgress, BodyHash: d.hash, Received: d.received, Token: newUUID()}, rev: d.rev}
	return d.settle(ctx, events.StatusFailed, nil, nil, errorInfo(events.CodeInternal, "the ledger record of this event is undecodable"))
}

// infoOf is the result error of err, with invalid_event for foreign errors.
func infoOf(err error) *events.ErrorInfo {
	code := events.CodeOf(err)
	if code == "" {
		code = events.CodeInvalidEvent
	}
	return errorInfo(code, err.Error())
}

// errorInfo is a result error; whether it is permanent follows from its code.
func errorInfo(code events.Code, msg string) *events.ErrorInfo {
	return &events.ErrorInfo{Code: code, Message: msg, Permanent: code.Permanent()}
}

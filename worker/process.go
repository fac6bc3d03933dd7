package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// Outcomes of handling one delivery, as counted in authflow_events_total.
const (
	outcomeSucceeded    = "succeeded"
	outcomeFailed       = "failed"
	outcomeRejected     = "rejected"
	outcomeDuplicate    = "duplicate"
	outcomeRetry        = "retry"
	outcomeDeadLettered = "dead_lettered"
	outcomeAbandoned    = "abandoned"
)

// delivery is one delivery of one message being handled.
type delivery struct {
	w        *Worker
	msg      jetstream.Msg
	md       *jetstream.MsgMetadata
	key      string // the publisher's user key (last subject token)
	raw      []byte
	received time.Time

	ev   *events.Event
	lkey string // ledger key
	hash string // body hash
	rec  *record
	rev  uint64
}

// handle processes one delivery; it never returns an error: every path ends
// in an ack (with a result or a dead letter), a delayed redelivery, or — on
// a crash or a lost race — no ack at all, so the server redelivers.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	w.metrics.inFlight.Inc()
	defer w.metrics.inFlight.Dec()

	d := &delivery{w: w, msg: msg, key: keyOfStoredSubject(msg.Subject()), raw: msg.Data(), received: w.cfg.Now()}
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without metadata; handing back", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	d.md = md
	typ := "invalid"
	outcome := d.process(ctx)
	if d.ev != nil {
		typ = d.ev.Type
	}
	w.metrics.events.WithLabelValues(typ, outcome).Inc()
	w.metrics.duration.WithLabelValues(typ).Observe(w.cfg.Now().Sub(d.received).Seconds())
	if outcome != outcomeRetry && outcome != outcomeAbandoned {
		w.metrics.lastProcessed.SetToCurrentTime()
	}
	log := w.log.With("outcome", outcome, "type", typ, "stream_seq", md.Sequence.Stream, "delivery", md.NumDelivered)
	if d.ev != nil {
		log = log.With("event_id", d.ev.ID, "source", d.ev.Source)
	}
	log.Info("event handled", "ms", w.cfg.Now().Sub(d.received).Milliseconds())
}

func (d *delivery) process(ctx context.Context) string {
	w := d.w
	ev, err := w.cfg.Decoder.Decode(d.raw)
	if err != nil {
		return d.poison(ctx, err)
	}
	d.ev = ev
	d.lkey = ledgerKey(ev.Source, ev.ID)
	d.hash = bodyHash(d.raw)

	d.rec, d.rev, err = w.ledger.get(ctx, d.lkey)
	if err != nil {
		return d.retryLater(err)
	}
	if d.rec != nil && d.rec.BodyHash != d.hash {
		return d.conflict(ctx)
	}
	if d.rec != nil && d.rec.State == stateDone {
		return d.republish(ctx)
	}

	// Authenticity and policy first: no Graph call for a rejected event.
	if err := w.cfg.Policy.CheckAuth(ev, d.raw, d.msg.Headers()); err != nil {
		return d.reject(ctx, err)
	}
	if d.rec == nil {
		// Freshness only on first acceptance: an event accepted once and
		// interrupted must finish, however late its retry comes.
		if err := w.cfg.Policy.CheckFreshness(ev, w.cfg.Now()); err != nil {
			return d.reject(ctx, err)
		}
	}
	plan, err := events.Plan(ev)
	if err != nil {
		return d.reject(ctx, err)
	}

	attempt := int(d.md.NumDelivered)
	if attempt > w.cfg.MaxAttempts {
		return d.exhausted(ctx, nil, fmt.Errorf("delivered %d times", attempt))
	}
	if err := d.claim(ctx); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}

	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	user, err := d.resolve(actx)
	if err != nil {
		return d.afterError(ctx, nil, err)
	}
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
	if err := w.cfg.Policy.CheckTarget(ev, target); err != nil {
		return d.reject(ctx, err)
	}

	r := &run{x: w.x, user: user, dry: ev.DryRun, ck: d}
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
	return d.finish(ctx, status, &user, ops, info)
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
	case errors.Is(err, errLost):
		return outcomeAbandoned
	case ctx.Err() != nil:
		// Shutting down: hand the event back at once; the ledger says it is
		// in progress, so the next replica resumes it.
		_ = d.msg.Nak()
		return outcomeAbandoned
	}
	info, transient := classify(err)
	if transient != nil {
		if int(d.md.NumDelivered) >= d.w.cfg.MaxAttempts {
			return d.exhausted(ctx, ops, err)
		}
		return d.retryLater(err)
	}
	return d.finish(ctx, events.StatusFailed, nil, ops, info)
}

// claim records the event as in progress under this replica; a redelivery of
// an interrupted event takes the record over.
func (d *delivery) claim(ctx context.Context) error {
	now := d.w.cfg.Now()
	if d.rec == nil {
		d.rec = &record{State: stateInProgress, BodyHash: d.hash, Attempt: 1, Owner: d.w.cfg.Instance, Started: now}
		rev, err := d.w.ledger.create(ctx, d.lkey, d.rec)
		if err != nil {
			return err
		}
		d.rev = rev
		return nil
	}
	d.rec.Attempt++
	d.rec.Owner = d.w.cfg.Instance
	rev, err := d.w.ledger.update(ctx, d.lkey, d.rec, d.rev)
	if err != nil {
		return err
	}
	d.rev = rev
	return nil
}

// checkpoints over the ledger record.

func (d *delivery) prior(i int) (events.OpResult, bool) {
	r, ok := d.rec.Checkpoints[i]
	return r, ok
}

func (d *delivery) priorIntent(i int) (time.Time, bool) {
	t, ok := d.rec.Intents[i]
	return t, ok
}

func (d *delivery) intent(ctx context.Context, i int, at time.Time) error {
	if d.rec.Intents == nil {
		d.rec.Intents = map[int]time.Time{}
	}
	d.rec.Intents[i] = at
	return d.save(ctx)
}

func (d *delivery) done(ctx context.Context, i int, r events.OpResult) error {
	if d.rec.Checkpoints == nil {
		d.rec.Checkpoints = map[int]events.OpResult{}
	}
	d.rec.Checkpoints[i] = r
	return d.save(ctx)
}

func (d *delivery) save(ctx context.Context) error {
	rev, err := d.w.ledger.update(ctx, d.lkey, d.rec, d.rev)
	if err != nil {
		return err
	}
	d.rev = rev
	return nil
}

// retryLater hands the event back to JetStream with a growing delay. The
// partition waits meanwhile: that is the price of per-user order.
func (d *delivery) retryLater(cause error) string {
	n := int(d.md.NumDelivered)
	delay := redeliveryDelay(d.w.cfg.RedeliveryDelay, n)
	d.w.log.Warn("handing event back for a later attempt", "delivery", n, "delay", delay.String(), "err", cause)
	d.w.metrics.retries.WithLabelValues("redelivery").Inc()
	if err := d.msg.NakWithDelay(delay); err != nil {
		d.w.log.Warn("nak failed; the server redelivers after AckWait", "err", err)
	}
	return outcomeRetry
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
	info := errorInfo(events.CodeRetriesExhausted, fmt.Sprintf("gave up after %d deliveries: %v", d.md.NumDelivered, cause))
	return d.finish(ctx, events.StatusFailed, nil, ops, info)
}

// reject ends an event that policy or validation refused: no Graph write.
func (d *delivery) reject(ctx context.Context, err error) string {
	code := events.CodeOf(err)
	if code == "" {
		code = events.CodeInvalidEvent
	}
	info := errorInfo(code, err.Error())
	return d.finish(ctx, events.StatusRejected, nil, nil, info)
}

// finish records the result in the ledger, publishes it, dead-letters a
// failure that an operator must look at, and acks — in that order, so that a
// crash at any point leaves the event to be redelivered and the result to be
// republished from the ledger.
func (d *delivery) finish(ctx context.Context, status events.Status, user *graphclient.User, ops []events.OpResult, info *events.ErrorInfo) string {
	w := d.w
	attempts := int(d.md.NumDelivered)
	if d.rec != nil && d.rec.Attempt > attempts {
		attempts = d.rec.Attempt
	}
	res := d.buildResult(status, user, ops, info, attempts)
	body, err := res.Marshal()
	if err != nil {
		w.log.Error("encode result", "err", err)
		return d.retryLater(err)
	}
	subject, msgID := ResultSubject(d.key), resultMsgID(d.ev.Source, d.ev.ID)
	rec := record{State: stateDone, BodyHash: d.hash, Attempt: attempts, Owner: w.cfg.Instance,
		Result: body, ResultSubject: subject, ResultMsgID: msgID}
	if d.rec != nil {
		rec.Started, rec.Intents, rec.Checkpoints = d.rec.Started, d.rec.Intents, d.rec.Checkpoints
		_, err = w.ledger.update(ctx, d.lkey, &rec, d.rev)
	} else {
		_, err = w.ledger.create(ctx, d.lkey, &rec)
	}
	if errors.Is(err, errLost) {
		return outcomeAbandoned
	}
	if err != nil {
		return d.retryLater(err)
	}
	if err := w.crashPoint(HookAfterLedgerWrite); err != nil {
		return outcomeAbandoned
	}
	if err := d.publishResult(ctx, subject, msgID, body, status); err != nil {
		return d.retryLater(err)
	}
	if err := w.crashPoint(HookAfterResultPublish); err != nil {
		return outcomeAbandoned
	}
	if status == events.StatusFailed && info != nil &&
		(info.Code == events.CodeRetriesExhausted || info.Code == events.CodeGraphPermanent) {
		if err := d.deadLetter(ctx, string(info.Code), info.Message); err != nil {
			return d.retryLater(err)
		}
	}
	if err := w.crashPoint(HookBeforeAck); err != nil {
		return outcomeAbandoned
	}
	if err := d.msg.DoubleAck(ctx); err != nil {
		// The result is durable; a redelivery republishes it (deduplicated).
		w.log.Warn("ack failed", "err", err)
	}
	switch status {
	case events.StatusSucceeded:
		return outcomeSucceeded
	case events.StatusRejected:
		return outcomeRejected
	}
	return outcomeFailed
}

func (w *Worker) crashPoint(point string) error {
	if w.cfg.Hook == nil {
		return nil
	}
	if err := w.cfg.Hook(point); err != nil {
		w.log.Warn("simulated crash", "point", point, "err", err)
		return err
	}
	return nil
}

func (d *delivery) publishResult(ctx context.Context, subject, msgID string, body []byte, status events.Status) error {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(HeaderStatus, string(status))
	if d.ev != nil {
		m.Header.Set(HeaderEventSource, d.ev.Source)
		m.Header.Set(HeaderEventID, d.ev.ID)
	}
	if _, err := d.w.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	return nil
}

// republish answers a redelivery of a finished event with its stored result,
// under the same Nats-Msg-Id, and acks.
func (d *delivery) republish(ctx context.Context) string {
	var status events.Status
	if r, err := events.DecodeResult(d.rec.Result); err == nil {
		status = r.Data.Status
	}
	if err := d.publishResult(ctx, d.rec.ResultSubject, d.rec.ResultMsgID, d.rec.Result, status); err != nil {
		return d.retryLater(err)
	}
	if err := d.msg.DoubleAck(ctx); err != nil {
		d.w.log.Warn("ack failed", "err", err)
	}
	return outcomeDuplicate
}

// conflict answers an event that re-uses a finished or running event's
// source and id with a different body: rejected, and the original is left
// alone. Its result has its own msg id so it cannot shadow the original's.
func (d *delivery) conflict(ctx context.Context) string {
	info := errorInfo(events.CodeReplayed, "source and id were already used by an event with a different body")
	res := d.buildResult(events.StatusRejected, nil, nil, info, int(d.md.NumDelivered))
	res.ID += ":" + d.hash[:16]
	body, err := res.Marshal()
	if err != nil {
		return d.retryLater(err)
	}
	msgID := resultMsgID(d.ev.Source, d.ev.ID) + ":" + d.hash[:16]
	if err := d.publishResult(ctx, ResultSubject(d.key), msgID, body, events.StatusRejected); err != nil {
		return d.retryLater(err)
	}
	if err := d.msg.DoubleAck(ctx); err != nil {
		d.w.log.Warn("ack failed", "err", err)
	}
	return outcomeRejected
}

// poison handles a message that cannot be decoded: a dead letter with the
// reason, plus a rejected result when its source and id can be read.
func (d *delivery) poison(ctx context.Context, decodeErr error) string {
	code := events.CodeOf(decodeErr)
	if code == "" {
		code = events.CodeInvalidEvent
	}
	if err := d.deadLetter(ctx, string(code), decodeErr.Error()); err != nil {
		return d.retryLater(err)
	}
	d.w.metrics.events.WithLabelValues("invalid", outcomeDeadLettered).Inc()
	src, id, typ := events.PeekIdentity(d.raw)
	if src != "" && id != "" {
		info := errorInfo(code, decodeErr.Error())
		// Its own id and msg id, keyed by the body too: an undecodable
		// message must not take the place of a valid event's result.
		suffix := ":" + bodyHash(d.raw)[:16]
		res := events.NewResult(events.EventKey(src, id)+suffix, "", events.ResultData{
			Event:  events.EventRef{Source: src, ID: id, Type: typ},
			Status: events.StatusRejected, Error: info, Attempts: int(d.md.NumDelivered),
			ReceivedAt: d.received, StartedAt: d.received, FinishedAt: d.w.cfg.Now(),
		}, d.w.cfg.Now())
		body, err := res.Marshal()
		if err == nil {
			msgID := resultMsgID(src, id) + suffix
			if err := d.publishResult(ctx, ResultSubject(d.key), msgID, body, events.StatusRejected); err != nil {
				return d.retryLater(err)
			}
		}
	}
	if err := d.msg.DoubleAck(ctx); err != nil {
		d.w.log.Warn("ack failed", "err", err)
	}
	return outcomeRejected
}

// deadLetter copies the original message (bytes and headers) to the DLQ
// stream with the reason and the attempts.
func (d *delivery) deadLetter(ctx context.Context, reason, message string) error {
	m := nats.NewMsg(DLQSubject(d.key))
	m.Data = d.raw
	for k, vs := range d.msg.Headers() {
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	m.Header.Del(nats.MsgIdHdr)
	m.Header.Set(HeaderDLQReason, reason)
	if len(message) > 1024 {
		message = message[:1024]
	}
	m.Header.Set(HeaderDLQMessage, message)
	m.Header.Set(HeaderDLQAttempts, strconv.FormatUint(d.md.NumDelivered, 10))
	m.Header.Set(HeaderDLQSubject, d.msg.Subject())
	m.Header.Set(HeaderDLQSequence, strconv.FormatUint(d.md.Sequence.Stream, 10))
	msgID := "dlq:" + strconv.FormatUint(d.md.Sequence.Stream, 10)
	if _, err := d.w.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	d.w.metrics.dlq.WithLabelValues(reason).Inc()
	return nil
}

func (d *delivery) buildResult(status events.Status, user *graphclient.User, ops []events.OpResult, info *events.ErrorInfo, attempts int) *events.Result {
	ev := d.ev
	now := d.w.cfg.Now()
	data := events.ResultData{
		Event:      ev.Ref(),
		Status:     status,
		DryRun:     ev.DryRun,
		Operations: ops,
		Error:      info,
		Attempts:   attempts,
		ReceivedAt: d.received,
		StartedAt:  d.received,
		FinishedAt: now,
	}
	if d.rec != nil && !d.rec.Started.IsZero() {
		data.StartedAt = d.rec.Started
	}
	data.User.Ref = ev.Subject
	if user != nil {
		data.User.ObjectID = user.ID
	}
	res := events.NewResult(ev.Key(), ev.Subject, data, now)
	res.TraceParent = ev.TraceParent
	return res
}

// errorInfo is a result error; whether it is permanent follows from its code.
func errorInfo(code events.Code, msg string) *events.ErrorInfo {
	return &events.ErrorInfo{Code: code, Message: msg, Permanent: code.Permanent()}
}

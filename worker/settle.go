package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// deadLettered reports whether a failure with this code is copied to the
// DLQ: what an operator must look at and may re-drive once the cause is
// fixed (authflow dlq replay).
func deadLettered(code events.Code) bool {
	switch code {
	case events.CodeGraphPermanent, events.CodeGraphPermission, events.CodeMFARequired,
		events.CodeRetriesExhausted, events.CodeInternal:
		return true
	}
	return false
}

// settle is the one way an event ends: ledger (when the event was
// accepted) → result → dead letter → ack, in that order, so that a crash at
// any point leaves the event to be redelivered and the result to be
// republished from the ledger. An event that was not accepted (d.h is nil)
// gets a result under its own id (events.ResultID with the body) and leaves
// the ledger alone.
func (d *delivery) settle(ctx context.Context, status events.Status, user *graphclient.User, ops []events.OpResult, info *events.ErrorInfo) string {
	w := d.w
	res := d.buildResult(status, user, ops, info)
	body, err := res.Marshal()
	if err != nil {
		// A result we cannot encode is a defect: say so with a minimal one.
		w.log.Error("encode result", "err", err)
		res = d.buildResult(events.StatusFailed, nil, nil, errorInfo(events.CodeInternal, "result could not be encoded: "+err.Error()))
		if body, err = res.Marshal(); err != nil {
			return d.terminate(ctx, events.CodeInternal, "result could not be encoded")
		}
		status, info = events.StatusFailed, res.Data.Error
	}
	subject, msgID := ResultSubject(d.key), "result:"+res.ID
	if d.h != nil {
		err := d.h.save(ctx, func(r *record) {
			r.State, r.Result, r.ResultSubject, r.ResultMsgID = stateDone, body, subject, msgID
		})
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		if err != nil {
			return d.retryLater(err)
		}
		if err := w.crashPoint(HookAfterLedgerWrite); err != nil {
			return outcomeAbandoned
		}
	}
	if err := d.publishResult(ctx, subject, msgID, body, status, res.Data.Event); err != nil {
		return d.retryLater(err)
	}
	if err := w.crashPoint(HookAfterResultPublish); err != nil {
		return outcomeAbandoned
	}
	if err := d.notifyUser(ctx, res); err != nil {
		if errors.Is(err, errCrash) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	if status == events.StatusFailed && info != nil && deadLettered(info.Code) {
		if err := d.deadLetter(ctx, string(info.Code), info.Message); err != nil {
			return d.retryLater(err)
		}
	}
	if err := w.crashPoint(HookBeforeAck); err != nil {
		return outcomeAbandoned
	}
	d.ack(ctx)
	switch status {
	case events.StatusSucceeded:
		return outcomeSucceeded
	case events.StatusRejected:
		return outcomeRejected
	}
	return outcomeFailed
}

// ack acks the delivery without waiting for the server's confirmation
// (no DoubleAck): the result is durable by now, and an ack that is lost only
// means a redelivery, which the ledger answers — so the round trip would buy
// nothing but latency and CPU per event.
func (d *delivery) ack(ctx context.Context) {
	if err := d.msg.Ack(); err != nil {
		// The result is durable; a redelivery republishes it (deduplicated).
		d.w.log.Warn("ack failed (NATS); a redelivery answers from the ledger", "err", err)
	}
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

// publishResult publishes a result and waits for its PubAck, with a short
// timeout per try and a few tries.
func (d *delivery) publishResult(ctx context.Context, subject, msgID string, body []byte, status events.Status, ref events.EventRef) error {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set("Content-Type", events.ContentTypeCloudEvents)
	m.Header.Set(HeaderStatus, string(status))
	if ref.Source != "" {
		m.Header.Set(HeaderEventSource, ref.Source)
	}
	if ref.ID != "" {
		m.Header.Set(HeaderEventID, ref.ID)
	}
	return d.w.publish(ctx, "result", m, msgID)
}

// publish sends m to JetStream with msgID, a short timeout per try, and a
// few tries: a NATS restart costs seconds, and its errors say NATS.
func (w *Worker) publish(ctx context.Context, what string, m *nats.Msg, msgID string) (err error) {
	ctx, end := publishSpan(ctx, what)
	defer func() { end(err) }()
	return natsCall(ctx, "publish "+what, w.cfg.NATSTimeout, 3, func(ctx context.Context) error {
		_, err := w.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID))
		return err
	})
}

// republish answers a redelivery of a finished event with its stored result,
// under the same Nats-Msg-Id, and acks.
func (d *delivery) republish(ctx context.Context) string {
	var (
		status events.Status
		ref    = d.ev.Ref()
	)
	if r, err := events.DecodeResult(d.rec.Result); err == nil {
		status, ref = r.Data.Status, r.Data.Event
	}
	if err := d.publishResult(ctx, d.rec.ResultSubject, d.rec.ResultMsgID, d.rec.Result, status, ref); err != nil {
		return d.retryLater(err)
	}
	if r, err := events.DecodeResult(d.rec.Result); err == nil {
		// A crash may have come between the result and its notification.
		if err := d.notifyUser(ctx, r); err != nil {
			if errors.Is(err, errCrash) {
				return outcomeAbandoned
			}
			return d.retryLater(err)
		}
	}
	d.ack(ctx)
	return outcomeDuplicate
}

// poison handles a message that cannot be decoded: a dead letter with the
// reason, plus a rejected result when its source and id can be read.
func (d *delivery) poison(ctx context.Context, decodeErr error) string {
	info := infoOf(decodeErr)
	if err := d.deadLetter(ctx, string(info.Code), info.Message); err != nil {
		return d.retryLater(err)
	}
	if out := d.peekResult(ctx, events.StatusRejected, info); out != "" {
		return out
	}
	d.ack(ctx)
	return outcomeRejected
}

// terminate ends a message without decoding it (past the delivery cap, or
// after a panic): a dead letter, a result when its source and id can be
// read, and Term — nothing of it can block the partition again.
func (d *delivery) terminate(ctx context.Context, code events.Code, message string) string {
	if err := d.deadLetter(ctx, string(code), message); err != nil {
		d.w.log.Error("dead letter failed; terminating the message anyway", "err", err)
	}
	_ = d.peekResult(ctx, code.Status(), errorInfo(code, message))
	if err := d.msg.TermWithReason(message); err != nil {
		d.w.log.Warn("term failed (NATS)", "err", err)
	}
	if code.Status() == events.StatusRejected {
		return outcomeRejected
	}
	return outcomeFailed
}

// peekIdentity reads the source, id and type of a message without decoding
// it: from its ce- headers in binary mode, else from its body.
func peekIdentity(h nats.Header, data []byte) (source, id, typ string) {
	if events.IsBinary(h) {
		return events.PeekBinaryIdentity(h)
	}
	return events.PeekIdentity(data)
}

// peekResult publishes a result for bytes that did not decode, when their
// source and id can be read. It returns an outcome only when publishing
// failed and the message was handed back.
func (d *delivery) peekResult(ctx context.Context, status events.Status, info *events.ErrorInfo) string {
	src, id, typ := peekIdentity(d.msg.Headers(), d.raw)
	if src == "" || id == "" {
		return ""
	}
	now := d.w.cfg.Now()
	doc := d.doc // the structured form when a binary-mode message was converted
	if doc == nil {
		doc = d.raw
	}
	rid := events.ResultID(src, id, doc, 0)
	res := events.NewResult(rid, "", events.ResultData{
		Event:  events.EventRef{Source: src, ID: id, Type: typ},
		Status: status, Error: info,
		ReceivedAt: d.received, FinishedAt: now,
	}, now)
	body, err := res.Marshal()
	if err != nil {
		d.w.log.Error("encode result of an undecodable event", "err", err)
		return ""
	}
	if err := d.publishResult(ctx, ResultSubject(d.key), "result:"+rid, body, status, res.Data.Event); err != nil {
		return d.retryLater(err)
	}
	return ""
}

// Dead letters carry the original bytes and headers, but never more than
// fits a message: a body over dlqMaxBody is replaced by its first
// dlqPrefix bytes, and its size and SHA-256 go into headers.
const (
	dlqMaxBody    = 64 << 10
	dlqPrefix     = 4 << 10
	dlqMaxHeaders = 16 << 10
)

// deadLetter copies the original message (bytes and headers, bounded) to
// the DLQ stream with the reason and the attempts.
func (d *delivery) deadLetter(ctx context.Context, reason, message string) error {
	m := nats.NewMsg(DLQSubject(d.key))
	m.Data = d.raw
	if len(d.raw) > dlqMaxBody {
		sum := sha256.Sum256(d.raw)
		m.Data = d.raw[:dlqPrefix]
		m.Header.Set(HeaderDLQTruncated, "true")
		m.Header.Set(HeaderDLQOriginalSize, strconv.Itoa(len(d.raw)))
		m.Header.Set(HeaderDLQOriginalSHA256, hex.EncodeToString(sum[:]))
	}
	size := 0
	for k, vs := range d.msg.Headers() {
		if k == nats.MsgIdHdr {
			continue
		}
		for _, v := range vs {
			if size += len(k) + len(v) + 4; size > dlqMaxHeaders {
				m.Header.Set(HeaderDLQTruncated, "true")
				break
			}
			m.Header.Add(k, v)
		}
	}
	m.Header.Set(HeaderDLQReason, reason)
	if len(message) > 1024 {
		message = message[:1024]
	}
	m.Header.Set(HeaderDLQMessage, message)
	m.Header.Set(HeaderDLQAttempts, strconv.FormatUint(d.md.NumDelivered, 10))
	m.Header.Set(HeaderDLQSubject, d.msg.Subject())
	m.Header.Set(HeaderDLQSequence, strconv.FormatUint(d.md.Sequence.Stream, 10))
	msgID := "dlq:" + strconv.FormatUint(d.md.Sequence.Stream, 10)
	if d.h != nil {
		if rd := d.h.snapshot().Redrive; rd != nil {
			msgID += ":redrive-" + strconv.Itoa(rd.Count)
		}
	}
	if err := d.w.publish(ctx, "dead letter", m, msgID); err != nil {
		return err
	}
	d.w.metrics.dlq.WithLabelValues(reason).Inc()
	return nil
}

func (d *delivery) buildResult(status events.Status, user *graphclient.User, ops []events.OpResult, info *events.ErrorInfo) *events.Result {
	ev := d.ev
	now := d.w.cfg.Now()
	data := events.ResultData{
		Event:      ev.Ref(),
		Status:     status,
		DryRun:     ev.DryRun,
		Operations: ops,
		Error:      info,
		Provenance: provenance(ev, d.msg.Headers(), d.authed),
		Extensions: ev.Extensions,
		ReceivedAt: d.received,
		FinishedAt: now,
	}
	id := events.ResultID(ev.Source, ev.ID, d.doc, 0)
	if d.h != nil {
		rec := d.h.snapshot()
		data.Attempts = rec.Attempt
		data.ReceivedAt, data.StartedAt = rec.Received, rec.Started
		data.Redrive = rec.Redrive
		redrives := 0
		if rec.Redrive != nil {
			redrives = rec.Redrive.Count
		}
		id = events.ResultID(ev.Source, ev.ID, nil, redrives)
	}
	if status == events.StatusRejected {
		data.Attempts = 0 // refused before its plan ran
	}
	data.User.Ref = ev.Subject
	if user != nil {
		data.User.ObjectID, data.User.UPN = user.ID, user.UserPrincipalName
	}
	if d.approval != nil {
		data.Approval = d.approval.resultApproval(ev.Key())
	}
	res := events.NewResult(id, ev.Subject, data, now)
	res.TraceParent = ev.TraceParent
	return res
}

// provenance is who asked, from the event and, once its signature was
// verified, the signer's key.
func provenance(ev *events.Event, h nats.Header, verified bool) *events.Provenance {
	p := &events.Provenance{Source: ev.Source}
	if verified && h != nil && h.Get(events.HeaderSignature) != "" {
		p.Signer = h.Get(events.HeaderSigner)
	}
	if v := ev.Verification; v != nil {
		p.TicketID, p.Method, p.VerifiedBy = v.TicketID, v.Method, v.VerifiedBy
	}
	return p
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// Four-eyes approval. An event an approval rule of the policy matches is
// checked in full (signature, policy, user, protected users, rate limits)
// and then parked instead of run: its ledger record takes the state parked
// with what an approver must know (the rule, who signed the request, the
// user, when it times out), an interim result pending_approval is
// published, and a schedule of the event's own bytes is handed to
// JetStream's scheduler for the rule's timeout (schedule.go's mechanism).
//
// An approval (authflow.approval.grant.v1 / deny.v1, on a key of its own)
// is checked against the parked record (events.Policy.CheckApproval: an
// approver of the rule, not the request's signer, still waiting, in time,
// the same user), the decision is written into the parked record by
// compare-and-set (the first valid decision wins), and the schedule is
// re-published to fire at once. Whichever way the event's copy comes back
// — at once after a decision, or at the timeout — it is handled from the
// record: granted runs the plan as any event; denied and timed out end
// rejected (approval_denied, approval_timeout). A crash anywhere leaves the
// record and the schedule to finish the job.
//
// Order: later events of the user's key wait behind a parked one (order.go
// treats a parked record as due at its timeout), and the copy itself takes
// the original's place — it does not wait for the events published after
// the original, which wait for it.

const (
	stateParked   = "parked"
	outcomeParked = "parked" // parked, or a redelivery of a parked event: nothing more to do now
)

// approvalRecord is what the ledger keeps of a parked event.
type approvalRecord struct {
	Rule      string          `json:"rule"`
	Signer    string          `json:"signer,omitempty"` // who signed the request ("" when unsigned)
	User      events.UserInfo `json:"user"`
	ExpiresAt time.Time       `json:"expiresAt"`
	Timeout   time.Duration   `json:"timeout"`            // the rule's, for the timeout's error
	Decision  string          `json:"decision,omitempty"` // events.DecisionGranted or DecisionDenied
	Approver  string          `json:"approver,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	DecidedAt time.Time       `json:"decidedAt,omitzero"`
}

// resultApproval is the approval record of the event's results.
func (a *approvalRecord) resultApproval(key string) *events.ResultApproval {
	return &events.ResultApproval{Rule: a.Rule, EventKey: key, ExpiresAt: a.ExpiresAt,
		Decision: a.Decision, Approver: a.Approver, Reason: a.Reason, DecidedAt: a.DecidedAt}
}

// parkedCopy reports whether m is the scheduler's copy of a parked event:
// it takes the original's place and must not wait for the events behind it.
func (w *Worker) parkedCopy(ctx context.Context, h nats.Header, data []byte) bool {
	if h.Get("Nats-Scheduler") == "" {
		return false
	}
	src, id, _ := peekIdentity(h, data)
	if src == "" || id == "" {
		return false
	}
	rec, _, err := w.ledger.get(ctx, ledgerKey(src, id))
	return err == nil && rec != nil && (rec.State == stateParked || rec.State == stateInProgress && rec.Approval != nil)
}

// fromParked handles a delivery of an event whose record is parked. It
// returns "" when the event is to run now (granted).
func (d *delivery) fromParked(ctx context.Context) string {
	a := d.rec.Approval
	if a == nil {
		return d.corrupt(ctx, errors.New("parked record without its approval"))
	}
	now := d.dueNow()
	switch {
	case a.Decision == events.DecisionGranted:
		d.approval = a
		return ""
	case a.Decision == "" && now.Before(a.ExpiresAt):
		// The original's redelivery, or a copy before its time: make sure
		// the schedule and the pending result exist, and wait.
		return d.parkAgain(ctx, a)
	}
	// Denied, or timed out: end it, through a claim, as any event ends.
	final := *a
	var info *events.ErrorInfo
	if a.Decision == events.DecisionDenied {
		info = infoOf(events.ApprovalDeniedError(a.Approver, a.Reason))
	} else {
		final.Decision, final.DecidedAt = events.DecisionTimeout, d.w.cfg.Now()
		info = infoOf(events.ApprovalTimeoutError(a.Rule, a.Timeout))
	}
	if err := d.claim(ctx, false); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	d.approval = &final
	return d.settle(ctx, events.StatusRejected, nil, nil, info)
}

// park parks a claimed event that rule holds back.
func (d *delivery) park(ctx context.Context, user *graphclient.User, rule events.ApprovalRule) string {
	w := d.w
	now := w.cfg.Now()
	a := &approvalRecord{
		Rule:      rule.Name,
		Signer:    provenance(d.ev, d.msg.Headers(), d.authed).Signer,
		User:      events.UserInfo{Ref: d.ev.Subject, ObjectID: user.ID, UPN: user.UserPrincipalName},
		ExpiresAt: fireTime(now, now.Add(rule.Timeout), 0),
		Timeout:   rule.Timeout,
	}
	err := d.h.save(ctx, func(r *record) {
		r.State, r.Approval = stateParked, a
		r.Attempt = max(0, r.Attempt-1) // the plan did not run
	})
	if errors.Is(err, errLost) {
		return outcomeAbandoned
	}
	if err != nil {
		return d.retryLater(err)
	}
	if err := w.crashPoint(HookAfterPark); err != nil {
		return outcomeAbandoned // the redelivery finds it parked and finishes parking
	}
	return d.parkAgain(ctx, a)
}

// parkAgain (re)publishes a parked event's timeout schedule and its pending
// result, both idempotent, and acks.
func (d *delivery) parkAgain(ctx context.Context, a *approvalRecord) string {
	if err := d.publishSchedule(ctx, a.ExpiresAt); err != nil {
		return d.retryLater(err)
	}
	res := d.buildResult(events.StatusPendingApproval, &graphclient.User{ID: a.User.ObjectID, UserPrincipalName: a.User.UPN}, nil, nil)
	res.ID = events.PendingResultID(d.ev.Source, d.ev.ID)
	res.Data.Attempts = 0
	res.Data.Approval = a.resultApproval(d.ev.Key())
	body, err := res.Marshal()
	if err != nil {
		return d.retryLater(err)
	}
	if err := d.publishResult(ctx, ResultSubject(d.key), "result:"+res.ID, body, events.StatusPendingApproval, res.Data.Event); err != nil {
		return d.retryLater(err)
	}
	d.ack(ctx)
	d.w.log.Info("event parked for approval", "event_id", d.ev.ID, "rule", a.Rule, "expires_at", a.ExpiresAt.Format(time.RFC3339))
	return outcomeParked
}

// decide handles an approval event: it records the decision in the parked
// event's record and has the parked event's copy come back at once.
func (d *delivery) decide(ctx context.Context) string {
	w := d.w
	dec, _ := events.DecisionOf(d.ev)
	tkey := "e." + dec.EventKey
	trec, trev, err := w.ledger.get(ctx, tkey)
	if err != nil && !errors.Is(err, errCorrupt) {
		return d.retryLater(err)
	}
	signer := provenance(d.ev, d.msg.Headers(), d.authed).Signer
	decision := events.DecisionDenied
	if dec.Grant {
		decision = events.DecisionGranted
	}
	parked := events.Parked{State: events.ParkNone}
	if trec != nil && trec.Approval != nil {
		a := trec.Approval
		parked = events.Parked{State: events.ParkWaiting, Rule: a.Rule, Signer: a.Signer, User: a.User, ExpiresAt: a.ExpiresAt}
		switch {
		case trec.State == stateDone:
			parked.State = events.ParkFinished
		case a.Decision != "":
			parked.State = events.ParkDecided
		}
	} else if trec != nil && trec.State == stateDone {
		parked.State = events.ParkFinished
	}
	// A redelivery of this very approval after it was recorded (a crash
	// before its result) carries on; anything else is checked.
	again := parked.State == events.ParkDecided && trec.Approval.Approver == signer && trec.Approval.Decision == decision
	if !again {
		if err := w.cfg.Policy.CheckApproval(d.ev, signer, parked, w.cfg.Now()); err != nil {
			return d.reject(ctx, err)
		}
	}
	if err := d.claim(ctx, true); err != nil {
		if errors.Is(err, errLost) {
			return outcomeAbandoned
		}
		return d.retryLater(err)
	}
	stop := w.keepLease(ctx, d.h)
	defer stop()
	if !again {
		next := cloneRecord(trec)
		a := *trec.Approval
		a.Decision, a.Approver, a.Reason, a.DecidedAt = decision, signer, dec.Reason, w.cfg.Now()
		next.Approval = &a
		next.Write++
		if _, err := w.ledger.update(ctx, tkey, next, trev); err != nil {
			// Another decision won, or NATS failed: the retry sees which.
			return d.retryLater(err)
		}
	}
	if err := w.refire(ctx, dec.EventKey); err != nil {
		// The timeout schedule still brings the event back.
		w.log.Warn("approval recorded; the parked event runs at its timeout schedule instead of now", "event_key", dec.EventKey, "err", err)
	}
	return d.settle(ctx, events.StatusSucceeded, nil, nil, nil)
}

// refire re-publishes the schedule of the event with key (parked, or
// cancelled) to fire now (the subject keeps only the latest schedule).
func (w *Worker) refire(ctx context.Context, key string) error {
	last, err := w.lastSchedule(ctx, key)
	if err != nil {
		return fmt.Errorf("read the parked event's schedule: %w", err)
	}
	m := nats.NewMsg(scheduleSubject(key))
	m.Data = last.Data
	for k, vs := range last.Header {
		m.Header[k] = vs
	}
	fire := fireTime(w.cfg.Now(), w.cfg.Now().Add(time.Second), 0)
	m.Header.Set("Nats-Schedule", "@at "+fire.UTC().Format(time.RFC3339))
	m.Header.Del("Nats-Rollup")
	return w.publish(ctx, "schedule", m, "schedule:"+key+":decided")
}

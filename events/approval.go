package events

import (
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Four-eyes approval. An event that an approval rule of the policy holds
// back (Policy.ApprovalRule, policy_approval.go) is parked: decoded,
// authenticated and allowed, then answered with an interim result of
// status pending_approval (id PendingResultID) while nothing is written.
// An approver decides it with a grant or a deny event naming its key,
// signed by a key of the policy's approvers other than the one that signed
// the request (CheckApproval); the rule's timeout ends it otherwise
// (approval_timeout). Both end rejected, fail closed.

// ApprovalGrant (authflow.approval.grant.v1) lets a parked event run.
type ApprovalGrant struct {
	// EventKey is the parked event's key, EventKey(source, id): the id of
	// its pending result without ":pending_approval".
	EventKey string `json:"eventKey"`
	// An approval is neither a dry run nor a helpdesk request: unexported,
	// so the decoder refuses dryRun and verification as unknown fields.
	c Common
}

func (p *ApprovalGrant) common() *Common { return &p.c }

func (p *ApprovalGrant) validate(v *validator) { v.eventKey("data.eventKey", p.EventKey) }

// ApprovalDeny (authflow.approval.deny.v1) ends a parked event rejected
// (approval_denied), with the approver's reason.
type ApprovalDeny struct {
	EventKey string `json:"eventKey"`
	// Reason is why, for the requester and the audit trail: printable
	// text, at most 128 characters. Required.
	Reason string `json:"reason"`
	c      Common
}

func (p *ApprovalDeny) common() *Common { return &p.c }

func (p *ApprovalDeny) validate(v *validator) {
	v.eventKey("data.eventKey", p.EventKey)
	v.required("data.reason", p.Reason)
	v.text("data.reason", p.Reason, maxTextLen)
}

func (v *validator) eventKey(field, s string) {
	v.required(field, s)
	v.match(field, s, reEventKey, 64, "an event key: 64 lower-case hex digits (the id of the pending result, without :pending_approval)")
}

// IsApproval reports whether typ is an approval decision (grant or deny).
func IsApproval(typ string) bool { return typ == TypeApprovalGrant || typ == TypeApprovalDeny }

// ApprovalDecision is what an approval event decides.
type ApprovalDecision struct {
	EventKey string // the parked event's key
	Grant    bool   // grant: run it; deny: end it rejected
	Reason   string // a deny's reason
}

// DecisionOf returns the decision of an approval event, and false for any
// other event.
func DecisionOf(ev *Event) (ApprovalDecision, bool) {
	if ev == nil {
		return ApprovalDecision{}, false
	}
	switch p := ev.Payload.(type) {
	case *ApprovalGrant:
		return ApprovalDecision{EventKey: p.EventKey, Grant: true}, true
	case *ApprovalDeny:
		return ApprovalDecision{EventKey: p.EventKey, Reason: p.Reason}, true
	}
	return ApprovalDecision{}, false
}

// pendingSuffix marks the id of a pending result (InterimResultID). The
// final result of the same event keeps the plain event key: both go
// through the results stream's duplicate window (Nats-Msg-Id "result:" +
// id), so they need different ids, and CloudEvents wants source + id
// unique per message.
const pendingSuffix = ":" + string(StatusPendingApproval)

// PendingResultID is the id of the interim result of a parked event:
// EventKey(source, id) + ":pending_approval".
func PendingResultID(source, id string) string {
	return InterimResultID(source, id, StatusPendingApproval)
}

// ParseApprovalKey reads the key an approver names a parked event by: the
// event key (64 hex digits, any case) or the whole id of its pending
// result (the key and ":pending_approval"). It returns the key in lower
// case.
func ParseApprovalKey(s string) (string, error) {
	k := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), pendingSuffix))
	if !reEventKey.MatchString(k) {
		return "", invalid("", "%s is not an event key: want the 64 hex digits of the pending result's id (authflow approvals list shows them)", quote(s))
	}
	return k, nil
}

// Decisions, as results record them (ResultApproval.Decision).
const (
	DecisionGranted = "granted" // an approver granted it; the event ran
	DecisionDenied  = "denied"  // an approver denied it: rejected, approval_denied
	DecisionTimeout = "timeout" // nobody decided in time: rejected, approval_timeout
)

// ResultApproval is the approval record of a result (ResultData.Approval):
// on the pending result of a parked event, and on its final result.
type ResultApproval struct {
	Rule      string    `json:"rule"`               // the approval rule that parked the event
	EventKey  string    `json:"eventKey"`           // the parked event's key: what approve and deny name
	ExpiresAt time.Time `json:"expiresAt,omitzero"` // when the rule's timeout ends it
	// Decision is empty on the pending result, and granted, denied or
	// timeout on the final one.
	Decision string `json:"decision,omitempty"`
	// Approver is the public key (U...) that signed the grant or deny.
	Approver string `json:"approver,omitempty"`
	// Reason is a deny's reason.
	Reason string `json:"reason,omitempty"`
	// DecidedAt is when the decision was accepted (or the timeout fired).
	DecidedAt time.Time `json:"decidedAt,omitzero"`
}

// ParkState is where a parked event stands when an approval names it.
type ParkState int

// The states of a parked event.
const (
	ParkNone     ParkState = iota // no event is parked under the key
	ParkWaiting                   // parked, not decided yet
	ParkDecided                   // a grant or deny was accepted; the event is finishing
	ParkFinished                  // the event has its final result
)

// Parked is what the worker knows of the event an approval names: from
// its ledger record, written when it parked the event.
type Parked struct {
	State ParkState
	// Rule is the name of the approval rule that parked the event. When
	// the policy no longer has it, every approver of the policy may decide.
	Rule string
	// Signer is the public key that signed the parked event, "" when it
	// was unsigned (then no key counts as its own).
	Signer string
	// User is the parked event's user as its pending result names it.
	// When set, the approval's subject must be one of its names.
	User UserInfo
	// ExpiresAt is when the rule's timeout ends the event; zero for none.
	ExpiresAt time.Time
}

// CheckApproval decides whether approval event ev, signed by signer (its
// verified public key), may decide the parked event parked at time now.
// Every refusal is approval_invalid, changes nothing and says why: the
// signer is not an approver (an unknown key) or not one of the rule's
// (the wrong signer), no event waits under the key, the event is already
// decided or finished (an approval that arrives twice acts once), the
// timeout has passed, the signer signed the request itself (no
// self-approval), or the approval names another user. CheckAuth has
// verified the signature before.
func (p *Policy) CheckApproval(ev *Event, signer string, parked Parked, now time.Time) error {
	d, ok := DecisionOf(ev)
	if !ok {
		return newError(CodeInternal, "", "check approval: not an approval event")
	}
	if signer == "" {
		return newError(CodeApprovalInvalid, "", "an approval must be signed by an approver")
	}
	if !p.IsApprover(signer) {
		return newError(CodeApprovalInvalid, "", "the signer %s is not an approver of the policy (approvers)", signer)
	}
	switch parked.State {
	case ParkWaiting:
	case ParkDecided:
		return newError(CodeApprovalInvalid, "data.eventKey", "event %s was already approved or denied", d.EventKey)
	case ParkFinished:
		return newError(CodeApprovalInvalid, "data.eventKey", "event %s already has its final result; an approval changes nothing", d.EventKey)
	default:
		return newError(CodeApprovalInvalid, "data.eventKey", "no event waits for approval under key %s", d.EventKey)
	}
	if !parked.ExpiresAt.IsZero() && !now.Before(parked.ExpiresAt) {
		return newError(CodeApprovalInvalid, "data.eventKey", "event %s timed out at %s, before this approval", d.EventKey, parked.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if r, ok := p.approvalRule(parked.Rule); ok && len(r.Approvers) > 0 && !slices.Contains(r.Approvers, signer) {
		return newError(CodeApprovalInvalid, "", "the signer %s is not an approver of rule %s", signer, r.Name)
	}
	if parked.Signer != "" && parked.Signer == signer {
		return newError(CodeApprovalInvalid, "", "self-approval: %s signed the request itself; another approver must decide", signer)
	}
	u := parked.User
	if (u.Ref != "" || u.ObjectID != "" || u.UPN != "") && !u.Names(ev.Subject) {
		return newError(CodeApprovalInvalid, "subject", "the approval names user %s, the parked event another", quote(ev.Subject))
	}
	return nil
}

// ApprovalDeniedError is the error of a parked event an approver denied
// (approval_denied, rejected): who and why.
func ApprovalDeniedError(approver, reason string) error {
	return newError(CodeApprovalDenied, "", "denied by %s: %s", approver, reason)
}

// ApprovalTimeoutError is the error of a parked event nobody decided
// within timeout, the timeout of the rule that parked it
// (approval_timeout, rejected).
func ApprovalTimeoutError(rule string, timeout time.Duration) error {
	return newError(CodeApprovalTimeout, "", "no approval within %s (approval rule %s)", timeout, rule)
}

// validateApproval checks the approval record of a result with id id.
func (d *ResultData) validateApproval(id string) *Error {
	a := d.Approval
	if d.Status == StatusPendingApproval {
		switch {
		case a == nil:
			return invalid("data.approval", "required when the status is pending_approval")
		case a.Decision != "":
			return invalid("data.approval.decision", "must be absent while the status is pending_approval")
		case len(d.Operations) > 0:
			return invalid("data.operations", "must be empty while the status is pending_approval")
		case id != a.EventKey+pendingSuffix:
			return invalid("id", "a pending result's id is its event key and %q", pendingSuffix)
		}
	}
	if a == nil {
		return nil
	}
	switch {
	case a.Rule == "":
		return invalid("data.approval.rule", "required")
	case !reLimitName.MatchString(a.Rule):
		return invalid("data.approval.rule", "must be an approval rule name (1-64 letters, digits, - and _)")
	case !reEventKey.MatchString(a.EventKey):
		return invalid("data.approval.eventKey", "must be an event key (64 lower-case hex digits)")
	case (d.Event.Source != "" || d.Event.ID != "") && a.EventKey != EventKey(d.Event.Source, d.Event.ID):
		return invalid("data.approval.eventKey", "must be the key of data.event")
	case a.ExpiresAt.IsZero():
		return invalid("data.approval.expiresAt", "required")
	}
	code := Code("")
	if d.Error != nil {
		code = d.Error.Code
	}
	switch a.Decision {
	case "":
		if d.Status != StatusPendingApproval {
			return invalid("data.approval.decision", "required on a final result: granted, denied or timeout")
		}
	case DecisionGranted:
	case DecisionDenied:
		if code != CodeApprovalDenied {
			return invalid("data.approval.decision", "denied: the result must be rejected with approval_denied")
		}
	case DecisionTimeout:
		if code != CodeApprovalTimeout {
			return invalid("data.approval.decision", "timeout: the result must be rejected with approval_timeout")
		}
	default:
		return invalid("data.approval.decision", "must be granted, denied or timeout")
	}
	decided := a.Decision == DecisionGranted || a.Decision == DecisionDenied
	switch {
	case decided && a.Approver == "":
		return invalid("data.approval.approver", "required when an approver decided")
	case !decided && a.Approver != "":
		return invalid("data.approval.approver", "only when an approver decided (granted or denied)")
	case a.Approver != "" && (!reUserKey.MatchString(a.Approver) || !nkeys.IsValidPublicUserKey(a.Approver)):
		return invalid("data.approval.approver", "must be an nkeys user public key")
	case a.Reason != "" && a.Decision != DecisionDenied:
		return invalid("data.approval.reason", "only with the decision denied")
	}
	return checkString("data.approval.reason", a.Reason, reText, maxTextLen)
}

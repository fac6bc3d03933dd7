package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckApproval(t *testing.T) {
	t.Parallel()
	a7, a8, a9 := pub(t, testUserKey(t, 7)), pub(t, testUserKey(t, 8)), pub(t, testUserKey(t, 9))
	p, err := ParsePolicy([]byte(approvalSources(t) + `approvals:
  - name: admin-resets
    types: [authflow.mfa.reset.v1]
  - name: iam-only
    types: [authflow.employee.left.v1]
    approvers: [` + a8 + `]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2027, 1, 16, 14, 7, 0, 0, time.UTC)
	grant := decodeOK(t, event(TypeApprovalGrant, "Megan.Bowen@contoso.com", `{"eventKey":"`+testEventKey+`"}`))
	deny := decodeOK(t, event(TypeApprovalDeny, "megan.bowen@contoso.com", `{"eventKey":"`+testEventKey+`","reason":"no ticket"}`))
	waiting := Parked{State: ParkWaiting, Rule: "admin-resets", Signer: a9, ExpiresAt: now.Add(23 * time.Minute),
		User: UserInfo{Ref: "megan.bowen@contoso.com", ObjectID: "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d", UPN: "megan.bowen@contoso.com"}}
	with := func(f func(*Parked)) Parked { c := waiting; f(&c); return c }
	tests := []struct {
		name   string
		ev     *Event
		signer string
		parked Parked
		want   string // "" allowed; else part of the approval_invalid message
	}{
		{"grant by an approver", grant, a7, waiting, ""},
		{"deny by an approver", deny, a8, waiting, ""},
		{"unsigned request: any approver", grant, a7, with(func(p *Parked) { p.Signer = "" }), ""},
		{"the user by object id", decodeOK(t, event(TypeApprovalGrant, "4A5B6C7D-8E9F-4A0B-9C1D-2E3F4A5B6C7D", `{"eventKey":"`+testEventKey+`"}`)), a7, waiting, ""},
		{"no user known: no check", grant, a7, with(func(p *Parked) { p.User = UserInfo{} }), ""},
		{"a rule the policy dropped: every approver", grant, a7, with(func(p *Parked) { p.Rule = "gone" }), ""},
		{"rule approver", grant, a8, with(func(p *Parked) { p.Rule = "iam-only" }), ""},
		{"unknown key", grant, a9, with(func(p *Parked) { p.Signer = "" }), "is not an approver of the policy"},
		{"unsigned approval", grant, "", waiting, "must be signed"},
		{"wrong signer for the rule", grant, a7, with(func(p *Parked) { p.Rule = "iam-only" }), "not an approver of rule iam-only"},
		{"self-approval", grant, a7, with(func(p *Parked) { p.Signer = a7 }), "self-approval"},
		{"self-denial is refused too", deny, a7, with(func(p *Parked) { p.Signer = a7 }), "self-approval"},
		{"nothing parked", grant, a7, Parked{}, "no event waits for approval under key " + testEventKey},
		{"already decided", grant, a7, with(func(p *Parked) { p.State = ParkDecided }), "already approved or denied"},
		{"already finished", deny, a7, with(func(p *Parked) { p.State = ParkFinished }), "already has its final result"},
		{"after the timeout", grant, a7, with(func(p *Parked) { p.ExpiresAt = now }), "timed out at 2027-01-16T14:07:00Z"},
		{"another user", decodeOK(t, event(TypeApprovalGrant, "adele.vance@contoso.com", `{"eventKey":"`+testEventKey+`"}`)), a7, waiting, "names user \"adele.vance@contoso.com\""},
	}
	for _, tc := range tests {
		err := p.CheckApproval(tc.ev, tc.signer, tc.parked, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (CodeOf(err) != CodeApprovalInvalid || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: CheckApproval = %v, want approval_invalid with %q", tc.name, err, tc.want)
		}
	}
	if err := p.CheckApproval(decodeOK(t, event(TypeMFAReset, "a@contoso.com", `{}`)), a7, waiting, now); CodeOf(err) != CodeInternal {
		t.Errorf("not an approval: %v", err)
	}
	if err := p.CheckApproval(nil, a7, waiting, now); CodeOf(err) != CodeInternal {
		t.Errorf("nil: %v", err)
	}
}

func TestApprovalDecisionsAndErrors(t *testing.T) {
	t.Parallel()
	d, ok := DecisionOf(decodeOK(t, event(TypeApprovalDeny, "a@contoso.com", `{"eventKey":"`+testEventKey+`","reason":"no ticket"}`)))
	if !ok || d != (ApprovalDecision{EventKey: testEventKey, Reason: "no ticket"}) {
		t.Errorf("deny: %+v, %v", d, ok)
	}
	d, ok = DecisionOf(decodeOK(t, event(TypeApprovalGrant, "a@contoso.com", `{"eventKey":"`+testEventKey+`"}`)))
	if !ok || d != (ApprovalDecision{EventKey: testEventKey, Grant: true}) {
		t.Errorf("grant: %+v, %v", d, ok)
	}
	if _, ok := DecisionOf(decodeOK(t, event(TypeMFAReset, "a@contoso.com", `{}`))); ok {
		t.Error("an MFA reset is a decision")
	}
	for _, typ := range Types() {
		if IsApproval(typ) != (typ == TypeApprovalGrant || typ == TypeApprovalDeny) || (IsApproval(typ) && !ReadOnly(typ)) {
			t.Errorf("%s: IsApproval %v, ReadOnly %v", typ, IsApproval(typ), ReadOnly(typ))
		}
		if IsApproval(typ) && DevPolicy().Notify("x", typ) != NotifyNone {
			t.Errorf("%s is notified", typ)
		}
	}
	approver := pub(t, testUserKey(t, 7))
	err := ApprovalDeniedError(approver, "no ticket")
	if CodeOf(err) != CodeApprovalDenied || err.Error() != "approval_denied: denied by "+approver+": no ticket" || !InfoOf(err).Permanent || CodeApprovalDenied.Status() != StatusRejected {
		t.Errorf("ApprovalDeniedError = %v", err)
	}
	err = ApprovalTimeoutError("admin-resets", 30*time.Minute)
	if CodeOf(err) != CodeApprovalTimeout || err.Error() != "approval_timeout: no approval within 30m0s (approval rule admin-resets)" || CodeApprovalTimeout.Status() != StatusRejected {
		t.Errorf("ApprovalTimeoutError = %v", err)
	}

	for in, want := range map[string]string{
		testEventKey:                               testEventKey,
		strings.ToUpper(testEventKey):              testEventKey,
		" " + testEventKey + ":pending_approval\n": testEventKey,
		PendingResultID("hr/workday", "e-1"):       testEventKey,
	} {
		if got, err := ParseApprovalKey(in); err != nil || got != want {
			t.Errorf("ParseApprovalKey(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", testEventKey[:63], testEventKey + "0", testEventKey + ":redrive-1", testEventKey + ":pending", testEventKey + ":scheduled", testEventKey + ":pending_approval:pending_approval", "x" + testEventKey[1:]} {
		if _, err := ParseApprovalKey(bad); CodeOf(err) != CodeInvalidEvent || !strings.Contains(err.Error(), "not an event key") {
			t.Errorf("ParseApprovalKey(%q) = %v", bad, err)
		}
	}
	if !StatusSucceeded.Final() || !StatusRejected.Final() || StatusPendingApproval.Final() || !StatusPendingApproval.Valid() || Status("x").Final() {
		t.Error("Status.Final")
	}
}

// pendingResult is the interim result of the test event (hr/workday, e-1).
func pendingResult(t testing.TB) *Result {
	t.Helper()
	at := time.Date(2027, 1, 16, 14, 0, 0, 180_000_000, time.UTC)
	return NewResult(PendingResultID("hr/workday", "e-1"), "adele.vance@contoso.com", ResultData{
		Event:      EventRef{Source: "hr/workday", ID: "e-1", Type: TypeMFAReset},
		User:       UserInfo{Ref: "adele.vance@contoso.com", ObjectID: "5a0e8c8b-3d5f-4f6e-9b1a-2c3d4e5f6071"},
		Status:     StatusPendingApproval,
		Provenance: &Provenance{Source: "hr/workday", Signer: pub(t, testUserKey(t, 9))},
		Approval:   &ResultApproval{Rule: "admin-resets", EventKey: testEventKey, ExpiresAt: at.Add(time.Hour)},
		ReceivedAt: at,
		FinishedAt: at.Add(230 * time.Millisecond),
	}, at.Add(231*time.Millisecond))
}

// TestResultApproval checks the approval record of results: valid ones
// round-trip and validate against the schema; invalid ones are refused
// by both Marshal and the schema.
func TestResultApproval(t *testing.T) {
	t.Parallel()
	s := schemas(t)
	approver := pub(t, testUserKey(t, 7))
	final := func(f func(*Result)) *Result {
		r := pendingResult(t)
		r.ID = testEventKey
		r.Data.Status = StatusRejected
		r.Data.Error = InfoOf(ApprovalDeniedError(approver, "no ticket"))
		r.Data.Approval.Decision, r.Data.Approval.Approver, r.Data.Approval.Reason = DecisionDenied, approver, "no ticket"
		r.Data.Approval.DecidedAt = r.Data.Approval.ExpiresAt.Add(-time.Minute)
		if f != nil {
			f(r)
		}
		return r
	}
	granted := final(func(r *Result) {
		r.Data.Status, r.Data.Error = StatusSucceeded, nil
		r.Data.Operations = []OpResult{{Op: OpRemoveAllMethods, Outcome: OutcomeUnchanged}}
		r.Data.Approval.Decision, r.Data.Approval.Reason = DecisionGranted, ""
		r.Data.Attempts = 1
	})
	timedOut := final(func(r *Result) {
		r.Data.Error = InfoOf(ApprovalTimeoutError("admin-resets", time.Hour))
		r.Data.Approval.Decision, r.Data.Approval.Approver, r.Data.Approval.Reason = DecisionTimeout, "", ""
	})
	for name, r := range map[string]*Result{"pending": pendingResult(t), "denied": final(nil), "granted": granted, "timed out": timedOut} {
		b, err := r.Marshal()
		if err != nil {
			t.Errorf("%s: Marshal: %v", name, err)
			continue
		}
		back, err := DecodeResult(b)
		if err != nil || !reflect.DeepEqual(back.Data.Approval, r.Data.Approval) {
			t.Errorf("%s: round trip: %v\n%s", name, err, b)
		}
		if ok, err := validates(s.result, b); !ok {
			t.Errorf("%s: the schema refuses it: %v\n%s", name, err, b)
		}
	}
	bad := []struct {
		name, field string
		r           *Result
	}{
		{"pending without approval", "data.approval", func() *Result { r := pendingResult(t); r.Data.Approval = nil; return r }()},
		{"pending with an error", "data.error", func() *Result {
			r := pendingResult(t)
			r.Data.Error = InfoOf(ApprovalDeniedError(approver, "x"))
			return r
		}()},
		{"pending with a decision", "data.approval.decision", func() *Result { r := pendingResult(t); r.Data.Approval.Decision = DecisionGranted; return r }()},
		{"pending with operations", "data.operations", func() *Result {
			r := pendingResult(t)
			r.Data.Operations = []OpResult{{Op: OpRemoveAllMethods, Outcome: OutcomeUnchanged}}
			return r
		}()},
		{"pending under the final id", "id", func() *Result { r := pendingResult(t); r.ID = testEventKey; return r }()},
		{"another event's key", "data.approval.eventKey", func() *Result {
			r := pendingResult(t)
			r.Data.Approval.EventKey = EventKey("hr/workday", "e-2")
			r.ID = r.Data.Approval.EventKey + ":pending_approval"
			return r
		}()},
		{"key in upper case", "data.approval.eventKey", final(func(r *Result) { r.Data.Approval.EventKey = strings.ToUpper(testEventKey) })},
		{"no rule", "data.approval.rule", final(func(r *Result) { r.Data.Approval.Rule = "" })},
		{"bad rule", "data.approval.rule", final(func(r *Result) { r.Data.Approval.Rule = "admin resets" })},
		{"no expiry", "data.approval.expiresAt", final(func(r *Result) { r.Data.Approval.ExpiresAt = time.Time{} })},
		{"final without decision", "data.approval.decision", final(func(r *Result) { r.Data.Approval.Decision = "" })},
		{"unknown decision", "data.approval.decision", final(func(r *Result) { r.Data.Approval.Decision = "maybe" })},
		{"denied with another code", "data.approval.decision", final(func(r *Result) { r.Data.Error = InfoOf(&Error{Code: CodePolicyDenied, Message: "x"}) })},
		{"timeout with another code", "data.approval.decision", final(func(r *Result) {
			r.Data.Approval.Decision, r.Data.Approval.Approver, r.Data.Approval.Reason = DecisionTimeout, "", ""
		})},
		{"denied without approver", "data.approval.approver", final(func(r *Result) { r.Data.Approval.Approver = "" })},
		{"timeout with an approver", "data.approval.approver", func() *Result {
			r := *timedOut
			a := *r.Data.Approval
			a.Approver = approver
			r.Data.Approval = &a
			return &r
		}()},
		{"approver not a user key", "data.approval.approver", final(func(r *Result) { r.Data.Approval.Approver = testSealTo })},
		{"reason on a grant", "data.approval.reason", func() *Result {
			r := *granted
			a := *r.Data.Approval
			a.Reason = "fine"
			r.Data.Approval = &a
			return &r
		}()},
		{"reason with a newline", "data.approval.reason", final(func(r *Result) { r.Data.Approval.Reason = "no\nticket" })},
	}
	for _, tc := range bad {
		_, err := tc.r.Marshal()
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != tc.field {
			t.Errorf("%s: Marshal = %v, want invalid_event at %s", tc.name, err, tc.field)
		}
	}
	// The schema refuses what it can state: the shapes, and that a
	// pending result has an approval without a decision and no error or
	// operations, and a final one a decision.
	for _, tc := range bad {
		switch tc.name {
		case "pending under the final id", "another event's key", "denied with another code", "timeout with another code",
			"denied without approver", "timeout with an approver", "reason on a grant":
			continue // cross-field rules of the decoder only (see docs/events.md, "JSON Schemas")
		}
		c := *tc.r
		b, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := validates(s.result, b); ok {
			t.Errorf("%s: the schema accepts it:\n%s", tc.name, b)
		}
	}
}

package worker_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// signedAs builds an event of source with a fresh id, signed by kp.
func (e *env) signedAs(source, typ, subject string, data any, kp nkeys.KeyPair) (string, []byte, nats.Header) {
	e.t.Helper()
	e.seq++
	id := fmt.Sprintf("%s-%d", e.t.Name(), e.seq)
	raw := mustJSON(e.t, map[string]any{
		"specversion": "1.0", "id": id, "source": source, "type": typ, "subject": subject,
		"time": time.Now().UTC().Format(time.RFC3339), "data": data,
	})
	sig, pub, err := events.Sign(raw, kp)
	if err != nil {
		e.t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(events.HeaderSignature, sig)
	h.Set(events.HeaderSigner, pub)
	return id, raw, h
}

// waitFinal waits for the final result of event id.
func (e *env) waitFinal(t *testing.T, id string, timeout time.Duration) *events.Result {
	t.Helper()
	deadline := time.Now().Add(timeout)
	// Each look is an ordered consumer: not too often over a long wait.
	pause := 50 * time.Millisecond
	if timeout > 30*time.Second {
		pause = time.Second
	}
	for time.Now().Before(deadline) {
		for _, r := range e.allResultsOf(t, id) {
			if r.Data.Status.Final() {
				return r
			}
		}
		time.Sleep(pause)
	}
	t.Fatalf("no final result for %s within %s\n%s", id, timeout, tail(e.logs.String(), 3000))
	return nil
}

// TestFourEyesApproval: an MFA reset of an administrator is parked (an
// interim pending_approval result, nothing written to Graph) and a later
// event of the same user waits behind it; a grant by another approver runs
// it, then the later event; a deny ends another rejected (approval_denied)
// with nothing written; self-approval and an unknown approver are refused
// and change nothing; an approval that arrives twice acts once.
func TestFourEyesApproval(t *testing.T) {
	e := newEnv(t)
	requester, _ := nkeys.CreateUser()
	approver, _ := nkeys.CreateUser()
	stranger, _ := nkeys.CreateUser()
	reqPub, _ := requester.PublicKey()
	apPub, _ := approver.PublicKey()
	pol, err := events.ParsePolicy([]byte(fmt.Sprintf(`
version: 1
sources:
  helpdesk/test:
    signature: required
    keys: [%s]
    types: ["*"]
approvers: [%s, %s]
approvals:
  - name: admin-resets
    types: [authflow.mfa.reset.v1]
    users:
      upns: ["*@admin.contoso.example"]
`, reqPub, reqPub, apPub)))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker()
	admin, upn := uid(3500), "boss@admin.contoso.example"
	e.seed(admin, upn, mobile, authApp)

	reset, raw, h := e.signedAs("helpdesk/test", events.TypeMFAReset, upn, map[string]any{}, requester)
	e.publish("boss", raw, h)
	later, raw2, h2 := e.signedAs("helpdesk/test", events.TypePhoneSet, upn, map[string]any{"phoneType": "office", "phoneNumber": "+1 425 555 0150"}, requester)
	e.publish("boss", raw2, h2)

	// Parked: a pending result, nothing written, and the later event waits.
	deadline := time.Now().Add(10 * time.Second)
	var pending *events.Result
	for pending == nil && time.Now().Before(deadline) {
		for _, r := range e.allResultsOf(t, reset) {
			if r.Data.Status == events.StatusPendingApproval {
				pending = r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pending == nil || pending.Data.Approval == nil || pending.Data.Approval.Rule != "admin-resets" {
		t.Fatalf("no pending_approval result with its rule: %+v\n%s", pending, tail(e.logs.String(), 3000))
	}
	key := pending.Data.Approval.EventKey
	time.Sleep(time.Second)
	if n := countKind(e.user(admin), "microsoftAuthenticator"); n != 1 {
		t.Fatalf("the parked MFA reset wrote to Graph: %v", kinds(e.user(admin)))
	}
	if rs := e.allResultsOf(t, later); len(rs) != 0 {
		t.Fatalf("the later event of the parked user ran: %s", rs[0].Data.Status)
	}

	approve := func(kp nkeys.KeyPair, typ string, data map[string]any) string {
		id, raw, h := e.signedAs("helpdesk/test", typ, upn, data, kp)
		e.publish("approval-"+key, raw, h)
		return id
	}
	// Self-approval and a stranger's key are refused and change nothing.
	self := approve(requester, events.TypeApprovalGrant, map[string]any{"eventKey": key})
	if r := e.waitFinal(t, self, 10*time.Second); r.Data.Status != events.StatusRejected || r.Data.Error.Code != events.CodeApprovalInvalid {
		t.Errorf("self-approval: %s %+v", r.Data.Status, r.Data.Error)
	}
	odd := approve(stranger, events.TypeApprovalGrant, map[string]any{"eventKey": key})
	if r := e.waitFinal(t, odd, 10*time.Second); r.Data.Status != events.StatusRejected {
		t.Errorf("a stranger's approval: %s %+v", r.Data.Status, r.Data.Error)
	}
	if rs := e.allResultsOf(t, reset); len(rs) != 1 {
		t.Fatalf("refused approvals changed the parked event: %d results", len(rs))
	}

	// A grant by the other approver runs it, then the later event.
	grant := approve(approver, events.TypeApprovalGrant, map[string]any{"eventKey": key})
	if r := e.waitFinal(t, grant, 10*time.Second); r.Data.Status != events.StatusSucceeded {
		t.Fatalf("grant: %s %+v", r.Data.Status, r.Data.Error)
	}
	final := e.waitFinal(t, reset, 15*time.Second)
	if final.Data.Status != events.StatusSucceeded || final.Data.Approval == nil || final.Data.Approval.Decision != events.DecisionGranted || final.Data.Approval.Approver != apPub {
		t.Fatalf("the granted reset: %s %+v %+v", final.Data.Status, final.Data.Error, final.Data.Approval)
	}
	if n := countKind(e.user(admin), "microsoftAuthenticator"); n != 0 {
		t.Errorf("after the grant the Authenticator is still there: %v", kinds(e.user(admin)))
	}
	after := e.waitFinal(t, later, 15*time.Second)
	if after.Data.Status != events.StatusSucceeded || after.Data.FinishedAt.Before(final.Data.FinishedAt) {
		t.Errorf("the later event: %s, finished %s, the reset %s", after.Data.Status, after.Data.FinishedAt, final.Data.FinishedAt)
	}
	// The same grant again acts once: refused as already decided.
	again := approve(approver, events.TypeApprovalGrant, map[string]any{"eventKey": key})
	if r := e.waitFinal(t, again, 10*time.Second); r.Data.Status != events.StatusRejected {
		t.Errorf("a second grant: %s", r.Data.Status)
	}

	// A deny ends another parked reset rejected, nothing written.
	e.seed(uid(3501), "vp@admin.contoso.example", mobile)
	reset2, raw3, h3 := e.signedAs("helpdesk/test", events.TypeMFAReset, "vp@admin.contoso.example", map[string]any{}, requester)
	e.publish("vp", raw3, h3)
	deadline = time.Now().Add(10 * time.Second)
	key2 := ""
	for key2 == "" && time.Now().Before(deadline) {
		for _, r := range e.allResultsOf(t, reset2) {
			if r.Data.Approval != nil {
				key2 = r.Data.Approval.EventKey
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	id, raw4, h4 := e.signedAs("helpdesk/test", events.TypeApprovalDeny, "vp@admin.contoso.example", map[string]any{"eventKey": key2, "reason": "no change ticket"}, approver)
	e.publish("approval-"+key2, raw4, h4)
	if r := e.waitFinal(t, id, 10*time.Second); r.Data.Status != events.StatusSucceeded {
		t.Fatalf("deny: %s %+v", r.Data.Status, r.Data.Error)
	}
	denied := e.waitFinal(t, reset2, 15*time.Second)
	if denied.Data.Status != events.StatusRejected || denied.Data.Error.Code != events.CodeApprovalDenied {
		t.Errorf("denied reset: %s %+v", denied.Data.Status, denied.Data.Error)
	}
	if n := countKind(e.user(uid(3501)), "phone"); n != 1 {
		t.Errorf("the denied reset wrote to Graph: %v", kinds(e.user(uid(3501))))
	}
}

// TestApprovalTimeout: nobody decides within the rule's timeout (1 minute,
// the shortest a policy allows): JetStream's scheduler brings the event
// back and it ends rejected with approval_timeout, nothing written.
func TestApprovalTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a one-minute approval timeout")
	}
	e := newEnv(t)
	requester, _ := nkeys.CreateUser()
	approver, _ := nkeys.CreateUser()
	reqPub, _ := requester.PublicKey()
	apPub, _ := approver.PublicKey()
	pol, err := events.ParsePolicy([]byte(fmt.Sprintf(`
version: 1
sources:
  helpdesk/test:
    signature: required
    keys: [%s]
    types: ["*"]
approvers: [%s]
approvals:
  - name: every-reset
    types: [authflow.mfa.reset.v1]
    timeout: 1m
`, reqPub, apPub)))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker()
	id, upn := uid(3600), "slow@contoso.example"
	e.seed(id, upn, mobile)
	reset, raw, h := e.signedAs("helpdesk/test", events.TypeMFAReset, upn, map[string]any{}, requester)
	e.publish("slow", raw, h)
	start := time.Now()
	r := e.waitFinal(t, reset, 90*time.Second)
	t.Logf("ended %s after %s", r.Data.Status, time.Since(start).Round(time.Second))
	if r.Data.Status != events.StatusRejected || r.Data.Error.Code != events.CodeApprovalTimeout ||
		r.Data.Approval == nil || r.Data.Approval.Decision != events.DecisionTimeout {
		t.Fatalf("timed out reset: %s %+v %+v", r.Data.Status, r.Data.Error, r.Data.Approval)
	}
	if elapsed := time.Since(start); elapsed < 55*time.Second {
		t.Errorf("ended after %s, before its one-minute timeout", elapsed)
	}
	if n := countKind(e.user(id), "phone"); n != 1 {
		t.Errorf("the timed-out reset wrote to Graph: %v", kinds(e.user(id)))
	}
}

// TestApprovalCrashAfterPark: an attempt that "crashes" right after
// recording the park (before its schedule and pending result) leaves the
// event parked: the redelivery publishes the pending result once, and a
// grant then runs it once.
func TestApprovalCrashAfterPark(t *testing.T) {
	e := newEnv(t)
	requester, _ := nkeys.CreateUser()
	approver, _ := nkeys.CreateUser()
	reqPub, _ := requester.PublicKey()
	apPub, _ := approver.PublicKey()
	pol, err := events.ParsePolicy([]byte(fmt.Sprintf(`
version: 1
sources:
  helpdesk/test:
    signature: required
    keys: [%s]
    types: ["*"]
approvers: [%s]
approvals:
  - name: every-reset
    types: [authflow.mfa.reset.v1]
`, reqPub, apPub)))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	var crashed atomic.Bool
	e.startWorker(func(c *worker.Config) {
		c.Hook = func(p string) error {
			if p == worker.HookAfterPark && crashed.CompareAndSwap(false, true) {
				return errors.New("crash after park")
			}
			return nil
		}
	})
	id, upn := uid(3900), "crashpark@contoso.example"
	e.seed(id, upn, mobile)
	reset, raw, h := e.signedAs("helpdesk/test", events.TypeMFAReset, upn, map[string]any{}, requester)
	e.publish("crashpark", raw, h)
	deadline := time.Now().Add(15 * time.Second)
	key := ""
	for key == "" && time.Now().Before(deadline) {
		for _, r := range e.allResultsOf(t, reset) {
			if r.Data.Status == events.StatusPendingApproval {
				key = r.Data.Approval.EventKey
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !crashed.Load() || key == "" {
		t.Fatalf("crashed %v, pending result %q", crashed.Load(), key)
	}
	gid, graw, gh := e.signedAs("helpdesk/test", events.TypeApprovalGrant, upn, map[string]any{"eventKey": key}, approver)
	e.publish("approval-"+key, graw, gh)
	if r := e.waitFinal(t, gid, 10*time.Second); r.Data.Status != events.StatusSucceeded {
		t.Fatalf("grant: %s %+v", r.Data.Status, r.Data.Error)
	}
	if r := e.waitFinal(t, reset, 15*time.Second); r.Data.Status != events.StatusSucceeded {
		t.Fatalf("reset after the grant: %s %+v", r.Data.Status, r.Data.Error)
	}
	time.Sleep(500 * time.Millisecond)
	pendings, finals := 0, 0
	for _, r := range e.allResultsOf(t, reset) {
		if r.Data.Status == events.StatusPendingApproval {
			pendings++
		} else {
			finals++
		}
	}
	if pendings != 1 || finals != 1 {
		t.Errorf("%d pending and %d final results, want 1 and 1", pendings, finals)
	}
	if n := countKind(e.user(id), "phone"); n != 0 {
		t.Errorf("the granted reset left the phone: %v", kinds(e.user(id)))
	}
}

// TestRateLimitTwoReplicas: two replicas, 50 MFA resets of one user under
// a limit of 2 per day: exactly 2 succeed, 48 end rate_limited.
func TestRateLimitTwoReplicas(t *testing.T) {
	e := newEnv(t)
	pol, err := events.ParsePolicy([]byte(`
version: 1
sources:
  helpdesk/test:
    types: ["*"]
limits:
  - name: mfa-resets-per-user
    per: user
    types: [authflow.mfa.reset.v1]
    max: 2
    window: 24h
`))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker()
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })
	id, upn := uid(3950), "target@contoso.example"
	e.seed(id, upn, mobile)
	var ids []string
	for i := range 50 {
		rid, raw := e.event(events.TypeMFAReset, upn, map[string]any{})
		raw = []byte(strings.Replace(string(raw), `"source":"hr/test"`, `"source":"helpdesk/test"`, 1))
		// Two keys, so the two replicas and both lanes really compete.
		e.publish(fmt.Sprintf("target%d", i%2), raw, nil)
		ids = append(ids, rid)
	}
	res := e.results(50, 60*time.Second)
	ok, limited := 0, 0
	for _, rid := range ids {
		r := res[rid]
		switch {
		case r == nil:
			t.Fatalf("no result for %s", rid)
		case r.Data.Status == events.StatusSucceeded:
			ok++
		case r.Data.Error != nil && r.Data.Error.Code == events.CodeRateLimited:
			limited++
		default:
			t.Errorf("%s: %s %+v", rid, r.Data.Status, r.Data.Error)
		}
	}
	if ok != 2 || limited != 48 {
		t.Errorf("%d succeeded and %d rate_limited of 50, want exactly 2 and 48", ok, limited)
	}
}

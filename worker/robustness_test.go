package worker_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestPerUserOrderAcrossReplicas runs two replicas over many events for a
// few users, kills one of them mid-run, and checks that every event has
// exactly one result, each user's events took effect in publish order, and
// no event took effect twice.
func TestPerUserOrderAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 3, JitterMs: 4}); err != nil {
		t.Fatal(err)
	}
	const users, perUser = 6, 15
	w1 := e.startWorker(func(c *worker.Config) { c.Instance = "w1" })
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })

	ids := map[string][]string{} // user -> event ids in publish order
	for i := 0; i < perUser; i++ {
		for u := 0; u < users; u++ {
			id, upn := uid(200+u), fmt.Sprintf("order%d@contoso.example", u)
			if i == 0 {
				e.seed(id, upn)
			}
			number := fmt.Sprintf("+1 42555%05d", 100*u+i)
			ids[id] = append(ids[id], e.send("user"+id[len(id)-4:], events.TypePhoneSet, upn,
				map[string]any{"phoneType": "office", "phoneNumber": number}))
		}
	}
	// Kill one replica once a third of the events are done.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := e.streamInfo(worker.ResultsStream)
		if err == nil && info.State.Msgs >= users*perUser/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("too slow before the kill")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w1.kill()
	res := e.results(users*perUser, 60*time.Second)

	// Results per user must appear in publish order: a user's next event
	// cannot start before the previous one's result is published.
	seqOf := map[string]int{}
	for i, m := range streamMessages(t, e.js, worker.ResultsStream) {
		r, err := events.DecodeResult(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		seqOf[r.Data.Event.ID] = i
	}
	for user, evs := range ids {
		for i := 1; i < len(evs); i++ {
			if seqOf[evs[i]] < seqOf[evs[i-1]] {
				t.Errorf("user %s: result of event %d came before event %d's", user, i, i-1)
			}
		}
		for _, id := range evs {
			if r := res[id]; r.Data.Status != events.StatusSucceeded {
				t.Errorf("event %s: %s %+v", id, r.Data.Status, r.Data.Error)
			}
		}
		// Exactly one write per event: the first creates the office phone,
		// each later one changes it; a re-applied event would add a write.
		var writes []string
		for _, q := range e.graph.Requests() {
			if q.UserID == user && q.Method != "GET" {
				writes = append(writes, q.Method)
			}
		}
		if len(writes) != perUser || writes[0] != "POST" {
			t.Errorf("user %s: writes %v, want one POST then %d PATCHes", user, writes, perUser-1)
		}
		u := e.user(user)
		if got, want := phones(u)["office"], fmt.Sprintf("+1 42555%05d", 100*(mustAtoi(user[len(user)-3:])-200)+perUser-1); got != want {
			t.Errorf("user %s: final office phone %s, want %s (the last event's)", user, got, want)
		}
	}
}

func mustAtoi(s string) int {
	var n int
	_, _ = fmt.Sscanf(s, "%d", &n)
	return n
}

// TestCrashPoints makes a replica "crash" at each point of the pipeline
// while it issues a TAP, then lets a fresh replica finish: exactly one
// result, and exactly one TAP — the one whose sealed value was delivered.
func TestCrashPoints(t *testing.T) {
	for _, point := range []string{worker.HookAfterGraphWrite, worker.HookAfterLedgerWrite, worker.HookAfterResultPublish, worker.HookBeforeAck} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t)
			id, upn := uid(300), "crash@contoso.example"
			e.seed(id, upn, mobile)

			var crashed atomic.Bool
			fired := make(chan struct{})
			var once sync.Once
			w1 := e.startWorker(func(c *worker.Config) {
				c.Hook = func(p string) error {
					if p == point || crashed.Load() {
						crashed.Store(true)
						once.Do(func() { close(fired) })
						return errors.New("crash at " + p)
					}
					return nil
				}
			})
			evID := e.send("crash", events.TypeTAPIssue, upn, map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo})
			select {
			case <-fired:
			case <-time.After(10 * time.Second):
				t.Fatal("crash point never reached")
			}
			w1.kill()
			e.startWorker()
			res := e.results(1, 20*time.Second)
			r := res[evID]
			if r.Data.Status != events.StatusSucceeded {
				t.Fatalf("status %s: %+v", r.Data.Status, r.Data.Error)
			}
			u := e.user(id)
			if n := countKind(u, "temporaryAccessPass"); n != 1 {
				t.Fatalf("%d TAPs after the crash, want exactly 1", n)
			}
			var delivered string
			for _, o := range r.Data.Operations {
				if o.Secret != nil {
					delivered = o.MethodID
				}
			}
			if !strings.Contains(string(mustJSON(t, u.Methods)), delivered) {
				t.Errorf("the TAP left in Graph is not the one whose value was delivered (%s)", delivered)
			}
			e.openSecret(t, r, events.SecretTAP)
			// Nothing is published twice: still one result after a while.
			time.Sleep(300 * time.Millisecond)
			e.results(1, time.Second)
			e.noSecretsLeaked(res)
		})
	}
}

// TestFaultsAndThrottling runs events against an emulator that fails a
// third of the requests (429, 500, 503, 504), loses some replies after
// applying writes, and throttles: every event still succeeds, no request
// comes back before its Retry-After, and no user ends with two TAPs.
func TestFaultsAndThrottling(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{
		ErrorRate: 0.3, ErrorStatuses: []int{429, 500, 503, 504}, RetryAfterSeconds: 1,
		LostReplyRate: 0.1, LostReplyMode: "504", ThrottleRPS: 200, Seed: 42,
	}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(func(c *worker.Config) { c.MaxAttempts = 10 })
	const n = 12
	var ids []string
	for i := 0; i < n; i++ {
		id, upn := uid(400+i), fmt.Sprintf("faulty%d@contoso.example", i)
		e.seed(id, upn, mobile)
		ids = append(ids, e.send(fmt.Sprintf("f%d", i), events.TypeEmployeeJoined, upn, map[string]any{
			"officePhone": fmt.Sprintf("+1 20655501%02d", i), "email": "x@example.org",
			"tap": map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo}}))
	}
	res := e.results(n, 90*time.Second)
	for i, id := range ids {
		if r := res[id]; r.Data.Status != events.StatusSucceeded {
			t.Errorf("event %d: %s %+v", i, r.Data.Status, r.Data.Error)
		}
		if k := countKind(e.user(uid(400+i)), "temporaryAccessPass"); k != 1 {
			t.Errorf("user %d has %d TAPs", i, k)
		}
	}
	st := e.graph.Stats()
	if st.RetryAfterViolations != 0 {
		t.Errorf("%d requests came back before their Retry-After", st.RetryAfterViolations)
	}
	if st.Throttled == 0 || st.LostReplies == 0 {
		t.Errorf("faults were not exercised: %+v", st)
	}
	t.Logf("emulator stats: throttled %d, lost replies %d, total %d", st.Throttled, st.LostReplies, st.Total)
}

// TestPoisonAndPolicy sends undecodable, unknown-type, unsigned,
// policy-denied, protected-user and permanently failing events among good
// ones: each ends as its documented result or dead letter, no rejected
// event reaches Graph, and the good events still flow.
func TestPoisonAndPolicy(t *testing.T) {
	e := newEnv(t)
	signer, _ := nkeys.CreateUser()
	signerPub, _ := signer.PublicKey()
	pol, err := events.ParsePolicy([]byte(fmt.Sprintf(`
version: 1
sources:
  hr/test:
    types: [authflow.phone.set.v1, authflow.employee.left.v1, authflow.tap.issue.v1]
  hr/signed:
    signature: required
    keys: [%s]
    types: ["*"]
protectedUsers:
  anyDirectoryRole: true
`, signerPub)))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker()
	good, admin, denied := uid(500), uid(501), uid(502)
	e.seed(good, "good@contoso.example")
	// A user of its own: events of one user under different keys have no
	// order between them (docs/architecture.md), and good@ gets a mobile below.
	e.seed(uid(503), "nomobile@contoso.example")
	e.seed(denied, "denied@contoso.example", mobile, fido)
	if err := e.graph.PutUser(graphclienttest.User{ID: admin, UserPrincipalName: "admin@contoso.example",
		DirectoryRoles: []string{"Global Administrator"}}); err != nil {
		t.Fatal(err)
	}

	e.publish("p1", []byte(`{"specversion":"1.0","id":"garbage-1","source":"hr/test","type":`), nil)
	e.publish("p2", []byte("\xff\xfe not json"), nil)
	unknownID, unknown := e.event("authflow.employee.promoted.v1", "good@contoso.example", map[string]any{})
	e.publish("p3", unknown, nil)
	deniedID := e.send("p4", events.TypeMFAReset, "denied@contoso.example", map[string]any{}) // type not allowed
	protectedID := e.send("p5", events.TypeEmployeeLeft, "admin@contoso.example", map[string]any{})
	permanentID := e.send("p6", events.TypePhoneSet, "nomobile@contoso.example",
		map[string]any{"phoneType": "alternateMobile", "phoneNumber": "+1 4255550111"}) // no mobile yet
	_, unsigned := e.event(events.TypePhoneSet, "good@contoso.example", map[string]any{"phoneType": "office", "phoneNumber": "+1 4255550112"})
	unsigned = []byte(strings.Replace(string(unsigned), `"hr/test"`, `"hr/signed"`, 1))
	e.publish("p7", unsigned, nil)
	_, signed := e.event(events.TypePhoneSet, "good@contoso.example", map[string]any{"phoneType": "office", "phoneNumber": "+1 4255550113"})
	signed = []byte(strings.Replace(string(signed), `"hr/test"`, `"hr/signed"`, 1))
	sig, pub, err := events.Sign(signed, signer)
	if err != nil {
		t.Fatal(err)
	}
	hdr := nats.Header{}
	hdr.Set(events.HeaderSignature, sig)
	hdr.Set(events.HeaderSigner, pub)
	e.publish("p8", signed, hdr)
	goodID := e.send("p9", events.TypePhoneSet, "good@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550114"})
	staleID, stale := e.event(events.TypePhoneSet, "good@contoso.example", map[string]any{"phoneType": "office", "phoneNumber": "+1 4255550115"})
	stale = []byte(strings.Replace(string(stale), time.Now().UTC().Format("2006-01-02T"), time.Now().Add(-72*time.Hour).UTC().Format("2006-01-02T"), 1))
	e.publish("p10", stale, nil)
	bigID, big := e.event(events.TypePhoneSet, "good@contoso.example", map[string]any{
		"phoneType": "office", "phoneNumber": "+1 4255550116", "padding": strings.Repeat("x", 70<<10)})
	e.publish("p11", big, nil)

	// garbage-1 is readable enough for a rejected result; "\xff\xfe" is not.
	res := e.results(10, 30*time.Second)
	byCode := map[events.Code][]string{}
	for id, r := range res {
		if r.Data.Error != nil {
			byCode[r.Data.Error.Code] = append(byCode[r.Data.Error.Code], id)
		}
	}
	want := map[string]struct {
		status events.Status
		code   events.Code
	}{
		"garbage-1": {events.StatusRejected, events.CodeInvalidEvent},
		unknownID:   {events.StatusRejected, events.CodeUnknownType},
		deniedID:    {events.StatusRejected, events.CodePolicyDenied},
		protectedID: {events.StatusRejected, events.CodeProtectedUser},
		permanentID: {events.StatusFailed, events.CodeGraphPermanent},
		goodID:      {events.StatusSucceeded, ""},
		staleID:     {events.StatusRejected, events.CodeExpired},
		bigID:       {events.StatusRejected, events.CodePayloadTooLarge},
	}
	for id, w := range want {
		r, ok := res[id]
		if !ok {
			t.Errorf("no result for %s; results by code: %v", id, byCode)
			continue
		}
		var code events.Code
		if r.Data.Error != nil {
			code = r.Data.Error.Code
		}
		if r.Data.Status != w.status || code != w.code {
			t.Errorf("%s: %s/%s, want %s/%s (%+v)", id, r.Data.Status, code, w.status, w.code, r.Data.Error)
		}
	}
	if len(byCode[events.CodeBadSignature]) != 1 {
		t.Errorf("unsigned event: want one bad_signature result, got %v", byCode)
	}
	// The signed event succeeded: office phone ends at ...0113.
	if got := phones(e.user(good))["office"]; got != "+1 4255550113" {
		t.Errorf("office phone = %q, want the signed event's", got)
	}
	// Dead letters: both undecodable messages, the unknown type, the
	// oversized event and the permanent Graph failure — with their reasons
	// and original bytes; rejections by policy or freshness are decisions,
	// not dead letters.
	reasons := map[string]int{}
	for _, m := range e.dlq() {
		reasons[m.Headers().Get(worker.HeaderDLQReason)]++
		if m.Headers().Get(worker.HeaderDLQSubject) == "" || len(m.Data()) == 0 {
			t.Errorf("dead letter without original subject or bytes: %v", m.Headers())
		}
	}
	if reasons["invalid_event"] != 2 || reasons["unknown_type"] != 1 || reasons["graph_permanent"] != 1 ||
		reasons["payload_too_large"] != 1 || len(reasons) != 4 {
		t.Errorf("dead letters by reason = %v", reasons)
	}
	// No Graph call at all for the users of rejected events, except the
	// reads that found the protected user's roles.
	for _, q := range e.graph.Requests() {
		if q.UserID == denied {
			t.Errorf("policy-denied event reached Graph: %s %s", q.Method, q.Path)
		}
		if q.UserID == admin && q.Method != "GET" {
			t.Errorf("protected user written: %s %s", q.Method, q.Path)
		}
	}
	if got := kinds(e.user(denied)); !slices.Contains(got, "fido2") {
		t.Errorf("denied user's methods changed: %v", got)
	}
}

// TestDuplicatesAndReuse publishes an event twice and another event reusing
// its source and id with a different body: the first takes effect once and
// has one result; the reuse is rejected as replayed.
func TestDuplicatesAndReuse(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(600), "dup@contoso.example"
	e.seed(id, upn)
	evID, raw := e.event(events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550120"})
	e.publish("dup", raw, nil)
	e.results(1, 10*time.Second)
	e.publish("dup", raw, nil) // a publisher's retry after the dedup window
	reuse := []byte(strings.Replace(string(raw), "4255550120", "4255550121", 1))
	e.publish("dup", reuse, nil)
	res := e.results(2, 10*time.Second)
	if r := res[evID]; r.Data.Status != events.StatusSucceeded {
		t.Errorf("original: %s", r.Data.Status)
	}
	if r := res[evID+"#replayed"]; r == nil || r.Data.Status != events.StatusRejected {
		t.Errorf("reuse with another body: %+v", r)
	}
	var writes int
	for _, q := range e.graph.Requests() {
		if q.UserID == id && q.Method != "GET" {
			writes++
		}
	}
	if writes != 1 {
		t.Errorf("%d writes, want 1", writes)
	}
	if got := phones(e.user(id))["mobile"]; got != "+1 4255550120" {
		t.Errorf("mobile = %q: the reused id changed state", got)
	}
}

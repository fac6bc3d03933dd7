package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// signedEnv is an env whose policy requires source hr/signed to sign.
func signedEnv(t *testing.T) (*env, nkeys.KeyPair) {
	t.Helper()
	e := newEnv(t)
	signer, _ := nkeys.CreateUser()
	pub, _ := signer.PublicKey()
	pol, err := events.ParsePolicy([]byte(fmt.Sprintf(`
version: 1
tap:
  allowMultiUse: true
sources:
  hr/signed:
    signature: required
    keys: [%s]
    types: ["*"]
  hr/test:
    types: ["*"]
`, pub)))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	return e, signer
}

// signedEvent builds an event of source hr/signed with the given id.
func (e *env) signedEvent(id, typ, subject string, data any, signer nkeys.KeyPair) ([]byte, nats.Header) {
	e.t.Helper()
	raw := mustJSON(e.t, map[string]any{
		"specversion": "1.0", "id": id, "source": "hr/signed", "type": typ, "subject": subject,
		"time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json", "data": data,
	})
	if signer == nil {
		return raw, nil
	}
	sig, pub, err := events.Sign(raw, signer)
	if err != nil {
		e.t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(events.HeaderSignature, sig)
	h.Set(events.HeaderSigner, pub)
	return raw, h
}

func allResults(t *testing.T, e *env) []*events.Result {
	t.Helper()
	var out []*events.Result
	for _, m := range streamMessages(t, e.js, worker.ResultsStream) {
		r, err := events.DecodeResult(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func waitResults(t *testing.T, e *env, n int) []*events.Result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := e.streamInfo(worker.ResultsStream)
		if err == nil && info.State.Msgs >= uint64(n) {
			return allResults(t, e)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d results\nlogs:\n%s", n, tail(e.logs.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForgedEventDoesNotSquatID: an unsigned copy of a ticket id must not
// block the genuine signed event, and a forged copy after the genuine one
// changes nothing.
func TestForgedEventDoesNotSquatID(t *testing.T) {
	e, signer := signedEnv(t)
	e.startWorker()
	id, upn := uid(900), "squat@contoso.example"
	e.seed(id, upn, mobile)
	data := map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo}

	// Forged first, genuine second.
	forged, _ := e.signedEvent("INC0001-1", events.TypeTAPIssue, upn, data, nil)
	e.publish("squat", forged, nil)
	genuine, h := e.signedEvent("INC0001-1", events.TypeTAPIssue, upn, map[string]any{"lifetimeInMinutes": 61, "sealTo": e.sealTo}, signer)
	e.publish("squat", genuine, h)
	res := waitResults(t, e, 2)
	if res[0].Data.Status != events.StatusRejected || res[0].Data.Error.Code != events.CodeBadSignature {
		t.Fatalf("forged: %s %+v", res[0].Data.Status, res[0].Data.Error)
	}
	if res[1].Data.Status != events.StatusSucceeded {
		t.Fatalf("genuine after a forged copy: %s %+v", res[1].Data.Status, res[1].Data.Error)
	}
	if want := events.EventKey("hr/signed", "INC0001-1"); res[1].ID != want || res[0].ID == want {
		t.Errorf("ids: forged %s, genuine %s; the genuine must own %s", res[0].ID, res[1].ID, want)
	}
	if res[0].Data.Attempts != 0 {
		t.Errorf("rejected before running: attempts %d, want 0", res[0].Data.Attempts)
	}
	if n := countKind(e.user(id), "temporaryAccessPass"); n != 1 {
		t.Fatalf("%d TAPs, want 1", n)
	}
	before := string(mustJSON(t, e.user(id).Methods))

	// Genuine first (above), forged copies after: rejected, nothing changes.
	forged2, _ := e.signedEvent("INC0001-1", events.TypeTAPIssue, upn, map[string]any{"lifetimeInMinutes": 62, "sealTo": e.sealTo}, nil)
	e.publish("squat", forged2, nil)
	// The same forged bytes again: the same rejection, deduplicated.
	e.publish("squat", forged, nil)
	res = waitResults(t, e, 3)
	time.Sleep(500 * time.Millisecond)
	res = allResults(t, e)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3 (the second copy of the forged bytes is answered with the same result id)", len(res))
	}
	if res[2].Data.Status != events.StatusRejected || res[2].Data.Error.Code != events.CodeBadSignature {
		t.Fatalf("forged after genuine: %s %+v", res[2].Data.Status, res[2].Data.Error)
	}
	if after := string(mustJSON(t, e.user(id).Methods)); after != before {
		t.Error("a forged event changed the user's methods")
	}
}

// TestOversizedMessages: messages over the decoder limit, up to the
// server's maximum, each end with a rejected result and a bounded dead
// letter (size, SHA-256, prefix), and the partition keeps flowing.
func TestOversizedMessages(t *testing.T) {
	e := newEnv(t)
	e.startWorker(func(c *worker.Config) { c.Partitions = 1 })
	e.seed(uid(910), "big@contoso.example")
	sizes := []int{64<<10 + 1, worker.MaxMessageBytes - 512, worker.MaxMessageBytes - 100}
	for i, n := range sizes {
		head := fmt.Sprintf(`{"specversion":"1.0","id":"big-%d","source":"hr/test","type":"authflow.phone.set.v1","subject":"big@contoso.example","time":"%s","data":{"pad":"`,
			i, time.Now().UTC().Format(time.RFC3339))
		raw := []byte(head + strings.Repeat("a", n-len(head)-3) + `"}}`)
		if len(raw) != n {
			t.Fatalf("built %d bytes, want %d", len(raw), n)
		}
		e.publish("big", raw, nil)
	}
	okID := e.send("big", events.TypePhoneSet, "big@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550177"})
	res := waitResults(t, e, len(sizes)+1)
	for i := range sizes {
		r := res[i]
		if r.Data.Status != events.StatusRejected || r.Data.Error.Code != events.CodePayloadTooLarge {
			t.Errorf("size %d: %s %+v", sizes[i], r.Data.Status, r.Data.Error)
		}
	}
	if last := res[len(sizes)]; last.Data.Event.ID != okID || last.Data.Status != events.StatusSucceeded {
		t.Errorf("the event after the large ones: %s %s", last.Data.Event.ID, last.Data.Status)
	}
	dl := e.dlq()
	if len(dl) != len(sizes) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(sizes))
	}
	for i, m := range dl {
		h := m.Headers()
		if h.Get(worker.HeaderDLQTruncated) != "true" || h.Get(worker.HeaderDLQOriginalSize) != strconv.Itoa(sizes[i]) {
			t.Errorf("dead letter %d: truncated %q size %q", i, h.Get(worker.HeaderDLQTruncated), h.Get(worker.HeaderDLQOriginalSize))
		}
		if len(m.Data()) > 8<<10 || len(h.Get(worker.HeaderDLQOriginalSHA256)) != 64 {
			t.Errorf("dead letter %d: %d bytes kept, sha %q", i, len(m.Data()), h.Get(worker.HeaderDLQOriginalSHA256))
		}
	}
}

// TestPanicEndsEvent: a panic while handling an event ends it failed
// (internal) with a dead letter; later events of the partition run.
func TestPanicEndsEvent(t *testing.T) {
	e := newEnv(t)
	var panics atomic.Int32
	e.startWorker(func(c *worker.Config) {
		c.Partitions = 1
		c.Hook = func(p string) error {
			if p == worker.HookAfterGraphWrite && panics.Add(1) == 1 {
				panic("boom")
			}
			return nil
		}
	})
	e.seed(uid(920), "panic@contoso.example")
	first := e.send("pan", events.TypePhoneSet, "panic@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550178"})
	second := e.send("pan", events.TypePhoneSet, "panic@contoso.example", map[string]any{"phoneType": "office", "phoneNumber": "+1 4255550179"})
	res := e.results(2, 20*time.Second)
	if r := res[first]; r.Data.Status != events.StatusFailed || r.Data.Error.Code != events.CodeInternal {
		t.Fatalf("panicked event: %s %+v", r.Data.Status, r.Data.Error)
	}
	if r := res[second]; r.Data.Status != events.StatusSucceeded {
		t.Fatalf("next event: %s %+v", r.Data.Status, r.Data.Error)
	}
	dl := e.dlq()
	if len(dl) != 1 || dl[0].Headers().Get(worker.HeaderDLQReason) != string(events.CodeInternal) {
		t.Fatalf("dead letters: %d", len(dl))
	}
}

// TestPanicWhileSettling: a panic in the settle path itself still ends the
// message (dead letter, terminated), and nothing loops.
func TestPanicWhileSettling(t *testing.T) {
	e := newEnv(t)
	e.startWorker(func(c *worker.Config) {
		c.Partitions = 1
		c.Hook = func(p string) error {
			if p == worker.HookAfterLedgerWrite {
				panic("boom in settle")
			}
			return nil
		}
	})
	e.seed(uid(921), "panic2@contoso.example")
	e.send("pan", events.TypePhoneSet, "panic2@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550180"})
	deadline := time.Now().Add(20 * time.Second)
	for len(e.dlq()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter\n%s", tail(e.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if n := strings.Count(e.logs.String(), "panic while handling an event"); n != 1 {
		t.Errorf("%d panics logged, want 1 (the message must not be redelivered)", n)
	}
}

// TestResultContract checks the fields docs/events.md promises.
func TestResultContract(t *testing.T) {
	e, signer := signedEnv(t)
	e.startWorker()
	id, upn := uid(930), "contract@contoso.example"
	e.seed(id, upn, mobile)
	if err := e.graph.PutUser(graphclienttest.User{ID: uid(931), UserPrincipalName: "guest@contoso.example", UserType: "Guest"}); err != nil {
		t.Fatal(err)
	}
	raw, h := e.signedEvent("INC42-1", events.TypeMFAReset, upn, map[string]any{
		"verification": map[string]any{"ticketId": "INC42", "method": "callback", "verifiedBy": "agent@contoso.example"},
	}, signer)
	e.publish("contract", raw, h)
	guestID := e.send("guest", events.TypeTAPIssue, "guest@contoso.example", map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo})
	e.publish("contract", []byte(`{"specversion":"1.0","id":"bad-1","source":"hr/test","type":"authflow.phone.set.v1","subject":"x@contoso.example","time":"2026-01-01T00:00:00Z","data":{"phoneType":"mobile","phoneType":"office"}}`), nil)
	res := waitResults(t, e, 3)
	msgs := streamMessages(t, e.js, worker.ResultsStream)
	for i, r := range res {
		d := r.Data
		if want := d.FinishedAt.Sub(d.ReceivedAt).Milliseconds(); d.DurationMs != want || d.FinishedAt.Before(d.ReceivedAt) {
			t.Errorf("%s: durationMs %d, finishedAt-receivedAt %d", d.Event.ID, d.DurationMs, want)
		}
		if !d.StartedAt.IsZero() && d.StartedAt.Before(d.ReceivedAt) {
			t.Errorf("%s: startedAt before receivedAt", d.Event.ID)
		}
		mh := msgs[i].Headers()
		if mh.Get(worker.HeaderEventSource) != d.Event.Source || mh.Get(worker.HeaderEventID) != d.Event.ID || mh.Get("Content-Type") != "application/cloudevents+json" {
			t.Errorf("%s: headers %v", d.Event.ID, mh)
		}
		if mh.Get(nats.MsgIdHdr) != "" {
			// The server strips nothing; the publisher's msg id is ours.
			if mh.Get(nats.MsgIdHdr) != "result:"+r.ID {
				t.Errorf("%s: Nats-Msg-Id %q, want result:%s", d.Event.ID, mh.Get(nats.MsgIdHdr), r.ID)
			}
		}
	}
	byID := map[string]*events.Result{}
	for _, r := range res {
		byID[r.Data.Event.ID] = r
	}
	mfa := byID["INC42-1"]
	if mfa.Data.Status != events.StatusSucceeded || mfa.Data.Attempts != 1 {
		t.Fatalf("mfa reset: %s attempts %d %+v", mfa.Data.Status, mfa.Data.Attempts, mfa.Data.Error)
	}
	signerPub, _ := signer.PublicKey()
	if p := mfa.Data.Provenance; p == nil || p.Source != "hr/signed" || p.Signer != signerPub || p.TicketID != "INC42" || p.Method != "callback" || p.VerifiedBy != "agent@contoso.example" {
		t.Errorf("provenance %+v", mfa.Data.Provenance)
	}
	g := byID[guestID]
	if g.Data.Status != events.StatusRejected || g.Data.Error.Code != events.CodeGuestUser || g.Data.Attempts != 0 {
		t.Errorf("guest TAP: %s attempts %d %+v", g.Data.Status, g.Data.Attempts, g.Data.Error)
	}
	bad := byID["bad-1"]
	if bad.Data.Status != events.StatusRejected || bad.Data.Attempts != 0 || bad.Data.Error.Code != events.CodeInvalidEvent {
		t.Errorf("undecodable: %s attempts %d %+v", bad.Data.Status, bad.Data.Attempts, bad.Data.Error)
	}
	sum := sha256.Sum256([]byte(`{"specversion":"1.0","id":"bad-1","source":"hr/test","type":"authflow.phone.set.v1","subject":"x@contoso.example","time":"2026-01-01T00:00:00Z","data":{"phoneType":"mobile","phoneType":"office"}}`))
	if want := events.EventKey("hr/test", "bad-1") + ":" + hex.EncodeToString(sum[:8]); bad.ID != want {
		t.Errorf("undecodable result id %s, want %s", bad.ID, want)
	}
	for _, m := range e.dlq() {
		if r := m.Headers().Get(worker.HeaderDLQReason); r == string(events.CodeGuestUser) {
			t.Error("a guest TAP was dead-lettered")
		}
	}
}

// failingGraph fails one Graph operation with err; the rest go to the
// real client.
type failingGraph struct {
	worker.Graph
	err atomic.Pointer[error]
}

func (f *failingGraph) EnableSMSSignIn(ctx context.Context, userID, methodID string) error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return f.Graph.EnableSMSSignIn(ctx, userID, methodID)
}

// TestRedrive: an event fails for a reason an operator fixes; replaying
// its dead letter runs it again (a ledger transition recorded as a
// re-drive), and one new result says so.
func TestRedrive(t *testing.T) {
	e := newEnv(t)
	var fg *failingGraph
	e.startWorker(func(c *worker.Config) {
		fg = &failingGraph{Graph: c.Graph}
		perm := error(&graphclient.APIError{Op: "enableSmsSignIn", Status: 403, Code: "Authorization_RequestDenied", Message: "Insufficient privileges"})
		fg.err.Store(&perm)
		c.Graph = fg
	})
	id, upn := uid(940), "redrive@contoso.example"
	e.seed(id, upn, mobile)
	evID := e.send("redrive", events.TypeSMSSignInEnable, upn, map[string]any{})
	res := waitResults(t, e, 1)
	r := res[0]
	if r.Data.Status != events.StatusFailed || r.Data.Error.Code != events.CodeGraphPermission {
		t.Fatalf("first run: %s %+v", r.Data.Status, r.Data.Error)
	}
	if op := r.Data.Operations[0]; op.MethodKind != "phone" || op.MethodID == "" {
		t.Errorf("failed operation lost its method: %+v", op)
	}
	dl := e.dlq()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters", len(dl))
	}
	md, _ := dl[0].Metadata()

	// A rejected event cannot be re-driven; neither can an unknown sequence.
	if _, err := worker.Redrive(context.Background(), e.js, md.Sequence.Stream+100, "ops"); err == nil {
		t.Error("re-drive of a missing dead letter succeeded")
	}

	fg.err.Store(nil) // the operator grants the permission
	info, err := worker.Redrive(context.Background(), e.js, md.Sequence.Stream, "ops@contoso.example")
	if err != nil {
		t.Fatal(err)
	}
	if info.Count != 1 || info.ID != evID {
		t.Errorf("redrive info %+v", info)
	}
	res = waitResults(t, e, 2)
	r2 := res[1]
	if r2.Data.Status != events.StatusSucceeded || r2.Data.Redrive == nil || r2.Data.Redrive.By != "ops@contoso.example" || r2.Data.Redrive.Count != 1 {
		t.Fatalf("re-driven: %s %+v redrive %+v", r2.Data.Status, r2.Data.Error, r2.Data.Redrive)
	}
	if r2.ID != events.EventKey("hr/test", evID)+":redrive-1" {
		t.Errorf("re-drive result id %s", r2.ID)
	}
	if ph := e.user(id); !strings.Contains(string(mustJSON(t, ph.Methods)), "ready") {
		t.Errorf("sms sign-in not enabled after the re-drive: %s", mustJSON(t, ph.Methods))
	}
	// The event succeeded now: a second re-drive is refused.
	if _, err := worker.Redrive(context.Background(), e.js, md.Sequence.Stream, "ops"); !errors.Is(err, worker.ErrNotRedrivable) {
		t.Errorf("second re-drive of a succeeded event: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(allResults(t, e)); n != 2 {
		t.Errorf("%d results, want 2", n)
	}
}

// TestCorruptLedgerRecord: an undecodable ledger record ends the event as
// failed (internal) at once instead of handing it back for ever.
func TestCorruptLedgerRecord(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	e.seed(uid(950), "corrupt@contoso.example")
	id, raw := e.event(events.TypePhoneSet, "corrupt@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550181"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, worker.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "e."+events.EventKey("hr/test", id), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	e.publish("corrupt", raw, nil)
	res := e.results(1, 20*time.Second)
	if r := res[id]; r.Data.Status != events.StatusFailed || r.Data.Error.Code != events.CodeInternal {
		t.Fatalf("%s %+v", r.Data.Status, r.Data.Error)
	}
}

// TestReplicasOnSingleServerFailsFast: R3 against one server is a
// configuration error, reported at once with the hint.
func TestReplicasOnSingleServerFailsFast(t *testing.T) {
	e := newEnv(t)
	cfg := e.testConfig(e.nc)
	cfg.Replicas = 3
	start := time.Now()
	_, err := worker.New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "use 1 replica") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: a permanent JetStream error was retried", d)
	}
}

// TestConfigValidate: every setting out of range is named.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   worker.Config
		field string
	}{
		{"ledger ttl", worker.Config{LedgerTTL: time.Minute}, "LedgerTTL"},
		{"attempt timeout", worker.Config{AttemptTimeout: time.Millisecond}, "AttemptTimeout"},
		{"retry budget", worker.Config{RetryBudget: -time.Second}, "RetryBudget"},
		{"redelivery", worker.Config{RedeliveryDelay: time.Hour}, "RedeliveryDelay"},
		{"shutdown", worker.Config{ShutdownTimeout: -1}, "ShutdownTimeout"},
		{"budget over timeout", worker.Config{RetryBudget: time.Minute, AttemptTimeout: 30 * time.Second}, "RetryBudget"},
		{"max bytes", worker.Config{Decoder: events.Decoder{MaxBytes: worker.MaxMessageBytes}}, "Decoder.MaxBytes"},
		{"skew", worker.Config{AckWait: 2 * time.Second, MaxClockSkew: time.Second}, "MaxClockSkew"},
		{"partitions", worker.Config{Partitions: 5000}, "Partitions"},
		{"ttl under policy", worker.Config{LedgerTTL: 3 * time.Minute, Policy: events.DevPolicy()}, "LedgerTTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *worker.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
	if err := (worker.Config{}).Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// TestTraceParentReachesGraph: the event's traceparent is sent on every
// Graph request made for it, and copied into its result.
func TestTraceParentReachesGraph(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(960), "trace@contoso.example"
	e.seed(id, upn, mobile)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	evID := "trace-1"
	raw := mustJSON(t, map[string]any{
		"specversion": "1.0", "id": evID, "source": "hr/test", "type": events.TypePhoneSet, "subject": upn,
		"time": time.Now().UTC().Format(time.RFC3339), "traceparent": tp,
		"data": map[string]any{"phoneType": "office", "phoneNumber": "+1 4255550191"},
	})
	e.publish("trace", raw, nil)
	res := e.results(1, 20*time.Second)
	if res[evID].TraceParent != tp {
		t.Errorf("result traceparent %q", res[evID].TraceParent)
	}
	n := 0
	for _, r := range e.graph.Requests() {
		if r.UserID != id && !strings.Contains(r.Path, "trace%40") && !strings.Contains(r.Path, "trace@") {
			continue
		}
		n++
		if r.TraceParent != tp {
			t.Errorf("%s %s sent traceparent %q, want the event's", r.Method, r.Path, r.TraceParent)
		}
	}
	if n < 2 {
		t.Fatalf("only %d Graph requests seen for the user", n)
	}
}

// TestRetriesExhausted: attempts are counted in the ledger; once
// MaxAttempts of them ran, the event fails with retries_exhausted, its
// attempts say how many ran, and it is dead-lettered.
func TestRetriesExhausted(t *testing.T) {
	e := newEnv(t)
	e.startWorker(func(c *worker.Config) {
		c.MaxAttempts = 2
		r := graphclient.RetryPolicy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 100 * time.Millisecond}
		c.Retry = &r
	})
	e.seed(uid(970), "exhaust@contoso.example")
	if err := e.graph.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	id := e.send("exhaust", events.TypePhoneSet, "exhaust@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550192"})
	res := e.results(1, 30*time.Second)
	r := res[id]
	if r.Data.Status != events.StatusFailed || r.Data.Error.Code != events.CodeRetriesExhausted || r.Data.Attempts != 2 {
		t.Fatalf("%s attempts %d %+v", r.Data.Status, r.Data.Attempts, r.Data.Error)
	}
	if dl := e.dlq(); len(dl) != 1 || dl[0].Headers().Get(worker.HeaderDLQReason) != string(events.CodeRetriesExhausted) {
		t.Fatalf("dead letters: %d", len(dl))
	}
}

// TestBinaryModeAndExtensions: an event in the NATS binding's binary mode
// (ce- headers, data as the body) runs like a structured one, and its
// extension attributes come back in its result.
func TestBinaryModeAndExtensions(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(980), "binary@contoso.example"
	e.seed(id, upn)
	h := nats.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", "binary-1")
	h.Set("ce-source", "hr/test")
	h.Set("ce-type", events.TypePhoneSet)
	h.Set("ce-subject", upn)
	h.Set("ce-time", time.Now().UTC().Format(time.RFC3339))
	h.Set("ce-ticketsystem", "servicenow")
	h.Set("Content-Type", "application/json; charset=utf-8")
	e.publish("binary", []byte(`{"phoneType":"office","phoneNumber":"+1 4255550193"}`), h)
	// A structured event with an extension attribute.
	sid, raw := e.event(events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550194"})
	raw = []byte(strings.Replace(string(raw), `{"data"`, `{"partnerref":"abc-1","data"`, 1))
	e.publish("binary", raw, nil)
	res := e.results(2, 20*time.Second)
	for _, c := range []struct{ id, ext, val string }{{"binary-1", "ticketsystem", `"servicenow"`}, {sid, "partnerref", `"abc-1"`}} {
		r := res[c.id]
		if r == nil || r.Data.Status != events.StatusSucceeded {
			t.Fatalf("%s: %+v", c.id, r)
		}
		if got := string(r.Data.Extensions[c.ext]); got != c.val {
			t.Errorf("%s: extension %s = %s, want %s", c.id, c.ext, got, c.val)
		}
	}
	if p := phones(e.user(id)); p["office"] != "+1 4255550193" || p["mobile"] != "+1 4255550194" {
		t.Errorf("phones %v", p)
	}
}

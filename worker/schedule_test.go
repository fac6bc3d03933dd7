package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// allResultsOf returns every result stored for the event id, in order.
func (e *env) allResultsOf(t *testing.T, id string) []*events.Result {
	t.Helper()
	var out []*events.Result
	for _, m := range streamMessages(t, e.js, worker.ResultsStream) {
		r, err := events.DecodeResult(m.Data())
		if err != nil {
			t.Fatalf("result does not decode: %v", err)
		}
		if r.Data.Event.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// TestScheduledEvent: a leaver (employee.left) with data.effectiveAt a few seconds ahead is
// answered at once with an interim result (scheduled) and changes nothing;
// across a worker restart and a NATS restart (JetStream's scheduler holds
// it, not the worker), it is applied within 2 s of its effectiveAt, with
// one final result; an effectiveAt beyond maxScheduleAhead is rejected now.
func TestScheduledEvent(t *testing.T) {
	dir := t.TempDir()
	e := newEnvDir(t, dir)
	w1 := e.startWorker()
	id, upn := uid(3400), "scheduled@contoso.example"
	e.seed(id, upn, mobile, authApp)
	at := time.Now().Add(6 * time.Second).UTC().Truncate(time.Second)
	evID := e.send("sched", events.TypeEmployeeLeft, upn, map[string]any{"effectiveAt": at.Format(time.RFC3339)})
	far := e.send("sched", events.TypePhoneSet, upn, map[string]any{
		"phoneType": "office", "phoneNumber": "+1 425 555 0198", "effectiveAt": time.Now().Add(100 * 24 * time.Hour).UTC().Format(time.RFC3339)})

	deadline := time.Now().Add(10 * time.Second)
	for len(e.allResultsOf(t, evID)) == 0 || len(e.allResultsOf(t, far)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no interim result\n%s", tail(e.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rs := e.allResultsOf(t, evID); rs[0].Data.Status != events.StatusScheduled {
		t.Fatalf("first result %s %s (%d results), want scheduled\n%s", rs[0].ID, rs[0].Data.Status, len(rs), tail(e.logs.String(), 3000))
	}
	if rs := e.allResultsOf(t, far); rs[0].Data.Status != events.StatusRejected || !strings.Contains(rs[0].Data.Error.Message, "effectiveAt") {
		t.Errorf("an effectiveAt 100 days ahead: %s %+v, want rejected on data.effectiveAt", rs[0].Data.Status, rs[0].Data.Error)
	}
	if u := e.user(id); countKind(u, "phone") != 1 || !*u.AccountEnabled {
		t.Fatalf("the scheduled leaver was applied before its time: %v, enabled %v", kinds(u), *u.AccountEnabled)
	}
	// The worker goes, NATS restarts, another worker comes.
	w1.stop()
	e.restartNATS(dir, 200*time.Millisecond)
	e.nc = connect(t, e.ns)
	e.js = jetStream(t, e.nc)
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })

	deadline = at.Add(10 * time.Second)
	var final *events.Result
	for final == nil {
		for _, r := range e.allResultsOf(t, evID) {
			if r.Data.Status.Final() {
				final = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final result 10 s after effectiveAt\n%s", tail(e.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if final.Data.Status != events.StatusSucceeded {
		t.Fatalf("final %s %+v", final.Data.Status, final.Data.Error)
	}
	late := final.Data.FinishedAt.Sub(at)
	t.Logf("applied %s after its effectiveAt", late.Round(time.Millisecond))
	if late < 0 || late > 2*time.Second {
		t.Errorf("applied %s after effectiveAt, want within 0..2 s", late)
	}
	if u := e.user(id); *u.AccountEnabled || countKind(u, "phone") != 0 || countKind(u, "microsoftAuthenticator") != 0 {
		t.Errorf("after its time the leaver still has %v, enabled %v", kinds(u), *u.AccountEnabled)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(e.allResultsOf(t, evID)); n != 2 {
		t.Errorf("%d results for the scheduled leaver, want 2 (scheduled, then succeeded)", n)
	}
}

// TestScheduleCancel: a cancel from the same source ends a waiting
// future-dated event at once with the final status cancelled and nothing
// written; a cancel from another source, or of a key with nothing
// waiting, is rejected and changes nothing.
func TestScheduleCancel(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(3700), "cancelled@contoso.example"
	e.seed(id, upn)
	at := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	evID := e.send("canc", events.TypePhoneSet, upn, map[string]any{
		"phoneType": "mobile", "phoneNumber": "+1 425 555 0177", "effectiveAt": at.Format(time.RFC3339)})
	key := events.EventKey("hr/test", evID)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.allResultsOf(t, evID)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancelFrom := func(source, eventKey string) string {
		e.seq++
		cid := fmt.Sprintf("cancel-%d", e.seq)
		raw := mustJSON(t, map[string]any{"specversion": "1.0", "id": cid, "source": source, "type": events.TypeScheduleCancel,
			"subject": upn, "time": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{"eventKey": eventKey}})
		e.publish("canc", raw, nil)
		return cid
	}
	other := cancelFrom("itsm/other", key)
	if r := e.waitFinal(t, other, 10*time.Second); r.Data.Status != events.StatusRejected || r.Data.Error.Code != events.CodePolicyDenied {
		t.Errorf("a cancel from another source: %s %+v", r.Data.Status, r.Data.Error)
	}
	nothing := cancelFrom("hr/test", strings.Repeat("0", 64))
	if r := e.waitFinal(t, nothing, 10*time.Second); r.Data.Status != events.StatusRejected || r.Data.Error.Code != events.CodeInvalidEvent {
		t.Errorf("a cancel of nothing: %s %+v", r.Data.Status, r.Data.Error)
	}
	if rs := e.allResultsOf(t, evID); len(rs) != 1 || rs[0].Data.Status != events.StatusScheduled {
		t.Fatalf("refused cancels changed the scheduled event: %d results", len(rs))
	}
	ok := cancelFrom("hr/test", key)
	if r := e.waitFinal(t, ok, 10*time.Second); r.Data.Status != events.StatusSucceeded {
		t.Fatalf("cancel: %s %+v", r.Data.Status, r.Data.Error)
	}
	final := e.waitFinal(t, evID, 10*time.Second)
	if final.Data.Status != events.StatusCancelled || final.Data.Error != nil || len(final.Data.Operations) != 0 {
		t.Fatalf("the cancelled event: %s %+v", final.Data.Status, final.Data.Error)
	}
	if got := phones(e.user(id))["mobile"]; got != "" {
		t.Errorf("a cancelled event wrote to Graph: mobile %s", got)
	}
	again := cancelFrom("hr/test", key)
	if r := e.waitFinal(t, again, 10*time.Second); r.Data.Status != events.StatusRejected {
		t.Errorf("a second cancel: %s", r.Data.Status)
	}
}

// TestScheduledRevalidated: a future-dated event is checked again against
// the policy in force when it runs: its source removed meanwhile, it ends
// rejected (policy_denied) and writes nothing.
func TestScheduledRevalidated(t *testing.T) {
	e := newEnv(t)
	w1 := e.startWorker()
	id, upn := uid(3800), "revalidated@contoso.example"
	e.seed(id, upn)
	at := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	evID := e.send("reval", events.TypePhoneSet, upn, map[string]any{
		"phoneType": "mobile", "phoneNumber": "+1 425 555 0166", "effectiveAt": at.Format(time.RFC3339)})
	deadline := time.Now().Add(10 * time.Second)
	for len(e.allResultsOf(t, evID)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	w1.stop()
	pol, err := events.ParsePolicy([]byte("version: 1\nsources:\n  itsm/other:\n    types: [\"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })
	final := e.waitFinal(t, evID, 15*time.Second)
	if final.Data.Status != events.StatusRejected || final.Data.Error.Code != events.CodePolicyDenied {
		t.Errorf("a scheduled event whose source the policy no longer has: %s %+v", final.Data.Status, final.Data.Error)
	}
	if got := phones(e.user(id))["mobile"]; got != "" {
		t.Errorf("it wrote to Graph: mobile %s", got)
	}
}

package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// sendFrom publishes an event of source to authflow.events.<key>.
func (e *env) sendFrom(source, key, typ, subject string, data any) string {
	e.t.Helper()
	id, raw := e.event(typ, subject, data)
	raw = []byte(strings.Replace(string(raw), `"source":"hr/test"`, `"source":"`+source+`"`, 1))
	e.publish(key, raw, nil)
	return id
}

// resultOrder returns the event ids in the order of their results.
func resultOrder(t *testing.T, e *env) []string {
	t.Helper()
	var ids []string
	for _, r := range allResults(t, e) {
		ids = append(ids, r.Data.Event.ID)
	}
	return ids
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// TestInteractiveBypassesBacklog: with a bulk backlog in the only
// partition, an event of an interactive source (helpdesk/…, the dev
// policy) for a user with nothing queued gets its result long before the
// backlog has drained.
func TestInteractiveBypassesBacklog(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 40}); err != nil {
		t.Fatal(err)
	}
	// One event of the partition at a time: a FIFO backlog to bypass.
	e.startWorker(func(c *worker.Config) { c.Partitions = 1; c.PartitionInflight = 1 })
	const bulk = 30
	var bulkIDs []string
	for i := range bulk {
		id, upn := uid(1000+i), fmt.Sprintf("bulk%d@contoso.example", i)
		e.seed(id, upn)
		bulkIDs = append(bulkIDs, e.send(fmt.Sprintf("b%d", i), events.TypePhoneSet, upn,
			map[string]any{"phoneType": "office", "phoneNumber": fmt.Sprintf("+1 42555%05d", 1000+i)}))
	}
	e.seed(uid(1100), "caller@contoso.example")
	sent := time.Now()
	hd := e.sendFrom("helpdesk/test", "caller", events.TypePhoneSet, "caller@contoso.example",
		map[string]any{"phoneType": "office", "phoneNumber": "+1 4255551100"})
	res := e.results(bulk+1, 60*time.Second)
	if r := res[hd]; r.Data.Status != events.StatusSucceeded {
		t.Fatalf("interactive: %s %+v", r.Data.Status, r.Data.Error)
	}
	order := resultOrder(t, e)
	pos := indexOf(order, hd)
	t.Logf("interactive result %s after publish, %d of %d bulk results before it", res[hd].Data.FinishedAt.Sub(sent).Round(time.Millisecond), pos, bulk)
	if pos > bulk/3 {
		t.Errorf("the interactive event waited behind %d of %d bulk events", pos, bulk)
	}
	for i := 1; i < bulk; i++ {
		// The backlog still drains in order.
		if indexOf(order, bulkIDs[i]) < indexOf(order, bulkIDs[i-1]) {
			t.Errorf("bulk event %d finished before %d", i, i-1)
		}
	}
}

// TestInteractiveInheritsOrder: an interactive event for a user whose
// earlier bulk events are still queued brings them forward: they are
// applied first, in order, each once, and the user ends in the state of
// the last event.
func TestInteractiveInheritsOrder(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 40}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(func(c *worker.Config) { c.Partitions = 1; c.PartitionInflight = 1 })
	e.startWorker(func(c *worker.Config) { c.Partitions = 1; c.PartitionInflight = 1; c.Instance = "w2" })
	const filler = 20
	for i := range filler {
		id, upn := uid(1200+i), fmt.Sprintf("fill%d@contoso.example", i)
		e.seed(id, upn)
		e.send(fmt.Sprintf("f%d", i), events.TypePhoneSet, upn, map[string]any{"phoneType": "office", "phoneNumber": fmt.Sprintf("+1 42555%05d", 1200+i)})
	}
	uidU, upn := uid(1300), "mover@contoso.example"
	e.seed(uidU, upn)
	var mine []string
	for i := range 3 {
		mine = append(mine, e.send("mover", events.TypePhoneSet, upn, map[string]any{"phoneType": "office", "phoneNumber": fmt.Sprintf("+1 425555130%d", i)}))
	}
	hd := e.sendFrom("helpdesk/test", "mover", events.TypePhoneSet, upn, map[string]any{"phoneType": "office", "phoneNumber": "+1 4255551399"})
	mine = append(mine, hd)
	res := e.results(filler+4, 60*time.Second)
	order := resultOrder(t, e)
	for i := 1; i < len(mine); i++ {
		if indexOf(order, mine[i]) < indexOf(order, mine[i-1]) {
			t.Errorf("the user's event %d finished before event %d: %v", i, i-1, order)
		}
	}
	if pos := indexOf(order, hd); pos > filler/2+4 {
		t.Errorf("the interactive event finished %dth: its inherited events were not brought forward", pos)
	}
	for _, id := range mine {
		if r := res[id]; r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
	}
	if got := phones(e.user(uidU))["office"]; got != "+1 4255551399" {
		t.Errorf("office phone %s, want the interactive event's", got)
	}
	writes := 0
	for _, r := range e.graph.Requests() {
		if r.UserID == uidU && r.Method != "GET" {
			writes++
		}
	}
	if writes != 4 {
		t.Errorf("%d writes for the user, want 4 (each event once)", writes)
	}
}

// TestOneUserOneLane: two events for one user, one named by object id
// (bulk) and one by UPN (interactive), so under two keys and two ways in,
// never run at the same time: their Graph requests (told apart by their
// traceparent) do not interleave.
func TestOneUserOneLane(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 60}); err != nil {
		t.Fatal(err)
	}
	e.startWorker()
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })
	id, upn := uid(1400), "twonames@contoso.example"
	e.seed(id, upn)
	tps := []string{"00-4bf92f3577b34da6a3ce929d0e0e4701-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4702-00f067aa0ba902b7-01"}
	const rounds = 3
	for round := range rounds {
		for i, subj := range []string{id, upn} {
			source := "hr/test"
			if i == 1 {
				source = "helpdesk/test"
			}
			raw := mustJSON(t, map[string]any{
				"specversion": "1.0", "id": fmt.Sprintf("lane-%d-%d", round, i), "source": source, "type": events.TypePhoneSet,
				"subject": subj, "time": time.Now().UTC().Format(time.RFC3339), "traceparent": tps[i],
				"data": map[string]any{"phoneType": []string{"office", "mobile"}[i], "phoneNumber": fmt.Sprintf("+1 42555514%d%d", round, i)},
			})
			e.publish([]string{"byid", "byupn"}[i], raw, nil)
		}
	}
	res := e.results(2*rounds, 30*time.Second)
	for id, r := range res {
		if r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
	}
	type window struct{ first, last time.Time }
	var spans []struct {
		tp string
		w  window
	}
	// Each run of one event is a run of consecutive requests with its
	// traceparent; two runs of different events must not overlap.
	for _, r := range e.graph.Requests() {
		// Resolving the user comes before the lock (it finds the object id
		// to lock); what runs under it is the plan: the methods' requests.
		if r.TraceParent == "" || !strings.Contains(r.Path, "/authentication/") {
			continue
		}
		if n := len(spans); n > 0 && spans[n-1].tp == r.TraceParent {
			spans[n-1].w.last = r.Time
			continue
		}
		spans = append(spans, struct {
			tp string
			w  window
		}{r.TraceParent, window{r.Time, r.Time}})
	}
	// Run one after the other, the events make at most one run each; run
	// at the same time, their requests alternate and make more.
	if len(spans) > 2*rounds {
		t.Errorf("the events' Graph requests interleaved: %d runs of requests for %d events", len(spans), 2*rounds)
	}
	if len(spans) < 2 {
		t.Fatalf("%d runs of requests", len(spans))
	}
}

package worker_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestPartitionInflightKeepsKeyOrder: with eight events of the only
// partition in flight at once on two replicas, and attempts "crashing"
// after their Graph write (so the server redelivers an earlier event after
// later ones of its key were handed out), every user's writes still happen
// in publish order, each event ends with one result, and each user ends in
// the state of its last event.
func TestPartitionInflightKeepsKeyOrder(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 15}); err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	crash := func(p string) error {
		// Every fifth Graph write of the first thirty "crashes" its
		// attempt: no ack, the lease lapses, the event runs again.
		if p == worker.HookAfterGraphWrite {
			if n := writes.Add(1); n <= 30 && n%5 == 0 {
				return errors.New("crash after the Graph write")
			}
		}
		return nil
	}
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for i, reg := range regs {
		e.startWorker(func(c *worker.Config) {
			c.Partitions, c.PartitionInflight, c.Concurrency = 1, 8, 8
			c.Instance = fmt.Sprintf("w%d", i)
			c.Metrics = worker.NewMetrics(reg)
			c.Hook = crash
		})
	}
	const users, perUser = 6, 5
	type sent struct{ id, tp, phone string }
	byUser := map[string][]sent{}
	for round := range perUser {
		for u := range users {
			id, upn := uid(2000+u), fmt.Sprintf("order%d@contoso.example", u)
			if round == 0 {
				e.seed(id, upn)
			}
			s := sent{
				id:    fmt.Sprintf("order-%d-%d", u, round),
				tp:    fmt.Sprintf("00-%032x-00f067aa0ba902b7-01", 0x5000+u*16+round),
				phone: fmt.Sprintf("+1 42555%03d%02d", 200+u, round),
			}
			raw := mustJSON(t, map[string]any{
				"specversion": "1.0", "id": s.id, "source": "hr/test", "type": events.TypePhoneSet,
				"subject": upn, "time": time.Now().UTC().Format(time.RFC3339), "traceparent": s.tp,
				"data": map[string]any{"phoneType": "office", "phoneNumber": s.phone},
			})
			e.publish(fmt.Sprintf("k%d", u), raw, nil)
			byUser[id] = append(byUser[id], s)
		}
	}
	res := e.results(users*perUser, 60*time.Second)
	for id, r := range res {
		if r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
	}
	// Writes of one user, in the order the emulator applied them, follow
	// the publish order: an event's writes may repeat (its crashed attempt
	// and the retry) but never come after a later event's.
	rank := map[string]int{}
	for _, list := range byUser {
		for i, s := range list {
			rank[s.tp] = i
		}
	}
	last := map[string]int{}
	for _, r := range e.graph.Requests() {
		if r.Method == "GET" || r.TraceParent == "" {
			continue
		}
		k, ok := rank[r.TraceParent]
		if !ok {
			continue
		}
		if prev, seen := last[r.UserID]; seen && k < prev {
			t.Errorf("user %s: a write of event %d after one of event %d", r.UserID, k, prev)
		}
		last[r.UserID] = k
	}
	for id, list := range byUser {
		if got, want := phones(e.user(id))["office"], list[len(list)-1].phone; got != want {
			t.Errorf("user %s ends with office phone %s, want the last event's %s", id, got, want)
		}
	}
	// The results of one key are in publish order too.
	order := resultOrder(t, e)
	for _, list := range byUser {
		for i := 1; i < len(list); i++ {
			if indexOf(order, list[i].id) < indexOf(order, list[i-1].id) {
				t.Errorf("result of %s before the result of %s", list[i].id, list[i-1].id)
			}
		}
	}
	if n := writes.Load(); n < 30 {
		t.Fatalf("only %d Graph writes: the crashes did not happen", n)
	}
	waits := 0.0
	for _, reg := range regs {
		waits += metricValue(t, reg, "authflow_order_waits_total")
	}
	t.Logf("order waits %v over %d events, %d Graph writes", waits, users*perUser, writes.Load())
	if waits == 0 {
		t.Error("no event waited for an earlier one of its key: the test did not exercise the ordering")
	}
}

package worker_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestFailoverTime kills the replica that holds an event in the middle of
// it and measures how long the surviving replica takes to finish it (about
// AckWait: the server redelivers the unacked event) and to take new events
// of other partitions (at once: it was already pulling every partition).
func TestFailoverTime(t *testing.T) {
	e := newEnv(t)
	const ackWait = 2 * time.Second
	held := make(chan string, 1)
	var (
		mu     sync.Mutex
		victim string // the replica that crashed, once one has
	)
	hook := func(name string) func(string) error {
		return func(p string) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case victim == name:
				return errors.New(name + " is dead")
			case victim == "" && p == worker.HookAfterGraphWrite:
				victim = name // the first write anywhere: die right here
				held <- name
				return errors.New("crash")
			}
			return nil
		}
	}
	ws := map[string]*runningWorker{}
	for _, name := range []string{"w1", "w2"} {
		ws[name] = e.startWorker(func(c *worker.Config) { c.Instance = name; c.AckWait = ackWait; c.Hook = hook(name) })
	}
	id, upn := uid(700), "failover@contoso.example"
	e.seed(id, upn)
	evID := e.send("fo", events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550130"})
	var dying string
	select {
	case dying = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no replica took the event")
	}
	killed := time.Now()
	ws[dying].kill()

	// Another user's event, published after the kill, flows at once.
	other, otherUPN := uid(701), "other@contoso.example"
	e.seed(other, otherUPN)
	otherID := e.send("fo-other", events.TypePhoneSet, otherUPN, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550131"})

	res := e.waitFor(otherID, 10*time.Second)
	newWork := time.Since(killed)
	if res.Data.Status != events.StatusSucceeded {
		t.Fatalf("other event: %s %+v", res.Data.Status, res.Data.Error)
	}
	res = e.waitFor(evID, 10*time.Second)
	takeover := time.Since(killed)
	if res.Data.Status != events.StatusSucceeded {
		t.Fatalf("held event: %s %+v", res.Data.Status, res.Data.Error)
	}
	t.Logf("failover: new events of other partitions after %s; the dead replica's event after %s (AckWait %s)",
		newWork.Round(time.Millisecond), takeover.Round(time.Millisecond), ackWait)
	if newWork > ackWait {
		t.Errorf("other partitions waited %s after the kill: the survivor was not sharing them", newWork)
	}
	if takeover > ackWait+3*time.Second {
		t.Errorf("the held event took %s to finish after the kill, want about AckWait %s", takeover, ackWait)
	}
	if got := phones(e.user(id))["mobile"]; got != "+1 4255550130" {
		t.Errorf("mobile = %q", got)
	}
}

// waitFor polls the results stream for the result of event id (any event
// when id is empty).
func (e *env) waitFor(id string, timeout time.Duration) *events.Result {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if info, err := e.streamInfo(worker.ResultsStream); err == nil && info.State.Msgs > 0 {
			for _, m := range streamMessages(e.t, e.js, worker.ResultsStream) {
				if r, err := events.DecodeResult(m.Data()); err == nil && (id == "" || r.Data.Event.ID == id) {
					return r
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no result for %s after %s\n%s", id, timeout, tail(e.logs.String(), 3000))
	return nil
}

// TestGracefulShutdown stops a replica (SIGTERM's path) while events are in
// flight: it finishes them within the grace period, hands the rest back,
// and a new replica completes everything with exactly one result each.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 100}); err != nil {
		t.Fatal(err)
	}
	w1 := e.startWorker()
	const n = 12
	for i := 0; i < n; i++ {
		id, upn := uid(800+i), fmt.Sprintf("shut%d@contoso.example", i)
		e.seed(id, upn)
		e.send(fmt.Sprintf("s%d", i), events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550140"})
	}
	e.waitFor("", 10*time.Second) // any result: events are in flight now
	start := time.Now()
	w1.stop()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("graceful stop took %s, want within the 3 s grace period plus a little", d)
	}
	e.startWorker()
	res := e.results(n, 30*time.Second)
	for id, r := range res {
		if r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
	}
	for i := 0; i < n; i++ {
		var writes int
		for _, q := range e.graph.Requests() {
			if q.UserID == uid(800+i) && q.Method != "GET" {
				writes++
			}
		}
		if writes != 1 {
			t.Errorf("user %d: %d writes, want 1", i, writes)
		}
	}
}

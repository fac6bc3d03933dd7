package worker_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/notify"
	"github.com/authflow/authflow/worker"
)

// notifications returns the notifications stored so far.
func (e *env) notifications(t *testing.T) []events.Notification {
	t.Helper()
	var out []events.Notification
	for _, m := range streamMessages(t, e.js, notify.Stream) {
		var n events.Notification
		if err := json.Unmarshal(m.Data(), &n); err != nil {
			t.Fatalf("notification: %v", err)
		}
		out = append(out, n)
	}
	return out
}

// TestNotificationOncePerChange: an event that changes a user publishes one
// notification, masked, with the result's id, also when the attempt
// "crashes" right after the result or right after the notification (the
// redelivery answers from the ledger and republishes both, deduplicated); a
// read-only event and a rejected one publish none.
func TestNotificationOncePerChange(t *testing.T) {
	for _, point := range []string{"", worker.HookAfterResultPublish, worker.HookAfterNotificationPublish} {
		t.Run("crash "+point, func(t *testing.T) {
			e := newEnv(t)
			var crashed atomic.Bool
			e.startWorker(func(c *worker.Config) {
				c.Hook = func(p string) error {
					if point != "" && p == point && crashed.CompareAndSwap(false, true) {
						return errors.New("crash at " + p)
					}
					return nil
				}
			})
			id, upn := uid(3200), "notified@contoso.example"
			e.seed(id, upn)
			set := e.send("n1", events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 425 555 0100"})
			inv := e.send("n1", events.TypeMethodsInventory, upn, map[string]any{})
			res := e.results(2, 20*time.Second)
			if res[set].Data.Status != events.StatusSucceeded || res[inv].Data.Status != events.StatusSucceeded {
				t.Fatalf("results %s / %s", res[set].Data.Status, res[inv].Data.Status)
			}
			if point != "" && !crashed.Load() {
				t.Fatal("the crash point was not reached")
			}
			// A crash right after the result leaves the notification to the
			// redelivery, after AckWait.
			deadline := time.Now().Add(10 * time.Second)
			for len(e.notifications(t)) == 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			ns := e.notifications(t)
			if len(ns) != 1 {
				t.Fatalf("%d notifications, want exactly 1 (for the phone set, none for the inventory)", len(ns))
			}
			n := ns[0]
			if n.Data.Result != res[set].ID || n.Data.Event.ID != set || n.Data.User.ObjectID != id {
				t.Errorf("notification for result %q event %q user %q; want %q %q %q", n.Data.Result, n.Data.Event.ID, n.Data.User.ObjectID, res[set].ID, set, id)
			}
			raw, _ := json.Marshal(n)
			if strings.Contains(string(raw), "4255550100") || !strings.Contains(string(raw), "0100") {
				t.Errorf("the phone number is not masked as documented: %s", raw)
			}
		})
	}
}

// TestRateLimit: a policy limit of 2 TAPs per user per day lets exactly two
// of four TAP requests for one user through; the others end rejected with
// rate_limited and no Graph write, and another user is not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	pol, err := events.ParsePolicy([]byte(`
version: 1
sources:
  hr/test:
    types: ["*"]
limits:
  - name: taps-per-user
    per: user
    types: [authflow.tap.issue.v1]
    max: 2
    window: 24h
`))
	if err != nil {
		t.Fatal(err)
	}
	e.policy = pol
	e.startWorker()
	a, b := uid(3300), uid(3301)
	e.seed(a, "limited@contoso.example")
	e.seed(b, "other@contoso.example")
	tap := map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo}
	var ids []string
	for range 4 {
		ids = append(ids, e.send("lim-a", events.TypeTAPIssue, "limited@contoso.example", tap))
	}
	other := e.send("lim-b", events.TypeTAPIssue, "other@contoso.example", tap)
	res := e.results(5, 30*time.Second)
	ok, limited := 0, 0
	for _, id := range ids {
		switch r := res[id]; {
		case r.Data.Status == events.StatusSucceeded:
			ok++
		case r.Data.Status == events.StatusRejected && r.Data.Error != nil && r.Data.Error.Code == events.CodeRateLimited:
			limited++
		default:
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
	}
	if ok != 2 || limited != 2 {
		t.Errorf("%d succeeded and %d rate_limited of 4, want 2 and 2", ok, limited)
	}
	if r := res[other]; r.Data.Status != events.StatusSucceeded {
		t.Errorf("another user's TAP: %s %+v", r.Data.Status, r.Data.Error)
	}
	if n := countKind(e.user(a), "temporaryAccessPass"); n != 1 {
		// Each successful issue replaces the previous TAP (one usable TAP per user).
		t.Errorf("%d TAPs for the limited user, want 1", n)
	}
	writes := 0
	for _, q := range e.graph.Requests() {
		if q.UserID == a && q.Method == "POST" {
			writes++
		}
	}
	if writes != 2 {
		t.Errorf("%d TAP creations in Graph for the limited user, want 2", writes)
	}
}

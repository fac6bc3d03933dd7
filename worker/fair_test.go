package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// TestFairLane: one bulk source queues 700 events in the only partition
// (one in flight at a time: strict FIFO), then another bulk source sends
// five. The second source's events do not wait for the first's backlog:
// the fair lane runs them while it drains.
func TestFairLane(t *testing.T) {
	e := newEnv(t)
	const big, small = 700, 5
	// The streams first, so the whole backlog is stored before a worker looks.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := worker.EnsureTopology(ctx, e.js, worker.Topology{Partitions: 1, Replicas: 1, LedgerTTL: time.Hour,
		EventsMaxAge: time.Hour, ResultsMaxAge: time.Hour, DLQMaxAge: time.Hour, ResultsDuplicates: time.Minute,
		AckWait: 2 * time.Second, MaxMsgBytes: worker.MaxMessageBytes, PartitionInflight: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		e.seed(uid(3000+i), fmt.Sprintf("bulkfair%d@contoso.example", i))
	}
	for i := range small {
		e.seed(uid(3100+i), fmt.Sprintf("minor%d@contoso.example", i))
	}
	for i := range big {
		raw := mustJSON(t, map[string]any{
			"specversion": "1.0", "id": fmt.Sprintf("big-%d", i), "source": "hr/reorg", "type": events.TypePhoneSet,
			"subject": fmt.Sprintf("bulkfair%d@contoso.example", i%20), "time": time.Now().UTC().Format(time.RFC3339),
			"data": map[string]any{"phoneType": "office", "phoneNumber": fmt.Sprintf("+1 4255%06d", i)},
		})
		e.publish(fmt.Sprintf("bf%d", i%20), raw, nil)
	}
	var mine []string
	for i := range small {
		id := fmt.Sprintf("minor-%d", i)
		raw := mustJSON(t, map[string]any{
			"specversion": "1.0", "id": id, "source": "itsm/tickets", "type": events.TypePhoneSet,
			"subject": fmt.Sprintf("minor%d@contoso.example", i), "time": time.Now().UTC().Format(time.RFC3339),
			"data": map[string]any{"phoneType": "office", "phoneNumber": fmt.Sprintf("+1 42566%05d", i)},
		})
		e.publish(fmt.Sprintf("mn%d", i), raw, nil)
		mine = append(mine, id)
	}
	// Started after publishing, so the backlog is there when it looks.
	e.startWorker(func(c *worker.Config) { c.Partitions, c.PartitionInflight, c.Concurrency = 1, 1, 2 })
	res := e.results(big+small, 120*time.Second)
	order := resultOrder(t, e)
	for _, id := range mine {
		if r := res[id]; r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
		}
		pos := indexOf(order, id)
		t.Logf("%s: result %d of %d", id, pos, big+small)
		if pos > big/2 {
			t.Errorf("%s finished %dth of %d: it waited behind the other source's backlog", id, pos, big+small)
		}
	}
}

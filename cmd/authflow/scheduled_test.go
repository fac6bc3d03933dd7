package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/worker"
)

// TestScheduledList: `authflow scheduled list` shows what waits in the
// scheduler, as a table and as JSON, and refuses bad usage.
func TestScheduledList(t *testing.T) {
	ns := startTestNATS(t, "")
	_, js := connectJS(t, ns)
	ensureTopology(t, js)
	if code, out, _ := runCLI(t, "scheduled", "list", "--nats-url", ns.ClientURL()); code != 0 || !strings.Contains(out, "no scheduled events") {
		t.Fatalf("empty: exit %d, %q", code, out)
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	m := nats.NewMsg(worker.SchedulesSubjectPrefix + strings.Repeat("a", 64))
	m.Data = []byte(`{"specversion":"1.0","id":"leaver-42","source":"hr/workday","type":"authflow.employee.left.v1","subject":"lee@contoso.example","time":"2026-12-01T10:00:00Z","data":{"effectiveAt":"` + at + `"}}`)
	m.Header.Set("Nats-Schedule", "@at "+at)
	m.Header.Set("Nats-Schedule-Target", worker.EventSubject("lee"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "scheduled", "list", "--nats-url", ns.ClientURL())
	if code != 0 || !strings.Contains(out, at) || !strings.Contains(out, "leaver-42") || !strings.Contains(out, "authflow.employee.left.v1") {
		t.Fatalf("table: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "scheduled", "list", "--json", "--nats-url", ns.ClientURL())
	var e struct{ EventID, Source, EffectiveAt, Fires, Key string }
	if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &e) != nil || e.EventID != "leaver-42" || e.EffectiveAt != at || e.Fires != at || e.Source != "hr/workday" {
		t.Fatalf("json: exit %d %q → %+v", code, out, e)
	}
	if code, _, errOut := runCLI(t, "scheduled"); code != 2 || !strings.Contains(errOut, "scheduled list") {
		t.Errorf("no sub-command: exit %d %q", code, errOut)
	}
}

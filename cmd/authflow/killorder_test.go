package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestKillOrderInteractiveAndBulk runs three worker processes over bulk
// and interactive events for the same users, kills one with SIGKILL in the
// middle and starts another: every event has exactly one result, each
// user's results come in publish order, the emulator saw exactly one write
// per event, and each user ends with the phone number of its last event.
func TestKillOrderInteractiveAndBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns := startTestNATS(t, "")
	_, js := connectJS(t, ns)
	emu := graphclienttest.NewServer(t)
	if err := emu.SetFaults(graphclienttest.Faults{LatencyMs: 15, JitterMs: 15, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	policy := writeFile(t, "policy.yaml", "version: 1\nsources:\n  hr/bench:\n    types: [\"*\"]\n  helpdesk/bench:\n    types: [\"*\"]\n    priority: interactive\n")
	start := func(name string) *exec.Cmd {
		cmd, _ := startWorkerProcess(t, bin, "--nats-url", ns.ClientURL(), "--graph-url", emu.GraphURL, "--graph-token", emu.Token,
			"--policy", policy, "--partitions", "4", "--ack-wait", "2s", "--instance", name)
		return cmd
	}
	w1 := start("k1")
	start("k2")
	start("k3")

	const users, perUser = 6, 8
	type user struct {
		id, upn string
		evs     []string
		last    string
	}
	us := make([]*user, users)
	for i := range us {
		u := &user{id: fmt.Sprintf("3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a1%03d", i), upn: fmt.Sprintf("kill%d@contoso.example", i)}
		if err := emu.PutUser(graphclienttest.User{ID: u.id, UserPrincipalName: u.upn}); err != nil {
			t.Fatal(err)
		}
		us[i] = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for j := range perUser {
		for i, u := range us {
			source := "hr/bench"
			if j%3 == 2 {
				source = "helpdesk/bench"
			}
			id := fmt.Sprintf("kill-%d-%d", i, j)
			u.last = fmt.Sprintf("+1 42555%02d%03d", i, j)
			raw, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": source, "type": events.TypePhoneSet,
				"subject": u.upn, "time": time.Now().UTC().Format(time.RFC3339),
				"data": map[string]any{"phoneType": "office", "phoneNumber": u.last}})
			m := nats.NewMsg(worker.EventSubject(fmt.Sprintf("kill%d", i)))
			m.Data = raw
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			u.evs = append(u.evs, id)
		}
	}
	stream, err := js.Stream(ctx, worker.ResultsStream)
	if err != nil {
		waitFor(t, "results stream", func() bool { stream, err = js.Stream(ctx, worker.ResultsStream); return err == nil })
	}
	total := uint64(users * perUser)
	waitFor(t, "a third of the results", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs >= total/3
	})
	if err := w1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start("k4")
	deadline := time.Now().Add(90 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err == nil && info.State.Msgs >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("results: %d of %d", info.State.Msgs, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	pos := map[string]int{}
	info, _ := stream.Info(ctx)
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		r, err := events.DecodeResult(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := pos[r.Data.Event.ID]; dup {
			t.Errorf("two results for %s", r.Data.Event.ID)
		}
		pos[r.Data.Event.ID] = int(seq)
		if r.Data.Status != events.StatusSucceeded {
			t.Errorf("%s: %s %+v", r.Data.Event.ID, r.Data.Status, r.Data.Error)
		}
	}
	writes := map[string]int{}
	for _, r := range emu.Requests() {
		if r.Method != "GET" && r.Status < 300 {
			writes[r.UserID]++
		}
	}
	for _, u := range us {
		for j := 1; j < len(u.evs); j++ {
			if pos[u.evs[j]] < pos[u.evs[j-1]] {
				t.Errorf("%s: event %d's result came before event %d's", u.upn, j, j-1)
			}
		}
		if writes[u.id] != perUser {
			t.Errorf("%s: %d writes in the emulator's log, want %d (one per event)", u.upn, writes[u.id], perUser)
		}
		got, _ := emu.User(u.id)
		if !strings.Contains(string(mustMarshal(got.Methods)), u.last) {
			t.Errorf("%s: office phone is not the last event's %s", u.upn, u.last)
		}
	}
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestSendWaitTimeoutWhileRetrying: a real worker that Graph answers only
// with 503 keeps retrying the event; `send --wait` times out with exit 3
// and says so from the event's ledger entry (the attempts and the replica),
// not "is a worker running?".
func TestSendWaitTimeoutWhileRetrying(t *testing.T) {
	s := startTestNATS(t, "")
	nc, _ := connectJS(t, s)
	emu := graphclienttest.NewServer(t)
	const upn = "retry.me@contoso.example"
	if err := emu.PutUser(graphclienttest.User{ID: "6d1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0042", UserPrincipalName: upn}); err != nil {
		t.Fatal(err)
	}
	if err := emu.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}}); err != nil {
		t.Fatal(err)
	}
	g, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	retry := graphclient.RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, worker.Config{
		NATS: nc, Graph: g, Policy: events.DevPolicy(), Instance: "retrying-replica",
		Partitions: 1, Concurrency: 1, AckWait: 2 * time.Second, MaxAttempts: 100, Retry: &retry,
		RedeliveryDelay: 100 * time.Millisecond, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	code, _, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
		"--subject", upn, "--wait", "--timeout", "3s")
	if code != exitTimeout {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitTimeout, stderr)
	}
	if !strings.Contains(stderr, "authflow send: no result within --timeout 3s, but a worker is") ||
		!strings.Contains(stderr, "retrying-replica") || !strings.Contains(stderr, "attempt") ||
		!strings.Contains(stderr, "authflow results --follow --subject "+upn) || strings.Contains(stderr, "is a worker running") {
		t.Errorf("stderr does not say the worker is retrying:\n%s", stderr)
	}
	if testing.Verbose() {
		t.Log(stderr)
	}
}

// TestSendWaitTimeoutFromLedger: with no worker taking the event, the
// timeout says so; with a finished entry in the ledger (a result this
// subscription missed), send prints that result and exits by its status.
func TestSendWaitTimeoutFromLedger(t *testing.T) {
	s := startTestNATS(t, "")
	_, js := connectJS(t, s)
	ensureTopology(t, js)

	code, _, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
		"--subject", "adele.vance@contoso.example", "--wait", "--timeout", "1s")
	if code != exitTimeout || !strings.Contains(stderr, "no worker has taken the event") || !strings.Contains(stderr, worker.LedgerBucket) {
		t.Fatalf("no worker: exit %d, stderr %q", code, stderr)
	}

	kv, err := js.KeyValue(context.Background(), worker.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	const subject = "adele.vance@contoso.example"
	res := testResult(t, "test/missed", "evt-done", subject, events.StatusSucceeded)
	rec, _ := json.Marshal(map[string]any{"state": "done", "bodyHash": "x", "attempt": 1, "result": json.RawMessage(res)})
	if _, err := kv.Put(context.Background(), "e."+events.EventKey("test/missed", "evt-done"), rec); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
		"--subject", subject, "--source", "test/missed", "--id", "evt-done", "--wait", "--timeout", "1s", "--json")
	if code != 0 {
		t.Fatalf("finished in the ledger: exit %d, stderr %q", code, stderr)
	}
	if r, err := events.DecodeResult([]byte(strings.TrimSpace(stdout))); err != nil || r.Data.Event.ID != "evt-done" {
		t.Fatalf("printed %q (%v), want the ledger's result", stdout, err)
	}
}

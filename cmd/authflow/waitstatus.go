package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// ledgerEntry is what `send --wait` reads of an event's ledger record (the
// worker's record in worker/ledger.go; only these fields).
type ledgerEntry struct {
	State      string          `json:"state"` // in_progress, done, redrive
	Attempt    int             `json:"attempt"`
	Owner      string          `json:"owner"`
	LeaseUntil time.Time       `json:"leaseUntil"`
	Received   time.Time       `json:"received"`
	Started    time.Time       `json:"started"`
	Result     json.RawMessage `json:"result"`
}

// errNoLedgerEntry: no worker has accepted the event (yet).
var errNoLedgerEntry = errors.New("no ledger entry")

// readLedgerEntry reads the ledger record of the event source/id: the key
// is "e." and events.EventKey(source, id), as the worker writes it.
func readLedgerEntry(ctx context.Context, js jetstream.JetStream, source, id string) (*ledgerEntry, error) {
	kv, err := js.KeyValue(ctx, worker.LedgerBucket)
	if err != nil {
		return nil, fmt.Errorf("ledger bucket %s: %w", worker.LedgerBucket, err)
	}
	e, err := kv.Get(ctx, "e."+events.EventKey(source, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, errNoLedgerEntry
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	var l ledgerEntry
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return nil, fmt.Errorf("ledger entry undecodable: %w", err)
	}
	return &l, nil
}

// explainNoResult says why --wait saw no result for the event within
// timeout, from its ledger entry: not taken by any worker, being worked on
// or retried (and how often), or finished with a result that did not reach
// this subscription (then it returns that result).
func explainNoResult(ctx context.Context, js jetstream.JetStream, source, id, subject string, timeout time.Duration, now time.Time) (*events.Result, []byte, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	l, err := readLedgerEntry(rctx, js, source, id)
	prefix := fmt.Sprintf("no result within --timeout %s", timeout)
	follow := fmt.Sprintf("authflow results --follow --subject %s shows the result when it comes, or wait longer with --timeout", subject)
	switch {
	case errors.Is(err, errNoLedgerEntry):
		return nil, nil, fmt.Errorf("%s, and no worker has taken the event: it has no entry in the ledger %s.\n"+
			"Is a worker running and consuming %s? (A rejected event gets no entry; authflow results --subject %s shows its result.)",
			prefix, worker.LedgerBucket, worker.EventsStream, subject)
	case err != nil:
		return nil, nil, fmt.Errorf("%s (is a worker running? its ledger could not be read: %v)", prefix, err)
	}
	received := ""
	if !l.Received.IsZero() {
		received = fmt.Sprintf("; received by a worker %s ago", now.Sub(l.Received).Round(time.Second))
	}
	switch l.State {
	case "done":
		if res, err := events.DecodeResult(l.Result); err == nil {
			return res, l.Result, nil
		}
		return nil, nil, fmt.Errorf("%s: the ledger says the event is done, but its stored result is unreadable; authflow results --subject %s shows the published one", prefix, subject)
	case "redrive":
		return nil, nil, fmt.Errorf("%s: a re-drive of the event waits for a worker to take it (is a worker consuming %s?)", prefix, worker.EventsStream)
	case "in_progress":
		if now.Before(l.LeaseUntil) {
			return nil, nil, fmt.Errorf("%s, but a worker is on it: attempt %d is running on %s%s.\n"+
				"It retries what Graph or NATS refuses for now, up to its --max-attempts (its log says why); %s.",
				prefix, l.Attempt, l.Owner, received, follow)
		}
		// The lease lapsed: the attempt handed the event back (a retry
		// with a delay) or its replica stopped; the next delivery resumes it.
		return nil, nil, fmt.Errorf("%s, but a worker is retrying the event: %d attempt(s) so far, the last on %s, handed back for a later delivery%s.\n"+
			"It retries what Graph or NATS refuses for now, up to its --max-attempts (its log says why); %s.",
			prefix, l.Attempt, l.Owner, received, follow)
	}
	return nil, nil, fmt.Errorf("%s: the ledger entry of the event is in state %q", prefix, l.State)
}

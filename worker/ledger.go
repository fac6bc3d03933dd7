package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// Ledger states.
const (
	stateInProgress = "in_progress"
	stateDone       = "done"
)

// record is one event's entry in the ledger bucket. Secrets appear only
// sealed (inside Checkpoints), never in plain text.
type record struct {
	State    string    `json:"state"`
	BodyHash string    `json:"bodyHash"`
	Attempt  int       `json:"attempt"`
	Owner    string    `json:"owner,omitempty"`
	Started  time.Time `json:"started"`
	// Intents records, per plan step, when an operation whose secret Graph
	// returns only once (TAP, password) was about to be sent. An intent with
	// no checkpoint means a crash may have left an orphan behind.
	Intents map[int]time.Time `json:"intents,omitempty"`
	// Checkpoints holds the finished results (secrets sealed) of those steps,
	// so a retry reuses them instead of calling Graph again.
	Checkpoints map[int]events.OpResult `json:"checkpoints,omitempty"`
	// Result is the published result, verbatim, once State is done.
	Result json.RawMessage `json:"result,omitempty"`
	// ResultSubject is where Result was published.
	ResultSubject string `json:"resultSubject,omitempty"`
	// ResultMsgID is the Nats-Msg-Id Result was published with.
	ResultMsgID string `json:"resultMsgId,omitempty"`
}

// ledgerKey is the KV key of an event: a hash of source and id
// (events.EventKey), so any characters a publisher uses are safe.
func ledgerKey(source, id string) string { return "e." + events.EventKey(source, id) }

func bodyHash(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// resultMsgID is the Nats-Msg-Id of the result of the event with this
// source and id: a republish of the same result is dropped by the server
// within the dedup window.
func resultMsgID(source, id string) string { return "result:" + events.EventKey(source, id) }

// ledger is the idempotency ledger over a JetStream KV bucket. Every write is
// a compare-and-set on the revision it read, so two workers that somehow
// hold the same event cannot both record it.
type ledger struct{ kv jetstream.KeyValue }

// errLost means another worker took the event over: stop without acking.
var errLost = errors.New("ledger: event taken over by another worker")

// get returns the record and its revision, or (nil, 0, nil) when absent.
func (l ledger) get(ctx context.Context, key string) (*record, uint64, error) {
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("ledger get: %w", err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("ledger decode %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// create stores a new record; errLost when the key appeared meanwhile.
func (l ledger) create(ctx context.Context, key string, r *record) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ledger encode: %w", err)
	}
	rev, err := l.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errLost
	}
	if err != nil {
		return 0, fmt.Errorf("ledger create: %w", err)
	}
	return rev, nil
}

// update replaces the record read at rev; errLost on a revision mismatch.
func (l ledger) update(ctx context.Context, key string, r *record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ledger encode: %w", err)
	}
	nrev, err := l.kv.Update(ctx, key, b, rev)
	// Test RevisionMismatch first: on R1 it also matches ErrKeyExists.
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errLost
	}
	if err != nil {
		return 0, fmt.Errorf("ledger update: %w", err)
	}
	return nrev, nil
}

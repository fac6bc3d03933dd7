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
	// stateRedrive is a failed event an operator asked to run again
	// (authflow dlq replay): the next delivery of its bytes claims it as a
	// new attempt instead of answering with the stored result.
	stateRedrive = "redrive"
)

// record is one event's entry in the ledger bucket. Secrets appear only
// sealed (inside Checkpoints), never in plain text.
type record struct {
	State    string `json:"state"`
	BodyHash string `json:"bodyHash"`
	// Attempt counts the attempts that claimed the event (ran its plan).
	Attempt int `json:"attempt"`
	// Owner is the replica of the current attempt; Token is unique to that
	// attempt and Write counts its writes of this record, so a write whose
	// reply was lost can be recognised as our own on a re-read.
	Owner string `json:"owner,omitempty"`
	Token string `json:"token,omitempty"`
	Write int    `json:"write,omitempty"`
	// LeaseUntil is when the current attempt's claim lapses unless renewed
	// (the owner's clock). See lease.go for the fencing rules.
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// NotBefore is when an attempt that handed the event back for a later
	// retry asked to be tried again: a later event of the same key that
	// finds it unfinished waits until then rather than run it early.
	NotBefore time.Time `json:"notBefore,omitzero"`
	// EffectiveAt is a scheduled event's data.effectiveAt (schedule.go).
	EffectiveAt time.Time `json:"effectiveAt,omitzero"`
	// Approval is set once an approval rule parked the event (approval.go).
	Approval *approvalRecord `json:"approval,omitempty"`
	// Received is when a worker first received the event; Started when the
	// first attempt claimed it.
	Received time.Time `json:"received,omitzero"`
	Started  time.Time `json:"started,omitzero"`
	// Intents records, per plan step, an operation whose secret Graph
	// returns only once (TAP, password) that was about to be sent. An intent
	// with no checkpoint means a crash may have left an orphan behind.
	Intents map[int]intent `json:"intents,omitempty"`
	// Checkpoints holds the finished results (secrets sealed) of those steps,
	// so a retry reuses them instead of calling Graph again.
	Checkpoints map[int][]events.OpResult `json:"checkpoints,omitempty"`
	// Result is the published result, verbatim, once State is done.
	Result json.RawMessage `json:"result,omitempty"`
	// ResultSubject is where Result was published.
	ResultSubject string `json:"resultSubject,omitempty"`
	// ResultMsgID is the Nats-Msg-Id Result was published with.
	ResultMsgID string `json:"resultMsgId,omitempty"`
	// Redrive is set while and after an operator re-drives a failed event.
	Redrive *events.Redrive `json:"redrive,omitempty"`
}

// intent is what an attempt recorded before an operation whose secret Graph
// returns once: when, and the ids of the methods of that kind that existed
// just before, so that recovery deletes only what this event created.
type intent struct {
	At     time.Time `json:"at"`
	Before []string  `json:"before,omitempty"`
}

// ledgerKey is the KV key of an event: a hash of source and id
// (events.EventKey, 64 hex digits), so any characters a publisher uses are safe.
func ledgerKey(source, id string) string { return "e." + events.EventKey(source, id) }

func bodyHash(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// ledger is the idempotency ledger over a JetStream KV bucket. Every write is
// a compare-and-set on the revision it read, so two workers that somehow
// hold the same event cannot both record it. Each call has its own short
// timeout and is retried a few times: a NATS hiccup costs seconds, not the
// attempt's deadline.
type ledger struct {
	kv      jetstream.KeyValue
	timeout time.Duration // per call
	tries   int
}

// errLost means another attempt owns the event now: stop without acking
// and without writing anything more to Graph.
var errLost = errors.New("ledger: event taken over by another attempt")

// errNATS marks a ledger or publish failure of NATS itself, so that logs
// and retries blame NATS, not Graph.
var errNATS = errors.New("NATS unavailable")

// errCorrupt is a ledger record that cannot be decoded.
var errCorrupt = errors.New("ledger record undecodable")

func (l ledger) do(ctx context.Context, what string, fn func(ctx context.Context) error) (err error) {
	ctx, end := ledgerSpan(ctx, what)
	defer func() { end(err) }()
	return natsCall(ctx, "ledger "+what, l.timeout, l.tries, fn)
}

// natsCall runs one call to NATS with timeout per try, up to tries times
// while NATS is unreachable or slow (not when it answered), and marks what
// is still failing then with errNATS.
func natsCall(ctx context.Context, what string, timeout time.Duration, tries int, fn func(ctx context.Context) error) error {
	var err error
	for i := 0; i < max(1, tries); i++ {
		if i > 0 {
			select {
			case <-time.After(time.Duration(i) * 200 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("%s: %w: %w", what, errNATS, ctx.Err())
			}
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err = fn(cctx)
		cancel()
		if err == nil || !retryableNATS(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil && retryableNATS(err) {
		return fmt.Errorf("%s: %w: %w", what, errNATS, err)
	}
	return err
}

// retryableNATS reports whether err is NATS being unreachable or slow
// rather than an answer.
func retryableNATS(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return false
	}
	return !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyExists) &&
		!errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, errCorrupt)
}

// get returns the record and its revision, or (nil, 0, nil) when absent.
// An undecodable record is errCorrupt with its revision.
func (l ledger) get(ctx context.Context, key string) (*record, uint64, error) {
	var (
		r   *record
		rev uint64
	)
	err := l.do(ctx, "get", func(ctx context.Context) error {
		e, err := l.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			r, rev = nil, 0
			return nil
		}
		if err != nil {
			return err
		}
		rev = e.Revision()
		var v record
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return fmt.Errorf("%w: %s: %v", errCorrupt, key, err)
		}
		r = &v
		return nil
	})
	return r, rev, err
}

// create stores a new record; errLost when the key exists already (and is
// not the record we wrote ourselves on an earlier try whose reply was lost).
func (l ledger) create(ctx context.Context, key string, r *record) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ledger encode: %w", err)
	}
	var rev uint64
	err = l.do(ctx, "create", func(ctx context.Context) error {
		rev, err = l.kv.Create(ctx, key, b)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return l.ours(ctx, key, r)
	}
	return rev, err
}

// update replaces the record read at rev; errLost on a revision mismatch
// that is not our own earlier write.
func (l ledger) update(ctx context.Context, key string, r *record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ledger encode: %w", err)
	}
	var nrev uint64
	tries := 0
	err = l.do(ctx, "update", func(ctx context.Context) error {
		tries++
		nrev, err = l.kv.Update(ctx, key, b, rev)
		return err
	})
	// Test RevisionMismatch first: on R1 it also matches ErrKeyExists.
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		if tries > 1 {
			// An earlier try may have been applied with its reply lost.
			return l.ours(ctx, key, r)
		}
		return 0, errLost
	}
	return nrev, err
}

// ours re-reads key after a conflicting write and reports its revision when
// the stored record is the very write r (same attempt token and write
// count), else errLost.
func (l ledger) ours(ctx context.Context, key string, r *record) (uint64, error) {
	cur, rev, err := l.get(ctx, key)
	if err != nil {
		return 0, err
	}
	if cur != nil && r.Token != "" && cur.Token == r.Token && cur.Write == r.Write && cur.State == r.State {
		return rev, nil
	}
	return 0, errLost
}

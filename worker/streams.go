package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream names authflow uses. They are a contract with publishers,
// operators and tools: change them only with a migration.
const (
	EventsStream  = "AUTHFLOW_EVENTS"
	ResultsStream = "AUTHFLOW_RESULTS"
	DLQStream     = "AUTHFLOW_DLQ"
	LedgerBucket  = "AUTHFLOW_LEDGER"

	EventsSubjectPrefix = "authflow.events."
	// SchedulesSubjectPrefix + an event key (64 hex) holds a future-dated
	// event's schedule (schedule.go).
	SchedulesSubjectPrefix = "authflow.schedules."
	ResultsSubjectPrefix   = "authflow.results."
	DLQSubjectPrefix       = "authflow.dlq."

	consumerPrefix = "authflow-p"
)

// Headers the worker sets on dead letters and results.
const (
	HeaderDLQReason   = "Authflow-Dlq-Reason"
	HeaderDLQMessage  = "Authflow-Dlq-Message"
	HeaderDLQAttempts = "Authflow-Dlq-Attempts"
	HeaderDLQSubject  = "Authflow-Dlq-Subject"
	HeaderDLQSequence = "Authflow-Dlq-Sequence"
	// A dead letter whose body or headers were cut to fit a message says so;
	// for a cut body, the original's size and SHA-256 (hex) follow.
	HeaderDLQTruncated      = "Authflow-Dlq-Truncated"
	HeaderDLQOriginalSize   = "Authflow-Dlq-Original-Size"
	HeaderDLQOriginalSHA256 = "Authflow-Dlq-Original-Sha256"
	HeaderEventSource       = "Authflow-Event-Source"
	HeaderEventID           = "Authflow-Event-Id"
	HeaderStatus            = "Authflow-Status"
)

// EventSubject is the subject a publisher uses for an event of the user
// identified by key. The key must be one subject token.
func EventSubject(key string) string { return EventsSubjectPrefix + key }

// ResultSubject is the subject of the result of an event published with key.
func ResultSubject(key string) string { return ResultsSubjectPrefix + key }

// DLQSubject is the subject of a dead letter for an event published with key.
func DLQSubject(key string) string { return DLQSubjectPrefix + key }

// ValidKey reports whether key can be the user key token of an event subject.
func ValidKey(key string) bool {
	if key == "" || len(key) > 256 {
		return false
	}
	for _, r := range key {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r > 0x7e {
			return false
		}
	}
	return true
}

// partitionSubject is the stored subject filter of partition p.
func partitionSubject(p int) string { return fmt.Sprintf("%s%d.*", EventsSubjectPrefix, p) }

func consumerName(p int) string { return fmt.Sprintf("%s%03d", consumerPrefix, p) }

// keyOfStoredSubject returns the user key of a stored (partitioned) event
// subject "authflow.events.<p>.<key>".
func keyOfStoredSubject(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// Topology sizes the streams, the ledger and the consumers.
type Topology struct {
	Partitions int
	Replicas   int
	LedgerTTL  time.Duration
	// EventsMaxAge, ResultsMaxAge, DLQMaxAge bound the streams' retention.
	EventsMaxAge, ResultsMaxAge, DLQMaxAge time.Duration
	// ResultsDuplicates is the results stream's dedup window: a result
	// republished within it (same Nats-Msg-Id) is dropped by the server.
	ResultsDuplicates time.Duration
	AckWait           time.Duration
	MaxMsgBytes       int32
	// PartitionInflight is each partition consumer's MaxAckPending
	// (Config.PartitionInflight); 0 means 1.
	PartitionInflight int
}

// EnsureTopology creates or updates the streams, the ledger bucket and one
// durable consumer per partition. It is idempotent: every replica calls it
// at start.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, t Topology) (jetstream.KeyValue, error) {
	if t.Partitions < 1 {
		return nil, errors.New("ensure topology: partitions must be >= 1")
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        EventsStream,
			Description: "authflow events; subject authflow.events.<user key>, stored per partition; authflow.schedules.<event key>: future-dated events waiting for their time",
			// Schedules live in the events stream: JetStream's scheduler
			// publishes a schedule's message to a subject of its own stream.
			Subjects:          []string{EventsSubjectPrefix + "*", SchedulesSubjectPrefix + "*"},
			AllowMsgSchedules: true,
			SubjectTransform: &jetstream.SubjectTransformConfig{
				Source:      EventsSubjectPrefix + "*",
				Destination: fmt.Sprintf("%s{{partition(%d,1)}}.{{wildcard(1)}}", EventsSubjectPrefix, t.Partitions),
			},
			Retention:  jetstream.LimitsPolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   t.Replicas,
			MaxAge:     t.EventsMaxAge,
			MaxMsgSize: t.MaxMsgBytes,
			Duplicates: 2 * time.Minute,
		},
		{
			Name:        ResultsStream,
			Description: "authflow results, one per event",
			Subjects:    []string{ResultsSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.ResultsMaxAge,
			Duplicates:  t.ResultsDuplicates,
		},
		{
			Name:        PriorityStream,
			Description: "authflow interactive lane: pointers (stream sequences) to events of interactive sources",
			Subjects:    []string{PrioritySubjectPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.EventsMaxAge,
			Duplicates:  2 * time.Minute,
		},
		{
			Name:        DLQStream,
			Description: "authflow dead letters: original bytes and headers, reason, attempts",
			Subjects:    []string{DLQSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.DLQMaxAge,
			Duplicates:  2 * time.Minute,
		},
	}
	// Look before writing: a least-privilege worker may read but not
	// update the streams an operator created (deploy/nats/accounts.conf).
	for _, sc := range streams {
		if s, err := js.Stream(ctx, sc.Name); err == nil && sameStream(s.CachedInfo().Config, sc) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      LedgerBucket,
		Description: "authflow idempotency ledger",
		History:     1,
		TTL:         t.LedgerTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}
	kv, err := js.KeyValue(ctx, LedgerBucket)
	if err == nil {
		st, serr := kv.Status(ctx)
		if serr != nil || st.TTL() != kvc.TTL || st.History() != int64(kvc.History) || replicasOf(st) != kvc.Replicas {
			kv = nil
		}
	}
	if kv == nil || err != nil {
		kv, err = js.CreateOrUpdateKeyValue(ctx, kvc)
		if err != nil {
			return nil, fmt.Errorf("ensure ledger bucket: %w", err)
		}
	}
	lanes := []jetstream.ConsumerConfig{{
		Durable:       interactiveConsumer,
		Description:   "authflow interactive lane, shared by every replica",
		FilterSubject: PrioritySubjectPrefix + "*",
	}, {
		Durable:       fairConsumer,
		Description:   "authflow fair lane: bulk sources with a small share of the backlog, shared by every replica",
		FilterSubject: FairSubjectPrefix + "*",
	}}
	for _, lane := range lanes {
		lane.AckPolicy = jetstream.AckExplicitPolicy
		lane.AckWait = t.AckWait
		// Many at once: order within a key is kept by the worker (earlier
		// events of the key first) and the ledger leases, not by the consumer.
		lane.MaxAckPending = 1000
		lane.MaxDeliver = -1
		lane.DeliverPolicy = jetstream.DeliverAllPolicy
		if c, err := js.Consumer(ctx, PriorityStream, lane.Durable); err != nil || !sameConsumer(c.CachedInfo().Config, lane) {
			if _, err := js.CreateOrUpdateConsumer(ctx, PriorityStream, lane); err != nil {
				return nil, fmt.Errorf("ensure consumer %s: %w", lane.Durable, err)
			}
		}
	}
	for p := 0; p < t.Partitions; p++ {
		want := jetstream.ConsumerConfig{
			Durable:       consumerName(p),
			Description:   fmt.Sprintf("authflow partition %d of %d", p, t.Partitions),
			FilterSubject: partitionSubject(p),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       t.AckWait,
			// With 1, the server cannot hand the next event of a user out
			// before the previous one is acked, and serves redeliveries
			// first, so order survives crashes. Above 1 the worker keeps
			// each key's order itself from the ledger (order.go).
			MaxAckPending: max(1, t.PartitionInflight),
			// Unlimited: the worker itself dead-letters an event once its
			// attempts are used up (before decoding it), so a server-side
			// limit could only strand an event without a result.
			MaxDeliver:    -1,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		if c, err := js.Consumer(ctx, EventsStream, want.Durable); err == nil && sameConsumer(c.CachedInfo().Config, want) {
			continue
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, EventsStream, want); err != nil {
			return nil, fmt.Errorf("ensure consumer %s: %w", want.Durable, err)
		}
	}
	return kv, nil
}

// sameStream reports whether the server's config already has every setting
// EnsureTopology asks for.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.AllowMsgSchedules == want.AllowMsgSchedules &&
		have.Replicas == want.Replicas && have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates && unlimited(have.MaxMsgSize) == unlimited(want.MaxMsgSize) &&
		have.Retention == want.Retention && have.Storage == want.Storage &&
		(have.SubjectTransform == nil) == (want.SubjectTransform == nil) &&
		(want.SubjectTransform == nil || *have.SubjectTransform == *want.SubjectTransform)
}

func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return have.FilterSubject == want.FilterSubject && have.AckWait == want.AckWait &&
		have.MaxAckPending == want.MaxAckPending && have.MaxDeliver == want.MaxDeliver &&
		have.AckPolicy == want.AckPolicy && have.DeliverPolicy == want.DeliverPolicy
}

func replicasOf(st jetstream.KeyValueStatus) int {
	if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return s.StreamInfo().Config.Replicas
	}
	return 0
}

// unlimited maps the server's "no limit" values (0 and -1) to one.
func unlimited(v int32) int32 {
	if v <= 0 {
		return -1
	}
	return v
}

// Package worker is authflow's JetStream pipeline: it consumes events, keeps
// each user's events in order, records progress in an idempotency ledger,
// executes each event's plan against Microsoft Graph with retries, and
// publishes exactly one result per event (or a dead letter for what cannot
// even be decoded).
//
// It is the only package that knows JetStream. The subjects, stream names and
// ledger bucket below are a contract with publishers and operators; see
// docs/architecture.md.
//
//	authflow.events.<key>   publishers; <key> is one token, the same for every event of one user
//	authflow.results.<key>  one result per event (stream AUTHFLOW_RESULTS), Nats-Msg-Id derived from the event key
//	authflow.dlq.<key>      dead letters (stream AUTHFLOW_DLQ): original bytes and headers, reason, attempts
//	AUTHFLOW_LEDGER         KV bucket: per event, in progress (with attempt and secret checkpoints) or done (with its result)
//
// # Ordering and replicas
//
// The events stream maps each key to one of N partitions with a subject
// transform (FNV-1a of the key, mod N). Each partition has one durable
// consumer with MaxAckPending 1, shared by every worker replica: the server
// hands out a partition's next event only after the previous one was acked,
// and serves redeliveries before newer messages, so two events of one user can
// never overtake each other — not across replicas, restarts or a crash.
// Replicas share the partitions by simply pulling from all of them; when one
// dies, the others keep pulling at once, and the event it held comes back
// after AckWait.
package worker

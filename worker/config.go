package worker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// Defaults of Config.
const (
	DefaultPartitions = 64
	// MaxPartitions is nats-server's default limit of consumers per stream.
	MaxPartitions      = 1000
	DefaultConcurrency = 32
	// MaxPartitionInflight bounds PartitionInflight.
	MaxPartitionInflight   = 1000
	DefaultReplicas        = 1
	DefaultLedgerTTL       = 7 * 24 * time.Hour
	DefaultAckWait         = 30 * time.Second
	DefaultMaxAttempts     = 8
	DefaultRetryBudget     = 20 * time.Second
	DefaultAttemptTimeout  = 2 * time.Minute
	DefaultRedeliveryDelay = 5 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
	DefaultMaxEventBytes   = 64 << 10
	DefaultMaxClockSkew    = time.Second
	DefaultNATSTimeout     = 5 * time.Second
	// MaxMessageBytes is the largest message (headers and body) the events
	// stream stores; NATS servers must set max_payload to the same value
	// (deploy/ does), so a message the server takes is one the stream takes.
	MaxMessageBytes = 1 << 20
	// MinLedgerTTL is the events stream's duplicate window: JetStream
	// refuses a MaxAge (= LedgerTTL) below it.
	MinLedgerTTL = 2 * time.Minute
)

// PasswordMode says how a password reset reaches Graph.
type PasswordMode string

const (
	// PasswordPatch sets a generated password with PATCH /users/{id}
	// passwordProfile: the way for an application (app-only) caller.
	PasswordPatch PasswordMode = "patch"
	// PasswordResetAPI calls the authentication methods resetPassword API,
	// which Graph allows for delegated callers only.
	PasswordResetAPI PasswordMode = "resetPassword"
)

// Config configures a Worker. Zero values take the documented defaults.
type Config struct {
	// NATS is the connection to the NATS server or cluster. Required.
	NATS *nats.Conn
	// Graph performs the Graph operations. Required.
	Graph Graph
	// Policy decides who may ask for what. Required.
	Policy *events.Policy
	// Decoder decodes events. Defaults to events.Decoder{MaxBytes: DefaultMaxEventBytes}.
	Decoder events.Decoder
	// SealKey is the worker's curve key that seals secrets (its public key is
	// the sender a recipient passes to open them). Defaults to a fresh key.
	SealKey nkeys.KeyPair

	// Instance names this replica in logs and the ledger. Defaults to a random id.
	Instance string
	// Partitions of the events stream. Defaults to 64. Changing it remaps
	// keys to partitions: drain the stream first.
	Partitions int
	// Concurrency bounds the events processed at once. Defaults to 32.
	Concurrency int
	// PartitionInflight is how many events of one partition may be in
	// flight at once (its consumer's MaxAckPending), so parallelism is set
	// by Concurrency rather than by the number of partitions. Above 1, the
	// worker itself keeps each key's events in stream order (order.go).
	// Defaults to max(1, ceil(2 × Concurrency / Partitions)).
	PartitionInflight int
	// Replicas of the streams and the ledger. Defaults to 1 (R3 in production).
	Replicas int
	// LedgerTTL is how long the ledger remembers an event. Defaults to 7 days.
	LedgerTTL time.Duration
	// AckWait is the consumers' ack deadline; the worker keeps a message
	// alive with InProgress while it works on it. Defaults to 30 s.
	AckWait time.Duration
	// MaxAttempts is how many deliveries an event gets before it ends as
	// failed with retries_exhausted and a dead letter. Defaults to 8.
	MaxAttempts int
	// Retry is the in-process retry policy for one Graph operation.
	// Defaults to graphclient.DefaultRetryPolicy with MaxElapsed RetryBudget.
	Retry *graphclient.RetryPolicy
	// RetryBudget bounds in-process retries of one Graph operation before the
	// event is handed back to JetStream with a delay. Defaults to 20 s.
	RetryBudget time.Duration
	// RedeliveryDelay is the first delay of an event handed back to
	// JetStream after its in-process retries; it doubles per delivery, up
	// to 5 minutes. Defaults to 5 s.
	RedeliveryDelay time.Duration
	// AttemptTimeout bounds one attempt at one event. Defaults to 2 min.
	AttemptTimeout time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight events after
	// its context is cancelled; the rest is handed back. Defaults to 25 s.
	ShutdownTimeout time.Duration
	// MaxClockSkew is how far apart the clocks of two workers may be. An
	// attempt stops writing to Graph MaxClockSkew before its lease ends, and
	// another attempt takes over only MaxClockSkew after it (lease.go).
	// Defaults to 1 s; at most AckWait/4.
	MaxClockSkew time.Duration
	// NATSTimeout bounds one ledger, publish or ack call to NATS; each is
	// tried up to three times. Defaults to 5 s.
	NATSTimeout time.Duration
	// PasswordMode picks the password reset API. Defaults to PasswordPatch.
	PasswordMode PasswordMode
	// BetaDefaultMethod reads and moves users' default MFA method through
	// Graph beta's signInPreferences (--graph-beta default-method): Graph
	// must then also implement SignInPreferences and SetPreferredMethod.
	// Off, the worker uses Graph v1.0 only.
	BetaDefaultMethod bool

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics receives the worker's metrics. Defaults to NewMetrics on a
	// private registry.
	Metrics *Metrics
	// TracerProvider, if set, records a span per delivery and its steps
	// (trace.go); give graphclient.Config the same one for the Graph
	// requests. Defaults to none: tracing off, at no cost.
	TracerProvider trace.TracerProvider
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Hook, when set, is called at the crash points named Hook*; an error
	// stops the processing of that event right there, as a crash would. For
	// tests.
	Hook func(point string) error
}

// Crash points passed to Config.Hook.
const (
	HookAfterGraphWrite    = "after_graph_write"
	HookAfterLedgerWrite   = "after_ledger_write"
	HookAfterResultPublish = "after_result_publish"
	// HookAfterNotificationPublish: the user's notification is published,
	// the event not yet acked.
	HookAfterNotificationPublish = "after_notification_publish"
	// HookAfterPark: an event an approval rule holds back is recorded as
	// parked; its schedule and pending result are not published yet.
	HookAfterPark = "after_park"
	HookBeforeAck = "before_ack"
)

// DefaultPartitionInflight is PartitionInflight's default: twice the
// partitions' fair share of concurrency (keys hash unevenly, and an event
// waiting for an earlier one of its key holds a place), at least 1.
func DefaultPartitionInflight(concurrency, partitions int) int {
	if partitions < 1 {
		return 1
	}
	return max(1, (2*concurrency+partitions-1)/partitions)
}

func (c Config) withDefaults() Config {
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	if c.PartitionInflight == 0 {
		c.PartitionInflight = DefaultPartitionInflight(c.Concurrency, c.Partitions)
		if c.Policy != nil && len(c.Policy.Approvals()) > 0 {
			// Events waiting behind a parked one wait in place; with one in
			// flight they would hold up their whole partition.
			c.PartitionInflight = max(c.PartitionInflight, 4)
		}
	}
	c.Replicas = cmp.Or(c.Replicas, DefaultReplicas)
	c.LedgerTTL = cmp.Or(c.LedgerTTL, DefaultLedgerTTL)
	c.AckWait = cmp.Or(c.AckWait, DefaultAckWait)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.RetryBudget = cmp.Or(c.RetryBudget, DefaultRetryBudget)
	c.RedeliveryDelay = cmp.Or(c.RedeliveryDelay, DefaultRedeliveryDelay)
	c.AttemptTimeout = cmp.Or(c.AttemptTimeout, DefaultAttemptTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.PasswordMode = cmp.Or(c.PasswordMode, PasswordPatch)
	c.MaxClockSkew = cmp.Or(c.MaxClockSkew, min(DefaultMaxClockSkew, c.AckWait/4))
	c.NATSTimeout = cmp.Or(c.NATSTimeout, DefaultNATSTimeout)
	c.Decoder.MaxBytes = cmp.Or(c.Decoder.MaxBytes, DefaultMaxEventBytes)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Instance == "" {
		c.Instance = randomID()
	}
	if c.Retry == nil {
		p := graphclient.DefaultRetryPolicy()
		p.MaxElapsed = c.RetryBudget
		c.Retry = &p
	}
	return c
}

// FieldError is one Config setting out of its range. Validate returns them
// joined; a caller such as the CLI maps Field to its own flag name.
type FieldError struct {
	Field string // the Config field, e.g. "LedgerTTL"
	Msg   string // "must be at least 2m0s, got 1m0s"
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Validate checks every setting of c against its range after defaults are
// applied, without connecting anywhere: the one place the ranges live. It
// returns nil or errors.Join of *FieldError. The required connections
// (NATS, Graph, Policy) are checked by New.
func (c Config) Validate() error { return c.withDefaults().validateSettings() }

func (c Config) validateSettings() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	intRange := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(field, "must be %d..%d, got %d", lo, hi, v)
		}
	}
	durRange := func(field string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(field, "must be %s..%s, got %s", lo, hi, v)
		}
	}
	if _, ok := c.Graph.(signInPrefs); c.BetaDefaultMethod && c.Graph != nil && !ok {
		bad("BetaDefaultMethod", "needs a Graph that implements SignInPreferences and SetPreferredMethod")
	}
	intRange("Partitions", c.Partitions, 1, MaxPartitions)
	intRange("Concurrency", c.Concurrency, 1, 10000)
	intRange("PartitionInflight", c.PartitionInflight, 1, MaxPartitionInflight)
	intRange("Replicas", c.Replicas, 1, 5)
	intRange("MaxAttempts", c.MaxAttempts, 1, 100)
	durRange("LedgerTTL", c.LedgerTTL, MinLedgerTTL, 365*24*time.Hour)
	durRange("AckWait", c.AckWait, time.Second, 12*time.Hour)
	durRange("AttemptTimeout", c.AttemptTimeout, time.Second, 24*time.Hour)
	durRange("RetryBudget", c.RetryBudget, 100*time.Millisecond, 24*time.Hour)
	durRange("RedeliveryDelay", c.RedeliveryDelay, 10*time.Millisecond, 5*time.Minute)
	durRange("ShutdownTimeout", c.ShutdownTimeout, 10*time.Millisecond, time.Hour)
	durRange("MaxClockSkew", c.MaxClockSkew, time.Millisecond, c.AckWait/4)
	durRange("NATSTimeout", c.NATSTimeout, 100*time.Millisecond, time.Minute)
	if c.RetryBudget >= c.AttemptTimeout {
		bad("RetryBudget", "must be shorter than AttemptTimeout (%s), got %s", c.AttemptTimeout, c.RetryBudget)
	}
	if c.Decoder.MaxBytes < 1 || c.Decoder.MaxBytes > MaxMessageBytes/2 {
		// Half the message limit leaves room for the headers of a dead letter.
		bad("Decoder.MaxBytes", "must be 1..%d, got %d", MaxMessageBytes/2, c.Decoder.MaxBytes)
	}
	if c.Policy != nil && len(c.Policy.Approvals()) > 0 {
		if c.PartitionInflight < 2 {
			bad("PartitionInflight", "must be at least 2 with approval rules in the policy (events behind a parked one wait in place), got %d", c.PartitionInflight)
		}
		if c.LedgerTTL < 2*c.Policy.MaxApprovalTimeout() {
			bad("LedgerTTL", "must be at least twice the policy's longest approval timeout (%s), got %s", c.Policy.MaxApprovalTimeout(), c.LedgerTTL)
		}
	}
	if c.Policy != nil && c.LedgerTTL < c.Policy.MaxAge() {
		// An event the ledger has forgotten but the policy still finds fresh
		// would act twice.
		bad("LedgerTTL", "must be at least the policy's maxAge (%s), got %s", c.Policy.MaxAge(), c.LedgerTTL)
	}
	if err := c.Retry.Validate(); err != nil {
		bad("Retry", "is invalid: %v", err)
	}
	if c.PasswordMode != PasswordPatch && c.PasswordMode != PasswordResetAPI {
		bad("PasswordMode", "must be %q or %q, got %q", PasswordPatch, PasswordResetAPI, c.PasswordMode)
	}
	return errors.Join(errs...)
}

func (c Config) validate() error {
	var errs []error
	if c.NATS == nil {
		errs = append(errs, errors.New("NATS is required"))
	}
	if c.Graph == nil {
		errs = append(errs, errors.New("Graph is required"))
	}
	if c.Policy == nil {
		errs = append(errs, errors.New("Policy is required"))
	}
	if err := c.validateSettings(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Package notify tells users when authflow changed their sign-in methods
// or password, through a channel the change did not touch (NIST SP
// 800-63B-4 §4: notify the subscriber of every bind, unbind and recovery,
// independently of the transaction, with a way to dispute it).
//
// The worker publishes one events.Notification per event that changed a
// user on authflow.notifications.<key> (stream AUTHFLOW_NOTIFICATIONS),
// with Publish or NewMsg, after the event's result. A Deliverer, on a
// durable consumer of its own, turns each into an email sent through
// Graph sendMail to the user's mail and otherMails (never an address the
// same event set) and, when the policy says so, the manager; it retries
// with backoff and dead-letters what it cannot deliver. A mail outage
// therefore delays emails only: the worker never waits for it.
//
// Templates are text/template (subject and text body) and html/template
// (html body), per event type, overridable from a directory (see
// LoadTemplates): files <key>.subject.tmpl, <key>.text.tmpl and
// <key>.html.tmpl, where key is an event type without "authflow." (for
// example mfa.reset.v1), rate_limited, or default.
//
// The package does not import graphclient: it needs only Mailer, which
// *graphclient.Client satisfies.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// The JetStream names of notifications. They are a contract with
// operators and consumers: change them only with a migration.
const (
	Stream        = "AUTHFLOW_NOTIFICATIONS"
	SubjectPrefix = "authflow.notifications."
	// ConsumerName is the Deliverer's durable consumer, shared by every
	// replica.
	ConsumerName = "authflow-notify"
	// SentBucket remembers which notifications were delivered, and when
	// a user last got a rate-limit notice.
	SentBucket = "AUTHFLOW_NOTIFY_SENT"
	// DLQStream is the worker's dead-letter stream; undeliverable
	// notifications go there under DLQSubjectPrefix + <key>.
	DLQStream        = "AUTHFLOW_DLQ"
	DLQSubjectPrefix = "authflow.dlq.notifications."
)

// Headers of dead letters, the same as the worker's.
const (
	HeaderDLQReason   = "Authflow-Dlq-Reason"
	HeaderDLQMessage  = "Authflow-Dlq-Message"
	HeaderDLQAttempts = "Authflow-Dlq-Attempts"
	HeaderDLQSubject  = "Authflow-Dlq-Subject"
	HeaderDLQSequence = "Authflow-Dlq-Sequence"
	// HeaderNotificationID is set on notifications: the notification's id.
	HeaderNotificationID = "Authflow-Notification-Id"
)

// Why a notification was dead-lettered (the Authflow-Dlq-Reason header
// and the reason label of authflow_notifications_failed_total).
const (
	ReasonInvalid          = "invalid_notification" // the message is not a valid notification
	ReasonNoRecipient      = "no_recipient"         // the user has no address the change did not just set, and no manager is to be told
	ReasonPermanent        = "permanent"            // Graph refused for good (unknown user, no mailbox, access policy, bad message)
	ReasonRetriesExhausted = "retries_exhausted"    // transient failures outlasted MaxAttempts
)

// Subject is the subject of a notification for the user key key (the key
// the event was published with).
func Subject(key string) string { return SubjectPrefix + key }

// Mailer is what the Deliverer needs of Graph; *graphclient.Client
// satisfies it.
type Mailer interface {
	// MailAddresses returns the user's mail and otherMails, in that
	// order, named with the user's display name; none is not an error.
	MailAddresses(ctx context.Context, userID string) ([]*mail.Address, error)
	// ManagerAddress returns the mail address of the user's manager, nil
	// when there is none.
	ManagerAddress(ctx context.Context, userID string) (*mail.Address, error)
	// SendMail sends msg from the mailbox of user senderID.
	SendMail(ctx context.Context, senderID string, msg *mail.Message) error
}

// StreamConfig sizes the notifications stream.
type StreamConfig struct {
	// Replicas of the stream. Defaults to 1.
	Replicas int
	// MaxAge is how long notifications are kept (they are half of the
	// audit record, with results). Defaults to 30 days.
	MaxAge time.Duration
	// Duplicates is the dedup window: a notification published again
	// within it (same Nats-Msg-Id) is dropped. Defaults to 24 h.
	Duplicates time.Duration
}

// EnsureStream creates or updates the notifications stream. It is
// idempotent; the worker calls it at start with its other streams.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	sc := jetstream.StreamConfig{
		Name:        Stream,
		Description: "authflow notifications, one per event that changed a user; subject authflow.notifications.<user key>",
		Subjects:    []string{SubjectPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(c.Replicas, 1),
		MaxAge:      cmpOr(c.MaxAge, 30*24*time.Hour),
		Duplicates:  cmpOr(c.Duplicates, 24*time.Hour),
	}
	// Look before writing: a least-privilege process may read but not
	// update a stream an operator created.
	if s, err := js.Stream(ctx, Stream); err == nil {
		have := s.CachedInfo().Config
		if slices.Equal(have.Subjects, sc.Subjects) && have.Replicas == sc.Replicas && have.MaxAge == sc.MaxAge && have.Duplicates == sc.Duplicates {
			return nil
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("notify: ensure stream %s: %w", Stream, err)
	}
	return nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// NewMsg encodes n as the message to publish for the user key key, and
// returns the Nats-Msg-Id to publish it with ("notification:" + n.ID), so
// that publishing it again (after a crash) is dropped by the server. The
// key must be one subject token.
func NewMsg(key string, n *events.Notification) (*nats.Msg, string, error) {
	if key == "" || strings.ContainsAny(key, ".*> \t\r\n") {
		return nil, "", fmt.Errorf("notify: %q is not a subject token", key)
	}
	body, err := n.Marshal()
	if err != nil {
		return nil, "", fmt.Errorf("notify: encode notification: %w", err)
	}
	m := nats.NewMsg(Subject(key))
	m.Data = body
	m.Header.Set("Content-Type", events.ContentTypeCloudEvents)
	m.Header.Set(HeaderNotificationID, n.ID)
	return m, "notification:" + n.ID, nil
}

// Publish publishes n for the user key key and waits for the server to
// store it.
func Publish(ctx context.Context, js jetstream.JetStream, key string, n *events.Notification) error {
	m, id, err := NewMsg(key, n)
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(Stream)); err != nil {
		return fmt.Errorf("notify: publish notification: %w", err)
	}
	return nil
}

// ErrNoRecipient is the cause of a notification that has nobody to go to.
var ErrNoRecipient = errors.New("notify: no recipient")

package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// TypeNotification is the CloudEvents type of the notice authflow publishes
// when an event changed a user's methods or password (NIST SP 800-63B-4:
// notify the subscriber of every bind, unbind and recovery).
const TypeNotification = "authflow.notification.v1"

// NotifyMode says whom a notification goes to (policy notify:).
type NotifyMode string

// The notify modes.
const (
	NotifyUser           NotifyMode = "user"         // the user's own addresses
	NotifyUserAndManager NotifyMode = "user+manager" // and the user's manager
	NotifyNone           NotifyMode = "none"         // no notification
)

// Valid reports whether m is one of the modes.
func (m NotifyMode) Valid() bool {
	return m == NotifyUser || m == NotifyUserAndManager || m == NotifyNone
}

// Why a notification was sent (NotificationData.Reason).
const (
	// ReasonChanged: the event changed the user's methods, password or
	// account (an operation created, updated or deleted something).
	ReasonChanged = "changed"
	// ReasonRateLimited: an event for the user was refused because a
	// policy limit was used up; someone may be trying to take the account.
	ReasonRateLimited = "rate_limited"
)

// Notification is the CloudEvents message published on
// authflow.notifications.<key> for an event that changed a user (or was
// refused by a rate limit). It holds no secret: changes are described as
// the result describes them (phone numbers and addresses masked).
type Notification struct {
	SpecVersion     string           `json:"specversion"` // "1.0"
	ID              string           `json:"id"`          // NotificationID of the result
	Source          string           `json:"source"`      // ResultSource
	Type            string           `json:"type"`        // TypeNotification
	Subject         string           `json:"subject,omitempty"`
	Time            time.Time        `json:"time"`
	DataContentType string           `json:"datacontenttype"` // "application/json"
	TraceParent     string           `json:"traceparent,omitempty"`
	Data            NotificationData `json:"data"`
}

// NotificationData is the data of a notification.
type NotificationData struct {
	Event  EventRef `json:"event"`  // what asked for the change
	Result string   `json:"result"` // the id of the result it accompanies
	User   UserInfo `json:"user"`   // who was changed
	Reason string   `json:"reason"` // ReasonChanged or ReasonRateLimited
	Status Status   `json:"status"` // the result's status
	// Changes are the operations that created, updated or deleted
	// something, in plan order; empty for a rate-limit refusal.
	Changes []Change `json:"changes"`
	// Error is the result's error: the reason of a refusal, or why a
	// partly applied event stopped.
	Error *ErrorInfo `json:"error,omitempty"`
	// OccurredAt is when the change finished (the result's finishedAt).
	OccurredAt time.Time   `json:"occurredAt"`
	Provenance *Provenance `json:"provenance,omitempty"` // who asked: source, signer, ticket
	Notify     NotifyMode  `json:"notify"`               // user or user+manager
	// Exclude are the addresses the same event set as the user's email
	// method, as AddressDigest values: a notice must reach the user
	// through a channel the change did not just create, so they are never
	// recipients.
	Exclude []string `json:"exclude,omitempty"`
}

// Change is one operation that changed something, as the result reports
// it (Detail is masked, e.g. "mobile +1 ******0100").
type Change struct {
	Op         OpKind  `json:"op"`
	MethodKind string  `json:"methodKind,omitempty"`
	Outcome    Outcome `json:"outcome"`
	Detail     string  `json:"detail,omitempty"`
}

// NotificationID is the id of the notification that accompanies the
// result with id resultID: deterministic, so that a notification published
// again (after a crash, or on a redelivery answered from the ledger) has
// the same id, and "notification:" + id as its Nats-Msg-Id is dropped by
// the server. It differs from the result's id because both have the
// CloudEvents source "authflow".
func NotificationID(resultID string) string { return resultID + ":notify" }

// AddressDigest is how a notification names an address without showing
// it: "sha256:" and the hex SHA-256 of the address in lower case.
func AddressDigest(addr string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return "sha256:" + hex.EncodeToString(h[:])
}

// NewNotification builds the notification for event ev's result res, or
// reports false when there is none to send: mode is none (or invalid), the
// event was a dry run, or it changed nothing and was not refused by a rate
// limit, or the user was never resolved (nobody to tell). It depends only on ev and res, so the same result always gives the
// same notification (also when res is decoded from the ledger).
func NewNotification(ev *Event, res *Result, mode NotifyMode) (*Notification, bool) {
	if ev == nil || res == nil || mode == NotifyNone || !mode.Valid() || res.Data.DryRun || ReadOnly(ev.Type) ||
		res.Data.User.ObjectID == "" {
		return nil, false
	}
	d := NotificationData{
		Event:      res.Data.Event,
		Result:     res.ID,
		User:       res.Data.User,
		Status:     res.Data.Status,
		Changes:    []Change{},
		Error:      res.Data.Error,
		OccurredAt: res.Data.FinishedAt,
		Provenance: res.Data.Provenance,
		Notify:     mode,
	}
	if d.OccurredAt.IsZero() {
		d.OccurredAt = res.Time
	}
	setEmail := false
	for _, op := range res.Data.Operations {
		switch op.Outcome {
		case OutcomeCreated, OutcomeUpdated, OutcomeDeleted:
			d.Changes = append(d.Changes, Change{Op: op.Op, MethodKind: op.MethodKind, Outcome: op.Outcome, Detail: op.Detail})
			setEmail = setEmail || op.Op == OpEnsureEmail && op.Outcome != OutcomeDeleted
		}
	}
	switch {
	case len(d.Changes) > 0:
		d.Reason = ReasonChanged
	case res.Data.Error != nil && res.Data.Error.Code == CodeRateLimited:
		d.Reason = ReasonRateLimited
	default:
		return nil, false
	}
	if setEmail {
		// The plan holds the address in the clear; the notification only
		// its digest.
		if ops, err := Plan(ev); err == nil {
			for _, op := range ops {
				if op.Kind == OpEnsureEmail && op.Email != "" {
					d.Exclude = append(d.Exclude, AddressDigest(op.Email))
				}
			}
		}
	}
	return &Notification{
		SpecVersion:     SpecVersion,
		ID:              NotificationID(res.ID),
		Source:          ResultSource,
		Type:            TypeNotification,
		Subject:         res.Subject,
		Time:            res.Time.UTC(),
		DataContentType: ContentTypeJSON,
		TraceParent:     res.TraceParent,
		Data:            d,
	}, true
}

// Excluded reports whether addr is one of the addresses the notification
// must not be sent to.
func (n *Notification) Excluded(addr string) bool {
	return slices.Contains(n.Data.Exclude, AddressDigest(addr))
}

// Marshal validates the notification and encodes it as JSON.
func (n *Notification) Marshal() ([]byte, error) {
	c := *n
	if c.Data.Changes == nil {
		c.Data.Changes = []Change{}
	}
	c.Data.Error = normalizeInfo(n.Data.Error)
	if err := c.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, newError(CodeInternal, "", "marshal notification: %v", err)
	}
	return b, nil
}

// maxNotificationBytes bounds DecodeNotification's input.
const maxNotificationBytes = 64 << 10

// DecodeNotification decodes a notification as strictly as Decode decodes
// events: unknown fields, duplicate keys and invalid values are errors.
func DecodeNotification(b []byte) (*Notification, error) {
	if len(b) > maxNotificationBytes {
		return nil, newError(CodePayloadTooLarge, "", "notification is %d bytes, the limit is %d", len(b), maxNotificationBytes)
	}
	doc, err := parseJSON(b)
	if err != nil {
		return nil, err
	}
	var n Notification
	if err := bind(&doc, reflect.ValueOf(&n).Elem(), ""); err != nil {
		return nil, err
	}
	for _, path := range [][]string{{"data"}, {"data", "event"}, {"data", "user"}, {"data", "changes"}} {
		if !hasMember(&doc, path...) {
			return nil, invalid(strings.Join(path, "."), "required")
		}
	}
	if n.Data.Changes == nil {
		n.Data.Changes = []Change{}
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

var reDigest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// maxChanges bounds a notification's changes; a plan has at most a dozen
// operations.
const maxChanges = 64

func (n *Notification) validate() *Error {
	switch {
	case n.SpecVersion != SpecVersion:
		return invalid("specversion", "must be %q", SpecVersion)
	case n.Type != TypeNotification:
		return invalid("type", "must be %q", TypeNotification)
	case n.Source != ResultSource:
		return invalid("source", "must be %q", ResultSource)
	case n.DataContentType != ContentTypeJSON:
		return invalid("datacontenttype", "must be %q", ContentTypeJSON)
	case n.Time.IsZero():
		return invalid("time", "required")
	case n.ID == "":
		return invalid("id", "required")
	}
	if err := checkString("id", n.ID, reID, maxIDLen); err != nil {
		return err
	}
	if n.Subject != "" {
		if _, err := parseUser(n.Subject); err != nil {
			return err
		}
	}
	if n.TraceParent != "" && !reTraceParent.MatchString(n.TraceParent) {
		return invalid("traceparent", "must be a W3C traceparent")
	}
	d := &n.Data
	for _, f := range []struct {
		path, v string
		re      *regexp.Regexp
		max     int
	}{
		{"data.event.source", d.Event.Source, reSource, maxSourceLen},
		{"data.event.id", d.Event.ID, reID, maxIDLen},
		{"data.event.type", d.Event.Type, reTypeName, maxTypeLen},
		{"data.result", d.Result, reID, maxIDLen},
	} {
		if f.v == "" {
			return invalid(f.path, "required")
		}
		if err := checkString(f.path, f.v, f.re, f.max); err != nil {
			return err
		}
	}
	if n.ID != NotificationID(d.Result) {
		return invalid("id", "must be the result's id followed by :notify")
	}
	if d.User.ObjectID == "" || !reGUID.MatchString(d.User.ObjectID) {
		return invalid("data.user.objectId", "required: the resolved object id (GUID)")
	}
	if d.User.Ref != "" {
		if _, err := parseUser(d.User.Ref); err != nil {
			return invalid("data.user.ref", "must be an object id or a UPN")
		}
	}
	if d.User.UPN != "" {
		if u, err := parseUser(d.User.UPN); err != nil || u.UPN == "" {
			return invalid("data.user.upn", "must be a user principal name")
		}
	}
	switch d.Reason {
	case ReasonChanged:
		if len(d.Changes) == 0 {
			return invalid("data.changes", "must not be empty when the reason is changed")
		}
	case ReasonRateLimited:
		if len(d.Changes) != 0 {
			return invalid("data.changes", "must be empty when the reason is rate_limited")
		}
		if d.Error == nil || d.Error.Code != CodeRateLimited {
			return invalid("data.error", "must have code rate_limited when the reason is rate_limited")
		}
	default:
		return invalid("data.reason", "must be changed or rate_limited")
	}
	if !d.Status.Valid() {
		return invalid("data.status", "must be succeeded, failed or rejected")
	}
	if (d.Status == StatusSucceeded) != (d.Error == nil) {
		return invalid("data.error", "required when, and only when, the status is failed or rejected")
	}
	if err := checkInfo("data.error", d.Error); err != nil {
		return err
	}
	if len(d.Changes) > maxChanges {
		return invalid("data.changes", "more than %d changes", maxChanges)
	}
	for i, c := range d.Changes {
		p := "data.changes[" + itoa(i) + "]"
		switch {
		case !c.Op.Valid():
			return invalid(p+".op", "unknown operation")
		case c.Outcome != OutcomeCreated && c.Outcome != OutcomeUpdated && c.Outcome != OutcomeDeleted:
			return invalid(p+".outcome", "must be created, updated or deleted")
		case c.MethodKind != "" && !slices.Contains(MethodKinds(), c.MethodKind):
			return invalid(p+".methodKind", "unknown method kind")
		}
		if err := checkString(p+".detail", c.Detail, reText, maxDetailLen); err != nil {
			return err
		}
	}
	if d.OccurredAt.IsZero() {
		return invalid("data.occurredAt", "required")
	}
	if pv := d.Provenance; pv != nil {
		if err := checkString("data.provenance.source", pv.Source, reSource, maxSourceLen); err != nil {
			return err
		}
		for _, f := range []struct{ path, v string }{
			{"data.provenance.ticketId", pv.TicketID}, {"data.provenance.method", pv.Method}, {"data.provenance.verifiedBy", pv.VerifiedBy},
		} {
			if err := checkString(f.path, f.v, reText, maxTextLen); err != nil {
				return err
			}
		}
		if pv.Signer != "" && !nkeys.IsValidPublicUserKey(pv.Signer) {
			return invalid("data.provenance.signer", "must be an nkeys user public key")
		}
	}
	if d.Notify != NotifyUser && d.Notify != NotifyUserAndManager {
		return invalid("data.notify", "must be user or user+manager")
	}
	if len(d.Exclude) > maxChanges {
		return invalid("data.exclude", "more than %d addresses", maxChanges)
	}
	for i, x := range d.Exclude {
		if !reDigest.MatchString(x) {
			return invalid("data.exclude["+itoa(i)+"]", "must be sha256: followed by 64 lower-case hex digits")
		}
	}
	return nil
}

package events

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// Result envelope constants.
const (
	// ContentTypeCloudEvents is the Content-Type header of a result message:
	// a CloudEvent in structured mode.
	ContentTypeCloudEvents = "application/cloudevents+json"

	TypeResult   = "authflow.result.v1" // the CloudEvents type of results
	ResultSource = "authflow"           // the CloudEvents source of results
)

// Status is how an event ended.
type Status string

// The statuses.
const (
	StatusSucceeded Status = "succeeded" // every operation ended created, updated, deleted, unchanged or skipped
	StatusFailed    Status = "failed"    // an operation failed, or the user was not found
	StatusRejected  Status = "rejected"  // refused before any write: bad input, signature, replay, policy
	// StatusScheduled is interim: the event has data.effectiveAt in the
	// future; it was checked and accepted and will be applied then, with
	// its final result under the event's own result id.
	StatusScheduled Status = "scheduled"
	// StatusCancelled is final: a future-dated event cancelled by
	// authflow.schedule.cancel.v1 before its time; nothing was written.
	StatusCancelled Status = "cancelled"
	// StatusPendingApproval is interim: the event is parked until an
	// approver decides it or its approval rule's timeout ends it; its final
	// result follows (approval.go).
	StatusPendingApproval Status = "pending_approval"
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusRejected || s == StatusScheduled || s == StatusCancelled || s == StatusPendingApproval
}

// Final reports whether s ends its event (every status but the interim
// ones, scheduled and pending_approval).
func (s Status) Final() bool { return s.Valid() && s != StatusScheduled && s != StatusPendingApproval }

// InterimResultID is the id of an interim result (status scheduled or
// pending_approval) of an event: EventKey(source, id) + ":" + the status,
// so it never takes the place of the event's final result.
func InterimResultID(source, id string, s Status) string {
	return EventKey(source, id) + ":" + string(s)
}

// Outcome is how one operation ended. In a dry run it is what the
// operation would have done, and nothing was written.
type Outcome string

// The outcomes.
const (
	OutcomeCreated   Outcome = "created"   // a method was added (or a TAP issued, a password set)
	OutcomeUpdated   Outcome = "updated"   // a method or the account was changed
	OutcomeDeleted   Outcome = "deleted"   // one or more methods were removed
	OutcomeUnchanged Outcome = "unchanged" // the desired state already held
	OutcomeSkipped   Outcome = "skipped"   // nothing to act on (e.g. SMS sign-in without a mobile phone)
	OutcomeFailed    Outcome = "failed"    // the operation failed; see its error
)

// Valid reports whether o is one of the outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeCreated, OutcomeUpdated, OutcomeDeleted, OutcomeUnchanged, OutcomeSkipped, OutcomeFailed:
		return true
	}
	return false
}

// Result is the CloudEvents message published for every event.
type Result struct {
	SpecVersion     string     `json:"specversion"`       // "1.0"
	ID              string     `json:"id"`                // unique per result: see ResultID
	Source          string     `json:"source"`            // ResultSource
	Type            string     `json:"type"`              // TypeResult
	Subject         string     `json:"subject,omitempty"` // the event's subject, when it was valid
	Time            time.Time  `json:"time"`
	DataContentType string     `json:"datacontenttype"` // "application/json"
	TraceParent     string     `json:"traceparent,omitempty"`
	Data            ResultData `json:"data"`
}

// EventRef names an event. Fields an undecodable event did not yield
// (see PeekIdentity) are empty.
type EventRef struct {
	Source string `json:"source,omitempty"`
	ID     string `json:"id,omitempty"`
	Type   string `json:"type,omitempty"`
}

// UserInfo names the user an event was for.
type UserInfo struct {
	Ref      string `json:"ref,omitempty"`      // the subject as sent (object id or UPN)
	ObjectID string `json:"objectId,omitempty"` // the resolved object id, once known
	UPN      string `json:"upn,omitempty"`      // the resolved user principal name, once known
}

// Names reports whether name (an object id or a UPN, any case) is one of
// the names the result knows the user by: so a user's results are found
// by either name, whichever the publisher used.
func (u UserInfo) Names(name string) bool {
	for _, n := range []string{u.Ref, u.ObjectID, u.UPN} {
		if n != "" && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// ResultData is the data of a result.
type ResultData struct {
	Event      EventRef    `json:"event"`
	User       UserInfo    `json:"user"`
	Status     Status      `json:"status"`
	DryRun     bool        `json:"dryRun,omitempty"`
	Operations []OpResult  `json:"operations"`           // in plan order; empty when rejected
	Error      *ErrorInfo  `json:"error,omitempty"`      // why the event failed or was rejected
	Provenance *Provenance `json:"provenance,omitempty"` // who asked, as the event says
	Redrive    *Redrive    `json:"redrive,omitempty"`    // set when an operator re-drove the event
	// Approval is set on the results of an event an approval rule parked:
	// the pending one and the final one (approval.go).
	Approval *ResultApproval `json:"approval,omitempty"`
	// Extensions are the event's CloudEvents extension attributes
	// (Event.Extensions), copied so a receiver can correlate the result
	// with what it sent; absent when the event had none or did not decode.
	Extensions Extensions `json:"extensions,omitempty"`
	// Attempts counts the attempts that ran the plan: 0 when the event was
	// rejected before running it.
	Attempts int `json:"attempts"`
	// ReceivedAt is when a worker first received the event (any delivery);
	// StartedAt when the first attempt began running its plan (absent when
	// none did); FinishedAt when this result was made.
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	DurationMs int64     `json:"durationMs"` // FinishedAt - ReceivedAt
}

// Provenance is who asked for an event, for the audit trail: the source,
// the key that signed it (when signed), and the helpdesk's verification
// evidence. Never a secret.
type Provenance struct {
	Source     string `json:"source"`
	Signer     string `json:"signer,omitempty"`     // nkeys public key (U...) that signed the event
	TicketID   string `json:"ticketId,omitempty"`   // data.verification.ticketId
	Method     string `json:"method,omitempty"`     // data.verification.method
	VerifiedBy string `json:"verifiedBy,omitempty"` // data.verification.verifiedBy
}

// Redrive records an operator's re-drive of a failed event
// (authflow dlq replay): the how-manyth, who and when.
type Redrive struct {
	Count       int       `json:"count"`
	By          string    `json:"by"`
	At          time.Time `json:"at"`
	DLQSequence int64     `json:"dlqSequence,omitempty"`
}

// ResultID is the id of a result, and after "result:" its Nats-Msg-Id, so
// that a result published twice is dropped by the server:
//   - EventKey(source, id) for the result of an event that was accepted
//     (authenticated and allowed, so it owns its source and id);
//   - EventKey(source, id) + ":" + the first 16 hex digits of the SHA-256 of
//     the bytes, for a rejection before acceptance (undecodable, bad
//     signature, policy, freshness, a re-used id): the same bytes get the
//     same rejection, and a forged or broken copy can never take the place
//     of the genuine event's result;
//   - EventKey(source, id) + ":redrive-N" for the result of the N-th re-drive;
//   - EventKey(source, id) + ":pending_approval" for the interim result of
//     an event parked for approval (PendingResultID, InterimResultID); its
//     final result has the key.
func ResultID(source, id string, rejectedBody []byte, redrive int) string {
	k := EventKey(source, id)
	switch {
	case rejectedBody != nil:
		h := sha256.Sum256(rejectedBody)
		return k + ":" + hex.EncodeToString(h[:8])
	case redrive > 0:
		return k + ":redrive-" + strconv.Itoa(redrive)
	}
	return k
}

// OpResult is the outcome of one operation.
type OpResult struct {
	Op         OpKind  `json:"op"`
	MethodKind string  `json:"methodKind,omitempty"`
	MethodID   string  `json:"methodId,omitempty"` // the Graph method id written or removed
	Outcome    Outcome `json:"outcome"`
	// Detail is a short human note. It never holds a secret or a full
	// phone number or address: use MaskPhone and MaskEmail.
	Detail  string          `json:"detail,omitempty"`
	Error   *ErrorInfo      `json:"error,omitempty"`
	Secret  *Sealed         `json:"secret,omitempty"`  // issueTap, issueQrCodePin, resetPassword, passkeyOptions
	Methods []MethodSummary `json:"methods,omitempty"` // readMethods
}

// MethodSummary describes one registered method in an inventory.
type MethodSummary struct {
	Kind        string    `json:"kind"`
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName,omitempty"`
	Detail      string    `json:"detail,omitempty"` // e.g. "mobile +1 ******0100"; masked like OpResult.Detail
	CreatedAt   time.Time `json:"createdDateTime,omitzero"`
	// Default marks the user's default MFA method, when known (the worker
	// reads it only with --graph-beta default-method).
	Default bool `json:"default,omitempty"`
}

// MethodKinds returns every Graph method kind.
func MethodKinds() []string {
	return []string{KindPhone, KindEmail, KindFIDO2, KindAuthenticator, KindWindowsHello,
		KindSoftwareOATH, KindTAP, KindPassword, KindPlatformCredential, KindExternal, KindQRCodePin}
}

// NewResult wraps data in a result envelope. id should be ResultID's, so
// that a result published twice carries the same id (use "result:" + id as
// its Nats-Msg-Id). subject is the event's subject when it was valid, else
// "". DurationMs is set from ReceivedAt and FinishedAt when both are.
func NewResult(id, subject string, data ResultData, now time.Time) *Result {
	if data.Operations == nil {
		data.Operations = []OpResult{}
	}
	if !data.ReceivedAt.IsZero() && data.FinishedAt.After(data.ReceivedAt) {
		data.DurationMs = data.FinishedAt.Sub(data.ReceivedAt).Milliseconds()
	}
	return &Result{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          ResultSource,
		Type:            TypeResult,
		Subject:         subject,
		Time:            now.UTC(),
		DataContentType: ContentTypeJSON,
		Data:            data,
	}
}

// Marshal validates the result and encodes it as JSON. It normalises what
// it can without changing the meaning, in the encoded copy only: every
// ErrorInfo's Permanent is set from its code (Code.Permanent), an empty
// message becomes the code, a message longer than 512 characters is cut,
// and nil Operations become []. Anything else invalid is an error.
func (r *Result) Marshal() ([]byte, error) {
	c := *r
	c.Data.Error = normalizeInfo(r.Data.Error)
	c.Data.Operations = make([]OpResult, len(r.Data.Operations))
	for i, op := range r.Data.Operations {
		op.Error = normalizeInfo(op.Error)
		c.Data.Operations[i] = op
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, newError(CodeInternal, "", "marshal result: %v", err)
	}
	return b, nil
}

// maxResultBytes bounds DecodeResult's input; an inventory of many methods
// is the largest result.
const maxResultBytes = 1 << 20

// DecodeResult decodes a result as strictly as Decode decodes events.
func DecodeResult(b []byte) (*Result, error) {
	if len(b) > maxResultBytes {
		return nil, newError(CodePayloadTooLarge, "", "result is %d bytes, the limit is %d", len(b), maxResultBytes)
	}
	doc, err := parseJSON(b)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := bind(&doc, reflect.ValueOf(&r).Elem(), ""); err != nil {
		return nil, err
	}
	// Fields whose zero value is valid must still be present, as the
	// schema requires them.
	for _, path := range [][]string{{"data"}, {"data", "event"}, {"data", "user"}, {"data", "operations"}, {"data", "attempts"}, {"data", "durationMs"}} {
		if !hasMember(&doc, path...) {
			return nil, invalid(strings.Join(path, "."), "required")
		}
	}
	if r.Data.Operations == nil {
		r.Data.Operations = []OpResult{}
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func hasMember(v *value, path ...string) bool {
	for _, key := range path {
		found := false
		for i := range v.members {
			if v.members[i].key == key {
				v, found = &v.members[i].val, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

const (
	maxDetailLen     = 256
	maxCiphertextLen = 24 << 10 // sealed passkey options (16 KiB) in base64
)

func (r *Result) validate() *Error {
	switch {
	case r.SpecVersion != SpecVersion:
		return invalid("specversion", "must be %q", SpecVersion)
	case r.Type != TypeResult:
		return invalid("type", "must be %q", TypeResult)
	case r.DataContentType != ContentTypeJSON:
		return invalid("datacontenttype", "must be %q", ContentTypeJSON)
	case r.Time.IsZero():
		return invalid("time", "required")
	}
	if r.ID == "" {
		return invalid("id", "required")
	}
	if err := checkString("id", r.ID, reID, maxIDLen); err != nil {
		return err
	}
	if r.Source == "" {
		return invalid("source", "required")
	}
	if err := checkString("source", r.Source, reSource, maxSourceLen); err != nil {
		return err
	}
	if r.Subject != "" {
		if _, err := parseUser(r.Subject); err != nil {
			return err
		}
	}
	if r.TraceParent != "" && !reTraceParent.MatchString(r.TraceParent) {
		return invalid("traceparent", "must be a W3C traceparent")
	}
	d := &r.Data
	ev := d.Event
	if err := checkString("data.event.source", ev.Source, reSource, maxSourceLen); err != nil {
		return err
	}
	if err := checkString("data.event.id", ev.ID, reID, maxIDLen); err != nil {
		return err
	}
	if err := checkString("data.event.type", ev.Type, reTypeName, maxTypeLen); err != nil {
		return err
	}
	if d.User.Ref != "" {
		if _, err := parseUser(d.User.Ref); err != nil {
			return invalid("data.user.ref", "must be an object id or a UPN")
		}
	}
	if d.User.ObjectID != "" && !reGUID.MatchString(d.User.ObjectID) {
		return invalid("data.user.objectId", "must be an object id (GUID)")
	}
	if d.User.UPN != "" {
		if u, err := parseUser(d.User.UPN); err != nil || u.UPN == "" {
			return invalid("data.user.upn", "must be a user principal name")
		}
	}
	if !d.Status.Valid() {
		return invalid("data.status", "must be succeeded, failed, rejected, scheduled or pending_approval")
	}
	if (d.Status == StatusFailed || d.Status == StatusRejected) != (d.Error != nil) {
		return invalid("data.error", "required when, and only when, the status is failed or rejected")
	}
	if err := d.validateApproval(r.ID); err != nil {
		return err
	}
	if err := checkInfo("data.error", d.Error); err != nil {
		return err
	}
	if d.Attempts < 0 {
		return invalid("data.attempts", "must not be negative")
	}
	if d.DurationMs < 0 {
		return invalid("data.durationMs", "must not be negative")
	}
	if pv := d.Provenance; pv != nil {
		if err := checkString("data.provenance.source", pv.Source, reSource, maxSourceLen); err != nil {
			return err
		}
		if pv.Signer != "" && !nkeys.IsValidPublicUserKey(pv.Signer) {
			return invalid("data.provenance.signer", "must be an nkeys user public key")
		}
		for _, f := range []struct{ path, v string }{
			{"data.provenance.ticketId", pv.TicketID}, {"data.provenance.method", pv.Method}, {"data.provenance.verifiedBy", pv.VerifiedBy},
		} {
			if err := checkString(f.path, f.v, reText, maxTextLen); err != nil {
				return err
			}
		}
	}
	if rd := d.Redrive; rd != nil {
		if rd.Count < 1 {
			return invalid("data.redrive.count", "must be at least 1")
		}
		if rd.By == "" {
			return invalid("data.redrive.by", "required")
		}
		if err := checkString("data.redrive.by", rd.By, reText, maxTextLen); err != nil {
			return err
		}
		if rd.At.IsZero() {
			return invalid("data.redrive.at", "required")
		}
	}
	if err := d.Extensions.validate("data.extensions"); err != nil {
		return err
	}
	for i := range d.Operations {
		if err := d.Operations[i].validate("data.operations[" + itoa(i) + "]"); err != nil {
			return err
		}
	}
	return nil
}

func (o *OpResult) validate(path string) *Error {
	if !o.Op.Valid() {
		return invalid(path+".op", "unknown operation")
	}
	if !o.Outcome.Valid() {
		return invalid(path+".outcome", "unknown outcome")
	}
	if o.MethodKind != "" && !slices.Contains(MethodKinds(), o.MethodKind) {
		return invalid(path+".methodKind", "unknown method kind")
	}
	if err := checkString(path+".methodId", o.MethodID, reMethodID, maxMethodIDLen); err != nil {
		return err
	}
	if err := checkString(path+".detail", o.Detail, reText, maxDetailLen); err != nil {
		return err
	}
	if (o.Outcome == OutcomeFailed) != (o.Error != nil) {
		return invalid(path+".error", "required when, and only when, the outcome is failed")
	}
	if err := checkInfo(path+".error", o.Error); err != nil {
		return err
	}
	if s := o.Secret; s != nil {
		sp := path + ".secret"
		switch {
		case !slices.Contains(SecretKinds(), s.Kind):
			return invalid(sp+".kind", "must be one of %s", strings.Join(SecretKinds(), ", "))
		case !reXKey.MatchString(s.Recipient) || !nkeys.IsValidPublicCurveKey(s.Recipient):
			return invalid(sp+".recipient", "must be an nkeys curve public key")
		case !reXKey.MatchString(s.Sender) || !nkeys.IsValidPublicCurveKey(s.Sender):
			return invalid(sp+".sender", "must be an nkeys curve public key")
		}
		if !reBase64.MatchString(s.Ciphertext) || s.Ciphertext == "" || len(s.Ciphertext) > maxCiphertextLen {
			return invalid(sp+".ciphertext", "must be standard base64")
		}
		if _, err := base64.StdEncoding.DecodeString(s.Ciphertext); err != nil {
			return invalid(sp+".ciphertext", "must be standard base64")
		}
	}
	for j := range o.Methods {
		m := &o.Methods[j]
		mp := path + ".methods[" + itoa(j) + "]"
		if !slices.Contains(MethodKinds(), m.Kind) {
			return invalid(mp+".kind", "unknown method kind")
		}
		if m.ID == "" {
			return invalid(mp+".id", "required")
		}
		if err := checkString(mp+".id", m.ID, reMethodID, maxMethodIDLen); err != nil {
			return err
		}
		if err := checkString(mp+".displayName", m.DisplayName, reText, maxTextLen); err != nil {
			return err
		}
		if err := checkString(mp+".detail", m.Detail, reText, maxDetailLen); err != nil {
			return err
		}
	}
	return nil
}

func normalizeInfo(e *ErrorInfo) *ErrorInfo {
	if e == nil {
		return nil
	}
	n := *e
	n.Permanent = n.Code.Permanent()
	if n.Message == "" {
		n.Message = string(n.Code)
	}
	if utf8.RuneCountInString(n.Message) > maxMessageLen {
		n.Message = string([]rune(n.Message)[:maxMessageLen])
	}
	return &n
}

func checkInfo(path string, e *ErrorInfo) *Error {
	if e == nil {
		return nil
	}
	if !e.Code.Valid() {
		return invalid(path+".code", "unknown error code")
	}
	if e.Message == "" {
		return invalid(path+".message", "required")
	}
	if utf8.RuneCountInString(e.Message) > maxMessageLen {
		return invalid(path+".message", "longer than %d characters", maxMessageLen)
	}
	if e.Permanent != e.Code.Permanent() {
		return invalid(path+".permanent", "must be %t for code %s", e.Code.Permanent(), e.Code)
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

package events

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies why an event was not (fully) applied. The list is closed:
// results carry only these codes, and docs/events.md documents each one.
type Code string

// The codes. Permanent reports, for each, whether processing the same event
// again could give a different answer.
const (
	// CodeInvalidEvent: the bytes are not a valid event (syntax, UTF-8,
	// duplicate keys, unknown or missing fields, bad values).
	CodeInvalidEvent Code = "invalid_event"
	// CodePayloadTooLarge: the message is larger than the decoder's limit.
	CodePayloadTooLarge Code = "payload_too_large"
	// CodeUnknownType: the type (or its version) is not in the catalogue.
	CodeUnknownType Code = "unknown_type"
	// CodeBadSignature: a signature is required but missing, or present
	// but wrong, tampered, malformed or made by a key not pinned for the source.
	CodeBadSignature Code = "bad_signature"
	// CodeExpired: the event's time is older than the policy's maximum age.
	CodeExpired Code = "expired"
	// CodeFutureEvent: the event's time is further in the future than the
	// policy's clock-skew allowance.
	CodeFutureEvent Code = "future_event"
	// CodeReplayed: the same source and id were seen with a different body.
	CodeReplayed Code = "replayed"
	// CodePolicyDenied: the policy does not let this source send this
	// event (unknown source, type not allowed, TAP outside the bounds,
	// missing verification evidence).
	CodePolicyDenied Code = "policy_denied"
	// CodeProtectedUser: the target is a protected user and the source may
	// not act on protected users with this event type.
	CodeProtectedUser Code = "protected_user"
	// CodeGuestUser: the target is a guest (B2B) account and the event asks
	// for something Graph does not offer guests (a Temporary Access Pass):
	// refused before any write.
	CodeGuestUser Code = "guest_user"
	// CodeRateLimited: a policy limit (limits:) on events per user,
	// requester, signer key or source within a window is used up. Nothing
	// was written; a new event after the window may succeed.
	CodeRateLimited Code = "rate_limited"
	// CodeApprovalDenied: the event was parked for four-eyes approval and
	// an approver denied it. Nothing was written.
	CodeApprovalDenied Code = "approval_denied"
	// CodeApprovalTimeout: the event was parked for four-eyes approval and
	// nobody decided it within its rule's timeout. Nothing was written.
	CodeApprovalTimeout Code = "approval_timeout"
	// CodeApprovalInvalid: an approval (grant or deny) that cannot decide
	// the event it names: an unknown key, a key not allowed for the rule,
	// self-approval, no such parked event, or one already decided or
	// finished. It changes nothing.
	CodeApprovalInvalid Code = "approval_invalid"
	// CodeUserNotFound: the subject names no user in the directory.
	CodeUserNotFound Code = "user_not_found"
	// CodeGraphPermanent: Graph refused an operation for a reason that a
	// retry will not change (4xx validation errors, conflicts).
	CodeGraphPermanent Code = "graph_permanent"
	// CodeGraphPermission: Graph answered 401/403: the worker lacks a
	// permission or role for this operation or this user.
	CodeGraphPermission Code = "graph_permission_denied"
	// CodeMFARequired: Graph answered a credential-management call with a
	// claims challenge (403) asking the caller for a recent MFA; an
	// application (app-only) caller does not get it, a delegated one must
	// satisfy it. Retrying does not help.
	CodeMFARequired Code = "graph_mfa_required"
	// CodeSealFailed: a secret Graph returned could not be sealed to the
	// requester's key, so it was discarded (and the TAP removed).
	CodeSealFailed Code = "seal_failed"
	// CodeRetriesExhausted: transient failures (throttling, 5xx, network)
	// outlasted the retry budget.
	CodeRetriesExhausted Code = "retries_exhausted"
	// CodeInternal: a defect or an infrastructure failure in authflow itself.
	CodeInternal Code = "internal"
)

// Codes returns every code, in documentation order.
func Codes() []Code {
	return []Code{
		CodeInvalidEvent, CodePayloadTooLarge, CodeUnknownType, CodeBadSignature,
		CodeExpired, CodeFutureEvent, CodeReplayed, CodePolicyDenied,
		CodeProtectedUser, CodeGuestUser, CodeRateLimited, CodeApprovalDenied, CodeApprovalTimeout, CodeApprovalInvalid,
		CodeUserNotFound, CodeGraphPermanent, CodeGraphPermission, CodeMFARequired, CodeSealFailed, CodeRetriesExhausted, CodeInternal,
	}
}

// Valid reports whether c is one of the codes.
func (c Code) Valid() bool {
	switch c {
	case CodeInvalidEvent, CodePayloadTooLarge, CodeUnknownType, CodeBadSignature,
		CodeExpired, CodeFutureEvent, CodeReplayed, CodePolicyDenied,
		CodeProtectedUser, CodeGuestUser, CodeRateLimited, CodeApprovalDenied, CodeApprovalTimeout, CodeApprovalInvalid,
		CodeUserNotFound, CodeGraphPermanent, CodeGraphPermission, CodeMFARequired, CodeSealFailed, CodeRetriesExhausted, CodeInternal:
		return true
	}
	return false
}

// Permanent reports whether processing the same event again would fail the
// same way. Only retries_exhausted (the causes were transient), internal
// and seal_failed (a defect or an outage of ours) and rate_limited (the
// window moves on) are not permanent: a later redelivery, republish or new
// event may succeed. An unknown code is reported as not permanent.
func (c Code) Permanent() bool {
	switch c {
	case CodeRetriesExhausted, CodeInternal, CodeSealFailed, CodeRateLimited:
		return false
	}
	return c.Valid()
}

// Status is the result status an event ends with when it stops at this
// code: rejected for codes found before any Graph write (bad input,
// authenticity, policy, approval), failed for the others.
func (c Code) Status() Status {
	switch c {
	case CodeInvalidEvent, CodePayloadTooLarge, CodeUnknownType, CodeBadSignature,
		CodeExpired, CodeFutureEvent, CodeReplayed, CodePolicyDenied, CodeProtectedUser, CodeGuestUser,
		CodeRateLimited, CodeApprovalDenied, CodeApprovalTimeout, CodeApprovalInvalid:
		return StatusRejected
	}
	return StatusFailed
}

// Error is the one error type of this package: a code, the JSON path of the
// field at fault when there is one ("data.mobilePhone", "subject"), and a
// message. Messages never echo secrets or phone numbers; they quote at most
// a short, escaped prefix of an offending type or key.
type Error struct {
	Code    Code
	Field   string // JSON path such as "data.tap.lifetimeInMinutes"; "" when not about one field
	Message string
	// Line and Column locate JSON syntax errors (1-based, in bytes); 0 when unknown.
	Line, Column int

	rule rule // which check failed; see schemaBlind
}

// rule names the check behind an error when it is one that JSON Schema
// cannot express; the schema test uses it to tell an expected disagreement
// between decoder and schema from a defect.
type rule uint8

const (
	ruleOther     rule = iota
	ruleSize           // payload larger than the decoder's limit
	ruleEncoding       // invalid UTF-8 or an unpaired UTF-16 surrogate escape
	ruleDuplicate      // duplicate object key
	rulePhone          // number fails libphonenumber's validation
	ruleKey            // nkeys checksum or key type
	ruleConfig         // decoder misconfiguration
	ruleCount          // more extension attributes than allowed
	ruleMediaType      // a media type's parameters (charset other than utf-8, repeated)
	rulePasskey        // what a passkey credential's base64url values decode to
)

// schemaBlind reports whether the error comes from a check that the JSON
// Schemas cannot express, so a schema validator may accept the input.
func (e *Error) schemaBlind() bool { return e.rule != ruleOther }

// Error renders "code: field: message (line L, column C)", leaving out
// the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	}
	return b.String()
}

// Is makes errors.Is(err, &Error{Code: c}) true for any *Error with code c,
// whatever its field and message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Field == "" && t.Message == "" && t.Code == e.Code
}

// CodeOf returns the code of the first *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorInfo is the error as a result carries it.
type ErrorInfo struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	Permanent bool   `json:"permanent"`
}

// maxMessageLen bounds the messages results carry.
const maxMessageLen = 512

// InfoOf converts err for a result: an *Error keeps its code; any other
// error becomes internal. It returns nil for a nil error. The message is
// err.Error(), cut to 512 bytes: callers must not pass errors whose text
// carries a secret.
func InfoOf(err error) *ErrorInfo {
	if err == nil {
		return nil
	}
	code := CodeOf(err)
	if code == "" {
		code = CodeInternal
	}
	msg := err.Error()
	if e, ok := err.(*Error); ok {
		msg = strings.TrimPrefix(msg, string(e.Code)+": ") // the code has its own field
	}
	return &ErrorInfo{Code: code, Message: truncate(msg, maxMessageLen), Permanent: code.Permanent()}
}

func newError(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	return newError(CodeInvalidEvent, field, format, args...)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// quote returns a short, escaped rendering of an untrusted string for an
// error message: at most 64 bytes of it, %q-quoted so that control, bidi
// and other non-printable characters are shown as escapes.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", truncate(s, 64))
	}
	return fmt.Sprintf("%q", s)
}

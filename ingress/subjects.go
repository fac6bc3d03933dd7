package ingress

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/authflow/authflow/events"
)

// The JetStream names and headers the ingress shares with the worker
// (worker/streams.go). They are copies, not imports: package worker pulls
// in the Graph SDK, which the ingress must not link. TestIngressNamesMatchWorker
// in cmd/authflow checks that they equal worker's.
const (
	EventsStream  = "AUTHFLOW_EVENTS"
	ResultsStream = "AUTHFLOW_RESULTS"
	DLQStream     = "AUTHFLOW_DLQ"

	EventsSubjectPrefix  = "authflow.events."
	ResultsSubjectPrefix = "authflow.results."
	DLQSubjectPrefix     = "authflow.dlq."

	HeaderEventSource = "Authflow-Event-Source"
	HeaderEventID     = "Authflow-Event-Id"
	HeaderStatus      = "Authflow-Status"
	HeaderDLQReason   = "Authflow-Dlq-Reason"
	HeaderDLQMessage  = "Authflow-Dlq-Message"
	HeaderDLQAttempts = "Authflow-Dlq-Attempts"
	HeaderDLQSubject  = "Authflow-Dlq-Subject"
	HeaderDLQSequence = "Authflow-Dlq-Sequence"
)

// UserKey is the subject token of a user's events, the same rule as
// `authflow send` (userKey in cmd/authflow/send.go; TestIngressUserKeyMatchesSend
// checks that they agree): an object id as is, lower case; a UPN as "upn-"
// and 32 hex digits of the SHA-256 of the lower-cased UPN.
func UserKey(u events.UserRef) string {
	if u.ObjectID != "" {
		return u.ObjectID
	}
	h := sha256.Sum256([]byte(strings.ToLower(u.UPN)))
	return "upn-" + hex.EncodeToString(h[:16])
}

package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
)

// Source is the CloudEvents source of every corrective event. The policy
// decides what it may do, like for any source.
const Source = "authflow/reconcile"

// Correction is one corrective event for one user.
type Correction struct {
	Line int
	// User is the event's subject: the user as written in the file.
	User string
	Type string
	// Data is the event's data object.
	Data json.RawMessage
}

func leftCorrection(row *Row) Correction {
	// The defaults: disable the account, revoke sessions, remove every
	// method.
	return Correction{Line: row.Line, User: row.User, Type: events.TypeEmployeeLeft, Data: json.RawMessage(`{}`)}
}

func setCorrection(row *Row, f Field, value string) Correction {
	var data any
	typ := events.TypePhoneSet
	if f == FieldEmail {
		typ = events.TypeEmailSet
		data = struct {
			EmailAddress string `json:"emailAddress"`
		}{value}
	} else {
		data = struct {
			PhoneType   string `json:"phoneType"`
			PhoneNumber string `json:"phoneNumber"`
		}{phoneType(f), value}
	}
	b, _ := json.Marshal(data) // two strings
	return Correction{Line: row.Line, User: row.User, Type: typ, Data: b}
}

// ID is the event id of the correction on day (YYYY-MM-DD, UTC): the same
// user, type and data on the same day give the same id, so the pipeline
// treats a second publication as a duplicate of the first.
func (c Correction) ID(day string) string {
	h := sha256.New()
	for _, s := range []string{day, strings.ToLower(c.User), c.Type, string(c.Data)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "reconcile-" + day + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// Day is the run date an id is derived from.
func Day(now time.Time) string { return now.UTC().Format(time.DateOnly) }

// Message is a signed corrective event, ready to publish.
type Message struct {
	// User is the event subject (the user as written), from which the
	// publisher derives the subject key as for any event.
	User string
	ID   string
	Type string
	// Event is the CloudEvents JSON; Signature and Signer go in the
	// events.HeaderSignature and events.HeaderSigner headers.
	Event             []byte
	Signature, Signer string
}

// Build returns the signed event of the correction at now. It validates
// the event as the worker will (dec) and signs it with signer.
func (c Correction) Build(dec events.Decoder, signer nkeys.KeyPair, now time.Time) (Message, error) {
	id := c.ID(Day(now))
	raw, err := events.MarshalEvent(id, Source, c.Type, c.User, now, c.Data)
	if err != nil {
		return Message{}, err
	}
	if _, err := dec.Decode(raw); err != nil {
		return Message{}, fmt.Errorf("correction %s for %s: %w", c.Type, c.User, err)
	}
	sig, pub, err := events.Sign(raw, signer)
	if err != nil {
		return Message{}, fmt.Errorf("sign correction: %w", err)
	}
	return Message{User: c.User, ID: id, Type: c.Type, Event: raw, Signature: sig, Signer: pub}, nil
}

// Publisher publishes a corrective event through the pipeline. duplicate
// reports that the stream already had the event (same source and id).
type Publisher interface {
	Publish(ctx context.Context, m Message) (duplicate bool, err error)
}

// Applied is what Apply did.
type Applied struct {
	Published  int         `json:"published"`
	Duplicates int         `json:"duplicates"` // already in the stream: published earlier today
	Failed     []UserError `json:"failed"`
}

// Apply builds, signs and publishes the corrections in order, one at a
// time (a user's corrections must reach the stream in order). A correction
// that cannot be built or published is in Applied.Failed; Apply stops
// early only when ctx ends.
func Apply(ctx context.Context, cs []Correction, pub Publisher, dec events.Decoder, signer nkeys.KeyPair, now time.Time) (Applied, error) {
	a := Applied{Failed: []UserError{}}
	for _, c := range cs {
		if err := ctx.Err(); err != nil {
			return a, fmt.Errorf("apply: %w", err)
		}
		m, err := c.Build(dec, signer, now)
		if err == nil {
			var dup bool
			dup, err = pub.Publish(ctx, m)
			if err == nil && dup {
				a.Duplicates++
				continue
			}
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				if ctx.Err() != nil {
					return a, fmt.Errorf("apply: %w", ctx.Err())
				}
			}
			a.Failed = append(a.Failed, UserError{Line: c.Line, User: c.User, Error: err.Error()})
			continue
		}
		a.Published++
	}
	return a, nil
}

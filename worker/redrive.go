package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// ErrNotRedrivable is returned by Redrive for a dead letter that cannot be
// run again; the message says why.
var ErrNotRedrivable = errors.New("not re-drivable")

// RedriveInfo describes a re-drive Redrive started.
type RedriveInfo struct {
	Source, ID string
	Count      int    // the how-manyth re-drive of this event
	Subject    string // where the original bytes were published
	Again      bool   // this re-drive had been recorded already; only the publish was repeated
}

// Redrive runs a failed event again once its cause is fixed (authflow dlq
// replay): it reads dead letter dlqSeq, checks in the ledger that the event
// ended failed with exactly these bytes, records the re-drive there (who,
// when, the how-manyth) by compare-and-set, and publishes the original bytes
// and headers (signature intact) to the event's subject. The worker that
// receives them claims the event as a new attempt and publishes a new
// result, marked as a re-drive, under its own id (events.ResultID).
//
// Only failures can be re-driven: a rejected event would be rejected again,
// and its sender must send a corrected event instead. Writing the ledger
// needs the permissions of an operator or a worker, never a publisher's, so
// a publisher cannot re-drive anything.
func Redrive(ctx context.Context, js jetstream.JetStream, dlqSeq uint64, by string) (RedriveInfo, error) {
	var info RedriveInfo
	if strings.TrimSpace(by) == "" {
		return info, errors.New("redrive: name who re-drives (by)")
	}
	s, err := js.Stream(ctx, DLQStream)
	if err != nil {
		return info, fmt.Errorf("redrive: stream %s: %w", DLQStream, err)
	}
	m, err := s.GetMsg(ctx, dlqSeq)
	if err != nil {
		return info, fmt.Errorf("redrive: dead letter %d: %w", dlqSeq, err)
	}
	key := strings.TrimPrefix(m.Subject, DLQSubjectPrefix)
	if key == m.Subject || !ValidKey(key) {
		return info, fmt.Errorf("redrive: dead letter %d has subject %q, not %s<key>", dlqSeq, m.Subject, DLQSubjectPrefix)
	}
	reason := events.Code(m.Header.Get(HeaderDLQReason))
	if !deadLettered(reason) {
		return info, fmt.Errorf("redrive: dead letter %d: %w: it was %s (%s), not a failure; send a corrected event instead",
			dlqSeq, ErrNotRedrivable, orUnknown(string(reason)), reason.Status())
	}
	if m.Header.Get(HeaderDLQTruncated) != "" {
		return info, fmt.Errorf("redrive: dead letter %d: %w: its copy was cut to fit the DLQ", dlqSeq, ErrNotRedrivable)
	}
	src, id, _ := events.PeekIdentity(m.Data)
	if src == "" || id == "" {
		return info, fmt.Errorf("redrive: dead letter %d: %w: its source and id cannot be read", dlqSeq, ErrNotRedrivable)
	}
	info.Source, info.ID, info.Subject = src, id, EventSubject(key)

	kv, err := js.KeyValue(ctx, LedgerBucket)
	if err != nil {
		return info, fmt.Errorf("redrive: ledger: %w", err)
	}
	l := ledger{kv: kv, timeout: DefaultNATSTimeout, tries: 3}
	lkey := ledgerKey(src, id)
	rec, rev, err := l.get(ctx, lkey)
	switch {
	case err != nil:
		return info, fmt.Errorf("redrive: %w", err)
	case rec == nil:
		return info, fmt.Errorf("redrive: dead letter %d: %w: the ledger no longer knows the event (older than the ledger TTL)", dlqSeq, ErrNotRedrivable)
	case rec.BodyHash != bodyHash(m.Data):
		return info, fmt.Errorf("redrive: dead letter %d: %w: its bytes differ from the event the ledger recorded", dlqSeq, ErrNotRedrivable)
	}
	switch rec.State {
	case stateRedrive:
		// Recorded before, its publish perhaps lost: publish again.
		info.Count, info.Again = rec.Redrive.Count, true
	case stateDone:
		r, err := events.DecodeResult(rec.Result)
		if err != nil {
			return info, fmt.Errorf("redrive: stored result: %w", err)
		}
		if r.Data.Status != events.StatusFailed {
			return info, fmt.Errorf("redrive: dead letter %d: %w: the event ended %s", dlqSeq, ErrNotRedrivable, r.Data.Status)
		}
		count := 1
		if rec.Redrive != nil {
			count = rec.Redrive.Count + 1
		}
		next := cloneRecord(rec)
		next.State = stateRedrive
		next.Redrive = &events.Redrive{Count: count, By: by, At: time.Now().UTC(), DLQSequence: int64(dlqSeq)}
		if _, err := l.update(ctx, lkey, next, rev); err != nil {
			if errors.Is(err, errLost) {
				return info, errors.New("redrive: the ledger record changed meanwhile; try again")
			}
			return info, fmt.Errorf("redrive: %w", err)
		}
		info.Count = count
	default:
		return info, fmt.Errorf("redrive: dead letter %d: %w: the event is being worked on now (%s)", dlqSeq, ErrNotRedrivable, rec.State)
	}

	out := nats.NewMsg(info.Subject)
	out.Data = m.Data
	for k, vs := range m.Header {
		if strings.HasPrefix(k, "Authflow-Dlq-") || k == nats.MsgIdHdr {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	msgID := "redrive:" + events.EventKey(src, id) + ":" + strconv.Itoa(info.Count)
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(msgID)); err != nil {
		return info, fmt.Errorf("redrive: publish to %s: %w (the re-drive is recorded; run it again to publish)", info.Subject, err)
	}
	return info, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// currentQR reads the user's QR code + PIN method afresh by its own path,
// so the steps do not depend on whether GET /methods lists it.
func (r *run) currentQR(ctx context.Context, g Graph) (graphclient.Method, bool, error) {
	var m graphclient.Method
	err := r.x.call(ctx, func(ctx context.Context) error {
		var err error
		m, err = g.QRCodePinMethod(ctx, r.user.ID)
		return err
	})
	switch {
	case err == nil:
		return m, true, nil
	case errors.Is(err, graphclient.ErrNotFound) && !errors.Is(err, graphclient.ErrUserNotFound):
		return graphclient.Method{}, false, nil
	}
	return graphclient.Method{}, false, fmt.Errorf("get qr code pin: %w", err)
}

// deleteQR deletes the user's QR code + PIN method; one already gone counts
// as deleted.
func (r *run) deleteQR(ctx context.Context, g Graph, id string) error {
	err := r.write(ctx, func(ctx context.Context) error { return g.DeleteQRCodePin(ctx, r.user.ID) })
	if err != nil && !(errors.Is(err, graphclient.ErrNotFound) && !errors.Is(err, graphclient.ErrUserNotFound)) {
		return onMethod(graphclient.KindQRCodePin, id, fmt.Errorf("delete qr code pin: %w", err))
	}
	r.forget(id)
	return r.wrote()
}

// issueQRCodePin creates a QR code + PIN method and seals its PIN and QR
// code data at once; they exist in plain text only inside this function.
// Graph keeps one method per user and refuses a second, so an existing one
// is deleted first: the event asks for a new badge. That also covers a
// crash: if an earlier attempt created a method but its sealed secrets
// were never recorded (the intent is there, the done record is not), the
// method it left is an orphan nobody can use, and it is deleted and
// created again like any other.
func (r *run) issueQRCodePin(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	g := r.x.graph
	cur, found, err := r.currentQR(ctx, g)
	if err != nil {
		return nil, err
	}
	if r.dry {
		detail := "dry run: nothing issued"
		if found {
			detail = "dry run: would replace " + cur.ID
		}
		return []events.OpResult{result(op, graphclient.KindQRCodePin, "", events.OutcomeCreated, detail)}, nil
	}
	var out []events.OpResult
	if found {
		detail := "replaced by a new QR code"
		if prior, ok := r.ck.priorIntent(step); ok && !slices.Contains(prior.Before, cur.ID) && !cur.Created.Before(prior.At.Add(-time.Minute)) {
			detail = "orphan from an interrupted attempt"
		}
		if err := r.deleteQR(ctx, g, cur.ID); err != nil {
			return nil, err
		}
		out = append(out, result(op, graphclient.KindQRCodePin, cur.ID, events.OutcomeDeleted, detail))
	}
	in := intent{At: r.x.now()}
	if err := r.ck.intent(ctx, step, in, r.done); err != nil {
		return nil, err
	}
	req := graphclient.QRCodePinRequest{LifetimeDays: op.QRCode.LifetimeDays}
	if op.QRCode.Start != nil {
		req.Start = *op.QRCode.Start
	}
	var (
		q        graphclient.QRCodePin
		attempts int
	)
	err = r.write(ctx, func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			// The previous try may have created a method whose reply (and
			// secrets) was lost: Graph would refuse a second one.
			m, err := g.QRCodePinMethod(ctx, r.user.ID)
			switch {
			case err == nil:
				if err := g.DeleteQRCodePin(ctx, r.user.ID); err != nil && !errors.Is(err, graphclient.ErrNotFound) {
					return err
				}
				r.forget(m.ID)
			case !errors.Is(err, graphclient.ErrNotFound) || errors.Is(err, graphclient.ErrUserNotFound):
				return err
			}
		}
		var err error
		q, err = g.CreateQRCodePin(ctx, r.user.ID, req)
		return err
	})
	if err != nil {
		return out, onMethod(graphclient.KindQRCodePin, "", fmt.Errorf("create qr code pin: %w", err))
	}
	secret, err := json.Marshal(events.QRCodePinSecret{PIN: q.PIN, RawContent: q.Image.RawContent})
	clear(q.Image.RawContent)
	clear(q.Image.BinaryValue)
	q.PIN, q.Image = "", graphclient.QRImage{}
	var sealed *events.Sealed
	if err == nil {
		sealed, err = events.Seal(events.SecretQRCodePin, secret, op.SealTo, r.x.sealKey)
	}
	clear(secret)
	if err != nil {
		// Unsealable: nobody may ever use this badge; remove the method.
		_ = r.write(ctx, func(ctx context.Context) error { return g.DeleteQRCodePin(ctx, r.user.ID) })
		return out, onMethod(graphclient.KindQRCodePin, q.Method.ID, fmt.Errorf("%w: qr code pin: %v", errSeal, err))
	}
	r.replace(q.Method)
	res := result(op, graphclient.KindQRCodePin, q.Method.ID, events.OutcomeCreated,
		"standard QR code valid until "+q.Method.QRCodeExpiry.Format(time.DateOnly))
	res.Secret = sealed
	if err := r.wrote(); err != nil {
		return nil, err
	}
	out = append(out, res)
	if err := r.ck.done(ctx, step, out); err != nil {
		return nil, err
	}
	return out, nil
}

// removeQRCodePin makes sure the user has no QR code + PIN method.
func (r *run) removeQRCodePin(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	g := r.x.graph
	cur, found, err := r.currentQR(ctx, g)
	if err != nil {
		return nil, err
	}
	if !found {
		return []events.OpResult{result(op, graphclient.KindQRCodePin, "", events.OutcomeUnchanged, "none registered")}, nil
	}
	if !r.dry {
		if err := r.deleteQR(ctx, g, cur.ID); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, graphclient.KindQRCodePin, cur.ID, events.OutcomeDeleted, "")}, nil
}

// qrStep dispatches the QR code + PIN operations (one line in step).
func (r *run) qrStep(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	if op.Kind == events.OpIssueQRCodePin {
		return r.issueQRCodePin(ctx, step, op)
	}
	return r.removeQRCodePin(ctx, op)
}

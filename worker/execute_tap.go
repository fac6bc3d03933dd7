package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The Temporary Access Pass family: issue (a secret returned once, with the
// intent/checkpoint recovery) and the listing it recovers from.

// issueTAP creates a Temporary Access Pass and seals its value at once. The
// value exists in plain text only inside this function. Before creating it
// records its intent with the ids of the TAPs that exist just before, so
// that if it is interrupted after Graph created the TAP but before its
// sealed value was recorded, the next attempt deletes exactly that orphan
// (a TAP nobody can read) and nothing else.
func (r *run) issueTAP(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	if r.dry {
		return []events.OpResult{result(op, graphclient.KindTAP, "", events.OutcomeCreated, "dry run: nothing issued")}, nil
	}
	var out []events.OpResult
	if prior, orphan := r.ck.priorIntent(step); orphan {
		ms, err := r.listTAPs(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range orphans(ms, prior) {
			if err := r.delete(ctx, m); err != nil {
				return nil, err
			}
			out = append(out, result(op, graphclient.KindTAP, m.ID, events.OutcomeDeleted, "orphan from an interrupted attempt"))
		}
	}
	existing, err := r.listTAPs(ctx)
	if err != nil {
		return nil, err
	}
	in := intent{At: r.x.now()}
	for _, m := range existing {
		in.Before = append(in.Before, m.ID)
	}
	if err := r.ck.intent(ctx, step, in, r.done); err != nil {
		return nil, err
	}
	req := graphclient.TAPRequest{LifetimeMinutes: op.TAP.LifetimeMinutes, UsableOnce: op.TAP.UsableOnce}
	if op.TAP.Start != nil {
		req.Start = *op.TAP.Start
	}
	var (
		tap      graphclient.TAP
		attempts int
	)
	err = r.write(ctx, func(ctx context.Context) error {
		attempts++
		if attempts > 1 {
			// The previous try may have created a TAP whose reply was lost;
			// Graph keeps one TAP per user, but do not rely on it.
			ms, err := r.x.graph.Methods(ctx, r.user.ID)
			if err != nil {
				return err
			}
			for _, m := range orphans(ms, in) {
				if err := r.x.graph.DeleteMethod(ctx, r.user.ID, m.Kind, m.ID); err != nil && !errors.Is(err, graphclient.ErrNotFound) {
					return err
				}
			}
		}
		var err error
		tap, err = r.x.graph.CreateTAP(ctx, r.user.ID, req)
		return err
	})
	if err != nil {
		return out, onMethod(graphclient.KindTAP, "", fmt.Errorf("create tap: %w", err))
	}
	sealed, err := events.Seal(events.SecretTAP, []byte(tap.Value), op.SealTo, r.x.sealKey)
	tap.Value = ""
	if err != nil {
		// Unsealable: the value must not survive; remove the TAP.
		_ = r.write(ctx, func(ctx context.Context) error {
			return r.x.graph.DeleteMethod(ctx, r.user.ID, graphclient.KindTAP, tap.Method.ID)
		})
		return out, onMethod(graphclient.KindTAP, tap.Method.ID, fmt.Errorf("%w: tap: %v", errSeal, err))
	}
	r.replace(tap.Method)
	res := result(op, graphclient.KindTAP, tap.Method.ID, events.OutcomeCreated,
		fmt.Sprintf("lifetime %d min, usable once %t", tap.Method.TAPLifetimeMinutes, tap.Method.TAPUsableOnce))
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

// listTAPs reads the user's TAPs afresh.
func (r *run) listTAPs(ctx context.Context) ([]graphclient.Method, error) {
	var ms []graphclient.Method
	err := r.x.call(ctx, func(ctx context.Context) error {
		var err error
		ms, err = r.x.graph.Methods(ctx, r.user.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list methods: %w", err)
	}
	r.methods, r.loaded = ms, true
	return slices.DeleteFunc(slices.Clone(ms), func(m graphclient.Method) bool { return m.Kind != graphclient.KindTAP }), nil
}

// orphans are the TAPs an interrupted attempt of this event may have left:
// not there when it recorded its intent, and created since (a minute of
// slack for clocks).
func orphans(ms []graphclient.Method, in intent) []graphclient.Method {
	var out []graphclient.Method
	for _, m := range ms {
		if m.Kind == graphclient.KindTAP && !slices.Contains(in.Before, m.ID) && !m.Created.Before(in.At.Add(-time.Minute)) {
			out = append(out, m)
		}
	}
	return out
}

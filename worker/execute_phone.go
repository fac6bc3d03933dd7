package worker

import (
	"context"
	"fmt"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The phone family: ensure and remove a phone method, SMS sign-in.

func (r *run) ensurePhone(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	pt := graphclient.PhoneType(op.Phone.Type)
	want := op.Phone.Number
	cur, ok := r.find(func(m graphclient.Method) bool { return m.Kind == graphclient.KindPhone && m.PhoneType == pt })
	detail := string(pt) + " " + events.MaskPhone(want)
	switch {
	case ok && cur.PhoneNumber == want:
		return []events.OpResult{result(op, graphclient.KindPhone, cur.ID, events.OutcomeUnchanged, detail)}, nil
	case ok:
		if !r.dry {
			err := r.write(ctx, func(ctx context.Context) error { return r.x.graph.UpdatePhone(ctx, r.user.ID, cur.ID, want) })
			if err != nil {
				return nil, onMethod(graphclient.KindPhone, cur.ID, fmt.Errorf("update phone: %w", err))
			}
			cur.PhoneNumber = want
			r.replace(cur)
			if err := r.wrote(); err != nil {
				return nil, err
			}
		}
		return []events.OpResult{result(op, graphclient.KindPhone, cur.ID, events.OutcomeUpdated, detail)}, nil
	default:
		if r.dry {
			return []events.OpResult{result(op, graphclient.KindPhone, "", events.OutcomeCreated, detail)}, nil
		}
		m, err := r.create(ctx, func(m graphclient.Method) bool {
			return m.Kind == graphclient.KindPhone && m.PhoneType == pt && m.PhoneNumber == want
		}, func(ctx context.Context) (graphclient.Method, error) {
			return r.x.graph.AddPhone(ctx, r.user.ID, pt, want)
		})
		if err != nil {
			return nil, onMethod(graphclient.KindPhone, "", fmt.Errorf("add phone: %w", err))
		}
		r.replace(m)
		if err := r.wrote(); err != nil {
			return nil, err
		}
		return []events.OpResult{result(op, graphclient.KindPhone, m.ID, events.OutcomeCreated, detail)}, nil
	}
}

func (r *run) removePhone(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	pt := graphclient.PhoneType(op.Phone.Type)
	cur, ok := r.find(func(m graphclient.Method) bool { return m.Kind == graphclient.KindPhone && m.PhoneType == pt })
	if !ok {
		return []events.OpResult{result(op, graphclient.KindPhone, "", events.OutcomeUnchanged, string(pt)+" not registered")}, nil
	}
	if err := r.delete(ctx, cur); err != nil {
		return nil, err
	}
	return []events.OpResult{result(op, graphclient.KindPhone, cur.ID, events.OutcomeDeleted, string(pt))}, nil
}

func (r *run) setSMSSignIn(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	mobile, ok := r.find(func(m graphclient.Method) bool {
		return m.Kind == graphclient.KindPhone && m.PhoneType == graphclient.PhoneMobile
	})
	if !ok {
		return []events.OpResult{result(op, graphclient.KindPhone, "", events.OutcomeSkipped, "no mobile phone registered")}, nil
	}
	ready := mobile.SMSSignInState == "ready"
	if ready == op.Enabled {
		return []events.OpResult{result(op, graphclient.KindPhone, mobile.ID, events.OutcomeUnchanged, "sms sign-in "+mobile.SMSSignInState)}, nil
	}
	if !r.dry {
		err := r.write(ctx, func(ctx context.Context) error {
			if op.Enabled {
				return r.x.graph.EnableSMSSignIn(ctx, r.user.ID, mobile.ID)
			}
			return r.x.graph.DisableSMSSignIn(ctx, r.user.ID, mobile.ID)
		})
		if err != nil {
			return nil, onMethod(graphclient.KindPhone, mobile.ID, fmt.Errorf("set sms sign-in: %w", err))
		}
		mobile.SMSSignInState = map[bool]string{true: "ready", false: "notEnabled"}[op.Enabled]
		r.replace(mobile)
		if err := r.wrote(); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, graphclient.KindPhone, mobile.ID, events.OutcomeUpdated,
		map[bool]string{true: "sms sign-in enabled", false: "sms sign-in disabled"}[op.Enabled])}, nil
}

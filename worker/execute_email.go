package worker

import (
	"context"
	"fmt"
	"strings"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The email family: ensure the email method (removal is removeKind).

func (r *run) ensureEmail(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	cur, ok := r.find(func(m graphclient.Method) bool { return m.Kind == graphclient.KindEmail })
	switch {
	case ok && strings.EqualFold(cur.EmailAddress, op.Email):
		return []events.OpResult{result(op, graphclient.KindEmail, cur.ID, events.OutcomeUnchanged, "")}, nil
	case ok:
		if !r.dry {
			err := r.write(ctx, func(ctx context.Context) error { return r.x.graph.UpdateEmail(ctx, r.user.ID, cur.ID, op.Email) })
			if err != nil {
				return nil, onMethod(graphclient.KindEmail, cur.ID, fmt.Errorf("update email: %w", err))
			}
			cur.EmailAddress = op.Email
			r.replace(cur)
			if err := r.wrote(); err != nil {
				return nil, err
			}
		}
		return []events.OpResult{result(op, graphclient.KindEmail, cur.ID, events.OutcomeUpdated, "")}, nil
	default:
		if r.dry {
			return []events.OpResult{result(op, graphclient.KindEmail, "", events.OutcomeCreated, "")}, nil
		}
		m, err := r.create(ctx, func(m graphclient.Method) bool {
			return m.Kind == graphclient.KindEmail && strings.EqualFold(m.EmailAddress, op.Email)
		}, func(ctx context.Context) (graphclient.Method, error) {
			return r.x.graph.AddEmail(ctx, r.user.ID, op.Email)
		})
		if err != nil {
			return nil, onMethod(graphclient.KindEmail, "", fmt.Errorf("add email: %w", err))
		}
		r.replace(m)
		if err := r.wrote(); err != nil {
			return nil, err
		}
		return []events.OpResult{result(op, graphclient.KindEmail, m.ID, events.OutcomeCreated, "")}, nil
	}
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The methods family: the run's view of the user's methods (loaded once,
// kept up to date by its own writes) and the steps that read or remove
// methods of any kind.

// write marks a Graph write done and gives the crash hook its chance.
func (r *run) wrote() error {
	if r.x.hook != nil {
		if err := r.x.hook(HookAfterGraphWrite); err != nil {
			return fmt.Errorf("%w: %w", errCrash, err)
		}
	}
	return nil
}

func (r *run) load(ctx context.Context) error {
	if r.loaded {
		return nil
	}
	var ms []graphclient.Method
	err := r.x.call(ctx, func(ctx context.Context) error {
		var err error
		ms, err = r.x.graph.Methods(ctx, r.user.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("list methods: %w", err)
	}
	r.methods, r.loaded = ms, true
	return nil
}

func (r *run) find(pred func(graphclient.Method) bool) (graphclient.Method, bool) {
	for _, m := range r.methods {
		if pred(m) {
			return m, true
		}
	}
	return graphclient.Method{}, false
}

// create posts a new method under the retry policy. On a retry it first
// reads whether the previous attempt's write was applied although its reply
// was lost, so a lost reply never turns into a "method exists" failure.
func (r *run) create(ctx context.Context, applied func(graphclient.Method) bool, post func(context.Context) (graphclient.Method, error)) (graphclient.Method, error) {
	var (
		m        graphclient.Method
		attempts int
	)
	err := r.write(ctx, func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			if got, ok, err := r.lookup(ctx, applied); err != nil || ok {
				m = got
				return err
			}
		}
		var err error
		m, err = post(ctx)
		return err
	})
	return m, err
}

// lookup reads the user's methods afresh (inside a retry) and returns the
// first that matches.
func (r *run) lookup(ctx context.Context, pred func(graphclient.Method) bool) (graphclient.Method, bool, error) {
	ms, err := r.x.graph.Methods(ctx, r.user.ID)
	if err != nil {
		return graphclient.Method{}, false, err
	}
	for _, m := range ms {
		if pred(m) {
			return m, true, nil
		}
	}
	return graphclient.Method{}, false, nil
}

func (r *run) forget(id string) {
	r.methods = slices.DeleteFunc(r.methods, func(m graphclient.Method) bool { return m.ID == id })
}

func (r *run) replace(m graphclient.Method) {
	r.forget(m.ID)
	r.methods = append(r.methods, m)
}

func result(op events.Op, kind graphclient.Kind, id string, outcome events.Outcome, detail string) events.OpResult {
	return events.OpResult{Op: op.Kind, MethodKind: string(kind), MethodID: id, Outcome: outcome, Detail: detail}
}

func (r *run) readMethods(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	res := result(op, "", "", events.OutcomeUnchanged, fmt.Sprintf("%d methods", len(r.methods)))
	for _, m := range r.methods {
		res.Methods = append(res.Methods, summarize(m))
	}
	return []events.OpResult{res}, nil
}

// summarize describes a method without secrets and with phone numbers masked.
func summarize(m graphclient.Method) events.MethodSummary {
	s := events.MethodSummary{Kind: string(m.Kind), ID: m.ID, DisplayName: m.DisplayName, CreatedAt: m.Created}
	switch m.Kind {
	case graphclient.KindPhone:
		s.Detail = fmt.Sprintf("%s %s, sms sign-in %s", m.PhoneType, events.MaskPhone(m.PhoneNumber), m.SMSSignInState)
	case graphclient.KindEmail:
		s.Detail = events.MaskEmail(m.EmailAddress)
	case graphclient.KindTAP:
		s.Detail = fmt.Sprintf("usable %t (%s), lifetime %d min", m.TAPUsable, m.TAPUsabilityReason, m.TAPLifetimeMinutes)
	}
	return s
}

// delete removes one method (unless dry); a method already gone counts as deleted.
func (r *run) delete(ctx context.Context, m graphclient.Method) error {
	if r.dry {
		return nil
	}
	err := r.write(ctx, func(ctx context.Context) error { return r.x.graph.DeleteMethod(ctx, r.user.ID, m.Kind, m.ID) })
	if err != nil && !(errors.Is(err, graphclient.ErrNotFound) && !errors.Is(err, graphclient.ErrUserNotFound)) {
		return onMethod(m.Kind, m.ID, fmt.Errorf("delete %s method: %w", m.Kind, err))
	}
	r.forget(m.ID)
	return r.wrote()
}

// removeKind deletes every method of one kind (email, TAPs).
func (r *run) removeKind(ctx context.Context, op events.Op, kind graphclient.Kind) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	var out []events.OpResult
	for _, m := range slices.Clone(r.methods) {
		if m.Kind != kind {
			continue
		}
		if err := r.delete(ctx, m); err != nil {
			return out, err
		}
		out = append(out, result(op, kind, m.ID, events.OutcomeDeleted, ""))
	}
	if len(out) == 0 {
		out = append(out, result(op, kind, "", events.OutcomeUnchanged, "none registered"))
	}
	return out, nil
}

func (r *run) removeMethod(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	kind := graphclient.Kind(op.MethodKind)
	cur, ok := r.find(func(m graphclient.Method) bool { return m.Kind == kind && m.ID == op.MethodID })
	if !ok {
		return []events.OpResult{result(op, kind, op.MethodID, events.OutcomeUnchanged, "not registered")}, nil
	}
	if err := r.delete(ctx, cur); err != nil {
		return nil, err
	}
	return []events.OpResult{result(op, kind, cur.ID, events.OutcomeDeleted, cur.DisplayName)}, nil
}

// removeDeviceMethods removes the methods of the kinds asked for that belong
// to the lost device: matched by display name (case-insensitive) or device tag.
func (r *run) removeDeviceMethods(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	var out []events.OpResult
	for _, m := range slices.Clone(r.methods) {
		if !slices.Contains(op.Kinds, string(m.Kind)) || !matchesDevice(m, op.Match) {
			continue
		}
		if err := r.delete(ctx, m); err != nil {
			return out, err
		}
		out = append(out, result(op, m.Kind, m.ID, events.OutcomeDeleted, m.DisplayName))
	}
	if len(out) == 0 {
		out = append(out, result(op, "", "", events.OutcomeUnchanged, "no method matches the device"))
	}
	return out, nil
}

func matchesDevice(m graphclient.Method, d *events.DeviceMatch) bool {
	if d == nil {
		return false
	}
	if d.DisplayName != "" && strings.EqualFold(strings.TrimSpace(m.DisplayName), strings.TrimSpace(d.DisplayName)) {
		return true
	}
	return d.DeviceID != "" && m.DeviceTag != "" && strings.EqualFold(m.DeviceTag, d.DeviceID)
}

// removeAllMethods deletes every removable method (all but the password),
// in an order Graph accepts: alternate phones before the mobile, and the
// default method — which Graph refuses to delete while others remain — last.
// v1.0 cannot read which method is the default, so a method refused with a
// rule violation is retried after the others are gone.
func (r *run) removeAllMethods(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	var todo []graphclient.Method
	for _, m := range r.methods {
		if m.Kind != graphclient.KindPassword {
			todo = append(todo, m)
		}
	}
	slices.SortStableFunc(todo, func(a, b graphclient.Method) int { return deleteRank(a) - deleteRank(b) })
	var out []events.OpResult
	for pass := 0; len(todo) > 0 && pass < 3; pass++ {
		var (
			refused []graphclient.Method
			lastErr error
		)
		for _, m := range todo {
			err := r.delete(ctx, m)
			if err != nil && errors.Is(err, graphclient.ErrConflict) {
				refused, lastErr = append(refused, m), err
				continue
			}
			if err != nil {
				return out, err
			}
			out = append(out, result(op, m.Kind, m.ID, events.OutcomeDeleted, m.DisplayName))
		}
		if len(refused) == len(todo) {
			// No progress: report the last refusal instead of looping.
			return out, lastErr
		}
		todo = refused
	}
	if len(out) == 0 {
		out = append(out, result(op, "", "", events.OutcomeUnchanged, "no removable methods"))
	}
	return out, nil
}

// deleteRank orders deletions: secondary phones before the mobile one, and
// methods that are never the default MFA method first.
func deleteRank(m graphclient.Method) int {
	switch {
	case m.Default:
		return 100
	case m.Kind == graphclient.KindTAP, m.Kind == graphclient.KindEmail:
		return 0
	case m.Kind == graphclient.KindPhone && m.PhoneType != graphclient.PhoneMobile:
		return 1
	case m.Kind == graphclient.KindPhone:
		return 3
	default:
		return 2
	}
}

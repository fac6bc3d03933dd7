package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// errTransient ends an attempt whose Graph calls stayed transiently failing
// past the in-process retry budget: the event is handed back to JetStream.
var errTransient = errors.New("graph stayed unavailable past the retry budget")

// errCrash is returned when a test hook simulates a crash.
var errCrash = errors.New("simulated crash")

// checkpoints persists the progress of operations whose secret Graph returns
// only once (TAP, password), so that a retry after a crash neither loses nor
// duplicates them. The held ledger record implements it.
type checkpoints interface {
	// prior returns the finished results of step i from an earlier attempt.
	prior(i int) ([]events.OpResult, bool)
	// priorIntent reports whether an earlier attempt was about to run step i.
	priorIntent(i int) (intent, bool)
	// intent durably records that step i is about to call Graph, with the
	// results of the steps before it (they are not run again).
	intent(ctx context.Context, i int, in intent, before map[int][]events.OpResult) error
	// done durably records the finished (sealed) results of step i.
	done(ctx context.Context, i int, res []events.OpResult) error
}

// fencer hands out the context of one Graph write: an error when this
// attempt no longer owns its event (see lease.go).
type fencer interface {
	fence(ctx context.Context) (context.Context, context.CancelFunc, error)
}

// executor runs plans against Graph.
type executor struct {
	graph   Graph
	retry   graphclient.RetryPolicy
	sealKey nkeys.KeyPair
	pwMode  PasswordMode
	now     func() time.Time
	hook    func(string) error
	metrics *Metrics
}

// run is one attempt at one event's plan.
type run struct {
	x       *executor
	user    graphclient.User
	dry     bool
	ck      checkpoints
	h       fencer
	methods []graphclient.Method // current view, loaded once and kept up to date
	loaded  bool
	// done holds the results of the steps run so far, by step, for the
	// intent of a later secret step.
	done map[int][]events.OpResult
}

// call runs one logical Graph operation under the retry policy, with a
// client-request-id that stays the same across its retries.
func (x *executor) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx = graphclient.WithRequestID(ctx, newUUID())
	attempts, err := x.retry.Do(ctx, fn)
	if attempts > 1 {
		x.metrics.retries.WithLabelValues("graph").Add(float64(attempts - 1))
	}
	return err
}

// write runs one Graph write under the retry policy, each try fenced: it
// starts only while this attempt's lease is good and must finish before
// the lease could pass to another attempt.
func (r *run) write(ctx context.Context, fn func(ctx context.Context) error) error {
	return r.x.call(ctx, func(ctx context.Context) error {
		if r.h == nil {
			return fn(ctx)
		}
		wctx, cancel, err := r.h.fence(ctx)
		if err != nil {
			return err
		}
		defer cancel()
		return fn(wctx)
	})
}

// classify maps a Graph error to a result error, or to errTransient (hand
// the event back) when it is still transient after the retry budget.
func classify(err error) (*events.ErrorInfo, error) {
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, errCrash), errors.Is(err, errLost), errors.Is(err, errLeaseExpired):
		return nil, err
	case errors.Is(err, graphclient.ErrMFARequired):
		return errorInfo(events.CodeMFARequired, errMessage(err)), nil
	case errors.Is(err, errSeal):
		return errorInfo(events.CodeSealFailed, err.Error()), nil
	case errors.Is(err, errNATS):
		return nil, fmt.Errorf("%w: %w", errTransient, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, graphclient.ErrTransient):
		return nil, fmt.Errorf("%w: %w", errTransient, err)
	case errors.Is(err, graphclient.ErrUserNotFound):
		return errorInfo(events.CodeUserNotFound, errMessage(err)), nil
	case errors.Is(err, graphclient.ErrPermission):
		return errorInfo(events.CodeGraphPermission, errMessage(err)), nil
	default:
		return errorInfo(events.CodeGraphPermanent, errMessage(err)), nil
	}
}

func errMessage(err error) string {
	var ae *graphclient.APIError
	if errors.As(err, &ae) {
		if ae.Code != "" {
			return fmt.Sprintf("%s: %d %s: %s", ae.Op, ae.Status, ae.Code, ae.Message)
		}
		return fmt.Sprintf("%s: %d: %s", ae.Op, ae.Status, ae.Message)
	}
	return err.Error()
}

// execute runs the plan. It returns the per-step results; a non-nil error
// means the attempt must be abandoned (transient past budget, crash hook,
// context done) and retried later.
func (r *run) execute(ctx context.Context, plan []events.Op) ([]events.OpResult, error) {
	var out []events.OpResult
	r.done = map[int][]events.OpResult{}
	for i, op := range plan {
		if prior, ok := r.ck.prior(i); ok {
			out = append(out, prior...)
			r.done[i] = prior
			continue
		}
		res, err := r.step(ctx, i, op)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		r.done[i] = res
	}
	return out, nil
}

func (r *run) step(ctx context.Context, i int, op events.Op) ([]events.OpResult, error) {
	var (
		res []events.OpResult
		err error
	)
	switch op.Kind {
	case events.OpReadMethods:
		res, err = r.readMethods(ctx, op)
	case events.OpEnsurePhone:
		res, err = r.ensurePhone(ctx, op)
	case events.OpRemovePhone:
		res, err = r.removePhone(ctx, op)
	case events.OpSetSMSSignIn:
		res, err = r.setSMSSignIn(ctx, op)
	case events.OpEnsureEmail:
		res, err = r.ensureEmail(ctx, op)
	case events.OpRemoveEmail:
		res, err = r.removeKind(ctx, op, graphclient.KindEmail)
	case events.OpRemoveTAPs:
		res, err = r.removeKind(ctx, op, graphclient.KindTAP)
	case events.OpIssueTAP:
		res, err = r.issueTAP(ctx, i, op)
	case events.OpIssueQRCodePin, events.OpRemoveQRCodePin:
		res, err = r.qrStep(ctx, i, op)
	case events.OpRemoveMethod:
		res, err = r.removeMethod(ctx, op)
	case events.OpRemoveDeviceMethods:
		res, err = r.removeDeviceMethods(ctx, op)
	case events.OpRemoveAllMethods:
		res, err = r.removeAllMethods(ctx, op)
	case events.OpResetPassword:
		res, err = r.resetPassword(ctx, i, op)
	case events.OpRevokeSessions:
		res, err = r.revokeSessions(ctx, op)
	case events.OpSetAccountEnabled:
		res, err = r.setAccountEnabled(ctx, op)
	default:
		return []events.OpResult{{Op: op.Kind, Outcome: events.OutcomeFailed,
			Error: errorInfo(events.CodeInternal, "unknown operation "+string(op.Kind))}}, nil
	}
	if err != nil {
		info, abort := classify(err)
		if abort != nil {
			return nil, abort
		}
		failed := events.OpResult{Op: op.Kind, MethodKind: op.MethodKind, MethodID: op.MethodID, Outcome: events.OutcomeFailed, Error: info}
		var oe *opError
		if errors.As(err, &oe) {
			failed.MethodKind, failed.MethodID = cmp.Or(string(oe.kind), failed.MethodKind), cmp.Or(oe.id, failed.MethodID)
		}
		return append(res, failed), nil
	}
	return res, nil
}

// opError names the method an operation failed on, for its result.
type opError struct {
	kind graphclient.Kind
	id   string
	err  error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func onMethod(kind graphclient.Kind, id string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{kind: kind, id: id, err: err}
}

// errSeal marks a secret that could not be sealed.
var errSeal = errors.New("seal")

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

// resetPassword resets the password and seals the new one at once. A retry
// after a crash resets again: the earlier password was never delivered.
func (r *run) resetPassword(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	if r.dry {
		return []events.OpResult{result(op, graphclient.KindPassword, graphclient.PasswordMethodID, events.OutcomeUpdated, "dry run: nothing reset")}, nil
	}
	if err := r.ck.intent(ctx, step, intent{At: r.x.now()}, r.done); err != nil {
		return nil, err
	}
	var secret string
	err := r.write(ctx, func(ctx context.Context) error {
		if r.x.pwMode == PasswordResetAPI {
			var err error
			secret, err = r.x.graph.ResetPassword(ctx, r.user.ID, "")
			return err
		}
		pw, err := generatePassword(20)
		if err != nil {
			return err
		}
		if err := r.x.graph.SetPassword(ctx, r.user.ID, pw, op.ForceChange); err != nil {
			return err
		}
		secret = pw
		return nil
	})
	if err != nil {
		return nil, onMethod(graphclient.KindPassword, graphclient.PasswordMethodID, fmt.Errorf("reset password: %w", err))
	}
	sealed, err := events.Seal(events.SecretPassword, []byte(secret), op.SealTo, r.x.sealKey)
	secret = ""
	if err != nil {
		return nil, onMethod(graphclient.KindPassword, graphclient.PasswordMethodID, fmt.Errorf("%w: password: %v", errSeal, err))
	}
	res := result(op, graphclient.KindPassword, graphclient.PasswordMethodID, events.OutcomeUpdated, "must change at next sign-in")
	res.Secret = sealed
	if err := r.wrote(); err != nil {
		return nil, err
	}
	if err := r.ck.done(ctx, step, []events.OpResult{res}); err != nil {
		return nil, err
	}
	return []events.OpResult{res}, nil
}

func (r *run) revokeSessions(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if !r.dry {
		if err := r.write(ctx, func(ctx context.Context) error { return r.x.graph.RevokeSessions(ctx, r.user.ID) }); err != nil {
			return nil, fmt.Errorf("revoke sessions: %w", err)
		}
		if err := r.wrote(); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, "", "", events.OutcomeUpdated, "sign-in sessions revoked")}, nil
}

func (r *run) setAccountEnabled(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	detail := map[bool]string{true: "account enabled", false: "account disabled"}[op.Enabled]
	if r.user.AccountEnabled == op.Enabled {
		return []events.OpResult{result(op, "", "", events.OutcomeUnchanged, detail)}, nil
	}
	if !r.dry {
		if err := r.write(ctx, func(ctx context.Context) error {
			return r.x.graph.SetAccountEnabled(ctx, r.user.ID, op.Enabled)
		}); err != nil {
			return nil, fmt.Errorf("set account enabled: %w", err)
		}
		r.user.AccountEnabled = op.Enabled
		if err := r.wrote(); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, "", "", events.OutcomeUpdated, detail)}, nil
}

// generatePassword returns a random password with upper, lower, digit and
// symbol characters, which Entra's complexity rules accept.
func generatePassword(n int) (string, error) {
	sets := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!@#$%^&*-_=+?"}
	all := strings.Join(sets, "")
	b := make([]byte, n)
	for i := range b {
		set := all
		if i < len(sets) {
			set = sets[i]
		}
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = set[k.Int64()]
	}
	// Shuffle so the class order is not fixed.
	for i := len(b) - 1; i > 0; i-- {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		j := k.Int64()
		b[i], b[j] = b[j], b[i]
	}
	return string(b), nil
}

func newUUID() string { return uuid.NewString() }

func randomID() string { return newUUID()[:8] }

package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	prefs   signInPrefs // beta default method (execute_default.go); nil: off
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
	// defaults is the user's beta signInPreferences once read; defaultsErr
	// why it could not be (execute_default.go).
	defaults    *graphclient.SignInPreferences
	defaultsErr error
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

// stepFunc runs step i (operation op) of a plan.
type stepFunc func(r *run, ctx context.Context, i int, op events.Op) ([]events.OpResult, error)

// steps is the dispatch table: one entry per events.OpKind, each in the file
// of its family (TestDispatchTable checks it against events.OpKinds).
var steps = map[events.OpKind]stepFunc{
	events.OpReadMethods:         plain((*run).readMethodsDefault),
	events.OpRemoveMethod:        plain((*run).removeMethod),
	events.OpRemoveDeviceMethods: plain((*run).removeDeviceMethodsDefault),
	events.OpRemoveAllMethods:    plain((*run).removeAllMethodsDefault),
	events.OpEnsurePhone:         plain((*run).ensurePhone),
	events.OpRemovePhone:         plain((*run).removePhone),
	events.OpSetSMSSignIn:        plain((*run).setSMSSignIn),
	events.OpEnsureEmail:         plain((*run).ensureEmail),
	events.OpRemoveEmail:         removeOfKind(graphclient.KindEmail),
	events.OpRemoveTAPs:          removeOfKind(graphclient.KindTAP),
	events.OpIssueTAP:            (*run).issueTAP,
	events.OpIssueQRCodePin:      (*run).qrStep,
	events.OpRemoveQRCodePin:     (*run).qrStep,
	events.OpResetPassword:       (*run).resetPassword,
	events.OpRevokeSessions:      plain((*run).revokeSessions),
	events.OpSetAccountEnabled:   plain((*run).setAccountEnabled),
	events.OpPasskeyOptions:      plain((*run).passkeyOptions),
	events.OpRegisterPasskey:     (*run).registerPasskey,
}

// plain adapts a step that does not need its index (no checkpoint).
func plain(f func(*run, context.Context, events.Op) ([]events.OpResult, error)) stepFunc {
	return func(r *run, ctx context.Context, _ int, op events.Op) ([]events.OpResult, error) {
		return f(r, ctx, op)
	}
}

func removeOfKind(k graphclient.Kind) stepFunc {
	return func(r *run, ctx context.Context, _ int, op events.Op) ([]events.OpResult, error) {
		return r.removeKind(ctx, op, k)
	}
}

func (r *run) step(ctx context.Context, i int, op events.Op) ([]events.OpResult, error) {
	do, ok := steps[op.Kind]
	if !ok {
		return []events.OpResult{{Op: op.Kind, Outcome: events.OutcomeFailed,
			Error: errorInfo(events.CodeInternal, "unknown operation "+string(op.Kind))}}, nil
	}
	res, err := do(r, ctx, i, op)
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

func newUUID() string { return uuid.NewString() }

func randomID() string { return newUUID()[:8] }

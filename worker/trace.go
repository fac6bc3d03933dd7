package worker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/authflow/authflow/events"
)

// Tracing (OpenTelemetry). With Config.TracerProvider set, each delivery is
// one span, "authflow.event", a child of the event's traceparent (the
// CloudEvents distributed-tracing extension) when it has one; under it are
// spans for decoding, each policy check, each ledger call, each publish and
// (graphclient, with the same provider) each HTTP request to Graph. Without
// a provider nothing here runs beyond a nil check.
//
// Attributes name events, types, sources, outcomes and error codes, never
// the subject, a user's id or UPN, a phone number, an address or a secret:
// error messages (which may quote any of those) are left out, codes only.

const tracerName = "github.com/authflow/authflow/worker"

// eventTrace is the tracing state of one delivery.
type eventTrace struct {
	start time.Time
	span  trace.Span // nil until the event's span started, and with tracing off
}

// traceBegin notes when the delivery began: the decode span's start.
func (d *delivery) traceBegin() {
	if d.w.cfg.TracerProvider != nil {
		d.tr.start = time.Now()
	}
}

// traceDecoded starts the event's span, a child of its traceparent when the
// event decoded (an undecodable one starts a trace of its own), with a
// decode span from traceBegin until now. The returned context carries it.
func (d *delivery) traceDecoded(ctx context.Context, ev *events.Event, decodeErr error) context.Context {
	tp := d.w.cfg.TracerProvider
	if tp == nil || d.tr.span != nil {
		return ctx
	}
	now := time.Now()
	if d.tr.start.IsZero() {
		d.tr.start = now
	}
	parent := ctx
	if ev != nil && ev.TraceParent != "" {
		parent = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{
			"traceparent": ev.TraceParent, "tracestate": ev.TraceState,
		})
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.Int64("authflow.delivery", int64(d.md.NumDelivered)),
		attribute.Int64("authflow.stream_sequence", int64(d.md.Sequence.Stream)),
	}
	if ev != nil {
		attrs = append(attrs,
			attribute.String("cloudevents.event_id", ev.ID),
			attribute.String("cloudevents.event_source", ev.Source),
			attribute.String("cloudevents.event_type", ev.Type),
			attribute.Bool("authflow.dry_run", ev.DryRun))
	}
	tracer := tp.Tracer(tracerName)
	ctx, d.tr.span = tracer.Start(parent, "authflow.event", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(d.tr.start), trace.WithAttributes(attrs...))
	_, ds := tracer.Start(ctx, "authflow.decode", trace.WithTimestamp(d.tr.start),
		trace.WithAttributes(attribute.Bool("authflow.binary_mode", events.IsBinary(d.msg.Headers()))))
	endSpan(ds, decodeErr, trace.WithTimestamp(now))
	return ctx
}

// traceEnd ends the event's span with the outcome of the delivery.
func (d *delivery) traceEnd(outcome string) {
	s := d.tr.span
	if s == nil {
		return
	}
	s.SetAttributes(attribute.String("authflow.outcome", outcome))
	if outcome == outcomeFailed {
		s.SetStatus(codes.Error, outcome)
	}
	s.End()
}

// startSpan starts a child of the span in ctx when that one records; end
// ends it with err's kind. With tracing off it costs a context lookup.
func startSpan(ctx context.Context, name string, opts ...trace.SpanStartOption) (_ context.Context, end func(err error)) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, func(error) {}
	}
	ctx, s := parent.TracerProvider().Tracer(tracerName).Start(ctx, name, opts...)
	return ctx, func(err error) { endSpan(s, err) }
}

// ledgerSpan starts the span of one ledger call (get, create, update).
func ledgerSpan(ctx context.Context, op string) (context.Context, func(error)) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, func(error) {}
	}
	return startSpan(ctx, "authflow.ledger "+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "nats"), attribute.String("db.namespace", LedgerBucket),
		attribute.String("db.operation.name", op)))
}

// publishSpan starts the span of one publish (a result, a dead letter).
func publishSpan(ctx context.Context, what string) (context.Context, func(error)) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, func(error) {}
	}
	return startSpan(ctx, "authflow.publish "+what, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "send")))
}

// endSpan ends s, marking it failed with err's kind (never its message).
func endSpan(s trace.Span, err error, opts ...trace.SpanEndOption) {
	if err != nil {
		kind := errorKind(err)
		s.SetAttributes(attribute.String("error.type", kind))
		s.SetStatus(codes.Error, kind)
	}
	s.End(opts...)
}

// errorKind names err without its text: an event error's code, or what a
// NATS or ledger failure was.
func errorKind(err error) string {
	if c := events.CodeOf(err); c != "" {
		return string(c)
	}
	switch {
	case errors.Is(err, errLost):
		return "lease_lost"
	case errors.Is(err, errCorrupt):
		return "ledger_corrupt"
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		return "revision_mismatch"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, errNATS):
		return "nats_unavailable"
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return "jetstream_" + strconv.Itoa(int(apiErr.ErrorCode))
	}
	return "error"
}

// Policy checks, each in a span of its own.

func (d *delivery) checkAuth(ctx context.Context) error {
	_, end := startSpan(ctx, "authflow.policy.auth")
	err := d.w.cfg.Policy.CheckAuth(d.ev, d.doc, d.msg.Headers())
	end(err)
	return err
}

func (d *delivery) checkFreshness(ctx context.Context) error {
	_, end := startSpan(ctx, "authflow.policy.freshness")
	err := d.w.cfg.Policy.CheckFreshness(d.ev, d.w.cfg.Now())
	end(err)
	return err
}

func (d *delivery) plan(ctx context.Context) ([]events.Op, error) {
	pctx, end := startSpan(ctx, "authflow.plan")
	plan, err := events.Plan(d.ev)
	trace.SpanFromContext(pctx).SetAttributes(attribute.Int("authflow.plan_steps", len(plan)))
	end(err)
	return plan, err
}

func (d *delivery) checkTarget(ctx context.Context, t events.Target) error {
	_, end := startSpan(ctx, "authflow.policy.target")
	err := d.w.cfg.Policy.CheckTarget(d.ev, t)
	end(err)
	return err
}

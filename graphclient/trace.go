package graphclient

import (
	"errors"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the client's spans.
const tracerName = "github.com/authflow/authflow/graphclient"

// startRequestSpan starts the span of one HTTP request to Graph when the
// client has a TracerProvider, and sets the request's W3C trace context
// headers from it. The span's parent is the span in the request's context,
// else the traceparent set by WithTraceParent. Without a TracerProvider the
// headers are those of that parent, passed on as they came, as Trace
// Context asks of a party that does not trace.
//
// Attributes carry the operation, method, host and status, never the URL:
// its path holds the user's object id.
func (c *Client) startRequestSpan(req *http.Request, ex *exchange) (*http.Request, trace.Span) {
	ctx := req.Context()
	req.Header.Del("tracestate")
	if c.tracer == nil {
		if trace.SpanContextFromContext(ctx).IsValid() {
			propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
		} else if ex.traceParent != "" {
			req.Header.Set("traceparent", ex.traceParent)
		}
		return req, nil
	}
	if !trace.SpanContextFromContext(ctx).IsValid() && ex.traceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": ex.traceParent})
	}
	ctx, span := c.tracer.Start(ctx, "graph "+ex.op,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("graph.operation", ex.op),
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("graph.client_request_id", ex.requestID),
		))
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	return req.WithContext(ctx), span
}

// endRequestSpan records what the wire saw and ends the span (nil: none).
func endRequestSpan(span trace.Span, resp response, err error) {
	if span == nil {
		return
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	var te *tokenError
	switch {
	case errors.As(err, &te):
		span.SetAttributes(attribute.String("error.type", "token"))
		span.SetStatus(codes.Error, "no token")
	case err != nil && resp.status == 0:
		// The error's text may quote the URL, and with it the user's id.
		span.SetAttributes(attribute.String("error.type", "transport"))
		span.SetStatus(codes.Error, "transport error")
	case resp.status >= 400:
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.status)))
		span.SetStatus(codes.Error, http.StatusText(resp.status))
	}
	if resp.status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.status))
	}
	if resp.requestID != "" {
		span.SetAttributes(attribute.String("graph.request_id", sanitize(resp.requestID, 64)))
	}
	span.End()
}

// tracerOf is the client's tracer, nil when it does not trace.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

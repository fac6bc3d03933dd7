package graphclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestRequestSpans: with a TracerProvider every HTTP attempt is one client
// span, a child of the caller's trace (the span in the context, else
// WithTraceParent), and the traceparent Graph receives is that span's. No
// attribute holds the user's id.
func TestRequestSpans(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	rec := tracetest.NewSpanRecorder()
	prov := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f := newFakeGraph(t)
	f.setHandler(reply(503, `{"error":{"code":"x","message":"y"}}`))
	c := newTestClient(t, f.URL+"/v1.0", func(c *Config) { c.TracerProvider = prov })

	p := RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Randomization: -1, MaxAttempts: 2}
	ctx := WithTraceParent(testCtx(t), tp)
	if _, err := p.Do(ctx, func(ctx context.Context) error { return c.DeleteEmail(ctx, testUser, EmailMethodID) }); !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v", err)
	}
	spans := rec.Ended()
	reqs := f.requests()
	if len(spans) != 2 || len(reqs) != 2 {
		t.Fatalf("%d spans for %d requests, want 2 and 2", len(spans), len(reqs))
	}
	for i, s := range spans {
		sc := s.SpanContext()
		if got := s.Parent().TraceID().String() + "-" + s.Parent().SpanID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7" {
			t.Errorf("span %d: parent %s, want the traceparent's", i, got)
		}
		want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
		if got := reqs[i].Header.Get("traceparent"); got != want {
			t.Errorf("request %d: traceparent %q, want its span's %q", i, got, want)
		}
		if s.SpanKind() != trace.SpanKindClient || s.Name() != "graph delete email" {
			t.Errorf("span %d: %s %q", i, s.SpanKind(), s.Name())
		}
		attrs := attrMap(s.Attributes())
		if attrs["http.response.status_code"] != "503" || attrs["graph.operation"] != "delete email" ||
			attrs["http.request.method"] != "DELETE" || s.Status().Code != codes.Error {
			t.Errorf("span %d: attributes %v, status %v", i, attrs, s.Status())
		}
		for k, v := range attrs {
			if strings.Contains(v, testUser) {
				t.Errorf("span %d: attribute %s holds the user id: %q", i, k, v)
			}
		}
	}
	if spans[0].SpanContext().SpanID() == spans[1].SpanContext().SpanID() {
		t.Error("two attempts share a span")
	}

	// A span in the context is the parent, ahead of WithTraceParent.
	f.reset()
	f.setHandler(reply(204, ""))
	parentCtx, parent := prov.Tracer("test").Start(WithTraceParent(testCtx(t), tp), "caller")
	if err := c.DeleteEmail(parentCtx, testUser, EmailMethodID); err != nil {
		t.Fatal(err)
	}
	parent.End()
	last := rec.Ended()[len(rec.Ended())-2] // the request's span ends before the caller's
	if last.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("request span's parent %s, want the caller's %s", last.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if got := f.requests()[0].Header.Get("traceparent"); !strings.Contains(got, last.SpanContext().SpanID().String()) {
		t.Errorf("traceparent %q is not the request span's", got)
	}
}

// TestNoTracerPassesTraceContextOn: without a TracerProvider the client
// records nothing and sends the caller's span context, unchanged.
func TestNoTracerPassesTraceContextOn(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	prov := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f := newFakeGraph(t)
	f.setHandler(reply(204, ""))
	c := newTestClient(t, f.URL+"/v1.0")
	ctx, span := prov.Tracer("test").Start(testCtx(t), "caller")
	if err := c.DeleteEmail(ctx, testUser, EmailMethodID); err != nil {
		t.Fatal(err)
	}
	span.End()
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("%d spans, want only the caller's", n)
	}
	want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
	if got := f.requests()[0].Header.Get("traceparent"); got != want {
		t.Errorf("traceparent %q, want the caller's %q", got, want)
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

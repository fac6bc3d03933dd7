package worker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/worker"
)

// spanAttributes is every attribute key a span of the worker or of
// graphclient may carry: anything else could be user data.
var spanAttributes = []string{
	"messaging.system", "messaging.operation.type",
	"cloudevents.event_id", "cloudevents.event_source", "cloudevents.event_type",
	"authflow.delivery", "authflow.stream_sequence", "authflow.dry_run", "authflow.outcome",
	"authflow.binary_mode", "authflow.plan_steps", "error.type",
	"db.system.name", "db.namespace", "db.operation.name",
	"graph.operation", "http.request.method", "server.address", "graph.client_request_id",
	"http.response.status_code", "graph.request_id",
}

// TestTracing runs events through a worker whose tracer provider and Graph
// client record into an in-memory exporter. The event's traceparent is the
// parent of the event's span; decode, policy, ledger, Graph and publish
// spans hang under it; each Graph request carried its own span's
// traceparent; an unsampled traceparent records nothing; and no attribute
// holds a user id, a UPN, a phone number, an address, a secret or the token.
func TestTracing(t *testing.T) {
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	e.startWorker(func(c *worker.Config) {
		g, err := graphclient.New(graphclient.Config{BaseURL: e.graph.GraphURL, Token: e.graph.Token, TracerProvider: tp})
		if err != nil {
			t.Fatal(err)
		}
		c.Graph, c.TracerProvider = g, tp
	})

	const (
		traceJoined   = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentJoined  = "00f067aa0ba902b7"
		tracePhone    = "0af7651916cd43dd8448eb211c80319c"
		traceUnsample = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	)
	joinedID, joinedUPN := uid(970), "traced.joiner@contoso.example"
	phoneID, phoneUPN := uid(971), "traced.phone@contoso.example"
	quietID, quietUPN := uid(972), "traced.quiet@contoso.example"
	e.seed(joinedID, joinedUPN)
	e.seed(phoneID, phoneUPN, mobile)
	e.seed(quietID, quietUPN, mobile)

	type sent struct{ id, traceparent string }
	publish := func(key, typ, subject, traceparent string, data any) sent {
		id, raw := e.event(typ, subject, data)
		if traceparent != "" {
			raw = []byte(strings.Replace(string(raw), `{`, `{"traceparent":"`+traceparent+`",`, 1))
		}
		e.publish(key, raw, nil)
		return sent{id, traceparent}
	}
	tap := map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo}
	joined := publish("tj", events.TypeEmployeeJoined, joinedUPN, "00-"+traceJoined+"-"+parentJoined+"-01",
		map[string]any{"mobilePhone": "+14255550177", "email": "traced.private@example.org", "tap": tap})
	phone := publish("tp", events.TypePhoneSet, phoneUPN, "00-"+tracePhone+"-b7ad6b7169203331-01",
		map[string]any{"phoneType": "office", "phoneNumber": "+44 20 7946 0958"})
	untraced := publish("tu", events.TypeEmailSet, phoneUPN, "", map[string]any{"emailAddress": "traced.second@example.org"})
	quiet := publish("tq", events.TypePhoneRemove, quietUPN, "00-"+traceUnsample+"-1111111111111111-00",
		map[string]any{"phoneType": "mobile"})
	invalid := publish("ti", events.TypePhoneSet, phoneUPN, "00-"+tracePhone+"-2222222222222222-01",
		map[string]any{"phoneType": "office", "phoneNumber": "not a number 4255550199"})
	missing := publish("tm", events.TypeTAPRemove, "traced.nobody@contoso.example", "", map[string]any{})

	res := e.results(6, 30*time.Second)
	for _, c := range []struct {
		s    sent
		want events.Status
	}{{joined, events.StatusSucceeded}, {phone, events.StatusSucceeded}, {untraced, events.StatusSucceeded},
		{quiet, events.StatusSucceeded}, {invalid, events.StatusRejected}, {missing, events.StatusFailed}} {
		if r := res[c.s.id]; r == nil || r.Data.Status != c.want {
			t.Fatalf("event %s: result %+v, want %s", c.s.id, r, c.want)
		}
	}
	tapValue := e.openSecret(t, res[joined.id], events.SecretTAP)

	// The event's span ends after its result is published: wait for the
	// final delivery of each (earlier ones may have been handed back while
	// another event held the user).
	final := map[string]bool{"succeeded": true, "rejected": true, "failed": true}
	var spans tracetest.SpanStubs
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans = exp.GetSpans()
		done := 0
		for _, s := range spans {
			if s.Name == "authflow.event" && final[attr(s, "authflow.outcome")] {
				done++
			}
		}
		if done >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d finished event spans after 10s, want 5 (every event but the unsampled one)", done)
		}
		time.Sleep(20 * time.Millisecond)
	}

	byTrace := map[trace.TraceID][]tracetest.SpanStub{}
	for _, s := range spans {
		byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s)
	}
	mustID := func(s string) trace.TraceID {
		id, err := trace.TraceIDFromHex(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if n := len(byTrace[mustID(traceUnsample)]); n != 0 {
		t.Errorf("an event whose traceparent is not sampled recorded %d spans", n)
	}

	// The joiner's trace: rooted at the event's traceparent, with every step.
	jt := byTrace[mustID(traceJoined)]
	root := findSpan(t, jt, "authflow.event")
	if !root.Parent.IsRemote() || root.Parent.SpanID().String() != parentJoined {
		t.Errorf("event span's parent = %s (remote %t), want the event's traceparent", root.Parent.SpanID(), root.Parent.IsRemote())
	}
	if root.SpanKind != trace.SpanKindConsumer || attr(root, "authflow.outcome") != "succeeded" ||
		attr(root, "cloudevents.event_type") != events.TypeEmployeeJoined || attr(root, "cloudevents.event_id") != joined.id {
		t.Errorf("event span: kind %s, attributes %v", root.SpanKind, root.Attributes)
	}
	names := map[string]int{}
	ids := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range jt {
		names[s.Name]++
		ids[s.SpanContext.SpanID()] = s
	}
	for _, want := range []string{"authflow.decode", "authflow.policy.auth", "authflow.policy.freshness", "authflow.plan",
		"authflow.policy.target", "authflow.ledger get", "authflow.ledger create", "authflow.ledger update",
		"authflow.publish result", "graph resolve user", "graph add phone", "graph add email", "graph create tap"} {
		if names[want] == 0 {
			t.Errorf("no %q span in the joiner's trace; spans: %v", want, names)
		}
	}
	for _, s := range jt {
		// Every span descends from the event's span.
		p := s
		for p.SpanContext.SpanID() != root.SpanContext.SpanID() {
			next, ok := ids[p.Parent.SpanID()]
			if !ok {
				t.Errorf("span %q is not under the event's span", s.Name)
				break
			}
			p = next
		}
	}

	// Each Graph request for the joiner carried the traceparent of its own span.
	graphSpans := map[string]bool{}
	for _, s := range jt {
		if strings.HasPrefix(s.Name, "graph ") {
			graphSpans["00-"+traceJoined+"-"+s.SpanContext.SpanID().String()+"-01"] = true
		}
	}
	reqs := 0
	for _, r := range e.graph.Requests() {
		if !strings.Contains(r.TraceParent, traceJoined) {
			continue
		}
		reqs++
		if !graphSpans[r.TraceParent] {
			t.Errorf("%s %s sent traceparent %s, which is no Graph span of the trace", r.Method, r.Route, r.TraceParent)
		}
	}
	if reqs == 0 || reqs != len(graphSpans) {
		t.Errorf("%d Graph requests in the joiner's trace for %d Graph spans", reqs, len(graphSpans))
	}
	// The unsampled event's requests still carry its trace, unsampled.
	for _, r := range e.graph.Requests() {
		if r.UserID == quietID && (!strings.Contains(r.TraceParent, traceUnsample) || !strings.HasSuffix(r.TraceParent, "-00")) {
			t.Errorf("unsampled event: %s %s sent traceparent %q", r.Method, r.Route, r.TraceParent)
		}
	}

	// The event without a traceparent starts a trace of its own; the
	// undecodable one starts one too (its traceparent is not trusted).
	for _, id := range []string{untraced.id, missing.id} {
		found := false
		for _, s := range spans {
			if s.Name == "authflow.event" && attr(s, "cloudevents.event_id") == id {
				found = true
				if s.Parent.IsValid() {
					t.Errorf("event %s without a traceparent: span has parent %s", id, s.Parent.SpanID())
				}
			}
		}
		if !found {
			t.Errorf("no span for event %s", id)
		}
	}
	var outcomes []string
	for _, s := range byTrace[mustID(tracePhone)] {
		if s.Name == "authflow.event" {
			outcomes = append(outcomes, attr(s, "authflow.outcome"))
		}
	}
	if !slices.Contains(outcomes, "succeeded") {
		t.Errorf("phone event's deliveries ended %v, want one succeeded", outcomes)
	}
	rejected := 0
	for _, s := range spans {
		if s.Name == "authflow.decode" && attr(s, "error.type") == string(events.CodeInvalidEvent) {
			rejected++
		}
	}
	if rejected != 1 {
		t.Errorf("%d decode spans with error.type invalid_event, want 1 (the undecodable event)", rejected)
	}

	// No user data, secret or token in any span.
	forbidden := []string{e.graph.Token, tapValue,
		joinedID, joinedUPN, phoneID, phoneUPN, quietID, quietUPN, "traced.nobody", "contoso.example",
		"traced.private", "traced.second", "example.org",
		"4255550177", "4255550100", "2079460958", "4255550199"}
	for _, s := range spans {
		values := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			if !slices.Contains(spanAttributes, string(kv.Key)) {
				t.Errorf("span %q: attribute %q is not on the list of allowed ones", s.Name, kv.Key)
			}
			values = append(values, kv.Value.Emit())
		}
		for _, ev := range s.Events {
			values = append(values, ev.Name)
			for _, kv := range ev.Attributes {
				values = append(values, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
		for _, v := range values {
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, v)
			for _, f := range forbidden {
				if f != "" && (strings.Contains(strings.ToLower(v), strings.ToLower(f)) || strings.Contains(digits, f)) {
					t.Errorf("span %q carries %q in %q", s.Name, f, v)
				}
			}
		}
	}
}

func findSpan(t *testing.T, spans []tracetest.SpanStub, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(spans))
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

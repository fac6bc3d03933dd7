package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
)

// TestMetricsAndHealth runs a few events and checks the metrics, their
// low-cardinality labels (no user, no event id, no phone number) and the
// health endpoints.
func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t)
	w := e.startWorker()
	reg := e.registry
	id, upn := uid(900), "metrics@contoso.example"
	e.seed(id, upn)
	evID := e.send("m1", events.TypePhoneSet, upn, map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550188"})
	e.publish("m2", []byte("not json"), nil)
	e.results(1, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, reg, "authflow_dlq_total", "reason=invalid_event") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	srv := httptest.NewServer(w.w.Handler(reg, nil))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`authflow_events_total{outcome="succeeded",type="authflow.phone.set.v1"} 1`,
		`authflow_events_total{outcome="rejected",type="invalid"}`,
		`authflow_dlq_total{reason="invalid_event"} 1`,
		`authflow_graph_requests_total{op=`,
		`authflow_event_duration_seconds_bucket{type="authflow.phone.set.v1"`,
		`authflow_events_in_flight 0`,
		`authflow_last_processed_timestamp_seconds`,
		`authflow_consumer_pending`,
		`authflow_consumer_ack_pending`,
		`authflow_retries_total`, `authflow_graph_throttled_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range []string{id, upn, evID, "4255550188"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics carries %q: labels must stay low-cardinality and anonymous", secret)
		}
	}
	if strings.Contains(e.logs.String(), "4255550188") {
		t.Error("a full phone number reached the logs")
	}

	// Not ready once stopped.
	w.stop()
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz after stop = %d, want 503", code)
	}
}

// metricValue returns the value of the series name{labels} (labels as
// "k=v" pairs in any order), or -1 when absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestMetricValues: each event is counted once in authflow_events_total
// (an undecodable one too), deliveries that end nothing are counted apart,
// and the series alerts use exist at zero from the start.
func TestMetricValues(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	reg := e.registry
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"authflow_dlq_total", []string{"reason=retries_exhausted"}},
		{"authflow_dlq_total", []string{"reason=invalid_event"}},
		{"authflow_events_total", []string{"type=authflow.mfa.reset.v1", "outcome=failed"}},
		{"authflow_deliveries_total", []string{"outcome=duplicate"}},
	} {
		if v := metricValue(t, reg, s.name, s.labels...); v != 0 {
			t.Errorf("%s%v = %v at start, want 0", s.name, s.labels, v)
		}
	}
	if v := metricValue(t, reg, "authflow_graph_concurrency_limit"); v < 1 {
		t.Errorf("authflow_graph_concurrency_limit = %v, want the throttle's limit", v)
	}
	if v := metricValue(t, reg, "authflow_build_info"); v != 1 {
		t.Errorf("authflow_build_info = %v", v)
	}
	e.seed(uid(960), "metrics2@contoso.example")
	e.publish("m", []byte(`{"not":"an event"}`), nil)
	id, raw := e.event(events.TypePhoneSet, "metrics2@contoso.example", map[string]any{"phoneType": "mobile", "phoneNumber": "+1 4255550190"})
	e.publish("m", raw, nil)
	e.results(1, 20*time.Second)
	e.publish("m", raw, nil) // a duplicate delivery (the stream's dedup does not apply: no msg id)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, reg, "authflow_deliveries_total", "outcome=duplicate") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("duplicate not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = id
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"type=invalid", "outcome=rejected"}, 1},
		{[]string{"type=authflow.phone.set.v1", "outcome=succeeded"}, 1},
	} {
		if v := metricValue(t, reg, "authflow_events_total", c.labels...); v != c.want {
			t.Errorf("authflow_events_total%v = %v, want %v", c.labels, v, c.want)
		}
	}
	if v := metricValue(t, reg, "authflow_dlq_total", "reason=invalid_event"); v != 1 {
		t.Errorf("authflow_dlq_total{invalid_event} = %v, want 1", v)
	}
	if v := metricValue(t, reg, "authflow_events_total", "outcome=dead_lettered"); v != -1 {
		t.Errorf("outcome dead_lettered still counted: %v", v)
	}
}

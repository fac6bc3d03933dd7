package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

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
	for testutil.CollectAndCount(reg, "authflow_dlq_total") == 0 && time.Now().Before(deadline) {
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

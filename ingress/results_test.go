package ingress

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authflow/authflow/events"
)

// receiver is a local results webhook endpoint that verifies each
// delivery's Standard Webhooks signature, as a ticketing system would.
type receiver struct {
	t      *testing.T
	secret []byte
	status func(n int) int // the answer to the n-th delivery (1-based)

	mu       sync.Mutex
	got      []delivery
	attempts int
}

type delivery struct {
	id, contentType string
	body            []byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.attempts++
	n, answer := rc.attempts, rc.status
	rc.mu.Unlock()
	id, err := VerifyWebhook([][]byte{rc.secret}, r.Header, body, time.Now(), 5*time.Minute)
	if err != nil {
		rc.t.Errorf("delivery %d: signature: %v", n, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	status := http.StatusNoContent
	if answer != nil {
		status = answer(n)
	}
	if status < 300 {
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{id: id, contentType: r.Header.Get("Content-Type"), body: body})
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts
}

// resultsHarness runs the ingress with a results webhook for hr/bearer
// (and its sub-paths) pointing at rc.
func resultsHarness(t *testing.T, rc *receiver) (*harness, context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	rc.secret, _ = ParseWebhookSecret(whSecretB64)
	config := testConfig()
	h := newHarness(t, config, func(c *Config) {
		c.Sources["hr/bearer"].SubPaths = true
		c.Sources["hr/bearer"].Results = &ResultsWebhook{
			URL: srv.URL + "/results", Secrets: [][]byte{rc.secret}, Timeout: 2 * time.Second,
			InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsed: 400 * time.Millisecond,
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.srv.RunResults(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// The consumer delivers new results only: wait until it exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.js.Consumer(ctx, ResultsStream, ResultsConsumerName("hr/bearer")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the results consumer was not created")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h, cancel
}

// publishResult stores a result as the worker does.
func publishResult(t *testing.T, h *harness, source, id string) []byte {
	t.Helper()
	res := events.NewResult(events.EventKey(source, id), "adele.vance@contoso.example",
		events.ResultData{Event: events.EventRef{Source: source, ID: id, Type: events.TypeMethodsInventory}, Status: events.StatusSucceeded}, time.Now())
	body, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(ResultsSubjectPrefix + "upn-0123")
	m.Data = body
	m.Header.Set(HeaderEventSource, source)
	m.Header.Set(HeaderEventID, id)
	m.Header.Set(HeaderStatus, string(events.StatusSucceeded))
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return body
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResultsWebhookDelivers(t *testing.T) {
	rc := &receiver{t: t}
	// The first attempt fails: the second must come, with the same id.
	rc.status = func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	h, _ := resultsHarness(t, rc)
	publishResult(t, h, "someone/else", "x-1") // another source's: not delivered
	want := publishResult(t, h, "hr/bearer", "ev-1")
	sub := publishResult(t, h, "hr/bearer/emea", "ev-2") // a sub-path of the source
	waitFor(t, "two deliveries", func() bool { return len(rc.deliveries()) == 2 })
	got := rc.deliveries()
	if got[0].id != events.EventKey("hr/bearer", "ev-1") || string(got[0].body) != string(want) || got[0].contentType != MediaTypeCloudEvents {
		t.Fatalf("delivery 0: %+v", got[0])
	}
	if got[1].id != events.EventKey("hr/bearer/emea", "ev-2") || string(got[1].body) != string(sub) {
		t.Fatalf("delivery 1: %+v", got[1])
	}
	if rc.count() != 3 {
		t.Fatalf("%d attempts, want 3 (one retry)", rc.count())
	}
	if n := len(h.stored(DLQStream)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

func TestResultsWebhookParksInDLQ(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		attempts func(int) bool
	}{
		{"retries run out", http.StatusInternalServerError, func(n int) bool { return n > 1 }},
		{"gone: not retried", http.StatusGone, func(n int) bool { return n == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{t: t, status: func(int) int { return tc.status }}
			h, _ := resultsHarness(t, rc)
			body := publishResult(t, h, "hr/bearer", "ev-dlq")
			var dl []byte
			waitFor(t, "a dead letter", func() bool {
				msgs := h.stored(DLQStream)
				if len(msgs) == 0 {
					return false
				}
				m := msgs[0]
				hd := m.Headers()
				if hd.Get(HeaderDLQReason) != DLQReasonResultsWebhook || hd.Get(HeaderDLQSubject) != ResultsSubjectPrefix+"upn-0123" ||
					m.Subject() != DLQSubjectPrefix+"upn-0123" || hd.Get(HeaderDLQMessage) == "" || hd.Get(HeaderEventSource) != "hr/bearer" {
					t.Fatalf("dead letter %s %v", m.Subject(), hd)
				}
				dl = m.Data()
				return true
			})
			if string(dl) != string(body) {
				t.Fatal("the dead letter does not hold the result")
			}
			if n := rc.count(); !tc.attempts(n) {
				t.Fatalf("%d attempts", n)
			}
			// The result is acked: the next one is delivered.
			rc.mu.Lock()
			rc.status = nil
			rc.mu.Unlock()
			publishResult(t, h, "hr/bearer", "ev-next")
			waitFor(t, "the next delivery", func() bool { return len(rc.deliveries()) == 1 })
		})
	}
}

package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/ingress"
)

// The HTTP ingress in the deployment: its NATS user runs the ingress's own code.

// TestIngressUserRunsTheIngress: what deploy/README.md says the ingress user may do is what
// the ingress does. The ingress, connected as the ingress user of accounts.conf with its
// inbox prefix, reports ready, stores an event, answers Prefer: wait with its result,
// delivers that result to the source's results webhook and parks the next one, which the
// webhook refuses, in the DLQ, all without a single permission violation.
func TestIngressUserRunsTheIngress(t *testing.T) {
	s, pw := permServer(t)
	admin, _ := connect(t, s, "admin", pw["admin"])
	adminJS, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := connect(t, s, "worker", pw["worker"])
	workerJS, err := jetstream.New(worker)
	if err != nil {
		t.Fatal(err)
	}
	nc, viol := connect(t, s, "ingress", pw["ingress"])

	// The source's results endpoint: takes the first result, then answers 410 Gone, which
	// is not retried.
	var calls atomic.Int32
	delivered := make(chan []byte, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) > 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		delivered <- body
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	const source, token = "hr/ingress", "deploy-test-ingress-token"
	sum := sha256.Sum256([]byte(token))
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	cfg, err := ingress.ParseConfig([]byte(`version: 1
sources:
  `+source+`:
    auth: {bearer: {tokenSHA256: ["`+hex.EncodeToString(sum[:])+`"]}}
    signingSeed: env:SEED
    results:
      url: `+receiver.URL+`
      secrets: ["whsec_`+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))+`"]
      initialInterval: 50ms
      maxInterval: 100ms
      maxElapsed: 2s
`), ingress.LoadOptions{LookupEnv: func(name string) (string, bool) { return string(seed), name == "SEED" }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Options{Config: cfg, NATS: nc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resultsDone := make(chan struct{})
	go func() { _ = srv.RunResults(ctx); close(resultsDone) }()
	defer func() { cancel(); <-resultsDone }()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("the results consumer", func() bool {
		_, err := adminJS.Consumer(ctx, "AUTHFLOW_RESULTS", ingress.ResultsConsumerName(source))
		return err == nil
	})
	if resp, err := http.Get(hs.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	stored := func() uint64 {
		st, err := adminJS.Stream(ctx, "AUTHFLOW_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	// post sends one event; answerAs publishes its result as the worker would.
	post := func(id string, wait bool) (*http.Response, []byte) {
		raw, err := events.MarshalEvent(id, source, events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/events", bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ingress.MediaTypeCloudEvents)
		if wait {
			req.Header.Set("Prefer", "wait=20")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	answerAs := func(id, resultSubject string) []byte {
		now := time.Now().UTC()
		key := events.EventKey(source, id)
		res, err := events.NewResult(key, "adele.vance@contoso.example", events.ResultData{
			Event: events.EventRef{Source: source, ID: id, Type: events.TypeMethodsInventory},
			User:  events.UserInfo{Ref: "adele.vance@contoso.example"}, Status: events.StatusSucceeded,
			Attempts: 1, ReceivedAt: now, StartedAt: now, FinishedAt: now,
		}, now).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(resultSubject)
		m.Data = res
		m.Header.Set(ingress.HeaderEventSource, source)
		m.Header.Set(ingress.HeaderEventID, id)
		if _, err := workerJS.PublishMsg(ctx, m, jetstream.WithMsgID(key+":result")); err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Prefer: wait: the answer is the result the worker publishes meanwhile.
	type answer struct {
		resp *http.Response
		body []byte
	}
	waited := make(chan answer, 1)
	go func() { r, b := post("deploy-1", true); waited <- answer{r, b} }()
	eventually("the event stored", func() bool { return stored() == 1 })
	st, _ := adminJS.Stream(ctx, "AUTHFLOW_EVENTS")
	first, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if first.Header.Get(events.HeaderSigner) != pub || events.Verify(first.Data, first.Header.Get(events.HeaderSignature), pub) != nil {
		t.Errorf("the stored event is not signed with the source's key %s", pub)
	}
	user, err := events.ParseUser("adele.vance@contoso.example")
	if err != nil {
		t.Fatal(err)
	}
	result := answerAs("deploy-1", ingress.ResultsSubjectPrefix+ingress.UserKey(user))
	a := <-waited
	if a.resp == nil || a.resp.StatusCode != http.StatusOK || !bytes.Equal(a.body, result) {
		t.Fatalf("Prefer: wait: %v %s, want 200 with the result", a.resp, a.body)
	}
	select {
	case got := <-delivered:
		if !bytes.Equal(got, result) {
			t.Errorf("delivered %s, want the result", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the results webhook was not called")
	}

	// The next result is refused for good: parked in the DLQ.
	resp, body := post("deploy-2", false)
	if resp == nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %v %s", resp, body)
	}
	var acc ingress.Accepted
	if err := json.Unmarshal(body, &acc); err != nil {
		t.Fatal(err)
	}
	answerAs("deploy-2", acc.ResultSubject)
	eventually("the refused result in the DLQ", func() bool {
		dlq, err := adminJS.Stream(ctx, "AUTHFLOW_DLQ")
		if err != nil {
			return false
		}
		m, err := dlq.GetLastMsgForSubject(ctx, "authflow.dlq.>")
		return err == nil && m.Header.Get(ingress.HeaderDLQReason) == ingress.DLQReasonResultsWebhook
	})

	select {
	case v := <-viol:
		t.Errorf("the ingress user hit a permission violation: %v", v)
	default:
	}
	if err := errors.Join(nc.LastError()); err != nil && errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("last error of the ingress connection: %v", err)
	}
}

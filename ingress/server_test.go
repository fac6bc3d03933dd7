package ingress

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authflow/authflow/events"
)

const ctStructured = MediaTypeCloudEvents

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func basicHeader(user, pw string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))}
}

func jiraSignature(body []byte) string { return hubSignature(jiraSecret, body) }

// hubSignature is Jira's and GitHub's X-Hub-Signature value.
func hubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// checkStored asserts that the stream holds exactly the event raw,
// published under its key, signed by the ingress's key for the source.
func (h *harness) checkStored(raw []byte, source, seedEnv string) {
	h.t.Helper()
	msgs := h.stored(EventsStream)
	if len(msgs) != 1 {
		h.t.Fatalf("%d events stored, want 1", len(msgs))
	}
	m := msgs[0]
	if string(m.Data()) != string(raw) {
		h.t.Fatalf("stored %s\nwant   %s", m.Data(), raw)
	}
	ev, err := events.Decoder{}.Decode(m.Data())
	if err != nil {
		h.t.Fatal(err)
	}
	if ev.Source != source {
		h.t.Fatalf("source %s, want %s", ev.Source, source)
	}
	hd := m.Headers()
	if got := hd.Get(nats.MsgIdHdr); got != events.EventKey(ev.Source, ev.ID) {
		h.t.Fatalf("Nats-Msg-Id %q, want the event key", got)
	}
	if want := EventsSubjectPrefix + UserKey(ev.User); m.Subject() != want {
		h.t.Fatalf("subject %s, want %s", m.Subject(), want)
	}
	pub, _ := h.seeds[seedEnv].PublicKey()
	if hd.Get(events.HeaderSigner) != pub {
		h.t.Fatalf("signer %s, want the ingress's key for %s (%s)", hd.Get(events.HeaderSigner), source, pub)
	}
	if err := events.Verify(m.Data(), hd.Get(events.HeaderSignature), hd.Get(events.HeaderSigner)); err != nil {
		h.t.Fatalf("signature: %v", err)
	}
}

func TestEventsStructuredMode(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	raw := event(t, "hr/bearer", "ev-1")
	r := h.post("/v1/events", raw, append(bearer(tokenHR), "Content-Type", ctStructured+"; charset=utf-8")...)
	a := r.accepted(t)
	ev, _ := events.Decoder{}.Decode(raw)
	key := UserKey(ev.User)
	want := Accepted{Key: events.EventKey("hr/bearer", "ev-1"), Subject: "authflow.events." + key,
		ResultSubject: "authflow.results." + key, Stream: EventsStream, Sequence: 1}
	if a != want {
		t.Fatalf("answer %+v\nwant   %+v", a, want)
	}
	h.checkStored(raw, "hr/bearer", "SEED_HR")
}

func TestEventsBinaryMode(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	ts := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r := h.post("/v1/events", []byte(`{ "dryRun": true }`), append(bearer(tokenHR),
		"Content-Type", "application/json",
		"ce-specversion", "1.0",
		"Ce-Id", "bin%2D1", // percent-encoded, decoded once
		"ce-source", `"hr/bearer"`, // a quoted string, as older senders write
		"ce-type", events.TypeMethodsInventory,
		"ce-subject", "adele.vance@contoso.example",
		"ce-time", ts.Format(time.RFC3339),
	)...)
	r.accepted(t)
	want := `{"specversion":"1.0","id":"bin-1","source":"hr/bearer","type":"authflow.methods.inventory.v1",` +
		`"subject":"adele.vance@contoso.example","time":"2025-03-01T12:00:00Z","datacontenttype":"application/json","data":{ "dryRun": true }}`
	h.checkStored([]byte(want), "hr/bearer", "SEED_HR")
}

func TestEventsBatchMode(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	good := event(t, "hr/bearer", "b-1")
	invalid := []byte(`{"specversion":"1.0","id":"b-2","source":"hr/bearer","type":"authflow.methods.inventory.v1","subject":"adele.vance@contoso.example","time":"2025-01-01T00:00:00Z","data":{"bogus":1}}`)
	other := event(t, "someone/else", "b-3")
	body := []byte("[" + string(good) + ",\n" + string(invalid) + "," + string(other) + "]")
	r := h.post("/v1/events", body, append(bearer(tokenHR), "Content-Type", MediaTypeCloudEventsBatch)...)
	if r.status != http.StatusMultiStatus {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out struct {
		Events []struct {
			Status  int          `json:"status"`
			Key     string       `json:"key"`
			Problem *problemJSON `json:"problem"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 3 {
		t.Fatalf("%d statuses: %s", len(out.Events), r.body)
	}
	if e := out.Events[0]; e.Status != 202 || e.Key != events.EventKey("hr/bearer", "b-1") || e.Problem != nil {
		t.Errorf("event 0: %+v", e)
	}
	if e := out.Events[1]; e.Status != 400 || e.Problem == nil || e.Problem.Code != "invalid_event" || e.Problem.Field != "data.bogus" {
		t.Errorf("event 1: %+v %+v", e, e.Problem)
	}
	if e := out.Events[2]; e.Status != 403 || e.Problem == nil || e.Problem.Code != "policy_denied" || e.Problem.Field != "source" {
		t.Errorf("event 2: %+v %+v", e, e.Problem)
	}
	h.checkStored(good, "hr/bearer", "SEED_HR")

	// An empty batch is a batch.
	r = h.post("/v1/events", []byte(`[]`), append(bearer(tokenHR), "Content-Type", MediaTypeCloudEventsBatch)...)
	if r.status != http.StatusMultiStatus || !strings.Contains(string(r.body), `"events":[]`) {
		t.Fatalf("empty batch: %d %s", r.status, r.body)
	}
}

func TestEveryAuthKind(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	webhookBody := event(t, "dev/webhook", "wh-1")
	jiraBody := event(t, "itsm/jira", "jira-1")
	tests := []struct {
		name, source, seed string
		body               []byte
		client             *http.Client
		headers            []string
	}{
		{"bearer", "hr/bearer", "SEED_HR", event(t, "hr/bearer", "a-1"), h.client, bearer(tokenHR)},
		{"basic, sub-path source", "itsm/basic/emea", "SEED_BASIC", event(t, "itsm/basic/emea", "a-2"), h.client, basicHeader(basicUser, basicPass)},
		{"standard webhooks", "dev/webhook", "SEED_WH", webhookBody, h.client, signedWebhook(t, "msg_1", time.Now(), webhookBody)},
		{"hmac (Jira)", "itsm/jira", "SEED_JIRA", jiraBody, h.client, []string{"X-Hub-Signature", jiraSignature(jiraBody)}},
		{"mtls", "itsm/mtls", "SEED_MTLS", event(t, "itsm/mtls", "a-5"), h.mtls, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.client, http.MethodPost, "/v1/events", tc.body, append(tc.headers, "Content-Type", ctStructured)...)
			r.accepted(t)
			msgs := h.stored(EventsStream)
			if len(msgs) != i+1 {
				t.Fatalf("%d stored", len(msgs))
			}
			m := msgs[i]
			pub, _ := h.seeds[tc.seed].PublicKey()
			if m.Headers().Get(events.HeaderSigner) != pub || string(m.Data()) != string(tc.body) {
				t.Fatalf("stored %s signed by %s", m.Data(), m.Headers().Get(events.HeaderSigner))
			}
		})
	}
	got := testutil.ToFloat64(h.srv.metrics.requests.WithLabelValues("itsm/mtls", "events", "202"))
	if got != 1 {
		t.Fatalf("authflow_ingress_requests_total{itsm/mtls,events,202} = %v", got)
	}
}

// Every refused request answers problem+json with the decoder's code and
// path, and stores nothing.
func TestRefusedRequestsPublishNothing(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	good := event(t, "hr/bearer", "r-1")
	wh := event(t, "dev/webhook", "r-wh")
	whHeaders := signedWebhook(t, "msg_replay", time.Now(), wh)
	// Accept one Standard Webhooks request, then replay it (the only
	// stored event; the count below allows for it).
	h.post("/v1/events", wh, append(whHeaders, "Content-Type", ctStructured)...).accepted(t)
	h.post("/v1/events", event(t, "rl/limited", "rl-1"), append(bearer(tokenLimit), "Content-Type", ctStructured)...).accepted(t)

	big := append([]byte(`{"pad":"`), make([]byte, MaxEventBytes)...)
	tests := []struct {
		name    string
		client  *http.Client
		body    []byte
		headers []string
		status  int
		code    string
		field   string
	}{
		{"no credentials", nil, good, []string{"Content-Type", ctStructured}, 401, "unauthenticated", ""},
		{"wrong token", nil, good, append(bearer("nope"), "Content-Type", ctStructured), 401, "unauthenticated", ""},
		{"wrong basic password", nil, event(t, "itsm/basic", "x"), append(basicHeader(basicUser, "nope"), "Content-Type", ctStructured), 401, "unauthenticated", ""},
		{"wrong basic user", nil, event(t, "itsm/basic", "x"), append(basicHeader("mallory", basicPass), "Content-Type", ctStructured), 401, "unauthenticated", ""},
		{"hmac over another body", nil, good, []string{"X-Hub-Signature", jiraSignature([]byte("{}")), "Content-Type", ctStructured}, 401, "unauthenticated", ""},
		{"stale webhook timestamp", nil, wh, append(signedWebhook(t, "msg_old", time.Now().Add(-6*time.Minute), wh), "Content-Type", ctStructured), 401, "unauthenticated", ""},
		{"two sources' credentials", h.mtls, good, append(bearer(tokenHR), "Content-Type", ctStructured), 401, "unauthenticated", ""},
		{"replayed webhook-id", nil, wh, append(whHeaders, "Content-Type", ctStructured), 409, "replayed", "webhook-id"},
		{"source is not the sender", nil, event(t, "itsm/jira", "x"), append(bearer(tokenHR), "Content-Type", ctStructured), 403, "policy_denied", "source"},
		{"sub-path not allowed", nil, event(t, "hr/bearer/sub", "x"), append(bearer(tokenHR), "Content-Type", ctStructured), 403, "policy_denied", "source"},
		{"invalid event", nil, []byte(`{"specversion":"1.0"}`), append(bearer(tokenHR), "Content-Type", ctStructured), 400, "invalid_event", "id"},
		{"unknown type", nil, []byte(strings.Replace(string(good), events.TypeMethodsInventory, "authflow.nope.v1", 1)), append(bearer(tokenHR), "Content-Type", ctStructured), 400, "unknown_type", "type"},
		{"duplicate key", nil, []byte(strings.Replace(string(good), `"id":`, `"id":"a","id":`, 1)), append(bearer(tokenHR), "Content-Type", ctStructured), 400, "invalid_event", "id"},
		{"over 64 KiB", nil, big, append(bearer(tokenHR), "Content-Type", ctStructured), 413, "payload_too_large", ""},
		{"wrong content type", nil, good, append(bearer(tokenHR), "Content-Type", "text/plain"), 415, "unsupported_media_type", ""},
		{"other event format", nil, good, append(bearer(tokenHR), "Content-Type", "application/cloudevents+avro"), 415, "unsupported_media_type", ""},
		{"no content type", nil, good, bearer(tokenHR), 415, "unsupported_media_type", ""},
		{"binary with a different ce-datacontenttype", nil, []byte(`{}`), append(bearer(tokenHR), "Content-Type", "application/json", "ce-id", "x", "ce-datacontenttype", "application/vnd.x+json"), 400, "invalid_event", "datacontenttype"},
		{"binary without ce- headers", nil, []byte(`{}`), append(bearer(tokenHR), "Content-Type", "application/json"), 400, "invalid_event", "specversion"},
		{"binary with an empty body", nil, nil, append(bearer(tokenHR), "Content-Type", "application/json", "ce-id", "x"), 400, "invalid_event", "data"},
		{"binary with a repeated ce- header", nil, []byte(`{}`), append(bearer(tokenHR), "Content-Type", "application/json", "ce-id", "x", "ce-id", "y"), 400, "invalid_event", "id"},
		{"binary with bad percent-encoding", nil, []byte(`{}`), append(bearer(tokenHR), "Content-Type", "application/json", "ce-id", "%C0%A0"), 400, "invalid_event", "id"},
		{"rate limit", nil, event(t, "rl/limited", "rl-2"), append(bearer(tokenLimit), "Content-Type", ctStructured), 429, "rate_limited", ""},
		{"signature pass-through not allowed", nil, good, append(bearer(tokenHR), "Content-Type", ctStructured, events.HeaderSignature, strings.Repeat("A", 86), events.HeaderSigner, "UABC"), 403, "bad_signature", ""},
		{"GET", nil, nil, bearer(tokenHR), 405, "method_not_allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client
			if c == nil {
				c = h.client
			}
			method := http.MethodPost
			if tc.name == "GET" {
				method = http.MethodGet
			}
			r := h.do(c, method, "/v1/events", tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if p.Code != tc.code || p.Field != tc.field {
				t.Fatalf("code %q field %q, want %q %q (%s)", p.Code, p.Field, tc.code, tc.field, p.Detail)
			}
			switch tc.status {
			case 429:
				if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
					t.Fatalf("Retry-After %q", ra)
				}
			case 401:
				if r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate")
				}
			}
		})
	}
	if n := len(h.stored(EventsStream)); n != 2 {
		t.Fatalf("%d events stored, want only the 2 accepted before the refusals", n)
	}
	// The log names what happened, never a credential.
	for _, secret := range []string{tokenHR, tokenLimit, basicPass, "nope", jiraSecret, whHeaders[5]} {
		if strings.Contains(h.logs.String(), secret) {
			t.Fatalf("the log holds a secret (%q)", secret)
		}
	}
	if !strings.Contains(h.logs.String(), "status=401") {
		t.Fatalf("the refusals are not logged: %s", h.logs.String())
	}
}

func TestSenderRetryStoresOneEvent(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	raw := event(t, "hr/bearer", "retry-1")
	first := h.post("/v1/events", raw, append(bearer(tokenHR), "Content-Type", ctStructured)...).accepted(t)
	second := h.post("/v1/events", raw, append(bearer(tokenHR), "Content-Type", ctStructured)...).accepted(t)
	if first.Duplicate || !second.Duplicate || first.Key != second.Key || first.Sequence != second.Sequence {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	// A Standard Webhooks sender retries with a new timestamp and signature.
	wh := event(t, "dev/webhook", "retry-2")
	h.post("/v1/events", wh, append(signedWebhook(t, "msg_a", time.Now(), wh), "Content-Type", ctStructured)...).accepted(t)
	if n := len(h.stored(EventsStream)); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
}

// With NATS down the ingress answers 503 and stores nothing; once NATS is
// back the sender's retry is stored, once.
func TestNATSDownAnswers503ThenRecovers(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	h.srv.cfg.PublishTimeout = time.Second
	addr := h.ns.ClientURL()
	raw := event(t, "hr/bearer", "down-1")
	hdr := append(bearer(tokenHR), "Content-Type", ctStructured)

	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	r := h.post("/v1/events", raw, hdr...)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if p := r.problem(t); p.Code != "unavailable" {
		t.Fatalf("code %s", p.Code)
	}
	if rr := h.do(h.client, http.MethodGet, "/readyz", nil); rr.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d while NATS is down", rr.status)
	}

	// The same store directory and port: the stream is still there.
	var portNum int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &portNum)
	h.ns = startNATS(t, h.dir, portNum)
	deadline := time.Now().Add(10 * time.Second)
	for !h.nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r = h.post("/v1/events", raw, hdr...)
	a := r.accepted(t)
	if a.Duplicate {
		t.Fatal("the event was stored while NATS was down")
	}
	h.post("/v1/events", raw, hdr...).accepted(t) // a second retry is a no-op
	if n := len(h.stored(EventsStream)); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	if rr := h.do(h.client, http.MethodGet, "/readyz", nil); rr.status != http.StatusOK {
		t.Fatalf("/readyz %d", rr.status)
	}
}

// fakeWorker answers every stored event with a succeeded result, as the
// worker does (same subject scheme, headers and ids).
func fakeWorker(t *testing.T, h *harness) (stop func()) {
	t.Helper()
	sub, err := h.nc.Subscribe(EventsSubjectPrefix+"*", func(m *nats.Msg) {
		ev, err := events.Decoder{}.Decode(m.Data)
		if err != nil {
			return
		}
		res := events.NewResult(ev.Key(), ev.Subject, events.ResultData{Event: ev.Ref(), Status: events.StatusSucceeded}, time.Now())
		body, _ := res.Marshal()
		out := nats.NewMsg(ResultsSubjectPrefix + strings.TrimPrefix(m.Subject, EventsSubjectPrefix))
		out.Data = body
		out.Header.Set(HeaderEventSource, ev.Source)
		out.Header.Set(HeaderEventID, ev.ID)
		out.Header.Set(HeaderStatus, string(events.StatusSucceeded))
		if _, err := h.js.PublishMsg(context.Background(), out); err != nil {
			t.Errorf("publish result: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = h.nc.Flush()
	return func() { _ = sub.Unsubscribe(); _ = h.nc.Flush() }
}

func TestPreferWait(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	hdr := append(bearer(tokenHR), "Content-Type", ctStructured)

	// No worker: the wait ends with 202.
	r := h.post("/v1/events", event(t, "hr/bearer", "w-0"), append(hdr, "Prefer", "wait=1")...)
	r.accepted(t)
	if r.header.Get("Preference-Applied") != "wait=1" {
		t.Fatalf("Preference-Applied %q", r.header.Get("Preference-Applied"))
	}

	stop := fakeWorker(t, h)
	r = h.post("/v1/events", event(t, "hr/bearer", "w-1"), append(hdr, "Prefer", "respond-async, wait=10")...)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != MediaTypeCloudEvents {
		t.Fatalf("status %d %s: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	res, err := events.DecodeResult(r.body)
	if err != nil || res.Data.Event.ID != "w-1" || res.ID != events.EventKey("hr/bearer", "w-1") {
		t.Fatalf("result %+v %v", res, err)
	}
	// With the worker gone, a retry of the finished event finds its
	// stored result.
	stop()
	r = h.post("/v1/events", event(t, "hr/bearer", "w-1"), append(hdr, "Prefer", "wait=99")...)
	if res, err := events.DecodeResult(r.body); r.status != http.StatusOK || err != nil || res.Data.Event.ID != "w-1" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.header.Get("Preference-Applied") != "wait=30" {
		t.Fatalf("Preference-Applied %q, want the cap", r.header.Get("Preference-Applied"))
	}
}

func TestPassThroughSignature(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	sender, _ := nkeys.CreateUser()
	raw := event(t, "pass/through", "p-1")
	sig, pub, _ := events.Sign(raw, sender)
	hdr := append(bearer(tokenPass), "Content-Type", ctStructured)

	r := h.post("/v1/events", raw, append(hdr, events.HeaderSignature, sig, events.HeaderSigner, pub)...)
	r.accepted(t)
	m := h.stored(EventsStream)[0]
	if m.Headers().Get(events.HeaderSigner) != pub || m.Headers().Get(events.HeaderSignature) != sig {
		t.Fatal("the sender's signature did not pass through")
	}
	// A wrong one is refused before anything is stored.
	other := event(t, "pass/through", "p-2")
	r = h.post("/v1/events", other, append(hdr, events.HeaderSignature, sig, events.HeaderSigner, pub)...)
	if p := r.problem(t); r.status != 401 || p.Code != "bad_signature" {
		t.Fatalf("%d %+v", r.status, p)
	}
	if n := len(h.stored(EventsStream)); n != 1 {
		t.Fatalf("%d stored", n)
	}
}

func TestHealthAndUnknownPaths(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	if r := h.do(h.client, http.MethodGet, "/healthz", nil); r.status != 200 {
		t.Fatalf("/healthz %d", r.status)
	}
	if r := h.do(h.client, http.MethodGet, "/readyz", nil); r.status != 200 {
		t.Fatalf("/readyz %d %s", r.status, r.body)
	}
	r := h.do(h.client, http.MethodGet, "/nope", nil)
	if p := r.problem(t); r.status != 404 || p.Code != "not_found" {
		t.Fatalf("%d %+v", r.status, p)
	}
}

package ingress

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's test vectors (the reference
// libraries' tests in the standard-webhooks repository).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooksSignVector(t *testing.T) {
	key, err := ParseWebhookSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := SignWebhook([][]byte{key}, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if got != vectorSignature {
		t.Fatalf("signature %s, want %s", got, vectorSignature)
	}
	// The prefix is optional, as in the reference libraries.
	bare, err := ParseWebhookSecret(strings.TrimPrefix(vectorSecret, "whsec_"))
	if err != nil || string(bare) != string(key) {
		t.Fatalf("secret without whsec_: %v", err)
	}
}

func TestStandardWebhooksVerifyVectors(t *testing.T) {
	key, _ := ParseWebhookSecret(vectorSecret)
	other, _ := ParseWebhookSecret("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
	const tolerance = 5 * time.Minute
	now := time.Unix(vectorTimestamp, 0)
	headers := func(ts time.Time) http.Header {
		h := http.Header{}
		h.Set(HeaderWebhookID, vectorID)
		h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderWebhookSignature, SignWebhook([][]byte{key}, vectorID, ts, []byte(vectorPayload)))
		return h
	}
	tests := []struct {
		name    string
		modify  func(http.Header)
		ts      time.Time
		secrets [][]byte
		ok      bool
	}{
		{name: "valid signature", ts: now, ok: true},
		{name: "the vector's own header", ts: now, modify: func(h http.Header) { h.Set(HeaderWebhookSignature, vectorSignature) }, ok: true},
		{name: "missing id", ts: now, modify: func(h http.Header) { h.Del(HeaderWebhookID) }},
		{name: "missing timestamp", ts: now, modify: func(h http.Header) { h.Del(HeaderWebhookTimestamp) }},
		{name: "missing signature", ts: now, modify: func(h http.Header) { h.Del(HeaderWebhookSignature) }},
		{name: "invalid timestamp", ts: now, modify: func(h http.Header) { h.Set(HeaderWebhookTimestamp, "hello") }},
		{name: "invalid signature", ts: now, modify: func(h http.Header) {
			h.Set(HeaderWebhookSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
		}},
		{name: "not base64", ts: now, modify: func(h http.Header) { h.Set(HeaderWebhookSignature, "v1,dawfeoifkpqwoekfpqoekf") }},
		{name: "partial signature", ts: now, modify: func(h http.Header) { h.Set(HeaderWebhookSignature, h.Get(HeaderWebhookSignature)[:8]) }},
		{name: "empty v1", ts: now, modify: func(h http.Header) { h.Set(HeaderWebhookSignature, "v1,") }},
		{name: "old timestamp", ts: now.Add(-tolerance - time.Second)},
		{name: "new timestamp", ts: now.Add(tolerance + time.Second)},
		{name: "edge of tolerance", ts: now.Add(-tolerance), ok: true},
		{name: "multi signature, valid among invalid", ts: now, modify: func(h http.Header) {
			h.Set(HeaderWebhookSignature, strings.Join([]string{
				"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
				"v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
				h.Get(HeaderWebhookSignature),
				"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
			}, " "))
		}, ok: true},
		{name: "rotation: old and new secret configured", ts: now, secrets: [][]byte{other, key}, ok: true},
		{name: "wrong secret", ts: now, secrets: [][]byte{other}},
		{name: "tampered body", ts: now, modify: func(h http.Header) {
			h.Set(HeaderWebhookSignature, SignWebhook([][]byte{key}, vectorID, now, []byte(`{"test": 1}`)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := headers(tc.ts)
			if tc.modify != nil {
				tc.modify(h)
			}
			secrets := tc.secrets
			if secrets == nil {
				secrets = [][]byte{key}
			}
			id, err := VerifyWebhook(secrets, h, []byte(vectorPayload), now, tolerance)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && id != vectorID {
				t.Fatalf("id %q", id)
			}
		})
	}
}

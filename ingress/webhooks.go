package ingress

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks 1.0 headers.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// webhookSecretPrefix marks a Standard Webhooks symmetric secret.
const webhookSecretPrefix = "whsec_"

// ParseWebhookSecret decodes a Standard Webhooks secret: "whsec_" and the
// base64 of the key (the prefix may be left out, as the reference
// libraries allow).
func ParseWebhookSecret(s string) ([]byte, error) {
	s = strings.TrimPrefix(s, webhookSecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, errors.New("not a Standard Webhooks secret (whsec_ followed by base64)")
	}
	return key, nil
}

// SignWebhook returns the webhook-signature value for one message: "v1,"
// and the base64 HMAC-SHA256 of "id.timestamp.body", one per secret,
// space-separated (several while a secret is rotated).
func SignWebhook(secrets [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, key := range secrets {
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(webhookMAC(key, id, ts.Unix(), body))
	}
	return strings.Join(sigs, " ")
}

func webhookMAC(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// errNoWebhookHeaders means the request carries no Standard Webhooks
// signature at all (as opposed to a wrong one).
var errNoWebhookHeaders = errors.New("no webhook-signature header")

// maxWebhookIDLen bounds webhook-id; the specification sets no limit, and
// the replay cache keeps each id for a while.
const maxWebhookIDLen = 256

// VerifyWebhook checks a Standard Webhooks signature: the three headers are
// present, the timestamp is within tolerance of now (either way), and one
// of the v1 signatures is the HMAC of "id.timestamp.body" under one of
// secrets, compared in constant time. It returns the webhook-id.
func VerifyWebhook(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) (string, error) {
	id, tsStr, sigHdr := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	switch {
	case sigHdr == "" && id == "" && tsStr == "":
		return "", errNoWebhookHeaders
	case id == "" || tsStr == "" || sigHdr == "":
		return "", errors.New("webhook-id, webhook-timestamp and webhook-signature must all be set")
	case len(id) > maxWebhookIDLen || strings.ContainsFunc(id, isCtlOrSpace):
		return "", fmt.Errorf("webhook-id must be 1..%d printable characters", maxWebhookIDLen)
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil || ts < 0 || len(tsStr) > 12 {
		return "", errors.New("webhook-timestamp must be a Unix time in seconds")
	}
	sent := time.Unix(ts, 0)
	if d := now.Sub(sent); d > tolerance || d < -tolerance {
		return "", fmt.Errorf("webhook-timestamp is more than %s from the ingress's clock", tolerance)
	}
	var found bool
	for _, sig := range strings.Fields(sigHdr) {
		version, enc, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // v1a (asymmetric) and future versions are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		for _, key := range secrets {
			// hmac.Equal is constant-time; keep looking at every pair
			// rather than return at the first match.
			if hmac.Equal(got, webhookMAC(key, id, ts, body)) {
				found = true
			}
		}
	}
	if !found {
		return "", errors.New("no webhook-signature matches")
	}
	return id, nil
}

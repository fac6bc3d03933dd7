package ingress

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// presented is what a request offers as credentials, computed once and
// compared against every source.
type presented struct {
	header     http.Header
	body       []byte
	now        time.Time
	bearerHash *[sha256.Size]byte
	basicUser  string
	basicHash  *[sha256.Size]byte
	cert       *x509.Certificate // leaf of the first verified chain
}

func present(r *http.Request, body []byte, now time.Time) *presented {
	p := &presented{header: r.Header, body: body, now: now}
	authz := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(authz, " "); ok && strings.EqualFold(scheme, "Bearer") && tok != "" {
		h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		p.bearerHash = &h
	}
	if u, pw, ok := r.BasicAuth(); ok {
		h := sha256.Sum256([]byte(pw))
		p.basicUser, p.basicHash = u, &h
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		p.cert = r.TLS.VerifiedChains[0][0]
	}
	return p
}

// match reports whether the request passes every method of a and, for
// Standard Webhooks, the webhook-id it carried.
func (a *Auth) match(p *presented) (ok bool, webhookID string) {
	ok = true
	if a.Bearer != nil {
		ok = ok && p.bearerHash != nil && anyHash(a.Bearer.TokenHashes, p.bearerHash)
	}
	if a.Basic != nil {
		// Compare the user name in constant time too, so that timing
		// does not tell which user names exist.
		userOK := subtle.ConstantTimeCompare([]byte(p.basicUser), []byte(a.Basic.Username)) == 1
		ok = ok && p.basicHash != nil && anyHash(a.Basic.PasswordHashes, p.basicHash) && userOK
	}
	if a.HMAC != nil {
		ok = ok && hmacOK(a.HMAC, p)
	}
	if a.MTLS != nil {
		ok = ok && p.cert != nil && certMatches(a.MTLS, p.cert)
	}
	if a.StandardWebhooks != nil {
		if !ok {
			return false, ""
		}
		id, err := VerifyWebhook(a.StandardWebhooks.Secrets, p.header, p.body, p.now, a.StandardWebhooks.Tolerance)
		if err != nil {
			return false, ""
		}
		return true, id
	}
	return ok, ""
}

// anyHash compares h with every hash in constant time, without stopping
// at the first match.
func anyHash(hashes [][sha256.Size]byte, h *[sha256.Size]byte) bool {
	found := 0
	for i := range hashes {
		found |= subtle.ConstantTimeCompare(hashes[i][:], h[:])
	}
	return found == 1
}

func hmacOK(a *HMACAuth, p *presented) bool {
	v := p.header.Get(a.Header)
	if v == "" || !strings.HasPrefix(strings.ToLower(v), strings.ToLower(a.Prefix)) {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(v[len(a.Prefix):]))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	found := false
	for _, key := range a.Secrets {
		m := hmac.New(sha256.New, key)
		m.Write(p.body)
		if hmac.Equal(got, m.Sum(nil)) {
			found = true
		}
	}
	return found
}

func certMatches(a *MTLSAuth, c *x509.Certificate) bool {
	subject := c.Subject.String()
	for _, s := range a.Subjects {
		if s == subject {
			return true
		}
	}
	for _, want := range a.SANs {
		for _, d := range c.DNSNames {
			if strings.EqualFold(d, want) {
				return true
			}
		}
		for _, e := range c.EmailAddresses {
			if strings.EqualFold(e, want) {
				return true
			}
		}
		for _, u := range c.URIs {
			if u.String() == want {
				return true
			}
		}
	}
	return false
}

// authenticate finds the one source the request authenticates as. It
// fails when none matches, and when several do (a request carrying, say,
// one source's token and another's client certificate is refused rather
// than attributed to either).
func (s *Server) authenticate(r *http.Request, body []byte, now time.Time) (*Source, string, *problem) {
	p := present(r, body, now)
	var (
		found     *Source
		webhookID string
		n         int
	)
	for _, name := range s.sourceNames {
		src := s.cfg.Sources[name]
		if ok, id := src.Auth.match(p); ok {
			found, webhookID = src, id
			n++
		}
	}
	switch {
	case n == 0:
		return nil, "", &problem{status: http.StatusUnauthorized, code: codeUnauthenticated,
			detail: "the request authenticates as no configured source (missing or wrong credentials, signature or timestamp)"}
	case n > 1:
		return nil, "", &problem{status: http.StatusUnauthorized, code: codeUnauthenticated,
			detail: "the request carries credentials of more than one source; send one source's credentials"}
	}
	return found, webhookID, nil
}

// replayCache remembers the Standard Webhooks ids accepted recently, so
// that a captured request cannot be played again within the timestamp
// tolerance. It is per process: with several ingress replicas a replay
// sent to another replica is caught by JetStream's Nats-Msg-Id
// deduplication and the worker's ledger instead.
type replayCache struct {
	mu      sync.Mutex
	entries map[string]time.Time // source + "\x00" + webhook-id -> forget after
	max     int
}

func newReplayCache(max int) *replayCache {
	return &replayCache{entries: map[string]time.Time{}, max: max}
}

// reserve claims id for the request in flight. It fails when the id is
// already held (accepted earlier within the tolerance, or in flight now)
// or the cache is full. release gives a claim back (the request failed,
// so the sender's retry must pass).
func (c *replayCache) reserve(source, id string, now time.Time, keep time.Duration) (release func(), ok, full bool) {
	key := source + "\x00" + id
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, held := c.entries[key]; held && now.Before(until) {
		return nil, false, false
	}
	if len(c.entries) >= c.max {
		for k, until := range c.entries {
			if !now.Before(until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			return nil, false, true
		}
	}
	c.entries[key] = now.Add(keep)
	return func() {
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
	}, true, false
}

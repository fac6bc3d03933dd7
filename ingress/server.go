package ingress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/authflow/authflow/events"
)

// Limits of a request.
const (
	// MaxEventBytes is the largest body of one event (structured, binary,
	// hook): the decoder's limit.
	MaxEventBytes = events.DefaultMaxBytes
	// MaxBatchBytes and MaxBatchEvents bound a batch; each event in it
	// is still at most MaxEventBytes.
	MaxBatchBytes  = 1 << 20
	MaxBatchEvents = 100
	// MaxWait is the longest Prefer: wait honoured.
	MaxWait = 30 * time.Second
	// retryAfterUnavailable is the Retry-After of a 503.
	retryAfterUnavailable = 5
	// replayCacheSize bounds the remembered webhook-ids.
	replayCacheSize = 100_000
	// resultsWaitIdle is how long the server keeps the consumer of a
	// Prefer: wait once nobody pulls from it.
	resultsWaitIdle = 30 * time.Second
)

// Options configure a Server.
type Options struct {
	Config *Config
	// NATS is the connection events are published on; required.
	NATS *nats.Conn
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// HTTPClient sends results webhooks; defaults to a client that
	// follows no redirects. Each attempt is bounded by the webhook's
	// Timeout.
	HTTPClient *http.Client
}

// Server is the ingress: an http.Handler for events and hooks, and the
// results webhook deliverer (RunResults).
type Server struct {
	cfg         *Config
	nc          *nats.Conn
	js          jetstream.JetStream
	log         *slog.Logger
	now         func() time.Time
	decoder     events.Decoder
	sourceNames []string
	limiters    map[string]*rate.Limiter
	replays     *replayCache
	metrics     *metrics
	client      *http.Client
	challenge   string // WWW-Authenticate of a 401
	mux         *http.ServeMux
}

// New checks the options and builds a Server.
func New(o Options) (*Server, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("ingress: no config")
	case o.NATS == nil:
		return nil, errors.New("ingress: no NATS connection")
	case len(o.Config.Sources) == 0:
		return nil, errors.New("ingress: no sources")
	}
	js, err := jetstream.New(o.NATS)
	if err != nil {
		return nil, fmt.Errorf("ingress: jetstream: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingress: metrics: %w", err)
	}
	s := &Server{
		cfg: o.Config, nc: o.NATS, js: js, log: o.Logger, now: o.Now,
		decoder:  events.Decoder{DefaultRegion: o.Config.DefaultRegion},
		limiters: map[string]*rate.Limiter{},
		replays:  newReplayCache(replayCacheSize),
		metrics:  m,
		client:   o.HTTPClient,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.PublishTimeout <= 0 {
		s.cfg.PublishTimeout = DefaultPublishTimeout
	}
	if s.client == nil {
		s.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	var bearer, basic bool
	for _, name := range sortedKeys(s.cfg.Sources) {
		src := s.cfg.Sources[name]
		if src.Signer == nil {
			return nil, fmt.Errorf("ingress: source %s has no signing key", name)
		}
		if pub, err := src.Signer.PublicKey(); err != nil || pub == "" || pub[0] == 'X' {
			return nil, fmt.Errorf("ingress: source %s: the signing key must be an nkeys ed25519 key", name)
		}
		s.sourceNames = append(s.sourceNames, name)
		if src.RateLimit > 0 {
			s.limiters[name] = rate.NewLimiter(src.RateLimit, src.Burst)
		}
		bearer = bearer || src.Auth.Bearer != nil
		basic = basic || src.Auth.Basic != nil
	}
	var ch []string
	if bearer {
		ch = append(ch, `Bearer realm="authflow-ingress"`)
	}
	if basic {
		ch = append(ch, `Basic realm="authflow-ingress", charset="UTF-8"`)
	}
	s.challenge = strings.Join(ch, ", ")
	for name, rt := range s.cfg.Routes {
		if rt.typ == nil {
			if err := rt.compile(); err != nil {
				err.Path = "routes." + name + ".mapping." + err.Path
				return nil, err
			}
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/events", s.handleEvents)
	s.mux.HandleFunc("/v1/hooks/{route}", s.handleHook)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, &problem{status: http.StatusNotFound, code: codeNotFound, detail: "POST /v1/events or /v1/hooks/{route}"})
	})
	return s, nil
}

// Handler serves /v1/events, /v1/hooks/{route}, /healthz and /readyz.
func (s *Server) Handler() http.Handler { return s.mux }

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// handleReady answers 200 once NATS is connected and the events stream is
// reachable: only then can an event be acknowledged.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.nc.IsConnected() {
		writeText(w, http.StatusServiceUnavailable, "NATS is not connected")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.js.Stream(ctx, EventsStream); err != nil {
		writeText(w, http.StatusServiceUnavailable, "stream "+EventsStream+" is not reachable")
		return
	}
	writeText(w, http.StatusOK, "ok")
}

// exchange is one request's bookkeeping: who it was from and how it ended,
// for the metrics, the log and the replay cache.
type exchange struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	start   time.Time
	route   string
	source  string
	status  int
	code    string
	release func() // gives a webhook-id back unless the request succeeded
}

func (s *Server) begin(w http.ResponseWriter, r *http.Request, route string) *exchange {
	return &exchange{s: s, w: w, r: r, start: s.now(), route: route}
}

func (x *exchange) fail(p *problem) {
	if p.status == http.StatusUnauthorized && x.s.challenge != "" {
		x.w.Header().Set("WWW-Authenticate", x.s.challenge)
	}
	x.status, x.code = p.status, p.code
	writeProblem(x.w, p)
}

func (x *exchange) reply(status int, contentType string, v any) {
	x.status = status
	writeJSON(x.w, contentType, status, v)
}

// end records the request. Only a request every event of which was
// stored keeps its webhook-id: after any other answer the sender's retry
// must get through.
func (x *exchange) end(allStored bool) {
	if x.release != nil && !allStored {
		x.release()
	}
	x.s.metrics.observe(x.source, x.route, x.status, x.s.now().Sub(x.start))
	level := slog.LevelDebug
	if x.status >= 500 {
		level = slog.LevelWarn
	}
	// Never the headers or the body: they carry credentials and personal data.
	x.s.log.Log(x.r.Context(), level, "ingress request", "route", x.route, "source", x.source,
		"status", x.status, "code", x.code, "remote", x.r.RemoteAddr)
}

// readBody reads at most limit bytes of body.
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *problem) {
	if r.ContentLength > int64(limit) {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, invalidProblem("", "could not read the body")
	}
	return b, nil
}

// admit authenticates the request, claims its webhook-id (Standard
// Webhooks) and takes n events from the source's rate limit.
func (x *exchange) admit(body []byte, n int) (*Source, *problem) {
	src, p := x.authenticate(body)
	if p != nil {
		return nil, p
	}
	if p := x.s.limit(src, n, x.s.now()); p != nil {
		return nil, p
	}
	return src, nil
}

// authenticate finds the request's source and claims its webhook-id.
func (x *exchange) authenticate(body []byte) (*Source, *problem) {
	now := x.s.now()
	src, webhookID, p := x.s.authenticate(x.r, body, now)
	if p != nil {
		return nil, p
	}
	x.source = src.Name
	if webhookID != "" {
		tol := src.Auth.StandardWebhooks.Tolerance
		release, ok, full := x.s.replays.reserve(src.Name, webhookID, now, 2*tol)
		switch {
		case full:
			return nil, &problem{status: http.StatusServiceUnavailable, code: codeUnavailable, retryAfter: retryAfterUnavailable,
				detail: "too many recent webhook-ids to remember; retry later"}
		case !ok:
			return nil, &problem{status: http.StatusConflict, code: string(events.CodeReplayed), field: "webhook-id",
				detail: "this webhook-id was already accepted (or is in flight) within the timestamp tolerance"}
		}
		x.release = release
	}
	return src, nil
}

// limit takes n events from src's rate limit; 429 with Retry-After when
// they are not there yet.
func (s *Server) limit(src *Source, n int, now time.Time) *problem {
	lim := s.limiters[src.Name]
	if lim == nil {
		return nil
	}
	if n > lim.Burst() {
		return &problem{status: http.StatusTooManyRequests, code: codeRateLimited, retryAfter: 1,
			detail: fmt.Sprintf("a request of %d events exceeds the source's burst of %d", n, lim.Burst())}
	}
	res := lim.ReserveN(now, n)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &problem{status: http.StatusTooManyRequests, code: codeRateLimited, retryAfter: int(math.Ceil(d.Seconds())),
			detail: "the source's rate limit is used up"}
	}
	return nil
}

// signature is a sender's own nkeys signature, passed through.
type signature struct{ sig, signer string }

// passedSignature reads a sender's own signature headers and decides
// whether they may pass through: only in structured mode, and only for a
// source that allows it.
func passedSignature(h http.Header, src *Source, structured bool) (*signature, *problem) {
	sig, signer := h.Get(events.HeaderSignature), h.Get(events.HeaderSigner)
	switch {
	case sig == "" && signer == "":
		return nil, nil
	case sig == "" || signer == "":
		return nil, &problem{status: http.StatusBadRequest, code: string(events.CodeBadSignature),
			detail: events.HeaderSignature + " and " + events.HeaderSigner + " must be set together"}
	case !structured:
		return nil, &problem{status: http.StatusBadRequest, code: string(events.CodeBadSignature),
			detail: "a sender's own signature covers the exact event bytes: send it in structured mode"}
	case !src.PassSignature:
		return nil, &problem{status: http.StatusForbidden, code: string(events.CodeBadSignature),
			detail: "source " + src.Name + " does not pass its own signatures through (passSignature: false); the ingress signs its events"}
	}
	return &signature{sig, signer}, nil
}

// Accepted is the answer for a stored event.
type Accepted struct {
	Key           string `json:"key"`           // events.EventKey(source, id), the Nats-Msg-Id
	Subject       string `json:"subject"`       // authflow.events.<user key>
	ResultSubject string `json:"resultSubject"` // authflow.results.<user key>, where the result will be
	Stream        string `json:"stream"`
	Sequence      uint64 `json:"sequence"`
	Duplicate     bool   `json:"duplicate,omitempty"` // the stream already had this source and id
}

// accepted is an event that was stored, with what Prefer: wait needs.
type accepted struct {
	Accepted
	ev *events.Event
}

// accept validates one event with the worker's decoder, checks that its
// source is the request's, signs it and publishes it.
func (s *Server) accept(ctx context.Context, src *Source, raw []byte, passed *signature) (*accepted, *problem) {
	ev, err := s.decoder.Decode(raw)
	if err != nil {
		return nil, decodeProblem(err)
	}
	if !src.owns(ev.Source) {
		allowed := src.Name
		if src.SubPaths {
			allowed += " or " + src.Name + "/..."
		}
		return nil, &problem{status: http.StatusForbidden, code: string(events.CodePolicyDenied), field: "source",
			detail: fmt.Sprintf("the request authenticated as source %s; an event it sends must have source %s", src.Name, allowed)}
	}
	var sig, signer string
	if passed != nil {
		if err := events.Verify(raw, passed.sig, passed.signer); err != nil {
			p := decodeProblem(err)
			p.status = http.StatusUnauthorized
			return nil, p
		}
		sig, signer = passed.sig, passed.signer
	} else if sig, signer, err = events.Sign(raw, src.Signer); err != nil {
		s.log.Error("sign event", "source", src.Name, "err", err)
		return nil, &problem{status: http.StatusInternalServerError, code: string(events.CodeInternal), detail: "could not sign the event"}
	}
	key := UserKey(ev.User)
	if !s.nc.IsConnected() {
		return nil, unavailable("NATS is not connected")
	}
	msg := nats.NewMsg(EventsSubjectPrefix + key)
	msg.Data = raw
	msg.Header.Set("Content-Type", MediaTypeCloudEvents)
	msg.Header.Set(events.HeaderSignature, sig)
	msg.Header.Set(events.HeaderSigner, signer)
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(ev.Key()), jetstream.WithExpectStream(EventsStream))
	if err != nil {
		s.log.Warn("publish event", "source", src.Name, "subject", msg.Subject, "err", err)
		return nil, unavailable("JetStream did not acknowledge the event; nothing was stored")
	}
	return &accepted{Accepted: Accepted{
		Key: ev.Key(), Subject: msg.Subject, ResultSubject: ResultsSubjectPrefix + key,
		Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate,
	}, ev: ev}, nil
}

func unavailable(detail string) *problem {
	return &problem{status: http.StatusServiceUnavailable, code: codeUnavailable, detail: detail, retryAfter: retryAfterUnavailable}
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r, "events")
	stored := false
	defer func() { x.end(stored) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		x.fail(&problem{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, detail: "use POST"})
		return
	}
	mode, p := modeOf(r.Header.Get("Content-Type"))
	if p != nil {
		x.fail(p)
		return
	}
	limit := MaxEventBytes
	if mode == modeBatch {
		limit = MaxBatchBytes
	}
	body, p := readBody(w, r, limit)
	if p != nil {
		x.fail(p)
		return
	}
	if mode == modeBatch {
		stored = s.batch(x, body)
		return
	}
	src, p := x.admit(body, 1)
	if p != nil {
		x.fail(p)
		return
	}
	passed, p := passedSignature(r.Header, src, mode == modeStructured)
	if p != nil {
		x.fail(p)
		return
	}
	raw := body
	if mode == modeBinary {
		if raw, p = binaryEvent(r.Header, body); p != nil {
			x.fail(p)
			return
		}
	}
	a, p := s.accept(r.Context(), src, raw, passed)
	if p != nil {
		x.fail(p)
		return
	}
	stored = true
	s.respondAccepted(x, a)
}

// batchItem is one event's status in a batch answer.
type batchItem struct {
	Status int `json:"status"`
	*Accepted
	Problem *problemJSON `json:"problem,omitempty"`
}

// batch accepts or refuses each event of a batch on its own and answers
// 207 with one status per event, in order. It reports whether all were
// stored.
func (s *Server) batch(x *exchange, body []byte) bool {
	// Authenticate before parsing: an unauthenticated caller learns
	// nothing about its batch.
	src, p := x.authenticate(body)
	if p != nil {
		x.fail(p)
		return false
	}
	if _, p := passedSignature(x.r.Header, src, false); p != nil {
		x.fail(p)
		return false
	}
	items, p := splitBatch(body, MaxBatchEvents)
	if p != nil {
		x.fail(p)
		return false
	}
	if p := s.limit(src, max(1, len(items)), s.now()); p != nil {
		x.fail(p)
		return false
	}
	out := struct {
		Events []batchItem `json:"events"`
	}{Events: make([]batchItem, 0, len(items))}
	all := true
	for _, raw := range items {
		a, p := s.accept(x.r.Context(), src, raw, nil)
		if p != nil {
			all = false
			pj := p.wire()
			out.Events = append(out.Events, batchItem{Status: p.status, Problem: &pj})
			continue
		}
		out.Events = append(out.Events, batchItem{Status: http.StatusAccepted, Accepted: &a.Accepted})
	}
	x.reply(http.StatusMultiStatus, "application/json", out)
	return all
}

// respondAccepted answers 202 with where the result will be, or, with
// Prefer: wait=N, waits up to N seconds for the result and answers 200
// with it.
func (s *Server) respondAccepted(x *exchange, a *accepted) {
	wait, ok := preferWait(x.r.Header)
	if !ok {
		x.reply(http.StatusAccepted, "application/json", a.Accepted)
		return
	}
	x.w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	ctx, cancel := context.WithTimeout(x.r.Context(), wait)
	defer cancel()
	body, found := s.awaitResult(ctx, a)
	if !found {
		x.reply(http.StatusAccepted, "application/json", a.Accepted)
		return
	}
	x.status = http.StatusOK
	x.w.Header().Set("Content-Type", MediaTypeCloudEvents)
	x.w.Header().Set("Cache-Control", "no-store")
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(body)
}

// preferWait reads "Prefer: wait=N" (RFC 7240), capped at MaxWait.
func preferWait(h http.Header) (time.Duration, bool) {
	for _, v := range h.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(strings.SplitN(pref, ";", 2)[0]), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || n <= 0 {
				return 0, false
			}
			return min(time.Duration(n)*time.Second, MaxWait), true
		}
	}
	return 0, false
}

// awaitResult reads the results stream for the event's result until ctx
// ends. It reads the user's result subject from a little before now (all
// of it when the publish was a duplicate: the result may be old), with one
// ordered consumer that pulls continuously: fetching with Next would make
// (and delete) a new consumer per fetch, and the ingress's NATS user may
// not delete consumers. The server removes the consumer once it has been
// idle for resultsWaitIdle.
func (s *Server) awaitResult(ctx context.Context, a *accepted) ([]byte, bool) {
	st, err := s.js.Stream(ctx, ResultsStream)
	if err != nil {
		return nil, false
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{a.ResultSubject}, InactiveThreshold: resultsWaitIdle}
	if !a.Duplicate {
		// Five minutes of slack for the NATS servers' clocks.
		since := s.now().Add(-5 * time.Minute)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, false
	}
	it, err := c.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		return nil, false
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next()
		if err != nil {
			return nil, false // ctx ended (the iterator is stopped), or the consumer failed
		}
		h := m.Headers()
		if h.Get(HeaderEventSource) != a.ev.Source || h.Get(HeaderEventID) != a.ev.ID {
			continue
		}
		res, err := events.DecodeResult(m.Data())
		if err == nil && res.ID == a.Key {
			return m.Data(), true
		}
	}
}

func (s *Server) handleHook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("route")
	rt := s.cfg.Routes[name]
	label := "hooks/" + labelUnknownRoute
	if rt != nil {
		label = "hooks/" + name
	}
	x := s.begin(w, r, label)
	stored := false
	defer func() { x.end(stored) }()
	switch r.Method {
	case http.MethodGet:
		s.oktaVerification(x, rt)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		x.fail(&problem{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, detail: "use POST (GET only for Okta's verification)"})
		return
	}
	if p := jsonContentType(r.Header.Get("Content-Type")); p != nil {
		x.fail(p)
		return
	}
	body, p := readBody(w, r, MaxEventBytes)
	if p != nil {
		x.fail(p)
		return
	}
	src, p := x.admit(body, 1)
	if p != nil {
		x.fail(p)
		return
	}
	if p := routeFor(rt, name, src); p != nil {
		x.fail(p)
		return
	}
	if _, p := passedSignature(r.Header, src, false); p != nil {
		x.fail(p)
		return
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		x.fail(invalidProblem("", "the body is not valid JSON"))
		return
	}
	hide := ""
	if src.Auth.HMAC != nil {
		hide = src.Auth.HMAC.Header
	}
	m, p := rt.apply(r.Context(), doc, r.Header, src.Name, hide)
	if p != nil {
		x.fail(p)
		return
	}
	raw, err := events.MarshalEvent(m.id, src.Name, m.typ, m.subject, m.time, m.data)
	if err != nil {
		x.fail(invalidProblem("", err.Error()))
		return
	}
	a, p := s.accept(r.Context(), src, raw, nil)
	if p != nil {
		x.fail(p)
		return
	}
	stored = true
	s.respondAccepted(x, a)
}

// routeFor refuses an unknown route or a source the route does not list.
func routeFor(rt *Route, name string, src *Source) *problem {
	if rt == nil {
		return &problem{status: http.StatusNotFound, code: codeNotFound, detail: fmt.Sprintf("no route %q", truncateRunes(name, 64))}
	}
	for _, s := range rt.Sources {
		if s == src.Name {
			return nil
		}
	}
	return &problem{status: http.StatusForbidden, code: codeForbidden, detail: "source " + src.Name + " may not call route " + rt.Name}
}

// maxChallenge bounds the Okta challenge echoed back.
const maxChallenge = 512

// oktaVerification answers Okta's one-time GET: the value of
// X-Okta-Verification-Challenge, as {"verification": value}. The request
// must authenticate (Okta sends the hook's Authorization header with it).
func (s *Server) oktaVerification(x *exchange, rt *Route) {
	src, p := x.admit(nil, 1)
	if p != nil {
		x.fail(p)
		return
	}
	if p := routeFor(rt, x.r.PathValue("route"), src); p != nil {
		x.fail(p)
		return
	}
	ch := x.r.Header.Get("X-Okta-Verification-Challenge")
	switch {
	case !rt.OktaVerification:
		x.w.Header().Set("Allow", http.MethodPost)
		x.fail(&problem{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, detail: "route " + rt.Name + " does not answer Okta verification (oktaVerification: false)"})
	case ch == "" || len(ch) > maxChallenge || strings.ContainsFunc(ch, isCtl):
		x.fail(invalidProblem("X-Okta-Verification-Challenge", "missing or not a printable value of at most 512 bytes"))
	default:
		x.reply(http.StatusOK, "application/json", map[string]string{"verification": ch})
	}
}

func jsonContentType(ct string) *problem {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == mediaTypeJSON || strings.HasSuffix(mt, "+json")) {
		return unsupported("a hook's body is JSON (Content-Type application/json)")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported("the only charset is utf-8")
	}
	return nil
}

// NewHTTPServer returns an http.Server for h with the ingress's
// hardening: header, body and write deadlines (no slowloris, room for
// Prefer: wait), bounded headers, and tlsConf when given.
func NewHTTPServer(h http.Handler, tlsConf *tls.Config, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      MaxWait + 15*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// LoadTLS builds the server's TLS configuration: TLS 1.2 or later, the
// certificate and key, and, with clientCAFile, client certificates
// verified against those CAs when a client offers one (mtls sources need
// one; the other sources' clients may present none).
func LoadTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		b, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls client CA: %s holds no PEM certificate", clientCAFile)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// UsesMTLS reports whether a source authenticates by client certificate,
// so that the command can insist on a client CA.
func (c *Config) UsesMTLS() bool {
	for _, s := range c.Sources {
		if s.Auth.MTLS != nil {
			return true
		}
	}
	return false
}

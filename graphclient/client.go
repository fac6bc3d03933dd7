package graphclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/google/uuid"
	abs "github.com/microsoft/kiota-abstractions-go"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBaseURL is the Graph v1.0 endpoint of the global cloud.
const DefaultBaseURL = "https://graph.microsoft.com/v1.0"

// DefaultRequestTimeout bounds one HTTP exchange: Graph's
// authentication-methods API itself times out after 60 s.
const DefaultRequestTimeout = 60 * time.Second

// Config configures a Client.
type Config struct {
	// BaseURL is the Graph root including the version. Defaults to
	// DefaultBaseURL; the emulator's is e.g. http://127.0.0.1:8080/v1.0.
	// Plain http is accepted with Token, and with Credential only for a
	// loopback host.
	BaseURL string
	// BetaURL is the Graph beta root, for the few beta calls
	// (SignInPreferences). Defaults to BaseURL with its "/v1.0" replaced by
	// "/beta"; it must have BaseURL's scheme and host.
	BetaURL string
	// Token is a static bearer token (the emulator). Exactly one of Token
	// and Credential must be set.
	Token string
	// Credential gets tokens for the real service (see
	// NewCredentialFromEnv).
	Credential azcore.TokenCredential
	// Scopes are requested with Credential. Defaults to DefaultScope.
	Scopes []string
	// HTTPClient supplies the base transport (tests, TLS settings) and,
	// if its Timeout is set, the per-request timeout. Its redirect policy
	// and any other field are not used. Defaults to a clone of
	// http.DefaultTransport and DefaultRequestTimeout.
	HTTPClient *http.Client
	// Throttle is the shared adaptive limiter. Defaults to a private one
	// (NewThrottle with zero config).
	Throttle *Throttle
	// Observe, if set, is called after each HTTP attempt with the client
	// operation, the status (0 = transport error) and the duration. It is
	// called from concurrent calls and must be safe for that.
	Observe func(op string, status int, d time.Duration)
	// Logger receives debug lines per attempt and warnings on throttling.
	// Defaults to discarding.
	Logger *slog.Logger
	// TracerProvider, if set, gets a client span per HTTP request, whose
	// W3C trace context is the traceparent sent to Graph (trace.go).
	// Defaults to none: no spans, and the caller's trace context is passed on.
	TracerProvider trace.TracerProvider
}

// Client performs typed Graph operations. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	beta     *url.URL // nil: no beta calls
	adapter  abs.RequestAdapter
	tokens   *tokenProvider
	throttle *Throttle
	observe  func(op string, status int, d time.Duration)
	tracer   trace.Tracer // nil: no spans
	log      *slog.Logger
	timeout  time.Duration
	now      func() time.Time

	// ResetPassword's polling of the long-running operation.
	pollInterval time.Duration
	pollMaxWait  time.Duration
	pollBudget   time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL, cfg.Credential != nil)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Token == "" && cfg.Credential == nil:
		return nil, errors.New("graphclient config: set Token or Credential")
	case cfg.Token != "" && cfg.Credential != nil:
		return nil, errors.New("graphclient config: Token and Credential are mutually exclusive")
	case strings.ContainsAny(cfg.Token, "\r\n"):
		return nil, errors.New("graphclient config: Token contains a line break")
	}
	beta, err := betaBaseURL(base, cfg.BetaURL)
	if err != nil {
		return nil, fmt.Errorf("graphclient config: %w", err)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{DefaultScope}
	}
	tokens, err := newTokenProvider(base, cfg.Token, cfg.Credential, scopes)
	if err != nil {
		return nil, fmt.Errorf("graphclient config: %w", err)
	}

	c := &Client{
		base:         base,
		beta:         beta,
		tokens:       tokens,
		throttle:     cfg.Throttle,
		observe:      cfg.Observe,
		tracer:       tracerOf(cfg.TracerProvider),
		log:          cfg.Logger,
		timeout:      DefaultRequestTimeout,
		now:          time.Now,
		pollInterval: time.Second,
		pollMaxWait:  30 * time.Second,
		pollBudget:   5 * time.Minute,
	}
	if c.throttle == nil {
		if c.throttle, err = NewThrottle(ThrottleConfig{}); err != nil {
			return nil, fmt.Errorf("graphclient config: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var parent http.RoundTripper
	if cfg.HTTPClient != nil {
		parent = cfg.HTTPClient.Transport
		if cfg.HTTPClient.Timeout > 0 {
			c.timeout = cfg.HTTPClient.Timeout
		}
	}
	if parent == nil {
		parent = khttp.GetDefaultTransport()
		if t, ok := parent.(*http.Transport); ok {
			// Keep a connection per request the throttle lets through:
			// with net/http's default of 2 idle connections per host,
			// concurrent calls to an HTTP/1.1 endpoint dial anew for most
			// requests (10% of the worker's CPU in authflow bench).
			t.MaxIdleConnsPerHost = max(c.throttle.maxIdle(), 2)
			t.MaxIdleConns = max(t.MaxIdleConns, 2*t.MaxIdleConnsPerHost)
		}
	}
	hc := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(parent, c.middleware()...),
		// Redirects are the redirect handler's business (it drops the
		// token when the host changes).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       c.timeout,
	}

	// Our own serializer registries: the SDK's root client would register
	// into package-level defaults.
	pnf := absser.NewParseNodeFactoryRegistry()
	pnf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	pnf.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextParseNodeFactory()
	swf := absser.NewSerializationWriterFactoryRegistry()
	swf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	swf.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextSerializationWriterFactory()

	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		absauth.NewBaseBearerTokenAuthenticationProvider(tokens), pnf, swf, hc)
	if err != nil {
		return nil, fmt.Errorf("graphclient: request adapter: %w", err)
	}
	adapter.SetBaseUrl(base.String())
	c.adapter = adapter
	return c, nil
}

// root returns a new /users request builder. Never share one between calls:
// kiota's adapter writes the base URL into the builder's path-parameter map
// on every request, which races with a concurrent ByUserId reading it.
func (c *Client) root() *users.UsersRequestBuilder {
	return users.NewUsersRequestBuilderInternal(map[string]string{"baseurl": c.base.String()}, c.adapter)
}

// Throttle returns the client's throttle (for metrics).
func (c *Client) Throttle() *Throttle { return c.throttle }

// parseBaseURL validates the Graph root: absolute http(s), no credentials,
// query or fragment; plain http with a credential only on loopback, where
// azidentity's provider allows it too.
func parseBaseURL(raw string, credential bool) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("graphclient config: BaseURL: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("graphclient config: BaseURL must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("graphclient config: BaseURL has no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("graphclient config: BaseURL must not have user info, a query or a fragment")
	case u.Scheme == "http" && credential && !isLoopback(u.Hostname()):
		return nil, errors.New("graphclient config: BaseURL must be https when a Credential is used (except on loopback)")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// middleware is the fixed chain, outermost first. The SDK's retry handler
// is deliberately absent: RetryPolicy is the only retry layer, so one
// Client call is one HTTP attempt (plus same-host redirects).
func (c *Client) middleware() []khttp.Middleware {
	opts := core.GraphClientOptions{GraphServiceLibraryVersion: sdkVersion()}
	return []khttp.Middleware{
		core.NewGraphTelemetryHandler(&opts), // SdkVersion; its client-request-id is replaced below
		khttp.NewRedirectHandler(),
		// No request compression: Graph's bodies here are a few hundred
		// bytes, and gzipping each one (a fresh flate writer per request)
		// was 17% of the worker's CPU (authflow bench).
		khttp.NewCompressionHandlerWithOptions(khttp.NewCompressionOptions(false)),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		&attemptHandler{c: c},
	}
}

// sdkVersion reads the linked msgraph-sdk-go version for the telemetry
// header.
func sdkVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/microsoftgraph/msgraph-sdk-go" {
				return strings.TrimPrefix(d.Version, "v")
			}
		}
	}
	return "unknown"
}

// exchange is one Client call in flight; the attempt handler records what
// the wire saw.
type exchange struct {
	op          string
	requestID   string
	traceParent string // "" when the caller set none
	last        response
}

type exchangeKey struct{}

// attemptHandler is the innermost middleware: it sees every HTTP attempt.
// It sets the caller's client-request-id (the telemetry handler *adds* a
// fresh UUID on every request; Set replaces it) and traceparent, refuses to
// send a request without a token, and records status and headers for
// classification, throttling and metrics.
type attemptHandler struct{ c *Client }

func (h *attemptHandler) Intercept(p khttp.Pipeline, i int, req *http.Request) (*http.Response, error) {
	ex, ok := req.Context().Value(exchangeKey{}).(*exchange)
	if !ok {
		return nil, errors.New("graphclient: request outside a client call")
	}
	req.Header.Set("client-request-id", ex.requestID)
	req, span := h.c.startRequestSpan(req, ex)
	if req.Header.Get("Authorization") == "" {
		err := &tokenError{code: "noToken", class: ErrPermission,
			err: errors.New("refusing to send a request without a bearer token")}
		endRequestSpan(span, response{}, err)
		return nil, err
	}
	start := time.Now()
	resp, err := p.Next(req, i)
	d := time.Since(start)
	ex.last = response{}
	if err == nil && resp != nil {
		ex.last = response{
			status:    resp.StatusCode,
			requestID: resp.Header.Get("request-id"),
			retry:     resp.Header.Get("Retry-After"),
			location:  resp.Header.Get("Location"),
			challenge: strings.Join(resp.Header.Values("WWW-Authenticate"), ", "),
		}
	}
	endRequestSpan(span, ex.last, err)
	if h.c.observe != nil {
		h.c.observe(ex.op, ex.last.status, d)
	}
	h.c.log.LogAttrs(req.Context(), slog.LevelDebug, "graph request",
		slog.String("op", ex.op), slog.String("method", req.Method), slog.Int("status", ex.last.status),
		slog.Duration("duration", d), slog.String("clientRequestId", ex.requestID),
		slog.String("requestId", sanitize(ex.last.requestID, 64)))
	return resp, err
}

type requestIDKey struct{}

// WithRequestID returns a context whose Graph calls all carry id as their
// client-request-id. Use one id per logical operation and keep it across
// its retries: Graph (and the emulator) correlate attempts by it. id should
// be a GUID; at most 128 characters from A-Z a-z 0-9 - _ . : are accepted,
// and a call with any other id fails with ErrInvalidInput.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the id set by WithRequestID, if any.
func RequestIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}

type traceParentKey struct{}

// WithTraceParent returns a context whose Graph calls all send tp as their
// W3C Trace Context traceparent header, so that the trace of the event that
// asked for them continues into Graph. tp must be version 00:
// 00-<32 hex>-<16 hex>-<2 hex>, lower case, with neither the trace id nor
// the parent id all zeros. An invalid tp is ignored: ctx comes back
// unchanged. A span in ctx (OpenTelemetry) takes precedence. Without
// Config.TracerProvider the client passes the header on as it came, as
// Trace Context asks of a party that does not trace; with one, each request
// sends the traceparent of its own span, a child of tp.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	if !validTraceParent(tp) {
		return ctx
	}
	return context.WithValue(ctx, traceParentKey{}, tp)
}

// TraceParentFrom returns the traceparent set by WithTraceParent, if any.
func TraceParentFrom(ctx context.Context) (string, bool) {
	tp, ok := ctx.Value(traceParentKey{}).(string)
	return tp, ok
}

// validTraceParent checks the version-00 traceparent syntax.
func validTraceParent(tp string) bool {
	const n = len("00-") + 32 + 1 + 16 + 1 + 2
	if len(tp) != n || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	traceID, parentID, flags := tp[3:35], tp[36:52], tp[53:]
	return lowerHex(traceID) && lowerHex(parentID) && lowerHex(flags) &&
		strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ensureRequestID gives ctx a request id if it has none, so that all calls
// of one multi-request operation (paging, polling) share it.
func ensureRequestID(ctx context.Context) context.Context {
	if _, ok := RequestIDFrom(ctx); ok {
		return ctx
	}
	return WithRequestID(ctx, uuid.NewString())
}

func requestIDFor(ctx context.Context) (string, error) {
	id, ok := RequestIDFrom(ctx)
	if !ok {
		return uuid.NewString(), nil
	}
	if id == "" || len(id) > 128 {
		return "", invalidf("client-request-id must be 1..128 characters")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isIDChar(c) && c != '.' && c != ':' {
			return "", invalidf("client-request-id has a character outside A-Z a-z 0-9 - _ . :")
		}
	}
	return id, nil
}

// call runs one SDK call (one HTTP exchange) of operation op: it waits for
// the throttle, bounds the exchange by the request timeout, feeds the
// outcome back to the throttle and classifies any error. It returns what
// the transport saw of the response.
func (c *Client) call(ctx context.Context, op string, fn func(ctx context.Context) error) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, fmt.Errorf("%s: %w", op, err)
	}
	rid, err := requestIDFor(ctx)
	if err != nil {
		return response{}, fmt.Errorf("%s: %w", op, err)
	}
	p, err := c.throttle.acquire(ctx)
	if err != nil {
		return response{}, fmt.Errorf("%s: wait for throttle: %w", op, err)
	}
	tp, _ := TraceParentFrom(ctx)
	ex := &exchange{op: op, requestID: rid, traceParent: tp}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, exchangeKey{}, ex), c.timeout)
	err = c.run(cctx, op, fn)
	cancel()
	resp := ex.last
	ra, ok := parseRetryAfter(resp.retry, c.now())
	if !ok {
		ra = -1
	}
	c.throttle.release(p, resp.status, ra)
	if resp.status == http.StatusTooManyRequests || resp.status == http.StatusServiceUnavailable {
		c.log.LogAttrs(ctx, slog.LevelWarn, "graph throttled",
			slog.String("op", op), slog.Int("status", resp.status), slog.Duration("retryAfter", max(ra, 0)),
			slog.Int("limit", c.throttle.Limit()))
	}

	if err == nil {
		if resp.status >= 300 {
			// Not followed by the redirect handler; kiota would call it a
			// success with no body.
			return resp, &APIError{Op: op, Status: resp.status, Code: "unexpectedStatus",
				Message: "unexpected redirect", RequestID: sanitize(resp.requestID, 64), class: ErrPermanent}
		}
		return resp, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return resp, fmt.Errorf("%s: %w", op, cerr)
	}
	var ie *inputError
	if errors.As(err, &ie) {
		return resp, fmt.Errorf("%s: %w", op, err)
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return resp, ae
	}
	return resp, classify(op, resp, c.now(), err)
}

// run calls fn, turning a panic of the SDK (it has known panics on odd
// responses) into a permanent error.
func (c *Client) run(ctx context.Context, op string, fn func(ctx context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.LogAttrs(ctx, slog.LevelError, "graph sdk panicked", slog.String("op", op),
				slog.String("panic", sanitize(fmt.Sprint(r), 200)))
			err = &APIError{Op: op, Code: "clientPanic", Message: "the Graph SDK panicked on the response", class: ErrPermanent}
		}
	}()
	return fn(ctx)
}

// sameOrigin checks that a URL the service handed us (nextLink, Location)
// points under our base URL before we send our token to it, and returns it
// absolute.
func (c *Client) sameOrigin(op, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", &APIError{Op: op, Code: "invalidResponse", Message: "unparsable link from the service", class: ErrPermanent}
	}
	u = c.base.ResolveReference(u)
	if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) ||
		!strings.HasPrefix(u.Path, c.base.Path+"/") || u.User != nil {
		return "", &APIError{Op: op, Code: "invalidResponse",
			Message: "the service linked outside the configured Graph base URL", class: ErrPermanent}
	}
	u.Fragment = ""
	return u.String(), nil
}

// CheckToken obtains a token (from the cache when fresh), for readiness
// probes. With a static token it only checks that one is configured.
func (c *Client) CheckToken(ctx context.Context) error {
	const op = "check token"
	if _, err := c.tokens.GetAuthorizationToken(ctx, c.base, nil); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%s: %w", op, cerr)
		}
		return classify(op, response{}, c.now(), err)
	}
	return nil
}

// invalidResponse is a 2xx whose body lacks what the operation needs.
func invalidResponse(op string, resp response, msg string, class error) *APIError {
	return &APIError{Op: op, Status: resp.status, Code: "invalidResponse", Message: msg,
		RequestID: sanitize(resp.requestID, 64), class: class}
}

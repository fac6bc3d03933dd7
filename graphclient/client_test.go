package graphclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	cred := &fakeCredential{token: "t"}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"token with default url", Config{Token: "t"}, true},
		{"emulator over http", Config{BaseURL: "http://127.0.0.1:8080/v1.0", Token: "t"}, true},
		{"compose emulator over http", Config{BaseURL: "http://graph-emulator:8080/v1.0/", Token: "t"}, true},
		{"credential https", Config{BaseURL: "https://graph.microsoft.us/v1.0", Credential: cred}, true},
		{"credential on loopback http", Config{BaseURL: "http://localhost:9/v1.0", Credential: cred}, true},
		{"neither", Config{}, false},
		{"both", Config{Token: "t", Credential: cred}, false},
		{"credential over plain http", Config{BaseURL: "http://graph.example/v1.0", Credential: cred}, false},
		{"token with newline", Config{Token: "t\r\nX: y"}, false},
		{"ftp", Config{BaseURL: "ftp://h/v1.0", Token: "t"}, false},
		{"relative", Config{BaseURL: "/v1.0", Token: "t"}, false},
		{"query", Config{BaseURL: "https://h/v1.0?x=1", Token: "t"}, false},
		{"user info", Config{BaseURL: "https://u:p@h/v1.0", Token: "t"}, false},
		{"fragment", Config{BaseURL: "https://h/v1.0#f", Token: "t"}, false},
		{"unparsable", Config{BaseURL: "http://[::1", Token: "t"}, false},
	}
	for _, tc := range tests {
		c, err := New(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: New err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "p@h") {
			t.Errorf("%s: error leaks user info: %v", tc.name, err)
		}
		if c != nil && strings.HasSuffix(c.base.Path, "/") {
			t.Errorf("%s: base path %q keeps a trailing slash", tc.name, c.base.Path)
		}
	}
}

// TestOneAttemptPerCall: the SDK's retry handler is not in the chain; a
// 503 or 429 reaches the caller after exactly one HTTP attempt.
func TestOneAttemptPerCall(t *testing.T) {
	t.Parallel()
	for _, status := range []int{429, 503, 504} {
		f := newFakeGraph(t)
		f.setHandler(reply(status, `{"error":{"code":"busy","message":"later"}}`, "Retry-After", "0"))
		c := newTestClient(t, f.URL+"/v1.0")
		err := c.DeletePhone(testCtx(t), testUser, MobilePhoneID)
		if !errors.Is(err, ErrTransient) {
			t.Errorf("%d: err = %v, want transient", status, err)
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%d: %d HTTP attempts, want 1", status, n)
		}
	}
}

// TestRequestID: the caller's client-request-id goes out unchanged and
// alone (the SDK's telemetry handler adds its own) on every attempt of an
// operation; without one each call gets a fresh GUID.
func TestRequestID(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	f.setHandler(reply(503, `{"error":{"code":"x","message":"y"}}`))
	c := newTestClient(t, f.URL+"/v1.0")

	ctx := WithRequestID(testCtx(t), "7f1c2b9e-4a53-4c1e-9b1f-1f3a8c2d0e55")
	p := RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Randomization: -1, MaxAttempts: 3}
	attempts, err := p.Do(ctx, func(ctx context.Context) error { return c.DeleteEmail(ctx, testUser, EmailMethodID) })
	if attempts != 3 || !errors.Is(err, ErrTransient) {
		t.Fatalf("attempts = %d, err = %v", attempts, err)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Values("client-request-id"); len(got) != 1 || got[0] != "7f1c2b9e-4a53-4c1e-9b1f-1f3a8c2d0e55" {
			t.Errorf("attempt %d: client-request-id %q", i, got)
		}
		if r.Header.Get("Authorization") != "Bearer test-token" {
			t.Errorf("attempt %d: Authorization %q", i, r.Header.Get("Authorization"))
		}
		if !strings.Contains(r.Header.Get("SdkVersion"), "graph-go") {
			t.Errorf("attempt %d: SdkVersion %q", i, r.Header.Get("SdkVersion"))
		}
		if r.Header.Get("Retry-Attempt") != "" {
			t.Errorf("attempt %d: the SDK retry handler ran (Retry-Attempt %q)", i, r.Header.Get("Retry-Attempt"))
		}
	}

	f.reset()
	for range 2 {
		_ = c.DeleteEmail(testCtx(t), testUser, EmailMethodID)
	}
	reqs = f.requests()
	a, b := reqs[0].Header.Values("client-request-id"), reqs[1].Header.Values("client-request-id")
	if len(a) != 1 || len(b) != 1 || a[0] == b[0] || uuid.Validate(a[0]) != nil {
		t.Errorf("generated ids %q, %q: want one fresh GUID per call", a, b)
	}

	f.reset()
	for _, bad := range []string{"", "has space", "line\nbreak", strings.Repeat("a", 129)} {
		err := c.DeleteEmail(WithRequestID(testCtx(t), bad), testUser, EmailMethodID)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("request id %q: err = %v, want ErrInvalidInput", bad, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("bad request ids made %d requests", n)
	}
	if id, ok := RequestIDFrom(WithRequestID(context.Background(), "abc")); !ok || id != "abc" {
		t.Errorf("RequestIDFrom = %q, %v", id, ok)
	}
}

// TestTraceParent: a valid traceparent in the context goes out, once and
// unchanged, on every attempt and every request of an operation; an invalid
// one is ignored and no header is sent.
func TestTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f := newFakeGraph(t)
	f.setHandler(reply(503, `{"error":{"code":"x","message":"y"}}`))
	c := newTestClient(t, f.URL+"/v1.0")
	p := RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Randomization: -1, MaxAttempts: 3}
	ctx := WithTraceParent(testCtx(t), tp)
	if _, err := p.Do(ctx, func(ctx context.Context) error { return c.DeleteEmail(ctx, testUser, EmailMethodID) }); !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Values("traceparent"); len(got) != 1 || got[0] != tp {
			t.Errorf("attempt %d: traceparent %q, want %q", i, got, tp)
		}
	}
	if got, ok := TraceParentFrom(ctx); !ok || got != tp {
		t.Errorf("TraceParentFrom = %q, %v", got, ok)
	}

	f.reset()
	_ = c.DeleteEmail(testCtx(t), testUser, EmailMethodID)
	if got := f.requests()[0].Header.Values("traceparent"); len(got) != 0 {
		t.Errorf("without WithTraceParent: traceparent %q", got)
	}

	for _, bad := range []string{
		"",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper case
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // another version
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // trailing data
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Injected: 1",
	} {
		f.reset()
		bctx := WithTraceParent(testCtx(t), bad)
		if _, ok := TraceParentFrom(bctx); ok {
			t.Errorf("WithTraceParent(%q) was kept", bad)
		}
		_ = c.DeleteEmail(bctx, testUser, EmailMethodID)
		if got := f.requests()[0].Header.Values("traceparent"); len(got) != 0 {
			t.Errorf("invalid %q: traceparent %q sent", bad, got)
		}
	}
	// An invalid one does not replace a valid one set before.
	kept := WithTraceParent(WithTraceParent(testCtx(t), tp), "junk")
	if got, _ := TraceParentFrom(kept); got != tp {
		t.Errorf("after an invalid WithTraceParent: %q", got)
	}
}

// TestInvalidInputMakesNoRequest: every operation validates ids and values
// before anything is sent.
func TestInvalidInputMakesNoRequest(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL+"/v1.0")
	ctx := testCtx(t)
	const upn = "adele@contoso.com"
	bad := []struct {
		name string
		call func() error
	}{
		{"resolve junk", func() error { _, err := c.ResolveUser(ctx, "../../me"); return err }},
		{"methods upn", func() error { _, err := c.Methods(ctx, upn); return err }},
		{"add phone bad type", func() error { _, err := c.AddPhone(ctx, testUser, "pager", "+1 5555551234"); return err }},
		{"add phone bad number", func() error { _, err := c.AddPhone(ctx, testUser, PhoneMobile, "555-1234"); return err }},
		{"update phone bad id", func() error { return c.UpdatePhone(ctx, testUser, "../x", "+1 5555551234") }},
		{"update phone bad number", func() error { return c.UpdatePhone(ctx, testUser, MobilePhoneID, "+1 555") }},
		{"delete phone upn", func() error { return c.DeletePhone(ctx, upn, MobilePhoneID) }},
		{"enable sms bad id", func() error { return c.EnableSMSSignIn(ctx, testUser, "a/b") }},
		{"disable sms bad user", func() error { return c.DisableSMSSignIn(ctx, "x", MobilePhoneID) }},
		{"add email bad", func() error { _, err := c.AddEmail(ctx, testUser, "Kim <k@contoso.com>"); return err }},
		{"update email bad", func() error { return c.UpdateEmail(ctx, testUser, EmailMethodID, "nope") }},
		{"delete email bad id", func() error { return c.DeleteEmail(ctx, testUser, "") }},
		{"tap lifetime low", func() error { _, err := c.CreateTAP(ctx, testUser, TAPRequest{LifetimeMinutes: 9}); return err }},
		{"tap lifetime high", func() error { _, err := c.CreateTAP(ctx, testUser, TAPRequest{LifetimeMinutes: 43201}); return err }},
		{"tap lifetime negative", func() error { _, err := c.CreateTAP(ctx, testUser, TAPRequest{LifetimeMinutes: -1}); return err }},
		{"delete tap bad id", func() error { return c.DeleteTAP(ctx, testUser, "a b") }},
		{"delete password", func() error { return c.DeleteMethod(ctx, testUser, KindPassword, PasswordMethodID) }},
		{"delete unknown kind", func() error { return c.DeleteMethod(ctx, testUser, "hardwareOath", "abc") }},
		{"reset password bad", func() error { _, err := c.ResetPassword(ctx, testUser, "tab\t"); return err }},
		{"set password empty", func() error { return c.SetPassword(ctx, testUser, "", true) }},
		{"revoke upn", func() error { return c.RevokeSessions(ctx, upn) }},
		{"enable upn", func() error { return c.SetAccountEnabled(ctx, upn, false) }},
		{"roles upn", func() error { _, err := c.DirectoryRoles(ctx, upn); return err }},
	}
	for _, tc := range bad {
		err := tc.call()
		if !errors.Is(err, ErrInvalidInput) || !errors.Is(err, ErrPermanent) || errors.Is(err, ErrTransient) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "tab\t") {
			t.Errorf("%s: error repeats the password", tc.name)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("invalid input made %d requests", n)
	}
}

// TestTokenStaysHome: a nextLink or Location on another origin is refused
// before the token could be sent there.
func TestTokenStaysHome(t *testing.T) {
	t.Parallel()
	other := newFakeGraph(t)
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL+"/v1.0")
	for _, link := range []string{
		other.URL + "/v1.0/users/" + testUser + "/authentication/methods?page=2",
		"https://evil.example/v1.0/x",
		f.URL + "/elsewhere/x",
		"//evil.example/v1.0/x",
	} {
		f.setHandler(reply(200, fmt.Sprintf(`{"value":[],"@odata.nextLink":%q}`, link)))
		_, err := c.Methods(testCtx(t), testUser)
		if err == nil || !errors.Is(err, ErrPermanent) {
			t.Errorf("nextLink %q: err = %v, want a permanent error", link, err)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the other origin got %d requests", n)
	}
	// A same-origin nextLink is followed, with the same client-request-id.
	f.reset()
	f.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("page") == "2" {
			io.WriteString(w, `{"value":[{"@odata.type":"#microsoft.graph.passwordAuthenticationMethod","id":"`+PasswordMethodID+`"}]}`)
			return
		}
		fmt.Fprintf(w, `{"value":[{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","id":%q,"emailAddress":"k@contoso.com"}],"@odata.nextLink":%q}`,
			EmailMethodID, f.URL+"/v1.0/users/"+testUser+"/authentication/methods?page=2")
	})
	ms, err := c.Methods(testCtx(t), testUser)
	if err != nil || len(ms) != 2 || ms[0].Kind != KindEmail || ms[1].Kind != KindPassword {
		t.Fatalf("paged Methods = %+v, %v", ms, err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0].Header.Get("client-request-id") != reqs[1].Header.Get("client-request-id") {
		t.Errorf("pages used different client-request-ids")
	}
}

// TestObserveAndThrottleFeedback: Observe sees every attempt; a 429 with
// Retry-After pauses the shared throttle and halves its limit.
func TestObserveAndThrottleFeedback(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	var mu sync.Mutex
	var seenOps []string
	th := mustThrottle(ThrottleConfig{MaxLimit: 8})
	c := newTestClient(t, f.URL+"/v1.0", func(cfg *Config) {
		cfg.Throttle = th
		cfg.Observe = func(op string, status int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			seenOps = append(seenOps, fmt.Sprintf("%s %d", op, status))
		}
	})
	if c.Throttle() != th {
		t.Fatal("Throttle() is not the configured one")
	}
	f.setHandler(reply(204, ""))
	if err := c.SetAccountEnabled(testCtx(t), testUser, false); err != nil {
		t.Fatal(err)
	}
	f.setHandler(reply(429, `{"error":{"code":"TooManyRequests","message":"x"}}`, "Retry-After", "30"))
	before := time.Now()
	_ = c.RevokeSessions(testCtx(t), testUser)
	if until := th.PausedUntil(); until.Before(before.Add(29*time.Second)) || until.After(time.Now().Add(30*time.Second)) {
		t.Errorf("PausedUntil = %v, want about now+30s", until)
	}
	if th.Limit() != 4 {
		t.Errorf("limit = %d, want 8 halved", th.Limit())
	}
	// A new call now waits for the pause; its context ends it first.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.RevokeSessions(ctx, testUser)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call during the pause: err = %v, want the context's deadline", err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests reached the server, want 2 (none during the pause)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"set account enabled 204", "revoke sessions 429"}; fmt.Sprint(seenOps) != fmt.Sprint(want) {
		t.Errorf("Observe saw %v, want %v", seenOps, want)
	}
}

// TestTimeoutsAndCancel: the per-request timeout is transient; the
// caller's cancellation is reported as such and is not transient.
func TestTimeoutsAndCancel(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := newTestClient(t, f.URL+"/v1.0", func(cfg *Config) { cfg.HTTPClient = &http.Client{Timeout: 100 * time.Millisecond} })
	err := c.DeleteTAP(testCtx(t), testUser, "abc")
	if !errors.Is(err, ErrTransient) {
		t.Errorf("per-request timeout: err = %v, want transient", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 0 {
		t.Errorf("per-request timeout: %#v", err)
	}

	c2 := newTestClient(t, f.URL+"/v1.0")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err = c2.DeleteTAP(ctx, testUser, "abc")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTransient) || errors.Is(err, ErrPermanent) {
		t.Errorf("cancelled: err = %v, want context.Canceled only", err)
	}
}

type fakeCredential struct {
	mu     sync.Mutex
	token  string
	err    error
	scopes [][]string
}

func (f *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scopes = append(f.scopes, o.Scopes)
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestCredentialAuth: with a credential aimed at a loopback Graph, the
// token is sent (msgraph-go.md §3: the SDK's default hosts would send
// none); CheckToken reports the credential's failures, classified.
func TestCredentialAuth(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	cred := &fakeCredential{token: "cred-token"}
	c := newTestClient(t, f.URL+"/v1.0", func(cfg *Config) {
		cfg.Token = ""
		cfg.Credential = cred
		cfg.Scopes = []string{"https://graph.example/.default"}
	})
	if err := c.SetAccountEnabled(testCtx(t), testUser, true); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer cred-token" {
		t.Fatalf("requests %d, Authorization %q", len(reqs), reqs[0].Header.Get("Authorization"))
	}
	if err := c.CheckToken(testCtx(t)); err != nil {
		t.Errorf("CheckToken: %v", err)
	}
	cred.mu.Lock()
	if len(cred.scopes) == 0 || fmt.Sprint(cred.scopes[0]) != "[https://graph.example/.default]" {
		t.Errorf("scopes %v", cred.scopes)
	}
	cred.err = errors.New("AADSTS7000215: invalid client secret")
	cred.mu.Unlock()
	err := c.CheckToken(testCtx(t))
	if err == nil || !errors.Is(err, ErrTransient) && !errors.Is(err, ErrPermission) {
		t.Errorf("CheckToken with a failing credential: %v", err)
	}
	f.reset()
	err = c.SetAccountEnabled(testCtx(t), testUser, true)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "tokenAcquisitionFailed" {
		t.Errorf("call with a failing credential: %#v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests went out without a token", n)
	}

	cred.mu.Lock()
	cred.err, cred.token = nil, ""
	cred.mu.Unlock()
	err = c.SetAccountEnabled(testCtx(t), testUser, true)
	if !errors.Is(err, ErrPermission) {
		t.Errorf("empty token: err = %v, want ErrPermission", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests went out with an empty token", n)
	}

	st := newTestClient(t, f.URL+"/v1.0")
	if err := st.CheckToken(testCtx(t)); err != nil {
		t.Errorf("static CheckToken: %v", err)
	}
}

// TestTokenProviderRefusesOtherHosts: asked for a token for another host,
// the provider errors instead of answering "" (which would send the
// request unauthenticated).
func TestTokenProviderRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL+"/v1.0")
	u := *c.base
	u.Host = "graph.evil.example"
	_, err := c.tokens.GetAuthorizationToken(testCtx(t), &u, nil)
	var te *tokenError
	if !errors.As(err, &te) || te.code != "hostNotAllowed" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "test-token") {
		t.Error("error leaks the token")
	}
}

func TestTAPRedaction(t *testing.T) {
	t.Parallel()
	tap := TAP{Method: Method{Kind: KindTAP, ID: "abc", TAPLifetimeMinutes: 60}, Value: "SeCrEt-TaP"}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("issued", "tap", tap)
	for _, s := range []string{fmt.Sprint(tap), fmt.Sprintf("%v %+v %#v %s", tap, tap, tap, tap), buf.String()} {
		if strings.Contains(s, "SeCrEt") {
			t.Errorf("TAP value leaked: %s", s)
		}
		if !strings.Contains(s, "abc") {
			t.Errorf("TAP description lost its id: %s", s)
		}
	}
}

// TestResetPasswordPolling drives the 202 + Location + operation flow
// against a scripted server.
func TestResetPasswordPolling(t *testing.T) {
	t.Parallel()
	const opPath = "/v1.0/users/" + testUser + "/authentication/operations/op-1"
	script := func(f *fakeGraph, location string, statuses ...string) {
		var mu sync.Mutex
		polls := 0
		f.setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/methods/"+PasswordMethodID+"/resetPassword"):
				w.Header().Set("Location", location)
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusAccepted)
				if !bytes.Contains(body, []byte("newPassword")) {
					io.WriteString(w, `{"newPassword":"Gen3rated!"}`)
				}
			case r.Method == http.MethodGet && r.URL.Path == opPath:
				mu.Lock()
				s := statuses[min(polls, len(statuses)-1)]
				polls++
				mu.Unlock()
				if s == "503" {
					w.WriteHeader(503)
					io.WriteString(w, `{"error":{"code":"serviceNotAvailable","message":"later"}}`)
					return
				}
				fmt.Fprintf(w, `{"id":"op-1","status":%q,"statusDetail":"detail-%s"}`, s, s)
			default:
				w.WriteHeader(404)
				io.WriteString(w, `{"error":{"code":"itemNotFound","message":"x"}}`)
			}
		})
	}
	fast := func(c *Client) *Client {
		c.pollInterval, c.pollMaxWait = time.Millisecond, 5*time.Millisecond
		return c
	}

	t.Run("generated, polled to success through a transient error", func(t *testing.T) {
		t.Parallel()
		f := newFakeGraph(t)
		script(f, f.URL+opPath+"?aadgdc=DUB02P&aadgsu=ssprprod-a", "notStarted", "503", "running", "succeeded")
		c := fast(newTestClient(t, f.URL+"/v1.0"))
		got, err := c.ResetPassword(WithRequestID(testCtx(t), "rid-1"), testUser, "")
		if err != nil || got != "Gen3rated!" {
			t.Fatalf("ResetPassword = %q, %v", got, err)
		}
		reqs := f.requests()
		if len(reqs) != 5 {
			t.Errorf("%d requests, want POST + 4 polls", len(reqs))
		}
		for _, r := range reqs[1:] {
			if r.RawQuery != "aadgdc=DUB02P&aadgsu=ssprprod-a" {
				t.Errorf("poll query %q: the Location was not polled as given", r.RawQuery)
			}
			if r.Header.Get("client-request-id") != "rid-1" {
				t.Errorf("poll client-request-id %q", r.Header.Get("client-request-id"))
			}
		}
		if strings.Contains(string(reqs[0].Body), "newPassword") {
			t.Errorf("sent a newPassword when asked to generate one: %s", reqs[0].Body)
		}
	})
	t.Run("caller password", func(t *testing.T) {
		t.Parallel()
		f := newFakeGraph(t)
		script(f, opPath, "succeeded") // a relative Location resolves against the base
		c := fast(newTestClient(t, f.URL+"/v1.0"))
		got, err := c.ResetPassword(testCtx(t), testUser, "Correct-Horse-9")
		if err != nil || got != "" {
			t.Fatalf("ResetPassword = %q, %v", got, err)
		}
		if body := string(f.requests()[0].Body); !strings.Contains(body, `"newPassword":"Correct-Horse-9"`) {
			t.Errorf("body %s", body)
		}
	})
	t.Run("operation failed", func(t *testing.T) {
		t.Parallel()
		f := newFakeGraph(t)
		script(f, f.URL+opPath, "running", "failed")
		c := fast(newTestClient(t, f.URL+"/v1.0"))
		_, err := c.ResetPassword(testCtx(t), testUser, "")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "operationFailed" || !errors.Is(err, ErrPermanent) || !strings.Contains(ae.Message, "detail-failed") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("foreign Location is not polled", func(t *testing.T) {
		t.Parallel()
		other := newFakeGraph(t)
		f := newFakeGraph(t)
		script(f, other.URL+opPath, "succeeded")
		c := fast(newTestClient(t, f.URL+"/v1.0"))
		if _, err := c.ResetPassword(testCtx(t), testUser, ""); !errors.Is(err, ErrPermanent) {
			t.Errorf("err = %v, want permanent", err)
		}
		if n := len(other.requests()); n != 0 {
			t.Errorf("the foreign Location got %d requests", n)
		}
	})
	t.Run("poll budget", func(t *testing.T) {
		t.Parallel()
		f := newFakeGraph(t)
		script(f, f.URL+opPath, "running")
		c := fast(newTestClient(t, f.URL+"/v1.0"))
		c.pollBudget = 50 * time.Millisecond
		_, err := c.ResetPassword(testCtx(t), testUser, "")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "operationTimeout" {
			t.Errorf("err = %v", err)
		}
	})
}

// TestMethodMapping: every v1.0 method type of GET /methods maps onto
// Method, unknown types keep a derived kind.
func TestMethodMapping(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	f.setHandler(reply(200, `{"value":[
 {"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","id":"`+MobilePhoneID+`","phoneNumber":"+1 5555551234","phoneType":"mobile","smsSignInState":"ready"},
 {"@odata.type":"#microsoft.graph.emailAuthenticationMethod","id":"`+EmailMethodID+`","emailAddress":"k@contoso.com"},
 {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"f1","displayName":"Key","model":"YubiKey 5","aaGuid":"cb69481e-8ff7-4039-93ec-0a2729a154a8","createdDateTime":"2024-01-02T03:04:05Z"},
 {"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"m1","displayName":"iPhone","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.5.4"},
 {"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","id":"w1","displayName":"PC","keyStrength":"normal"},
 {"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"s1","secretKey":null},
 {"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","id":"t1","temporaryAccessPass":null,"startDateTime":"2026-01-01T10:00:00Z","lifetimeInMinutes":60,"isUsableOnce":true,"isUsable":false,"methodUsabilityReason":"NotYetValid"},
 {"@odata.type":"#microsoft.graph.passwordAuthenticationMethod","id":"`+PasswordMethodID+`","password":null},
 {"@odata.type":"#microsoft.graph.platformCredentialAuthenticationMethod","id":"p1","displayName":"Mac","keyStrength":"normal","platform":"macOS"},
 {"@odata.type":"#microsoft.graph.externalAuthenticationMethod","id":"e1","displayName":"Adatum","configurationId":"c"},
 {"@odata.type":"#microsoft.graph.hardwareOathAuthenticationMethod","id":"h1"}
]}`))
	c := newTestClient(t, f.URL+"/v1.0")
	ms, err := c.Methods(testCtx(t), testUser)
	if err != nil {
		t.Fatal(err)
	}
	want := []Method{
		{Kind: KindPhone, ID: MobilePhoneID, PhoneNumber: "+1 5555551234", PhoneType: PhoneMobile, SMSSignInState: "ready"},
		{Kind: KindEmail, ID: EmailMethodID, EmailAddress: "k@contoso.com"},
		{Kind: KindFIDO2, ID: "f1", DisplayName: "Key", Model: "YubiKey 5", AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8",
			Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Kind: KindMicrosoftAuthenticator, ID: "m1", DisplayName: "iPhone", DeviceTag: "SoftwareTokenActivated", PhoneAppVersion: "6.5.4"},
		{Kind: KindWindowsHelloForBusiness, ID: "w1", DisplayName: "PC", KeyStrength: "normal"},
		{Kind: KindSoftwareOath, ID: "s1"},
		{Kind: KindTAP, ID: "t1", TAPStart: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), TAPLifetimeMinutes: 60,
			TAPUsableOnce: true, TAPUsabilityReason: "NotYetValid"},
		{Kind: KindPassword, ID: PasswordMethodID},
		{Kind: KindPlatformCredential, ID: "p1", DisplayName: "Mac", KeyStrength: "normal", Platform: "macOS"},
		{Kind: KindExternal, ID: "e1", DisplayName: "Adatum"},
		{Kind: "hardwareOath", ID: "h1"},
	}
	if len(ms) != len(want) {
		t.Fatalf("%d methods, want %d: %+v", len(ms), len(want), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("method %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
}

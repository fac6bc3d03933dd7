package graphclient

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrorShapes drives each error response shape of msgraph-go.md §4
// through msgraph-sdk-go over HTTP and checks the classification. None may
// panic (the SDK's ODataError.Error() does on some of them).
func TestErrorShapes(t *testing.T) {
	t.Parallel()
	type want struct {
		status     int
		code       string
		is         []error
		isNot      []error
		retryAfter time.Duration
		claims     string // APIError.Claims, also in the message
		requests   int    // HTTP requests made; 0: not checked
	}
	const mfaJSON = `{"access_token":{"amr":{"essential":true,"values":["ngcmfa"]}}}`
	challenge := func(claims string) string {
		return `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="` + claims + `"`
	}
	mfa := []error{ErrMFARequired, ErrPermanent}
	notMFA := []error{ErrPermission, ErrTransient, ErrConflict}
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request, []byte)
		want    want
	}{
		{"404 itemNotFound", reply(404, `{"error":{"code":"itemNotFound","message":"no such method","innerError":{"request-id":"r-1"}}}`),
			want{status: 404, code: "itemNotFound", is: []error{ErrMethodNotFound, ErrNotFound, ErrPermanent}, isNot: []error{ErrUserNotFound, ErrTransient}}},
		{"404 Request_ResourceNotFound", reply(404, `{"error":{"code":"Request_ResourceNotFound","message":"no such user"}}`),
			want{status: 404, code: "Request_ResourceNotFound", is: []error{ErrUserNotFound, ErrNotFound, ErrPermanent}, isNot: []error{ErrMethodNotFound}}},
		{"400 body without error", reply(400, `{"foo":1}`),
			want{status: 400, is: []error{ErrConflict, ErrPermanent}, isNot: []error{ErrTransient}}},
		{"400 error without message", reply(400, `{"error":{"code":"badRequest"}}`),
			want{status: 400, code: "badRequest", is: []error{ErrConflict}}},
		{"400 error is a string", reply(400, `{"error":"boom"}`),
			want{status: 400, is: []error{ErrConflict}}},
		{"404 empty body", reply(404, ""),
			want{status: 404, is: []error{ErrNotFound}, isNot: []error{ErrUserNotFound, ErrMethodNotFound}}},
		{"404 text/plain", reply(404, "not here", "Content-Type", "text/plain"),
			want{status: 404, is: []error{ErrNotFound}}},
		{"500 text/html", reply(500, "<html>oops</html>", "Content-Type", "text/html"),
			want{status: 500, is: []error{ErrTransient}, isNot: []error{ErrPermanent}}},
		{"500 json array", reply(500, `[1,2]`),
			want{status: 500, is: []error{ErrTransient}}},
		{"200 truncated json", reply(200, `{"value":[{"@odata.type":"#microsoft.graph.phoneAuth`),
			want{status: 200, code: "invalidResponse", is: []error{ErrTransient}}},
		{"429 Retry-After seconds", reply(429, `{"error":{"code":"TooManyRequests","message":"slow down"}}`, "Retry-After", "7"),
			want{status: 429, code: "TooManyRequests", is: []error{ErrTransient}, retryAfter: 7 * time.Second}},
		{"503 Retry-After fraction", reply(503, `{"error":{"code":"serviceNotAvailable","message":"later"}}`, "Retry-After", "2.128"),
			want{status: 503, is: []error{ErrTransient}, retryAfter: 2128 * time.Millisecond}},
		{"503 Retry-After date", reply(503, `{"error":{"code":"serviceNotAvailable","message":"later"}}`, "Retry-After", httpDate),
			want{status: 503, is: []error{ErrTransient}, retryAfter: 90 * time.Second}},
		{"502", reply(502, `{"error":{"code":"x","message":"y"}}`), want{status: 502, is: []error{ErrTransient}}},
		{"504 empty", reply(504, ""), want{status: 504, is: []error{ErrTransient}}},
		{"408", reply(408, `{"error":{"code":"x","message":"y"}}`), want{status: 408, is: []error{ErrTransient}}},
		{"401", reply(401, `{"error":{"code":"InvalidAuthenticationToken","message":"bad token"}}`),
			want{status: 401, code: "InvalidAuthenticationToken", is: []error{ErrPermission, ErrPermanent}}},
		{"403", reply(403, `{"error":{"code":"accessDenied","message":"no"}}`), want{status: 403, is: []error{ErrPermission}}},
		{"409", reply(409, `{"error":{"code":"conflict","message":"no"}}`), want{status: 409, is: []error{ErrConflict}}},
		{"405 notSupported", reply(405, `{"error":{"code":"notSupported","message":"no"}}`),
			want{status: 405, is: []error{ErrPermanent}, isNot: []error{ErrTransient, ErrConflict, ErrNotFound}}},
		{"507", reply(507, `{"error":{"code":"x","message":"y"}}`), want{status: 507, is: []error{ErrPermanent}, isNot: []error{ErrTransient}}},
		{"302 not followed", reply(302, ""), want{status: 302, is: []error{ErrPermanent}}},

		// Multifactor claims challenges (credential management from 2026).
		{"403 MFA claims challenge", reply(403, `{"error":{"code":"accessDenied","message":"denied"}}`, "WWW-Authenticate", challenge("eyJhY2Nlc3NfdG9rZW4iOnsiYW1yIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWVzIjpbIm5nY21mYSJdfX19")),
			want{status: 403, code: "accessDenied", is: mfa, isNot: notMFA, claims: mfaJSON, requests: 1}},
		{"403 MFA challenge, URL base64 unpadded, no body", reply(403, "", "WWW-Authenticate", challenge("eyJhY2Nlc3NfdG9rZW4iOnsiYW1yIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWVzIjpbIm5nY21mYSJdfX19")),
			want{status: 403, is: mfa, isNot: notMFA, claims: mfaJSON}},
		{"403 MFA challenge unquoted among challenges", reply(403, "", "WWW-Authenticate", `PoP nonce="x", Bearer error=insufficient_claims, claims=eyJhY2Nlc3NfdG9rZW4iOnsiYW1yIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWVzIjpbIm5nY21mYSJdfX19`),
			want{status: 403, is: mfa, isNot: notMFA, claims: mfaJSON}},
		{"403 MFA claims in the error body", reply(403, `{"error":{"code":"Unauthorized","message":"Additional claims required {\"access_token\":{\"amr\":{\"essential\":true,\"values\":[\"ngcmfa\"]}}}"}}`),
			want{status: 403, code: "Unauthorized", is: mfa, isNot: notMFA, claims: mfaJSON}},
		{"403 Unauthorized_MissingMFA", reply(403, `{"error":{"code":"Unauthorized_MissingMFA","message":"MFA is required for this request."}}`),
			want{status: 403, code: "Unauthorized_MissingMFA", is: mfa, isNot: notMFA}},
		{"401 MFA claims challenge is not re-sent", reply(401, `{"error":{"code":"InvalidAuthenticationToken","message":"claims"}}`, "WWW-Authenticate", challenge("eyJhY2Nlc3NfdG9rZW4iOnsiYW1yIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWVzIjpbIm5nY21mYSJdfX19")),
			want{status: 401, code: "mfaRequired", is: mfa, isNot: notMFA, claims: mfaJSON, requests: 1}},
		{"403 other claims challenge", reply(403, `{"error":{"code":"accessDenied","message":"no"}}`, "WWW-Authenticate", challenge("eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNjUyODEzNTA4In19fQ==")),
			want{status: 403, is: []error{ErrPermission}, isNot: []error{ErrMFARequired}, requests: 1}},
		{"401 CAE challenge is re-sent once", reply(401, `{"error":{"code":"InvalidAuthenticationToken","message":"revoked"}}`, "WWW-Authenticate", challenge("eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNjUyODEzNTA4In19fQ==")),
			want{status: 401, is: []error{ErrPermission}, isNot: []error{ErrMFARequired}, requests: 2}},
		{"403 claims not base64", reply(403, `{"error":{"code":"accessDenied","message":"no"}}`, "WWW-Authenticate", challenge("not base64!")),
			want{status: 403, is: []error{ErrPermission}, isNot: []error{ErrMFARequired}}},
		{"400 with amr claims is not MFA", reply(400, `{"error":{"code":"badRequest","message":"Additional claims required {\"access_token\":{\"amr\":{\"values\":[\"ngcmfa\"]}}}"}}`),
			want{status: 400, is: []error{ErrConflict}, isNot: []error{ErrMFARequired}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeGraph(t)
			f.setHandler(tc.handler)
			c := newTestClient(t, f.URL+"/v1.0")
			_, err := c.Methods(testCtx(t), testUser)
			if err == nil {
				t.Fatal("Methods succeeded, want an error")
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v is not an *APIError", err, err)
			}
			if ae.Status != tc.want.status {
				t.Errorf("Status = %d, want %d", ae.Status, tc.want.status)
			}
			if ae.Code != tc.want.code && tc.want.code != "" {
				t.Errorf("Code = %q, want %q", ae.Code, tc.want.code)
			}
			if ae.Op != "list methods" {
				t.Errorf("Op = %q", ae.Op)
			}
			for _, target := range tc.want.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = false; err = %v", target, err)
				}
			}
			for _, target := range tc.want.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = true; err = %v", target, err)
				}
			}
			got, ok := RetryAfter(err)
			if tc.want.retryAfter == 0 && ok {
				t.Errorf("RetryAfter = %v, want none", got)
			}
			if tc.want.retryAfter != 0 && (got < tc.want.retryAfter-10*time.Second || got > tc.want.retryAfter) {
				t.Errorf("RetryAfter = %v, want about %v", got, tc.want.retryAfter)
			}
			msg := err.Error() // must not panic
			if strings.Contains(msg, "test-token") || strings.Contains(msg, "http://") {
				t.Errorf("error string leaks a token or URL: %q", msg)
			}
			if ae.Claims != tc.want.claims {
				t.Errorf("Claims = %q, want %q", ae.Claims, tc.want.claims)
			}
			if tc.want.claims != "" && !strings.Contains(msg, tc.want.claims) {
				t.Errorf("the claims are not in the message %q", msg)
			}
			if n := len(f.requests()); tc.want.requests != 0 && n != tc.want.requests {
				t.Errorf("%d requests, want %d", n, tc.want.requests)
			}
		})
	}
}

// TestErrorTransport: a refused connection is transient, status 0, and the
// error string carries no URL query (it may hold a UPN).
func TestErrorTransport(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := newTestClient(t, "http://"+addr+"/v1.0")
	_, err = c.ResolveUser(testCtx(t), "o'brien@contoso.com")
	if err == nil {
		t.Fatal("want an error")
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 0 || !errors.Is(err, ErrTransient) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %#v, want transient *APIError with status 0", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Errorf("the net.Error cause was lost: %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "filter") || strings.Contains(msg, "brien") || strings.Contains(msg, "?") {
		t.Errorf("error string leaks the query: %q", msg)
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{0, "", ErrTransient}, {408, "", ErrTransient}, {429, "", ErrTransient}, {500, "", ErrTransient},
		{502, "", ErrTransient}, {503, "", ErrTransient}, {504, "", ErrTransient},
		{401, "", ErrPermission}, {403, "", ErrPermission},
		{404, "", ErrNotFound}, {404, "itemNotFound", ErrMethodNotFound}, {404, "Request_ResourceNotFound", ErrUserNotFound},
		{400, "", ErrConflict}, {409, "", ErrConflict}, {422, "", ErrConflict},
		{405, "", ErrPermanent}, {410, "", ErrPermanent}, {501, "", ErrPermanent}, {507, "", ErrPermanent},
	}
	for _, tc := range tests {
		if got := classifyStatus(tc.status, tc.code); got != tc.want {
			t.Errorf("classifyStatus(%d, %q) = %v, want %v", tc.status, tc.code, got, tc.want)
		}
		// An APIError built without a class (e.g. by a fake) derives it.
		ae := &APIError{Op: "x", Status: tc.status, Code: tc.code}
		if !errors.Is(ae, tc.want) {
			t.Errorf("APIError{%d %q} is not %v", tc.status, tc.code, tc.want)
		}
		if transient := errors.Is(ae, ErrTransient); transient == errors.Is(ae, ErrPermanent) {
			t.Errorf("APIError{%d} transient=%v and permanent=%v: want exactly one", tc.status, transient, !transient)
		}
	}
}

func TestSentinelTree(t *testing.T) {
	t.Parallel()
	for _, e := range []error{ErrNotFound, ErrUserNotFound, ErrMethodNotFound, ErrConflict, ErrPermission, ErrMFARequired, ErrInvalidInput} {
		if !errors.Is(e, ErrPermanent) || errors.Is(e, ErrTransient) {
			t.Errorf("%v: want permanent, not transient", e)
		}
	}
	if !errors.Is(ErrUserNotFound, ErrNotFound) || !errors.Is(ErrMethodNotFound, ErrNotFound) {
		t.Error("user/method not found must be ErrNotFound")
	}
	if errors.Is(ErrTransient, ErrPermanent) {
		t.Error("transient must not be permanent")
	}
	if errors.Is(ErrMFARequired, ErrPermission) || errors.Is(ErrPermission, ErrMFARequired) {
		t.Error("MFA required must be distinguishable from a missing permission")
	}
	wrapped := fmt.Errorf("outer: %w", &APIError{Op: "x", Status: 429, RetryAfter: 3 * time.Second})
	if d, ok := RetryAfter(wrapped); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter through wrapping = %v, %v", d, ok)
	}
	if _, ok := RetryAfter(errors.New("plain")); ok {
		t.Error("RetryAfter of a plain error")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"10", 10 * time.Second, true},
		{" 3 ", 3 * time.Second, true},
		{"2.128", 2128 * time.Millisecond, true},
		{"0.0001", time.Millisecond, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"1e300", maxRetryAfter, true},
		{"soon", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	if got := sanitize("a\r\nb\x00c", 100); got != "a  b c" {
		t.Errorf("sanitize control = %q", got)
	}
	if got := sanitize(strings.Repeat("é", 100), 11); len(got) > 11+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("sanitize bound = %q", got)
	}
	if got := sanitize("a\xffb", 10); got != "a?b" {
		t.Errorf("sanitize invalid utf8 = %q", got)
	}
	if got := redactURL("http://h/v1.0/users?$filter=x#f"); got != "http://h/v1.0/users" {
		t.Errorf("redactURL = %q", got)
	}
}

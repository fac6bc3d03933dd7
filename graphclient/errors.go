package graphclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// class is a classification sentinel. Classes form a small tree: every
// class except ErrTransient unwraps to ErrPermanent, so errors.Is(err,
// ErrPermanent) means "do not retry".
type class struct {
	msg    string
	parent error
}

func (c *class) Error() string { return c.msg }
func (c *class) Unwrap() error { return c.parent }

// The error classes. Match them with errors.Is.
var (
	// ErrTransient: the call may succeed if retried (network errors, 408,
	// 429, 500, 502, 503, 504).
	ErrTransient error = &class{msg: "graphclient: transient error"}
	// ErrPermanent: retrying will not help. Every class below is also
	// ErrPermanent.
	ErrPermanent error = &class{msg: "graphclient: permanent error"}
	// ErrNotFound: 404.
	ErrNotFound error = &class{msg: "graphclient: not found", parent: ErrPermanent}
	// ErrUserNotFound: the user does not exist (404 Request_ResourceNotFound,
	// or no user has the UPN). It is also ErrNotFound.
	ErrUserNotFound error = &class{msg: "graphclient: user not found", parent: ErrNotFound}
	// ErrMethodNotFound: the method does not exist (404 itemNotFound). It is
	// also ErrNotFound.
	ErrMethodNotFound error = &class{msg: "graphclient: method not found", parent: ErrNotFound}
	// ErrConflict: the service refused the change under one of its rules
	// (400, 409, 422), e.g. a second mobile phone or deleting the default
	// method.
	ErrConflict error = &class{msg: "graphclient: rejected by the service", parent: ErrPermanent}
	// ErrPermission: the caller is not allowed (401, 403) or has no token.
	ErrPermission error = &class{msg: "graphclient: permission denied", parent: ErrPermanent}
	// ErrMFARequired: Graph refused the call (401, 403) with a claims
	// challenge for multifactor authentication (an amr claim such as
	// ngcmfa, as credential-management calls may now demand), which an
	// application's token cannot satisfy. It is permanent and deliberately
	// not ErrPermission: no permission grant fixes it. APIError.Claims holds
	// the challenge when Graph sent one.
	ErrMFARequired error = &class{msg: "graphclient: multifactor authentication required", parent: ErrPermanent}
	// ErrInvalidInput: an argument failed validation; no request was sent.
	ErrInvalidInput error = &class{msg: "graphclient: invalid input", parent: ErrPermanent}
)

// APIError is a failed Graph call, classified. It matches the class
// sentinels (ErrTransient, ErrNotFound, ...) with errors.Is.
type APIError struct {
	Op         string        // the client operation, e.g. "add phone"
	Status     int           // HTTP status; 0 when no response arrived
	Code       string        // Graph error.code, e.g. "itemNotFound"
	Message    string        // Graph error.message, sanitized and bounded
	RequestID  string        // Graph request-id, for support cases
	RetryAfter time.Duration // the server's Retry-After, 0 if none
	Claims     string        // the claims challenge (JSON) of an ErrMFARequired, if Graph sent one; bounded
	Err        error         // the underlying cause when there is one (transport errors); never an SDK type

	class error // set by the client; nil means derive it from Status and Code
}

// Error describes the failure without URLs, tokens or secrets.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.Status != 0:
		b.WriteString(strconv.Itoa(e.Status))
		if e.Code != "" {
			b.WriteString(" ")
			b.WriteString(e.Code)
		}
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.Code)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the cause, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Is maps the error onto the class sentinels.
func (e *APIError) Is(target error) bool {
	c := e.class
	if c == nil {
		c = classifyStatus(e.Status, e.Code)
	}
	return errors.Is(c, target)
}

// RetryAfter returns the Retry-After the server sent with err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// IsTransient reports whether err is worth retrying. It is the default
// Retryable of a RetryPolicy.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// Graph error codes that refine a 404.
const (
	codeUserNotFound   = "Request_ResourceNotFound"
	codeMethodNotFound = "itemNotFound"
)

// classifyStatus is the one place where an HTTP status becomes a class.
func classifyStatus(status int, code string) error {
	switch status {
	case 0, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrTransient
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrPermission
	case http.StatusNotFound:
		switch code {
		case codeUserNotFound:
			return ErrUserNotFound
		case codeMethodNotFound:
			return ErrMethodNotFound
		}
		return ErrNotFound
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
		return ErrConflict
	}
	if status < 400 {
		// A success status with an error means the body could not be read
		// or parsed; the exchange may be retried.
		return ErrTransient
	}
	return ErrPermanent
}

// response is what the transport saw of the last HTTP attempt of one call.
type response struct {
	status    int
	requestID string
	retry     string // raw Retry-After
	location  string
	challenge string // raw WWW-Authenticate, its values joined
}

// classify turns the error of one SDK call into an *APIError. It reads the
// status from the transport's record first: msgraph-sdk-go loses it for
// non-JSON error bodies (msgraph-go.md §4).
func classify(op string, resp response, now time.Time, err error) *APIError {
	ae := &APIError{Op: op, Status: resp.status, RequestID: sanitize(resp.requestID, 64)}
	if d, ok := parseRetryAfter(resp.retry, now); ok {
		ae.RetryAfter = d
	}

	var te *tokenError
	var od *odataerrors.ODataError
	var apiErr abs.ApiErrorable
	var ue *url.Error
	switch {
	case errors.As(err, &te):
		ae.Code = te.code
		ae.Message = sanitize(te.Error(), 600)
		ae.Claims = te.claims
		ae.class = te.class
		return ae
	case errors.As(err, &od):
		if ae.Status == 0 {
			ae.Status = od.GetStatusCode()
		}
		// Never call od.Error(): it dereferences error.message, which may
		// be absent.
		if me := od.GetErrorEscaped(); me != nil {
			if c := me.GetCode(); c != nil {
				ae.Code = sanitize(*c, 64)
			}
			if m := me.GetMessage(); m != nil {
				ae.Message = sanitize(*m, 300)
			}
			if ie := me.GetInnerError(); ie != nil && ae.RequestID == "" {
				if rid := ie.GetRequestId(); rid != nil {
					ae.RequestID = sanitize(*rid, 64)
				}
			}
		}
		if ae.Message == "" {
			ae.Message = "error body without error.message"
		}
	case errors.As(err, &apiErr):
		if ae.Status == 0 {
			ae.Status = apiErr.GetStatusCode()
		}
		ae.Message = "no error body"
	case errors.As(err, &ue):
		// Keep the chain (context.DeadlineExceeded, *net.OpError) but drop
		// the query from the URL: it may hold a UPN.
		ae.Err = &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
		ae.Status = 0
		ae.Code = "transportError"
		ae.class = ErrTransient
		return ae
	default:
		switch {
		case ae.Status >= 400:
			ae.Message = "unreadable error body: " + sanitize(err.Error(), 200)
		case ae.Status > 0:
			ae.Code = "invalidResponse"
			ae.Message = "unreadable response body: " + sanitize(err.Error(), 200)
		default:
			// Failed before a response, outside the transport (e.g. the
			// request timeout while building it). Keep the context error
			// in the chain; anything else only as sanitized text.
			ae.Code = "requestFailed"
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				ae.Err = context.DeadlineExceeded
			case errors.Is(err, context.Canceled):
				ae.Err = context.Canceled
			default:
				ae.Err = errors.New(sanitize(err.Error(), 300))
			}
		}
	}
	ae.class = classifyStatus(ae.Status, ae.Code)
	if ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
		if claims, ok := mfaChallenge(resp.challenge, ae.Code, ae.Message); ok {
			ae.class = ErrMFARequired
			ae.Claims = claims
			if claims != "" && !strings.Contains(ae.Message, claims) {
				ae.Message = sanitize(ae.Message+" (claims challenge: "+claims+")", 600)
			}
		}
	}
	return ae
}

// codeMissingMFA is the error code Graph uses for "MFA is required for this
// request" where it sends no claims challenge.
const codeMissingMFA = "Unauthorized_MissingMFA"

// mfaChallenge reports whether a 401 or 403 demands multifactor
// authentication: a WWW-Authenticate claims challenge, or claims in the
// error message ("Additional claims required {...}"), that ask for an amr
// value, or the code Unauthorized_MissingMFA. It returns the claims JSON
// when there is one.
func mfaChallenge(wwwAuthenticate, code, message string) (claims string, ok bool) {
	if raw := challengeParam(wwwAuthenticate, "claims"); raw != "" {
		if js, err := decodeClaims(raw); err == nil {
			if c, ok := mfaClaims(js); ok {
				return c, true
			}
		}
	}
	if i := strings.IndexByte(message, '{'); i >= 0 {
		if c, ok := mfaClaims([]byte(message[i:])); ok {
			return c, true
		}
	}
	return "", strings.EqualFold(code, codeMissingMFA)
}

// maxClaims bounds the claims a challenge may carry (real ones are well
// under 200 bytes).
const maxClaims = 2048

// decodeClaims decodes a claims parameter: base64, standard or URL
// alphabet, padded or not.
func decodeClaims(raw string) ([]byte, error) {
	if len(raw) > maxClaims*4/3+4 {
		return nil, errors.New("claims too long")
	}
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(raw); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// mfaClaims reports whether a claims request asks the access token for an
// authentication method reference (amr, e.g. "ngcmfa" or "mfa"), and
// returns it compacted. Trailing text after the JSON object is ignored.
func mfaClaims(js []byte) (string, bool) {
	if len(js) > maxClaims {
		return "", false
	}
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(js)).Decode(&raw); err != nil {
		return "", false
	}
	var c struct {
		AccessToken struct {
			AMR json.RawMessage `json:"amr"`
		} `json:"access_token"`
	}
	if json.Unmarshal(raw, &c) != nil || len(c.AccessToken.AMR) == 0 || string(c.AccessToken.AMR) == "null" {
		return "", false
	}
	var out bytes.Buffer
	if json.Compact(&out, raw) != nil {
		return "", false
	}
	return sanitize(out.String(), 300), true
}

// challengeParam returns the value of the auth-param name in a
// WWW-Authenticate header (RFC 9110 §11.6.1: token or quoted string), or "".
func challengeParam(h, name string) string {
	lower := strings.ToLower(h)
	key := strings.ToLower(name) + "="
	for i := 0; i < len(lower); {
		j := strings.Index(lower[i:], key)
		if j < 0 {
			return ""
		}
		j += i
		if j > 0 && !strings.ContainsRune(" ,\t", rune(lower[j-1])) {
			i = j + 1 // e.g. "xclaims="
			continue
		}
		v := h[j+len(key):]
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return ""
			}
			return v[1 : 1+end]
		}
		if end := strings.IndexAny(v, ", \t"); end >= 0 {
			return v[:end]
		}
		return v
	}
	return ""
}

// parseRetryAfter reads a Retry-After value: delta seconds (fractions
// allowed, rounded up to the millisecond) or an HTTP date. Values are capped
// at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 {
			return 0, false
		}
		if secs > maxRetryAfter.Seconds() {
			return maxRetryAfter, true
		}
		return time.Duration(math.Ceil(secs*1000)) * time.Millisecond, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxRetryAfter:
		return maxRetryAfter, true
	}
	return d, true
}

// maxRetryAfter bounds a server's Retry-After so that a bogus value cannot
// stall the worker for days.
const maxRetryAfter = time.Hour

// redactURL keeps scheme, host and path of a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	return u.String()
}

// sanitize bounds s and removes control characters, so that a hostile
// server cannot inject lines into logs.
func sanitize(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

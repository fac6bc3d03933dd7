package graphclienttest

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// graphContentType is the Content-Type Graph sends with JSON answers.
const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// maxBody caps request bodies, compressed and decompressed.
const maxBody = 1 << 20

// call is one Graph request on its way through the pipeline.
type call struct {
	r           *http.Request
	rt          route
	reqID       string // request-id we answer with
	clientID    string // client-request-id as the client sent it ("" if none or unusable)
	traceParent string // traceparent as the client sent it ("" if none or unusable)
	base        string // scheme://host as the client addressed us
	body        []byte
	bodyErr     *reply
	now         time.Time // the emulator clock when the answer is decided
	userID      string    // the resolved object id, for the log
	query       url.Values
}

// crid is the client-request-id we echo: the client's, or our request-id.
func (c *call) crid() string {
	if c.clientID != "" {
		return c.clientID
	}
	return c.reqID
}

func (c *call) q() url.Values {
	if c.query == nil {
		c.query = c.r.URL.Query()
	}
	return c.query
}

// badRequestCode is the 400 code of the API family the route belongs to.
func (c *call) badRequestCode() string {
	if c.rt.userCode {
		return "Request_BadRequest"
	}
	return "badRequest"
}

// reply is a decided answer, written after the state lock is released.
type reply struct {
	status        int
	body          []byte // nil: no body
	location      string
	allow         string
	retryAfter    int
	hasRetryAfter bool
	authenticate  string // WWW-Authenticate
	code, msg     string // set for errors: the body is built at write time
	throttleInner bool   // 429: innerError carries code and status
}

func errReply(status int, code, msg string) reply {
	return reply{status: status, code: code, msg: msg}
}

func errReplyf(status int, code, format string, a ...any) reply {
	return reply{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func jsonReply(status int, body []byte) reply { return reply{status: status, body: body} }

func emptyReply(status int) reply { return reply{status: status} }

func (e *Emulator) serveGraph(w http.ResponseWriter, r *http.Request, rest string) {
	e.serveRoute(w, r, parseRoute(rest))
}

// serveRoute serves a parsed Graph request (v1.0 or beta).
func (e *Emulator) serveRoute(w http.ResponseWriter, r *http.Request, rt route) {
	c := &call{r: r, reqID: newGUID(), clientID: r.Header.Get("client-request-id"), base: baseURL(r)}
	if !validHeaderValue(c.clientID) {
		c.clientID = ""
	}
	if tp := r.Header.Get("traceparent"); validHeaderValue(tp) {
		c.traceParent = tp
	}
	c.rt = rt

	f, d := e.arrive(c)
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			e.recordAlone(c, 499)
			return
		}
	}

	authorized := e.authorized(r)
	if authorized && (r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut) {
		c.body, c.bodyErr = readBody(r, c.badRequestCode())
	}
	lost := f.LostReplyMode
	if _, ok := w.(http.Hijacker); lost == lostDrop && !ok && r.ProtoMajor < 2 {
		lost = lost504 // nothing to drop (e.g. an httptest.ResponseRecorder)
	}
	rep, drop := e.exec(c, f, authorized, lost)
	if drop {
		dropConnection(w, r)
		return
	}
	writeReply(w, c, rep)
}

// arrive counts what a request's arrival says about its client: coming back
// before a Retry-After elapsed, or during an open throttle window. It
// returns the faults in force and the request's injected latency.
func (e *Emulator) arrive(c *call) (Faults, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if now.Before(e.throttle) {
		e.stats.duringThrottle++
	}
	if c.clientID != "" {
		if nb, ok := e.notBefore[c.clientID]; ok {
			if now.Before(nb) {
				e.stats.violations++
			} else {
				delete(e.notBefore, c.clientID)
			}
		}
	}
	f := e.faults // ErrorStatuses is replaced, never mutated, so sharing it is safe
	d := time.Duration(f.LatencyMs) * time.Millisecond
	if f.JitterMs > 0 {
		d += time.Duration(e.draws.jitter.IntN(f.JitterMs+1)) * time.Millisecond
	}
	return f, d
}

// exec decides the answer under the state lock: token check, throttle,
// injected errors, then the handler, then whether an applied write loses
// its reply (lost is the LostReplyMode this connection can honour). drop
// reports that the reply must be lost by closing the connection.
func (e *Emulator) exec(c *call, f Faults, authorized bool, lost string) (rep reply, drop bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.now = e.now()
	applied := false
	switch {
	case !authorized:
		rep = unauthorized(c.r)
	default:
		if ok, wait := e.bucket.take(c.now); !ok {
			rep = throttled(wait)
			break
		}
		if f.ErrorRate > 0 && e.draws.errors.Float64() < f.ErrorRate {
			rep = injected(f, e.draws.errors.IntN(len(f.ErrorStatuses)))
			break
		}
		if c.bodyErr != nil {
			rep = *c.bodyErr
			break
		}
		rep = e.handle(c)
		applied = true
	}
	status := rep.status
	isLost := applied && isWrite(c.r.Method) && f.LostReplyRate > 0 && e.draws.lost.Float64() < f.LostReplyRate
	if isLost {
		e.stats.lost++
		if lost == lost504 {
			rep = errReply(http.StatusGatewayTimeout, "gatewayTimeout", "The gateway did not receive a timely response from the service.")
			status = rep.status
		} else {
			status = 0
			drop = true
		}
	}
	if rep.status == http.StatusTooManyRequests {
		e.stats.throttled++
	}
	if rep.hasRetryAfter && rep.retryAfter > 0 && (rep.status == http.StatusTooManyRequests || rep.status == http.StatusServiceUnavailable) {
		end := c.now.Add(time.Duration(rep.retryAfter) * time.Second)
		if rep.status == http.StatusTooManyRequests && end.After(e.throttle) {
			e.throttle = end
		}
		if c.clientID != "" {
			e.rememberRetryAfterLocked(c.clientID, end)
		}
	}
	e.recordLocked(c, status, isLost)
	return rep, drop
}

// rememberRetryAfterLocked keeps the time before which clientID must not
// come back, pruning expired entries so the map stays small.
func (e *Emulator) rememberRetryAfterLocked(clientID string, end time.Time) {
	if len(e.notBefore) >= 10_000 {
		now := e.now()
		for k, t := range e.notBefore {
			if !now.Before(t) {
				delete(e.notBefore, k)
			}
		}
		if len(e.notBefore) >= 100_000 {
			clear(e.notBefore)
		}
	}
	e.notBefore[clientID] = end
}

func (e *Emulator) recordAlone(c *call, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.now = e.now()
	e.recordLocked(c, status, false)
}

// recordLocked counts the answer and appends it to the request log.
func (e *Emulator) recordLocked(c *call, status int, lost bool) {
	method := statMethod(c.r.Method)
	e.stats.total++
	e.stats.byKey[statKey{method: method, route: c.rt.tmpl, status: status}]++
	uid := c.userID
	if uid == "" && c.rt.user != "" {
		if u := e.lookupUserLocked(c.rt.user); u != nil {
			uid = u.id
		} else {
			uid = c.rt.user
		}
	}
	path := c.r.URL.Path
	if len(path) > 512 {
		path = path[:512]
	}
	e.reqlog.add(Request{Time: c.now, Method: method, Route: c.rt.tmpl, Path: path, UserID: uid,
		Status: status, ClientRequestID: c.clientID, TraceParent: c.traceParent, Lost: lost})
}

// isWrite reports the methods whose replies lostReplyRate may lose.
func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut || method == http.MethodDelete
}

// authorized checks "Authorization: Bearer <token>" in constant time.
func (e *Emulator) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(e.token)) == 1
}

func unauthorized(r *http.Request) reply {
	msg := "Access token validation failure. Invalid audience."
	if r.Header.Get("Authorization") == "" {
		msg = "Access token is empty."
	}
	return errReply(http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
}

func throttled(retryAfter int) reply {
	rep := errReply(http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.")
	rep.retryAfter, rep.hasRetryAfter, rep.throttleInner = retryAfter, true, true
	return rep
}

// injected answers with the configured error status number i.
func injected(f Faults, i int) reply {
	status := f.ErrorStatuses[i]
	var rep reply
	switch status {
	case http.StatusTooManyRequests:
		rep = throttled(f.RetryAfterSeconds)
		return rep
	case http.StatusServiceUnavailable:
		rep = errReply(status, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later.")
		rep.retryAfter, rep.hasRetryAfter = f.RetryAfterSeconds, true
	case http.StatusGatewayTimeout:
		rep = errReply(status, "gatewayTimeout", "The gateway did not receive a timely response from the service.")
	case http.StatusBadGateway:
		rep = errReply(status, "badGateway", "The gateway received an invalid response from the service.")
	default:
		rep = errReplyf(status, "generalException", "An error was injected by the emulator (status %d).", status)
	}
	return rep
}

// writeReply writes the decided answer with Graph's headers.
func writeReply(w http.ResponseWriter, c *call, rep reply) {
	h := w.Header()
	h.Set("request-id", c.reqID)
	h.Set("client-request-id", c.crid())
	if rep.location != "" {
		h.Set("Location", rep.location)
	}
	if rep.allow != "" {
		h.Set("Allow", rep.allow)
	}
	if rep.hasRetryAfter {
		h.Set("Retry-After", strconv.Itoa(rep.retryAfter))
	}
	if rep.authenticate != "" {
		h.Set("WWW-Authenticate", rep.authenticate)
	}
	body, ct := rep.body, graphContentType
	if rep.code != "" {
		body, ct = errorBody(rep, c.reqID, c.crid(), c.now), "application/json"
	}
	if body != nil {
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(rep.status)
	if body != nil && c.r.Method != http.MethodHead {
		_, _ = w.Write(body) // the client may have gone; nothing to do about it
	}
}

// errorBody is Graph's error envelope; error.message is never empty
// (msgraph-sdk-go panics without it).
func errorBody(rep reply, reqID, crid string, now time.Time) []byte {
	if now.IsZero() {
		now = time.Now()
	}
	msg := rep.msg
	if msg == "" {
		msg = http.StatusText(rep.status)
	}
	b := make([]byte, 0, 256+len(msg))
	b = append(b, `{"error":`...)
	o := startObj(b)
	o.str("code", rep.code)
	o.str("message", msg)
	o.key("innerError")
	in := startObj(o.b)
	if rep.throttleInner {
		in.str("code", strconv.Itoa(rep.status))
		in.str("message", "Please retry after")
		in.str("status", strconv.Itoa(rep.status))
	}
	in.str("date", now.UTC().Format("2006-01-02T15:04:05"))
	in.str("request-id", reqID)
	in.str("client-request-id", crid)
	o.b = in.end()
	b = o.end()
	return append(b, '}')
}

// writeError writes a Graph-style error outside the Graph pipeline (admin
// API, unknown prefixes).
func writeError(w http.ResponseWriter, status int, code, msg, reqID, crid string, now *time.Time) {
	if crid == "" {
		crid = reqID
	}
	var t time.Time
	if now != nil {
		t = *now
	}
	body := errorBody(reply{status: status, code: code, msg: msg}, reqID, crid, t)
	h := w.Header()
	h.Set("request-id", reqID)
	h.Set("client-request-id", crid)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// dropConnection loses the reply: the connection is closed without an
// answer (HTTP/2: the stream is reset).
func dropConnection(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor >= 2 {
		panic(http.ErrAbortHandler) // net/http resets the stream and logs nothing
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

// validHeaderValue accepts what we can echo safely: printable ASCII, at most 200 bytes.
func validHeaderValue(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// readBody reads a request body: at most 1 MiB, gzip decompressed.
func readBody(r *http.Request, badCode string) ([]byte, *reply) {
	tooLarge := func() ([]byte, *reply) {
		rep := errReplyf(http.StatusBadRequest, badCode, "The request body is too large (limit %d bytes).", maxBody)
		return nil, &rep
	}
	if r.ContentLength > maxBody {
		return tooLarge()
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		rep := errReply(http.StatusBadRequest, badCode, "The request body could not be read.")
		return nil, &rep
	}
	if len(raw) > maxBody {
		return tooLarge()
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			rep := errReply(http.StatusBadRequest, badCode, "The request body is not valid gzip (Content-Encoding: gzip).")
			return nil, &rep
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxBody+1))
		if err != nil {
			rep := errReply(http.StatusBadRequest, badCode, "The request body is not valid gzip (Content-Encoding: gzip).")
			return nil, &rep
		}
		if len(out) > maxBody {
			return tooLarge()
		}
		return out, nil
	default:
		rep := errReplyf(http.StatusUnsupportedMediaType, "UnsupportedMediaType",
			"Content-Encoding %q is not supported; send gzip or an uncompressed body.", enc)
		return nil, &rep
	}
}

// jsonError explains a decoding failure.
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

// decodeJSON decodes a JSON object into v. An empty body decodes as {}.
// Unknown fields are ignored, as Graph ignores them; a known field of the
// wrong JSON type is an error.
func decodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &jsonError{fmt.Sprintf("Unable to read JSON request payload: %v (offset %d). Please ensure the payload is valid JSON.", se, se.Offset)}
	case errors.As(err, &te) && te.Field == "":
		return &jsonError{"The request body must be a JSON object."}
	case errors.As(err, &te):
		return &jsonError{fmt.Sprintf("Invalid value for property '%s': expected %s, got a JSON %s.", te.Field, jsonKind(te.Type), te.Value)}
	}
	return &jsonError{"Unable to read JSON request payload: " + err.Error()}
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

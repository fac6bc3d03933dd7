package graphclienttest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Object ids used across the tests.
const (
	userA = "11111111-1111-4111-8111-111111111111"
	userB = "22222222-2222-4222-8222-222222222222"
	userG = "33333333-3333-4333-8333-333333333333" // a guest
)

// clock is a settable clock for deterministic TAP, throttle and
// Retry-After tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one emulator server and a client for it.
type env struct {
	t      *testing.T
	srv    *Server
	clock  *clock
	client *http.Client
}

func newEnv(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	clk := newClock()
	all := append([]func(*Options){func(o *Options) { o.Now = clk.Now }}, opts...)
	srv := NewServer(t, all...)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return &env{t: t, srv: srv, clock: clk, client: client}
}

// response is an answer with its body decoded when it is JSON.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func (r response) values() []map[string]any {
	v, _ := r.body["value"].([]any)
	out := make([]map[string]any, 0, len(v))
	for _, x := range v {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func noToken() reqOpt { return func(r *http.Request) { r.Header.Del("Authorization") } }

// graph sends a request to path below /v1.0 with the token; {u} in the
// path stands for userA.
func (e *env) graph(method, path, body string, opts ...reqOpt) response {
	e.t.Helper()
	path = strings.ReplaceAll(path, "{u}", userA)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.GraphURL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+e.srv.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	return e.send(req, true)
}

// admin sends a request to path below /_emulator.
func (e *env) admin(method, path, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+"/_emulator"+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	return e.send(req, false)
}

// send does the request; every error answer from Graph must carry the full
// error envelope, which this checks for every test.
func (e *env) send(req *http.Request, graph bool) response {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			var arr []any
			if json.Unmarshal(raw, &arr) != nil {
				e.t.Fatalf("%s %s: body is not JSON: %v: %s", req.Method, req.URL, err, raw)
			}
		}
	}
	if graph && res.StatusCode >= 400 {
		checkErrorEnvelope(e.t, req, r)
	}
	return r
}

func checkErrorEnvelope(t *testing.T, req *http.Request, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: error Content-Type %q", req.Method, req.URL.Path, ct)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("%s %s: error body without error: %s", req.Method, req.URL.Path, r.raw)
	}
	for _, k := range []string{"code", "message"} {
		if s, _ := e[k].(string); s == "" {
			t.Fatalf("%s %s: error.%s empty: %s", req.Method, req.URL.Path, k, r.raw)
		}
	}
	in, ok := e["innerError"].(map[string]any)
	if !ok {
		t.Fatalf("%s %s: no innerError: %s", req.Method, req.URL.Path, r.raw)
	}
	for _, k := range []string{"date", "request-id", "client-request-id"} {
		if s, _ := in[k].(string); s == "" {
			t.Fatalf("%s %s: innerError.%s empty: %s", req.Method, req.URL.Path, k, r.raw)
		}
	}
	if in["request-id"] != r.header.Get("request-id") {
		t.Fatalf("innerError.request-id %v != header %q", in["request-id"], r.header.Get("request-id"))
	}
}

// want checks status and, when code is set, error.code.
func (r response) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %q, want %d %q; body: %s", r.status, r.code(), status, code, r.raw)
	}
}

// putUser seeds a user from admin JSON; methods is a JSON array or "".
func (e *env) putUser(id, upn, extra string) {
	e.t.Helper()
	body := `{"id":"` + id + `","userPrincipalName":"` + upn + `"` + extra + `}`
	r := e.admin("PUT", "/users/"+id, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		e.t.Fatalf("seed %s: %d %s", id, r.status, r.raw)
	}
}

// seedBasic creates userA (kim@contoso.com) with only a password.
func (e *env) seedBasic() { e.putUser(userA, "kim@contoso.com", "") }

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// step is one request of a scripted scenario.
type step struct {
	name   string
	method string
	path   string
	body   string
	status int
	code   string
}

func (e *env) run(steps []step) {
	e.t.Helper()
	for _, s := range steps {
		r := e.graph(s.method, s.path, s.body)
		if r.status != s.status || r.code() != s.code {
			e.t.Fatalf("step %q: %s %s: got %d %q, want %d %q; body: %s",
				s.name, s.method, s.path, r.status, r.code(), s.status, s.code, r.raw)
		}
	}
}

// methodIDs lists the ids of a user's methods of a given @odata.type suffix.
func (e *env) methodsOf(id, odataType string) []map[string]any {
	e.t.Helper()
	u, ok := e.srv.User(id)
	if !ok {
		e.t.Fatalf("user %s missing", id)
	}
	var out []map[string]any
	for _, raw := range u.Methods {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			e.t.Fatal(err)
		}
		if m["@odata.type"] == "#microsoft.graph."+odataType {
			out = append(out, m)
		}
	}
	return out
}

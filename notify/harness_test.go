package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// The tests run the Deliverer against an embedded JetStream server and the
// Graph emulator over HTTP. httpMailer talks to the emulator with plain
// net/http, so that this package's tests do not link msgraph-sdk-go;
// graphclient's contract tests cover *graphclient.Client against the same
// endpoints.

func startNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "notify-test", Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func jetStream(t testing.TB, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// httpError is a Graph error answer.
type httpError struct {
	status     int
	code       string
	retryAfter time.Duration
}

func (e *httpError) Error() string { return fmt.Sprintf("graph %d %s", e.status, e.code) }

func transient(err error) bool {
	var he *httpError
	if errors.As(err, &he) {
		return he.status == 429 || he.status >= 500
	}
	return true // transport errors
}

func retryAfter(err error) (time.Duration, bool) {
	var he *httpError
	if errors.As(err, &he) && he.retryAfter > 0 {
		return he.retryAfter, true
	}
	return 0, false
}

// httpMailer is a Mailer over plain HTTP.
type httpMailer struct {
	base, token string
	client      *http.Client
}

var _ Mailer = (*httpMailer)(nil)

func (h *httpMailer) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		he := &httpError{status: res.StatusCode, code: e.Error.Code}
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
			he.retryAfter = time.Duration(s) * time.Second
		}
		return he
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (h *httpMailer) MailAddresses(ctx context.Context, userID string) ([]*mail.Address, error) {
	var u struct {
		DisplayName string   `json:"displayName"`
		Mail        string   `json:"mail"`
		OtherMails  []string `json:"otherMails"`
	}
	if err := h.do(ctx, "GET", "/users/"+userID+"?$select=id,displayName,mail,otherMails", nil, &u); err != nil {
		return nil, err
	}
	var out []*mail.Address
	for _, a := range append([]string{u.Mail}, u.OtherMails...) {
		if a != "" {
			out = append(out, &mail.Address{Name: u.DisplayName, Address: a})
		}
	}
	return out, nil
}

func (h *httpMailer) ManagerAddress(ctx context.Context, userID string) (*mail.Address, error) {
	var u struct {
		DisplayName string `json:"displayName"`
		Mail        string `json:"mail"`
	}
	err := h.do(ctx, "GET", "/users/"+userID+"/manager?$select=id,displayName,mail", nil, &u)
	var he *httpError
	if errors.As(err, &he) && he.status == 404 {
		return nil, nil
	}
	if err != nil || u.Mail == "" {
		return nil, err
	}
	return &mail.Address{Name: u.DisplayName, Address: u.Mail}, nil
}

func (h *httpMailer) SendMail(ctx context.Context, senderID string, msg *mail.Message) error {
	type addr struct {
		Address string `json:"address"`
		Name    string `json:"name,omitempty"`
	}
	type recipient struct {
		EmailAddress addr `json:"emailAddress"`
	}
	list := func(h string) ([]recipient, error) {
		if msg.Header.Get(h) == "" {
			return nil, nil
		}
		as, err := msg.Header.AddressList(h)
		var out []recipient
		for _, a := range as {
			out = append(out, recipient{addr{a.Address, a.Name}})
		}
		return out, err
	}
	to, err := list("To")
	if err != nil {
		return err
	}
	cc, err := list("Cc")
	if err != nil {
		return err
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return err
	}
	ct := "text"
	if strings.HasPrefix(msg.Header.Get("Content-Type"), "text/html") {
		ct = "html"
	}
	content, _ := io.ReadAll(msg.Body)
	body, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"subject": subject, "body": map[string]string{"contentType": ct, "content": string(content)},
			"toRecipients": to, "ccRecipients": cc,
		},
		"saveToSentItems": false,
	})
	return h.do(ctx, "POST", "/users/"+senderID+"/sendMail", body, nil)
}

// Directory objects of the tests.
const (
	kimID     = "0a1b2c3d-0000-4000-8000-00000000000a"
	leeID     = "0a1b2c3d-0000-4000-8000-00000000000d" // kim's manager
	senderID  = "0a1b2c3d-0000-4000-8000-00000000000e"
	noMailID  = "0a1b2c3d-0000-4000-8000-00000000000f"
	goneID    = "0a1b2c3d-0000-4000-8000-0000000000ff"
	otherID   = "0a1b2c3d-0000-4000-8000-00000000000b"
	kimHome   = "kim.home@fabrikam.com"
	kimWork   = "kim@contoso.com"
	leeWork   = "lee@contoso.com"
	otherWork = "ann@contoso.com"
)

// env is a JetStream server with the DLQ stream, an emulator with kim
// (work and home address, manager lee), ann, a user without mail and the
// sender mailbox, and a Deliverer running on them.
type env struct {
	t   *testing.T
	js  jetstream.JetStream
	srv *graphclienttest.Server
	d   *Deliverer
	cfg Config
}

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	s := startNATS(t)
	js := jetStream(t, s)
	ctx := testCtx(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DLQStream, Subjects: []string{"authflow.dlq.>"}}); err != nil {
		t.Fatal(err)
	}
	srv := graphclienttest.NewServer(t)
	for _, u := range []graphclienttest.User{
		{ID: leeID, UserPrincipalName: "lee@contoso.com", DisplayName: "Lee Gu", Mail: leeWork},
		{ID: kimID, UserPrincipalName: "kim@contoso.com", DisplayName: "Kim Akers", Mail: kimWork, OtherMails: []string{kimHome}, ManagerID: leeID},
		{ID: otherID, UserPrincipalName: "ann@contoso.com", DisplayName: "Ann Beebe", Mail: otherWork},
		{ID: noMailID, UserPrincipalName: "nomail@contoso.com", ManagerID: leeID},
		{ID: senderID, UserPrincipalName: "authflow-notify@contoso.com", Mail: "authflow-notify@contoso.com"},
	} {
		if err := srv.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	cfg := Config{
		JetStream: js, Mailer: &httpMailer{base: srv.GraphURL, token: srv.Token, client: hc}, Sender: senderID,
		Organization: "Contoso IT", IsTransient: transient, RetryAfter: retryAfter,
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxAttempts: 4,
	}
	for _, f := range mod {
		f(&cfg)
	}
	d, err := NewDeliverer(ctx, cfg)
	if err != nil {
		t.Fatalf("NewDeliverer: %v", err)
	}
	e := &env{t: t, js: js, srv: srv, d: d, cfg: cfg}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return e
}

// notification builds the notification of an event from helpdesk/servicenow
// for user (object id) that ended with ops, as the worker would.
func notification(t testing.TB, id, typ, user, data string, mode events.NotifyMode, info *events.ErrorInfo, ops ...events.OpResult) *events.Notification {
	t.Helper()
	raw := `{"specversion":"1.0","id":"` + id + `","source":"helpdesk/servicenow","type":"` + typ + `","subject":"` + user +
		`","time":"2026-11-26T09:00:00Z","data":` + data + `}`
	ev, err := events.Decoder{}.Decode([]byte(raw))
	if err != nil {
		t.Fatalf("decode event: %v", err)
	}
	status := events.StatusSucceeded
	if info != nil {
		status = info.Code.Status()
	}
	fin := time.Date(2026, 11, 26, 9, 0, 3, 0, time.UTC)
	res := events.NewResult(events.ResultID(ev.Source, ev.ID, nil, 0), ev.Subject, events.ResultData{
		Event: ev.Ref(), Status: status, Error: info, Operations: ops,
		User:       events.UserInfo{Ref: user, ObjectID: user},
		Provenance: &events.Provenance{Source: ev.Source, TicketID: "INC0012345", Method: "callback", VerifiedBy: "agent.smith@contoso.com"},
		FinishedAt: fin,
	}, fin)
	n, ok := events.NewNotification(ev, res, mode)
	if !ok {
		t.Fatalf("no notification for %s", typ)
	}
	return n
}

func (e *env) publish(key string, n *events.Notification) {
	e.t.Helper()
	if err := Publish(testCtx(e.t), e.js, key, n); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

// waitMail waits until the emulator has accepted n messages.
func (e *env) waitMail(n int) []graphclienttest.MailMessage {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := e.srv.Mail(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("%d messages sent, want %d", len(e.srv.Mail()), n)
	return nil
}

// waitDLQ waits until the DLQ holds n notifications and returns them.
func (e *env) waitDLQ(n int) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := testCtx(e.t)
	s, err := e.js.Stream(ctx, DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := s.Info(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if int(info.State.Msgs) >= n {
			var out []*jetstream.RawStreamMsg
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err == nil {
					out = append(out, m)
				}
			}
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("the DLQ did not reach %d messages", n)
	return nil
}

// settled waits until the consumer has nothing pending or unacked.
func (e *env) settled() {
	e.t.Helper()
	ctx := testCtx(e.t)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := e.d.cons.Info(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatal("the consumer did not settle")
}

var phoneCreated = events.OpResult{Op: events.OpEnsurePhone, MethodKind: events.KindPhone, Outcome: events.OutcomeCreated,
	Detail: "mobile +1 ******0100", MethodID: "3179e48a-750b-4051-897c-87b9720928f7"}

// waitFor polls cond for up to 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package notify

import (
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// TestDeliverChange: a phone set by the helpdesk reaches the user's work
// and home addresses, masked, with who asked, when, and the dispute line.
func TestDeliverChange(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	e := newEnv(t, func(c *Config) { c.Metrics = metrics })
	n := notification(t, "e-1", events.TypePhoneSet, kimID, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`, events.NotifyUser, nil, phoneCreated)
	e.publish("kim", n)
	m := e.waitMail(1)[0]
	e.settled()
	m.Content = html.UnescapeString(m.Content)
	if got := strings.Join(m.Recipients(), ","); got != kimWork+","+kimHome {
		t.Errorf("recipients %s", got)
	}
	if m.SenderID != senderID || m.ContentType != "html" || m.Subject != "Contoso IT: A phone number of your account was changed" {
		t.Errorf("message %+v", m)
	}
	for _, want := range []string{"Hello Kim Akers", "Added: phone (mobile +1 ******0100)", "Thu, 26 Nov 2026 09:00:03 UTC",
		"helpdesk/servicenow, ticket INC0012345, verified by agent.smith@contoso.com (callback)", DefaultDispute, n.ID} {
		if !strings.Contains(m.Content, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Content)
		}
	}
	if strings.Contains(m.Content, "4255550100") || strings.Contains(m.Content, "Lee") {
		t.Errorf("body shows the number or the manager:\n%s", m.Content)
	}
	if got := testutil.ToFloat64(metrics.sent.WithLabelValues(events.ReasonChanged)); got != 1 {
		t.Errorf("sent metric %v", got)
	}
}

// TestDeliverNeverToAddressJustSet: the email method the event created is
// no channel to tell the user (whoever asked may own it); the manager
// gets a copy when the policy says user+manager.
func TestDeliverNeverToAddressJustSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	emailSet := events.OpResult{Op: events.OpEnsureEmail, MethodKind: events.KindEmail, Outcome: events.OutcomeCreated, Detail: "k***@fabrikam.com"}
	n := notification(t, "e-1", events.TypeEmailSet, kimID, `{"emailAddress":"Kim.Home@fabrikam.com"}`, events.NotifyUserAndManager, nil, emailSet)
	e.publish("kim", n)
	m := e.waitMail(1)[0]
	if len(m.To) != 1 || m.To[0].Address != kimWork || len(m.CC) != 1 || m.CC[0].Address != leeWork {
		t.Fatalf("to %+v cc %+v; want kim's work address and lee in copy, not %s", m.To, m.CC, kimHome)
	}
	if !strings.Contains(m.Content, "A copy of this message goes to your manager, Lee Gu.") {
		t.Errorf("body does not say the manager gets a copy:\n%s", m.Content)
	}
}

// TestDeliverNoRecipient: a user whose only address is none (or the one
// just set) cannot be told: the manager is, when the policy says so;
// otherwise the notification is dead-lettered for an operator.
func TestDeliverNoRecipient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish("nomail", notification(t, "e-1", events.TypeMFAReset, noMailID, `{}`, events.NotifyUser, nil,
		events.OpResult{Op: events.OpRemoveAllMethods, Outcome: events.OutcomeDeleted, Detail: "2 methods"}))
	dl := e.waitDLQ(1)[0]
	if dl.Subject != DLQSubjectPrefix+"nomail" || dl.Header.Get(HeaderDLQReason) != ReasonNoRecipient ||
		dl.Header.Get(HeaderDLQSubject) != Subject("nomail") || dl.Header.Get(HeaderDLQAttempts) != "1" {
		t.Errorf("dead letter %s %v", dl.Subject, dl.Header)
	}
	if _, err := events.DecodeNotification(dl.Data); err != nil {
		t.Errorf("dead letter does not hold the notification: %v", err)
	}
	e.publish("nomail", notification(t, "e-2", events.TypeMFAReset, noMailID, `{}`, events.NotifyUserAndManager, nil,
		events.OpResult{Op: events.OpRemoveAllMethods, Outcome: events.OutcomeDeleted}))
	m := e.waitMail(1)[0]
	if len(m.To) != 1 || m.To[0].Address != leeWork || len(m.CC) != 0 {
		t.Errorf("manager only: to %+v cc %+v", m.To, m.CC)
	}
	e.settled()
}

// TestDeliverExactlyOnce: the same notification published twice is one
// email: the stream drops the second copy, and a copy the stream lets
// through (another Nats-Msg-Id, or after its window) is found in the sent
// bucket.
func TestDeliverExactlyOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	e := newEnv(t, func(c *Config) { c.Metrics = metrics })
	n := notification(t, "e-1", events.TypePhoneSet, kimID, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`, events.NotifyUser, nil, phoneCreated)
	e.publish("kim", n)
	e.publish("kim", n)
	e.waitMail(1)
	e.settled()
	m, _, err := NewMsg("kim", n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(testCtx(t), m, jetstream.WithMsgID("another-id")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy is handled", func() bool { return testutil.ToFloat64(metrics.skipped.WithLabelValues("duplicate")) == 1 })
	e.settled()
	if got := len(e.srv.Mail()); got != 1 {
		t.Errorf("%d emails for one notification", got)
	}
}

// TestMailOutage: while sendMail fails, notifications wait and retry with
// backoff; nothing else is held up (Graph's other endpoints answer,
// publishing returns at once); afterwards every notification is delivered
// once.
func TestMailOutage(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	e := newEnv(t, func(c *Config) { c.Metrics = metrics; c.MaxAttempts = 1000 })
	if err := e.srv.SetMailFaults(graphclienttest.MailFaults{Outage: true, Status: 503}); err != nil {
		t.Fatal(err)
	}
	for i, user := range []string{kimID, otherID} {
		start := time.Now()
		e.publish("u"+string(rune('a'+i)), notification(t, "e-"+user, events.TypeTAPIssue, user,
			`{"sealTo":"XAKKIPSHALQJ3PDNCVGBCWMLY3S5H5Q767LAXDJTJQLX6P4LPZOBGBKQ"}`, events.NotifyUser, nil,
			events.OpResult{Op: events.OpIssueTAP, MethodKind: events.KindTAP, Outcome: events.OutcomeCreated}))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("publishing took %s during the outage", d)
		}
	}
	waitFor(t, "retries during the outage", func() bool { return testutil.ToFloat64(metrics.retries) >= 4 })
	if _, err := e.cfg.Mailer.MailAddresses(testCtx(t), kimID); err != nil {
		t.Errorf("Graph's other endpoints fail during a mail outage: %v", err)
	}
	if len(e.srv.Mail()) != 0 {
		t.Fatal("mail sent during the outage")
	}
	if err := e.srv.SetMailFaults(graphclienttest.MailFaults{}); err != nil {
		t.Fatal(err)
	}
	msgs := e.waitMail(2)
	e.settled()
	if len(msgs) != 2 || len(e.srv.Mail()) != 2 {
		t.Errorf("%d emails after the outage, want 2", len(e.srv.Mail()))
	}
}

// TestRetriesExhausted: a notification that keeps failing transiently is
// dead-lettered after MaxAttempts deliveries, with the reason; Graph's
// Retry-After stretches the wait.
func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 3 })
	if err := e.srv.SetMailFaults(graphclienttest.MailFaults{Outage: true, Status: 429, RetryAfterSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.publish("kim", notification(t, "e-1", events.TypePhoneSet, kimID, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`, events.NotifyUser, nil, phoneCreated))
	dl := e.waitDLQ(1)[0]
	if dl.Header.Get(HeaderDLQReason) != ReasonRetriesExhausted || dl.Header.Get(HeaderDLQAttempts) != "3" ||
		!strings.Contains(dl.Header.Get(HeaderDLQMessage), "429") {
		t.Errorf("dead letter headers %v", dl.Header)
	}
	// Two waits, each the Retry-After capped by MaxBackoff (100 ms):
	// longer than the 20/40 ms backoff alone.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("dead-lettered after %s: Retry-After not honoured", d)
	}
	e.settled()
}

// TestPermanentFailureBlocksNothing: a notification Graph refuses for good
// (the user is gone) is dead-lettered at once; the next ones are delivered.
func TestPermanentFailureBlocksNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish("gone", notification(t, "e-1", events.TypePhoneSet, goneID, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`, events.NotifyUser, nil, phoneCreated))
	e.publish("ann", notification(t, "e-2", events.TypePhoneSet, otherID, `{"phoneType":"mobile","phoneNumber":"+1 4255550101"}`, events.NotifyUser, nil, phoneCreated))
	dl := e.waitDLQ(1)[0]
	if dl.Header.Get(HeaderDLQReason) != ReasonPermanent || !strings.Contains(dl.Header.Get(HeaderDLQMessage), "404") {
		t.Errorf("dead letter %v", dl.Header)
	}
	if m := e.waitMail(1)[0]; m.To[0].Address != otherWork {
		t.Errorf("mail to %+v", m.To)
	}
	// An access policy that refuses the sender is permanent too.
	if err := e.srv.SetMailFaults(graphclienttest.MailFaults{FailNext: 1, Status: 403}); err != nil {
		t.Fatal(err)
	}
	e.publish("ann", notification(t, "e-3", events.TypePhoneSet, otherID, `{"phoneType":"mobile","phoneNumber":"+1 4255550102"}`, events.NotifyUser, nil, phoneCreated))
	if dl := e.waitDLQ(2)[1]; dl.Header.Get(HeaderDLQReason) != ReasonPermanent || !strings.Contains(dl.Header.Get(HeaderDLQMessage), "ErrorAccessDenied") {
		t.Errorf("access policy: %v", dl.Header)
	}
	e.settled()
}

// TestInvalidNotification: bytes that are not a notification are
// dead-lettered with the decoder's reason, not retried.
func TestInvalidNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := nats.NewMsg(Subject("kim"))
	m.Data = []byte(`{"specversion":"1.0","type":"authflow.notification.v1"}`)
	if _, err := e.js.PublishMsg(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	dl := e.waitDLQ(1)[0]
	if dl.Header.Get(HeaderDLQReason) != ReasonInvalid || !strings.Contains(dl.Header.Get(HeaderDLQMessage), "invalid_event") {
		t.Errorf("dead letter %v", dl.Header)
	}
	e.settled()
}

// TestRateLimitedQuiet: refused requests notify the user, at most once
// per user and type in the quiet window.
func TestRateLimitedQuiet(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	e := newEnv(t, func(c *Config) { c.Metrics = metrics })
	limited := &events.ErrorInfo{Code: events.CodeRateLimited, Message: "limit mfa-resets-per-user reached"}
	for i := range 3 {
		e.publish("kim", notification(t, "reset-"+string(rune('a'+i)), events.TypeMFAReset, kimID, `{}`, events.NotifyUser, limited))
	}
	m := e.waitMail(1)[0]
	waitFor(t, "two refusals skipped", func() bool { return testutil.ToFloat64(metrics.skipped.WithLabelValues("quiet")) == 2 })
	e.settled()
	if len(e.srv.Mail()) != 1 {
		t.Errorf("%d notices for 3 refusals in the quiet window", len(e.srv.Mail()))
	}
	if m.Subject != "Contoso IT: A change to your account was refused" || !strings.Contains(m.Content, "a reset of your multifactor sign-in methods") ||
		!strings.Contains(m.Content, "Nothing on your account changed") {
		t.Errorf("notice %q:\n%s", m.Subject, m.Content)
	}
	if got := testutil.ToFloat64(metrics.skipped.WithLabelValues("quiet")); got != 2 {
		t.Errorf("skipped{quiet} = %v", got)
	}
	// Another type is another notice.
	e.publish("kim", notification(t, "tap-1", events.TypeTAPIssue, kimID, `{"sealTo":"XAKKIPSHALQJ3PDNCVGBCWMLY3S5H5Q767LAXDJTJQLX6P4LPZOBGBKQ"}`, events.NotifyUser, limited))
	e.waitMail(2)
}

func TestPlainText(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.PlainText = true; c.Dispute = "Not you? Call +1 425 555 0199." })
	e.publish("kim", notification(t, "e-1", events.TypePasswordReset, kimID, `{"sealTo":"XAKKIPSHALQJ3PDNCVGBCWMLY3S5H5Q767LAXDJTJQLX6P4LPZOBGBKQ"}`, events.NotifyUser, nil,
		events.OpResult{Op: events.OpResetPassword, MethodKind: events.KindPassword, Outcome: events.OutcomeUpdated}))
	m := e.waitMail(1)[0]
	if m.ContentType != "text" || !strings.Contains(m.Content, "Reset: your password") || !strings.Contains(m.Content, "Not you? Call +1 425 555 0199.") ||
		strings.Contains(m.Content, "<p>") {
		t.Errorf("%s:\n%s", m.ContentType, m.Content)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	d := DefaultTemplates()
	// Every event type that writes renders, with its headline.
	for _, typ := range events.Types() {
		if events.ReadOnly(typ) {
			continue
		}
		data := sampleData()
		data.Headline, data.Type = headline(typ), typ
		for _, html := range []bool{false, true} {
			subject, body, err := d.render(strings.TrimPrefix(typ, "authflow."), data, html)
			if err != nil || !strings.Contains(subject, data.Headline) || !strings.Contains(body, data.Dispute) {
				t.Errorf("%s html=%v: %q, %v", typ, html, subject, err)
			}
		}
	}
	// html/template escapes what the text template does not.
	data := sampleData()
	data.Name = "<b>Kim</b>"
	if _, body, _ := d.render(keyDefault, data, true); strings.Contains(body, "<b>Kim</b>") || !strings.Contains(body, "&lt;b&gt;Kim&lt;/b&gt;") {
		t.Errorf("html not escaped:\n%s", body)
	}

	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mfa.reset.v1.subject.tmpl", "Action needed: MFA reset for {{.Account}}\n")
	write("README.md", "") // a stray file is an error, not ignored
	if _, err := LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), "README.md: not a template name") {
		t.Errorf("a stray file: %v", err)
	}
	os.Remove(filepath.Join(dir, "README.md"))
	lt, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	if subject, body, err := lt.render("mfa.reset.v1", sampleData(), true); err != nil || subject != "Action needed: MFA reset for adele.vance@contoso.com" ||
		!strings.Contains(body, "What changed") {
		t.Errorf("override: %q %v", subject, err)
	}
	if subject, _, _ := lt.render("phone.set.v1", sampleData(), true); !strings.HasPrefix(subject, "Contoso IT: ") {
		t.Errorf("other types keep the default: %q", subject)
	}
	bad := []struct{ name, body, msg string }{
		{"mfa.rest.v1.text.tmpl", "{{.Dispute}}", `unknown key "mfa.rest.v1"`},
		{"default.body.tmpl", "x", "not a template name"},
		{"tap.issue.v1.text.tmpl", "{{.Dispute", "tap.issue.v1.text.tmpl"},
		{"tap.issue.v1.html.tmpl", "{{.Dispute}} {{.Password}}", "can't evaluate field Password"},
		{"tap.issue.v1.text.tmpl", "A pass was issued.", "leaves out the dispute line"},
		{"tap.issue.v1.subject.tmpl", "{{if false}}x{{end}}", "renders an empty subject"},
		{"tap.issue.v1.subject.tmpl", "line one\nline two", "must be one line"},
	}
	for _, tc := range bad {
		bdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(bdir, tc.name), []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadTemplates(bdir); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %q: err %v, want %q", tc.name, tc.body, err, tc.msg)
		}
	}
	if _, err := LoadTemplates(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory loads")
	}
}

func TestChangeLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c    events.Change
		want string
	}{
		{events.Change{Op: events.OpEnsurePhone, Outcome: events.OutcomeUpdated, Detail: "office +1 ******0100"}, "Changed: phone (office +1 ******0100)"},
		{events.Change{Op: events.OpRemoveAllMethods, Outcome: events.OutcomeDeleted, Detail: "4 methods"}, "Removed: all sign-in methods except the password (4 methods)"},
		{events.Change{Op: events.OpRevokeSessions, Outcome: events.OutcomeUpdated}, "Signed out: every session of your account"},
		{events.Change{Op: events.OpIssueTAP, Outcome: events.OutcomeCreated}, "Issued: a Temporary Access Pass"},
		{events.Change{Op: events.OpRemoveMethod, MethodKind: events.KindFIDO2, Outcome: events.OutcomeDeleted}, "Removed: sign-in method fido2"},
		{events.Change{Op: events.OpSetAccountEnabled, Outcome: events.OutcomeUpdated, Detail: "disabled"}, "Changed: your account (disabled)"},
	}
	for _, tc := range tests {
		if got := changeLine(tc.c); got != tc.want {
			t.Errorf("changeLine(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	js := jetStream(t, s)
	ok := Config{JetStream: js, Mailer: &httpMailer{}, Sender: senderID}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no JetStream", func(c *Config) { c.JetStream = nil }, "JetStream: required"},
		{"no Mailer", func(c *Config) { c.Mailer = nil }, "Mailer: required"},
		{"UPN sender", func(c *Config) { c.Sender = "authflow-notify@contoso.com" }, "Sender: must be the object id"},
		{"backoff", func(c *Config) { c.InitialBackoff, c.MaxBackoff = time.Minute, time.Second }, "InitialBackoff: must not exceed MaxBackoff"},
		{"attempts", func(c *Config) { c.MaxAttempts = 5000 }, "MaxAttempts"},
		{"two-line dispute", func(c *Config) { c.Dispute = "a\nb" }, "must be one line"},
		{"ack wait", func(c *Config) { c.AckWait = time.Millisecond }, "AckWait"},
	}
	for _, tc := range tests {
		c := ok
		tc.mod(&c)
		if _, err := NewDeliverer(testCtx(t), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := NewMsg("a.b", &events.Notification{}); err == nil {
		t.Error("NewMsg accepted a key with a dot")
	}
	if _, _, err := NewMsg("kim", &events.Notification{}); err == nil {
		t.Error("NewMsg accepted an invalid notification")
	}
	// Publish needs the stream: a worker that never ensured it is told.
	err := Publish(testCtx(t), js, "kim", notification(t, "e-1", events.TypePhoneSet, kimID, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`, events.NotifyUser, nil, phoneCreated))
	if err == nil {
		t.Error("Publish without the stream succeeded")
	}
	if err := EnsureStream(testCtx(t), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(testCtx(t), js, StreamConfig{}); err != nil {
		t.Errorf("EnsureStream twice: %v", err)
	}
	if st, err := js.Stream(testCtx(t), Stream); err != nil || st.CachedInfo().Config.Duplicates != 24*time.Hour || st.CachedInfo().Config.MaxAge != 30*24*time.Hour {
		t.Errorf("stream %v", err)
	}
}

package graphclient

import (
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/notify"
)

// The notification deliverer takes a *Client as its Mailer.
var _ notify.Mailer = (*Client)(nil)

const (
	managerID = "0a1b2c3d-0000-4000-8000-00000000000d"
	senderID  = "0a1b2c3d-0000-4000-8000-00000000000e"
)

func mailContract(t *testing.T) (*graphclienttest.Server, *Client) {
	t.Helper()
	srv, c := contract(t)
	put(t, srv, graphclienttest.User{ID: managerID, UserPrincipalName: "lee@contoso.com", DisplayName: "Lee Gu", Mail: "Lee.Gu@contoso.com"})
	put(t, srv, graphclienttest.User{ID: kimID, UserPrincipalName: "Kim.OBrien@contoso.com", DisplayName: "Kim O'Brien, Sales",
		Mail: "kim.obrien@contoso.com", OtherMails: []string{"KIM.OBRIEN@contoso.com", "kim@fabrikam.com"}, ManagerID: managerID})
	put(t, srv, graphclienttest.User{ID: senderID, UserPrincipalName: "authflow-notify@contoso.com", Mail: "authflow-notify@contoso.com"})
	return srv, c
}

func TestContractMailAddresses(t *testing.T) {
	t.Parallel()
	_, c := mailContract(t)
	ctx := testCtx(t)
	got, err := c.MailAddresses(ctx, kimID)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	if want := `"Kim O'Brien, Sales" <kim.obrien@contoso.com>,"Kim O'Brien, Sales" <kim@fabrikam.com>`; strings.Join(s, ",") != want {
		t.Errorf("MailAddresses = %s\nwant %s", strings.Join(s, ","), want)
	}
	if got, err := c.MailAddresses(ctx, adminID); err != nil || got != nil {
		t.Errorf("no mail: %v, %v", got, err)
	}
	_, err = c.MailAddresses(ctx, nobody)
	mustKind(t, err, ErrUserNotFound)
	_, err = c.MailAddresses(ctx, "kim@contoso.com")
	mustKind(t, err, ErrInvalidInput)
}

func TestContractManagerAddress(t *testing.T) {
	t.Parallel()
	srv, c := mailContract(t)
	ctx := testCtx(t)
	a, err := c.ManagerAddress(ctx, kimID)
	if err != nil || a == nil || a.Address != "Lee.Gu@contoso.com" || a.Name != "Lee Gu" {
		t.Fatalf("ManagerAddress = %v, %v", a, err)
	}
	if a, err := c.ManagerAddress(ctx, adminID); err != nil || a != nil {
		t.Errorf("no manager: %v, %v", a, err)
	}
	if err := srv.PatchUserMail(managerID, graphclienttest.MailPatch{Mail: new("")}); err != nil {
		t.Fatal(err)
	}
	if a, err := c.ManagerAddress(ctx, kimID); err != nil || a != nil {
		t.Errorf("manager without mail: %v, %v", a, err)
	}
	_, err = c.ManagerAddress(ctx, "x")
	mustKind(t, err, ErrInvalidInput)
}

func TestContractSendMail(t *testing.T) {
	t.Parallel()
	srv, c := mailContract(t)
	ctx := testCtx(t)
	msg := &mail.Message{
		Header: mail.Header{
			"To":           {`"Kim O'Brien, Sales" <kim@fabrikam.com>`},
			"Cc":           {"Lee Gu <Lee.Gu@contoso.com>"},
			"Subject":      {"=?utf-8?q?Ihre_Anmeldemethoden_wurden_ge=C3=A4ndert?="},
			"Content-Type": {"text/html; charset=utf-8"},
		},
		Body: strings.NewReader("<p>A phone was added: +1 ******0100</p>"),
	}
	if err := c.SendMail(ctx, senderID, msg); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	sent := srv.Mail()
	if len(sent) != 1 {
		t.Fatalf("%d messages", len(sent))
	}
	m := sent[0]
	if m.SenderID != senderID || m.Subject != "Ihre Anmeldemethoden wurden geändert" || m.ContentType != "html" ||
		m.Content != "<p>A phone was added: +1 ******0100</p>" || m.SaveToSentItems {
		t.Errorf("sent %+v", m)
	}
	if len(m.To) != 1 || m.To[0] != (graphclienttest.Recipient{Name: "Kim O'Brien, Sales", Address: "kim@fabrikam.com"}) ||
		len(m.CC) != 1 || m.CC[0].Address != "Lee.Gu@contoso.com" || len(m.BCC) != 0 {
		t.Errorf("recipients %+v %+v %+v", m.To, m.CC, m.BCC)
	}
	// A plain-text message with Bcc only.
	plain := &mail.Message{Header: mail.Header{"Bcc": {"kim@fabrikam.com"}, "Subject": {"Sign-in methods changed"}}, Body: strings.NewReader("text")}
	if err := c.SendMail(ctx, senderID, plain); err != nil {
		t.Fatal(err)
	}
	if m := srv.Mail()[1]; m.ContentType != "text" || m.Content != "text" || len(m.BCC) != 1 {
		t.Errorf("plain %+v", m)
	}

	bad := []struct {
		name string
		msg  *mail.Message
	}{
		{"nil", nil},
		{"no recipients", &mail.Message{Header: mail.Header{"Subject": {"x"}}, Body: strings.NewReader("x")}},
		{"bad address", &mail.Message{Header: mail.Header{"To": {"kim at fabrikam"}}}},
		{"markdown", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}, "Content-Type": {"text/markdown"}}}},
		{"latin-1", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}, "Content-Type": {"text/plain; charset=iso-8859-1"}}}},
		{"not UTF-8", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}}, Body: strings.NewReader("\xff")}},
		{"long subject", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}, "Subject": {strings.Repeat("s", 256)}}}},
		{"subject with a line break", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}, "Subject": {"a\r\nBcc: x@y.z"}}}},
		{"huge body", &mail.Message{Header: mail.Header{"To": {"kim@fabrikam.com"}}, Body: strings.NewReader(strings.Repeat("x", maxMailBody+1))}},
		{"too many", &mail.Message{Header: mail.Header{"To": {strings.TrimSuffix(strings.Repeat("a@contoso.com,", 501), ",")}}}},
	}
	before := len(srv.Requests())
	for _, tc := range bad {
		err := c.SendMail(ctx, senderID, tc.msg)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", tc.name, err)
		}
	}
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("%d requests for invalid messages", n)
	}
	mustKind(t, c.SendMail(ctx, "authflow-notify@contoso.com", plain), ErrInvalidInput)
	// A sender without a mailbox; an access policy; an outage.
	err := c.SendMail(ctx, adminID, plain)
	mustKind(t, err, ErrNotFound)
	if err := srv.SetMailFaults(graphclienttest.MailFaults{FailNext: 1, Status: 403}); err != nil {
		t.Fatal(err)
	}
	mustKind(t, c.SendMail(ctx, senderID, plain), ErrPermission)
	if err := srv.SetMailFaults(graphclienttest.MailFaults{FailNext: 1, Status: 503, RetryAfterSeconds: 7}); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail(ctx, senderID, plain)
	mustKind(t, err, ErrTransient)
	if ra, ok := RetryAfter(err); !ok || ra != 7*time.Second {
		t.Errorf("RetryAfter = %v, %v", ra, ok)
	}
	if n := len(srv.Mail()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

package graphclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// Mail: the addresses a notification goes to and sendMail. The methods
// take and return net/mail types, so that a package that sends
// notifications can name them in an interface without importing this one.

// Bounds of SendMail.
const (
	maxMailRecipients = 500 // Exchange Online's per-message limit
	maxMailBody       = 1 << 19
	maxMailSubject    = 255
)

// MailAddresses returns the addresses of the user's mailboxes (GET
// /users/{id}?$select=displayName,mail,otherMails): mail first, then
// otherMails, each once (case-insensitive), named with the user's display
// name. A user without any has none (nil, no error); an unknown user is
// ErrUserNotFound. Addresses Graph returns that do not parse are left out.
func (c *Client) MailAddresses(ctx context.Context, userID string) ([]*mail.Address, error) {
	const op = "read user mail"
	if err := checkIDs(op, userID); err != nil {
		return nil, err
	}
	var u models.Userable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		u, err = c.root().ByUserId(userID).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id", "displayName", "mail", "otherMails"}},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, invalidResponse(op, resp, "empty body", ErrTransient)
	}
	if id := str(u.GetId()); id != "" && !strings.EqualFold(id, userID) {
		return nil, invalidResponse(op, resp, "the service returned another user", ErrPermanent)
	}
	name := sanitize(str(u.GetDisplayName()), 128)
	var out []*mail.Address
	for _, a := range append([]string{str(u.GetMail())}, u.GetOtherMails()...) {
		if addr, ok := mailAddress(name, a); ok && !hasAddress(out, addr.Address) {
			out = append(out, addr)
		}
	}
	return out, nil
}

// ManagerAddress returns the mail address of the user's manager (GET
// /users/{id}/manager), named with the manager's display name; nil (no
// error) when the user has no manager, the manager has no mail, or the
// manager is not a user (an organizational contact). Graph answers "no
// manager" and "no such user" alike (404), so both give nil.
func (c *Client) ManagerAddress(ctx context.Context, userID string) (*mail.Address, error) {
	const op = "read manager"
	if err := checkIDs(op, userID); err != nil {
		return nil, err
	}
	var o models.DirectoryObjectable
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		o, err = c.root().ByUserId(userID).Manager().Get(ctx, &users.ItemManagerRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemManagerRequestBuilderGetQueryParameters{Select: []string{"id", "displayName", "mail"}},
		})
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	m, ok := o.(models.Userable)
	if !ok {
		return nil, nil
	}
	addr, ok := mailAddress(sanitize(str(m.GetDisplayName()), 128), str(m.GetMail()))
	if !ok {
		return nil, nil
	}
	return addr, nil
}

// SendMail sends msg from the mailbox of user senderID (POST
// /users/{id}/sendMail; application permission Mail.Send, which an
// Exchange application access policy should limit to that mailbox). It
// reads the To, Cc and Bcc headers (at least one recipient, at most 500),
// Subject (RFC 2047 words are decoded) and Content-Type (text/plain, the
// default, or text/html; charset utf-8 when given), and the body (UTF-8,
// at most 512 KiB). The message is not saved to the sender's Sent Items:
// the notifications stream is the record. Graph answers 202 once it has
// taken the message; delivery happens later.
func (c *Client) SendMail(ctx context.Context, senderID string, msg *mail.Message) error {
	const op = "send mail"
	if err := checkIDs(op, senderID); err != nil {
		return err
	}
	m, err := graphMessage(msg)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	body := users.NewItemSendMailPostRequestBody()
	body.SetMessage(m)
	save := false
	body.SetSaveToSentItems(&save)
	_, err = c.call(ctx, op, func(ctx context.Context) error {
		return c.root().ByUserId(senderID).SendMail().Post(ctx, body, nil)
	})
	return err
}

// graphMessage converts a net/mail message into Graph's message.
func graphMessage(msg *mail.Message) (models.Messageable, error) {
	if msg == nil {
		return nil, invalidf("no message")
	}
	m := models.NewMessage()
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !utf8.ValidString(subject) || strings.ContainsAny(subject, "\r\n") {
		return nil, invalidf("the subject is not valid RFC 2047 text on one line")
	}
	if utf8.RuneCountInString(subject) > maxMailSubject {
		return nil, invalidf("the subject is longer than %d characters", maxMailSubject)
	}
	m.SetSubject(&subject)
	bodyType := models.TEXT_BODYTYPE
	if ct := msg.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, invalidf("Content-Type: %v", err)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return nil, invalidf("Content-Type: charset %s; only utf-8 is sent", quoteBounded(cs))
		}
		switch mt {
		case "text/plain":
		case "text/html":
			bodyType = models.HTML_BODYTYPE
		default:
			return nil, invalidf("Content-Type %s: want text/plain or text/html", quoteBounded(mt))
		}
	}
	var content []byte
	if msg.Body != nil {
		if content, err = io.ReadAll(io.LimitReader(msg.Body, maxMailBody+1)); err != nil {
			return nil, invalidf("read the body: %v", err)
		}
	}
	if len(content) > maxMailBody {
		return nil, invalidf("the body is larger than %d bytes", maxMailBody)
	}
	if !utf8.Valid(content) {
		return nil, invalidf("the body is not UTF-8")
	}
	ib := models.NewItemBody()
	ib.SetContentType(&bodyType)
	s := string(content)
	ib.SetContent(&s)
	m.SetBody(ib)
	n := 0
	for _, h := range []struct {
		name string
		set  func([]models.Recipientable)
	}{{"To", m.SetToRecipients}, {"Cc", m.SetCcRecipients}, {"Bcc", m.SetBccRecipients}} {
		if msg.Header.Get(h.name) == "" {
			continue
		}
		list, err := msg.Header.AddressList(h.name)
		if err != nil {
			return nil, invalidf("%s: not an address list: %v", h.name, err)
		}
		rs := make([]models.Recipientable, 0, len(list))
		for _, a := range list {
			ea := models.NewEmailAddress()
			addr, name := a.Address, a.Name
			ea.SetAddress(&addr)
			if name != "" {
				ea.SetName(&name)
			}
			r := models.NewRecipient()
			r.SetEmailAddress(ea)
			rs = append(rs, r)
		}
		h.set(rs)
		n += len(rs)
	}
	switch {
	case n == 0:
		return nil, invalidf("the message has no recipients (To, Cc or Bcc)")
	case n > maxMailRecipients:
		return nil, invalidf("the message has %d recipients; the limit is %d", n, maxMailRecipients)
	}
	return m, nil
}

// mailAddress parses an address Graph returned; ok is false for "" and
// for anything that is not one plain address.
func mailAddress(name, addr string) (*mail.Address, bool) {
	addr = strings.TrimSpace(addr)
	if addr == "" || len(addr) > 320 {
		return nil, false
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr {
		return nil, false
	}
	return &mail.Address{Name: name, Address: a.Address}, true
}

func hasAddress(list []*mail.Address, addr string) bool {
	for _, a := range list {
		if strings.EqualFold(a.Address, addr) {
			return true
		}
	}
	return false
}

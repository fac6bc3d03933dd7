package graphclienttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mail: the user properties mail and otherMails, the manager navigation,
// and POST /users/{id}/sendMail, whose messages the admin API lists
// (GET /_emulator/mail) instead of delivering them.

// Route templates and operations of this file.
const (
	routeManager  = "/v1.0/users/{id}/manager"
	routeSendMail = "/v1.0/users/{id}/sendMail"
)

// Operations of this file, numbered apart from route.go's.
const (
	opManager op = iota + 100
	opSendMail
)

// Bounds of the mail model.
const (
	maxOtherMails      = 50
	maxMailMessages    = 10000 // the admin list keeps the newest
	maxMailRecipients  = 500   // Exchange Online's per-message recipient limit
	msgNoRecipients    = "At least one recipient isn't valid., A message can't be sent because it contains no recipients."
	msgNoMailbox       = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."
	msgManagerNotFound = "Resource 'manager' does not exist or one of its queried reference-property objects are not present."
)

// mailRoute recognises /users/{id}/manager and /users/{id}/sendMail.
func mailRoute(rt route, seg string) (route, bool) {
	switch {
	case strings.EqualFold(seg, "manager"):
		rt.op, rt.tmpl, rt.allow = opManager, routeManager, "GET"
	case strings.EqualFold(seg, "sendMail"):
		rt.op, rt.tmpl, rt.allow, rt.userCode = opSendMail, routeSendMail, "POST", false
	default:
		return rt, false
	}
	return rt, true
}

// mailFields are a user's mail properties.
type mailFields struct {
	mail       string   // the primary SMTP address; "" = no mailbox
	otherMails []string // additional addresses (often personal ones)
	manager    string   // the manager's object id, lower case; "" = none
}

// setMailFields validates the admin shape's mail properties into u.
func setMailFields(u *user, in User) error {
	m := mailFields{mail: in.Mail}
	if m.mail != "" && !validEmail(m.mail) {
		return fmt.Errorf("mail %q is not a valid email address", in.Mail)
	}
	others, err := checkOtherMails(in.OtherMails)
	if err != nil {
		return err
	}
	m.otherMails = others
	if in.ManagerID != "" {
		if !isGUID(in.ManagerID) {
			return fmt.Errorf("managerId %q is not an object id (GUID)", in.ManagerID)
		}
		m.manager = strings.ToLower(in.ManagerID)
		if m.manager == u.id {
			return errors.New("managerId: a user cannot be their own manager")
		}
	}
	u.mail = m
	return nil
}

func checkOtherMails(in []string) ([]string, error) {
	if len(in) > maxOtherMails {
		return nil, fmt.Errorf("otherMails: at most %d addresses", maxOtherMails)
	}
	var out []string
	for i, a := range in {
		if !validEmail(a) {
			return nil, fmt.Errorf("otherMails[%d] %q is not a valid email address", i, a)
		}
		if slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, a) }) {
			return nil, fmt.Errorf("otherMails[%d] %q is listed twice", i, a)
		}
		out = append(out, a)
	}
	return out, nil
}

// mailFieldsOut copies u's mail properties into the admin shape.
func mailFieldsOut(out *User, u *user) {
	out.Mail, out.OtherMails, out.ManagerID = u.mail.mail, slices.Clone(u.mail.otherMails), u.mail.manager
}

// MailPatch changes some of a user's mail properties
// (PATCH /_emulator/users/{objectId}); nil fields are left alone, and an
// empty string or list clears the property.
type MailPatch struct {
	Mail       *string   `json:"mail"`
	OtherMails *[]string `json:"otherMails"`
	ManagerID  *string   `json:"managerId"`
}

// PatchUserMail applies p to user id, with the validation of PutUser.
func (e *Emulator) PatchUserMail(id string, p MailPatch) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.users[strings.ToLower(id)]
	if !ok {
		return fmt.Errorf("patch user: user %s does not exist", id)
	}
	in := User{Mail: u.mail.mail, OtherMails: u.mail.otherMails, ManagerID: u.mail.manager}
	if p.Mail != nil {
		in.Mail = *p.Mail
	}
	if p.OtherMails != nil {
		in.OtherMails = *p.OtherMails
	}
	if p.ManagerID != nil {
		in.ManagerID = *p.ManagerID
	}
	if err := setMailFields(u, in); err != nil {
		return fmt.Errorf("patch user: %w", err)
	}
	return nil
}

// appendMailProp writes the mail properties of a user's JSON; it reports
// whether p is one of them.
func appendMailProp(o *obj, u *user, p string) bool {
	switch p {
	case "mail":
		o.strOrNull(p, u.mail.mail)
	case "otherMails":
		o.strings(p, u.mail.otherMails)
	default:
		return false
	}
	return true
}

// manager serves GET /users/{id}/manager: the manager as a user, with
// $select honoured; 404 when the user has none (or the manager is gone).
func (e *Emulator) manager(c *call, u *user) reply {
	m := e.users[u.mail.manager]
	if m == nil {
		return errReply(http.StatusNotFound, "Request_ResourceNotFound", msgManagerNotFound)
	}
	sel, rep := parseSelect(c)
	if rep != nil {
		return *rep
	}
	o := startObj(nil)
	o.str("@odata.context", c.base+"/v1.0/$metadata#directoryObjects/$entity")
	o.str("@odata.type", "#microsoft.graph.user")
	b := appendUser(nil, m, sel, "")
	// appendUser wrote a whole object; splice its members in after ours.
	if len(b) > 2 {
		o.b = append(o.b, ',')
		o.b = append(o.b, b[1:len(b)-1]...)
	}
	return jsonReply(http.StatusOK, o.end())
}

// MailFaults makes sendMail fail while everything else works (a mail
// outage). The zero value injects nothing.
type MailFaults struct {
	// Outage answers every sendMail with Status until turned off.
	Outage bool `json:"outage"`
	// FailNext answers the next FailNext sendMail requests with Status.
	FailNext int `json:"failNext"`
	// Status is the answer: 429, 500, 503 or 504 (transient) or 403 (an
	// Exchange application access policy refusing the sender). Defaults
	// to 503.
	Status int `json:"status"`
	// RetryAfterSeconds is sent with a 429 or 503 (0: no Retry-After).
	RetryAfterSeconds int `json:"retryAfterSeconds"`
}

func (f MailFaults) normalize() (MailFaults, error) {
	if f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	switch {
	case f.FailNext < 0 || f.FailNext > 1_000_000:
		return f, errors.New("failNext must be within 0..1000000")
	case !slices.Contains([]int{403, 429, 500, 503, 504}, f.Status):
		return f, fmt.Errorf("status %d: want 403, 429, 500, 503 or 504", f.Status)
	case f.RetryAfterSeconds < 0 || f.RetryAfterSeconds > 86400:
		return f, errors.New("retryAfterSeconds must be within 0..86400")
	}
	return f, nil
}

// MailMessage is a message sendMail accepted, as GET /_emulator/mail lists
// it.
type MailMessage struct {
	Seq             int64       `json:"seq"`
	Time            time.Time   `json:"time"`
	SenderID        string      `json:"senderId"` // the object id of the mailbox it was sent from
	From            string      `json:"from"`     // that mailbox's mail address
	Subject         string      `json:"subject"`
	ContentType     string      `json:"contentType"` // text or html
	Content         string      `json:"content"`
	To              []Recipient `json:"toRecipients"`
	CC              []Recipient `json:"ccRecipients"`
	BCC             []Recipient `json:"bccRecipients"`
	SaveToSentItems bool        `json:"saveToSentItems"`
	ClientRequestID string      `json:"clientRequestId,omitempty"`
}

// Recipient is one recipient of a message.
type Recipient struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Recipients returns every address of the message (to, cc, bcc), in order.
func (m MailMessage) Recipients() []string {
	var out []string
	for _, l := range [][]Recipient{m.To, m.CC, m.BCC} {
		for _, r := range l {
			out = append(out, r.Address)
		}
	}
	return out
}

// mailStore is the sent messages and the mail faults (under e.mu).
type mailStore struct {
	seq      int64
	messages []MailMessage
	faults   MailFaults
}

// Mail returns the messages sendMail accepted, oldest first (at most the
// newest 10,000).
func (e *Emulator) Mail() []MailMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]MailMessage, len(e.mail.messages))
	copy(out, e.mail.messages)
	return out
}

// DeleteMail forgets the messages sent (not the mail faults).
func (e *Emulator) DeleteMail() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mail.messages = nil
}

// MailFaults returns the mail fault settings.
func (e *Emulator) MailFaults() MailFaults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mail.faults
}

// SetMailFaults replaces the mail fault settings (the zero value turns
// them off).
func (e *Emulator) SetMailFaults(f MailFaults) error {
	f, err := f.normalize()
	if err != nil {
		return fmt.Errorf("set mail faults: %w", err)
	}
	e.mu.Lock()
	e.mail.faults = f
	e.mu.Unlock()
	e.log.Info("emulator mail faults changed", "faults", f)
	return nil
}

// sendMail serves POST /users/{id}/sendMail: it validates the message as
// Graph does, records it and answers 202 with no body.
func (e *Emulator) sendMail(c *call, u *user) reply {
	if f := &e.mail.faults; f.Outage || f.FailNext > 0 {
		if !f.Outage {
			f.FailNext--
		}
		return mailFault(*f)
	}
	if u.mail.mail == "" {
		return errReply(http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNoMailbox)
	}
	if mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errReply(http.StatusBadRequest, "ErrorInvalidRequest",
			"The emulator takes sendMail as JSON (Content-Type: application/json); MIME (text/plain) is not emulated.")
	}
	msg, rep := parseSendMail(c.body)
	if rep != nil {
		return *rep
	}
	e.mail.seq++
	msg.Seq, msg.Time, msg.SenderID, msg.From, msg.ClientRequestID = e.mail.seq, c.now, u.id, u.mail.mail, c.clientID
	e.mail.messages = append(e.mail.messages, msg)
	if n := len(e.mail.messages); n > maxMailMessages {
		e.mail.messages = slices.Delete(e.mail.messages, 0, n-maxMailMessages)
	}
	e.log.Debug("emulator mail sent", "sender", u.id, "recipients", len(msg.Recipients()))
	return emptyReply(http.StatusAccepted)
}

func mailFault(f MailFaults) reply {
	var rep reply
	switch f.Status {
	case http.StatusForbidden:
		// What an Exchange application access policy answers for a
		// mailbox outside the app's scope.
		rep = errReply(f.Status, "ErrorAccessDenied", "Access to OData is disabled: the application is not allowed to send as this mailbox (application access policy).")
	case http.StatusTooManyRequests:
		rep = errReply(f.Status, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
	case http.StatusInternalServerError:
		rep = errReply(f.Status, "ErrorInternalServerError", "An internal server error occurred. The operation failed.")
	case http.StatusGatewayTimeout:
		rep = errReply(f.Status, "ErrorTimeoutExpired", "The request timed out.")
	default:
		rep = errReply(f.Status, "ServiceUnavailable", "The mail service is unavailable.")
	}
	if f.RetryAfterSeconds > 0 && (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) {
		rep.retryAfter, rep.hasRetryAfter = f.RetryAfterSeconds, true
	}
	return rep
}

// parseSendMail validates a sendMail body: the JSON shape of
// sendMailRequestBody and message (unknown properties are a 400, as for
// any OData action on a closed type), a body with contentType text or
// html, recipients with valid addresses, at least one and at most 500.
func parseSendMail(body []byte) (MailMessage, *reply) {
	bad := func(code, format string, a ...any) (MailMessage, *reply) {
		rep := errReplyf(http.StatusBadRequest, code, format, a...)
		return MailMessage{}, &rep
	}
	if !json.Valid(body) {
		return bad("RequestBodyRead", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	// Graph's metadata names the action's parameters Message and
	// SaveToSentItems, and msgraph-sdk-go sends them so; the documentation
	// writes them in camel case. Graph takes either: parameter names match
	// without regard to case.
	top, err := jsonMembersFold(body, "sendMail", []string{"message", "saveToSentItems"})
	if err != nil {
		return bad("RequestBodyRead", "%s", err)
	}
	raw, ok := top["message"]
	if !ok || string(raw) == "null" {
		return bad("ErrorInvalidRequest", "The message is required (sendMail: {\"message\": {...}}).")
	}
	msg := MailMessage{SaveToSentItems: true, ContentType: "text", To: []Recipient{}, CC: []Recipient{}, BCC: []Recipient{}}
	if v, ok := top["saveToSentItems"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &msg.SaveToSentItems); err != nil {
			return bad("RequestBodyRead", "saveToSentItems must be a boolean.")
		}
	}
	m, err := jsonMembers(raw, "message", []string{"subject", "body", "toRecipients", "ccRecipients", "bccRecipients",
		"replyTo", "from", "sender", "importance", "categories", "internetMessageHeaders",
		"isDeliveryReceiptRequested", "isReadReceiptRequested"})
	if err != nil {
		return bad("RequestBodyRead", "%s", err)
	}
	if v, ok := m["subject"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &msg.Subject); err != nil {
			return bad("RequestBodyRead", "message.subject must be a string.")
		}
	}
	if v, ok := m["body"]; ok && string(v) != "null" {
		b, err := jsonMembers(v, "message.body", []string{"contentType", "content"})
		if err != nil {
			return bad("RequestBodyRead", "%s", err)
		}
		if ct, ok := b["contentType"]; ok && string(ct) != "null" {
			var s string
			if err := json.Unmarshal(ct, &s); err != nil {
				return bad("RequestBodyRead", "message.body.contentType must be a string: text or html.")
			}
			switch strings.ToLower(s) {
			case "text", "html":
				msg.ContentType = strings.ToLower(s)
			default:
				return bad("RequestBodyRead", "Cannot convert the literal '%s' to the expected type 'microsoft.graph.bodyType' (text or html).", s)
			}
		}
		if ct, ok := b["content"]; ok && string(ct) != "null" {
			if err := json.Unmarshal(ct, &msg.Content); err != nil {
				return bad("RequestBodyRead", "message.body.content must be a string.")
			}
		}
	}
	lists := []struct {
		name string
		dst  *[]Recipient
	}{{"toRecipients", &msg.To}, {"ccRecipients", &msg.CC}, {"bccRecipients", &msg.BCC}, {"replyTo", nil}}
	n := 0
	for _, l := range lists {
		v, ok := m[l.name]
		if !ok || string(v) == "null" {
			continue
		}
		rs, rep := parseRecipients(v, "message."+l.name)
		if rep != nil {
			return MailMessage{}, rep
		}
		if l.dst != nil {
			*l.dst = rs
			n += len(rs)
		}
	}
	for _, f := range []string{"from", "sender"} {
		if v, ok := m[f]; ok && string(v) != "null" {
			if _, rep := parseRecipients([]byte("["+string(v)+"]"), "message."+f); rep != nil {
				return MailMessage{}, rep
			}
		}
	}
	switch {
	case n == 0:
		return bad("ErrorInvalidRecipients", msgNoRecipients)
	case n > maxMailRecipients:
		return bad("ErrorTooManyRecipients", "The message has %d recipients; the limit is %d.", n, maxMailRecipients)
	}
	return msg, nil
}

func parseRecipients(raw []byte, field string) ([]Recipient, *reply) {
	bad := func(code, format string, a ...any) ([]Recipient, *reply) {
		rep := errReplyf(http.StatusBadRequest, code, format, a...)
		return nil, &rep
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return bad("RequestBodyRead", "%s must be an array of recipients.", field)
	}
	out := make([]Recipient, 0, len(items))
	for i, it := range items {
		f := field + "[" + strconv.Itoa(i) + "]"
		r, err := jsonMembers(it, f, []string{"emailAddress"})
		if err != nil {
			return bad("RequestBodyRead", "%s", err)
		}
		ea, ok := r["emailAddress"]
		if !ok || string(ea) == "null" {
			return bad("ErrorInvalidRecipients", "At least one recipient isn't valid., %s has no emailAddress.", f)
		}
		a, err := jsonMembers(ea, f+".emailAddress", []string{"address", "name"})
		if err != nil {
			return bad("RequestBodyRead", "%s", err)
		}
		var rc Recipient
		if v, ok := a["address"]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, &rc.Address); err != nil {
				return bad("RequestBodyRead", "%s.emailAddress.address must be a string.", f)
			}
		}
		if v, ok := a["name"]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, &rc.Name); err != nil {
				return bad("RequestBodyRead", "%s.emailAddress.name must be a string.", f)
			}
		}
		if !validEmail(rc.Address) {
			return bad("ErrorInvalidRecipients", "At least one recipient isn't valid., Recipient '%s' isn't resolved. All recipients must be resolved before a message can be submitted.", rc.Address)
		}
		out = append(out, rc)
	}
	return out, nil
}

// jsonMembersFold is jsonMembers with names matched without regard to
// case; the members are keyed by their known spelling.
func jsonMembersFold(raw []byte, what string, known []string) (map[string]json.RawMessage, error) {
	return members(raw, what, known, true)
}

// jsonMembers decodes a JSON object into its members, refusing duplicate
// and unknown properties (OData annotations such as @odata.type are
// allowed).
func jsonMembers(raw []byte, what string, known []string) (map[string]json.RawMessage, error) {
	return members(raw, what, known, false)
}

func members(raw []byte, what string, known []string, fold bool) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s must be a JSON object.", what)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: invalid JSON.", what)
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s.%s: invalid JSON.", what, k)
		}
		if strings.HasPrefix(k, "@") {
			continue
		}
		i := slices.IndexFunc(known, func(n string) bool { return n == k || fold && strings.EqualFold(n, k) })
		if i < 0 {
			return nil, fmt.Errorf("The property '%s' does not exist on %s.", k, what)
		}
		k = known[i]
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: the property '%s' appears twice.", what, k)
		}
		out[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON.", what)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the object.", what)
	}
	return out, nil
}

// adminMail serves /_emulator/mail (GET lists, DELETE clears) and
// /_emulator/mail/faults (GET, PUT).
func (e *Emulator) adminMail(w http.ResponseWriter, r *http.Request, sub string, hasSub bool) {
	switch {
	case !hasSub:
		switch r.Method {
		case http.MethodGet:
			var since int64
			if s := r.URL.Query().Get("since"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n < 0 {
					adminError(w, r, http.StatusBadRequest, "badRequest", "since must be a non-negative sequence number")
					return
				}
				since = n
			}
			out := []MailMessage{}
			for _, m := range e.Mail() {
				if m.Seq > since {
					out = append(out, m)
				}
			}
			writeJSON(w, http.StatusOK, out)
		case http.MethodDelete:
			e.DeleteMail()
			w.WriteHeader(http.StatusNoContent)
		default:
			notAllowed(w, r, "GET, DELETE")
		}
	case sub == "faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, e.MailFaults())
		case http.MethodPut:
			var f MailFaults
			if !readAdminBody(w, r, &f) {
				return
			}
			if err := e.SetMailFaults(f); err != nil {
				adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
				return
			}
			writeJSON(w, http.StatusOK, e.MailFaults())
		default:
			notAllowed(w, r, "GET, PUT")
		}
	default:
		adminError(w, r, http.StatusNotFound, "itemNotFound", "unknown admin resource /_emulator/mail/"+sub+"; see GET /_emulator/")
	}
}

// adminPatchUser serves PATCH /_emulator/users/{objectId}: the mail
// properties only (MailPatch).
func (e *Emulator) adminPatchUser(w http.ResponseWriter, r *http.Request, id string) {
	body, rep := readBody(r, "badRequest")
	if rep != nil {
		adminError(w, r, rep.status, rep.code, rep.msg)
		return
	}
	if _, err := jsonMembers(body, "the patch", []string{"mail", "otherMails", "managerId"}); err != nil {
		adminError(w, r, http.StatusBadRequest, "badRequest", err.Error()+" PATCH changes mail, otherMails and managerId; PUT the user to change the rest.")
		return
	}
	var p MailPatch
	if err := decodeJSON(body, &p); err != nil {
		adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
		return
	}
	if _, ok := e.User(id); !ok {
		adminError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "user "+id+" does not exist")
		return
	}
	if err := e.PatchUserMail(id, p); err != nil {
		adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
		return
	}
	u, _ := e.User(id)
	writeJSON(w, http.StatusOK, u)
}

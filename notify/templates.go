package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/authflow/authflow/events"
)

// builtin holds the built-in templates: default.* and rate_limited.*.
//
//go:embed templates/*.tmpl
var builtin embed.FS

// Template names are <key>.<part>.tmpl: key is an event type without its
// "authflow." prefix (mfa.reset.v1), rate_limited (a refusal) or default
// (anything else); part is subject (text/template, one line), text
// (text/template) or html (html/template).
const (
	keyDefault     = "default"
	keyRateLimited = "rate_limited"
)

var parts = []string{"subject", "text", "html"}

// set is the three templates of one key.
type set struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// Templates renders notification emails. The zero value is not usable:
// use DefaultTemplates or LoadTemplates. It is read-only and safe for
// concurrent use.
type Templates struct {
	sets map[string]*set
}

// Data is what a template sees. Every field is already masked or
// free of secrets; html templates escape it.
type Data struct {
	Organization string   // Config.Organization
	Name         string   // the user's display name; "" when unknown
	Account      string   // the user's UPN, else the object id
	Headline     string   // e.g. "Your multifactor sign-in methods were reset"
	Type         string   // the event type, e.g. authflow.mfa.reset.v1
	Request      string   // what was asked, in words, e.g. "a reset of your multifactor sign-in methods"
	Changes      []string // one line per change, e.g. "Added: phone (mobile +1 ******0100)"
	Incomplete   bool     // the event failed after changing something
	When         string   // when it happened, e.g. "Thu, 26 Nov 2026 09:00:03 UTC"
	Time         time.Time
	Source       string // who asked: the event's source
	Ticket       string // the helpdesk ticket, if any
	VerifiedBy   string // the agent who verified the caller, if any
	Method       string // how the caller was verified, if said
	Manager      string // the manager who gets a copy; "" when none
	Dispute      string // Config.Dispute: what to do if this was not you
	Reference    string // the notification id, for the service desk
}

// DefaultTemplates returns the built-in templates.
func DefaultTemplates() *Templates {
	t, err := loadTemplates(builtin, "templates", nil)
	if err != nil {
		panic("notify: built-in templates: " + err.Error()) // a defect caught by every test
	}
	return t
}

// LoadTemplates returns the built-in templates with those in dir in their
// place. dir holds files named <key>.<part>.tmpl (see the package
// documentation); a key may give any of its parts, the others come from
// its built-in or the default. Unknown file names, templates that do not
// parse, fail to render sample data (an unknown field is an error) or
// leave out the dispute line ({{.Dispute}}) in the text or html part are
// errors naming the file.
func LoadTemplates(dir string) (*Templates, error) {
	base, err := loadTemplates(builtin, "templates", nil)
	if err != nil {
		return nil, err
	}
	t, err := loadTemplates(os.DirFS(dir), ".", base)
	if err != nil {
		return nil, fmt.Errorf("load templates %s: %w", dir, err)
	}
	return t, nil
}

func loadTemplates(fsys fs.FS, dir string, base *Templates) (*Templates, error) {
	t := &Templates{sets: map[string]*set{}}
	if base != nil {
		for k, s := range base.sets {
			c := *s
			t.sets[k] = &c
		}
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		key, part, ok := splitName(name)
		if !ok {
			return nil, fmt.Errorf("%s: not a template name: want <key>.<subject|text|html>.tmpl, key an event type without authflow. (e.g. mfa.reset.v1), rate_limited or default", name)
		}
		if key != keyDefault && key != keyRateLimited && !events.KnownType("authflow."+key) {
			return nil, fmt.Errorf("%s: unknown key %q: want an event type without authflow. (e.g. mfa.reset.v1), rate_limited or default", name, key)
		}
		b, err := fs.ReadFile(fsys, filepath.ToSlash(filepath.Join(dir, name)))
		if err != nil {
			return nil, err
		}
		s := t.sets[key]
		if s == nil {
			s = &set{}
			t.sets[key] = s
		}
		switch part {
		case "html":
			s.html, err = htmltemplate.New(name).Option("missingkey=error").Parse(string(b))
		case "subject":
			s.subject, err = texttemplate.New(name).Option("missingkey=error").Parse(string(b))
		default:
			s.text, err = texttemplate.New(name).Option("missingkey=error").Parse(string(b))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if d := t.sets[keyDefault]; d == nil || d.subject == nil || d.text == nil || d.html == nil {
		return nil, errors.New("the default templates (default.subject.tmpl, default.text.tmpl, default.html.tmpl) are required")
	}
	// Render every key with sample data now, so that a broken template
	// stops the start, not a notification.
	sample := sampleData()
	for key := range t.sets {
		for _, html := range []bool{false, true} {
			subject, body, err := t.render(key, sample, html)
			if err != nil {
				return nil, err
			}
			if subject == "" {
				return nil, fmt.Errorf("%s.subject.tmpl: renders an empty subject", key)
			}
			if !strings.Contains(body, sample.Dispute) {
				part := "text"
				if html {
					part = "html"
				}
				return nil, fmt.Errorf("%s.%s.tmpl (or the one it falls back to): leaves out the dispute line {{.Dispute}}", key, part)
			}
		}
	}
	return t, nil
}

func splitName(name string) (key, part string, ok bool) {
	rest, ok := strings.CutSuffix(name, ".tmpl")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || !slices.Contains(parts, rest[i+1:]) {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// pick returns the template of part for key, falling back to the default.
func (t *Templates) pick(key string) (subject, text *texttemplate.Template, html *htmltemplate.Template) {
	d := t.sets[keyDefault]
	subject, text, html = d.subject, d.text, d.html
	if s := t.sets[key]; s != nil {
		if s.subject != nil {
			subject = s.subject
		}
		if s.text != nil {
			text = s.text
		}
		if s.html != nil {
			html = s.html
		}
	}
	return subject, text, html
}

// render returns the subject (one line) and the body (html or text) of
// key's templates for d.
func (t *Templates) render(key string, d *Data, html bool) (subject, body string, err error) {
	st, tt, ht := t.pick(key)
	var b bytes.Buffer
	if err := st.Execute(&b, d); err != nil {
		return "", "", fmt.Errorf("template %s: %w", st.Name(), err)
	}
	subject = strings.TrimSpace(b.String())
	if strings.ContainsAny(subject, "\r\n") {
		return "", "", fmt.Errorf("template %s: the subject must be one line", st.Name())
	}
	b.Reset()
	if html {
		err = ht.Execute(&b, d)
	} else {
		err = tt.Execute(&b, d)
	}
	if err != nil {
		return "", "", fmt.Errorf("render body of %s: %w", key, err)
	}
	return subject, b.String(), nil
}

// templateKey is the key a notification's templates are looked up by.
func templateKey(n *events.Notification) string {
	if n.Data.Reason == events.ReasonRateLimited {
		return keyRateLimited
	}
	return strings.TrimPrefix(n.Data.Event.Type, "authflow.")
}

func sampleData() *Data {
	at := time.Date(2026, 11, 26, 9, 0, 3, 0, time.UTC)
	return &Data{
		Organization: "Contoso IT", Name: "Adele Vance", Account: "adele.vance@contoso.com",
		Headline: headline(events.TypeMFAReset), Type: events.TypeMFAReset, Request: request(events.TypeMFAReset),
		Changes: []string{"Removed: all sign-in methods except the password (3 methods)"},
		When:    at.Format(time.RFC1123), Time: at, Source: "helpdesk/servicenow", Ticket: "INC0012345",
		VerifiedBy: "agent.smith@contoso.com", Method: "callback", Manager: "Lee Gu",
		Dispute:   "If you did not ask for this, call the service desk at once: sample dispute line.",
		Reference: "sample:notify",
	}
}

// headline is the one-line summary of a change made by an event of typ.
func headline(typ string) string {
	switch typ {
	case events.TypeEmployeeJoined:
		return "Sign-in methods were set up for your account"
	case events.TypeEmployeeMoved:
		return "Sign-in methods of your account were changed"
	case events.TypeEmployeeLeft:
		return "Access to your account was removed"
	case events.TypeDeviceLost:
		return "The sign-in methods of a lost device were removed from your account"
	case events.TypeMFAReset:
		return "Your multifactor sign-in methods were reset"
	case events.TypePhoneSet:
		return "A phone number of your account was changed"
	case events.TypePhoneRemove:
		return "A phone number was removed from your account"
	case events.TypeSMSSignInEnable:
		return "SMS sign-in was turned on for your account"
	case events.TypeSMSSignInDisable:
		return "SMS sign-in was turned off for your account"
	case events.TypeEmailSet:
		return "The password-reset email address of your account was changed"
	case events.TypeEmailRemove:
		return "The password-reset email address was removed from your account"
	case events.TypeTAPIssue:
		return "A Temporary Access Pass was issued for your account"
	case events.TypeTAPRemove:
		return "The Temporary Access Passes of your account were removed"
	case events.TypeQRCodeIssue:
		return "A QR code and PIN were issued for your account"
	case events.TypeQRCodeRemove:
		return "The QR code and PIN of your account were removed"
	case events.TypeMethodRemove:
		return "A sign-in method was removed from your account"
	case events.TypePasswordReset:
		return "The password of your account was reset"
	}
	return "The sign-in methods of your account were changed"
}

// request says in words what an event of typ asks for (rate-limit notices).
func request(typ string) string {
	switch typ {
	case events.TypeMFAReset:
		return "a reset of your multifactor sign-in methods"
	case events.TypeTAPIssue:
		return "a Temporary Access Pass"
	case events.TypePasswordReset:
		return "a password reset"
	case events.TypeDeviceLost:
		return "removing the methods of a lost device"
	case events.TypeQRCodeIssue:
		return "a QR code and PIN"
	}
	return "a change of " + strings.ToLower(headline(typ)[:1]) + headline(typ)[1:]
}

// changeLine describes one change in words, with the result's masked
// detail: "Added: phone (mobile +1 ******0100)".
func changeLine(c events.Change) string {
	verb := map[events.Outcome]string{events.OutcomeCreated: "Added", events.OutcomeUpdated: "Changed", events.OutcomeDeleted: "Removed"}[c.Outcome]
	what := "a sign-in method"
	switch c.Op {
	case events.OpEnsurePhone, events.OpRemovePhone:
		what = "phone"
	case events.OpSetSMSSignIn:
		what = "SMS sign-in"
	case events.OpEnsureEmail, events.OpRemoveEmail:
		what = "password-reset email address"
	case events.OpIssueTAP:
		verb, what = "Issued", "a Temporary Access Pass"
	case events.OpRemoveTAPs:
		what = "Temporary Access Passes"
	case events.OpIssueQRCodePin:
		verb, what = "Issued", "a QR code and PIN"
	case events.OpRemoveQRCodePin:
		what = "QR code and PIN"
	case events.OpRemoveDeviceMethods:
		what = "the sign-in methods of a device"
	case events.OpRemoveAllMethods:
		what = "all sign-in methods except the password"
	case events.OpResetPassword:
		verb, what = "Reset", "your password"
	case events.OpRevokeSessions:
		verb, what = "Signed out", "every session of your account"
	case events.OpSetAccountEnabled:
		what = "your account"
	case events.OpRemoveMethod:
		if c.MethodKind != "" {
			what = "sign-in method " + c.MethodKind
		}
	}
	if c.Detail != "" {
		return verb + ": " + what + " (" + c.Detail + ")"
	}
	return verb + ": " + what
}

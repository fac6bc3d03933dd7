package graphclienttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const sender = "44444444-4444-4444-8444-444444444444"

// mailEnv seeds kim (userA) with mail and otherMails and her manager
// (userB), and a sender mailbox.
func mailEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.putUser(userB, "lee@contoso.com", `,"displayName":"Lee Gu","mail":"Lee.Gu@contoso.com"`)
	e.putUser(userA, "kim@contoso.com", `,"displayName":"Kim Akers","mail":"kim@contoso.com","otherMails":["kim.home@fabrikam.com"],"managerId":"`+userB+`"`)
	e.putUser(sender, "authflow-notify@contoso.com", `,"mail":"authflow-notify@contoso.com"`)
	return e
}

func TestUserMailProperties(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	r := e.graph("GET", "/users/{u}?$select=id,mail,otherMails", "")
	r.want(t, http.StatusOK, "")
	if r.str("mail") != "kim@contoso.com" || r.str("id") != userA {
		t.Errorf("user: %s", r.raw)
	}
	if om, _ := r.body["otherMails"].([]any); len(om) != 1 || om[0] != "kim.home@fabrikam.com" {
		t.Errorf("otherMails: %s", r.raw)
	}
	if r.str("@odata.context") == "" || !strings.HasSuffix(r.str("@odata.context"), "#users(id,mail,otherMails)/$entity") {
		t.Errorf("context %q", r.str("@odata.context"))
	}
	// mail is in the default set, otherMails is not.
	r = e.graph("GET", "/users/{u}", "")
	if _, ok := r.body["otherMails"]; ok || r.str("mail") != "kim@contoso.com" {
		t.Errorf("default set: %s", r.raw)
	}
	r = e.graph("GET", "/users/"+sender+"?$select=otherMails", "")
	if om, ok := r.body["otherMails"].([]any); !ok || len(om) != 0 {
		t.Errorf("no otherMails is []: %s", r.raw)
	}
	r = e.graph("GET", "/users/"+userB+"?$select=mail,otherMail", "")
	r.want(t, http.StatusBadRequest, "Request_BadRequest")
}

func TestManager(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	r := e.graph("GET", "/users/{u}/manager?$select=id,displayName,mail", "")
	r.want(t, http.StatusOK, "")
	if r.str("@odata.type") != "#microsoft.graph.user" || r.str("id") != userB || r.str("mail") != "Lee.Gu@contoso.com" || r.str("displayName") != "Lee Gu" {
		t.Errorf("manager: %s", r.raw)
	}
	if !strings.HasSuffix(r.str("@odata.context"), "$metadata#directoryObjects/$entity") {
		t.Errorf("context %q", r.str("@odata.context"))
	}
	e.graph("GET", "/users/"+userB+"/manager", "").want(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.graph("GET", "/users/"+userG+"/manager", "").want(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.graph("POST", "/users/{u}/manager", "{}").want(t, http.StatusMethodNotAllowed, "notSupported")
	// A manager who is deleted is no manager.
	e.srv.DeleteUser(userB)
	e.graph("GET", "/users/{u}/manager", "").want(t, http.StatusNotFound, "Request_ResourceNotFound")
}

const goodMail = `{"message":{"@odata.type":"#microsoft.graph.message","subject":"Your sign-in methods changed",
 "body":{"contentType":"HTML","content":"<p>A phone was added.</p>"},
 "toRecipients":[{"emailAddress":{"address":"kim.home@fabrikam.com","name":"Kim Akers"}}],
 "ccRecipients":[{"emailAddress":{"address":"Lee.Gu@contoso.com"}}]},
 "saveToSentItems":false}`

func TestSendMail(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	r := e.graph("POST", "/users/"+sender+"/sendMail", goodMail, withHeader("client-request-id", "c-1"))
	r.want(t, http.StatusAccepted, "")
	if len(r.raw) != 0 {
		t.Errorf("202 with a body: %s", r.raw)
	}
	got := e.srv.Mail()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m := got[0]
	if m.Seq != 1 || m.SenderID != sender || m.From != "authflow-notify@contoso.com" || m.Subject != "Your sign-in methods changed" ||
		m.ContentType != "html" || m.Content != "<p>A phone was added.</p>" || m.SaveToSentItems || m.ClientRequestID != "c-1" {
		t.Errorf("message %+v", m)
	}
	if strings.Join(m.Recipients(), ",") != "kim.home@fabrikam.com,Lee.Gu@contoso.com" || m.To[0].Name != "Kim Akers" {
		t.Errorf("recipients %+v", m)
	}
	// saveToSentItems defaults to true; the body to empty text.
	e.graph("POST", "/users/"+sender+"/sendMail", `{"message":{"toRecipients":[{"emailAddress":{"address":"kim@contoso.com"}}]}}`).want(t, http.StatusAccepted, "")
	if m := e.srv.Mail()[1]; !m.SaveToSentItems || m.ContentType != "text" || m.Content != "" || len(m.CC) != 0 {
		t.Errorf("defaults %+v", m)
	}
	// The action's parameters in the metadata's (and the SDK's) spelling.
	e.graph("POST", "/users/"+sender+"/sendMail", `{"Message":{"toRecipients":[{"emailAddress":{"address":"kim@contoso.com"}}]},"SaveToSentItems":false}`).
		want(t, http.StatusAccepted, "")
	if m := e.srv.Mail()[2]; m.SaveToSentItems {
		t.Errorf("SaveToSentItems ignored: %+v", m)
	}
	e.graph("POST", "/users/"+sender+"/sendMail", `{"message":{"toRecipients":[{"emailAddress":{"address":"kim@contoso.com"}}]},"Message":{}}`).
		want(t, http.StatusBadRequest, "RequestBodyRead")
	// The admin list, since, and DELETE.
	a := e.admin("GET", "/mail?since=2", "")
	var listed []MailMessage
	if err := json.Unmarshal(a.raw, &listed); err != nil || a.status != 200 || len(listed) != 1 || listed[0].Seq != 3 {
		t.Errorf("GET /_emulator/mail?since=1: %d %s", a.status, a.raw)
	}
	e.admin("GET", "/mail?since=x", "").want(t, http.StatusBadRequest, "badRequest")
	if a := e.admin("DELETE", "/mail", ""); a.status != http.StatusNoContent || len(e.srv.Mail()) != 0 {
		t.Errorf("DELETE /_emulator/mail: %d", a.status)
	}
	if a := e.admin("GET", "/mail", ""); string(a.raw) != "[]" {
		t.Errorf("empty list %s", a.raw)
	}
	e.admin("PUT", "/mail", "{}").want(t, http.StatusMethodNotAllowed, "notSupported")
	if st := e.srv.Stats(); st.Requests["POST "+routeSendMail]["202"] != 3 {
		t.Errorf("stats %+v", st.Requests)
	}
}

func TestSendMailBadShapes(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	to := `"toRecipients":[{"emailAddress":{"address":"kim@contoso.com"}}]`
	tests := []struct {
		name, body, code, msg string
	}{
		{"not JSON", `{"message":`, "RequestBodyRead", "Unable to read JSON request payload"},
		{"array", `[]`, "RequestBodyRead", "must be a JSON object"},
		{"no message", `{"saveToSentItems":false}`, "ErrorInvalidRequest", "message is required"},
		{"null message", `{"message":null}`, "ErrorInvalidRequest", "message is required"},
		{"message not an object", `{"message":"hi"}`, "RequestBodyRead", "message must be a JSON object"},
		{"unknown top-level property", `{"message":{` + to + `},"save":true}`, "RequestBodyRead", "'save' does not exist"},
		{"unknown message property", `{"message":{` + to + `,"toRecipent":[]}}`, "RequestBodyRead", "'toRecipent' does not exist"},
		{"subject a number", `{"message":{` + to + `,"subject":1}}`, "RequestBodyRead", "subject must be a string"},
		{"body a string", `{"message":{` + to + `,"body":"hi"}}`, "RequestBodyRead", "message.body must be a JSON object"},
		{"bad contentType", `{"message":{` + to + `,"body":{"contentType":"markdown","content":"x"}}}`, "RequestBodyRead", "'markdown'"},
		{"content a number", `{"message":{` + to + `,"body":{"contentType":"text","content":5}}}`, "RequestBodyRead", "content must be a string"},
		{"unknown body property", `{"message":{` + to + `,"body":{"type":"text"}}}`, "RequestBodyRead", "'type' does not exist"},
		{"no recipients", `{"message":{"subject":"x"}}`, "ErrorInvalidRecipients", "contains no recipients"},
		{"empty recipients", `{"message":{"toRecipients":[],"ccRecipients":[]}}`, "ErrorInvalidRecipients", "contains no recipients"},
		{"only replyTo", `{"message":{"replyTo":[{"emailAddress":{"address":"kim@contoso.com"}}]}}`, "ErrorInvalidRecipients", "contains no recipients"},
		{"recipients an object", `{"message":{"toRecipients":{"emailAddress":{"address":"kim@contoso.com"}}}}`, "RequestBodyRead", "array of recipients"},
		{"recipient without emailAddress", `{"message":{"toRecipients":[{}]}}`, "ErrorInvalidRecipients", "no emailAddress"},
		{"address missing", `{"message":{"toRecipients":[{"emailAddress":{"name":"Kim"}}]}}`, "ErrorInvalidRecipients", "Recipient '' isn't resolved"},
		{"address invalid", `{"message":{"bccRecipients":[{"emailAddress":{"address":"kim at contoso"}}]}}`, "ErrorInvalidRecipients", "Recipient 'kim at contoso' isn't resolved"},
		{"address a number", `{"message":{"toRecipients":[{"emailAddress":{"address":7}}]}}`, "RequestBodyRead", "address must be a string"},
		{"emailAddress unknown property", `{"message":{"toRecipients":[{"emailAddress":{"addr":"kim@contoso.com"}}]}}`, "RequestBodyRead", "'addr' does not exist"},
		{"saveToSentItems a string", `{"message":{` + to + `},"saveToSentItems":"false"}`, "RequestBodyRead", "saveToSentItems must be a boolean"},
		{"duplicate property", `{"message":{` + to + `,"subject":"a","subject":"b"}}`, "RequestBodyRead", "appears twice"},
		{"trailing data", `{"message":{` + to + `}} {}`, "RequestBodyRead", "Unable to read JSON"},
		{"too many recipients", `{"message":{"toRecipients":[` + strings.Repeat(`{"emailAddress":{"address":"a@contoso.com"}},`, 500) +
			`{"emailAddress":{"address":"a@contoso.com"}}]}}`, "ErrorTooManyRecipients", "501 recipients"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.graph("POST", "/users/"+sender+"/sendMail", tc.body)
			r.want(t, http.StatusBadRequest, tc.code)
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q, want it to contain %q", msg, tc.msg)
			}
		})
	}
	if n := len(e.srv.Mail()); n != 0 {
		t.Errorf("%d bad messages were recorded", n)
	}
	// The sender needs a mailbox; MIME is not emulated.
	e.graph("POST", "/users/{u}/sendMail", goodMail).want(t, http.StatusAccepted, "")
	e.putUser(userG, "guest@contoso.com", "")
	e.graph("POST", "/users/"+userG+"/sendMail", goodMail).want(t, http.StatusNotFound, "MailboxNotEnabledForRESTAPI")
	e.graph("POST", "/users/"+nobodyID+"/sendMail", goodMail).want(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.graph("POST", "/users/"+sender+"/sendMail", "TUlNRS1WZXJzaW9uOiAxLjA=", withHeader("Content-Type", "text/plain")).
		want(t, http.StatusBadRequest, "ErrorInvalidRequest")
	e.graph("GET", "/users/"+sender+"/sendMail", "").want(t, http.StatusMethodNotAllowed, "notSupported")
	e.graph("POST", "/users/"+sender+"/sendMail", goodMail, noToken()).want(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
}

const nobodyID = "99999999-9999-4999-8999-999999999999"

// TestMailFaults: a mail outage fails sendMail only; every other endpoint
// keeps working, and the outage ends when the faults are cleared.
func TestMailFaults(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	r := e.admin("PUT", "/mail/faults", `{"failNext":2,"status":429,"retryAfterSeconds":3}`)
	if r.status != 200 || !strings.Contains(string(r.raw), `"failNext":2`) {
		t.Fatalf("PUT faults: %d %s", r.status, r.raw)
	}
	for i := range 2 {
		r := e.graph("POST", "/users/"+sender+"/sendMail", goodMail)
		r.want(t, http.StatusTooManyRequests, "ApplicationThrottled")
		if r.header.Get("Retry-After") != "3" {
			t.Errorf("attempt %d: Retry-After %q", i, r.header.Get("Retry-After"))
		}
	}
	e.graph("POST", "/users/"+sender+"/sendMail", goodMail).want(t, http.StatusAccepted, "")
	if err := e.srv.SetMailFaults(MailFaults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.graph("POST", "/users/"+sender+"/sendMail", goodMail).want(t, http.StatusServiceUnavailable, "ServiceUnavailable")
		e.graph("GET", "/users/{u}/manager", "").want(t, http.StatusOK, "")
		e.graph("GET", "/users/{u}/authentication/methods", "").want(t, http.StatusOK, "")
	}
	if err := e.srv.SetMailFaults(MailFaults{Outage: true, Status: 403}); err != nil {
		t.Fatal(err)
	}
	e.graph("POST", "/users/"+sender+"/sendMail", goodMail).want(t, http.StatusForbidden, "ErrorAccessDenied")
	e.admin("PUT", "/mail/faults", `{}`)
	e.graph("POST", "/users/"+sender+"/sendMail", goodMail).want(t, http.StatusAccepted, "")
	if n := len(e.srv.Mail()); n != 2 {
		t.Errorf("%d messages recorded, want the 2 accepted", n)
	}
	for _, bad := range []string{`{"status":400}`, `{"failNext":-1}`, `{"retryAfterSeconds":-2}`, `{"outage":"yes"}`} {
		e.admin("PUT", "/mail/faults", bad).want(t, http.StatusBadRequest, "badRequest")
	}
	e.admin("GET", "/mail/nothing", "").want(t, http.StatusNotFound, "itemNotFound")
}

func TestAdminMailFields(t *testing.T) {
	t.Parallel()
	e := mailEnv(t)
	u, _ := e.srv.User(userA)
	if u.Mail != "kim@contoso.com" || len(u.OtherMails) != 1 || u.ManagerID != userB {
		t.Fatalf("admin shape %+v", u)
	}
	if err := e.srv.PutUser(u); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	r := e.admin("PATCH", "/users/"+userA, `{"otherMails":["kim.alt@fabrikam.com","kim@fabrikam.com"],"managerId":""}`)
	if r.status != 200 || r.str("managerId") != "" || r.str("mail") != "kim@contoso.com" {
		t.Fatalf("PATCH: %d %s", r.status, r.raw)
	}
	e.graph("GET", "/users/{u}/manager", "").want(t, http.StatusNotFound, "Request_ResourceNotFound")
	tests := []struct{ name, body, msg string }{
		{"bad mail", `{"mail":"not an address"}`, "not a valid email address"},
		{"bad other", `{"otherMails":["kim@"]}`, "otherMails[0]"},
		{"duplicate other", `{"otherMails":["a@fabrikam.com","A@fabrikam.com"]}`, "listed twice"},
		{"bad manager", `{"managerId":"lee"}`, "not an object id"},
		{"self manager", `{"managerId":"` + userA + `"}`, "own manager"},
		{"other property", `{"displayName":"Kim"}`, "PATCH changes mail, otherMails and managerId"},
		{"wrong type", `{"mail":5}`, "mail"},
	}
	for _, tc := range tests {
		r := e.admin("PATCH", "/users/"+userA, tc.body)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), tc.msg) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.name, r.status, r.raw, tc.msg)
		}
	}
	e.admin("PATCH", "/users/"+nobodyID, `{"mail":"x@contoso.com"}`).want(t, http.StatusNotFound, "Request_ResourceNotFound")
	r = e.admin("PUT", "/users/"+userG, `{"userPrincipalName":"g@contoso.com","mail":"g@"}`)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), "mail") {
		t.Errorf("PUT with a bad mail: %d %s", r.status, r.raw)
	}
}

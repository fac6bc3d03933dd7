package graphclienttest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// beta sends a request to path below /beta with the token; {u} is userA.
func (e *env) beta(method, path, body string, opts ...reqOpt) response {
	e.t.Helper()
	path = strings.ReplaceAll(path, "{u}", userA)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+"/beta"+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.srv.Token)
	for _, o := range opts {
		o(req)
	}
	return e.send(req, true)
}

const prefsPath = "/users/{u}/authentication/signInPreferences"

func (e *env) preferred() (string, bool) {
	e.t.Helper()
	r := e.beta("GET", prefsPath, "")
	r.want(e.t, 200, "")
	p, _ := r.body["userPreferredMethodForSecondaryAuthentication"].(string)
	sys, _ := r.body["isSystemPreferredAuthenticationMethodEnabled"].(bool)
	return p, sys
}

// TestSignInPreferences is the rule table of the beta default method.
func TestSignInPreferences(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", `,"methods":[
		{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"},
		{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"auth-1","displayName":"Kim's iPhone"},
		{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"oath-1"}]`)
	if p, sys := e.preferred(); p != "sms" || sys {
		t.Fatalf("seeded default (the mobile phone) reads %q, system-preferred %t", p, sys)
	}
	steps := []struct {
		name, method, body string
		status             int
		code, want         string
	}{
		{"push", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":"push"}`, 204, "", "push"},
		{"voice to the mobile", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":"voiceMobile"}`, 204, "", "voiceMobile"},
		{"oath prefers the software token", "PATCH", `{"@odata.type":"#microsoft.graph.signInPreferences","userPreferredMethodForSecondaryAuthentication":"oath"}`, 204, "", "oath"},
		{"unknown value", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":"fido2"}`, 400, "badRequest", "oath"},
		{"unknownFutureValue is read-only", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":"unknownFutureValue"}`, 400, "badRequest", "oath"},
		{"null cannot clear", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":null}`, 400, "badRequest", "oath"},
		{"no office phone", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":"voiceOffice"}`, 400, "badRequest", "oath"},
		{"not a string", "PATCH", `{"userPreferredMethodForSecondaryAuthentication":5}`, 400, "badRequest", "oath"},
		{"wrong type", "PATCH", `{"@odata.type":"#microsoft.graph.user"}`, 400, "badRequest", "oath"},
		{"system-preferred only", "PATCH", `{"isSystemPreferredAuthenticationMethodEnabled":true}`, 204, "", "oath"},
		{"POST is not served", "POST", `{}`, 405, "notSupported", "oath"},
	}
	for _, s := range steps {
		r := e.beta(s.method, prefsPath, s.body)
		if r.status != s.status || r.code() != s.code {
			t.Fatalf("%s: got %d %q, want %d %q: %s", s.name, r.status, r.code(), s.status, s.code, r.raw)
		}
		if s.status == 204 && len(r.raw) != 0 {
			t.Fatalf("%s: 204 with a body", s.name)
		}
		if p, _ := e.preferred(); p != s.want {
			t.Fatalf("%s: default reads %q, want %q", s.name, p, s.want)
		}
	}
	if _, sys := e.preferred(); !sys {
		t.Fatal("isSystemPreferredAuthenticationMethodEnabled not kept")
	}

	// The beta default is v1.0's: the software token cannot go while others
	// remain; once the default moves to push, it can.
	e.run([]step{{"delete the default", "DELETE", "/users/{u}/authentication/softwareOathMethods/oath-1", "", 400, "badRequest"}})
	e.beta("PATCH", prefsPath, `{"userPreferredMethodForSecondaryAuthentication":"push"}`).want(t, 204, "")
	e.run([]step{
		{"delete the former default", "DELETE", "/users/{u}/authentication/softwareOathMethods/oath-1", "", 204, ""},
		{"delete the mobile", "DELETE", "/users/{u}/authentication/phoneMethods/" + mobilePhoneID, "", 204, ""},
	})
	if u, _ := e.srv.User(userA); u.DefaultMethodID != "auth-1" {
		t.Fatalf("admin view default %q, want auth-1", u.DefaultMethodID)
	}
	// Deleted last, the default is cleared: null.
	e.run([]step{{"delete the last", "DELETE", "/users/{u}/authentication/microsoftAuthenticatorMethods/auth-1", "", 204, ""}})
	r := e.beta("GET", prefsPath, "")
	if v, ok := r.body["userPreferredMethodForSecondaryAuthentication"]; !ok || v != nil {
		t.Fatalf("no default must read null: %s", r.raw)
	}

	// A default no value names (a passkey) reads unknownFutureValue.
	e.putUser(userB, "lee@contoso.com", `,"methods":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"key-1","displayName":"key"}]`)
	r = e.beta("GET", "/users/"+userB+"/authentication/signInPreferences", "")
	if r.body["userPreferredMethodForSecondaryAuthentication"] != "unknownFutureValue" {
		t.Fatalf("FIDO2 default: %s", r.raw)
	}
}

func TestBetaRoutes(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"by UPN", "GET", "/users/kim@contoso.com/authentication/signInPreferences", 200, ""},
		{"case-insensitive", "GET", "/Users/{u}/Authentication/SIGNINPREFERENCES", 200, ""},
		{"unknown user", "GET", "/users/" + userB + "/authentication/signInPreferences", 404, "Request_ResourceNotFound"},
		{"bad user id", "GET", "/users/not-an-id/authentication/signInPreferences", 400, "Request_BadRequest"},
		{"other beta API", "GET", "/users/{u}/authentication/methods", 400, "BadRequest"},
		{"beta root", "GET", "", 400, "BadRequest"},
		{"below signInPreferences", "GET", prefsPath + "/x", 400, "BadRequest"},
		{"me", "GET", "/me/authentication/signInPreferences", 400, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.beta(tt.method, tt.path, "").want(t, tt.status, tt.code)
		})
	}
	e.t = t
	e.beta("GET", prefsPath, "", noToken()).want(t, 401, "InvalidAuthenticationToken")
	if got := e.srv.Stats().Requests["GET "+routeSignInPreferences]["200"]; got == 0 {
		t.Fatalf("beta requests are not counted under %s", routeSignInPreferences)
	}
}

// TestSignInPreferencesMFARequired: the PATCH is a credential-management
// write and meets the claims challenge; the GET does not.
func TestSignInPreferencesMFARequired(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MFARequired = true })
	e.putUser(userA, "kim@contoso.com", `,"methods":[{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}]`)
	e.beta("GET", prefsPath, "").want(t, 200, "")
	r := e.beta("PATCH", prefsPath, `{"userPreferredMethodForSecondaryAuthentication":"voiceMobile"}`)
	r.want(t, 403, "accessDenied")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_claims") {
		t.Fatalf("no claims challenge: %v", r.header)
	}
}

package graphclienttest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewRequiresToken(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a token: want an error")
	}
	if _, err := New(Options{Token: "x", TAPPolicy: TAPPolicy{MinLifetime: 500}}); err == nil {
		t.Fatal("New with min lifetime above the default max: want an error")
	}
	if _, err := New(Options{Token: "x", TAPPolicy: TAPPolicy{DefaultLength: 4}}); err == nil {
		t.Fatal("New with a 4-character TAP: want an error")
	}
}

func TestToken(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	tests := []struct {
		name   string
		auth   string
		status int
		code   string
	}{
		{"missing", "", http.StatusUnauthorized, "InvalidAuthenticationToken"},
		{"wrong token", "Bearer nope", http.StatusUnauthorized, "InvalidAuthenticationToken"},
		{"wrong scheme", "Basic " + DefaultToken, http.StatusUnauthorized, "InvalidAuthenticationToken"},
		{"token without scheme", DefaultToken, http.StatusUnauthorized, "InvalidAuthenticationToken"},
		{"right token", "Bearer " + DefaultToken, http.StatusOK, ""},
		{"scheme is case-insensitive", "bearer " + DefaultToken, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.graph("GET", "/users/{u}/authentication/methods", "", func(r *http.Request) {
				r.Header.Del("Authorization")
				if tt.auth != "" {
					r.Header.Set("Authorization", tt.auth)
				}
			})
			r.want(t, tt.status, tt.code)
		})
	}
	// The admin API needs no token.
	if r := e.admin("GET", "/users/"+userA, ""); r.status != http.StatusOK {
		t.Fatalf("admin without token: %d", r.status)
	}
}

func TestHeaders(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	r1 := e.graph("GET", "/users/{u}/authentication/passwordMethods", "", withHeader("client-request-id", "my-id-1"))
	r2 := e.graph("GET", "/users/{u}/authentication/passwordMethods", "")
	r1.want(t, http.StatusOK, "")
	if got := r1.header.Get("client-request-id"); got != "my-id-1" {
		t.Errorf("client-request-id echo = %q", got)
	}
	id1, id2 := r1.header.Get("request-id"), r2.header.Get("request-id")
	if !isGUID(id1) || !isGUID(id2) || id1 == id2 {
		t.Errorf("request-id must be a fresh GUID: %q %q", id1, id2)
	}
	if got := r2.header.Get("client-request-id"); got != id2 {
		t.Errorf("without a client-request-id the echo is the request-id: %q vs %q", got, id2)
	}
	if got := r1.header.Get("Content-Type"); got != graphContentType {
		t.Errorf("Content-Type = %q", got)
	}
	if got := r1.str("@odata.context"); got != e.srv.URL+"/v1.0/$metadata#users('"+userA+"')/authentication/passwordMethods" {
		t.Errorf("@odata.context = %q", got)
	}
}

func TestODataContextUsesRequestHost(t *testing.T) {
	em, err := New(Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.PutUser(User{ID: userA, UserPrincipalName: "kim@contoso.com"}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://graph.example:8080/v1.0/users/kim%40contoso.com/authentication/methods", nil)
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	em.ServeHTTP(rec, req)
	want := `"@odata.context":"http://graph.example:8080/v1.0/$metadata#users('kim%40contoso.com')/authentication/methods"`
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("got %d %s, want it to contain %s", rec.Code, rec.Body, want)
	}
}

func TestRoutingAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	big := `{"phoneNumber":"+1 5555551234","phoneType":"mobile","pad":"` + strings.Repeat("x", maxBody) + `"}`
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"unknown segment", "GET", "/groups", "", 400, "BadRequest"},
		{"unknown nav", "GET", "/users/{u}/authentication/hardwareOathMethods", "", 400, "BadRequest"},
		{"unknown action", "POST", "/users/{u}/authentication/phoneMethods/" + mobilePhoneID + "/frobnicate", "", 400, "BadRequest"},
		{"bad user id", "GET", "/users/not-a-guid/authentication/methods", "", 400, "Request_BadRequest"},
		{"bad user id on user", "GET", "/users/abc", "", 400, "Request_BadRequest"},
		{"bad method id", "GET", "/users/{u}/authentication/phoneMethods/bad%20id", "", 400, "badRequest"},
		{"bad method id chars", "DELETE", "/users/{u}/authentication/fido2Methods/a*b", "", 400, "badRequest"},
		{"unknown user by id", "GET", "/users/" + userB + "/authentication/methods", "", 404, "Request_ResourceNotFound"},
		{"unknown user by upn", "GET", "/users/nobody@contoso.com/authentication/phoneMethods", "", 404, "Request_ResourceNotFound"},
		{"unknown method", "GET", "/users/{u}/authentication/phoneMethods/" + mobilePhoneID, "", 404, "itemNotFound"},
		{"malformed json", "POST", "/users/{u}/authentication/phoneMethods", `{"phoneNumber":`, 400, "badRequest"},
		{"not an object", "POST", "/users/{u}/authentication/phoneMethods", `["x"]`, 400, "badRequest"},
		{"wrong type string", "POST", "/users/{u}/authentication/phoneMethods", `{"phoneNumber":15555551234,"phoneType":"mobile"}`, 400, "badRequest"},
		{"wrong type int", "POST", "/users/{u}/authentication/temporaryAccessPassMethods", `{"lifetimeInMinutes":"60"}`, 400, "badRequest"},
		{"fractional int", "POST", "/users/{u}/authentication/temporaryAccessPassMethods", `{"lifetimeInMinutes":60.5}`, 400, "badRequest"},
		{"wrong type bool", "POST", "/users/{u}/authentication/temporaryAccessPassMethods", `{"isUsableOnce":"yes"}`, 400, "badRequest"},
		{"wrong type on user", "PATCH", "/users/{u}", `{"accountEnabled":"false"}`, 400, "Request_BadRequest"},
		{"oversized", "POST", "/users/{u}/authentication/phoneMethods", big, 400, "badRequest"},
		{"trailing garbage", "POST", "/users/{u}/authentication/emailMethods", `{"emailAddress":"a@b.com"} x`, 400, "badRequest"},
		{"wrong @odata.type", "POST", "/users/{u}/authentication/emailMethods", `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","emailAddress":"a@b.com"}`, 400, "badRequest"},
		{"me", "GET", "/me/authentication/methods", "", 400, "BadRequest"},
		{"methods count", "GET", "/users/{u}/authentication/methods/$count", "", 400, "badRequest"},
		{"phone count", "GET", "/users/{u}/authentication/phoneMethods/$count", "", 400, "badRequest"},
		{"undocumented POST methods", "POST", "/users/{u}/authentication/methods", `{}`, 405, "notSupported"},
		{"undocumented PATCH methods item", "PATCH", "/users/{u}/authentication/methods/" + passwordMethodID, `{}`, 405, "notSupported"},
		{"generic DELETE", "DELETE", "/users/{u}/authentication/methods/" + passwordMethodID, "", 405, "notSupported"},
		{"DELETE password", "DELETE", "/users/{u}/authentication/passwordMethods/" + passwordMethodID, "", 405, "notSupported"},
		{"POST password", "POST", "/users/{u}/authentication/passwordMethods", `{}`, 405, "notSupported"},
		{"POST authenticator", "POST", "/users/{u}/authentication/microsoftAuthenticatorMethods", `{}`, 405, "notSupported"},
		{"PATCH external", "PATCH", "/users/{u}/authentication/externalAuthenticationMethods/x", `{}`, 405, "notSupported"},
		{"PATCH TAP", "PATCH", "/users/{u}/authentication/temporaryAccessPassMethods/x", `{}`, 405, "notSupported"},
		{"authentication root", "GET", "/users/{u}/authentication", "", 405, "notSupported"},
		{"list operations", "GET", "/users/{u}/authentication/operations", "", 405, "notSupported"},
		{"POST operations item", "POST", "/users/{u}/authentication/operations/x", `{}`, 405, "notSupported"},
		{"PUT user", "PUT", "/users/{u}", `{}`, 405, "notSupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.graph(tt.method, tt.path, tt.body).want(t, tt.status, tt.code)
		})
	}
	t.Run("405 names the allowed methods", func(t *testing.T) {
		r := e.graph("DELETE", "/users/{u}/authentication/methods/"+passwordMethodID, "")
		if r.header.Get("Allow") != "GET" {
			t.Fatalf("Allow = %q", r.header.Get("Allow"))
		}
	})
	// Nothing above may have changed the user.
	if got := e.methodsOf(userA, "phoneAuthenticationMethod"); len(got) != 0 {
		t.Fatalf("bad requests created phones: %v", got)
	}
}

func TestGzipBodies(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	post := func(body []byte, enc string) response {
		req, err := http.NewRequest("POST", e.srv.GraphURL+"/users/"+userA+"/authentication/phoneMethods", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.srv.Token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", enc)
		return e.send(req, true)
	}
	post(gzipped(t, `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 5555551234","phoneType":"mobile"}`), "gzip").
		want(t, http.StatusCreated, "")
	post([]byte("not gzip at all"), "gzip").want(t, http.StatusBadRequest, "badRequest")
	post([]byte(`{"phoneNumber":"+1 5555551235","phoneType":"office"}`), "br").want(t, http.StatusUnsupportedMediaType, "UnsupportedMediaType")
	bomb := gzipped(t, `{"x":"`+strings.Repeat("a", 2*maxBody)+`"}`)
	post(bomb, "gzip").want(t, http.StatusBadRequest, "badRequest")
	if got := e.methodsOf(userA, "phoneAuthenticationMethod"); len(got) != 1 || got[0]["phoneNumber"] != "+1 5555551234" {
		t.Fatalf("phones after gzip tests: %v", got)
	}
}

func TestUnknownPrefix(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2.0/users", nil) // /beta serves signInPreferences only (beta_test.go)
	r := e.send(req, true)
	r.want(t, http.StatusNotFound, "NotFound")
}

func TestHandlerNeverPanicsOnOddPaths(t *testing.T) {
	em, err := New(Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/v1.0", "/v1.0/", "/v1.0//", "/v1.0/users/", "/v1.0/users//authentication",
		"/beta", "/beta/", "/beta//", "/beta/users/%zz/authentication/signInPreferences", "/beta/users//authentication/signInPreferences",
		"/v1.0/users/" + userA + "/authentication/fido2Methods/creationOptions(", "/v1.0/users/" + userA + "/authentication/fido2Methods/creationOptions(%zz)",
		"/v1.0/users/%zz", "/v1.0/users/" + userA + "/authentication/methods/%ff/resetPassword",
		"/v1.0/users/" + userA + "/authentication/phoneMethods/x/y/z/w", "/v1.0/users/" + userA + "/authentication/methods/$count/x",
		"/v1.0/users/" + userA + "/authentication/operations/a/b", "/_emulator/users/%zz", "/_emulator/nope/x"}
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "FROB"} {
		for _, p := range paths {
			req := httptest.NewRequest(m, "http://x"+strings.ReplaceAll(p, "%zz", "%25zz"), strings.NewReader("{"))
			req.URL.RawPath = ""
			req.URL.Path = p
			req.Header.Set("Authorization", "Bearer t")
			rec := httptest.NewRecorder()
			em.ServeHTTP(rec, req)
			if rec.Code < 200 || rec.Code >= 500 {
				t.Errorf("%s %s: status %d", m, p, rec.Code)
			}
		}
	}
}

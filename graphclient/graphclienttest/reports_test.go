package graphclienttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestRegistrationReport: the report pages with @odata.nextLink, leaves
// disabled accounts out, names the methods as Graph does and honours
// $select and $top.
func TestRegistrationReport(t *testing.T) {
	e := newEnv(t)
	off := false
	for i := range 5 {
		u := User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("u%d@contoso.com", i)}
		if i == 2 {
			u.AccountEnabled = &off
		}
		if i == 0 {
			u.DirectoryRoles = []string{"Helpdesk Administrator"}
			u.Methods = []json.RawMessage{
				json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`),
				json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550101","phoneType":"office"}`),
				json.RawMessage(`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"k@home.example"}`),
				json.RawMessage(`{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","displayName":"key","passkeyType":"synced"}`),
			}
		}
		if err := e.srv.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	path := "/reports/authenticationMethods/userRegistrationDetails?$top=2"
	for page := 0; path != ""; page++ {
		r := e.graph(http.MethodGet, path, "")
		if r.status != http.StatusOK || page > 3 {
			t.Fatalf("page %d: %d %s", page, r.status, r.raw)
		}
		if !strings.HasSuffix(r.str("@odata.context"), "/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails") {
			t.Errorf("context %q", r.str("@odata.context"))
		}
		for _, v := range r.values() {
			ids = append(ids, v["id"].(string))
			if v["id"] == "00000000-0000-4000-8000-000000000000" {
				var names []string
				for _, n := range v["methodsRegistered"].([]any) {
					names = append(names, n.(string))
				}
				if !slices.Equal(names, []string{"mobilePhone", "officePhone", "email", "passKeySynced"}) ||
					v["isAdmin"] != true || v["isMfaRegistered"] != true || v["userType"] != "member" || v["userPrincipalName"] != "u0@contoso.com" {
					t.Errorf("entry %v", v)
				}
			} else if n := v["methodsRegistered"].([]any); len(n) != 0 || v["isMfaRegistered"] != false {
				t.Errorf("entry %v: only a password, so nothing registered", v)
			}
		}
		path = strings.TrimPrefix(r.str("@odata.nextLink"), e.srv.GraphURL)
	}
	want := []string{"00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000001",
		"00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v (the disabled user left out)", ids, want)
	}

	r := e.graph(http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails?$select=id,methodsRegistered", "")
	if v := r.values(); r.status != http.StatusOK || len(v) != 4 || len(v[0]) != 2 {
		t.Errorf("$select: %d %s", r.status, r.raw)
	}
	r = e.graph(http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails/00000000-0000-4000-8000-000000000001", "")
	if r.status != http.StatusOK || r.str("userPrincipalName") != "u1@contoso.com" || !strings.HasSuffix(r.str("@odata.context"), "/$entity") {
		t.Errorf("single entry: %d %s", r.status, r.raw)
	}

	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails/00000000-0000-4000-8000-000000000002", 404, "Request_ResourceNotFound"},
		{http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails/not-a-guid", 400, "Request_BadRequest"},
		{http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails?$top=0", 400, "Request_BadRequest"},
		{http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails?$select=bogus", 400, "Request_BadRequest"},
		{http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails?$filter=isAdmin%20eq%20true", 400, "Request_UnsupportedQuery"},
		{http.MethodPost, "/reports/authenticationMethods/userRegistrationDetails", 405, "notSupported"},
		{http.MethodGet, "/reports/authenticationMethods/usersRegisteredByMethod", 400, "BadRequest"},
		{http.MethodGet, "/reports", 400, "BadRequest"},
	} {
		if r := e.graph(tt.method, tt.path, ""); r.status != tt.status || r.code() != tt.code {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, r.status, r.code(), tt.status, tt.code)
		}
	}
	if r := e.graph(http.MethodGet, "/reports/authenticationMethods/userRegistrationDetails", "", noToken()); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", r.status)
	}
}

package graphclienttest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestGetUser(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "Kim@Contoso.com", `,"displayName":"Kim Akers","accountEnabled":false`)
	sel := "?$select=id,userPrincipalName,userType,accountEnabled"
	tests := []struct {
		name, path string
	}{
		{"by object id", "/users/" + userA + sel},
		{"by upper-case object id", "/users/" + strings.ToUpper(userA) + sel},
		{"by UPN", "/users/kim@contoso.com" + sel},
		{"by escaped UPN", "/users/kim%40contoso.com" + sel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.graph("GET", tt.path, "")
			r.want(t, 200, "")
			if r.str("id") != userA || r.str("userPrincipalName") != "Kim@Contoso.com" || r.str("userType") != "Member" || r.body["accountEnabled"] != false {
				t.Fatalf("user: %s", r.raw)
			}
			if r.str("@odata.context") != e.srv.URL+"/v1.0/$metadata#users(id,userPrincipalName,userType,accountEnabled)/$entity" {
				t.Fatalf("context: %s", r.str("@odata.context"))
			}
			if _, ok := r.body["displayName"]; ok {
				t.Fatalf("$select must limit the properties: %s", r.raw)
			}
		})
	}
	t.Run("default properties without $select", func(t *testing.T) {
		r := e.graph("GET", "/users/{u}", "")
		if r.str("displayName") != "Kim Akers" || r.str("id") != userA {
			t.Fatalf("user: %s", r.raw)
		}
		if _, ok := r.body["accountEnabled"]; ok {
			t.Fatalf("accountEnabled is not a default property: %s", r.raw)
		}
	})
	e.graph("GET", "/users/{u}?$select=id,shoeSize", "").want(t, 400, "Request_BadRequest")
	e.graph("GET", "/users/"+userB, "").want(t, 404, "Request_ResourceNotFound")
}

func TestFilterUsersByUPN(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", "")
	e.putUser(userB, "o'brien@contoso.com", "")
	e.putUser(userG, "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com", `,"userType":"Guest"`)
	tests := []struct {
		name, filter, wantID string
	}{
		{"exact", "userPrincipalName eq 'kim@contoso.com'", userA},
		{"case-insensitive value", "userPrincipalName eq 'KIM@contoso.COM'", userA},
		{"case-insensitive property", "userprincipalname eq 'kim@contoso.com'", userA},
		{"doubled quote", "userPrincipalName eq 'o''brien@contoso.com'", userB},
		{"guest #EXT#", "userPrincipalName eq 'guest_fabrikam.com#EXT#@contoso.onmicrosoft.com'", userG},
		{"by id", "id eq '" + userB + "'", userB},
		{"no match", "userPrincipalName eq 'nobody@contoso.com'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.graph("GET", "/users?$select=id,userPrincipalName&$filter="+url.QueryEscape(tt.filter), "")
			r.want(t, 200, "")
			vals := r.values()
			switch {
			case tt.wantID == "" && len(vals) != 0:
				t.Fatalf("want no match: %s", r.raw)
			case tt.wantID != "" && (len(vals) != 1 || vals[0]["id"] != tt.wantID):
				t.Fatalf("want %s: %s", tt.wantID, r.raw)
			}
		})
	}
	bad := []string{"userPrincipalName eq kim@contoso.com", "userPrincipalName eq 'o'brien@contoso.com'",
		"startswith(userPrincipalName,'kim')", "mail eq 'kim@contoso.com'", "userPrincipalName ne 'x'"}
	for _, f := range bad {
		t.Run("unsupported "+f, func(t *testing.T) {
			e.graph("GET", "/users?$filter="+url.QueryEscape(f), "").want(t, 400, "Request_UnsupportedQuery")
		})
	}
}

func TestListUsersPaging(t *testing.T) {
	e := newEnv(t)
	ids := []string{userA, userB, userG, "44444444-4444-4444-8444-444444444444", "55555555-5555-4555-8555-555555555555"}
	for i, id := range ids {
		e.putUser(id, "u"+itoa(i)+"@contoso.com", "")
	}
	var seen []string
	next := e.srv.GraphURL + "/users?$top=2&$select=id"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		if !strings.HasPrefix(next, e.srv.URL+"/v1.0/users?") {
			t.Fatalf("nextLink must be absolute and point at the emulator: %s", next)
		}
		req, _ := http.NewRequest("GET", next, nil)
		req.Header.Set("Authorization", "Bearer "+e.srv.Token)
		r := e.send(req, true)
		r.want(t, 200, "")
		for _, v := range r.values() {
			seen = append(seen, v["id"].(string))
		}
		next = r.str("@odata.nextLink")
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("paged ids %v, want %v", seen, ids)
	}
	e.graph("GET", "/users?$top=0", "").want(t, 400, "Request_BadRequest")
}

func TestPatchUser(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.run([]step{
		{"disable", "PATCH", "/users/{u}", `{"accountEnabled":false}`, 204, ""},
		{"weak password", "PATCH", "/users/{u}", `{"passwordProfile":{"password":"abc","forceChangePasswordNextSignIn":true}}`, 400, "Request_BadRequest"},
		{"password", "PATCH", "/users/{u}", `{"passwordProfile":{"password":"Correct-Horse-7","forceChangePasswordNextSignIn":true}}`, 204, ""},
		{"wrong nested type", "PATCH", "/users/{u}", `{"passwordProfile":{"password":7}}`, 400, "Request_BadRequest"},
		{"unknown fields are ignored", "PATCH", "/users/{u}", `{"@odata.type":"#microsoft.graph.user","officeLocation":"x"}`, 204, ""},
		{"unknown user", "PATCH", "/users/" + userB, `{"accountEnabled":false}`, 404, "Request_ResourceNotFound"},
	})
	u, _ := e.srv.User(userA)
	if *u.AccountEnabled || u.PasswordChanges != 1 || !u.ForceChangePasswordNextSignIn {
		t.Fatalf("user after PATCH: %+v", u)
	}
	r := e.graph("GET", "/users/{u}?$select=accountEnabled", "")
	if r.body["accountEnabled"] != false {
		t.Fatalf("GET after PATCH: %s", r.raw)
	}
}

func TestRevokeAndMemberOf(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", `,"directoryRoles":["Global Administrator","Custom Role"]`)
	r := e.graph("POST", "/users/{u}/revokeSignInSessions", "")
	r.want(t, 200, "")
	if r.body["value"] != true {
		t.Fatalf("revoke: %s", r.raw)
	}
	if u, _ := e.srv.User(userA); u.SessionsRevoked != 1 {
		t.Fatalf("sessionsRevoked = %d", u.SessionsRevoked)
	}
	m := e.graph("GET", "/users/{u}/memberOf", "")
	m.want(t, 200, "")
	vals := m.values()
	if len(vals) != 2 {
		t.Fatalf("memberOf: %s", m.raw)
	}
	if vals[0]["@odata.type"] != "#microsoft.graph.directoryRole" || vals[0]["displayName"] != "Global Administrator" ||
		vals[0]["roleTemplateId"] != "62e90394-69f5-4237-9190-012177145e10" || !isGUID(vals[0]["id"].(string)) {
		t.Fatalf("role: %v", vals[0])
	}
	if vals[1]["roleTemplateId"] != nil {
		t.Fatalf("custom role: %v", vals[1])
	}
	e.graph("GET", "/users/"+userB+"/memberOf", "").want(t, 404, "Request_ResourceNotFound")
	e.graph("GET", "/users/{u}/revokeSignInSessions", "").want(t, 405, "notSupported")
}

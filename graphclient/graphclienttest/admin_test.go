package graphclienttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestAdminPutUserValidation(t *testing.T) {
	phone := func(number, typ string) string {
		return `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"` + number + `","phoneType":"` + typ + `"}`
	}
	tests := []struct {
		name   string
		path   string
		body   string
		status int
	}{
		{"minimal", userA, `{"userPrincipalName":"kim@contoso.com"}`, 201},
		{"object id not a GUID", "kim", `{"userPrincipalName":"kim@contoso.com"}`, 400},
		{"body id differs", userA, `{"id":"` + userB + `","userPrincipalName":"kim@contoso.com"}`, 400},
		{"missing UPN", userA, `{}`, 400},
		{"UPN without @", userA, `{"userPrincipalName":"kim"}`, 400},
		{"bad userType", userA, `{"userPrincipalName":"kim@contoso.com","userType":"Robot"}`, 400},
		{"malformed JSON", userA, `{"userPrincipalName":`, 400},
		{"wrong type", userA, `{"userPrincipalName":"kim@contoso.com","accountEnabled":"yes"}`, 400},
		{"methods not an array", userA, `{"userPrincipalName":"kim@contoso.com","methods":{}}`, 400},
		{"method without @odata.type", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"id":"x"}]}`, 400},
		{"unknown @odata.type", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.hardwareOathAuthenticationMethod"}]}`, 400},
		{"bad phone number", userA, `{"userPrincipalName":"kim@contoso.com","methods":[` + phone("12065555555", "mobile") + `]}`, 400},
		{"bad phone type", userA, `{"userPrincipalName":"kim@contoso.com","methods":[` + phone("+1 2065555555", "pager") + `]}`, 400},
		{"two mobiles", userA, `{"userPrincipalName":"kim@contoso.com","methods":[` + phone("+1 2065555555", "mobile") + `,` + phone("+1 2065555556", "mobile") + `]}`, 400},
		{"alternate without mobile", userA, `{"userPrincipalName":"kim@contoso.com","methods":[` + phone("+1 2065555555", "alternateMobile") + `]}`, 400},
		{"alternate seeded before mobile is fine", userA, `{"userPrincipalName":"kim@contoso.com","methods":[` + phone("+1 2065555555", "alternateMobile") + `,` + phone("+1 2065555556", "mobile") + `]}`, 201},
		{"SMS ready on office", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 2065555555","phoneType":"office","smsSignInState":"ready"}]}`, 400},
		{"wrong fixed id", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","id":"x","emailAddress":"a@b.com"}]}`, 400},
		{"bad email", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"nope"}]}`, 400},
		{"duplicate ids", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"o"},{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"o"}]}`, 400},
		{"bad method id", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"a b"}]}`, 400},
		{"bad enum", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","keyStrength":"huge"}]}`, 400},
		{"prop wrong type", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","displayName":5}]}`, 400},
		{"TAP lifetime out of API range", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","lifetimeInMinutes":5}]}`, 400},
		{"TAP for a guest", userA, `{"userPrincipalName":"kim@contoso.com","userType":"Guest","methods":[{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod"}]}`, 400},
		{"default not a method", userA, `{"userPrincipalName":"kim@contoso.com","defaultMethodId":"nope"}`, 400},
		{"default not MFA", userA, `{"userPrincipalName":"kim@contoso.com","defaultMethodId":"` + passwordMethodID + `"}`, 400},
		{"device on a type without one", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","device":{"id":"d"}}]}`, 400},
		{"bad createdDateTime", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","createdDateTime":"yesterday"}]}`, 400},
		{"negative counter", userA, `{"userPrincipalName":"kim@contoso.com","passwordChanges":-1}`, 400},
		{"type without #", userA, `{"userPrincipalName":"kim@contoso.com","methods":[{"@odata.type":"microsoft.graph.softwareOathAuthenticationMethod"}]}`, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.admin("PUT", "/users/"+tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("got %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status == 400 {
				msg, _ := r.body["error"].(map[string]any)["message"].(string)
				if r.code() != "badRequest" || msg == "" {
					t.Fatalf("error body: %s", r.raw)
				}
				if _, ok := e.srv.User(userA); ok {
					t.Fatal("an invalid user was stored")
				}
			}
		})
	}
}

func TestAdminUsers(t *testing.T) {
	e := newEnv(t)
	r := e.admin("PUT", "/users/"+userA, `{"userPrincipalName":"kim@contoso.com","methods":[
		{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod"},
		{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","temporaryAccessPass":"SECRET-VALUE"}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if strings.Contains(string(r.raw), "SECRET-VALUE") {
		t.Fatal("a seeded TAP value must not be stored or returned")
	}
	var u User
	if err := json.Unmarshal(r.raw, &u); err != nil {
		t.Fatal(err)
	}
	if u.ID != userA || u.UserType != "Member" || u.AccountEnabled == nil || !*u.AccountEnabled || len(u.Methods) != 3 {
		t.Fatalf("stored user: %s", r.raw)
	}
	var first map[string]any
	_ = json.Unmarshal(u.Methods[0], &first)
	if first["id"] != passwordMethodID {
		t.Fatalf("the password method is added first: %v", first)
	}
	var oath map[string]any
	_ = json.Unmarshal(u.Methods[1], &oath)
	if !isGUID(oath["id"].(string)) || u.DefaultMethodID != oath["id"] {
		t.Fatalf("generated id / default: %v, default %q", oath, u.DefaultMethodID)
	}
	// PUT again replaces: 200.
	if r := e.admin("PUT", "/users/"+userA, `{"userPrincipalName":"kim@contoso.com"}`); r.status != http.StatusOK {
		t.Fatalf("replace: %d", r.status)
	}
	if r := e.admin("PUT", "/users/"+userB, `{"userPrincipalName":"KIM@contoso.com"}`); r.status != http.StatusBadRequest {
		t.Fatalf("duplicate UPN: %d", r.status)
	}
	if r := e.admin("GET", "/users/"+userA, ""); r.status != http.StatusOK || r.str("userPrincipalName") != "kim@contoso.com" {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}
	if r := e.admin("GET", "/users/"+userB, ""); r.status != http.StatusNotFound {
		t.Fatalf("get unknown: %d", r.status)
	}
	e.putUser(userB, "bob@contoso.com", "")
	var all []User
	if err := json.Unmarshal(e.admin("GET", "/users", "").raw, &all); err != nil || len(all) != 2 {
		t.Fatalf("list: %v %d", err, len(all))
	}
	if r := e.admin("DELETE", "/users/"+userB, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete one: %d", r.status)
	}
	if r := e.admin("DELETE", "/users", ""); r.status != http.StatusNoContent {
		t.Fatalf("delete all: %d", r.status)
	}
	if _, ok := e.srv.User(userA); ok {
		t.Fatal("users not deleted")
	}
	e.graph("GET", "/users/kim@contoso.com", "").want(t, 404, "Request_ResourceNotFound")
	if r := e.admin("PATCH", "/users", ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH /users: %d", r.status)
	}
	if r := e.admin("GET", "/nope", ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown admin path: %d", r.status)
	}
}

func TestPutUserRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", allKinds+`,"directoryRoles":["Helpdesk Administrator"],"sessionsRevoked":2`)
	before, _ := e.srv.User(userA)
	if err := e.srv.PutUser(before); err != nil {
		t.Fatalf("PutUser(User()) must be accepted: %v", err)
	}
	after, _ := e.srv.User(userA)
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if string(b1) != string(b2) {
		t.Fatalf("round trip changed the user:\n%s\n%s", b1, b2)
	}
}

func TestAdminConfig(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	r := e.admin("GET", "/config", "")
	pol, _ := r.body["temporaryAccessPassPolicy"].(map[string]any)
	if pol["maximumLifetimeInMinutes"] != float64(480) || r.body["appOnly"] != false {
		t.Fatalf("config: %s", r.raw)
	}
	// A partial PUT changes only the fields given.
	r = e.admin("PUT", "/config", `{"appOnly":true,"temporaryAccessPassPolicy":{"maximumLifetimeInMinutes":600}}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT config: %d %s", r.status, r.raw)
	}
	c := e.srv.Config()
	if !c.AppOnly || c.TAPPolicy.MaxLifetime != 600 || c.TAPPolicy.MinLifetime != 60 || c.SMSSignInDisabled {
		t.Fatalf("config after PUT: %+v", c)
	}
	e.graph("POST", "/users/{u}/authentication/methods/"+passwordMethodID+"/resetPassword", "").want(t, 403, "accessDenied")
	e.graph("POST", tapsPath, `{"lifetimeInMinutes":600}`).want(t, 201, "")
	bad := []string{
		`{"temporaryAccessPassPolicy":{"minimumLifetimeInMinutes":5}}`,
		`{"temporaryAccessPassPolicy":{"defaultLifetimeInMinutes":700}}`,
		`{"temporaryAccessPassPolicy":{"defaultLength":100}}`,
		`{"appOnly":"yes"}`,
	}
	for _, b := range bad {
		if r := e.admin("PUT", "/config", b); r.status != http.StatusBadRequest {
			t.Errorf("PUT config %s: %d, want 400", b, r.status)
		}
	}
	if c2 := e.srv.Config(); c2 != c {
		t.Fatalf("a refused PUT changed the config: %+v", c2)
	}
}

func TestRequestLogOrder(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.putUser(userB, "bob@contoso.com", "")
	e.graph("POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, withHeader("client-request-id", "c1"),
		withHeader("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	e.graph("POST", "/users/bob@contoso.com/authentication/emailMethods", `{"emailAddress":"b@fabrikam.com"}`)
	e.graph("PATCH", mobilePath, `{"phoneNumber":"+1 2065555557"}`)
	e.graph("GET", "/users/{u}/authentication/methods", "")
	e.graph("DELETE", mobilePath, "")
	log := e.srv.Requests()
	if len(log) != 5 {
		t.Fatalf("log has %d entries: %+v", len(log), log)
	}
	want := []struct {
		method, route, user string
		status              int
	}{
		{"POST", kindTable[kindPhone].listRoute, userA, 201},
		{"POST", kindTable[kindEmail].listRoute, userB, 201},
		{"PATCH", kindTable[kindPhone].itemRoute, userA, 204},
		{"GET", routeMethods, userA, 200},
		{"DELETE", kindTable[kindPhone].itemRoute, userA, 204},
	}
	for i, w := range want {
		got := log[i]
		if got.Seq != int64(i+1) || got.Method != w.method || got.Route != w.route || got.UserID != w.user || got.Status != w.status {
			t.Errorf("entry %d = %+v, want %+v", i, got, w)
		}
	}
	if log[0].ClientRequestID != "c1" || log[0].Path != "/v1.0/users/"+userA+"/authentication/phoneMethods" ||
		log[0].TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || log[1].TraceParent != "" {
		t.Errorf("entries 0 and 1: %+v, %+v", log[0], log[1])
	}
	if raw := e.admin("GET", "/requests?limit=1", "").raw; !strings.Contains(string(raw), `"traceParent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`) {
		t.Errorf("GET /_emulator/requests: %s", raw)
	}
	// The admin endpoint filters by user and sequence.
	var entries []Request
	if err := json.Unmarshal(e.admin("GET", "/requests?userId="+userA+"&since=1", "").raw, &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Seq != 3 || entries[2].Method != "DELETE" {
		t.Fatalf("filtered log: %+v", entries)
	}
	if r := e.admin("GET", "/requests?since=x", ""); r.status != 400 {
		t.Fatalf("bad since: %d", r.status)
	}
	// DELETE /_emulator/stats resets the log.
	e.admin("DELETE", "/stats", "")
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("log after reset: %d", n)
	}
}

func TestRequestLogIsBounded(t *testing.T) {
	l := newRequestLog(3)
	for i := range 5 {
		l.add(Request{Path: itoa(i)})
	}
	got := l.entries(0, "", 0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[0].Path != "2" {
		t.Fatalf("ring: %+v", got)
	}
	if got := l.entries(4, "", 0); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("since: %+v", got)
	}
	if got := l.entries(0, "", 2); len(got) != 2 || got[1].Seq != 4 {
		t.Fatalf("limit: %+v", got)
	}
}

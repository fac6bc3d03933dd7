package graphclienttest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	phonesPath = "/users/{u}/authentication/phoneMethods"
	mobilePath = phonesPath + "/" + mobilePhoneID
	altPath    = phonesPath + "/" + altMobilePhoneID
	officePath = phonesPath + "/" + officePhoneID
	emailsPath = "/users/{u}/authentication/emailMethods"
	emailPath  = emailsPath + "/" + emailMethodID
	tapsPath   = "/users/{u}/authentication/temporaryAccessPassMethods"
)

func TestPhoneRules(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"create mobile then read it", []step{
			{"post", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"mobile"}`, 201, ""},
			{"get", "GET", mobilePath, "", 200, ""},
			{"list", "GET", phonesPath, "", 200, ""},
		}},
		{"extension is allowed", []step{
			{"post", "POST", phonesPath, `{"phoneNumber":"+44 2065555555x123","phoneType":"mobile"}`, 201, ""},
		}},
		{"format is checked", []step{
			{"no plus", "POST", phonesPath, `{"phoneNumber":"1 2065555555","phoneType":"mobile"}`, 400, "badRequest"},
			{"no space", "POST", phonesPath, `{"phoneNumber":"+12065555555","phoneType":"mobile"}`, 400, "badRequest"},
			{"letters", "POST", phonesPath, `{"phoneNumber":"+1 206555CALL","phoneType":"mobile"}`, 400, "badRequest"},
			{"empty ext", "POST", phonesPath, `{"phoneNumber":"+1 2065555555x","phoneType":"mobile"}`, 400, "badRequest"},
			{"dashes", "POST", phonesPath, `{"phoneNumber":"+1 206-555-5555","phoneType":"mobile"}`, 400, "badRequest"},
			{"missing number", "POST", phonesPath, `{"phoneType":"mobile"}`, 400, "badRequest"},
			{"missing type", "POST", phonesPath, `{"phoneNumber":"+1 2065555555"}`, 400, "badRequest"},
			{"unknown type", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"pager"}`, 400, "badRequest"},
			{"smsSignInState is read-only", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"mobile","smsSignInState":"ready"}`, 400, "badRequest"},
		}},
		{"one phone per type", []step{
			{"first mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"mobile"}`, 201, ""},
			{"second mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 400, "badRequest"},
			{"office", "POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`, 201, ""},
			{"second office", "POST", phonesPath, `{"phoneNumber":"+1 2065555558","phoneType":"office"}`, 400, "badRequest"},
		}},
		{"mobile before alternateMobile", []step{
			{"alternate first", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"alternateMobile"}`, 400, "badRequest"},
			{"office needs no mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`, 201, ""},
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"alternate after mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"alternateMobile"}`, 201, ""},
		}},
		{"mobile cannot go while alternateMobile exists", []step{
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"alternate", "POST", phonesPath, `{"phoneNumber":"+1 2065555555","phoneType":"alternateMobile"}`, 201, ""},
			{"delete mobile", "DELETE", mobilePath, "", 400, "badRequest"},
			{"delete alternate", "DELETE", altPath, "", 204, ""},
			{"delete mobile now", "DELETE", mobilePath, "", 204, ""},
			{"gone", "GET", mobilePath, "", 404, "itemNotFound"},
		}},
		{"patch", []step{
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"new number", "PATCH", mobilePath, `{"phoneNumber":"+1 4255550100"}`, 204, ""},
			{"same type is fine", "PATCH", mobilePath, `{"phoneNumber":"+1 4255550101","phoneType":"mobile"}`, 204, ""},
			{"type change", "PATCH", mobilePath, `{"phoneType":"office"}`, 400, "badRequest"},
			{"bad number", "PATCH", mobilePath, `{"phoneNumber":"4255550100"}`, 400, "badRequest"},
			{"unknown phone", "PATCH", officePath, `{"phoneNumber":"+1 4255550100"}`, 404, "itemNotFound"},
			{"email id in phone collection", "GET", phonesPath + "/" + emailMethodID, "", 404, "itemNotFound"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.seedBasic()
			e.run(tt.steps)
		})
	}

	t.Run("shape and fixed ids", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		r := e.graph("POST", phonesPath, `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 2065555555","phoneType":"mobile","futureField":1}`)
		r.want(t, http.StatusCreated, "")
		if r.str("id") != mobilePhoneID || r.str("phoneNumber") != "+1 2065555555" || r.str("phoneType") != "mobile" {
			t.Fatalf("created phone: %s", r.raw)
		}
		if r.str("@odata.context") != e.srv.URL+"/v1.0/$metadata#users('"+userA+"')/authentication/phoneMethods/$entity" {
			t.Fatalf("context: %s", r.str("@odata.context"))
		}
		if _, err := time.Parse(time.RFC3339, r.str("createdDateTime")); err != nil || !strings.HasSuffix(r.str("createdDateTime"), "Z") {
			t.Fatalf("createdDateTime %q", r.str("createdDateTime"))
		}
		e.graph("POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"alternateMobile"}`).want(t, 201, "")
		e.graph("POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`).want(t, 201, "")
		ids := map[string]string{}
		for _, v := range e.graph("GET", phonesPath, "").values() {
			ids[v["phoneType"].(string)] = v["id"].(string)
			if v["@odata.type"] != "#microsoft.graph.phoneAuthenticationMethod" {
				t.Errorf("item without @odata.type: %v", v)
			}
		}
		want := map[string]string{"mobile": mobilePhoneID, "alternateMobile": altMobilePhoneID, "office": officePhoneID}
		for k, v := range want {
			if ids[k] != v {
				t.Errorf("%s id = %q, want %q", k, ids[k], v)
			}
		}
		// PATCH answers 204 without a body.
		p := e.graph("PATCH", mobilePath, `{"phoneNumber":"+1 4255550100"}`)
		if p.status != http.StatusNoContent || len(p.raw) != 0 {
			t.Fatalf("PATCH: %d %q", p.status, p.raw)
		}
		if got := e.graph("GET", mobilePath, "").str("phoneNumber"); got != "+1 4255550100" {
			t.Fatalf("number after PATCH = %q", got)
		}
	})
}

func TestSMSSignIn(t *testing.T) {
	state := func(e *env, path string) string {
		return e.graph("GET", path, "").str("smsSignInState")
	}
	t.Run("enabled tenant", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.run([]step{
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"office", "POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`, 201, ""},
		})
		if got := state(e, mobilePath); got != "ready" {
			t.Fatalf("new mobile under an SMS policy: %q, want ready", got)
		}
		if got := state(e, officePath); got != "notSupported" {
			t.Fatalf("office: %q, want notSupported", got)
		}
		e.run([]step{
			{"disable", "POST", mobilePath + "/disableSmsSignIn", "", 204, ""},
		})
		if got := state(e, mobilePath); got != "notEnabled" {
			t.Fatalf("after disable: %q", got)
		}
		e.run([]step{
			{"enable", "POST", mobilePath + "/enableSmsSignIn", "", 204, ""},
			{"enable again is idempotent", "POST", mobilePath + "/enableSmsSignIn", "", 204, ""},
			{"enable office", "POST", officePath + "/enableSmsSignIn", "", 400, "badRequest"},
			{"disable office", "POST", officePath + "/disableSmsSignIn", "", 400, "badRequest"},
			{"unknown phone", "POST", altPath + "/enableSmsSignIn", "", 404, "itemNotFound"},
			{"GET is not allowed", "GET", mobilePath + "/enableSmsSignIn", "", 405, "notSupported"},
		})
		if got := state(e, mobilePath); got != "ready" {
			t.Fatalf("after enable: %q", got)
		}
	})
	t.Run("policy off", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.SMSSignInDisabled = true })
		e.seedBasic()
		e.run([]step{
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"enable", "POST", mobilePath + "/enableSmsSignIn", "", 400, "badRequest"},
			{"disable is harmless", "POST", mobilePath + "/disableSmsSignIn", "", 204, ""},
		})
		if got := state(e, mobilePath); got != "notAllowedByPolicy" {
			t.Fatalf("state = %q, want notAllowedByPolicy", got)
		}
		r := e.graph("POST", mobilePath+"/enableSmsSignIn", "")
		if !strings.Contains(r.raw2(), msgSMSPolicy) {
			t.Fatalf("message: %s", r.raw)
		}
	})
	t.Run("number must be unique", func(t *testing.T) {
		e := newEnv(t)
		e.putUser(userB, "bob@contoso.com", `,"methods":[{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 2065555556","phoneType":"mobile","smsSignInState":"ready"}]`)
		e.seedBasic()
		e.run([]step{{"same mobile as bob", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""}})
		if got := state(e, mobilePath); got != "phoneNumberNotUnique" {
			t.Fatalf("state = %q, want phoneNumberNotUnique", got)
		}
		e.run([]step{{"enable", "POST", mobilePath + "/enableSmsSignIn", "", 400, "badRequest"}})
		// Bob gives the number up: now it can be enabled.
		e.graph("POST", "/users/"+userB+"/authentication/phoneMethods/"+mobilePhoneID+"/disableSmsSignIn", "").want(t, 204, "")
		e.run([]step{{"enable", "POST", mobilePath + "/enableSmsSignIn", "", 204, ""}})
		if got := state(e, mobilePath); got != "ready" {
			t.Fatalf("state = %q, want ready", got)
		}
	})
}

func (r response) raw2() string { return string(r.raw) }

func TestEmailRules(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.run([]step{
		{"invalid", "POST", emailsPath, `{"emailAddress":"not-an-email"}`, 400, "badRequest"},
		{"missing", "POST", emailsPath, `{}`, 400, "badRequest"},
		{"create", "POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`, 201, ""},
		{"second", "POST", emailsPath, `{"emailAddress":"kim2@fabrikam.com"}`, 400, "badRequest"},
		{"get", "GET", emailPath, "", 200, ""},
		{"patch", "PATCH", emailPath, `{"emailAddress":"kim3@fabrikam.com"}`, 204, ""},
		{"patch invalid", "PATCH", emailPath, `{"emailAddress":"x"}`, 400, "badRequest"},
		{"wrong id", "GET", emailsPath + "/" + mobilePhoneID, "", 404, "itemNotFound"},
	})
	r := e.graph("GET", emailPath, "")
	if r.str("id") != emailMethodID || r.str("emailAddress") != "kim3@fabrikam.com" {
		t.Fatalf("email: %s", r.raw)
	}
	e.run([]step{
		{"delete", "DELETE", emailPath, "", 204, ""},
		{"gone", "GET", emailPath, "", 404, "itemNotFound"},
		{"recreate", "POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`, 201, ""},
	})
}

func TestTemporaryAccessPass(t *testing.T) {
	t.Run("value only in the POST answer; a new pass replaces the old", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		r1 := e.graph("POST", tapsPath, `{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","lifetimeInMinutes":60}`)
		r1.want(t, http.StatusCreated, "")
		pass1 := r1.str("temporaryAccessPass")
		if len(pass1) != 8 {
			t.Fatalf("TAP value %q: want 8 characters", pass1)
		}
		if r1.body["isUsable"] != true || r1.str("methodUsabilityReason") != "EnabledByPolicy" || r1.body["isUsableOnce"] != false {
			t.Fatalf("new TAP: %s", r1.raw)
		}
		id1 := r1.str("id")
		g := e.graph("GET", tapsPath+"/"+id1, "")
		if v, ok := g.body["temporaryAccessPass"]; !ok || v != nil {
			t.Fatalf("GET must carry temporaryAccessPass null: %s", g.raw)
		}
		for _, path := range []string{tapsPath, "/users/{u}/authentication/methods"} {
			if strings.Contains(e.graph("GET", path, "").raw2(), pass1) {
				t.Fatalf("%s leaks the TAP value", path)
			}
		}
		u, _ := e.srv.User(userA)
		if b, _ := json.Marshal(u); strings.Contains(string(b), pass1) {
			t.Fatal("admin shape leaks the TAP value")
		}
		r2 := e.graph("POST", tapsPath, `{}`)
		r2.want(t, http.StatusCreated, "")
		if r2.str("id") == id1 || r2.str("temporaryAccessPass") == "" {
			t.Fatalf("replacement: %s", r2.raw)
		}
		list := e.graph("GET", tapsPath, "").values()
		if len(list) != 1 || list[0]["id"] != r2.str("id") {
			t.Fatalf("after replacement: %v", list)
		}
		e.graph("GET", tapsPath+"/"+id1, "").want(t, 404, "itemNotFound")
		e.graph("DELETE", tapsPath+"/"+r2.str("id"), "").want(t, 204, "")
		if len(e.graph("GET", tapsPath, "").values()) != 0 {
			t.Fatal("TAP not deleted")
		}
	})
	t.Run("lifetime bounds", func(t *testing.T) {
		tests := []struct {
			name     string
			policy   TAPPolicy
			lifetime int
			status   int
		}{
			{"default policy min", TAPPolicy{}, 60, 201},
			{"default policy max", TAPPolicy{}, 480, 201},
			{"below policy", TAPPolicy{}, 59, 400},
			{"above policy", TAPPolicy{}, 481, 400},
			{"wide policy, API min", TAPPolicy{MinLifetime: 10, MaxLifetime: 43200}, 10, 201},
			{"wide policy, API max", TAPPolicy{MinLifetime: 10, MaxLifetime: 43200}, 43200, 201},
			{"wide policy, below API", TAPPolicy{MinLifetime: 10, MaxLifetime: 43200}, 9, 400},
			{"wide policy, above API", TAPPolicy{MinLifetime: 10, MaxLifetime: 43200}, 43201, 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t, func(o *Options) { o.TAPPolicy = tt.policy })
				e.seedBasic()
				r := e.graph("POST", tapsPath, `{"lifetimeInMinutes":`+itoa(tt.lifetime)+`}`)
				code := ""
				if tt.status == 400 {
					code = "badRequest"
				}
				r.want(t, tt.status, code)
			})
		}
	})
	t.Run("policy defaults and one-time use", func(t *testing.T) {
		e := newEnv(t, func(o *Options) {
			o.TAPPolicy = TAPPolicy{DefaultLifetime: 120, DefaultLength: 12, UsableOnceOnly: true}
		})
		e.seedBasic()
		r := e.graph("POST", tapsPath, `{"isUsableOnce":false}`)
		r.want(t, 201, "")
		if r.body["lifetimeInMinutes"] != float64(120) || r.body["isUsableOnce"] != true || len(r.str("temporaryAccessPass")) != 12 {
			t.Fatalf("policy not applied: %s", r.raw)
		}
		// Multi-use is honoured when the policy allows it.
		if err := e.srv.SetConfig(Config{}); err != nil {
			t.Fatal(err)
		}
		r = e.graph("POST", tapsPath, `{"isUsableOnce":true}`)
		if r.body["isUsableOnce"] != true || r.body["lifetimeInMinutes"] != float64(60) {
			t.Fatalf("after policy reset: %s", r.raw)
		}
	})
	t.Run("usability follows the clock", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		start := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
		r := e.graph("POST", tapsPath, `{"startDateTime":"`+start+`","lifetimeInMinutes":60}`)
		r.want(t, 201, "")
		if r.body["isUsable"] != false || r.str("methodUsabilityReason") != "NotYetValid" || r.str("startDateTime") != start {
			t.Fatalf("future TAP: %s", r.raw)
		}
		path := tapsPath + "/" + r.str("id")
		e.clock.Advance(90 * time.Minute)
		if g := e.graph("GET", path, ""); g.body["isUsable"] != true || g.str("methodUsabilityReason") != "EnabledByPolicy" {
			t.Fatalf("TAP in its window: %s", g.raw)
		}
		e.clock.Advance(30 * time.Minute)
		if g := e.graph("GET", path, ""); g.body["isUsable"] != false || g.str("methodUsabilityReason") != "Expired" {
			t.Fatalf("expired TAP: %s", g.raw)
		}
		e.graph("POST", tapsPath, `{"startDateTime":"tomorrow"}`).want(t, 400, "badRequest")
	})
	t.Run("guests get no TAP", func(t *testing.T) {
		e := newEnv(t)
		e.putUser(userG, "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com", `,"userType":"Guest"`)
		r := e.graph("POST", "/users/"+userG+"/authentication/temporaryAccessPassMethods", `{}`)
		r.want(t, 400, "badRequest")
		if !strings.Contains(r.raw2(), msgGuestTAP) {
			t.Fatalf("message: %s", r.raw)
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestDefaultMethodRule(t *testing.T) {
	t.Run("first MFA method becomes default and is deleted last", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.run([]step{
			{"email is not MFA", "POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`, 201, ""},
			{"mobile becomes default", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"office", "POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`, 201, ""},
		})
		if u, _ := e.srv.User(userA); u.DefaultMethodID != mobilePhoneID {
			t.Fatalf("default = %q, want the mobile phone", u.DefaultMethodID)
		}
		r := e.graph("DELETE", mobilePath, "")
		r.want(t, 400, "badRequest")
		if got := r.body["error"].(map[string]any)["message"]; got != msgDefaultMethod {
			t.Fatalf("message = %q", got)
		}
		e.run([]step{
			{"office goes", "DELETE", officePath, "", 204, ""},
			{"default still blocked by email", "DELETE", mobilePath, "", 400, "badRequest"},
			{"email goes", "DELETE", emailPath, "", 204, ""},
			{"default goes last (password stays)", "DELETE", mobilePath, "", 204, ""},
		})
		u, _ := e.srv.User(userA)
		if u.DefaultMethodID != "" || len(u.Methods) != 1 {
			t.Fatalf("after deleting everything: default %q, %d methods", u.DefaultMethodID, len(u.Methods))
		}
		e.run([]step{{"office is the next default", "POST", phonesPath, `{"phoneNumber":"+1 2065555557","phoneType":"office"}`, 201, ""}})
		if u, _ := e.srv.User(userA); u.DefaultMethodID != officePhoneID {
			t.Fatalf("default = %q, want office", u.DefaultMethodID)
		}
	})
	t.Run("seeded default", func(t *testing.T) {
		e := newEnv(t)
		e.putUser(userA, "kim@contoso.com", `,"defaultMethodId":"oath-1","methods":[
			{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 2065555556","phoneType":"mobile"},
			{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"oath-1"},
			{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"fido-1","displayName":"key"}]`)
		e.run([]step{
			{"oath is default", "DELETE", "/users/{u}/authentication/softwareOathMethods/oath-1", "", 400, "badRequest"},
			{"mobile is not", "DELETE", mobilePath, "", 204, ""},
			{"fido", "DELETE", "/users/{u}/authentication/fido2Methods/fido-1", "", 204, ""},
			{"oath last", "DELETE", "/users/{u}/authentication/softwareOathMethods/oath-1", "", 204, ""},
		})
	})
}

func TestResetPassword(t *testing.T) {
	resetPath := "/users/{u}/authentication/methods/" + passwordMethodID + "/resetPassword"
	t.Run("generated password", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		r := e.graph("POST", resetPath, "")
		r.want(t, http.StatusAccepted, "")
		pw := r.str("newPassword")
		if !validPassword(pw) || r.str("@odata.context") != e.srv.URL+"/v1.0/$metadata#microsoft.graph.passwordResetResponse" {
			t.Fatalf("reset body: %s", r.raw)
		}
		loc, err := url.Parse(r.header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		prefix := e.srv.URL + "/v1.0/users/" + userA + "/authentication/operations/"
		if !strings.HasPrefix(loc.String(), prefix) || loc.Query().Get("aadgdc") != "DUB02P" || loc.Query().Get("aadgsu") != "ssprprod-a" {
			t.Fatalf("Location = %s", loc)
		}
		u, _ := e.srv.User(userA)
		if u.PasswordChanges != 1 || !u.ForceChangePasswordNextSignIn {
			t.Fatalf("user after reset: %+v", u)
		}
		if b, _ := json.Marshal(u); strings.Contains(string(b), pw) {
			t.Fatal("admin shape leaks the password")
		}
		// Poll the exact Location, as the SDK does with WithUrl.
		poll := func() response {
			req, _ := http.NewRequest("GET", loc.String(), nil)
			req.Header.Set("Authorization", "Bearer "+e.srv.Token)
			return e.send(req, true)
		}
		p1 := poll()
		p1.want(t, http.StatusOK, "")
		if p1.str("status") != "running" || p1.body["statusDetail"] != nil {
			t.Fatalf("first poll: %s", p1.raw)
		}
		p2 := poll()
		if p2.str("status") != "succeeded" || p2.str("statusDetail") != "ResetSuccess" ||
			p2.str("resourceLocation") != e.srv.URL+"/v1.0/users/"+userA+"/authentication/methods/"+passwordMethodID {
			t.Fatalf("second poll: %s", p2.raw)
		}
		if p3 := poll(); p3.str("status") != "succeeded" {
			t.Fatalf("succeeded must be terminal: %s", p3.raw)
		}
		e.graph("GET", "/users/{u}/authentication/operations/"+newGUID(), "").want(t, 404, "itemNotFound")
	})
	t.Run("caller password", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		r := e.graph("POST", resetPath, `{"newPassword":"Correct-Horse-7"}`)
		r.want(t, http.StatusAccepted, "")
		if len(r.raw) != 0 || r.header.Get("Location") == "" {
			t.Fatalf("caller password: body %q, Location %q", r.raw, r.header.Get("Location"))
		}
		e.run([]step{
			{"weak", "POST", resetPath, `{"newPassword":"password"}`, 400, "badRequest"},
			{"wrong type", "POST", resetPath, `{"newPassword":123}`, 400, "badRequest"},
			{"alias path", "POST", "/users/{u}/authentication/passwordMethods/" + passwordMethodID + "/resetPassword", `{"newPassword":"Correct-Horse-8"}`, 202, ""},
			{"unknown method", "POST", "/users/{u}/authentication/methods/" + newGUID() + "/resetPassword", "", 404, "itemNotFound"},
			{"unknown user", "POST", "/users/" + userB + "/authentication/methods/" + passwordMethodID + "/resetPassword", "", 404, "Request_ResourceNotFound"},
		})
		if u, _ := e.srv.User(userA); u.PasswordChanges != 2 {
			t.Fatalf("passwordChanges = %d, want 2", u.PasswordChanges)
		}
	})
	t.Run("not on another method", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.run([]step{
			{"mobile", "POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`, 201, ""},
			{"reset on phone", "POST", "/users/{u}/authentication/methods/" + mobilePhoneID + "/resetPassword", "", 400, "badRequest"},
		})
	})
	t.Run("app-only callers are refused", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.AppOnly = true })
		e.seedBasic()
		e.graph("POST", resetPath, "").want(t, http.StatusForbidden, "accessDenied")
		if u, _ := e.srv.User(userA); u.PasswordChanges != 0 {
			t.Fatal("a refused reset changed the password")
		}
	})
}

// TestMFARequired: with the rule on, every credential-management write
// answers 403 with a claims challenge for multifactor authentication and
// changes nothing; reads and user writes outside /authentication/ go on.
func TestMFARequired(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MFARequired = true })
	e.putUser(userA, "kim@contoso.com", `,"methods":[{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"kim@fabrikam.com"}]`)
	for _, s := range []struct{ method, path, body string }{
		{"POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`},
		{"PATCH", emailPath, `{"emailAddress":"kim2@fabrikam.com"}`},
		{"DELETE", emailPath, ""},
		{"POST", tapsPath, `{}`},
		{"POST", "/users/{u}/authentication/methods/" + passwordMethodID + "/resetPassword", ""},
	} {
		r := e.graph(s.method, s.path, s.body)
		r.want(t, http.StatusForbidden, "accessDenied")
		h := r.header.Get("WWW-Authenticate")
		_, b64, ok := strings.Cut(h, `claims="`)
		b64, _, _ = strings.Cut(b64, `"`)
		claims, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || string(claims) != `{"access_token":{"amr":{"essential":true,"values":["ngcmfa"]}}}` ||
			!strings.HasPrefix(h, "Bearer ") || !strings.Contains(h, `error="insufficient_claims"`) {
			t.Fatalf("%s %s: WWW-Authenticate %q (claims %q, %v)", s.method, s.path, h, claims, err)
		}
		if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "ngcmfa") {
			t.Fatalf("message %q", msg)
		}
	}
	if u, _ := e.srv.User(userA); len(u.Methods) != 2 || u.PasswordChanges != 0 {
		t.Fatalf("a refused write changed the user: %+v", u)
	}
	e.graph("GET", "/users/{u}/authentication/methods", "").want(t, 200, "")
	e.graph("PATCH", "/users/{u}", `{"accountEnabled":false}`).want(t, 204, "")
	// The rule is run-time configuration.
	if r := e.admin("PUT", "/config", `{"mfaRequired":false}`); r.status != 200 || r.body["mfaRequired"] != false {
		t.Fatalf("PUT config: %d %s", r.status, r.raw)
	}
	e.graph("POST", phonesPath, `{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`).want(t, 201, "")
}

// allKinds seeds one method of every type on userA.
const allKinds = `,"methods":[
	{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"kim@fabrikam.com"},
	{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"fido-1","displayName":"YubiKey","aaGuid":"cb69481e-8ff7-4039-93ec-0a2729a154a8","model":"YubiKey 5","attestationLevel":"attested","attestationCertificates":["abc"]},
	{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"auth-1","displayName":"Kim's iPhone","deviceTag":"","phoneAppVersion":"6.5.4","device":{"id":"dev-1","displayName":"iPhone"}},
	{"@odata.type":"#microsoft.graph.passwordAuthenticationMethod"},
	{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 2065555556","phoneType":"mobile"},
	{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"oath-1"},
	{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","id":"tap-1","lifetimeInMinutes":60},
	{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","id":"whfb-1","displayName":"PC","keyStrength":"normal"},
	{"@odata.type":"#microsoft.graph.platformCredentialAuthenticationMethod","id":"plat-1","displayName":"Mac","keyStrength":"normal","platform":"macOS"},
	{"@odata.type":"#microsoft.graph.externalAuthenticationMethod","id":"ext-1","configurationId":"26310fee-0000-0000-0000-000000000000","displayName":"Adatum"},
	{"@odata.type":"#microsoft.graph.qrCodePinAuthenticationMethod","id":"qr-1"}]`

func TestAllMethodTypes(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", allKinds)
	r := e.graph("GET", "/users/{u}/authentication/methods", "")
	r.want(t, 200, "")
	types := map[string]map[string]any{}
	for _, v := range r.values() {
		types[v["@odata.type"].(string)] = v
	}
	for k := range numKinds {
		info := k.info()
		m, ok := types[info.odataType]
		if !ok {
			t.Errorf("/methods lacks %s", info.odataType)
			continue
		}
		if k == kindQRCodePin {
			// A single-valued navigation: no collection, no id in the path.
			if g := e.graph("GET", "/users/{u}/authentication/qrCodePinMethod", ""); g.str("id") != m["id"] {
				t.Errorf("qrCodePinMethod: %s", g.raw)
			}
			continue
		}
		// The typed collection lists it too, and a single GET finds it by id.
		list := e.graph("GET", "/users/{u}/authentication/"+info.collection, "").values()
		if len(list) != 1 || list[0]["id"] != m["id"] {
			t.Errorf("%s: %v", info.collection, list)
		}
		id := m["id"].(string)
		e.graph("GET", "/users/{u}/authentication/"+info.collection+"/"+id, "").want(t, 200, "")
		if g := e.graph("GET", "/users/{u}/authentication/methods/"+id, ""); g.str("@odata.type") != info.odataType {
			t.Errorf("/methods/%s: %s", id, g.raw)
		}
	}
	if v := types["#microsoft.graph.passwordAuthenticationMethod"]; v["id"] != passwordMethodID || v["password"] != nil {
		t.Errorf("password: %v", v)
	}
	if v, ok := types["#microsoft.graph.softwareOathAuthenticationMethod"]["secretKey"]; !ok || v != nil {
		t.Errorf("secretKey must be null")
	}
	if v := types["#microsoft.graph.fido2AuthenticationMethod"]; v["model"] != "YubiKey 5" || v["attestationLevel"] != "attested" {
		t.Errorf("fido2: %v", v)
	}
	if v := types["#microsoft.graph.platformCredentialAuthenticationMethod"]; v["platform"] != "macOS" {
		t.Errorf("platform: %v", v)
	}

	// Device navigation and $expand=device.
	dev := e.graph("GET", "/users/{u}/authentication/microsoftAuthenticatorMethods/auth-1/device", "")
	dev.want(t, 200, "")
	if dev.str("id") != "dev-1" {
		t.Errorf("device: %s", dev.raw)
	}
	exp := e.graph("GET", "/users/{u}/authentication/microsoftAuthenticatorMethods/auth-1?$expand=device", "")
	if d, _ := exp.body["device"].(map[string]any); d["displayName"] != "iPhone" {
		t.Errorf("$expand=device: %s", exp.raw)
	}
	if plain := e.graph("GET", "/users/{u}/authentication/microsoftAuthenticatorMethods/auth-1", ""); plain.body["device"] != nil {
		t.Errorf("device without $expand: %s", plain.raw)
	}
	e.graph("GET", "/users/{u}/authentication/windowsHelloForBusinessMethods/whfb-1/device", "").want(t, 404, "itemNotFound")

	// Deletes of the read/delete-only types, default last.
	e.run([]step{
		{"fido2", "DELETE", "/users/{u}/authentication/fido2Methods/fido-1", "", 400, "badRequest"}, // default: first MFA method seeded
		{"authenticator", "DELETE", "/users/{u}/authentication/microsoftAuthenticatorMethods/auth-1", "", 204, ""},
		{"oath", "DELETE", "/users/{u}/authentication/softwareOathMethods/oath-1", "", 204, ""},
		{"whfb", "DELETE", "/users/{u}/authentication/windowsHelloForBusinessMethods/whfb-1", "", 204, ""},
		{"platform", "DELETE", "/users/{u}/authentication/platformCredentialMethods/plat-1", "", 204, ""},
		{"external via $ref", "DELETE", "/users/{u}/authentication/externalAuthenticationMethods/ext-1/$ref", "", 204, ""},
		{"external gone", "DELETE", "/users/{u}/authentication/externalAuthenticationMethods/ext-1", "", 404, "itemNotFound"},
		{"tap", "DELETE", "/users/{u}/authentication/temporaryAccessPassMethods/tap-1", "", 204, ""},
		{"email", "DELETE", emailPath, "", 204, ""},
		{"mobile", "DELETE", mobilePath, "", 204, ""},
		{"qr code pin", "DELETE", qrPath, "", 204, ""},
		{"fido2 last", "DELETE", "/users/{u}/authentication/fido2Methods/fido-1", "", 204, ""},
		{"password stays", "GET", "/users/{u}/authentication/passwordMethods/" + passwordMethodID, "", 200, ""},
	})
	if n := len(e.graph("GET", "/users/{u}/authentication/methods", "").values()); n != 1 {
		t.Fatalf("%d methods left, want the password only", n)
	}
}

func TestExternalMethods(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	const path = "/users/{u}/authentication/externalAuthenticationMethods"
	r := e.graph("POST", path, `{"@odata.type":"#microsoft.graph.externalAuthenticationMethod","configurationId":"cfg-1","displayName":"Adatum"}`)
	r.want(t, 201, "")
	if r.str("configurationId") != "cfg-1" || r.str("displayName") != "Adatum" || !isGUID(r.str("id")) {
		t.Fatalf("external: %s", r.raw)
	}
	e.run([]step{
		{"duplicate configuration", "POST", path, `{"configurationId":"cfg-1","displayName":"Again"}`, 400, "badRequest"},
		{"missing configurationId", "POST", path, `{"displayName":"X"}`, 400, "badRequest"},
		{"missing displayName", "POST", path, `{"configurationId":"cfg-2"}`, 400, "badRequest"},
		{"delete without $ref", "DELETE", path + "/" + r.str("id"), "", 204, ""},
	})
}

package graphclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// TestTenantPages reads every user and the registration report of the
// emulator page by page.
func TestTenantPages(t *testing.T) {
	srv := graphclienttest.NewServer(t)
	c := newTestClient(t, srv.GraphURL, func(cfg *Config) { cfg.Token = srv.Token })
	off := false
	for i := range 250 {
		u := graphclienttest.User{ID: fmt.Sprintf("0A1B2C3D-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("u%03d@contoso.com", i)}
		if i%50 == 0 {
			u.AccountEnabled = &off
			u.Methods = []json.RawMessage{json.RawMessage(`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"x@home.example"}`)}
		}
		if i == 1 {
			u.Methods = []json.RawMessage{json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`)}
		}
		put(t, srv, u)
	}
	var users []User
	for next, page := "", 0; page == 0 || next != ""; page++ {
		us, link, err := c.UsersPage(testCtx(t), next)
		if err != nil {
			t.Fatal(err)
		}
		users, next = append(users, us...), link
	}
	if len(users) != 250 || users[0].ID != "0a1b2c3d-0000-4000-8000-000000000000" || users[0].AccountEnabled || !users[1].AccountEnabled ||
		users[1].UserPrincipalName != "u001@contoso.com" {
		t.Fatalf("%d users, first %+v %+v", len(users), users[0], users[1])
	}
	var details []RegistrationDetails
	pages := 0
	for next := ""; pages == 0 || next != ""; pages++ {
		ds, link, err := c.RegistrationDetailsPage(testCtx(t), next)
		if err != nil {
			t.Fatal(err)
		}
		details, next = append(details, ds...), link
	}
	// 245 enabled users in pages of 100.
	if len(details) != 245 || pages != 3 {
		t.Fatalf("%d entries in %d pages", len(details), pages)
	}
	i := slices.IndexFunc(details, func(d RegistrationDetails) bool { return d.UserPrincipalName == "u001@contoso.com" })
	if i < 0 || !slices.Equal(details[i].MethodsRegistered, []string{"mobilePhone"}) || !details[i].IsMFARegistered || details[i].LastUpdated.IsZero() {
		t.Fatalf("entry %+v", details)
	}
	// $select keeps the request small.
	for _, r := range srv.Requests() {
		if r.Route == "/v1.0/reports/authenticationMethods/userRegistrationDetails" && r.Status != 200 {
			t.Errorf("request %+v", r)
		}
	}
}

// TestPagesRefuseForeignLinks: a nextLink outside the base URL is refused
// before the token goes there; a body without value is no page.
func TestPagesRefuseForeignLinks(t *testing.T) {
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL+"/v1.0")
	f.setHandler(reply(200, `{"value":[],"@odata.nextLink":"https://evil.example/v1.0/users?$skiptoken=x"}`))
	if _, _, err := c.UsersPage(testCtx(t), ""); err == nil || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("UsersPage: %v", err)
	}
	f.setHandler(reply(200, `{"value":[{"id":"not-a-guid","methodsRegistered":[]}]}`))
	if _, _, err := c.RegistrationDetailsPage(testCtx(t), ""); err == nil || !errors.Is(err, ErrPermanent) {
		t.Fatalf("RegistrationDetailsPage: %v", err)
	}
	f.setHandler(reply(403, `{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"no licence"}}`))
	if _, _, err := c.RegistrationDetailsPage(testCtx(t), ""); !errors.Is(err, ErrPermission) {
		t.Fatalf("403: %v", err)
	}
	reqs := f.requests()
	if q := reqs[len(reqs)-1].RawQuery; !strings.Contains(q, "$select=id,userPrincipalName,methodsRegistered") {
		t.Errorf("query %q", q)
	}
	if reqs[0].Method != http.MethodGet || !strings.Contains(reqs[0].RawQuery, "$top=999") {
		t.Errorf("users request %+v", reqs[0])
	}
}

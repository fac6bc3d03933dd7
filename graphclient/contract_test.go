package graphclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// The contract suite drives every Client operation through msgraph-sdk-go
// over HTTP against the Graph emulator and checks both the result and the
// emulator's state afterwards.

const (
	kimID   = "0a1b2c3d-0000-4000-8000-00000000000a"
	guestID = "0a1b2c3d-0000-4000-8000-00000000000b"
	adminID = "0a1b2c3d-0000-4000-8000-00000000000c"
	nobody  = "0a1b2c3d-0000-4000-8000-0000000000ff"
)

func contract(t *testing.T, opts ...func(*graphclienttest.Options)) (*graphclienttest.Server, *Client) {
	t.Helper()
	srv := graphclienttest.NewServer(t, opts...)
	c := newTestClient(t, srv.GraphURL, func(cfg *Config) { cfg.Token = srv.Token })
	c.pollInterval, c.pollMaxWait = 10*time.Millisecond, 50*time.Millisecond
	put(t, srv, graphclienttest.User{ID: kimID, UserPrincipalName: "Kim.OBrien@contoso.com"})
	put(t, srv, graphclienttest.User{ID: guestID, UserPrincipalName: "o'hara_fabrikam.com#EXT#@contoso.onmicrosoft.com", UserType: "Guest"})
	put(t, srv, graphclienttest.User{ID: adminID, UserPrincipalName: "admin@contoso.com",
		DirectoryRoles: []string{"Global Administrator", "Authentication Administrator"}})
	return srv, c
}

func put(t *testing.T, srv *graphclienttest.Server, u graphclienttest.User) {
	t.Helper()
	if err := srv.PutUser(u); err != nil {
		t.Fatalf("PutUser: %v", err)
	}
}

// state returns the emulator's view of a user's methods, by @odata.type
// suffix and id, as decoded JSON objects.
func state(t *testing.T, srv *graphclienttest.Server, id string) (graphclienttest.User, []map[string]any) {
	t.Helper()
	u, ok := srv.User(id)
	if !ok {
		t.Fatalf("user %s is gone", id)
	}
	var ms []map[string]any
	for _, raw := range u.Methods {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("method JSON %s: %v", raw, err)
		}
		ms = append(ms, m)
	}
	return u, ms
}

func hasMethod(ms []map[string]any, odataType, id string) bool {
	for _, m := range ms {
		if m["@odata.type"] == odataType && (id == "" || m["id"] == id) {
			return true
		}
	}
	return false
}

func mustKind(t *testing.T, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestContractResolveUser(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	tests := []struct {
		ref    string
		wantID string
		want   error
	}{
		{kimID, kimID, nil},
		{strings.ToUpper(kimID), kimID, nil},
		{"Kim.OBrien@contoso.com", kimID, nil},
		{"kim.obrien@CONTOSO.com", kimID, nil},
		{"o'hara_fabrikam.com#EXT#@contoso.onmicrosoft.com", guestID, nil},
		{nobody, "", ErrUserNotFound},
		{"nobody@contoso.com", "", ErrUserNotFound},
		{"o'hara_fabrikam.com#EXT#@contoso.onmicrosoft.com' or 'a'eq'a", "", ErrInvalidInput},
	}
	for _, tc := range tests {
		u, err := c.ResolveUser(ctx, tc.ref)
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("ResolveUser(%q) err = %v, want %v", tc.ref, err, tc.want)
			}
			continue
		}
		if err != nil || u.ID != tc.wantID {
			t.Errorf("ResolveUser(%q) = %+v, %v; want id %s", tc.ref, u, err, tc.wantID)
		}
	}
	g, err := c.ResolveUser(ctx, guestID)
	if err != nil || g.UserType != "Guest" || !g.AccountEnabled || g.UserPrincipalName != "o'hara_fabrikam.com#EXT#@contoso.onmicrosoft.com" {
		t.Errorf("guest = %+v, %v", g, err)
	}
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, "@") || strings.Contains(strings.ToLower(r.Path), "contoso") {
			t.Errorf("a UPN went into a path: %s %s", r.Method, r.Path)
		}
	}
}

func TestContractPhones(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)

	_, err := c.AddPhone(ctx, kimID, PhoneAlternateMobile, "+1 4255550101")
	mustKind(t, err, ErrConflict) // mobile first

	m, err := c.AddPhone(ctx, kimID, PhoneMobile, "+1 4255550100")
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindPhone || m.ID != MobilePhoneID || m.PhoneType != PhoneMobile || m.PhoneNumber != "+1 4255550100" {
		t.Errorf("added %+v", m)
	}
	alt, err := c.AddPhone(ctx, kimID, PhoneAlternateMobile, "+44 7700900123")
	if err != nil || alt.ID != AlternateMobilePhoneID {
		t.Fatalf("alternate = %+v, %v", alt, err)
	}
	_, err = c.AddPhone(ctx, kimID, PhoneMobile, "+1 4255550199")
	mustKind(t, err, ErrConflict) // one per type

	if err := c.UpdatePhone(ctx, kimID, MobilePhoneID, "+1 4255550111x42"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableSMSSignIn(ctx, kimID, MobilePhoneID); err != nil {
		t.Fatal(err)
	}
	mustKind(t, c.EnableSMSSignIn(ctx, kimID, AlternateMobilePhoneID), ErrConflict) // mobile only

	ms, err := c.Methods(ctx, kimID)
	if err != nil {
		t.Fatal(err)
	}
	var mobile Method
	for _, x := range ms {
		if x.Kind == KindPhone && x.PhoneType == PhoneMobile {
			mobile = x
		}
	}
	if mobile.PhoneNumber != "+1 4255550111x42" || mobile.SMSSignInState != "ready" {
		t.Errorf("mobile after update + enable: %+v", mobile)
	}
	if err := c.DisableSMSSignIn(ctx, kimID, MobilePhoneID); err != nil {
		t.Fatal(err)
	}
	_, st := state(t, srv, kimID)
	for _, x := range st {
		if x["id"] == MobilePhoneID && (x["smsSignInState"] == "ready" || x["phoneNumber"] != "+1 4255550111x42") {
			t.Errorf("emulator mobile after disable: %v", x)
		}
	}

	mustKind(t, c.DeletePhone(ctx, kimID, MobilePhoneID), ErrConflict) // alternate still there
	if err := c.DeletePhone(ctx, kimID, AlternateMobilePhoneID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePhone(ctx, kimID, MobilePhoneID); err != nil {
		t.Fatal(err)
	}
	_, st = state(t, srv, kimID)
	if hasMethod(st, "#microsoft.graph.phoneAuthenticationMethod", "") {
		t.Errorf("phones remain: %v", st)
	}
	mustKind(t, c.DeletePhone(ctx, kimID, MobilePhoneID), ErrMethodNotFound)
	_, err = c.AddPhone(ctx, nobody, PhoneMobile, "+1 4255550100")
	mustKind(t, err, ErrUserNotFound)
}

func TestContractEmail(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	m, err := c.AddEmail(ctx, kimID, "kim@fabrikam.com")
	if err != nil || m.ID != EmailMethodID || m.Kind != KindEmail || m.EmailAddress != "kim@fabrikam.com" {
		t.Fatalf("AddEmail = %+v, %v", m, err)
	}
	_, err = c.AddEmail(ctx, kimID, "other@fabrikam.com")
	mustKind(t, err, ErrConflict)
	if err := c.UpdateEmail(ctx, kimID, EmailMethodID, "kim2@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	_, st := state(t, srv, kimID)
	if !hasMethod(st, "#microsoft.graph.emailAuthenticationMethod", EmailMethodID) || !strings.Contains(fmt.Sprint(st), "kim2@fabrikam.com") {
		t.Errorf("emulator after update: %v", st)
	}
	if err := c.DeleteEmail(ctx, kimID, EmailMethodID); err != nil {
		t.Fatal(err)
	}
	_, st = state(t, srv, kimID)
	if hasMethod(st, "#microsoft.graph.emailAuthenticationMethod", "") {
		t.Errorf("email remains: %v", st)
	}
	mustKind(t, c.UpdateEmail(ctx, kimID, EmailMethodID, "x@fabrikam.com"), ErrMethodNotFound)
}

func TestContractTAP(t *testing.T) {
	t.Parallel()
	srv, c := contract(t, func(o *graphclienttest.Options) { o.TAPPolicy.MaxLifetime = 480 })
	ctx := testCtx(t)

	tap, err := c.CreateTAP(ctx, kimID, TAPRequest{LifetimeMinutes: 60, UsableOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	if tap.Value == "" || tap.Method.Kind != KindTAP || tap.Method.ID == "" || tap.Method.TAPLifetimeMinutes != 60 ||
		!tap.Method.TAPUsableOnce || !tap.Method.TAPUsable || tap.Method.TAPStart.IsZero() {
		t.Fatalf("CreateTAP = %+v (value set: %v)", tap.Method, tap.Value != "")
	}
	u, st := state(t, srv, kimID)
	if !hasMethod(st, "#microsoft.graph.temporaryAccessPassAuthenticationMethod", tap.Method.ID) {
		t.Errorf("emulator has no TAP %s: %v", tap.Method.ID, st)
	}
	if raw, _ := json.Marshal(u); strings.Contains(string(raw), tap.Value) {
		t.Error("the emulator's state shows the TAP value")
	}
	ms, err := c.Methods(ctx, kimID)
	if err != nil {
		t.Fatal(err)
	}
	if raw := fmt.Sprintf("%+v", ms); strings.Contains(raw, tap.Value) {
		t.Error("Methods returned the TAP value")
	}

	start := time.Now().Add(2 * time.Hour).Truncate(time.Second).UTC()
	tap2, err := c.CreateTAP(ctx, kimID, TAPRequest{Start: start, LifetimeMinutes: 120})
	if err != nil {
		t.Fatal(err)
	}
	if tap2.Method.ID == tap.Method.ID || tap2.Value == tap.Value || !tap2.Method.TAPStart.Equal(start) ||
		tap2.Method.TAPUsable || tap2.Method.TAPUsabilityReason != "NotYetValid" {
		t.Errorf("second TAP %+v", tap2.Method)
	}
	_, st = state(t, srv, kimID)
	if hasMethod(st, "#microsoft.graph.temporaryAccessPassAuthenticationMethod", tap.Method.ID) ||
		!hasMethod(st, "#microsoft.graph.temporaryAccessPassAuthenticationMethod", tap2.Method.ID) {
		t.Errorf("the second TAP did not replace the first: %v", st)
	}

	_, err = c.CreateTAP(ctx, kimID, TAPRequest{LifetimeMinutes: 1000}) // beyond the tenant policy
	mustKind(t, err, ErrConflict)
	_, err = c.CreateTAP(ctx, guestID, TAPRequest{})
	mustKind(t, err, ErrConflict)

	if err := c.DeleteTAP(ctx, kimID, tap2.Method.ID); err != nil {
		t.Fatal(err)
	}
	_, st = state(t, srv, kimID)
	if hasMethod(st, "#microsoft.graph.temporaryAccessPassAuthenticationMethod", "") {
		t.Errorf("TAP remains: %v", st)
	}
	mustKind(t, c.DeleteTAP(ctx, kimID, tap2.Method.ID), ErrMethodNotFound)
}

// TestContractEveryKind lists a user with one method of each v1.0 type and
// deletes them all through DeleteMethod, the default one last.
func TestContractEveryKind(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	seed := []string{
		`{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"fido-1","displayName":"YubiKey","model":"YubiKey 5 NFC","aaGuid":"cb69481e-8ff7-4039-93ec-0a2729a154a8","createdDateTime":"2024-05-06T07:08:09Z"}`,
		`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`,
		`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"kim@fabrikam.com"}`,
		`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"-2_GRUg2-HYz6_1YG4YRAQ2","displayName":"Kim's iPhone","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.5.4"}`,
		`{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","id":"_jpuR-TGZtk6aQCLF3BQjA2","displayName":"KIM-PC","keyStrength":"normal"}`,
		`{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"b172893e-893e-b172-3e89-72b13e8972b1"}`,
		`{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","id":"tap-1","lifetimeInMinutes":60}`,
		`{"@odata.type":"#microsoft.graph.platformCredentialAuthenticationMethod","id":"plat-1","displayName":"Kim's Mac","keyStrength":"normal","platform":"macOS"}`,
		`{"@odata.type":"#microsoft.graph.externalAuthenticationMethod","id":"78381c69-811f-51f6-66ec-c2c2aa0e2b46","displayName":"Adatum","configurationId":"26310fee-0000-4000-8000-000000000000"}`,
	}
	var raws []json.RawMessage
	for _, s := range seed {
		raws = append(raws, json.RawMessage(s))
	}
	put(t, srv, graphclienttest.User{ID: kimID, UserPrincipalName: "Kim.OBrien@contoso.com", Methods: raws, DefaultMethodID: "fido-1"})

	ms, err := c.Methods(ctx, kimID)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[Kind]Method{}
	for _, m := range ms {
		byKind[m.Kind] = m
	}
	checks := []struct {
		kind Kind
		ok   func(Method) bool
	}{
		{KindPassword, func(m Method) bool { return m.ID == PasswordMethodID }},
		{KindFIDO2, func(m Method) bool {
			return m.ID == "fido-1" && m.DisplayName == "YubiKey" && m.Model == "YubiKey 5 NFC" &&
				m.AAGUID == "cb69481e-8ff7-4039-93ec-0a2729a154a8" && m.Created.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
		}},
		{KindPhone, func(m Method) bool { return m.ID == MobilePhoneID && m.PhoneNumber == "+1 4255550100" }},
		{KindEmail, func(m Method) bool { return m.ID == EmailMethodID && m.EmailAddress == "kim@fabrikam.com" }},
		{KindMicrosoftAuthenticator, func(m Method) bool {
			return m.DisplayName == "Kim's iPhone" && m.DeviceTag == "SoftwareTokenActivated" && m.PhoneAppVersion == "6.5.4"
		}},
		{KindWindowsHelloForBusiness, func(m Method) bool { return m.DisplayName == "KIM-PC" && m.KeyStrength == "normal" }},
		{KindSoftwareOath, func(m Method) bool { return m.ID == "b172893e-893e-b172-3e89-72b13e8972b1" }},
		{KindTAP, func(m Method) bool { return m.ID == "tap-1" && m.TAPLifetimeMinutes == 60 }},
		{KindPlatformCredential, func(m Method) bool { return m.DisplayName == "Kim's Mac" && m.Platform == "macOS" }},
		{KindExternal, func(m Method) bool { return m.DisplayName == "Adatum" }},
	}
	for _, ck := range checks {
		if m, ok := byKind[ck.kind]; !ok || !ck.ok(m) {
			t.Errorf("%s: %+v (present %v)", ck.kind, m, ok)
		}
	}
	if len(ms) != len(checks) {
		t.Errorf("%d methods, want %d", len(ms), len(checks))
	}

	before := srv.Stats().Total
	mustKind(t, c.DeleteMethod(ctx, kimID, KindPassword, PasswordMethodID), ErrInvalidInput)
	if srv.Stats().Total != before {
		t.Error("deleting the password sent a request")
	}
	mustKind(t, c.DeleteMethod(ctx, kimID, KindFIDO2, "fido-1"), ErrConflict) // the default, others remain
	for _, m := range ms {
		if m.Kind == KindPassword || m.ID == "fido-1" {
			continue
		}
		if err := c.DeleteMethod(ctx, kimID, m.Kind, m.ID); err != nil {
			t.Errorf("delete %s %s: %v", m.Kind, m.ID, err)
		}
	}
	if err := c.DeleteMethod(ctx, kimID, KindFIDO2, "fido-1"); err != nil {
		t.Errorf("delete the default last: %v", err)
	}
	_, st := state(t, srv, kimID)
	if len(st) != 1 || st[0]["id"] != PasswordMethodID {
		t.Errorf("left after deleting everything: %v", st)
	}
	mustKind(t, c.DeleteMethod(ctx, kimID, KindMicrosoftAuthenticator, "-2_GRUg2-HYz6_1YG4YRAQ2"), ErrMethodNotFound)
	mustKind(t, c.DeleteMethod(ctx, nobody, KindSoftwareOath, "x"), ErrUserNotFound)
}

func TestContractPasswords(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)

	gen, err := c.ResetPassword(ctx, kimID, "")
	if err != nil || gen == "" {
		t.Fatalf("ResetPassword generated = %q, %v", gen, err)
	}
	got, err := c.ResetPassword(ctx, kimID, "Correct-Horse-Battery-9")
	if err != nil || got != "" {
		t.Fatalf("ResetPassword with a password = %q, %v", got, err)
	}
	u, _ := state(t, srv, kimID)
	if u.PasswordChanges != 2 || !u.ForceChangePasswordNextSignIn {
		t.Errorf("after two resets: %+v", u)
	}
	_, err = c.ResetPassword(ctx, nobody, "")
	mustKind(t, err, ErrUserNotFound)

	if err := c.SetPassword(ctx, kimID, "An0ther-Password!", false); err != nil {
		t.Fatal(err)
	}
	u, _ = state(t, srv, kimID)
	if u.PasswordChanges != 3 || u.ForceChangePasswordNextSignIn {
		t.Errorf("after SetPassword(force=false): %+v", u)
	}
	if err := c.SetPassword(ctx, kimID, "Yet-An0ther-Password!", true); err != nil {
		t.Fatal(err)
	}
	if u, _ = state(t, srv, kimID); u.PasswordChanges != 4 || !u.ForceChangePasswordNextSignIn {
		t.Errorf("after SetPassword(force=true): %+v", u)
	}

	appOnly, ac := contract(t, func(o *graphclienttest.Options) { o.AppOnly = true })
	_, err = ac.ResetPassword(ctx, kimID, "")
	mustKind(t, err, ErrPermission)
	if u, _ := state(t, appOnly, kimID); u.PasswordChanges != 0 {
		t.Errorf("app-only reset changed the password: %+v", u)
	}
	if err := ac.SetPassword(ctx, kimID, "App-Only-Works-1", true); err != nil {
		t.Errorf("app-only SetPassword: %v", err)
	}
}

func TestContractUserOperations(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)

	if err := c.SetAccountEnabled(ctx, kimID, false); err != nil {
		t.Fatal(err)
	}
	if u, _ := state(t, srv, kimID); u.AccountEnabled == nil || *u.AccountEnabled {
		t.Errorf("after disable: %+v", u)
	}
	if u, err := c.ResolveUser(ctx, kimID); err != nil || u.AccountEnabled {
		t.Errorf("ResolveUser after disable: %+v, %v", u, err)
	}
	if err := c.SetAccountEnabled(ctx, kimID, true); err != nil {
		t.Fatal(err)
	}
	if u, _ := state(t, srv, kimID); u.AccountEnabled == nil || !*u.AccountEnabled {
		t.Errorf("after enable: %+v", u)
	}
	for range 2 {
		if err := c.RevokeSessions(ctx, kimID); err != nil {
			t.Fatal(err)
		}
	}
	if u, _ := state(t, srv, kimID); u.SessionsRevoked != 2 {
		t.Errorf("sessionsRevoked = %d, want 2", u.SessionsRevoked)
	}
	roles, err := c.DirectoryRoles(ctx, adminID)
	if err != nil || fmt.Sprint(roles) != "[Global Administrator Authentication Administrator]" {
		t.Errorf("DirectoryRoles(admin) = %q, %v", roles, err)
	}
	roles, err = c.DirectoryRoles(ctx, kimID)
	if err != nil || roles == nil || len(roles) != 0 {
		t.Errorf("DirectoryRoles(kim) = %#v, %v; want empty, not nil", roles, err)
	}
	mustKind(t, c.RevokeSessions(ctx, nobody), ErrUserNotFound)
	mustKind(t, c.SetAccountEnabled(ctx, nobody, true), ErrUserNotFound)
	_, err = c.DirectoryRoles(ctx, nobody)
	mustKind(t, err, ErrUserNotFound)
}

// TestContractOneAttemptPerCall: with every request failing 503, each
// Client call is exactly one HTTP attempt: the SDK does not retry.
func TestContractOneAttemptPerCall(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}, RetryAfterSeconds: 0}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	calls := []func() error{
		func() error { _, err := c.Methods(ctx, kimID); return err },
		func() error { _, err := c.AddPhone(ctx, kimID, PhoneMobile, "+1 4255550100"); return err },
		func() error { return c.DeleteTAP(ctx, kimID, "x") },
		func() error { _, err := c.ResolveUser(ctx, "kim.obrien@contoso.com"); return err },
	}
	for i, call := range calls {
		before := srv.Stats().Total
		if err := call(); !errors.Is(err, ErrTransient) {
			t.Errorf("call %d: err = %v, want transient", i, err)
		}
		if n := srv.Stats().Total - before; n != 1 {
			t.Errorf("call %d: %d HTTP attempts, want 1", i, n)
		}
	}
}

// contractPolicy retries fast but honours Retry-After.
func contractPolicy() RetryPolicy {
	return RetryPolicy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: 20 * time.Second}
}

// TestContractRetryTransient: random transient faults are retried with
// backoff until every operation succeeds. The draws are seeded and the
// operations sequential, so the faults are the same on every run.
func TestContractRetryTransient(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 0.5, ErrorStatuses: []int{500, 502, 503, 504}, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	p := contractPolicy()
	var retried int
	p.Notify = func(int, error, time.Duration) { retried++ }
	total := 0
	for i := range 20 {
		n, err := p.Do(WithRequestID(ctx, fmt.Sprintf("op-%d", i)), func(ctx context.Context) error {
			_, err := c.Methods(ctx, kimID)
			return err
		})
		if err != nil {
			t.Fatalf("op %d after %d attempts: %v", i, n, err)
		}
		total += n
	}
	st := srv.Stats()
	if st.Total != total || retried != total-20 {
		t.Errorf("emulator saw %d requests, the policy made %d attempts and %d retries", st.Total, total, retried)
	}
	if total == 20 {
		t.Error("no fault was injected in 20 calls at rate 0.5: the test proves nothing")
	}
	if st.RetryAfterViolations != 0 {
		t.Errorf("retryAfterViolations = %d", st.RetryAfterViolations)
	}
}

// TestContractRetryAfterHonoured: under a token-bucket budget, concurrent
// operations all succeed, and none comes back before its Retry-After.
func TestContractRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	if err := srv.SetFaults(graphclienttest.Faults{ThrottleRPS: 4}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	p := contractPolicy()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Do(WithRequestID(ctx, fmt.Sprintf("throttled-%d", i)), func(ctx context.Context) error {
				_, err := c.Methods(ctx, kimID)
				return err
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("throttled op: %v", err)
		}
	}
	st := srv.Stats()
	if st.Throttled == 0 {
		t.Error("nothing was throttled: the test proves nothing")
	}
	if st.RetryAfterViolations != 0 {
		t.Errorf("retryAfterViolations = %d, want 0", st.RetryAfterViolations)
	}
	if c.Throttle().Limit() >= DefaultThrottleMaxLimit {
		t.Errorf("limit %d did not adapt to the throttling", c.Throttle().Limit())
	}
	t.Logf("stats: total %d, throttled %d, during throttle %d, limit now %d",
		st.Total, st.Throttled, st.RequestsDuringThrottle, c.Throttle().Limit())
}

// TestContractRetryAfterInjected: an injected 429 with Retry-After 1 s is
// waited out before the retry, which then succeeds.
func TestContractRetryAfterInjected(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{429}, RetryAfterSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	p := contractPolicy()
	p.Notify = func(attempt int, err error, wait time.Duration) {
		if wait < time.Second {
			t.Errorf("attempt %d waits %v, less than Retry-After", attempt, wait)
		}
		if err := srv.SetFaults(graphclienttest.Faults{}); err != nil { // the next attempt goes through
			t.Error(err)
		}
	}
	start := time.Now()
	n, err := p.Do(WithRequestID(ctx, "ra-1"), func(ctx context.Context) error {
		_, err := c.AddEmail(ctx, kimID, "kim@fabrikam.com")
		return err
	})
	if err != nil || n != 2 {
		t.Fatalf("Do = %d, %v", n, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("finished after %v, before the Retry-After", d)
	}
	if st := srv.Stats(); st.RetryAfterViolations != 0 || st.Throttled != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, st := state(t, srv, kimID); !hasMethod(st, "#microsoft.graph.emailAuthenticationMethod", EmailMethodID) {
		t.Error("the email was not added")
	}
}

// TestContractPermanentNotRetried: a rule violation is answered once.
func TestContractPermanentNotRetried(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	n, err := contractPolicy().Do(ctx, func(ctx context.Context) error {
		_, err := c.AddPhone(ctx, kimID, PhoneAlternateMobile, "+1 4255550101")
		return err
	})
	if n != 1 || !errors.Is(err, ErrConflict) || srv.Stats().Total != 1 {
		t.Errorf("attempts %d, requests %d, err %v", n, srv.Stats().Total, err)
	}
	n, err = contractPolicy().Do(ctx, func(ctx context.Context) error { return c.DeleteEmail(ctx, nobody, EmailMethodID) })
	if n != 1 || !errors.Is(err, ErrUserNotFound) {
		t.Errorf("unknown user: attempts %d, err %v", n, err)
	}
}

// TestContractBudgetAndCancel: the time budget and the context both stop
// the loop.
func TestContractBudgetAndCancel(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}, RetryAfterSeconds: 0}); err != nil {
		t.Fatal(err)
	}
	p := RetryPolicy{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Randomization: -1, MaxElapsed: 300 * time.Millisecond}
	start := time.Now()
	n, err := p.Do(testCtx(t), func(ctx context.Context) error { _, err := c.Methods(ctx, kimID); return err })
	if !errors.Is(err, ErrTransient) || n < 3 || time.Since(start) > 5*time.Second {
		t.Errorf("budget: attempts %d, err %v, after %v", n, err, time.Since(start))
	}
	if got := srv.Stats().Total; got != n {
		t.Errorf("emulator saw %d requests for %d attempts", got, n)
	}

	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}, RetryAfterSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats().Total
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p.MaxElapsed = time.Minute
	start = time.Now()
	n, err = p.Do(ctx, func(ctx context.Context) error { _, err := c.Methods(ctx, kimID); return err })
	if !errors.Is(err, context.DeadlineExceeded) || n != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("cancel: attempts %d, err %v, after %v", n, err, time.Since(start))
	}
	if got := srv.Stats().Total - before; got != 1 {
		t.Errorf("%d requests during a 30 s Retry-After", got)
	}
}

// TestContractLostReply: a write whose reply is lost is applied; the
// client sees a transient error, and a blind retry then meets the rule
// (which is why the worker reads before it writes).
func TestContractLostReply(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"504", "drop"} {
		srv, c := contract(t)
		if err := srv.SetFaults(graphclienttest.Faults{LostReplyRate: 1, LostReplyMode: mode}); err != nil {
			t.Fatal(err)
		}
		_, err := c.AddPhone(testCtx(t), kimID, PhoneMobile, "+1 4255550100")
		if !errors.Is(err, ErrTransient) {
			t.Errorf("%s: err = %v, want transient", mode, err)
		}
		if _, st := state(t, srv, kimID); !hasMethod(st, "#microsoft.graph.phoneAuthenticationMethod", MobilePhoneID) {
			t.Errorf("%s: the write was not applied", mode)
		}
		if err := srv.SetFaults(graphclienttest.Faults{}); err != nil {
			t.Fatal(err)
		}
		_, err = c.AddPhone(testCtx(t), kimID, PhoneMobile, "+1 4255550100")
		if !errors.Is(err, ErrConflict) {
			t.Errorf("%s: blind retry err = %v, want ErrConflict", mode, err)
		}
		if st := srv.Stats(); st.LostReplies != 1 {
			t.Errorf("%s: lostReplies = %d", mode, st.LostReplies)
		}
	}
}

// TestContractTraceParent: through msgraph-sdk-go over HTTP, every request
// of a context with a traceparent carries it: single calls, a UPN lookup, a
// retried write and a password reset with its polling; calls without one,
// or with an invalid one, carry none.
func TestContractTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	srv, c := contract(t)
	ctx := WithTraceParent(testCtx(t), tp)
	if _, err := c.ResolveUser(ctx, "kim.obrien@contoso.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Methods(ctx, kimID); err != nil {
		t.Fatal(err)
	}
	// One injected 503, then the retry goes through.
	if err := srv.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{503}}); err != nil {
		t.Fatal(err)
	}
	p := contractPolicy()
	p.Notify = func(int, error, time.Duration) {
		if err := srv.SetFaults(graphclienttest.Faults{}); err != nil {
			t.Error(err)
		}
	}
	if n, err := p.Do(WithRequestID(ctx, "tp-1"), func(ctx context.Context) error {
		_, err := c.AddPhone(ctx, kimID, PhoneMobile, "+1 4255550100")
		return err
	}); err != nil || n != 2 {
		t.Fatalf("AddPhone: %d attempts, %v", n, err)
	}
	if _, err := c.ResetPassword(ctx, kimID, ""); err != nil {
		t.Fatal(err)
	}
	log := srv.Requests()
	if len(log) < 6 { // filter, methods, 503 + 201, reset, at least one poll
		t.Fatalf("only %d requests: %+v", len(log), log)
	}
	routes := map[string]bool{}
	for _, r := range log {
		routes[r.Method+" "+r.Route] = true
		if r.TraceParent != tp {
			t.Errorf("%s %s (status %d): traceparent %q, want %q", r.Method, r.Route, r.Status, r.TraceParent, tp)
		}
	}
	if !routes["GET /v1.0/users/{id}/authentication/operations/{operationId}"] || !routes["GET /v1.0/users"] {
		t.Errorf("the polling or the UPN lookup is missing from %v", routes)
	}

	srv.ResetStats()
	if _, err := c.Methods(testCtx(t), kimID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Methods(WithTraceParent(testCtx(t), "00-00000000000000000000000000000000-b7ad6b7169203331-01"), kimID); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Requests() {
		if r.TraceParent != "" {
			t.Errorf("%s %s: traceparent %q without a valid one in the context", r.Method, r.Route, r.TraceParent)
		}
	}
}

// TestContractMFARequired: a credential-management call refused with a
// claims challenge for multifactor authentication is ErrMFARequired, with
// the claims in the error; it is permanent, not ErrPermission, and the
// retry policy sends it once.
func TestContractMFARequired(t *testing.T) {
	t.Parallel()
	srv, c := contract(t, func(o *graphclienttest.Options) { o.MFARequired = true })
	ctx := testCtx(t)
	n, err := contractPolicy().Do(ctx, func(ctx context.Context) error {
		_, err := c.AddPhone(ctx, kimID, PhoneMobile, "+1 4255550100")
		return err
	})
	if n != 1 || srv.Stats().Total != 1 {
		t.Errorf("attempts %d, requests %d: want 1 and 1", n, srv.Stats().Total)
	}
	mustKind(t, err, ErrMFARequired)
	mustKind(t, err, ErrPermanent)
	if errors.Is(err, ErrPermission) || errors.Is(err, ErrTransient) {
		t.Errorf("err = %v: must be neither ErrPermission nor ErrTransient", err)
	}
	const claims = `{"access_token":{"amr":{"essential":true,"values":["ngcmfa"]}}}`
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Claims != claims || !strings.Contains(err.Error(), claims) {
		t.Errorf("err = %#v", err)
	}
	_, err = c.CreateTAP(ctx, kimID, TAPRequest{LifetimeMinutes: 60})
	mustKind(t, err, ErrMFARequired)
	// Reads are not credential management.
	if _, err := c.Methods(ctx, kimID); err != nil {
		t.Errorf("Methods: %v", err)
	}
	if _, st := state(t, srv, kimID); hasMethod(st, "#microsoft.graph.phoneAuthenticationMethod", "") {
		t.Error("the refused phone was added")
	}
}

// TestContractWrongToken: the emulator's 401 is a permission error.
func TestContractWrongToken(t *testing.T) {
	t.Parallel()
	srv, _ := contract(t)
	c := newTestClient(t, srv.GraphURL, func(cfg *Config) { cfg.Token = "wrong" })
	_, err := c.Methods(testCtx(t), kimID)
	mustKind(t, err, ErrPermission)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || strings.Contains(err.Error(), "wrong") {
		t.Errorf("err = %v", err)
	}
}

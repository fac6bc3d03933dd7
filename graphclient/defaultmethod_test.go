package graphclient

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

func TestContractSignInPreferences(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	seed := []json.RawMessage{
		json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`),
		json.RawMessage(`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"auth-1","displayName":"Kim's iPhone"}`),
	}
	put(t, srv, graphclienttest.User{ID: kimID, UserPrincipalName: "Kim.OBrien@contoso.com", Methods: seed})

	p, err := c.SignInPreferences(ctx, kimID)
	if err != nil || p.Preferred != PreferredSMS || p.SystemPreferred {
		t.Fatalf("SignInPreferences = %+v, %v; want sms", p, err)
	}
	if err := c.SetPreferredMethod(ctx, kimID, PreferredPush); err != nil {
		t.Fatalf("SetPreferredMethod: %v", err)
	}
	if p, err = c.SignInPreferences(ctx, kimID); err != nil || p.Preferred != PreferredPush {
		t.Fatalf("after push: %+v, %v", p, err)
	}
	if u, _ := srv.User(kimID); u.DefaultMethodID != "auth-1" {
		t.Fatalf("emulator default %q, want auth-1", u.DefaultMethodID)
	}
	// The mobile phone is no longer the default: v1.0 deletes it.
	if err := c.DeletePhone(ctx, kimID, MobilePhoneID); err != nil {
		t.Fatalf("delete the former default: %v", err)
	}
	mustKind(t, c.SetPreferredMethod(ctx, kimID, PreferredSMS), ErrConflict) // no mobile any more

	// Requests went to /beta, with the same token and client-request-id rules.
	var beta int
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r.Path, "/beta/users/"+kimID+"/authentication/signInPreferences") {
			beta++
			if r.ClientRequestID == "" {
				t.Errorf("beta request without client-request-id: %+v", r)
			}
		}
	}
	if beta != 4 {
		t.Errorf("%d beta requests, want 4", beta)
	}

	before := srv.Stats().Total
	mustKind(t, c.SetPreferredMethod(ctx, kimID, PreferredUnknown), ErrInvalidInput)
	mustKind(t, c.SetPreferredMethod(ctx, kimID, "fido2"), ErrInvalidInput)
	_, err = c.SignInPreferences(ctx, "not-a-guid")
	mustKind(t, err, ErrInvalidInput)
	if srv.Stats().Total != before {
		t.Error("invalid input reached the wire")
	}
	_, err = c.SignInPreferences(ctx, nobody)
	mustKind(t, err, ErrUserNotFound)
}

func TestContractSignInPreferencesMFARequired(t *testing.T) {
	t.Parallel()
	srv, c := contract(t, func(o *graphclienttest.Options) { o.MFARequired = true })
	put(t, srv, graphclienttest.User{ID: kimID, UserPrincipalName: "Kim.OBrien@contoso.com", Methods: []json.RawMessage{
		json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`)}})
	if _, err := c.SignInPreferences(testCtx(t), kimID); err != nil {
		t.Fatalf("a read is not challenged: %v", err)
	}
	mustKind(t, c.SetPreferredMethod(testCtx(t), kimID, PreferredVoiceMobile), ErrMFARequired)
}

func TestBetaURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, beta, want string
		ok               bool
	}{
		{"https://graph.microsoft.com/v1.0", "", "https://graph.microsoft.com/beta", true},
		{"http://127.0.0.1:8080/v1.0", "", "http://127.0.0.1:8080/beta", true},
		{"https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/beta", "https://graph.microsoft.com/beta", true},
		{"https://graph.microsoft.com/v1.0", "https://evil.example/beta", "", false},
		{"https://graph.microsoft.com/v1.0", "http://graph.microsoft.com/beta", "", false},
		{"https://proxy.example/graph", "", "", true}, // no beta: calls say so
	}
	for _, tt := range tests {
		c, err := New(Config{BaseURL: tt.base, BetaURL: tt.beta, Token: "t"})
		if (err == nil) != tt.ok {
			t.Errorf("New(%s, %s) err = %v, want ok %t", tt.base, tt.beta, err, tt.ok)
			continue
		}
		if err != nil {
			continue
		}
		got := ""
		if c.beta != nil {
			got = c.beta.String()
		}
		if got != tt.want {
			t.Errorf("beta of %s = %q, want %q", tt.base, got, tt.want)
		}
		if tt.want == "" {
			_, err := c.SignInPreferences(testCtx(t), kimID)
			mustKind(t, err, ErrInvalidInput)
		}
	}
}

func TestPreferredMapping(t *testing.T) {
	t.Parallel()
	ms := []Method{
		{Kind: KindPassword, ID: PasswordMethodID},
		{Kind: KindFIDO2, ID: "key"},
		{Kind: KindMicrosoftAuthenticator, ID: "auth"},
		{Kind: KindPhone, ID: OfficePhoneID, PhoneType: PhoneOffice},
		{Kind: KindPhone, ID: MobilePhoneID, PhoneType: PhoneMobile},
	}
	tests := []struct {
		p    PreferredMethod
		want string
	}{
		{PreferredPush, "auth"},
		{PreferredOATH, "auth"}, // no software token: the Authenticator shows codes
		{PreferredSMS, MobilePhoneID},
		{PreferredVoiceMobile, MobilePhoneID},
		{PreferredVoiceOffice, OfficePhoneID},
		{PreferredVoiceAlternateMobile, ""},
		{PreferredUnknown, ""},
	}
	for _, tt := range tests {
		got := ""
		if i := DefaultIn(tt.p, ms); i >= 0 {
			got = ms[i].ID
		}
		if got != tt.want {
			t.Errorf("DefaultIn(%s) = %q, want %q", tt.p, got, tt.want)
		}
	}
	withToken := append(ms, Method{Kind: KindSoftwareOath, ID: "oath"})
	if i := DefaultIn(PreferredOATH, withToken); i < 0 || withToken[i].ID != "oath" {
		t.Errorf("oath must prefer the software token")
	}
	for _, m := range ms {
		p, ok := PreferredFor(m)
		if ok != (m.Kind == KindMicrosoftAuthenticator || m.Kind == KindPhone) {
			t.Errorf("PreferredFor(%s) ok = %t", m.Kind, ok)
		}
		if ok && ms[DefaultIn(p, ms)].ID != m.ID {
			t.Errorf("PreferredFor(%s) = %s does not name it back", m.ID, p)
		}
	}
}

func FuzzValidatePreferredMethod(f *testing.F) {
	for _, p := range PreferredMethods() {
		f.Add(string(p))
	}
	f.Add("unknownFutureValue")
	f.Add("SMS")
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidatePreferredMethod(PreferredMethod(s))
		known := false
		for _, p := range PreferredMethods() {
			known = known || string(p) == s
		}
		if (err == nil) != known {
			t.Fatalf("ValidatePreferredMethod(%q) = %v", s, err)
		}
	})
}

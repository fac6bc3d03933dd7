package graphclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/authflow/authflow/events"
)

const fuzzUserID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

// fuzzGraph answers user lookups and phone creation like Graph would.
func fuzzGraph(t testing.TB) (*fakeGraph, *Client) {
	f := newFakeGraph(t)
	f.setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1.0/users":
			filter := r.URL.Query().Get("$filter")
			lit, ok := strings.CutPrefix(filter, "userPrincipalName eq '")
			lit, ok2 := strings.CutSuffix(lit, "'")
			if !ok || !ok2 {
				w.WriteHeader(400)
				io.WriteString(w, `{"error":{"code":"badRequest","message":"bad filter"}}`)
				return
			}
			upn := strings.ReplaceAll(lit, "''", "'")
			out, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
				"id": fuzzUserID, "userPrincipalName": upn, "userType": "Member", "accountEnabled": true}}})
			w.Write(out)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1.0/users/"):
			id := strings.TrimPrefix(r.URL.Path, "/v1.0/users/")
			out, _ := json.Marshal(map[string]any{"id": id, "userPrincipalName": "x@contoso.com", "accountEnabled": true})
			w.Write(out)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/authentication/phoneMethods"):
			var in map[string]any
			_ = json.Unmarshal(body, &in)
			in["id"] = MobilePhoneID
			in["smsSignInState"] = "notEnabled"
			out, _ := json.Marshal(in)
			w.WriteHeader(201)
			w.Write(out)
		default:
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"itemNotFound","message":"no route"}}`)
		}
	})
	c := newTestClient(t, f.URL+"/v1.0", func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	return f, c
}

// FuzzParseUserRef: ResolveUser never panics; a rejected reference makes no
// request; an accepted one makes exactly one, whose path holds nothing but
// a GUID (a UPN travels only in the $filter, quoted so that it comes back
// intact).
func FuzzParseUserRef(f *testing.F) {
	for _, s := range []string{testUser, "adele@contoso.com", "o'brien@contoso.com", "x#EXT#@contoso.onmicrosoft.com", "../me", "",
		"adele@" + strings.Repeat("a", 65) + ".com", strings.Repeat("a", 65) + "@contoso.com", "a#b@contoso.com"} {
		f.Add(s)
	}
	g, c := fuzzGraph(f)
	f.Fuzz(func(t *testing.T, ref string) {
		g.reset()
		ref0, perr := ParseUserRef(ref)
		// One rule: the events decoder accepts exactly the subjects this
		// client accepts.
		if _, eerr := events.ParseUser(ref); (eerr == nil) != (perr == nil) {
			t.Fatalf("%q: events.ParseUser: %v; ParseUserRef: %v", ref, eerr, perr)
		}
		u, err := c.ResolveUser(testCtx(t), ref)
		reqs := g.requests()
		if perr != nil {
			if err == nil || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("ParseUserRef rejected %q but ResolveUser returned %v", ref, err)
			}
			if len(reqs) != 0 {
				t.Fatalf("rejected ref %q made %d requests", ref, len(reqs))
			}
			return
		}
		if err != nil {
			t.Fatalf("ResolveUser(%q): %v", ref, err)
		}
		if len(reqs) != 1 {
			t.Fatalf("ref %q made %d requests, want 1", ref, len(reqs))
		}
		path := reqs[0].RawPath
		if ref0.ID != "" {
			if path != "/v1.0/users/"+ref0.ID || !isGUID(strings.TrimPrefix(path, "/v1.0/users/")) {
				t.Fatalf("GUID ref %q requested path %q", ref, path)
			}
			if u.ID != ref0.ID {
				t.Fatalf("resolved id %q, want %q", u.ID, ref0.ID)
			}
			return
		}
		if path != "/v1.0/users" {
			t.Fatalf("UPN ref %q requested path %q: a UPN must never go into a path", ref, path)
		}
		if u.ID != fuzzUserID || u.UserPrincipalName != ref {
			t.Fatalf("UPN %q resolved to %+v: the $filter quoting did not round-trip", ref, u)
		}
	})
}

// phoneForm is Graph's phone format, written independently of
// ValidatePhoneNumber.
var phoneForm = regexp.MustCompile(`^\+([1-9][0-9]{0,2}) ([0-9]{4,14})(x[0-9]{1,10})?$`)

// FuzzValidatePhoneNumber: no panic; accepted numbers match Graph's form
// (at most 15 digits before the extension); a rejected number makes no
// request; an accepted one is sent once, unchanged, to a GUID-only path.
func FuzzValidatePhoneNumber(f *testing.F) {
	for _, s := range []string{"+1 5555551234", "+1 5555551234x123", "+44 7700900123", "+1 555 555 1234", "15555551234", "",
		"+49 301234563074185", "+4930123456307418", "+1 4255550100", "(425) 555-0100"} {
		f.Add(s)
	}
	g, c := fuzzGraph(f)
	f.Fuzz(func(t *testing.T, number string) {
		verr := ValidatePhoneNumber(number)
		// A number the events decoder accepts normalises to one this
		// client accepts.
		for _, region := range []string{"", "US"} {
			if n, err := events.NormalizePhone(number, region); err == nil {
				if err := ValidatePhoneNumber(n); err != nil {
					t.Fatalf("events.NormalizePhone(%q, %q) = %q, which ValidatePhoneNumber refuses: %v", number, region, n, err)
				}
			}
		}
		m := phoneForm.FindStringSubmatch(number)
		if verr == nil && (m == nil || len(m[1])+len(m[2]) > 15) {
			t.Fatalf("accepted %q, which is not +{cc} {number}[x{ext}]", number)
		}
		if verr != nil && m != nil && len(m[1])+len(m[2]) <= 15 {
			t.Fatalf("rejected well-formed %q: %v", number, verr)
		}
		if verr != nil && !errors.Is(verr, ErrInvalidInput) {
			t.Fatalf("error for %q is not ErrInvalidInput: %v", number, verr)
		}
		g.reset()
		_, err := c.AddPhone(testCtx(t), fuzzUserID, PhoneMobile, number)
		reqs := g.requests()
		if verr != nil {
			if !errors.Is(err, ErrInvalidInput) || len(reqs) != 0 {
				t.Fatalf("rejected %q: AddPhone err %v, %d requests", number, err, len(reqs))
			}
			return
		}
		if err != nil || len(reqs) != 1 {
			t.Fatalf("accepted %q: AddPhone err %v, %d requests", number, err, len(reqs))
		}
		if want := fmt.Sprintf("/v1.0/users/%s/authentication/phoneMethods", fuzzUserID); reqs[0].RawPath != want {
			t.Fatalf("path %q, want %q", reqs[0].RawPath, want)
		}
		var sent struct {
			PhoneNumber string `json:"phoneNumber"`
			PhoneType   string `json:"phoneType"`
		}
		if err := json.Unmarshal(reqs[0].Body, &sent); err != nil || sent.PhoneNumber != number || sent.PhoneType != "mobile" {
			t.Fatalf("sent body %s for %q (%v)", reqs[0].Body, number, err)
		}
	})
}

package graphclienttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchEmulator holds 1,000 users with a phone, an Authenticator and a password each.
func benchEmulator(b *testing.B) (*Emulator, []string) {
	b.Helper()
	em, err := New(Options{Token: "t"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = newGUID()
		u := User{ID: ids[i], UserPrincipalName: "u" + itoa(i) + "@contoso.com", Methods: []json.RawMessage{
			json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 42555` + itoa(10000+i) + `","phoneType":"mobile"}`),
			json.RawMessage(`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"Phone"}`),
		}}
		if err := em.PutUser(u); err != nil {
			b.Fatal(err)
		}
	}
	return em, ids
}

func serve(em *Emulator, method, path, body string) int {
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	em.ServeHTTP(rec, req)
	return rec.Code
}

func BenchmarkListMethods(b *testing.B) {
	em, ids := benchEmulator(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if c := serve(em, "GET", "/v1.0/users/"+ids[i%len(ids)]+"/authentication/methods", ""); c != 200 {
				b.Fatalf("status %d", c)
			}
			i++
		}
	})
}

func BenchmarkCreateAndDeleteEmail(b *testing.B) {
	em, ids := benchEmulator(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			id := ids[i%len(ids)]
			serve(em, "POST", "/v1.0/users/"+id+"/authentication/emailMethods", `{"emailAddress":"a@b.com"}`)
			serve(em, "DELETE", "/v1.0/users/"+id+"/authentication/emailMethods/"+emailMethodID, "")
			i++
		}
	})
}

package graphclienttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

const qrPath = "/users/{u}/authentication/qrCodePinMethod"

// qrPut is a PUT body for a standard QR code from start for the given
// lifetime, with pin as its custom PIN ("" lets Graph generate one).
func qrPut(start time.Time, lifetime time.Duration, pin string) string {
	b := `{"@odata.type":"#microsoft.graph.qrCodePinAuthenticationMethod","standardQRCode":{"startDateTime":"` +
		start.Format(time.RFC3339) + `","expireDateTime":"` + start.Add(lifetime).Format(time.RFC3339) + `"}`
	if pin != "" {
		b += `,"pin":{"code":"` + pin + `"}`
	} else {
		b += `,"pin":{}`
	}
	return b + "}"
}

func TestQRCodePin(t *testing.T) {
	day := 24 * time.Hour
	t.Run("secrets only in the PUT answer; one method per user", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		now := e.clock.Now()
		r := e.graph("PUT", qrPath, qrPut(now, 365*day, ""))
		r.want(t, http.StatusCreated, "")
		pin, _ := r.body["pin"].(map[string]any)
		qr, _ := r.body["standardQRCode"].(map[string]any)
		img, _ := qr["image"].(map[string]any)
		code, _ := pin["code"].(string)
		if len(code) != qrPINLength || !allDigits(code) || pin["forceChangePinNextSignIn"] != true {
			t.Fatalf("generated PIN: %s", r.raw)
		}
		raw, _ := img["rawContent"].(string)
		if raw == "" || img["binaryValue"] == "" || r.body["temporaryQRCode"] != nil {
			t.Fatalf("QR image: %s", r.raw)
		}
		g := e.graph("GET", qrPath, "")
		g.want(t, 200, "")
		gq, _ := g.body["standardQRCode"].(map[string]any)
		gp, _ := g.body["pin"].(map[string]any)
		if v, ok := gq["image"]; !ok || v != nil {
			t.Fatalf("GET must carry image null: %s", g.raw)
		}
		if v, ok := gp["code"]; !ok || v != nil {
			t.Fatalf("GET must carry pin.code null: %s", g.raw)
		}
		if g.str("id") != r.str("id") || gq["expireDateTime"] != qr["expireDateTime"] {
			t.Fatalf("GET: %s", g.raw)
		}
		// Listed with the user's methods and by the admin API, never with a secret.
		list := e.graph("GET", "/users/{u}/authentication/methods", "")
		if !strings.Contains(string(list.raw), r.str("id")) || strings.Contains(string(list.raw), code) || strings.Contains(string(list.raw), raw) {
			t.Fatalf("/methods must list the QR method without its secrets: %s", list.raw)
		}
		ms := e.methodsOf(userA, "qrCodePinAuthenticationMethod")
		if len(ms) != 1 || ms[0]["id"] != r.str("id") {
			t.Fatalf("admin shape: %v", ms)
		}
		u, _ := e.srv.User(userA)
		if ab, _ := json.Marshal(u); strings.Contains(string(ab), code) || strings.Contains(string(ab), raw) {
			t.Fatal("admin shape leaks a QR secret")
		}
		// A second PUT is refused while the first is active; after a DELETE it works.
		e.graph("PUT", qrPath, qrPut(now, 30*day, "")).want(t, 400, "badRequest")
		e.graph("DELETE", qrPath, "").want(t, 204, "")
		e.graph("GET", qrPath, "").want(t, 404, "itemNotFound")
		e.graph("DELETE", qrPath, "").want(t, 404, "itemNotFound")
		r2 := e.graph("PUT", qrPath, qrPut(now, 30*day, "12345678901"))
		r2.want(t, 201, "")
		if p, _ := r2.body["pin"].(map[string]any); p["code"] != "12345678901" || r2.str("id") == r.str("id") {
			t.Fatalf("custom PIN: %s", r2.raw)
		}
	})
	t.Run("an expired method is replaced", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		r := e.graph("PUT", qrPath, qrPut(e.clock.Now(), day, ""))
		r.want(t, 201, "")
		e.clock.Advance(day)
		r2 := e.graph("PUT", qrPath, qrPut(e.clock.Now(), day, ""))
		r2.want(t, 201, "")
		if ms := e.methodsOf(userA, "qrCodePinAuthenticationMethod"); len(ms) != 1 || ms[0]["id"] != r2.str("id") {
			t.Fatalf("after replacement: %v", ms)
		}
	})
	t.Run("rules", func(t *testing.T) {
		start := newClock().Now()
		tests := []struct {
			name   string
			body   string
			status int
		}{
			{"default lifetime", qrPut(start, 365*day, ""), 201},
			{"maximum lifetime", qrPut(start, 395*day, ""), 201},
			{"one day", qrPut(start, day, ""), 201},
			{"above maximum", qrPut(start, 395*day+time.Minute, ""), 400},
			{"expiry before start", qrPut(start, -day, ""), 400},
			{"already expired", qrPut(start.Add(-10*day), 5*day, ""), 400},
			{"PIN of 8 digits", qrPut(start, day, "01234567"), 201},
			{"PIN of 20 digits", qrPut(start, day, "01234567890123456789"), 201},
			{"PIN of 7 digits", qrPut(start, day, "0123456"), 400},
			{"PIN of 21 digits", qrPut(start, day, "012345678901234567890"), 400},
			{"PIN with a letter", qrPut(start, day, "0123456a"), 400},
			{"no standard QR code", `{"pin":{}}`, 400},
			{"no expiry", `{"standardQRCode":{"startDateTime":"2026-03-01T09:00:00Z"}}`, 400},
			{"wrong type", `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod"}`, 400},
			{"unknown field", `{"standardQRCode":{"startDateTime":"2026-03-01T09:00:00Z","expireDateTime":"2026-04-01T09:00:00Z"},"colour":1}`, 201},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t)
				e.seedBasic()
				code := ""
				if tt.status == 400 {
					code = "badRequest"
				}
				e.graph("PUT", qrPath, tt.body).want(t, tt.status, code)
			})
		}
	})
	t.Run("routes", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.graph("POST", qrPath, `{}`).want(t, 405, "notSupported")
		e.graph("GET", qrPath+"/x", "").want(t, 400, "BadRequest")
		e.graph("GET", "/users/00000000-0000-0000-0000-00000000dead/authentication/qrCodePinMethod", "").want(t, 404, "Request_ResourceNotFound")
	})
	t.Run("seeded and round-tripped by the admin API", func(t *testing.T) {
		e := newEnv(t)
		e.putUser(userA, "kim@contoso.com", `,"methods":[{"@odata.type":"#microsoft.graph.qrCodePinAuthenticationMethod","id":"qr-1",`+
			`"standardQRCode":{"id":"q-1","startDateTime":"2026-01-01T00:00:00Z","expireDateTime":"2026-12-01T00:00:00Z"},"pin":{"id":"p-1","forceChangePinNextSignIn":false}}]`)
		g := e.graph("GET", qrPath, "")
		g.want(t, 200, "")
		if q, _ := g.body["standardQRCode"].(map[string]any); q["id"] != "q-1" || q["expireDateTime"] != "2026-12-01T00:00:00Z" {
			t.Fatalf("seeded QR: %s", g.raw)
		}
		r := e.admin("PUT", "/users/"+userA, `{"id":"`+userA+`","userPrincipalName":"kim@contoso.com","methods":[`+
			`{"@odata.type":"#microsoft.graph.qrCodePinAuthenticationMethod"},{"@odata.type":"#microsoft.graph.qrCodePinAuthenticationMethod"}]}`)
		if r.status != http.StatusBadRequest {
			t.Fatalf("two QR methods must be refused: %d %s", r.status, r.raw)
		}
	})
}

package ingress

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
)

const (
	exampleServiceNowPassword = "example-servicenow-password"
	exampleWorkdayPassword    = "example-workday-password"
	exampleJiraSecret         = "example-jira-webhook-secret"
)

func exampleHarness(t *testing.T) *harness {
	t.Helper()
	b, err := os.ReadFile("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUTHFLOW_INGRESS_JIRA_SECRET", exampleJiraSecret)
	// newHarness answers SEED_* itself; the examples name their seeds
	// AUTHFLOW_INGRESS_SEED_*, which the harness maps the same way.
	config := strings.ReplaceAll(string(b), "env:AUTHFLOW_INGRESS_SEED_", "env:SEED_")
	config = strings.ReplaceAll(config, "env:AUTHFLOW_INGRESS_JIRA_SECRET", exampleJiraSecret)
	return newHarness(t, config, nil)
}

// TestExampleMappings runs the three example mappings of docs/ingress.md
// on the example bodies and checks the events they store.
func TestExampleMappings(t *testing.T) {
	h := exampleHarness(t)
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jira := read("jira-issue.json")
	tests := []struct {
		route, source string
		body          []byte
		headers       []string
		want          events.Event // the fields compared
		data          string
	}{
		{
			route: "servicenow-mfa-reset", source: "itsm/servicenow", body: read("servicenow-incident.json"),
			headers: basicHeader("servicenow", exampleServiceNowPassword),
			want: events.Event{Type: events.TypeMFAReset, Subject: "adele.vance@contoso.example", ID: "incident/INC0010023",
				Time: time.Date(2025, 3, 4, 10, 15, 30, 0, time.UTC)},
			data: `{"revokeSessions":true,"verification":{"method":"callback","ticketId":"INC0010023","verifiedBy":"Megan Bowen"}}`,
		},
		{
			route: "jira-lost-device", source: "itsm/jira", body: jira,
			headers: []string{"X-Hub-Signature", hubSignature(exampleJiraSecret, jira), "X-Atlassian-Webhook-Identifier", "6e2d3c1a-0b1f-4f3e-9a55-1c2b3d4e5f60"},
			want: events.Event{Type: events.TypeDeviceLost, Subject: "lee.gu@contoso.example", ID: "jira/6e2d3c1a-0b1f-4f3e-9a55-1c2b3d4e5f60",
				Time: time.Date(2025, 3, 4, 10, 15, 30, 0, time.UTC)},
			data: `{"device":{"displayName":"Lee's iPhone"},"verification":{"method":"callback","ticketId":"ITSM-42","verifiedBy":"Megan Bowen"}}`,
		},
		{
			route: "workday-termination", source: "hr/workday", body: read("workday-termination.json"),
			headers: basicHeader("workday", exampleWorkdayPassword),
			want: events.Event{Type: events.TypeEmployeeLeft, Subject: "nestor.wilke@contoso.example", ID: "workday/TERM-000123",
				Time: time.Date(2025, 3, 4, 10, 15, 30, 0, time.UTC)},
			data: `{"disableAccount":true,"removeMethods":true,"revokeSessions":true}`,
		},
	}
	for i, tc := range tests {
		t.Run(tc.route, func(t *testing.T) {
			r := h.post("/v1/hooks/"+tc.route, tc.body, append(tc.headers, "Content-Type", "application/json")...)
			a := r.accepted(t)
			msgs := h.stored(EventsStream)
			if len(msgs) != i+1 {
				t.Fatalf("%d stored", len(msgs))
			}
			ev, err := events.Decoder{}.Decode(msgs[i].Data())
			if err != nil {
				t.Fatal(err)
			}
			if ev.Source != tc.source || ev.Type != tc.want.Type || ev.Subject != tc.want.Subject || ev.ID != tc.want.ID || !ev.Time.Equal(tc.want.Time) {
				t.Fatalf("event %s %s %s %s %s", ev.Source, ev.Type, ev.Subject, ev.ID, ev.Time)
			}
			if string(ev.Data) != tc.data {
				t.Fatalf("data %s\nwant %s", ev.Data, tc.data)
			}
			if a.Key != ev.Key() {
				t.Fatalf("key %s", a.Key)
			}
		})
	}
}

// The docs show the example routes exactly as tested.
func TestExampleMappingsAreInTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/ingress.md")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("testdata/examples.yaml")
	routes := string(b)[strings.Index(string(b), "routes:\n"):]
	if !strings.Contains(string(doc), routes) {
		t.Fatal("docs/ingress.md does not hold the routes of testdata/examples.yaml verbatim")
	}
}

func TestHookRefusals(t *testing.T) {
	h := exampleHarness(t)
	sn := basicHeader("servicenow", exampleServiceNowPassword)
	incident, _ := os.ReadFile("testdata/servicenow-incident.json")
	tests := []struct {
		name, route string
		body        string
		headers     []string
		status      int
		code, field string
	}{
		{"unauthenticated", "servicenow-mfa-reset", string(incident), []string{"Content-Type", "application/json"}, 401, "unauthenticated", ""},
		{"unknown route", "nope", string(incident), append(sn, "Content-Type", "application/json"), 404, "not_found", ""},
		{"route of another source", "workday-termination", string(incident), append(sn, "Content-Type", "application/json"), 403, "forbidden", ""},
		{"not JSON", "servicenow-mfa-reset", "<xml/>", append(sn, "Content-Type", "application/json"), 400, "invalid_event", ""},
		{"XML", "servicenow-mfa-reset", "<xml/>", append(sn, "Content-Type", "text/xml"), 415, "unsupported_media_type", ""},
		{"missing field", "servicenow-mfa-reset", `{"number":"INC1"}`, append(sn, "Content-Type", "application/json"), 400, "invalid_event", "subject"},
		{"wrong type", "servicenow-mfa-reset", `{"number":1,"caller_id":{"email":"a@contoso.example"}}`, append(sn, "Content-Type", "application/json"), 400, "invalid_event", "id"},
		{"bad time", "servicenow-mfa-reset", strings.Replace(string(incident), "2025-03-04 10:15:30", "yesterday", 1), append(sn, "Content-Type", "application/json"), 400, "invalid_event", "time"},
		{"bad mapped data", "servicenow-mfa-reset", strings.Replace(string(incident), `"callback"`, `"carrier pigeon"`, 1), append(sn, "Content-Type", "application/json"), 400, "invalid_event", "data.verification.method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/v1/hooks/"+tc.route, []byte(tc.body), tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if p := r.problem(t); p.Code != tc.code || p.Field != tc.field {
				t.Fatalf("code %q field %q, want %q %q: %s", p.Code, p.Field, tc.code, tc.field, p.Detail)
			}
		})
	}
	if n := len(h.stored(EventsStream)); n != 0 {
		t.Fatalf("%d stored", n)
	}
}

func TestOktaVerification(t *testing.T) {
	config := testConfig() + `routes:
  okta:
    sources: [hr/bearer]
    oktaVerification: true
    mapping:
      type: '"authflow.employee.left.v1"'
      subject: body.data.events[0].target[0].alternateId
      id: '"okta/" + body.data.events[0].uuid'
      time: body.eventTime
  plain:
    sources: [hr/bearer]
    mapping: {type: '"x"', subject: '"x"', id: '"x"', time: '"x"'}
`
	h := newHarness(t, config, nil)
	r := h.do(h.client, http.MethodGet, "/v1/hooks/okta", nil, append(bearer(tokenHR), "X-Okta-Verification-Challenge", "3pD9r8m5")...)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"verification":"3pD9r8m5"}` {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := h.do(h.client, http.MethodGet, "/v1/hooks/okta", nil, "X-Okta-Verification-Challenge", "3pD9r8m5"); r.status != 401 {
		t.Fatalf("unauthenticated verification: %d", r.status)
	}
	if r := h.do(h.client, http.MethodGet, "/v1/hooks/plain", nil, append(bearer(tokenHR), "X-Okta-Verification-Challenge", "x")...); r.status != 405 {
		t.Fatalf("route without oktaVerification: %d", r.status)
	}
	body := `{"eventType":"com.okta.event_hook","eventTime":"2025-03-04T10:15:30.000Z","data":{"events":[{"uuid":"1c2b","target":[{"alternateId":"lee.gu@contoso.example"}]}]}}`
	h.post("/v1/hooks/okta", []byte(body), append(bearer(tokenHR), "Content-Type", "application/json")...).accepted(t)
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/notify"
	"github.com/authflow/authflow/worker"
)

const (
	auditAdeleID  = "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0101"
	auditAdeleUPN = "adele.vance@contoso.example"
	auditAlexID   = "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0102"
	auditAlexUPN  = "alex.wilber@contoso.example"
	// A verifier name with a comma and quotes: CSV must quote and escape it.
	auditVerifier = `Jo "JJ" Smith, service desk`
)

// auditEnv is a real worker against the Graph emulator on an embedded
// JetStream server, after four events: two TAPs for Adele from the
// helpdesk (the second over the policy's limit), a phone for Alex from HR,
// and an unsigned helpdesk event (bad_signature).
type auditEnv struct {
	url       string
	signer    string         // the helpdesk's public key
	recipient nkeys.KeyPair  // the TAP's recipient
	sealed    *events.Sealed // the TAP as the result holds it
	tap       string         // the TAP in clear, opened with recipient
	results   []*events.Result
	mid       time.Time // between the second and the third event
}

func startAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	ns := startTestNATS(t, "")
	nc, js := connectJS(t, ns)
	emu := graphclienttest.NewServer(t)
	enabled := true
	for _, u := range []graphclienttest.User{
		{ID: auditAdeleID, UserPrincipalName: auditAdeleUPN, DisplayName: "Adele Vance", AccountEnabled: &enabled},
		{ID: auditAlexID, UserPrincipalName: auditAlexUPN, DisplayName: "Alex Wilber", AccountEnabled: &enabled},
	} {
		if err := emu.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	seed := signingSeedFile(t)
	kp, err := readSeedFile(seed, false)
	if err != nil {
		t.Fatal(err)
	}
	e := &auditEnv{url: ns.ClientURL()}
	e.signer, _ = kp.PublicKey()
	policy, err := events.ParsePolicy([]byte(fmt.Sprintf(`version: 1
sources:
  helpdesk/servicenow:
    signature: required
    keys: [%s]
    types: ["*"]
    requireVerification: [authflow.tap.issue.v1]
  hr/workday:
    types: ["*"]
limits:
  - name: taps-per-user
    per: user
    types: [authflow.tap.issue.v1]
    max: 1
    window: 24h
`, e.signer)))
	if err != nil {
		t.Fatal(err)
	}
	graph, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, worker.Config{
		NATS: nc, Graph: graph, Policy: policy, Decoder: events.Decoder{DefaultRegion: "US"},
		Instance: "audit", Partitions: 4, ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if e.recipient, err = nkeys.CreateCurveKeys(); err != nil {
		t.Fatal(err)
	}
	sealTo, _ := e.recipient.PublicKey()
	count := func(stream string) uint64 {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return 0
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	// send publishes one event, waits for its result, and then for the
	// number of notifications it should bring, so that the streams' order
	// is the order of the calls.
	send := func(wantCode int, notifications uint64, args ...string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, append(append([]string{"send"}, args...), "--nats-url", e.url, "--wait", "--json")...)
		if code != wantCode {
			t.Fatalf("send %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		res, err := events.DecodeResult([]byte(strings.TrimSpace(stdout)))
		if err != nil {
			t.Fatalf("send %v: result %q: %v", args, stdout, err)
		}
		e.results = append(e.results, res)
		waitFor(t, "the notifications", func() bool { return count(notify.Stream) == notifications })
	}
	tapData := func(ticket string) string {
		b, _ := json.Marshal(map[string]any{"lifetimeInMinutes": 60, "usableOnce": true, "sealTo": sealTo,
			"verification": map[string]string{"ticketId": ticket, "method": "callback", "verifiedBy": auditVerifier}})
		return string(b)
	}
	send(0, 1, events.TypeTAPIssue, "--subject", auditAdeleUPN, "--source", "helpdesk/servicenow", "--id", "INC0001-1",
		"--sign-seed", seed, "--data", tapData("INC0001"))
	send(0, 2, events.TypePhoneSet, "--subject", auditAlexID, "--source", "hr/workday", "--id", "wd-1",
		"--data", `{"phoneType":"mobile","phoneNumber":"+1 425 555 0100"}`)
	time.Sleep(20 * time.Millisecond)
	e.mid = time.Now()
	time.Sleep(20 * time.Millisecond)
	send(1, 3, events.TypeTAPIssue, "--subject", auditAdeleID, "--source", "helpdesk/servicenow", "--id", "INC0002-1",
		"--sign-seed", seed, "--data", tapData("INC0002"))
	send(1, 3, events.TypeTAPRemove, "--subject", auditAdeleUPN, "--source", "helpdesk/servicenow", "--id", "INC0003-1")

	want := []struct {
		status events.Status
		code   events.Code
	}{{events.StatusSucceeded, ""}, {events.StatusSucceeded, ""}, {events.StatusRejected, events.CodeRateLimited}, {events.StatusRejected, events.CodeBadSignature}}
	for i, w := range want {
		r := e.results[i]
		if r.Data.Status != w.status || (w.code != "" && (r.Data.Error == nil || r.Data.Error.Code != w.code)) {
			t.Fatalf("event %d: result %s %+v, want %s %s", i+1, r.Data.Status, r.Data.Error, w.status, w.code)
		}
	}
	for _, op := range e.results[0].Data.Operations {
		if op.Secret != nil {
			e.sealed = op.Secret
		}
	}
	if e.sealed == nil {
		t.Fatal("the TAP's result holds no sealed secret")
	}
	b, err := events.Open(e.sealed, e.recipient)
	if err != nil {
		t.Fatal(err)
	}
	e.tap = string(b)
	return e
}

// TestAuditTrail checks authflow audit and authflow results on what a real
// worker published: time order across both streams, the filters, CSV,
// provenance, and that no secret leaves.
func TestAuditTrail(t *testing.T) {
	e := startAuditEnv(t)
	r := e.results
	exportJSONL := func(t *testing.T, args ...string) []auditRecord {
		t.Helper()
		code, stdout, stderr := runCLI(t, append([]string{"audit", "--nats-url", e.url}, args...)...)
		if code != 0 {
			t.Fatalf("audit %v: exit %d\nstderr: %s", args, code, stderr)
		}
		assertNoSecret(t, e, stdout)
		var recs []auditRecord
		for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
			if line == "" {
				continue
			}
			dec := json.NewDecoder(strings.NewReader(line))
			dec.DisallowUnknownFields()
			var rec auditRecord
			if err := dec.Decode(&rec); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			recs = append(recs, rec)
		}
		return recs
	}
	// ids names each record: r1..r4 for the results, n1..n3 for their
	// notifications.
	ids := func(recs []auditRecord) string {
		var out []string
		for _, rec := range recs {
			name := "?"
			for i, res := range r {
				switch {
				case rec.Kind == auditKindResult && rec.ID == res.ID:
					name = fmt.Sprintf("r%d", i+1)
				case rec.Kind == auditKindNotification && rec.ID == events.NotificationID(res.ID):
					name = fmt.Sprintf("n%d", i+1)
				}
			}
			out = append(out, name)
		}
		return strings.Join(out, " ")
	}

	t.Run("time order", func(t *testing.T) {
		recs := exportJSONL(t, "--since", "1h")
		if got, want := ids(recs), "r1 n1 r2 n2 r3 n3 r4"; got != want {
			t.Fatalf("records %s, want %s", got, want)
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].StoredAt.Before(recs[i-1].StoredAt) {
				t.Errorf("record %d stored at %s, before record %d at %s", i, recs[i].StoredAt, i-1, recs[i-1].StoredAt)
			}
		}
		// Provenance on the helpdesk's result and its notification.
		for _, rec := range []auditRecord{recs[0], recs[1]} {
			pv := rec.Provenance
			if pv == nil || pv.Source != "helpdesk/servicenow" || pv.Signer != e.signer || pv.TicketID != "INC0001" ||
				pv.Method != "callback" || pv.VerifiedBy != auditVerifier {
				t.Errorf("%s: provenance %+v", rec.Kind, pv)
			}
			if rec.User.ObjectID != auditAdeleID || rec.User.UPN != auditAdeleUPN || rec.Event.ID != "INC0001-1" {
				t.Errorf("%s: user %+v event %+v", rec.Kind, rec.User, rec.Event)
			}
		}
		if recs[1].Result != r[0].ID || recs[1].Reason != events.ReasonChanged || recs[1].Notify != events.NotifyUser {
			t.Errorf("notification: result %q reason %q notify %q", recs[1].Result, recs[1].Reason, recs[1].Notify)
		}
		// The TAP: that one was issued, and to whom it is sealed.
		sealTo, _ := e.recipient.PublicKey()
		var issued []string
		for _, op := range recs[0].Operations {
			if op.SecretIssued != "" {
				issued = append(issued, op.SecretIssued+" "+op.SealedTo)
			}
		}
		if want := []string{events.SecretTAP + " " + sealTo}; !slices.Equal(issued, want) {
			t.Errorf("secrets issued %v, want %v", issued, want)
		}
		if recs[5].Reason != events.ReasonRateLimited || recs[5].Error == nil || recs[5].Error.Code != events.CodeRateLimited {
			t.Errorf("rate-limit notification: %+v", recs[5])
		}
		if recs[6].Provenance == nil || recs[6].Provenance.Signer != "" || recs[6].Error.Code != events.CodeBadSignature {
			t.Errorf("unsigned event: %+v", recs[6])
		}
		for _, rec := range recs {
			if rec.Stream == "" || rec.Seq == 0 || rec.StoredAt.IsZero() || rec.Time.IsZero() {
				t.Errorf("record without its place: %+v", rec)
			}
		}
	})
	t.Run("since and until", func(t *testing.T) {
		mid := e.mid.UTC().Format(time.RFC3339Nano)
		if got, want := ids(exportJSONL(t, "--since", mid)), "r3 n3 r4"; got != want {
			t.Errorf("--since %s: %s, want %s", mid, got, want)
		}
		if got, want := ids(exportJSONL(t, "--since", "1h", "--until", mid)), "r1 n1 r2 n2"; got != want {
			t.Errorf("--until %s: %s, want %s", mid, got, want)
		}
		if got, want := ids(exportJSONL(t, "--since", "2d", "--until", time.Now().Add(time.Hour).Format(time.RFC3339))), "r1 n1 r2 n2 r3 n3 r4"; got != want {
			t.Errorf("until in the future: %s, want %s (the end of the streams)", got, want)
		}
		if got := exportJSONL(t, "--since", time.Now().Add(time.Minute).Format(time.RFC3339)); len(got) != 0 {
			t.Errorf("--since in the future: %d records", len(got))
		}
	})
	t.Run("subject under either name", func(t *testing.T) {
		for _, tt := range []struct{ name, want string }{
			// The unsigned event never resolved the user: it names her by
			// the UPN it was sent with, under the UPN's key.
			{strings.ToUpper(auditAdeleUPN), "r1 n1 r3 n3 r4"},
			{strings.ToUpper(auditAdeleID), "r1 n1 r3 n3"},
			{auditAlexUPN, "r2 n2"},
			{auditAlexID, "r2 n2"},
			{"nobody@contoso.example", ""},
		} {
			if got := ids(exportJSONL(t, "--since", "1h", "--subject", tt.name)); got != tt.want {
				t.Errorf("--subject %s: %q, want %q", tt.name, got, tt.want)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "audit", "--nats-url", e.url, "--since", "1h", "--format", "csv")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		assertNoSecret(t, e, stdout)
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		if err != nil {
			t.Fatalf("not CSV: %v\n%s", err, stdout)
		}
		// The columns are a contract: this list changes only by appending.
		header := []string{"storedAt", "stream", "seq", "kind", "id", "time", "eventSource", "eventId", "eventType",
			"userRef", "userObjectId", "userUpn", "status", "errorCode", "errorMessage", "reason", "result", "notify", "dryRun",
			"source", "signer", "ticketId", "verificationMethod", "verifiedBy", "redriveCount", "redriveBy",
			"attempts", "receivedAt", "finishedAt", "durationMs", "secretsIssued", "operations", "traceparent"}
		if !slices.Equal(rows[0], header) {
			t.Fatalf("header %v\nwant   %v", rows[0], header)
		}
		if len(rows) != 8 {
			t.Fatalf("%d rows, want a header and 7 records", len(rows))
		}
		col := map[string]int{}
		for i, h := range header {
			col[h] = i
		}
		first := rows[1]
		for name, want := range map[string]string{
			"kind": "result", "stream": worker.ResultsStream, "id": r[0].ID, "eventSource": "helpdesk/servicenow", "eventId": "INC0001-1",
			"eventType": events.TypeTAPIssue, "userUpn": auditAdeleUPN, "userObjectId": auditAdeleID, "status": "succeeded",
			"signer": e.signer, "ticketId": "INC0001", "verificationMethod": "callback", "verifiedBy": auditVerifier,
			"secretsIssued": events.SecretTAP, "dryRun": "false", "attempts": "1",
		} {
			if got := first[col[name]]; got != want {
				t.Errorf("first row %s = %q, want %q", name, got, want)
			}
		}
		// The raw text quotes the field with the comma and doubles its quotes.
		if !strings.Contains(stdout, `"Jo ""JJ"" Smith, service desk"`) {
			t.Errorf("verifiedBy not escaped as CSV requires:\n%s", stdout)
		}
		var ops []auditOp
		if err := json.Unmarshal([]byte(first[col["operations"]]), &ops); err != nil || len(ops) != 1 || ops[0].Op != events.OpIssueTAP {
			t.Errorf("operations cell %q: %v %+v", first[col["operations"]], err, ops)
		}
		if n := rows[2]; n[col["kind"]] != "notification" || n[col["stream"]] != notify.Stream || n[col["result"]] != r[0].ID || n[col["reason"]] != "changed" ||
			n[col["attempts"]] != "" || n[col["durationMs"]] != "" || n[col["finishedAt"]] == "" {
			t.Errorf("second row: %v", n)
		}
		if rl := rows[6]; rl[col["errorCode"]] != string(events.CodeRateLimited) || rl[col["reason"]] != "rate_limited" {
			t.Errorf("rate-limit notification row: %v", rl)
		}
		for i, row := range rows {
			if _, err := time.Parse(time.RFC3339Nano, row[col["storedAt"]]); i > 0 && err != nil {
				t.Errorf("row %d: storedAt %q: %v", i, row[col["storedAt"]], err)
			}
		}
		// No record: still the header.
		code, stdout, _ = runCLI(t, "audit", "--nats-url", e.url, "--since", "1h", "--subject", "nobody@contoso.example", "--format", "csv")
		if code != 0 || stdout != strings.Join(header, ",")+"\n" {
			t.Errorf("empty csv export: exit %d, %q", code, stdout)
		}
	})
	t.Run("progress", func(t *testing.T) {
		var out, errs bytes.Buffer
		js := jsFor(t, e.url)
		x := newAuditExport(js, newCSVWriter(&out), &errs, time.Now().Add(-time.Hour), time.Time{})
		x.progress = &auditProgress{w: &errs, every: 0, delay: 0}
		if err := x.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		// A line after every record (every: 0), then the totals; a tick of
		// the flush timer may repeat a line.
		lines := strings.Split(strings.TrimSuffix(errs.String(), "\n"), "\n")
		n := len(lines)
		if n < 8 || !strings.HasPrefix(lines[0], "authflow audit: 1 records (1 results, 0 notifications), stored up to ") ||
			!strings.HasPrefix(lines[n-2], "authflow audit: 7 records (4 results, 3 notifications), stored up to ") ||
			!strings.HasPrefix(lines[n-1], "authflow audit: done: 7 records (4 results, 3 notifications) in ") {
			t.Fatalf("progress lines:\n%s", errs.String())
		}
		if !strings.HasSuffix(lines[n-2], "(100%)") {
			t.Errorf("the last record is at the end of the window: %q", lines[n-2])
		}
		// A short export on a pipe: no progress line at all.
		errs.Reset()
		x = newAuditExport(js, newCSVWriter(io.Discard), &errs, time.Now().Add(-time.Hour), time.Time{})
		if err := x.run(context.Background()); err != nil || errs.Len() != 0 {
			t.Fatalf("short export: %v, stderr %q", err, errs.String())
		}
	})
	t.Run("results filters", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"--id", "INC0001-1"}, "r1"},
			{[]string{"--id", r[2].ID}, "r3"},
			{[]string{"--id", events.EventKey("helpdesk/servicenow", "INC0003-1")}, "r4"}, // a rejection's id is the event key + a digest
			{[]string{"--source", "hr/workday"}, "r2"},
			{[]string{"--status", "rejected"}, "r3 r4"},
			{[]string{"--status", "succeeded", "--source", "helpdesk/servicenow"}, "r1"},
			{[]string{"--status", "rejected", "--subject", strings.ToUpper(auditAdeleUPN)}, "r3 r4"},
			{[]string{"--status", "rejected", "--subject", auditAdeleID}, "r3"},
			{[]string{"--subject", auditAlexUPN}, "r2"},
			{[]string{"--id", "INC0001-1", "--status", "failed"}, ""},
			{[]string{"--id", "nothing-like-it"}, ""},
		} {
			code, stdout, stderr := runCLI(t, append([]string{"results", "--nats-url", e.url, "--json"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("results %v: exit %d: %s", tt.args, code, stderr)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if line == "" {
					continue
				}
				res, err := events.DecodeResult([]byte(line))
				if err != nil {
					t.Fatalf("results %v: %q: %v", tt.args, line, err)
				}
				for i := range r {
					if res.ID == r[i].ID {
						got = append(got, fmt.Sprintf("r%d", i+1))
					}
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("results %v: %v, want %q", tt.args, got, tt.want)
			}
		}
	})
	// Last: it adds a message to the results stream.
	t.Run("undecodable message", func(t *testing.T) {
		js := jsFor(t, e.url)
		if _, err := js.Publish(context.Background(), worker.ResultSubject("garbage"), []byte(`{"not":"a result"}`)); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, "audit", "--nats-url", e.url, "--since", "1h")
		if code != 0 || !strings.Contains(stderr, "1 stored messages did not decode") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		var rec auditRecord
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
			t.Fatal(err)
		}
		if len(lines) != 8 || rec.Kind != auditKindUndecodable || rec.Stream != worker.ResultsStream || rec.Seq != 5 || rec.Error == nil ||
			!strings.Contains(rec.Error.Message, "did not decode as a result") {
			t.Fatalf("%d lines, last %+v", len(lines), rec)
		}
	})
}

// assertNoSecret fails when out holds the TAP, its ciphertext or any
// sealed-secret field.
func assertNoSecret(t *testing.T, e *auditEnv, out string) {
	t.Helper()
	for _, s := range []string{e.tap, e.sealed.Ciphertext, `"ciphertext"`, e.sealed.Sender} {
		if strings.Contains(out, s) {
			t.Fatalf("the export holds %q (the TAP or its sealed form):\n%s", s, out)
		}
	}
}

func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestAuditFlags checks that bad values exit 2 naming the flag, before
// anything connects (the URL is unreachable).
func TestAuditFlags(t *testing.T) {
	a := func(extra ...string) []string {
		return append([]string{"audit", "--nats-url", "nats://127.0.0.1:1", "--nats-timeout", "1s"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no since", a(), nil, "--since is required"},
		{"since garbage", a("--since", "yesterday"), nil, `invalid value "yesterday" for --since: want an RFC 3339 time (2026-05-01T08:00:00Z), a date (2026-05-01) or a duration before now (24h, 7d) (`},
		{"since negative", a("--since", "-24h"), nil, `invalid value "-24h" for --since: the duration must not be negative`},
		{"since bad date", a("--since", "2026-02-30"), nil, `invalid value "2026-02-30" for --since: want an RFC 3339 time`},
		{"until garbage", a("--since", "24h", "--until", "soon"), nil, `invalid value "soon" for --until: want an RFC 3339 time`},
		{"until before since", a("--since", "2026-05-02T00:00:00Z", "--until", "2026-05-01"), nil, "--until (2026-05-01T00:00:00Z) must be after --since (2026-05-02T00:00:00Z)"},
		{"until equal to since", a("--since", "2026-05-01", "--until", "2026-05-01T00:00:00Z"), nil, "--until (2026-05-01T00:00:00Z) must be after --since"},
		{"format", a("--since", "24h", "--format", "xml"), nil, `invalid value "xml" for --format: must be jsonl or csv (`},
		{"subject", a("--since", "24h", "--subject", "not a user"), nil, "--subject"},
		{"too many days", a("--since", "99999999d"), nil, `invalid value "99999999d" for --since: too many days`},
		{"env twin", a(), map[string]string{"AUTHFLOW_SINCE": "tuesday"}, `invalid value "tuesday" for AUTHFLOW_SINCE (--since): want an RFC 3339 time`},
		{"results env twin", []string{"results"}, map[string]string{"AUTHFLOW_STATUS": "ok"}, `invalid value "ok" for AUTHFLOW_STATUS (--status)`},
		{"env format", a("--since", "1h"), map[string]string{"AUTHFLOW_FORMAT": "json"}, `invalid value "json" for AUTHFLOW_FORMAT (--format): must be jsonl or csv`},
		{"results status", []string{"results", "--status", "pending"}, nil, `invalid value "pending" for --status: must be succeeded, failed, rejected, scheduled, cancelled, pending_approval (`},
		{"results id with a line break", []string{"results", "--id", "INC\n1"}, nil, `invalid value "INC\n1" for --id: a control character`},
		{"results source with a space", []string{"results", "--source", " hr/workday"}, nil, `invalid value " hr/workday" for --source: leading or trailing space`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, want 2 naming %q\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"0s", now},
		{"2026-05-01T08:00:00Z", time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)},
		{"2026-05-01T10:00:00.5+02:00", time.Date(2026, 5, 1, 8, 0, 0, 5e8, time.UTC)},
		{"2026-05-01", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{" 1h ", now.Add(-time.Hour)},
	} {
		got, err := parseWhen(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "d", "-1h", "1w", "7.5d", "2026-13-01", "2026-05-01 08:00", "now", "-3d"} {
		if got, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) = %s, want an error", bad, got)
		}
	}
}

// TestAuditProgressTerminal checks the terminal form: one line rewritten
// in place, then the totals on a line of their own.
func TestAuditProgressTerminal(t *testing.T) {
	var b bytes.Buffer
	p := newAuditProgress(&b, true)
	start := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	p.begin(start, start.Add(-time.Hour), start)
	counts := map[string]int{auditKindResult: 3, auditKindNotification: 1}
	p.show(start.Add(500*time.Millisecond), 4, counts) // too early
	if b.Len() != 0 {
		t.Fatalf("a line before the first second: %q", b.String())
	}
	p.at = start.Add(-30 * time.Minute)
	p.show(start.Add(2*time.Second), 4, counts)
	p.show(start.Add(2*time.Second+100*time.Millisecond), 4, counts) // within the interval
	p.finish(start.Add(3*time.Second), 4, counts)
	want := "\r\x1b[Kauthflow audit: 4 records (3 results, 1 notifications), stored up to 2026-05-10T11:30:00Z (50%)" +
		"\r\x1b[Kauthflow audit: done: 4 records (3 results, 1 notifications) in 3s\n"
	if b.String() != want {
		t.Fatalf("got  %q\nwant %q", b.String(), want)
	}
}

// auditReaderGrants are the NATS permissions docs/audit.md lists for a
// SIEM reader (besides its inbox): JetStream API requests on the two
// streams.
var auditReaderGrants = []string{
	"$JS.API.STREAM.INFO.AUTHFLOW_RESULTS", "$JS.API.STREAM.INFO.AUTHFLOW_NOTIFICATIONS",
	"$JS.API.CONSUMER.CREATE.AUTHFLOW_RESULTS.>", "$JS.API.CONSUMER.CREATE.AUTHFLOW_NOTIFICATIONS.>",
	"$JS.API.CONSUMER.MSG.NEXT.AUTHFLOW_RESULTS.*", "$JS.API.CONSUMER.MSG.NEXT.AUTHFLOW_NOTIFICATIONS.*",
	"$JS.API.CONSUMER.INFO.AUTHFLOW_RESULTS.*", "$JS.API.CONSUMER.INFO.AUTHFLOW_NOTIFICATIONS.*",
	"$JS.API.CONSUMER.DELETE.AUTHFLOW_RESULTS.*", "$JS.API.CONSUMER.DELETE.AUTHFLOW_NOTIFICATIONS.*",
}

// TestAuditReaderPermissions runs the export as a user with only the
// grants docs/audit.md lists, and checks that without one of those it
// cannot do without, the export fails, naming the stream, rather than
// hanging or succeeding with half the record.
func TestAuditReaderPermissions(t *testing.T) {
	for _, tt := range []struct{ drop, want string }{
		{"", ""},
		{"$JS.API.STREAM.INFO.AUTHFLOW_NOTIFICATIONS", "stream AUTHFLOW_NOTIFICATIONS: context deadline exceeded (no answer from the JetStream API in 1s: the reader needs the permissions in docs/audit.md)"},
		{"$JS.API.CONSUMER.CREATE.AUTHFLOW_NOTIFICATIONS.>", "read AUTHFLOW_NOTIFICATIONS: context deadline exceeded (no answer from the JetStream API in 1s: the reader needs the permissions in docs/audit.md)"},
		{"$JS.API.CONSUMER.MSG.NEXT.AUTHFLOW_RESULTS.*", "read AUTHFLOW_RESULTS: no message in 1.5s although the stream holds more (the reader needs the permissions in docs/audit.md)"},
	} {
		t.Run("without "+tt.drop, func(t *testing.T) {
			var grants []string
			for _, g := range auditReaderGrants {
				if g != tt.drop {
					grants = append(grants, g)
				}
			}
			s, err := server.NewServer(&server.Options{
				ServerName: "perm", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
				Users: []*server.User{
					{Username: "admin", Password: "admin-pw"},
					{Username: "siem", Password: "siem-pw", Permissions: &server.Permissions{
						Publish:   &server.SubjectPermission{Allow: grants},
						Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_siem.>"}},
					}},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			go s.Start()
			if !s.ReadyForConnections(10 * time.Second) {
				t.Fatal("nats server not ready")
			}
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
			nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("admin", "admin-pw"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, _ := jetstream.New(nc)
			ensureTopology(t, js)
			ctx := context.Background()
			if err := notify.EnsureStream(ctx, js, notify.StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			// A result and its notification, as the worker publishes them.
			body := testResult(t, "hr/workday", "evt-1", auditAdeleUPN, events.StatusSucceeded)
			if _, err := js.Publish(ctx, worker.ResultSubject("k"), body); err != nil {
				t.Fatal(err)
			}
			res, _ := events.DecodeResult(body)
			now := time.Now()
			if err := notify.Publish(ctx, js, "k", &events.Notification{
				SpecVersion: "1.0", ID: events.NotificationID(res.ID), Source: events.ResultSource, Type: events.TypeNotification,
				Time: now, DataContentType: "application/json",
				Data: events.NotificationData{Event: res.Data.Event, Result: res.ID, User: events.UserInfo{ObjectID: auditAdeleID},
					Reason: events.ReasonChanged, Status: events.StatusSucceeded, OccurredAt: now, Notify: events.NotifyUser,
					Changes: []events.Change{{Op: events.OpEnsurePhone, MethodKind: events.KindPhone, Outcome: events.OutcomeCreated}}},
			}); err != nil {
				t.Fatal(err)
			}

			if tt.drop == "" {
				// Through the command: its flags, its inbox prefix.
				url := strings.Replace(s.ClientURL(), "nats://", "nats://siem:siem-pw@", 1)
				code, stdout, stderr := runCLI(t, "audit", "--nats-url", url, "--nats-inbox-prefix", "_INBOX_siem", "--since", "1h")
				if code != 0 || strings.Count(stdout, "\n") != 2 || !strings.Contains(stdout, `"kind":"notification"`) {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
				}
				return
			}
			siem, err := nats.Connect(s.ClientURL(), nats.UserInfo("siem", "siem-pw"), nats.CustomInboxPrefix("_INBOX_siem"),
				nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(siem.Close)
			sjs, _ := jetstream.New(siem)
			var errs bytes.Buffer
			x := newAuditExport(sjs, newJSONLWriter(io.Discard), &errs, now.Add(-time.Hour), time.Time{})
			x.idle, x.openTimeout, x.stall = 500*time.Millisecond, time.Second, 1500*time.Millisecond
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := x.run(rctx); err == nil || err.Error() != tt.want {
				t.Fatalf("error %v\nwant  %s", err, tt.want)
			}
		})
	}
}

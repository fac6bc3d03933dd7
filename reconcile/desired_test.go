package reconcile

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
)

func TestReadCSV(t *testing.T) {
	const kim = "kim@contoso.example"
	tests := []struct {
		name    string
		in      string
		rows    []Row
		bad     []BadRow
		ignored []string
	}{
		{"any column order, empty cells, national numbers",
			"\xef\xbb\xbfMobile, User ,status,email,office,alternateMobile\n(425) 555-0100," + kim + ",active,,,\n\n,ann@contoso.example,LEFT,a@b.example,+44 20 7946 0958,\n",
			[]Row{{Line: 2, User: kim, Status: StatusActive, Mobile: "+1 4255550100"},
				{Line: 4, User: "ann@contoso.example", Status: StatusLeft, Email: "a@b.example", Office: "+44 2079460958"}}, nil, nil},
		{"only a user column: no opinions", "user\n" + kim + "\n", []Row{{Line: 2, User: kim}}, nil, nil},
		{"ignored columns", "name,user,cost centre\nKim," + kim + ",42\n", []Row{{Line: 2, User: kim}}, nil, []string{"cost centre", "name"}},
		{"bad rows are skipped with their line",
			"user,status,mobile,email\n" +
				kim + ",active,12,\n" + // 2: not a phone
				kim + ",retired,,\n" + // 3: status
				",active,,\n" + // 4: no user
				"not a user,active,,\n" + // 5: user
				kim + ",active,,not-an-address\n" + // 6: email
				kim + ",active\n" + // 7: field count
				`"` + kim + ",active,,\n" + // 8: open quote
				kim + `,active,"x"y,` + "\n" + // 9: stray quote
				kim + ",active,,\n" + // 10: good
				"KIM@contoso.example,left,,\n", // 11: the same user again
			[]Row{{Line: 10, User: kim, Status: StatusActive}},
			[]BadRow{{Line: 2, User: kim, Error: "mobile: "}, {Line: 3, User: kim, Error: "status must be active or left"},
				{Line: 4, Error: "user is required"}, {Line: 5, Error: "user: "}, {Line: 6, User: kim, Error: "email: must be an email address"},
				{Line: 7, Error: "has 2 fields, the header names 4 columns"}, {Line: 8, Error: "not a CSV row"},
				{Line: 9, Error: "not a CSV row"}, {Line: 11, User: "KIM@contoso.example", Error: "already on line 10"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Read(strings.NewReader(tt.in), FormatCSV, "US")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Rows, tt.rows) {
				t.Errorf("rows\n got %+v\nwant %+v", d.Rows, tt.rows)
			}
			checkBad(t, d.Bad, tt.bad)
			if !slices.Equal(d.Ignored, tt.ignored) {
				t.Errorf("ignored %q, want %q", d.Ignored, tt.ignored)
			}
		})
	}
}

// checkBad compares bad rows by line and user, and the error by substring.
func checkBad(t *testing.T, got, want []BadRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("bad rows\n got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i].Line != want[i].Line || got[i].User != want[i].User || !strings.Contains(got[i].Error, want[i].Error) {
			t.Errorf("bad row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadJSONLines(t *testing.T) {
	in := `{"user":"kim@contoso.example","status":"active","mobile":"+14255550100","email":null,"title":"x"}
{"user":"ann@contoso.example","status":"left"} 
[1,2]
{"user":"bob@contoso.example","mobile":42}
{"user":"cat@contoso.example","user":"dan@contoso.example"}
{"user":"eve@contoso.example"} {"user":"x@contoso.example"}
{"user":"fay@contoso.example",
{"User":"gus@contoso.example"}
`
	d, err := Read(strings.NewReader(in), FormatJSONL, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{{Line: 1, User: "kim@contoso.example", Status: StatusActive, Mobile: "+1 4255550100"},
		{Line: 2, User: "ann@contoso.example", Status: StatusLeft}}
	if !slices.Equal(d.Rows, want) {
		t.Errorf("rows %+v", d.Rows)
	}
	checkBad(t, d.Bad, []BadRow{{Line: 3, Error: "not a JSON object"}, {Line: 4, Error: "mobile must be a string or null"},
		{Line: 5, Error: `key "user" appears twice`}, {Line: 6, Error: "more than one JSON value"},
		{Line: 7, Error: "not valid JSON"}, {Line: 8, Error: "user is required"}})
	// Keys are exact: "User" names nothing.
	if !slices.Equal(d.Ignored, []string{"User", "title"}) {
		t.Errorf("ignored %q", d.Ignored)
	}
}

// TestReadRefusesFile: what cannot be an HR export fails the whole file.
func TestReadRefusesFile(t *testing.T) {
	tests := []struct {
		name, in string
		format   Format
		want     string
	}{
		{"empty", "\n\n", FormatCSV, "empty file"},
		{"no user column", "status,mobile\nactive,\n", FormatCSV, "no user column"},
		{"column twice", "user,USER\nx,y\n", FormatCSV, "names the column user twice"},
		{"bad header", "\"user\n", FormatCSV, "line 1: header row"},
		{"long line", "user\n" + strings.Repeat("a", MaxLineBytes+1) + "\n", FormatCSV, "line 2 is longer than"},
		{"unknown format", "user\n", Format("xml"), "unknown format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Read(strings.NewReader(tt.in), tt.format, "US"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	for name, want := range map[string]Format{"hr.csv": FormatCSV, "hr.JSONL": FormatJSONL, "x.ndjson": FormatJSONL, "export": FormatCSV} {
		if got := FormatOf(name); got != want {
			t.Errorf("FormatOf(%q) = %s, want %s", name, got, want)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat accepts yaml")
	}
}

// TestCorrectionIDs: the id depends on the day, the user (in any case),
// the type and the data, and nothing else.
func TestCorrectionIDs(t *testing.T) {
	row := &Row{Line: 3, User: "Kim@contoso.example"}
	a := setCorrection(row, FieldMobile, "+1 4255550100")
	same := setCorrection(&Row{Line: 9, User: "kim@CONTOSO.example"}, FieldMobile, "+1 4255550100")
	if a.ID("2026-03-01") != same.ID("2026-03-01") {
		t.Error("the id depends on the line or the case of the UPN")
	}
	others := []string{a.ID("2026-03-02"), setCorrection(row, FieldMobile, "+1 4255550101").ID("2026-03-01"),
		setCorrection(row, FieldOffice, "+1 4255550100").ID("2026-03-01"), leftCorrection(row).ID("2026-03-01")}
	for _, id := range others {
		if id == a.ID("2026-03-01") {
			t.Errorf("id %s repeats", id)
		}
	}
	if id := a.ID("2026-03-01"); !strings.HasPrefix(id, "reconcile-2026-03-01-") || len(id) > 128 {
		t.Errorf("id %q", id)
	}
}

// fakePublisher keeps what it is given; a second copy of an id is a duplicate.
type fakePublisher struct{ got []Message }

func (p *fakePublisher) Publish(_ context.Context, m Message) (bool, error) {
	dup := slices.ContainsFunc(p.got, func(o Message) bool { return o.ID == m.ID })
	p.got = append(p.got, m)
	return dup, nil
}

// TestApply: corrections become valid, signed events of source
// authflow/reconcile in order; applying them again the same day publishes
// the same ids.
func TestApply(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	row := &Row{Line: 2, User: "kim@contoso.example"}
	cs := []Correction{setCorrection(row, FieldMobile, "+1 4255550100"), setCorrection(row, FieldAlternateMobile, "+1 4255550101"),
		setCorrection(row, FieldEmail, "kim@home.example"), leftCorrection(&Row{Line: 3, User: userID(1)})}
	bad := setCorrection(&Row{Line: 4, User: "ann@contoso.example"}, FieldMobile, "12") // not a phone: refused before publishing
	cs = append(cs, bad)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var pub fakePublisher
	dec := events.Decoder{DefaultRegion: "US"}
	a, err := Apply(context.Background(), cs, &pub, dec, kp, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Published != 4 || a.Duplicates != 0 || len(a.Failed) != 1 || a.Failed[0].Line != 4 {
		t.Fatalf("applied %+v", a)
	}
	wantTypes := []string{events.TypePhoneSet, events.TypePhoneSet, events.TypeEmailSet, events.TypeEmployeeLeft}
	pubKey, _ := kp.PublicKey()
	for i, m := range pub.got {
		ev, err := dec.Decode(m.Event)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Type != wantTypes[i] || ev.Source != Source || ev.ID != m.ID || ev.Subject != cs[i].User || !ev.Time.Equal(now) {
			t.Errorf("event %d: %+v", i, ev)
		}
		if err := events.Verify(m.Event, m.Signature, m.Signer); err != nil || m.Signer != pubKey {
			t.Errorf("event %d: signature %v, signer %s", i, err, m.Signer)
		}
	}
	var data map[string]string
	if err := json.Unmarshal(pub.got[1].Event, &struct{ Data *map[string]string }{&data}); err != nil ||
		data["phoneType"] != "alternateMobile" || data["phoneNumber"] != "+1 4255550101" {
		t.Errorf("data %v (%v)", data, err)
	}
	again, err := Apply(context.Background(), cs[:4], &pub, dec, kp, now.Add(3*time.Hour))
	if err != nil || again.Published != 0 || again.Duplicates != 4 {
		t.Fatalf("second apply the same day: %+v, %v", again, err)
	}
}

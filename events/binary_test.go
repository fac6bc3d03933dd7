package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// toBinary renders a structured event as a binary-mode NATS message, as a
// publisher following the NATS protocol binding would: each attribute but
// data a ce- header, percent-encoded (space, '"', '%' and everything
// outside printable ASCII), datacontenttype as Content-Type, data as the
// body.
func toBinary(t testing.TB, raw []byte) (map[string][]string, []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	h := map[string][]string{}
	var body []byte
	for k, v := range doc {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number: // the canonical string of a CloudEvents Integer
			n, _, _ := jsonInt(string(v))
			s = fmt.Sprint(n)
		case bool:
			s = fmt.Sprint(v)
		default:
			if k != "data" {
				t.Fatalf("attribute %s of type %T", k, v)
			}
		}
		switch k {
		case "data":
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			body = b
		case "datacontenttype":
			h["Content-Type"] = []string{s}
		default:
			h["ce-"+k] = []string{percentEncode(s)}
		}
	}
	return h, body
}

func percentEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TestBinaryRoundTrip sends every documented example and every good case
// in binary mode and checks that it decodes to the same event as in
// structured mode.
func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{}
	for _, b := range docBlocks(t) {
		if b.kind == "example event" {
			inputs["doc "+b.name] = b.body
		}
	}
	for _, tc := range goodCases() {
		inputs[tc.name] = tc.raw
	}
	d := Decoder{DefaultRegion: "US"}
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			want, err := d.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			h, body := toBinary(t, raw)
			if !IsBinary(h) {
				t.Fatalf("IsBinary(%v) = false", h)
			}
			structured, err := StructuredFromBinary(h, body)
			if err != nil {
				t.Fatalf("StructuredFromBinary: %v", err)
			}
			got, err := d.Decode(structured)
			if err != nil {
				t.Fatalf("Decode(%s): %v", structured, err)
			}
			if got.Key() != want.Key() || got.Type != want.Type || got.Subject != want.Subject || !got.Time.Equal(want.Time) ||
				got.DataContentType != want.DataContentType || got.DataSchema != want.DataSchema ||
				got.TraceParent != want.TraceParent || got.TraceState != want.TraceState {
				t.Errorf("envelope differs:\n got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(got.Payload, want.Payload) || !reflect.DeepEqual(got.Verification, want.Verification) || got.DryRun != want.DryRun {
				t.Errorf("payload differs: %+v, want %+v", got.Payload, want.Payload)
			}
			// Binary mode carries every value as a string.
			if len(got.Extensions) != len(want.Extensions) {
				t.Errorf("extensions %v, want %v", got.Extensions, want.Extensions)
			}
			for k, v := range want.Extensions {
				s := strings.Trim(string(v), `"`)
				if g := got.Extensions[k]; string(g) != string(jsonString(s)) {
					t.Errorf("extension %s = %s, want %q", k, g, s)
				}
			}
		})
	}
}

func TestStructuredFromBinaryExact(t *testing.T) {
	t.Parallel()
	h := map[string][]string{
		"ce-tracestate":  {"congo=t61rcWkgMzE"},
		"CE-ID":          {"Euro%20%E2%82%AC%20%F0%9F%98%80"},
		"ce-zeta":        {`"quoted \"value\""`},
		"ce-SpecVersion": {"1.0"},
		"ce-source":      {"hr/workday?tenant=contoso"},
		"ce-type":        {"authflow.methods.inventory.v1"},
		"ce-subject":     {"adele.vance@contoso.com"},
		"ce-time":        {" 2026-11-26t09:00:00z "},
		"ce-alpha":       {"5"},
		"Content-Type":   {"application/json; charset=utf-8"},
		"Nats-Msg-Id":    {"ignored"},
	}
	body := []byte(" \n{ \"dryRun\" : true }\n")
	want := `{"specversion":"1.0","id":"Euro € 😀","source":"hr/workday?tenant=contoso","type":"authflow.methods.inventory.v1",` +
		`"subject":"adele.vance@contoso.com","time":"2026-11-26t09:00:00z","datacontenttype":"application/json; charset=utf-8",` +
		`"tracestate":"congo=t61rcWkgMzE","alpha":"5","zeta":"quoted \"value\"","data":{ "dryRun" : true }}`
	for range 20 { // map order must not matter
		got, err := StructuredFromBinary(h, body)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	ev := decodeOK(t, []byte(want))
	if ev.ID != "Euro € 😀" || string(ev.Extensions["alpha"]) != `"5"` || !ev.DryRun {
		t.Errorf("decoded %+v", ev)
	}
}

func TestStructuredFromBinaryRejects(t *testing.T) {
	t.Parallel()
	base := func(extra ...string) map[string][]string {
		h := map[string][]string{
			"ce-specversion": {"1.0"}, "ce-id": {"e-1"}, "ce-source": {"hr/workday"},
			"ce-type": {"authflow.methods.inventory.v1"}, "ce-subject": {"adele.vance@contoso.com"}, "ce-time": {testTime},
		}
		for i := 0; i < len(extra); i += 2 {
			h[extra[i]] = append(h[extra[i]], extra[i+1])
		}
		return h
	}
	many := base()
	for i := range 21 {
		many[fmt.Sprintf("ce-x%02d", i)] = []string{"v"}
	}
	tests := []struct {
		name  string
		h     map[string][]string
		body  string
		code  Code
		field string
	}{
		{"signed", base(HeaderSignature, strings.Repeat("A", 86), HeaderSigner, "UABC"), `{}`, CodeBadSignature, ""},
		{"signer only, any case", base("authflow-signer", "UABC"), `{}`, CodeBadSignature, ""},
		{"ce-data", base("ce-data", "{}"), `{}`, CodeInvalidEvent, "data"},
		{"ce-data_base64", base("ce-data_base64", "e30="), `{}`, CodeInvalidEvent, "data_base64"},
		{"bad attribute name", base("ce-ticket_id", "x"), `{}`, CodeInvalidEvent, "ticket_id"},
		{"attribute name too long", base("ce-"+strings.Repeat("a", 21), "x"), `{}`, CodeInvalidEvent, strings.Repeat("a", 21)},
		{"empty attribute name", base("ce-", "x"), `{}`, CodeInvalidEvent, `""`},
		{"repeated header", base("ce-id", "e-2"), `{}`, CodeInvalidEvent, "id"},
		{"repeated in another case", base("CE-ID", "e-2"), `{}`, CodeInvalidEvent, "id"},
		{"bad percent escape", base("ce-ticket", "a%2"), `{}`, CodeInvalidEvent, "ticket"},
		{"overlong UTF-8", base("ce-ticket", "a%C0%A0"), `{}`, CodeInvalidEvent, "ticket"},
		{"unterminated quote", base("ce-ticket", `"abc`), `{}`, CodeInvalidEvent, "ticket"},
		{"text after quote", base("ce-ticket", `"abc"d`), `{}`, CodeInvalidEvent, "ticket"},
		{"content types differ", base("Content-Type", "application/json", "ce-datacontenttype", "application/vnd.x+json"), `{}`, CodeInvalidEvent, "datacontenttype"},
		{"content type repeated", base("Content-Type", "application/json", "content-type", "application/json"), `{}`, CodeInvalidEvent, "datacontenttype"},
		{"too many headers", many, `{}`, CodeInvalidEvent, ""},
		{"empty body", base(), " \n", CodeInvalidEvent, "data"},
		{"body not JSON", base(), `dryRun=true`, CodeInvalidEvent, "data"},
		{"body injects attributes", base(), `{}, "subject": "admin@contoso.com"`, CodeInvalidEvent, "data"},
		{"body two values", base(), `{} {}`, CodeInvalidEvent, "data"},
		{"body duplicate key", base(), `{"dryRun":true,"dryRun":false}`, CodeInvalidEvent, "data"},
		{"body invalid UTF-8", base(), "{\"x\":\"\xff\"}", CodeInvalidEvent, "data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := StructuredFromBinary(tc.h, []byte(tc.body))
			if err == nil {
				t.Fatalf("accepted: %s", b)
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Code != tc.code || (tc.field != "" && e.Field != tc.field) {
				t.Fatalf("got %s field %q (%v), want %s field %q", e.Code, e.Field, err, tc.code, tc.field)
			}
			if strings.ContainsAny(e.Error(), "\r\n") {
				t.Errorf("message spans lines: %q", e.Error())
			}
		})
	}
	// What converts still meets every rule of Decode: a missing id is the
	// decoder's error, with its path.
	h := base()
	delete(h, "ce-id")
	b, err := StructuredFromBinary(h, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Decoder{}).Decode(b); CodeOf(err) != CodeInvalidEvent || err.(*Error).Field != "id" {
		t.Errorf("Decode without ce-id: %v", err)
	}
	h = base()
	for i := range 17 {
		h[fmt.Sprintf("ce-x%02d", i)] = []string{"v"}
	}
	b, err = StructuredFromBinary(h, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Decoder{}).Decode(b); CodeOf(err) != CodeInvalidEvent || err.(*Error).Field != "x16" {
		t.Errorf("Decode of 17 extensions in binary mode: %v", err)
	}
	h = base("ce-id", "")
	h["ce-id"] = []string{"e 1\r\n"}
	if b, err := StructuredFromBinary(h, []byte(`{}`)); err != nil {
		t.Fatal(err)
	} else if _, err := (Decoder{}).Decode(b); err == nil || err.(*Error).Field != "id" {
		t.Errorf("a decoded CRLF in ce-id: %v", err)
	}
}

func TestIsBinary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h    map[string][]string
		want bool
	}{
		{nil, false},
		{map[string][]string{"Nats-Msg-Id": {"x"}}, false},
		{map[string][]string{"ce-id": {"x"}}, true},
		{map[string][]string{"CE-Id": {"x"}, "Content-Type": {"application/json"}}, true},
		{map[string][]string{"ce-id": {"x"}, "Content-Type": {"application/cloudevents+json"}}, false},
		{map[string][]string{"ce-id": {"x"}, "content-type": {"Application/CloudEvents+JSON; charset=utf-8"}}, false},
		{map[string][]string{"Content-Type": {"application/cloudevents+json"}}, false},
		{map[string][]string{"Content-Type": {"application/json"}}, false},
	}
	for _, tc := range tests {
		if got := IsBinary(tc.h); got != tc.want {
			t.Errorf("IsBinary(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestPeekBinaryIdentity(t *testing.T) {
	t.Parallel()
	src, id, typ := PeekBinaryIdentity(map[string][]string{
		"ce-source": {"hr/workday%3Ftenant=1"}, "CE-ID": {`"INC 1"`}, "ce-type": {"authflow.nope.v1"},
	})
	if src != "hr/workday?tenant=1" || id != "INC 1" || typ != "authflow.nope.v1" {
		t.Errorf("got %q %q %q", src, id, typ)
	}
	src, id, typ = PeekBinaryIdentity(map[string][]string{
		"ce-source": {"hr workday"}, "ce-id": {"a", "b"}, "ce-type": {"%ZZ"},
	})
	if src != "" || id != "" || typ != "" {
		t.Errorf("got %q %q %q, want all empty", src, id, typ)
	}
}

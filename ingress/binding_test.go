package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authflow/authflow/events"
)

// TestBinaryEvent: binary mode over HTTP follows the worker's rules for the
// NATS binding (events.StructuredFromBinary): header names in any case,
// values unquoted and percent-decoded once, Content-Type as
// datacontenttype, the body as data.
func TestBinaryEvent(t *testing.T) {
	base := func(kv ...string) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Ce-Id", "id-1")
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		h      http.Header
		body   string
		want   string // the structured event, or "" for a refusal
		field  string // the refusal's field
		status int
	}{
		{"percent-encoded", base("Ce-Subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"), `{"a":1}`,
			`{"id":"id-1","subject":"Euro € 😀","datacontenttype":"application/json","data":{"a":1}}`, "", 0},
		{"quoted, then percent-decoded", base("Ce-Source", `"a%20b"`), `{}`,
			`{"id":"id-1","source":"a b","datacontenttype":"application/json","data":{}}`, "", 0},
		{"core attributes first, then extensions sorted", base("Ce-Zext", "z", "Ce-Aext", "a", "Ce-Specversion", "1.0"), ` [1] `,
			`{"specversion":"1.0","id":"id-1","datacontenttype":"application/json","aext":"a","zext":"z","data":[1]}`, "", 0},
		{"ce-datacontenttype that agrees", base("Ce-Datacontenttype", "application/json"), `{}`,
			`{"id":"id-1","datacontenttype":"application/json","data":{}}`, "", 0},
		{"ce-datacontenttype that differs", base("Ce-Datacontenttype", "text/json"), `{}`, "", "datacontenttype", 400},
		{"overlong UTF-8", base("Ce-Subject", "%C0%A0"), `{}`, "", "subject", 400},
		{"bad percent", base("Ce-Subject", "%zz"), `{}`, "", "subject", 400},
		{"repeated", base("Ce-Subject", "a", "Ce-Subject", "b"), `{}`, "", "subject", 400},
		{"ce-data", base("Ce-Data", "{}"), `{}`, "", "data", 400},
		{"not an attribute name", base("Ce-Under_score", "x"), `{}`, "", "under_score", 400},
		{"empty body", base(), ``, "", "data", 400},
		{"body not JSON", base(), `{`, "", "data", 400},
		{"duplicate key in the body", base(), `{"a":1,"a":2}`, "", "data", 400},
		{"no ce- header", http.Header{"Content-Type": {"application/json"}}, `{}`, "", "specversion", 400},
		{"signed", base(events.HeaderSignature, "x"), `{}`, "", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, p := binaryEvent(tc.h, []byte(tc.body))
			if tc.want != "" {
				if p != nil || string(got) != tc.want {
					t.Fatalf("binaryEvent = %s, %+v\nwant %s", got, p, tc.want)
				}
				return
			}
			if p == nil || p.status != tc.status || p.field != tc.field {
				t.Fatalf("binaryEvent = %s, %+v; want a %d refusal at %q", got, p, tc.status, tc.field)
			}
		})
	}
}

func TestModeOf(t *testing.T) {
	tests := []struct {
		ct     string
		mode   contentMode
		status int
	}{
		{"application/cloudevents+json", modeStructured, 0},
		{"application/cloudevents+json; charset=UTF-8", modeStructured, 0},
		{"application/cloudevents-batch+json", modeBatch, 0},
		{"application/json", modeBinary, 0},
		{"application/json; charset=utf-8", modeBinary, 0},
		{"application/vnd.contoso+json", modeBinary, 0},
		{"application/cloudevents+json; charset=latin1", 0, 415},
		{"application/cloudevents+avro", 0, 415},
		{"application/cloudevents-batch+avro", 0, 415},
		{"text/xml", 0, 415},
		{"", 0, 415},
		{";;", 0, 415},
	}
	for _, tc := range tests {
		m, p := modeOf(tc.ct)
		switch {
		case tc.status != 0 && (p == nil || p.status != tc.status):
			t.Errorf("modeOf(%q): %v, want %d", tc.ct, p, tc.status)
		case tc.status == 0 && (p != nil || m != tc.mode):
			t.Errorf("modeOf(%q) = %v %v, want %v", tc.ct, m, p, tc.mode)
		}
	}
}

// encodeHeaderValue is the binding's sender-side encoding.
func encodeHeaderValue(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// FuzzHTTPBinding feeds arbitrary attributes, content types and bodies
// through the binding. It must never panic; a binary event it builds is
// valid JSON whose attributes are the header values, decoded; the
// header encoding round-trips any UTF-8 string; a batch splits into
// elements whose bytes are in the body.
func FuzzHTTPBinding(f *testing.F) {
	f.Add("application/json", "id-1", "hr/x", "Euro € 😀", []byte(`{"a":1}`))
	f.Add("application/cloudevents-batch+json", "", "", "", []byte(`[{"a":1},{"b":[2]}]`))
	f.Add("application/cloudevents+json", "%C0%A0", `"q"`, "\x00", []byte(`{}`))
	f.Add("application/json", "%", "\"", "\\", []byte(``))
	f.Fuzz(func(t *testing.T, contentType, id, source, subject string, body []byte) {
		mode, p := modeOf(contentType)
		if p != nil {
			return
		}
		switch mode {
		case modeBatch:
			items, p := splitBatch(body, MaxBatchEvents)
			if p != nil {
				return
			}
			for _, it := range items {
				if !bytes.Contains(body, it) || !json.Valid(it) {
					t.Fatalf("batch element %q is not a JSON value of the body", it)
				}
			}
		case modeBinary:
			h := http.Header{}
			h.Set("Ce-Id", id)
			h.Set("Ce-Source", source)
			if utf8.ValidString(subject) {
				h.Set("Ce-Subject", encodeHeaderValue(subject))
			}
			h.Set("Content-Type", contentType)
			raw, p := binaryEvent(h, body)
			if p != nil {
				return
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("binary event is not JSON: %v\n%s", err, raw)
			}
			if utf8.ValidString(subject) && doc["subject"] != subject {
				t.Fatalf("subject %q did not round-trip: %q", subject, doc["subject"])
			}
			if plain := !strings.ContainsAny(contentType, `%"`); plain && doc["datacontenttype"] != strings.Trim(contentType, " \t") {
				t.Fatalf("datacontenttype %q, want Content-Type %q", doc["datacontenttype"], contentType)
			}
			// The worker reads the same message off NATS the same way.
			if again, err := events.StructuredFromBinary(h, body); err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("events.StructuredFromBinary = %s, %v; the ingress built %s", again, err, raw)
			}
		}
	})
}

package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro € 😀", true}, // the binding's own example
		{"lower%e2%82%acok", "lower€ok", true},
		{"%41%42", "AB", true}, // needlessly encoded: accepted
		{`"quoted value"`, "quoted value", true},
		{`"a \"b\" c"`, `a "b" c`, true},
		{`"a%20b"`, "a b", true}, // unquote, then percent-decode
		{"%C0%A0", "", false},    // overlong encoding of U+0020
		{"%FF", "", false},
		{"%4", "", false},
		{"%zz", "", false},
		{`"open`, "", false},
		{`"a"b`, "", false},
	}
	for _, tc := range tests {
		got, err := decodeHeaderValue(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
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
			raw, p := binaryEvent(h, contentType, body)
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
			if doc["datacontenttype"] != contentType {
				t.Fatalf("datacontenttype %q", doc["datacontenttype"])
			}
		}
	})
}

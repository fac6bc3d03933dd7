package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// The CloudEvents HTTP protocol binding's content modes.
type contentMode int

const (
	modeStructured contentMode = iota // application/cloudevents+json: the body is the event
	modeBinary                        // ce-* headers are the attributes, the body is data
	modeBatch                         // application/cloudevents-batch+json: a JSON array of events
)

// Media types.
const (
	MediaTypeCloudEvents      = "application/cloudevents+json"
	MediaTypeCloudEventsBatch = "application/cloudevents-batch+json"
	mediaTypeJSON             = "application/json"
)

// modeOf chooses the content mode from Content-Type as the binding says:
// a cloudevents-batch prefix is batched, a cloudevents prefix structured,
// anything else binary. Only the JSON event format is supported, and in
// binary mode only JSON data.
func modeOf(contentType string) (contentMode, *problem) {
	if contentType == "" {
		return 0, unsupported("Content-Type is required: " + MediaTypeCloudEvents + ", " + MediaTypeCloudEventsBatch + ", or application/json with ce-* headers")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, unsupported("Content-Type is not a media type")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, unsupported("the only charset is utf-8")
	}
	switch {
	case mt == MediaTypeCloudEventsBatch:
		return modeBatch, nil
	case strings.HasPrefix(mt, "application/cloudevents-batch"):
		return 0, unsupported("the only batch format is " + MediaTypeCloudEventsBatch)
	case mt == MediaTypeCloudEvents:
		return modeStructured, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		return 0, unsupported("the only event format is " + MediaTypeCloudEvents)
	case mt == mediaTypeJSON || strings.HasSuffix(mt, "+json"):
		return modeBinary, nil
	}
	return 0, unsupported("binary mode carries JSON data only (Content-Type application/json)")
}

func unsupported(detail string) *problem {
	return &problem{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMediaType, detail: detail}
}

// maxAttributeName is the binding's recommended bound on attribute names.
const maxAttributeName = 20

// binaryEvent builds the structured JSON of a binary-mode event: the ce-*
// headers, each unquoted and percent-decoded once as the binding says,
// become the attributes, Content-Type becomes datacontenttype (as sent: the
// decoder judges it), and the body becomes data, byte for byte. The result
// is what the ingress validates, signs and publishes.
func binaryEvent(h http.Header, contentType string, body []byte) ([]byte, *problem) {
	attrs := map[string]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") {
			continue
		}
		name := lk[3:]
		switch {
		case !validAttributeName(name):
			return nil, invalidProblem(name, fmt.Sprintf("header %s: attribute names are 1..%d lower-case letters and digits", k, maxAttributeName))
		case name == "datacontenttype":
			return nil, invalidProblem(name, "binary mode takes datacontenttype from Content-Type; ce-datacontenttype must not be set")
		case name == "data":
			return nil, invalidProblem(name, "binary mode carries data in the body; ce-data must not be set")
		case len(vs) != 1:
			return nil, invalidProblem(name, fmt.Sprintf("header %s is repeated", k))
		}
		v, err := decodeHeaderValue(vs[0])
		if err != nil {
			return nil, invalidProblem(name, fmt.Sprintf("header %s: %v", k, err))
		}
		attrs[name] = v
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	// The core attributes first, in the order the spec lists them, then
	// any others sorted: the published bytes do not depend on map order.
	order := []string{"specversion", "id", "source", "type", "subject", "time"}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(&buf, n)
		buf.WriteByte(':')
		writeJSONString(&buf, attrs[n])
	}
	sep := func() {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
	}
	sep()
	buf.WriteString(`"datacontenttype":`)
	writeJSONString(&buf, contentType)
	if len(bytes.TrimSpace(body)) > 0 {
		if !json.Valid(body) {
			return nil, invalidProblem("data", "the body is not valid JSON")
		}
		buf.WriteString(`,"data":`)
		buf.Write(bytes.TrimSpace(body))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func validAttributeName(n string) bool {
	if n == "" || len(n) > maxAttributeName {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	buf.Truncate(buf.Len() - 1)
}

// decodeHeaderValue undoes the binding's header encoding: an optional
// RFC 7230 quoted string (with backslash escapes), then one round of
// percent-decoding; the bytes must be valid UTF-8.
func decodeHeaderValue(v string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		i := 1
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' {
				i++
				if i == len(v) {
					break
				}
			}
			b.WriteByte(v[i])
		}
		if i >= len(v) || i != len(v)-1 {
			return "", errors.New("unterminated or trailing text after a quoted string")
		}
		v = b.String()
	}
	var out []byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
			return "", errors.New("a % not followed by two hex digits")
		}
		out = append(out, unhex(v[i+1])<<4|unhex(v[i+2]))
		i += 2
	}
	if !utf8.Valid(out) {
		return "", errors.New("percent-encoded bytes are not valid UTF-8")
	}
	return string(out), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// splitBatch returns the elements of a JSON batch, each as the exact bytes
// sent, so that the decoder (not encoding/json) judges each event.
func splitBatch(body []byte, maxEvents int) ([]json.RawMessage, *problem) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, invalidProblem("", "a batch is a JSON array of events")
	}
	var out []json.RawMessage
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalidProblem(fmt.Sprintf("[%d]", len(out)), "the batch is not valid JSON: "+err.Error())
		}
		out = append(out, raw)
		if len(out) > maxEvents {
			return nil, invalidProblem("", fmt.Sprintf("a batch holds at most %d events", maxEvents))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, invalidProblem("", "the batch is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidProblem("", "text after the batch's closing ]")
	}
	return out, nil
}

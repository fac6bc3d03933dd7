package events

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// The NATS protocol binding of CloudEvents (1.0.3) has two content modes.
// In structured mode the message body is the event, one JSON document; in
// binary mode each attribute is a "ce-<name>" header and the body is data.
// The binding says receivers SHOULD support both; authflow reads binary
// mode by turning it into the structured document Decode reads, so that
// both modes meet exactly the same rules.

// HeaderContentType is the header that tells the modes apart, and that
// carries datacontenttype in binary mode.
const HeaderContentType = "Content-Type"

const (
	binaryPrefix        = "ce-"
	structuredMediaType = "application/cloudevents"
)

// IsBinary reports whether a message with headers h is a binary-mode
// event: its Content-Type is not application/cloudevents... (matched
// case-insensitively, as the binding says) and it has at least one ce-
// header. A message with neither is structured, as authflow's publishers
// have always sent it. Header names are matched case-insensitively.
func IsBinary(h map[string][]string) bool {
	ce := false
	for k, vs := range h {
		if strings.EqualFold(k, HeaderContentType) {
			for _, v := range vs {
				if hasPrefixFold(strings.TrimSpace(v), structuredMediaType) {
					return false
				}
			}
		}
		ce = ce || hasPrefixFold(k, binaryPrefix)
	}
	return ce
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// binaryOrder is the order of the attributes StructuredFromBinary writes
// first; the others follow sorted by name, then data.
var binaryOrder = []string{
	"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "dataschema", "traceparent", "tracestate",
}

// StructuredFromBinary turns a binary-mode message (headers h, body) into
// the structured JSON event Decode reads. Each ce-<name> header, unquoted
// and percent-decoded once as the binding says, becomes the attribute
// <name> as a JSON string (binary mode carries every value as a string,
// so an integer extension arrives as "5"); Content-Type, or
// ce-datacontenttype (they must agree when both are set), becomes
// datacontenttype; the body, which must be one JSON value, becomes data
// byte for byte. The output is deterministic: specversion, id, source,
// type, subject, time, datacontenttype, dataschema, traceparent and
// tracestate in that order, then the extensions sorted by name, then data,
// with no insignificant whitespace. Headers other than ce-* and
// Content-Type are ignored.
//
// Signatures are defined only for structured mode (they cover the exact
// bytes of the one JSON document): a binary-mode message that carries
// Authflow-Signature or Authflow-Signer is refused with bad_signature.
//
// Every error is an *Error: bad_signature, or invalid_event with the
// attribute's name as its field.
func StructuredFromBinary(h map[string][]string, body []byte) ([]byte, error) {
	b, err := structuredFromBinary(h, body)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func structuredFromBinary(h map[string][]string, body []byte) ([]byte, *Error) {
	// Sorted, so that the same message always gets the same error.
	keys := slices.Sorted(maps.Keys(h))
	for _, k := range keys {
		if strings.EqualFold(k, HeaderSignature) || strings.EqualFold(k, HeaderSigner) {
			return nil, newError(CodeBadSignature, "", "signatures are defined only for structured mode: publish a signed event as one JSON document (Content-Type %s, or none) with %s over its bytes", ContentTypeCloudEvents, HeaderSignature)
		}
	}
	attrs := map[string]string{}
	var contentType []string
	for _, k := range keys {
		vs := h[k]
		switch {
		case strings.EqualFold(k, HeaderContentType):
			contentType = append(contentType, vs...)
			continue
		case !hasPrefixFold(k, binaryPrefix):
			continue
		}
		name := strings.ToLower(k[len(binaryPrefix):])
		field := join("", name)
		switch {
		case name == "data" || name == "data_base64":
			return nil, invalid(field, "binary mode carries data in the message body; header %s must not be set", quote(k))
		case !reAttrName.MatchString(name):
			return nil, invalid(field, "header %s: not a CloudEvents attribute name (at most 20 lower-case letters a-z and digits after ce-)", quote(k))
		case len(attrs) >= len(binaryOrder)+maxExtensions:
			e := invalid(field, "more than %d ce- headers", len(binaryOrder)+maxExtensions)
			e.rule = ruleCount
			return nil, e
		}
		if _, dup := attrs[name]; dup || len(vs) != 1 {
			e := invalid(field, "header ce-%s is repeated", name)
			e.rule = ruleDuplicate
			return nil, e
		}
		v, err := decodeHeaderValue(vs[0])
		if err != "" {
			return nil, invalid(field, "header ce-%s: %s", name, err)
		}
		attrs[name] = v
	}
	switch len(contentType) {
	case 0:
	case 1:
		ct, err := decodeHeaderValue(contentType[0])
		if err != "" {
			return nil, invalid("datacontenttype", "header %s: %s", HeaderContentType, err)
		}
		if prev, ok := attrs["datacontenttype"]; ok && prev != ct {
			return nil, invalid("datacontenttype", "headers %s and ce-datacontenttype differ", HeaderContentType)
		}
		attrs["datacontenttype"] = ct
	default:
		return nil, invalid("datacontenttype", "header %s is repeated", HeaderContentType)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("data", "binary mode: the message body (the event's data) is empty")
	}
	doc, perr := parseJSON(body)
	if perr != nil {
		e := invalid("data", "binary mode: the message body is not one JSON value: %s", perr.Message)
		e.rule = perr.rule
		return nil, e
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		if !slices.Contains(binaryOrder, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var buf bytes.Buffer
	buf.Grow(len(body) + 64*len(attrs))
	buf.WriteByte('{')
	write := func(name string) {
		v, ok := attrs[name]
		if !ok {
			return
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.Write(jsonString(name))
		buf.WriteByte(':')
		buf.Write(jsonString(v))
	}
	for _, n := range binaryOrder {
		write(n)
	}
	for _, n := range names {
		write(n)
	}
	if buf.Len() > 1 {
		buf.WriteByte(',')
	}
	buf.WriteString(`"data":`)
	buf.Write(body[doc.start:doc.end])
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// PeekBinaryIdentity reads the source, id and type of a binary-mode
// message that may not convert or decode, so that a rejected result can
// still name the event; like PeekIdentity it returns "" for a header that
// is missing, repeated, or outside the charset and length Decode allows.
func PeekBinaryIdentity(h map[string][]string) (source, id, typ string) {
	vals := map[string][]string{}
	for k, vs := range h {
		if hasPrefixFold(k, binaryPrefix) {
			name := strings.ToLower(k[len(binaryPrefix):])
			vals[name] = append(vals[name], vs...)
		}
	}
	get := func(name string, re interface{ MatchString(string) bool }, max int) string {
		if len(vals[name]) != 1 {
			return ""
		}
		v, err := decodeHeaderValue(vals[name][0])
		if err != "" || v == "" || checkString(name, v, re, max) != nil {
			return ""
		}
		return v
	}
	return get("source", reSource, maxSourceLen), get("id", reID, maxIDLen), get("type", reTypeName, maxTypeLen)
}

// decodeHeaderValue undoes the binding's header encoding: surrounding
// whitespace is dropped, an RFC 9110 quoted string is unquoted (with its
// backslash escapes), then one round of percent-decoding is done; the
// result must be valid UTF-8 (so an overlong "%C0%A0" is refused). It
// returns a reason on failure.
func decodeHeaderValue(v string) (string, string) {
	v = strings.Trim(v, " \t")
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
		if i != len(v)-1 {
			return "", "an unterminated quoted string, or text after it"
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') >= 0 {
		out := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			if v[i] != '%' {
				out = append(out, v[i])
				continue
			}
			if i+2 >= len(v) || unhex(v[i+1]) < 0 || unhex(v[i+2]) < 0 {
				return "", "a % not followed by two hex digits"
			}
			out = append(out, byte(unhex(v[i+1])<<4|unhex(v[i+2])))
			i += 2
		}
		v = string(out)
	}
	if !utf8.ValidString(v) {
		return "", "not UTF-8 once percent-decoded"
	}
	return v, ""
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// SpecVersion is the CloudEvents version events and results use.
const SpecVersion = "1.0"

// ContentTypeJSON is the datacontenttype of results and of the events
// MarshalEvent writes. Events may declare any JSON media type (see
// Event.DataContentType).
const ContentTypeJSON = "application/json"

// DefaultMaxBytes is the largest event Decoder accepts unless told
// otherwise: 64 KiB, far above any valid event (a few hundred bytes) and
// well under NATS's default 1 MiB max_payload.
const DefaultMaxBytes = 64 << 10

// Event is one decoded, validated event.
type Event struct {
	SpecVersion string
	ID          string
	Source      string
	Type        string
	Subject     string
	Time        time.Time
	// DataContentType is as sent: "", or a JSON media type such as
	// "application/json; charset=utf-8" or "application/vnd.x+json".
	DataContentType string
	DataSchema      string // an absolute URI, as sent; optional, not fetched
	TraceParent     string // W3C traceparent (CloudEvents distributed-tracing extension); optional
	TraceState      string // W3C tracestate; optional
	// Extensions holds the event's other CloudEvents extension attributes
	// by name, each value as compact JSON: a string, an integer (in
	// decimal) or a boolean. nil when there are none. The worker copies it
	// into the result (ResultData.Extensions).
	Extensions Extensions
	// Data is the event's data exactly as received.
	Data json.RawMessage
	// Payload is the decoded, validated data: a pointer to the type's
	// struct, e.g. *EmployeeJoined for TypeEmployeeJoined. Phone numbers
	// in it are already in Graph's form.
	Payload any
	// DryRun is data.dryRun.
	DryRun bool
	// Verification is data.verification, nil when absent.
	Verification *Verification
	// EffectiveAt is data.effectiveAt, zero when absent: the event is to be
	// applied at that time, not at once.
	EffectiveAt time.Time
	// User is the parsed subject.
	User UserRef
}

// Ref names the event in a result.
func (e *Event) Ref() EventRef { return EventRef{Source: e.Source, ID: e.ID, Type: e.Type} }

// Key is the event's idempotency key; see EventKey.
func (e *Event) Key() string { return EventKey(e.Source, e.ID) }

// EventKey derives the idempotency key of an event from its source and id:
// 64 lower-case hex characters (SHA-256), safe as a NATS KV key or a
// Nats-Msg-Id whatever the source and id contain.
func EventKey(source, id string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil))
}

// Decoder decodes events. The zero value is ready to use: international
// phone numbers only, DefaultMaxBytes.
type Decoder struct {
	// DefaultRegion is the ISO 3166 region (e.g. "US") national phone
	// numbers are read in. Defaults to none: numbers must start with +.
	DefaultRegion string
	// MaxBytes is the largest message accepted. Defaults to DefaultMaxBytes.
	MaxBytes int
}

// Decode parses and validates one event. It is strict: invalid UTF-8,
// duplicate object keys at any depth, unknown envelope or data fields,
// wrong JSON types, missing required fields and invalid values are all
// errors. Every error is an *Error: payload_too_large, unknown_type or
// invalid_event (internal when the Decoder itself is misconfigured).
func (d Decoder) Decode(raw []byte) (*Event, error) {
	ev, err := d.decode(raw)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

func (d Decoder) decode(raw []byte) (*Event, *Error) {
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(raw) > limit {
		e := newError(CodePayloadTooLarge, "", "event is %d bytes, the limit is %d", len(raw), limit)
		e.rule = ruleSize
		return nil, e
	}
	if d.DefaultRegion != "" && phonenumbers.GetCountryCodeForRegion(strings.ToUpper(d.DefaultRegion)) == 0 {
		e := newError(CodeInternal, "", "decoder: default region %s is not a region code", quote(d.DefaultRegion))
		e.rule = ruleConfig
		return nil, e
	}
	doc, perr := parseJSON(raw)
	if perr != nil {
		return nil, perr
	}
	if doc.kind != kindObject {
		return nil, invalid("", "an event must be a JSON object, not %s", doc.kind)
	}
	var env struct {
		specversion, id, source, typ, subject, time, datacontenttype, dataschema, traceparent, tracestate, data *value
	}
	var ext Extensions
	for i := range doc.members {
		m := &doc.members[i]
		switch m.key {
		case "specversion":
			env.specversion = &m.val
		case "id":
			env.id = &m.val
		case "source":
			env.source = &m.val
		case "type":
			env.typ = &m.val
		case "subject":
			env.subject = &m.val
		case "time":
			env.time = &m.val
		case "datacontenttype":
			env.datacontenttype = &m.val
		case "dataschema":
			env.dataschema = &m.val
		case "traceparent":
			env.traceparent = &m.val
		case "tracestate":
			env.tracestate = &m.val
		case "data":
			env.data = &m.val
		case "data_base64":
			return nil, invalid("data_base64", "binary data is not accepted: an authflow event carries a JSON object in data")
		default:
			if ext == nil {
				ext = Extensions{}
			}
			if err := ext.add(m.key, &m.val, join("", m.key)); err != nil {
				return nil, err
			}
		}
	}
	ev := &Event{}
	var err *Error
	if ev.SpecVersion, err = envString(env.specversion, "specversion", true); err != nil {
		return nil, err
	}
	if ev.SpecVersion != SpecVersion {
		return nil, invalid("specversion", "must be %q", SpecVersion)
	}
	if ev.ID, err = envString(env.id, "id", true); err != nil {
		return nil, err
	}
	if checkString("id", ev.ID, reID, maxIDLen) != nil {
		return nil, invalid("id", "must be at most %d characters, without control characters, line separators, bidi overrides or a leading or trailing space", maxIDLen)
	}
	if ev.Source, err = envString(env.source, "source", true); err != nil {
		return nil, err
	}
	if checkString("source", ev.Source, reSource, maxSourceLen) != nil {
		return nil, invalid("source", "must be a URI-reference (RFC 3986) of at most %d characters: letters, digits, %s, %%-escapes and one #", maxSourceLen, "- . _ ~ : / ? @ ! $ & ' ( ) * + , ; =")
	}
	if ev.Type, err = envString(env.typ, "type", true); err != nil {
		return nil, err
	}
	p, ok := newPayload(ev.Type)
	if !ok {
		return nil, unknownType(ev.Type)
	}
	if ev.Subject, err = envString(env.subject, "subject", true); err != nil {
		return nil, err
	}
	if ev.User, err = parseUser(ev.Subject); err != nil {
		return nil, err
	}
	var ts string
	if ts, err = envString(env.time, "time", true); err != nil {
		return nil, err
	}
	t, terr := parseTime(ts)
	if terr != nil {
		return nil, invalid("time", "%s", terr.Error())
	}
	ev.Time = t
	if ev.DataContentType, err = envString(env.datacontenttype, "datacontenttype", false); err != nil {
		return nil, err
	}
	if err = checkMediaType("datacontenttype", ev.DataContentType); err != nil {
		return nil, err
	}
	if ev.DataSchema, err = envString(env.dataschema, "dataschema", false); err != nil {
		return nil, err
	}
	if err = checkString("dataschema", ev.DataSchema, reDataSchema, maxDataSchemaLen); err != nil {
		return nil, invalid("dataschema", "must be an absolute URI of at most %d characters", maxDataSchemaLen)
	}
	if ev.TraceParent, err = envString(env.traceparent, "traceparent", false); err != nil {
		return nil, err
	}
	if ev.TraceParent != "" && !reTraceParent.MatchString(ev.TraceParent) {
		return nil, invalid("traceparent", "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
	}
	if ev.TraceState, err = envString(env.tracestate, "tracestate", false); err != nil {
		return nil, err
	}
	if err = checkString("tracestate", ev.TraceState, reTraceState, maxTraceStateLen); err != nil {
		return nil, err
	}
	if env.data == nil {
		return nil, invalid("data", "required")
	}
	if env.data.kind != kindObject {
		return nil, invalid("data", "must be an object, not %s", env.data.kind)
	}
	if err = bind(env.data, reflect.ValueOf(p).Elem(), "data"); err != nil {
		return nil, err
	}
	v := validator{region: d.DefaultRegion}
	p.validate(&v)
	c := p.common()
	v.verification("data.verification", c.Verification)
	if v.err != nil {
		return nil, v.err
	}
	ev.Data = json.RawMessage(bytes.Clone(raw[env.data.start:env.data.end])) // the caller may reuse raw
	ev.Payload = p
	ev.Extensions = ext
	ev.DryRun = c.DryRun
	ev.Verification = c.Verification
	if c.EffectiveAt != "" {
		t, terr := parseTime(c.EffectiveAt)
		if terr != nil {
			return nil, invalid("data.effectiveAt", "%s", terr.Error())
		}
		ev.EffectiveAt = t
	}
	return ev, nil
}

// envString reads an envelope attribute that must be a non-empty string.
func envString(v *value, field string, required bool) (string, *Error) {
	switch {
	case v == nil && required:
		return "", invalid(field, "required")
	case v == nil:
		return "", nil
	case v.kind != kindString:
		return "", invalid(field, "must be a string, not %s", v.kind)
	case v.s == "":
		return "", invalid(field, "must not be empty")
	}
	return v.s, nil
}

// checkString checks an optional string against a pattern and a length in
// code points.
func checkString(field, s string, re interface{ MatchString(string) bool }, max int) *Error {
	if s == "" {
		return nil
	}
	if utf8.RuneCountInString(s) > max {
		return invalid(field, "longer than %d characters", max)
	}
	if !re.MatchString(s) {
		return invalid(field, "contains characters outside the allowed set")
	}
	return nil
}

func unknownType(typ string) *Error {
	base, _, ok := cutVersion(typ)
	if ok {
		var known []string
		for _, t := range Types() {
			if b, _, _ := cutVersion(t); b == base {
				known = append(known, t)
			}
		}
		if len(known) > 0 {
			return newError(CodeUnknownType, "type", "unknown version of %s (known: %s)", base, strings.Join(known, ", "))
		}
	}
	return newError(CodeUnknownType, "type", "unknown event type %s", quote(typ))
}

// cutVersion splits "authflow.x.y.v1" into "authflow.x.y" and "v1".
func cutVersion(typ string) (base, version string, ok bool) {
	i := strings.LastIndexByte(typ, '.')
	if i < 0 || !reTypeName.MatchString(typ) {
		return "", "", false
	}
	return typ[:i], typ[i+1:], true
}

// peekLimit bounds how much of a message PeekIdentity reads.
const peekLimit = 1 << 20

// PeekIdentity reads the source, id and type of a message that may not
// decode, so that a rejected result can still name the event. It is best
// effort: it reads top-level members in order up to the first syntax error
// (or the first MiB), and returns "" for a field that is missing, repeated,
// not a string, or outside the charset and length Decode allows.
func PeekIdentity(raw []byte) (source, id, typ string) {
	if len(raw) > peekLimit {
		raw = raw[:peekLimit]
	}
	seen := map[string]int{}
	vals := map[string]string{}
	p := parser{in: raw, top: func(key string, v *value) {
		switch key {
		case "source", "id", "type":
			seen[key]++
			if v.kind == kindString {
				vals[key] = v.s
			}
		}
	}}
	p.skipSpace()
	if p.pos < len(raw) && raw[p.pos] == '{' {
		p.value() // errors are expected; the callback has seen what it could
	}
	get := func(key string, re interface{ MatchString(string) bool }, max int) string {
		s := vals[key]
		if seen[key] != 1 || checkString(key, s, re, max) != nil {
			return ""
		}
		return s
	}
	return get("source", reSource, maxSourceLen), get("id", reID, maxIDLen), get("type", reTypeName, maxTypeLen)
}

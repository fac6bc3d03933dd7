package events

import (
	"bytes"
	"encoding/json"
	"mime"
	"slices"
	"strconv"
	"strings"
)

// Extensions are an event's CloudEvents extension attributes, by name,
// each value as compact JSON: a string, an integer or a boolean (the JSON
// event format's encodings of the CloudEvents types; URI, timestamp and
// binary values arrive as strings). A nil map means none.
type Extensions map[string]json.RawMessage

// coreAttributes are the attribute names authflow reads itself; none of
// them is ever an extension. The spec reserves "data" and "data_base64"
// too.
var coreAttributes = []string{
	"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "dataschema", "traceparent", "tracestate", "data",
}

// add checks one extension attribute and stores its canonical value.
// path is where errors point ("comexampleticket" in an event,
// "data.extensions.comexampleticket" in a result).
func (x Extensions) add(name string, v *value, path string) *Error {
	if !reAttrName.MatchString(name) {
		return invalid(path, "not a CloudEvents attribute name: at most 20 lower-case letters a-z and digits (names are case-sensitive; unknown upper-case names are not extensions)")
	}
	if slices.Contains(coreAttributes, name) {
		return invalid(path, "a core attribute, not an extension")
	}
	if len(x) >= maxExtensions {
		e := invalid(path, "more than %d extension attributes", maxExtensions)
		e.rule = ruleCount
		return e
	}
	switch v.kind {
	case kindString:
		if v.s == "" {
			return invalid(path, "must not be empty (omit the attribute instead)")
		}
		if err := checkString(path, v.s, reText, maxExtensionLen); err != nil {
			return invalid(path, "a string extension is at most %d characters, without control characters, line separators, bidi overrides or a BOM", maxExtensionLen)
		}
		x[name] = jsonString(v.s)
	case kindBool:
		x[name] = json.RawMessage(strconv.FormatBool(v.b))
	case kindNumber:
		// A CloudEvents Integer is 32-bit signed.
		n, isInt, inRange := jsonInt(v.s)
		if !isInt || !inRange || n < -1<<31 || n > 1<<31-1 {
			return invalid(path, "a number extension must be an integer from -2147483648 to 2147483647")
		}
		x[name] = json.RawMessage(strconv.FormatInt(n, 10))
	default:
		return invalid(path, "an extension attribute must be a string, an integer or a boolean, not %s", v.kind)
	}
	return nil
}

// validate checks extensions built in Go (a result's copy): each value
// must be what add would have stored.
func (x Extensions) validate(path string) *Error {
	if len(x) > maxExtensions {
		return invalid(path, "more than %d extension attributes", maxExtensions)
	}
	names := make([]string, 0, len(x))
	for name := range x {
		names = append(names, name)
	}
	slices.Sort(names) // report the same error every time
	got := Extensions{}
	for _, name := range names {
		v, err := parseJSON(x[name])
		p := join(path, name)
		if err != nil {
			return invalid(p, "not one JSON value")
		}
		if err := got.add(name, &v, p); err != nil {
			return err
		}
		if string(got[name]) != string(x[name]) {
			return invalid(p, "not in canonical form (compact JSON, integers in decimal)")
		}
	}
	return nil
}

// checkMediaType checks an optional datacontenttype: a JSON media type
// whose charset, when given, is utf-8.
func checkMediaType(field, s string) *Error {
	if s == "" {
		return nil
	}
	if len(s) > maxMediaTypeLen || !reMediaType.MatchString(s) {
		return invalid(field, "must be a JSON media type of at most %d characters, such as application/json or application/json; charset=utf-8", maxMediaTypeLen)
	}
	_, params, err := mime.ParseMediaType(s)
	if err != nil {
		e := invalid(field, "not a media type: %s", err.Error())
		e.rule = ruleMediaType
		return e
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		e := invalid(field, "the only charset is utf-8 (the event is a UTF-8 JSON document)")
		e.rule = ruleMediaType
		return e
	}
	return nil
}

// jsonString encodes s as a JSON string without HTML escaping, so that
// "<" stays "<" in results.
func jsonString(s string) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

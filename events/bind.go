package events

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bind copies a parsed JSON value into dst, strictly: JSON object keys must
// equal a field's json tag exactly (case-sensitive), unknown keys, null and
// empty strings are errors, numbers must be integers in range. It supports
// the shapes this package's types use: strings (and named string types),
// bools, ints, time.Time (RFC 3339), pointers, slices, structs (embedded
// structs are flattened, as encoding/json does) and Nullable.
func bind(v *value, dst reflect.Value, path string) *Error {
	if !dst.CanAddr() {
		return newError(CodeInternal, path, "cannot bind into an unaddressable %s", dst.Type())
	}
	if n, ok := dst.Addr().Interface().(nullable); ok {
		n.markPresent()
		if v.kind == kindNull {
			n.markNull()
			return nil
		}
		return bind(v, reflect.ValueOf(n.valueAddr()).Elem(), path)
	}
	if v.kind == kindNull {
		return invalid(path, "must not be null")
	}
	if dst.Type() == extensionsType {
		if v.kind != kindObject {
			return invalid(path, "must be an object, not %s", v.kind)
		}
		x := Extensions{}
		for i := range v.members {
			m := &v.members[i]
			if err := x.add(m.key, &m.val, join(path, m.key)); err != nil {
				return err
			}
		}
		dst.Set(reflect.ValueOf(x))
		return nil
	}
	if dst.Type() == timeType {
		if v.kind != kindString {
			return invalid(path, "must be an RFC 3339 date-time string, not %s", v.kind)
		}
		t, err := parseTime(v.s)
		if err != nil {
			return invalid(path, "%s", err.Error())
		}
		dst.Set(reflect.ValueOf(t))
		return nil
	}
	switch dst.Kind() {
	case reflect.String:
		if v.kind != kindString {
			return invalid(path, "must be a string, not %s", v.kind)
		}
		if v.s == "" {
			return invalid(path, "must not be empty (omit the field instead)")
		}
		dst.SetString(v.s)
	case reflect.Bool:
		if v.kind != kindBool {
			return invalid(path, "must be a boolean, not %s", v.kind)
		}
		dst.SetBool(v.b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		if v.kind != kindNumber {
			return invalid(path, "must be an integer, not %s", v.kind)
		}
		n, isInt, inRange := jsonInt(v.s)
		if !isInt {
			return invalid(path, "must be an integer")
		}
		if !inRange || dst.OverflowInt(n) {
			return invalid(path, "integer out of range")
		}
		dst.SetInt(n)
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := bind(v, p.Elem(), path); err != nil {
			return err
		}
		dst.Set(p)
	case reflect.Slice:
		if v.kind != kindArray {
			return invalid(path, "must be an array, not %s", v.kind)
		}
		s := reflect.MakeSlice(dst.Type(), len(v.elems), len(v.elems))
		for i := range v.elems {
			if err := bind(&v.elems[i], s.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Struct:
		if v.kind != kindObject {
			return invalid(path, "must be an object, not %s", v.kind)
		}
		for i := range v.members {
			m := &v.members[i]
			field, ok := fieldByTag(dst, m.key)
			fpath := join(path, m.key)
			if !ok {
				return unknownField(fpath, m.key, dst.Type())
			}
			if err := bind(&m.val, field, fpath); err != nil {
				return err
			}
		}
	default:
		return newError(CodeInternal, path, "cannot bind into %s", dst.Type())
	}
	return nil
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	extensionsType = reflect.TypeFor[Extensions]()
)

// fieldByTag finds the field of struct value s whose json tag name is key,
// looking into embedded structs.
func fieldByTag(s reflect.Value, key string) (reflect.Value, bool) {
	t := s.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if v, ok := fieldByTag(s.Field(i), key); ok {
				return v, true
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == key && name != "" && name != "-" {
			return s.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// unknownField is the error for key, which struct type t does not have: it
// lists the fields t has and, for a name that another event type uses for
// the same thing (the flows' mobilePhone and email, the single-method
// events' phoneNumber and emailAddress), says which one is meant here.
func unknownField(path, key string, t reflect.Type) *Error {
	fields := fieldNames(t)
	msg := "unknown field; the fields here are " + strings.Join(fields, ", ")
	if alt, ok := fieldAliases[key]; ok {
		for _, a := range alt {
			if slices.Contains(fields, a.field) {
				msg += " (" + a.hint + ")"
				break
			}
		}
	}
	return invalid(path, "%s", msg)
}

// fieldAliases maps a field name of one event type to the field of another
// type that carries the same value, with how to say it there.
var fieldAliases = map[string][]struct{ field, hint string }{
	"mobilePhone":          {{"phoneNumber", `a single-method event takes "phoneType":"mobile" and "phoneNumber"`}},
	"alternateMobilePhone": {{"phoneNumber", `a single-method event takes "phoneType":"alternateMobile" and "phoneNumber"`}},
	"officePhone":          {{"phoneNumber", `a single-method event takes "phoneType":"office" and "phoneNumber"`}},
	"phone":                {{"phoneNumber", `the number goes in "phoneNumber", its kind in "phoneType"`}, {"mobilePhone", `the flows take "mobilePhone", "alternateMobilePhone" and "officePhone"`}},
	"phoneNumber":          {{"mobilePhone", `the flows take "mobilePhone", "alternateMobilePhone" and "officePhone"`}},
	"email":                {{"emailAddress", `authflow.email.set.v1 takes "emailAddress"`}},
	"emailAddress":         {{"email", `the flows take "email"`}},
}

// fieldNames lists the json names of the fields of struct type t, embedded
// structs flattened, in declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, fieldNames(f.Type)...)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// join appends a key to a JSON path. A key that is not a plain name is
// quoted and escaped, so that a path is unambiguous and safe in a log line.
func join(path, key string) string {
	if !plainKey(key) {
		key = quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(key string) bool {
	if key == "" || len(key) > 64 {
		return false
	}
	for _, c := range []byte(key) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseTime parses an RFC 3339 date-time in the form the schemas allow:
// "T" and "Z" in either case (RFC 3339 section 5.6), seconds 00-59 (Go's
// time cannot hold a leap second), at most 9 fraction digits.
func parseTime(s string) (time.Time, error) {
	if !reTime.MatchString(s) {
		return time.Time{}, errorString("must be an RFC 3339 date-time such as 2026-11-26T09:00:00Z")
	}
	// time.Parse wants upper case; the pattern fixed where t and z are.
	if s[10] == 't' || s[len(s)-1] == 'z' {
		b := []byte(s)
		b[10] = 'T'
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		s = string(b)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errorString("not a calendar date-time")
	}
	return t, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Nullable is a data field that tells an absent field from an explicit JSON
// null: employee.moved uses null to ask for removal.
type Nullable[T any] struct {
	Present bool // the field was in the JSON
	Null    bool // the field was null
	Value   T    // the value when Present and not Null
}

// HasValue reports whether the field carries a value.
func (n Nullable[T]) HasValue() bool { return n.Present && !n.Null }

// IsNull reports whether the field was an explicit null.
func (n Nullable[T]) IsNull() bool { return n.Present && n.Null }

type nullable interface {
	markPresent()
	markNull()
	valueAddr() any
}

func (n *Nullable[T]) markPresent()   { n.Present = true }
func (n *Nullable[T]) markNull()      { n.Null = true }
func (n *Nullable[T]) valueAddr() any { return &n.Value }

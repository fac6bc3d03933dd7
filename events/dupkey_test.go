package events

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDuplicateKeyPath: a duplicate key is reported like every other
// violation, by the JSON path of the repeated member (Error.Field and the
// message), and still located by line and column (of the second key).
func TestDuplicateKeyPath(t *testing.T) {
	t.Parallel()
	var big strings.Builder // more than 16 members: found through the map
	big.WriteString(`{"data":{`)
	for i := range 20 {
		fmt.Fprintf(&big, `"k%d":%d,`, i, i)
	}
	big.WriteString(`"k7":0}}`)
	tests := []struct {
		name, in string
		field    string
		line     int
		col      int
	}{
		{"top level", `{"id":"a","id":"b"}`, "id", 1, 11},
		{"top level via escape", `{"id":"a","i\u0064":"b"}`, "id", 1, 11},
		{"inside data", `{"data":{"phoneType":"mobile","phoneType":"office"}}`, "data.phoneType", 1, 31},
		{"nested object", `{"data":{"tap":{"lifetimeInMinutes":60,` + "\n" + `"lifetimeInMinutes":480}}}`, "data.tap.lifetimeInMinutes", 2, 1},
		{"array element", `{"data":{"methods":[{"kind":"a"},{"kind":"b","kind":"c"}]}}`, "data.methods[1].kind", 1, 46},
		{"nested arrays", `[[{"a":1}],[0,{"b":[{"c":1,"c":2}]}]]`, "[1][1].b[0].c", 1, 28},
		{"key that is not a plain name", `{"data":{"a.b":1,"a.b":2}}`, `data."a.b"`, 1, 18},
		{"large object", big.String(), "data.k7", 1, len(big.String()) - 7},
	}
	for _, tc := range tests {
		_, err := parseJSON([]byte(tc.in))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if err.Field != tc.field || err.Line != tc.line || err.Column != tc.col || err.rule != ruleDuplicate {
			t.Errorf("%s: field %q at %d:%d (rule %d), want %q at %d:%d", tc.name, err.Field, err.Line, err.Column, err.rule, tc.field, tc.line, tc.col)
		}
		want := fmt.Sprintf("invalid_event: %s: duplicate object key (line %d, column %d)", tc.field, tc.line, tc.col)
		if err.Error() != want {
			t.Errorf("%s: Error() = %q, want %q", tc.name, err.Error(), want)
		}
	}

	// The reported case: phone.set with phoneType twice.
	raw := event(TypePhoneSet, "adele.vance@contoso.com", `{"phoneType":"mobile","phoneNumber":"+1 4255550100","phoneType":"office"}`)
	_, err := Decoder{}.Decode(raw)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != "data.phoneType" || e.Line != 1 || e.Column == 0 {
		t.Fatalf("Decode = %v (%+v), want invalid_event on data.phoneType with a position", err, e)
	}
	if got := InfoOf(err).Message; !strings.HasPrefix(got, "data.phoneType: duplicate object key (line 1, column ") {
		t.Errorf("result message %q does not lead with the path", got)
	}
	// The path stack is unwound after an error elsewhere: a later document
	// parses with a fresh parser, and a syntax error carries no field.
	if _, err := parseJSON([]byte(`{"a":[{"b":tru}]}`)); err == nil || err.Field != "" {
		t.Errorf("syntax error: %+v", err)
	}
}

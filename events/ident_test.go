package events

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authflow/authflow/internal/ident"
	"github.com/authflow/authflow/internal/ident/identtest"
)

// graphPhoneForm is Graph's phone form, written independently of
// ident.ParsePhone; with graphPhoneDigits it is what every number the
// decoder produces must match.
var graphPhoneForm = regexp.MustCompile(`^\+([1-9][0-9]{0,2}) ([0-9]{4,14})(x[0-9]{1,10})?$`)

func inGraphForm(number string) bool {
	m := graphPhoneForm.FindStringSubmatch(number)
	return m != nil && len(m[1])+len(m[2]) <= 15
}

// TestIdentCorpus holds ParseUser and NormalizePhone to the corpus that
// graphclient's validators are held to (graphclient's
// TestValidatorsAgreeWithEvents runs both side by side).
func TestIdentCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range identtest.Load(t, "../internal/ident/testdata/corpus.txt") {
		switch c.Kind {
		case "upn":
			u, err := ParseUser(c.Value)
			if (err == nil) != c.OK {
				t.Errorf("%v: ParseUser = %+v, %v; want ok=%v", c, u, err, c.OK)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != "subject") {
				t.Errorf("%v: ParseUser error %v is not invalid_event on subject", c, err)
			}
			// Decoding an event with this subject gives the same verdict.
			_, derr := Decoder{}.Decode(event(TypeMethodsInventory, jsonEscape(c.Value), `{}`))
			if (derr == nil) != c.OK {
				t.Errorf("%v: Decode = %v, want ok=%v", c, derr, c.OK)
			}
		case "phone":
			got, err := NormalizePhone(c.Value, "")
			switch {
			case c.OK && (err != nil || got != c.Value):
				t.Errorf("%v: NormalizePhone = %q, %v; want the number back", c, got, err)
			case !c.OK && err == nil:
				t.Errorf("%v: NormalizePhone = %q, want an error", c, got)
			case err != nil && strings.Contains(err.Error(), strings.TrimPrefix(c.Value, "+")) && len(c.Value) > 6:
				t.Errorf("%v: error %q repeats the number", c, err)
			}
		}
	}
}

func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestUPNPatternAgreesWithIdent: patternUPN (shared with the schemas) is
// the character-level shape of ident.CheckUPN; the two differ only in the
// part lengths the pattern cannot count, and exactly those refusals are
// marked schema-blind.
func TestUPNPatternAgreesWithIdent(t *testing.T) {
	t.Parallel()
	var inputs []string
	for _, c := range identtest.Load(t, "../internal/ident/testdata/corpus.txt") {
		if c.Kind == "upn" {
			inputs = append(inputs, c.Value)
		}
	}
	inputs = append(inputs, strings.Repeat("a", 64)+"@"+strings.Repeat("b", 60)+".com")
	for _, s := range inputs {
		identOK := ident.CheckUPN(s) == nil
		shapeOK := reUPN.MatchString(s) && utf8.RuneCountInString(s) <= maxUPNLen
		local, domain, _ := strings.Cut(s, "@")
		partsOK := len(local) <= ident.MaxUPNLocalLen && len(domain) <= ident.MaxUPNDomainLen
		if identOK != (shapeOK && partsOK) {
			t.Errorf("%q: ident %v, pattern %v, part lengths %v", s, identOK, shapeOK, partsOK)
		}
		_, err := parseUser(s)
		if blind := err != nil && err.schemaBlind(); blind != (shapeOK && !partsOK) {
			t.Errorf("%q: refusal schema-blind = %v, want %v (%v)", s, blind, shapeOK && !partsOK, err)
		}
	}
}

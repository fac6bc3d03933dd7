package ident_test

import (
	"strings"
	"testing"

	"github.com/authflow/authflow/internal/ident"
	"github.com/authflow/authflow/internal/ident/identtest"
)

const corpus = "testdata/corpus.txt"

// TestCorpus holds the rules to the shared corpus; events and graphclient
// hold their validators to the same file.
func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, c := range identtest.Load(t, corpus) {
		var err error
		switch c.Kind {
		case "upn":
			err = ident.CheckUPN(c.Value)
		case "phone":
			var p ident.Phone
			if p, err = ident.ParsePhone(c.Value); err == nil && p.String() != c.Value {
				t.Errorf("%v: ParsePhone(...).String() = %q, want the input back", c, p.String())
			}
		}
		if (err == nil) != c.OK {
			t.Errorf("%v: error %v, want ok=%v", c, err, c.OK)
		}
		if err != nil && len(c.Value) >= 6 && strings.Contains(err.Error(), c.Value) {
			t.Errorf("%v: error %q repeats the value", c, err)
		}
	}
}

func TestCheckUPNReasons(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "is empty"},
		{strings.Repeat("a", 102) + "@contoso.com", "is longer than 113 characters"},
		{strings.Repeat("é", 60) + "@contoso.com", "has a character outside ASCII"},
		{"adele", "must contain exactly one @"},
		{"@contoso.com", "has nothing before the @"},
		{strings.Repeat("a", 65) + "@contoso.com", "has more than 64 characters before the @"},
		{"#EXT#@contoso.com", "has nothing before a guest's #EXT# marker"},
		{"a#b@contoso.com", "has a # outside a guest's #EXT# marker just before the @"},
		{"a/b@contoso.com", "has a character outside A-Z a-z 0-9 ' . - _ ! ^ ~ before the @"},
		{"a..b@contoso.com", "starts or ends with a dot, or has two dots in a row, before the @"},
		{"adele@", "has nothing after the @"},
		{"adele@" + strings.Repeat("a", 65) + ".com", "has more than 48 characters after the @"},
		{"adele@contoso..com", "has an empty domain label or one longer than 63 characters"},
		{"adele@con_toso.com", "has a character outside A-Z a-z 0-9 - in a domain label"},
		{"adele@-contoso.com", "has a domain label that starts or ends with a hyphen"},
		{"adele@contoso", "has a domain without a dot"},
	}
	for _, tc := range tests {
		if err := ident.CheckUPN(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("CheckUPN(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestPhoneCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    ident.Phone
		want string // "" for valid
	}{
		{ident.Phone{CountryCode: "1", National: "4255550100"}, ""},
		{ident.Phone{CountryCode: "999", National: "123456789012", Extension: "1234567890"}, ""},
		{ident.Phone{CountryCode: "", National: "4255550100"}, "needs a country code of 1-3 digits, not starting with 0"},
		{ident.Phone{CountryCode: "01", National: "4255550100"}, "needs a country code of 1-3 digits, not starting with 0"},
		{ident.Phone{CountryCode: "1234", National: "4255550100"}, "needs a country code of 1-3 digits, not starting with 0"},
		{ident.Phone{CountryCode: "1", National: "425"}, "needs at least 4 digits after the country code, with no spaces or punctuation"},
		{ident.Phone{CountryCode: "1", National: "425 555 0100"}, "needs at least 4 digits after the country code, with no spaces or punctuation"},
		{ident.Phone{CountryCode: "49", National: "301234563074185"}, "has more than 15 digits; E.164 allows at most 15 for country code and number"},
		{ident.Phone{CountryCode: "1", National: "4255550100", Extension: "12345678901"}, "extension must be 1-10 digits after x"},
		{ident.Phone{CountryCode: "1", National: "4255550100", Extension: "1a"}, "extension must be 1-10 digits after x"},
	}
	for _, tc := range tests {
		err := tc.p.Check()
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%+v.Check() = %q, want %q", tc.p, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%+v.Check() = nil, want %q", tc.p, tc.want)
		}
	}
	if got := (ident.Phone{CountryCode: "1", National: "4255550100", Extension: "12"}).String(); got != "+1 4255550100x12" {
		t.Errorf("String() = %q", got)
	}
}

// FuzzParsePhone: no panic, and an accepted number renders back to itself
// and passes Check (ParsePhone is exactly the form Phone.String writes).
func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"+1 4255550100", "+1 4255550100x123", "+49 301234563074185", "+1 x1", "+ 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ident.ParsePhone(s)
		if err != nil {
			return
		}
		if p.String() != s || p.Check() != nil {
			t.Fatalf("ParsePhone(%q) = %+v: does not round-trip", s, p)
		}
	})
}

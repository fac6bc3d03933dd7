package graphclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/internal/ident/identtest"
)

// TestValidatorsAgreeWithEvents runs graphclient's validators and the
// events decoder's over the shared corpus: they must agree with each other
// and with the corpus verdict, so that an event the decoder accepts is
// never refused here as invalid input (a failed event and a dead letter
// instead of a rejection).
func TestValidatorsAgreeWithEvents(t *testing.T) {
	t.Parallel()
	for _, c := range identtest.Load(t, "../internal/ident/testdata/corpus.txt") {
		switch c.Kind {
		case "upn":
			_, eerr := events.ParseUser(c.Value)
			_, rerr := ParseUserRef(c.Value)
			verr := ValidateUPN(c.Value)
			if (eerr == nil) != c.OK || (rerr == nil) != c.OK || (verr == nil) != c.OK {
				t.Errorf("%v: want ok=%v; events.ParseUser: %v; ParseUserRef: %v; ValidateUPN: %v", c, c.OK, eerr, rerr, verr)
			}
			if rerr != nil && !errors.Is(rerr, ErrInvalidInput) {
				t.Errorf("%v: ParseUserRef error is not ErrInvalidInput: %v", c, rerr)
			}
		case "phone":
			normalized, eerr := events.NormalizePhone(c.Value, "")
			verr := ValidatePhoneNumber(c.Value)
			if (eerr == nil) != c.OK || (verr == nil) != c.OK {
				t.Errorf("%v: want ok=%v; events.NormalizePhone: %v; ValidatePhoneNumber: %v", c, c.OK, eerr, verr)
			}
			if eerr == nil {
				if err := ValidatePhoneNumber(normalized); err != nil {
					t.Errorf("%v: events normalises it to a number graphclient refuses: %v", c, err)
				}
			}
			if verr != nil && !errors.Is(verr, ErrInvalidInput) {
				t.Errorf("%v: ValidatePhoneNumber error is not ErrInvalidInput: %v", c, verr)
			}
		}
	}
}

func TestValidatePhoneNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"+1 5555551234", true},
		{"+1 5555551234x123", true},
		{"+44 7700900123", true},
		{"+353 851234567", true},
		{"+1 2065555555", true},
		{"+1 1234", true},
		{"+999 123456789012", true}, // 15 digits in all
		{"+1 5555551234x1234567890", true},
		{"", false},
		{"+", false},
		{"+1", false},
		{"+1 ", false},
		{"1 5555551234", false},
		{"+1 555 555 1234", false},
		{"+15555551234", false},
		{"+1  5555551234", false},
		{"+0 5555551234", false},
		{"+1234 5555551234", false},
		{"+1 555", false},
		{"+999 1234567890123", false}, // 16 digits
		{"+1 5555551234x", false},
		{"+1 5555551234x12345678901", false},
		{"+1 5555551234x12x3", false},
		{"+1 5555551234 x123", false},
		{"+1 555-555-1234", false},
		{"+1 (555)5551234", false},
		{"+1 5555551234\n", false},
		{"+1 ５５５５５５１２３４", false}, // fullwidth digits
		{"+١ 5555551234", false},
	}
	for _, tc := range tests {
		err := ValidatePhoneNumber(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePhoneNumber(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Errorf("ValidatePhoneNumber(%q) error is not ErrInvalidInput", tc.in)
			}
			if digits := strings.Trim(tc.in, "+ x"); len(digits) >= 6 && strings.Contains(err.Error(), digits) {
				t.Errorf("error repeats the number: %v", err)
			}
		}
	}
}

func TestValidateUPN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"adele.vance@contoso.com", true},
		{"AdeleV@Contoso.OnMicrosoft.com", true},
		{"o'brien@contoso.com", true},
		{"a_b-c!d^e~f@contoso.com", true},
		{"a_b-c!d#e^f~g@contoso.com", false}, // # only in a guest's #EXT# marker, as events.ParseUser
		{"john.doe_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		{"x@a.b", true},
		{"", false},
		{"adele", false},
		{"@contoso.com", false},
		{"adele@", false},
		{"a@b@contoso.com", false},
		{"adele vance@contoso.com", false},
		{"adele/../x@contoso.com", false},
		{"adele?x=1@contoso.com", false},
		{"adele%40@contoso.com", false},
		{"adèle@contoso.com", false},
		{".adele@contoso.com", false},
		{"adele.@contoso.com", false},
		{"ad..ele@contoso.com", false},
		{"adele@contoso", false},
		{"adele@-contoso.com", false},
		{"adele@contoso..com", false},
		{"adele@con_toso.com", false},
		{"adele@contoso.com/", false},
		{"adele@contoso.com\r\n", false},
		{strings.Repeat("a", 100) + "@" + strings.Repeat("b", 10) + ".com", false}, // > 113
		{"a@" + strings.Repeat("b", 50) + ".com", false},                           // domain > 48
		{strings.Repeat("a", 65) + "@contoso.com", false},                          // local part > 64
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 44) + ".com", true},   // 64 + 1 + 48
	}
	for _, tc := range tests {
		err := ValidateUPN(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateUPN(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ValidateUPN(%q) error is not ErrInvalidInput", tc.in)
		}
	}
}

func TestParseUserRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantID  string
		wantUPN string
		ok      bool
	}{
		{"11111111-2222-3333-4444-555555555555", "11111111-2222-3333-4444-555555555555", "", true},
		{"ABCDEF01-2222-3333-4444-55555555555A", "abcdef01-2222-3333-4444-55555555555a", "", true},
		{"adele@contoso.com", "", "adele@contoso.com", true},
		{"11111111-2222-3333-4444-55555555555", "", "", false},
		{"11111111-2222-3333-4444-55555555555g", "", "", false},
		{"{11111111-2222-3333-4444-555555555555}", "", "", false},
		{"111111112222333344445555555555555555", "", "", false},
		{"adele", "", "", false},
		{"", "", "", false},
		{"me", "", "", false},
		{"../users", "", "", false},
	}
	for _, tc := range tests {
		got, err := ParseUserRef(tc.in)
		if (err == nil) != tc.ok || got.ID != tc.wantID || got.UPN != tc.wantUPN {
			t.Errorf("ParseUserRef(%q) = %+v, %v; want {%q %q} ok=%v", tc.in, got, err, tc.wantID, tc.wantUPN, tc.ok)
		}
	}
}

func TestValidateIDs(t *testing.T) {
	t.Parallel()
	methodIDs := []struct {
		in string
		ok bool
	}{
		{"3179e48a-750b-4051-897c-87b9720928f7", true},
		{"-2_GRUg2-HYz6_1YG4YRAQ2", true},
		{"_jpuR-TGZtk6aQCLF3BQjA2", true},
		{"a", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"..", false},
		{"a/b", false},
		{"a%2Fb", false},
		{"a b", false},
		{"a?b", false},
		{"a#b", false},
		{"a=", false},
		{"é", false},
	}
	for _, tc := range methodIDs {
		if err := ValidateMethodID(tc.in); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidInput)) {
			t.Errorf("ValidateMethodID(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	userIDs := []struct {
		in string
		ok bool
	}{
		{testUser, true},
		{"ABCDEF01-2222-3333-4444-55555555555A", true},
		{"adele@contoso.com", false},
		{"-2_GRUg2-HYz6_1YG4YRAQ2", false},
		{"", false},
		{"11111111-2222-3333-4444-555555555555/", false},
		{"11111111+2222-3333-4444-555555555555", false},
	}
	for _, tc := range userIDs {
		if err := ValidateUserID(tc.in); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidInput)) {
			t.Errorf("ValidateUserID(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	if err := ValidateMethodID(strings.Repeat("é", 30)); err == nil || len(err.Error()) > 200 {
		t.Errorf("error for a long bad id: %v", err)
	}
}

func TestValidateEmailAndPassword(t *testing.T) {
	t.Parallel()
	emails := []struct {
		in string
		ok bool
	}{
		{"kim@contoso.com", true},
		{"kim.lee+sspr@mail.contoso.com", true},
		{"Kim <kim@contoso.com>", false},
		{"<kim@contoso.com>", false},
		{"kim", false},
		{"kim@localhost", false},
		{"kim@[127.0.0.1]", false},
		{"kim@contoso.com\r\nBcc: x@y.z", false},
		{"", false},
		{strings.Repeat("a", 250) + "@x.com", false},
	}
	for _, tc := range emails {
		if err := validateEmail(tc.in); (err == nil) != tc.ok {
			t.Errorf("validateEmail(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	passwords := []struct {
		in string
		ok bool
	}{
		{"Correct-Horse-9", true},
		{"with space and ünïcode", true},
		{"", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"bad\xffutf8", false},
		{strings.Repeat("p", 257), false},
	}
	for _, tc := range passwords {
		err := validatePassword(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("validatePassword(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && tc.in != "" && strings.Contains(err.Error(), tc.in) {
			t.Errorf("password error repeats the password: %v", err)
		}
	}
}

func TestODataQuote(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"adele@contoso.com":   "'adele@contoso.com'",
		"o'brien@contoso.com": "'o''brien@contoso.com'",
		"''":                  "''''''",
	}
	for in, want := range tests {
		if got := odataQuote(in); got != want {
			t.Errorf("odataQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

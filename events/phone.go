package events

import (
	"strconv"
	"strings"

	"github.com/authflow/authflow/internal/ident"
	"github.com/nyaruka/phonenumbers"
)

// phoneError is why a phone number was refused; rule tells a failure the
// schema can see (form) from one only libphonenumber can (validity).
type phoneError struct {
	msg  string
	rule rule
}

func (e *phoneError) Error() string { return e.msg }

// NormalizePhone turns a phone number as HR systems send it into Graph's
// form, "+{country code} {national number}" with an optional "x{extension}".
// It accepts E.164 ("+14255550100"), Graph's own form, and national numbers
// ("(425) 555-0100") read in defaultRegion (an ISO 3166 code such as "US";
// "" accepts international numbers only); digits may be grouped with spaces,
// dashes, dots and parentheses. Letters, non-ASCII digits, other
// whitespace, numbers that libphonenumber does not consider valid and
// numbers of more than 15 digits (E.164's limit, which Graph's form keeps)
// are refused. The error never contains the number.
func NormalizePhone(s, defaultRegion string) (string, error) {
	n, err := normalizePhone(s, defaultRegion)
	if err != nil {
		return "", err
	}
	return n, nil
}

func normalizePhone(s, defaultRegion string) (string, *phoneError) {
	if len(s) > maxPhoneInputLen {
		return "", &phoneError{msg: "longer than " + strconv.Itoa(maxPhoneInputLen) + " characters"}
	}
	if !rePhoneInput.MatchString(s) {
		return "", &phoneError{msg: "must be a phone number: optional +, digits grouped by spaces, dashes, dots or parentheses, optional x and extension digits"}
	}
	region := strings.ToUpper(defaultRegion)
	if !strings.HasPrefix(s, "+") {
		if region == "" {
			return "", &phoneError{msg: "a national number needs a default region; send it as +{country code} {number}", rule: rulePhone}
		}
		if phonenumbers.GetCountryCodeForRegion(region) == 0 {
			return "", &phoneError{msg: "the decoder's default region " + quote(defaultRegion) + " is not a region code", rule: ruleConfig}
		}
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", &phoneError{msg: "not a valid phone number" + inRegion(s, region), rule: rulePhone}
	}
	p := ident.Phone{
		CountryCode: strconv.Itoa(int(num.GetCountryCode())),
		National:    phonenumbers.GetNationalSignificantNumber(num),
		Extension:   num.GetExtension(),
	}
	// libphonenumber allows national numbers of up to 17 digits, and some
	// that it calls valid (long German and Nigerian numbers) exceed E.164's
	// 15: graphclient refuses those, so refuse them here, with the same rule.
	if err := p.Check(); err != nil {
		return "", &phoneError{msg: "not a phone number Graph can store: " + err.Error(), rule: rulePhone}
	}
	return p.String(), nil
}

func inRegion(s, region string) string {
	if strings.HasPrefix(s, "+") || region == "" {
		return ""
	}
	return " for region " + region
}

// MaskPhone hides all but the last four digits of a phone number in Graph's
// form, keeping the country code: "+1 4255550100" becomes "+1 ******0100".
// The extension is dropped. Anything not in Graph's form (ident.ParsePhone)
// becomes "****".
// Results and logs use it; a full number is personal data.
func MaskPhone(number string) string {
	p, err := ident.ParsePhone(number)
	if err != nil {
		return "****"
	}
	keep := min(4, len(p.National)/2)
	return "+" + p.CountryCode + " " + strings.Repeat("*", len(p.National)-keep) + p.National[len(p.National)-keep:]
}

// MaskEmail hides the local part of an address but its first character:
// "adele.vance@contoso.com" becomes "a***@contoso.com". Anything that is
// not an address becomes "****".
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || !reEmail.MatchString(addr) {
		return "****"
	}
	return local[:1] + "***@" + domain
}

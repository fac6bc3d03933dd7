package events

import (
	"strconv"
	"strings"

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
// whitespace and numbers that libphonenumber does not consider valid are
// refused. The error never contains the number.
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
	var b strings.Builder
	b.WriteByte('+')
	b.WriteString(strconv.Itoa(int(num.GetCountryCode())))
	b.WriteByte(' ')
	b.WriteString(phonenumbers.GetNationalSignificantNumber(num))
	if ext := num.GetExtension(); ext != "" {
		b.WriteByte('x')
		b.WriteString(ext)
	}
	out := b.String()
	if !reGraphPhone.MatchString(out) {
		return "", &phoneError{msg: "not a phone number Graph can store", rule: rulePhone}
	}
	return out, nil
}

func inRegion(s, region string) string {
	if strings.HasPrefix(s, "+") || region == "" {
		return ""
	}
	return " for region " + region
}

// MaskPhone hides all but the last four digits of a phone number in Graph's
// form, keeping the country code: "+1 4255550100" becomes "+1 ******0100".
// The extension is dropped. Anything not in Graph's form becomes "****".
// Results and logs use it; a full number is personal data.
func MaskPhone(number string) string {
	if !reGraphPhone.MatchString(number) {
		return "****"
	}
	cc, national, _ := strings.Cut(number, " ")
	national, _, _ = strings.Cut(national, "x")
	keep := min(4, len(national)/2)
	return cc + " " + strings.Repeat("*", len(national)-keep) + national[len(national)-keep:]
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

package events

import (
	"regexp"

	"github.com/authflow/authflow/internal/ident"
)

// The patterns below are shared, character for character, with the JSON
// Schemas in schema/defs.json (schema_test.go checks that they match), so
// that the decoder and the schemas accept the same strings. They use only
// the syntax common to Go's RE2 and ECMA-262, and lengths are checked
// separately (in code points, as JSON Schema's maxLength does). patternUPN
// is a UPN's shape as the schema can state it; ParseUser applies
// ident.CheckUPN, which also bounds the lengths of its parts.
const (
	// patternID: CloudEvents allows any non-empty string. authflow refuses
	// only what would forge a log line or a NATS header (controls, line and
	// paragraph separators, bidi overrides, BOM) and a leading or trailing
	// space, which a NATS header value loses.
	patternID = "^[^ \u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff](?:[^\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]*[^ \u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff])?$"
	// patternSource is a URI-reference (RFC 3986) by its characters:
	// unreserved, reserved and percent-encoded octets, at most one "#".
	// No "[" or "]" (IPv6 literals), so no two readers split it differently.
	patternSource = `^([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*(#([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)?$`
	// patternDataSchema is an absolute URI: a scheme, ":", URI characters.
	patternDataSchema = `^[A-Za-z][A-Za-z0-9+.-]*:([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*(#([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)?$`
	// patternMediaType is an RFC 2046 media type whose data is JSON:
	// application/json or application/<anything>+json, any case, with
	// RFC 9110 parameters. The decoder also requires a charset, when
	// given, to be utf-8 (the schema cannot say "if charset then").
	patternMediaType = "^[Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/([!#$%&'*+.^_`|~0-9A-Za-z-]+\\+)?[Jj][Ss][Oo][Nn]([ \t]*;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+=([!#$%&'*+.^_`|~0-9A-Za-z-]+|\"([\t !#-\\[\\]-~]|\\\\[\t -~])*\"))*$"
	// patternAttrName is a CloudEvents attribute name: lower-case ASCII
	// letters and digits, at most 20 (the spec's recommended bound).
	patternAttrName    = `^[a-z0-9]{1,20}$`
	patternGUID        = `^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`
	patternUPN         = `^[A-Za-z0-9'_!^~-]+(\.[A-Za-z0-9'_!^~-]+)*(#EXT#)?@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	patternTime        = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	patternPhoneInput  = `^\+?[0-9(][0-9 ().-]*(x[0-9]{1,10})?$`
	patternEmail       = `^[A-Za-z0-9_+'-]+(\.[A-Za-z0-9_+'-]+)*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	patternMethodID    = `^[A-Za-z0-9_-]+$`
	patternDeviceID    = `^[A-Za-z0-9._-]+$`
	patternXKey        = `^X[A-Z2-7]{55}$`
	patternTicketID    = `^[A-Za-z0-9][A-Za-z0-9._:#/-]*$`
	patternTraceParent = `^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`
	patternTraceState  = `^[ -~]+$`
	// patternText is free text shown to people (device names, agent names):
	// no C0/C1 controls, DEL, line or paragraph separators, bidi overrides
	// or BOM, which would let a value forge log lines or hide its meaning.
	patternText = "^[^\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]+$"
	// patternTypeName is the form of an event type name, known or not.
	patternTypeName = `^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*\.v[0-9]+$`
	// patternEventKey is an event key (EventKey): 64 lower-case hex digits.
	patternEventKey = `^[0-9a-f]{64}$`
	// patternUserKey is an nkeys user public key by its form; the checksum
	// is checked separately.
	patternUserKey = `^U[A-Z2-7]{55}$`
	// patternBase64 is standard base64 with padding.
	patternBase64 = `^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$`
)

// Length limits, in code points, shared with the schemas.
const (
	maxIDLen         = 128
	maxSourceLen     = 128
	maxTypeLen       = 64
	maxUPNLen        = ident.MaxUPNLen // Entra's limit for userPrincipalName; ident.CheckUPN has the rest
	maxPhoneInputLen = 40
	maxEmailLen      = 254
	maxMethodIDLen   = 128
	maxDeviceIDLen   = 128
	maxTicketIDLen   = 64
	maxTextLen       = 128
	maxTraceStateLen = 512
	maxDataSchemaLen = 512
	maxMediaTypeLen  = 128
	maxExtensionLen  = 256 // an extension attribute's string value
	// maxExtensions bounds the extension attributes of one event.
	maxExtensions = 16
)

// Compiled once; a *regexp.Regexp is immutable and safe for concurrent use.
var (
	reID          = regexp.MustCompile(patternID)
	reSource      = regexp.MustCompile(patternSource)
	reGUID        = regexp.MustCompile(patternGUID)
	reUPN         = regexp.MustCompile(patternUPN)
	reTime        = regexp.MustCompile(patternTime)
	rePhoneInput  = regexp.MustCompile(patternPhoneInput)
	reEmail       = regexp.MustCompile(patternEmail)
	reMethodID    = regexp.MustCompile(patternMethodID)
	reDeviceID    = regexp.MustCompile(patternDeviceID)
	reXKey        = regexp.MustCompile(patternXKey)
	reTicketID    = regexp.MustCompile(patternTicketID)
	reTraceParent = regexp.MustCompile(patternTraceParent)
	reDataSchema  = regexp.MustCompile(patternDataSchema)
	reMediaType   = regexp.MustCompile(patternMediaType)
	reAttrName    = regexp.MustCompile(patternAttrName)
	reTraceState  = regexp.MustCompile(patternTraceState)
	reText        = regexp.MustCompile(patternText)
	reTypeName    = regexp.MustCompile(patternTypeName)
	reBase64      = regexp.MustCompile(patternBase64)
	reEventKey    = regexp.MustCompile(patternEventKey)
	reUserKey     = regexp.MustCompile(patternUserKey)
)

package events

import (
	"bytes"
	"fmt"
	"strings"
)

// badCase is an input the decoder must reject with exactly this code and
// field. schemaBlind marks the inputs that JSON Schema cannot tell from
// valid ones (see docs/events.md, "JSON Schemas"); every other bad case
// must be rejected by the schema too.
type badCase struct {
	name        string
	raw         []byte
	code        Code
	field       string
	schemaBlind bool
	region      string // decoder default region; "US" when empty, "-" for none
}

func badCases() []badCase {
	return append(baseBadCases(), passkeyBadCases()...)
}

func baseBadCases() []badCase {
	valid := event(TypeEmployeeJoined, "adele.vance@contoso.com", `{"mobilePhone":"+1 4255550100"}`)
	joined := func(data string) []byte { return event(TypeEmployeeJoined, "adele.vance@contoso.com", data) }
	subject := func(s string) []byte { return event(TypeMethodsInventory, s, `{}`) }
	timed := func(ts string) []byte { return without("time", `"time":"`+ts+`"`) }
	lost := func(data string) []byte { return event(TypeDeviceLost, "megan.bowen@contoso.com", data) }
	tap := func(t string) []byte { return event(TypeTAPIssue, "diego.siciliani@contoso.com", t) }
	qr := func(t string) []byte { return event(TypeQRCodeIssue, "diego.siciliani@contoso.com", t) }
	inv := func(data string) []byte { return event(TypeMethodsInventory, "adele.vance@contoso.com", data) }
	grant := func(data string) []byte { return event(TypeApprovalGrant, "adele.vance@contoso.com", data) }
	deny := func(data string) []byte { return event(TypeApprovalDeny, "adele.vance@contoso.com", data) }
	big := append(bytes.Repeat([]byte(" "), DefaultMaxBytes), valid...)
	deep := inv(`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`)
	return []badCase{
		// JSON syntax and encoding.
		{name: "empty", raw: []byte(""), code: CodeInvalidEvent},
		{name: "not JSON", raw: []byte("hello"), code: CodeInvalidEvent},
		{name: "truncated", raw: valid[:len(valid)/2], code: CodeInvalidEvent},
		{name: "truncated in literal", raw: []byte(`{"specversion":"1.0","data":{"dryRun":tru`), code: CodeInvalidEvent},
		{name: "missing closing brace", raw: valid[:len(valid)-1], code: CodeInvalidEvent},
		{name: "trailing garbage", raw: append(append([]byte{}, valid...), 'x'), code: CodeInvalidEvent},
		{name: "two values", raw: append(append([]byte{}, valid...), valid...), code: CodeInvalidEvent},
		{name: "array", raw: []byte(`[]`), code: CodeInvalidEvent},
		{name: "string document", raw: []byte(`"event"`), code: CodeInvalidEvent},
		{name: "byte order mark", raw: append([]byte("\xef\xbb\xbf"), valid...), code: CodeInvalidEvent},
		{name: "trailing comma", raw: []byte(`{"specversion":"1.0",}`), code: CodeInvalidEvent},
		{name: "single quotes", raw: []byte(`{'specversion':'1.0'}`), code: CodeInvalidEvent},
		{name: "raw newline in string", raw: bytes.Replace(valid, []byte("hr/workday"), []byte("hr/\nworkday"), 1), code: CodeInvalidEvent},
		{name: "NUL byte outside strings", raw: append([]byte{0}, valid...), code: CodeInvalidEvent},
		{name: "bad escape", raw: bytes.Replace(valid, []byte("hr/workday"), []byte(`hr\qworkday`), 1), code: CodeInvalidEvent},
		{name: "leading zero number", raw: tap(`{"lifetimeInMinutes":060,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent},
		{name: "NaN", raw: tap(`{"lifetimeInMinutes":NaN,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent},
		{name: "nested too deep", raw: deep, code: CodeInvalidEvent},
		{name: "invalid UTF-8 in subject", raw: subject("ad\xffele@contoso.com"), code: CodeInvalidEvent},
		{name: "invalid UTF-8 in free text", raw: lost("{\"device\":{\"displayName\":\"Megan\xc3\"}}"), code: CodeInvalidEvent, schemaBlind: true},
		{name: "overlong UTF-8", raw: lost("{\"device\":{\"displayName\":\"Megan\xc0\xaf\"}}"), code: CodeInvalidEvent, schemaBlind: true},
		{name: "unpaired surrogate", raw: lost(`{"device":{"displayName":"Megan\ud800"}}`), code: CodeInvalidEvent, schemaBlind: true},
		{name: "reversed surrogate pair", raw: lost(`{"device":{"displayName":"\udc00\ud800"}}`), code: CodeInvalidEvent, schemaBlind: true},
		{name: "duplicate envelope key", raw: []byte(`{"specversion":"1.0","id":"e-1","id":"e-2","source":"hr/workday","type":"authflow.methods.inventory.v1","subject":"adele.vance@contoso.com","time":"` + testTime + `","data":{}}`), code: CodeInvalidEvent, field: "id", schemaBlind: true},
		{name: "duplicate key via escape", raw: []byte(`{"specversion":"1.0","id":"e-1","i\u0064":"e-2","source":"hr/workday","type":"authflow.methods.inventory.v1","subject":"adele.vance@contoso.com","time":"` + testTime + `","data":{}}`), code: CodeInvalidEvent, field: "id", schemaBlind: true},
		{name: "duplicate nested key", raw: tap(`{"lifetimeInMinutes":60,"lifetimeInMinutes":43000,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes", schemaBlind: true},
		{name: "duplicate key in a nested object", raw: joined(`{"tap":{"sealTo":"` + testSealTo + `","sealTo":"` + testSealTo + `"}}`), code: CodeInvalidEvent, field: "data.tap.sealTo", schemaBlind: true},
		{name: "duplicate key in an array element", raw: lost(`{"device":{"deviceId":"d1"},"kinds":["fido2",{"kind":1,"kind":2}]}`), code: CodeInvalidEvent, field: "data.kinds[1].kind"},
		{name: "oversized", raw: big, code: CodePayloadTooLarge, schemaBlind: true},

		// Envelope.
		{name: "missing specversion", raw: without("specversion", ""), code: CodeInvalidEvent, field: "specversion"},
		{name: "specversion 0.3", raw: without("specversion", `"specversion":"0.3"`), code: CodeInvalidEvent, field: "specversion"},
		{name: "specversion number", raw: without("specversion", `"specversion":1.0`), code: CodeInvalidEvent, field: "specversion"},
		{name: "missing id", raw: without("id", ""), code: CodeInvalidEvent, field: "id"},
		{name: "empty id", raw: without("id", `"id":""`), code: CodeInvalidEvent, field: "id"},
		{name: "id number", raw: without("id", `"id":42`), code: CodeInvalidEvent, field: "id"},
		{name: "id too long", raw: without("id", `"id":"`+strings.Repeat("a", 129)+`"`), code: CodeInvalidEvent, field: "id"},
		{name: "missing source", raw: without("source", ""), code: CodeInvalidEvent, field: "source"},
		{name: "id with leading space", raw: without("id", `"id":" e-1"`), code: CodeInvalidEvent, field: "id"},
		{name: "id with trailing space", raw: without("id", `"id":"e-1 "`), code: CodeInvalidEvent, field: "id"},
		{name: "id with CRLF", raw: without("id", `"id":"e-1\r\nX-Forged: 1"`), code: CodeInvalidEvent, field: "id"},
		{name: "id with bidi override", raw: without("id", `"id":"e-\u202e1"`), code: CodeInvalidEvent, field: "id"},
		{name: "id of 129 characters in Unicode", raw: without("id", `"id":"`+strings.Repeat("é", 129)+`"`), code: CodeInvalidEvent, field: "id"},
		{name: "source with space", raw: without("source", `"source":"hr workday"`), code: CodeInvalidEvent, field: "source"},
		{name: "source with two fragments", raw: without("source", `"source":"hr/workday#a#b"`), code: CodeInvalidEvent, field: "source"},
		{name: "source with bad percent escape", raw: without("source", `"source":"hr/%zzworkday"`), code: CodeInvalidEvent, field: "source"},
		{name: "source with IPv6 brackets", raw: without("source", `"source":"https://[::1]/hr"`), code: CodeInvalidEvent, field: "source"},
		{name: "source non-ASCII", raw: without("source", `"source":"hr/wörkday"`), code: CodeInvalidEvent, field: "source"},
		{name: "source with CRLF", raw: without("source", `"source":"hr/workday\r\nX-Forged: 1"`), code: CodeInvalidEvent, field: "source"},
		{name: "missing type", raw: without("type", ""), code: CodeInvalidEvent, field: "type"},
		{name: "type null", raw: without("type", `"type":null`), code: CodeInvalidEvent, field: "type"},
		{name: "unknown type", raw: without("type", `"type":"authflow.employee.hired.v1"`), code: CodeUnknownType, field: "type"},
		{name: "unknown version", raw: without("type", `"type":"authflow.employee.joined.v2"`), code: CodeUnknownType, field: "type"},
		{name: "type in upper case", raw: without("type", `"type":"AUTHFLOW.METHODS.INVENTORY.V1"`), code: CodeUnknownType, field: "type"},
		{name: "missing subject", raw: without("subject", ""), code: CodeInvalidEvent, field: "subject"},
		{name: "missing time", raw: without("time", ""), code: CodeInvalidEvent, field: "time"},
		{name: "missing data", raw: without("data", ""), code: CodeInvalidEvent, field: "data"},
		{name: "data null", raw: without("data", `"data":null`), code: CodeInvalidEvent, field: "data"},
		{name: "data array", raw: without("data", `"data":[]`), code: CodeInvalidEvent, field: "data"},
		{name: "data string", raw: without("data", `"data":"{}"`), code: CodeInvalidEvent, field: "data"},
		{name: "data_base64", raw: without("data", `"data_base64":"e30="`), code: CodeInvalidEvent, field: "data_base64"},
		{name: "envelope key in another case", raw: without("id", `"ID":"e-1"`), code: CodeInvalidEvent, field: "ID"},
		{name: "datacontenttype text", raw: without("data", `"data":{},"datacontenttype":"text/plain"`), code: CodeInvalidEvent, field: "datacontenttype"},
		{name: "datacontenttype xml", raw: without("data", `"data":{},"datacontenttype":"application/xml"`), code: CodeInvalidEvent, field: "datacontenttype"},
		{name: "datacontenttype json with a space before the subtype", raw: without("data", `"data":{},"datacontenttype":"application/ json"`), code: CodeInvalidEvent, field: "datacontenttype"},
		{name: "datacontenttype charset latin-1", raw: without("data", `"data":{},"datacontenttype":"application/json; charset=iso-8859-1"`), code: CodeInvalidEvent, field: "datacontenttype", schemaBlind: true},
		{name: "datacontenttype repeated parameter", raw: without("data", `"data":{},"datacontenttype":"application/json; a=1; a=2"`), code: CodeInvalidEvent, field: "datacontenttype", schemaBlind: true},
		{name: "datacontenttype empty", raw: without("data", `"data":{},"datacontenttype":""`), code: CodeInvalidEvent, field: "datacontenttype"},
		{name: "dataschema relative", raw: without("data", `"data":{},"dataschema":"schemas/joined.json"`), code: CodeInvalidEvent, field: "dataschema"},
		{name: "dataschema with space", raw: without("data", `"data":{},"dataschema":"https://example.com/a b"`), code: CodeInvalidEvent, field: "dataschema"},
		{name: "dataschema number", raw: without("data", `"data":{},"dataschema":1`), code: CodeInvalidEvent, field: "dataschema"},
		{name: "unknown attribute in upper case", raw: without("data", `"data":{},"Dataschema":"https://example.com/s"`), code: CodeInvalidEvent, field: "Dataschema"},
		{name: "extension name with underscore", raw: without("data", `"data":{},"com_example":"x"`), code: CodeInvalidEvent, field: "com_example"},
		{name: "extension name of 21 characters", raw: without("data", `"data":{},"`+strings.Repeat("a", 21)+`":"x"`), code: CodeInvalidEvent, field: strings.Repeat("a", 21)},
		{name: "extension name with a dash", raw: without("data", `"data":{},"ticket-id":"x"`), code: CodeInvalidEvent, field: "ticket-id"},
		{name: "extension null", raw: without("data", `"data":{},"ticketid":null`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension object", raw: without("data", `"data":{},"ticketid":{"a":1}`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension array", raw: without("data", `"data":{},"ticketid":["a"]`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension fraction", raw: without("data", `"data":{},"priority":1.5`), code: CodeInvalidEvent, field: "priority"},
		{name: "extension integer beyond 32 bits", raw: without("data", `"data":{},"priority":2147483648`), code: CodeInvalidEvent, field: "priority"},
		{name: "extension empty", raw: without("data", `"data":{},"ticketid":""`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension of 257 characters", raw: without("data", `"data":{},"ticketid":"`+strings.Repeat("é", 257)+`"`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension with CRLF", raw: without("data", `"data":{},"ticketid":"INC1\r\nX-Forged: 1"`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension with bidi override", raw: without("data", `"data":{},"ticketid":"INC\u202e1"`), code: CodeInvalidEvent, field: "ticketid"},
		{name: "extension invalid UTF-8", raw: without("data", "\"data\":{},\"ticketid\":\"INC\xff\""), code: CodeInvalidEvent, field: "", schemaBlind: true},
		{name: "duplicate extension", raw: without("data", `"data":{},"ticketid":"a","ticketid":"b"`), code: CodeInvalidEvent, field: "ticketid", schemaBlind: true},
		{name: "17 extensions", raw: without("data", `"data":{}`+manyExtensions(17)), code: CodeInvalidEvent, field: "x17", schemaBlind: true},
		{name: "bad traceparent", raw: without("data", `"data":{},"traceparent":"00-abc-def-01"`), code: CodeInvalidEvent, field: "traceparent"},
		{name: "tracestate with newline", raw: without("data", `"data":{},"tracestate":"a=b\nc=d"`), code: CodeInvalidEvent, field: "tracestate"},

		// Subjects.
		{name: "UPN with slash", raw: subject("adele/vance@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with dot dot", raw: subject("adele..vance@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN path traversal", raw: subject("../admin@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with question mark", raw: subject("adele?x=1@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with hash", raw: subject("adele#x@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with EXT not before @", raw: subject("adele#EXT#x@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with %2F", raw: subject("adele%2Fvance@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with %252F", raw: subject("adele%252F@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with backslash", raw: subject(`adele\\vance@contoso.com`), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with CRLF", raw: subject(`adele@contoso.com\r\nX-Injected: 1`), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with Cyrillic a", raw: subject("\u0430dele@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with fullwidth at", raw: subject("adele\uff20contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with zero-width space", raw: subject("ade\u200ble@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with bidi override", raw: subject("adele\u202e@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with leading dollar", raw: subject("$adele@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with space", raw: subject("adele vance@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with trailing dot", raw: subject("adele.@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN without domain dot", raw: subject("adele@contoso"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN too long", raw: subject(strings.Repeat("a", 102) + "@contoso.com"), code: CodeInvalidEvent, field: "subject"},
		{name: "UPN with 101 characters before the @", raw: subject(strings.Repeat("a", 101) + "@contoso.com"), code: CodeInvalidEvent, field: "subject", schemaBlind: true},
		{name: "UPN with 65 characters before the @", raw: subject(strings.Repeat("a", 65) + "@contoso.com"), code: CodeInvalidEvent, field: "subject", schemaBlind: true},
		{name: "UPN with a domain label of 65", raw: subject("adele@" + strings.Repeat("a", 65) + ".com"), code: CodeInvalidEvent, field: "subject", schemaBlind: true},
		{name: "UPN with 49 characters after the @", raw: subject("a@" + strings.Repeat("b", 45) + ".com"), code: CodeInvalidEvent, field: "subject", schemaBlind: true},
		{name: "no at sign", raw: subject("adele.vance"), code: CodeInvalidEvent, field: "subject"},
		{name: "GUID in braces", raw: subject("{3f0c9a4e-8b1d-4c1a-9e0f-2b6d7c8e9a10}"), code: CodeInvalidEvent, field: "subject"},
		{name: "GUID too short", raw: subject("3f0c9a4e-8b1d-4c1a-9e0f-2b6d7c8e9a1"), code: CodeInvalidEvent, field: "subject"},
		{name: "subject empty", raw: subject(""), code: CodeInvalidEvent, field: "subject"},

		// Time.
		{name: "time with space", raw: timed("2026-11-26 09:00:00Z"), code: CodeInvalidEvent, field: "time"},
		{name: "time without zone", raw: timed("2026-11-26T09:00:00"), code: CodeInvalidEvent, field: "time"},
		{name: "time February 30", raw: timed("2026-02-30T09:00:00Z"), code: CodeInvalidEvent, field: "time"},
		{name: "time with lower-case t and a space", raw: timed("2026-11-26t09:00:00 z"), code: CodeInvalidEvent, field: "time"},
		{name: "time with 10 fraction digits", raw: timed("2026-11-26T09:00:00.1234567891Z"), code: CodeInvalidEvent, field: "time"},
		{name: "time leap second", raw: timed("2026-12-31T23:59:60Z"), code: CodeInvalidEvent, field: "time"},
		{name: "time as number", raw: without("time", `"time":1764147600`), code: CodeInvalidEvent, field: "time"},

		// Data: shape.
		{name: "unknown data field with CRLF", raw: joined(`{"mobilePhone":"+1 4255550100","a\r\nX-Forged: 1":1}`), code: CodeInvalidEvent, field: `data."a\r\nX-Forged: 1"`},
		{name: "unknown empty data field", raw: joined(`{"mobilePhone":"+1 4255550100","":1}`), code: CodeInvalidEvent, field: `data.""`},
		{name: "unknown data field with dot", raw: joined(`{"mobilePhone":"+1 4255550100","tap.sealTo":1}`), code: CodeInvalidEvent, field: `data."tap.sealTo"`},
		{name: "unknown data field", raw: joined(`{"mobilePhone":"+1 4255550100","pager":"123"}`), code: CodeInvalidEvent, field: "data.pager"},
		{name: "data field in another case", raw: joined(`{"MobilePhone":"+1 4255550100"}`), code: CodeInvalidEvent, field: "data.MobilePhone"},
		{name: "dryRun string", raw: joined(`{"mobilePhone":"+1 4255550100","dryRun":"yes"}`), code: CodeInvalidEvent, field: "data.dryRun"},
		{name: "null not allowed", raw: joined(`{"mobilePhone":null}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "empty string", raw: joined(`{"mobilePhone":""}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone as number", raw: joined(`{"mobilePhone":14255550100}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "joined nothing to do", raw: joined(`{"smsSignIn":false,"enableAccount":false}`), code: CodeInvalidEvent, field: "data"},
		{name: "joined sms without mobile", raw: joined(`{"smsSignIn":true,"officePhone":"+1 4255550100"}`), code: CodeInvalidEvent, field: "data.smsSignIn"},

		// Phones.
		{name: "phone with letters", raw: joined(`{"mobilePhone":"+1 800 FLOWERS"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone with tab", raw: joined(`{"mobilePhone":"+1\t4255550100"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone with no-break space", raw: joined(`{"mobilePhone":"+1\u00a04255550100"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone with Arabic-Indic digits", raw: joined(`{"mobilePhone":"+\u0661 \u0664\u0662\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone with fullwidth digits", raw: joined(`{"mobilePhone":"+\uff11 4255550100"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone extension without digits", raw: joined(`{"mobilePhone":"+1 4255550100x"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone extension alone", raw: joined(`{"mobilePhone":"x123"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone too long", raw: joined(`{"mobilePhone":"+1 4255550100 4255550100 4255550100 42555"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone with double plus", raw: joined(`{"mobilePhone":"++1 4255550100"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "phone only punctuation", raw: joined(`{"mobilePhone":"(---)"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone of 17 digits libphonenumber calls valid", raw: joined(`{"mobilePhone":"+49 301234563074185"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone of 16 digits in E.164", raw: joined(`{"mobilePhone":"+4930123456307418"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone too many digits", raw: joined(`{"mobilePhone":"+1 42555501001234567"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone unassigned area code", raw: joined(`{"mobilePhone":"+1 5555551234"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone too short", raw: joined(`{"mobilePhone":"+1 4255"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone unknown country code", raw: joined(`{"mobilePhone":"+999 4255550100"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "phone 00 prefix in US", raw: joined(`{"mobilePhone":"0044 20 7946 0958"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true},
		{name: "national phone without region", raw: joined(`{"mobilePhone":"(425) 555-0100"}`), code: CodeInvalidEvent, field: "data.mobilePhone", schemaBlind: true, region: "-"},

		// TAP requests.
		{name: "tap lifetime too short", raw: tap(`{"lifetimeInMinutes":9,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime too long", raw: tap(`{"lifetimeInMinutes":43201,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime zero", raw: tap(`{"lifetimeInMinutes":0,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime negative", raw: tap(`{"lifetimeInMinutes":-60,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime fraction", raw: tap(`{"lifetimeInMinutes":60.5,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime huge", raw: tap(`{"lifetimeInMinutes":1e400,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime beyond int64", raw: tap(`{"lifetimeInMinutes":99999999999999999999,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap lifetime string", raw: tap(`{"lifetimeInMinutes":"60","sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInMinutes"},
		{name: "tap nested lifetime out of bounds", raw: joined(`{"tap":{"lifetimeInMinutes":50000,"sealTo":"` + testSealTo + `"}}`), code: CodeInvalidEvent, field: "data.tap.lifetimeInMinutes"},
		{name: "tap missing sealTo", raw: tap(`{"lifetimeInMinutes":60}`), code: CodeInvalidEvent, field: "data.sealTo"},

		// QR code + PIN requests.
		{name: "qr lifetime zero", raw: qr(`{"lifetimeInDays":0,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInDays"},
		{name: "qr lifetime too long", raw: qr(`{"lifetimeInDays":396,"sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInDays"},
		{name: "qr lifetime string", raw: qr(`{"lifetimeInDays":"30","sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.lifetimeInDays"},
		{name: "qr missing sealTo", raw: qr(`{"lifetimeInDays":30}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "qr sealTo not a key", raw: qr(`{"sealTo":"alice@contoso.com"}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "qr unknown field", raw: qr(`{"sealTo":"` + testSealTo + `","pin":"12345678"}`), code: CodeInvalidEvent, field: "data.pin"},
		{name: "qr nested in joined without sealTo", raw: joined(`{"qrCodePin":{"lifetimeInDays":30}}`), code: CodeInvalidEvent, field: "data.qrCodePin.sealTo"},
		{name: "tap sealTo not a key", raw: tap(`{"sealTo":"alice@contoso.com"}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "tap sealTo user key", raw: tap(`{"sealTo":"UCCASVKSZT6UBZZKMMI6GEH2EU22MYUBO7RHKC3SE7GG5ZGTSTIR3GFS"}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "tap sealTo bad checksum", raw: tap(`{"sealTo":"` + testSealTo[:55] + `A"}`), code: CodeInvalidEvent, field: "data.sealTo", schemaBlind: true},
		{name: "tap bad start", raw: tap(`{"startDateTime":"tomorrow","sealTo":"` + testSealTo + `"}`), code: CodeInvalidEvent, field: "data.startDateTime"},

		// Other types.
		{name: "moved nothing to do", raw: event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"revokeSessions":false}`), code: CodeInvalidEvent, field: "data"},
		{name: "moved remove mobile keep alternate", raw: event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"mobilePhone":null,"alternateMobilePhone":"+1 4255550101"}`), code: CodeInvalidEvent, field: "data.mobilePhone"},
		{name: "moved remove mobile enable sms", raw: event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"mobilePhone":null,"smsSignIn":true}`), code: CodeInvalidEvent, field: "data.smsSignIn"},
		{name: "moved bad email", raw: event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"email":"not an address"}`), code: CodeInvalidEvent, field: "data.email"},
		{name: "left all off", raw: event(TypeEmployeeLeft, "adele.vance@contoso.com", `{"disableAccount":false,"revokeSessions":false,"removeMethods":false}`), code: CodeInvalidEvent, field: "data"},
		{name: "lost without device", raw: lost(`{}`), code: CodeInvalidEvent, field: "data.device"},
		{name: "lost empty device", raw: lost(`{"device":{}}`), code: CodeInvalidEvent, field: "data.device"},
		{name: "lost device name with bidi override", raw: lost(`{"device":{"displayName":"Megan\u202ePhone"}}`), code: CodeInvalidEvent, field: "data.device.displayName"},
		{name: "lost device name with newline", raw: lost(`{"device":{"displayName":"Megan\nPhone"}}`), code: CodeInvalidEvent, field: "data.device.displayName"},
		{name: "lost device id with slash", raw: lost(`{"device":{"deviceId":"../x"}}`), code: CodeInvalidEvent, field: "data.device.deviceId"},
		{name: "lost unknown kind", raw: lost(`{"device":{"deviceId":"d1"},"kinds":["password"]}`), code: CodeInvalidEvent, field: "data.kinds[0]"},
		{name: "lost duplicate kind", raw: lost(`{"device":{"deviceId":"d1"},"kinds":["fido2","fido2"]}`), code: CodeInvalidEvent, field: "data.kinds[1]"},
		{name: "lost empty kinds", raw: lost(`{"device":{"deviceId":"d1"},"kinds":[]}`), code: CodeInvalidEvent, field: "data.kinds"},
		{name: "phone.set missing number", raw: event(TypePhoneSet, "alex.wilber@contoso.com", `{"phoneType":"mobile"}`), code: CodeInvalidEvent, field: "data.phoneNumber"},
		{name: "phone.set bad type", raw: event(TypePhoneSet, "alex.wilber@contoso.com", `{"phoneType":"pager","phoneNumber":"+1 4255550100"}`), code: CodeInvalidEvent, field: "data.phoneType"},
		{name: "phone.remove missing type", raw: event(TypePhoneRemove, "alex.wilber@contoso.com", `{}`), code: CodeInvalidEvent, field: "data.phoneType"},
		{name: "email.set missing address", raw: event(TypeEmailSet, "lee.gu@contoso.com", `{}`), code: CodeInvalidEvent, field: "data.emailAddress"},
		{name: "email.set address with CRLF", raw: event(TypeEmailSet, "lee.gu@contoso.com", `{"emailAddress":"a@b.com\r\nBcc: c@d.com"}`), code: CodeInvalidEvent, field: "data.emailAddress"},
		{name: "method.remove id with slash", raw: event(TypeMethodRemove, "nestor.wilke@contoso.com", `{"methodKind":"fido2","methodId":"abc/../../users"}`), code: CodeInvalidEvent, field: "data.methodId"},
		{name: "method.remove password", raw: event(TypeMethodRemove, "nestor.wilke@contoso.com", `{"methodKind":"password","methodId":"28c10230-6103-485e-b985-444c60001490"}`), code: CodeInvalidEvent, field: "data.methodKind"},
		{name: "password.reset with a password", raw: event(TypePasswordReset, "isaiah.langer@contoso.com", `{"sealTo":"`+testSealTo+`","newPassword":"hunter2"}`), code: CodeInvalidEvent, field: "data.newPassword"},
		{name: "verification incomplete", raw: event(TypeMFAReset, "lee.gu@contoso.com", `{"verification":{"ticketId":"INC1"}}`), code: CodeInvalidEvent, field: "data.verification.method"},
		{name: "verification bad method", raw: event(TypeMFAReset, "lee.gu@contoso.com", `{"verification":{"ticketId":"INC1","method":"email","verifiedBy":"Jo"}}`), code: CodeInvalidEvent, field: "data.verification.method"},
		{name: "inventory data field", raw: inv(`{"kinds":["phone"]}`), code: CodeInvalidEvent, field: "data.kinds"},

		// Approval decisions.
		{name: "grant without key", raw: grant(`{}`), code: CodeInvalidEvent, field: "data.eventKey"},
		{name: "grant key too short", raw: grant(`{"eventKey":"` + testEventKey[:63] + `"}`), code: CodeInvalidEvent, field: "data.eventKey"},
		{name: "grant key in upper case", raw: grant(`{"eventKey":"` + strings.ToUpper(testEventKey) + `"}`), code: CodeInvalidEvent, field: "data.eventKey"},
		{name: "grant pending result id", raw: grant(`{"eventKey":"` + testEventKey + `:pending_approval"}`), code: CodeInvalidEvent, field: "data.eventKey"},
		{name: "grant key not a string", raw: grant(`{"eventKey":42}`), code: CodeInvalidEvent, field: "data.eventKey"},
		{name: "grant as a dry run", raw: grant(`{"eventKey":"` + testEventKey + `","dryRun":true}`), code: CodeInvalidEvent, field: "data.dryRun"},
		{name: "grant with verification", raw: grant(`{"eventKey":"` + testEventKey + `","verification":{"ticketId":"INC1","method":"callback","verifiedBy":"Jo"}}`), code: CodeInvalidEvent, field: "data.verification"},
		{name: "grant with a reason", raw: grant(`{"eventKey":"` + testEventKey + `","reason":"ok"}`), code: CodeInvalidEvent, field: "data.reason"},
		{name: "deny without reason", raw: deny(`{"eventKey":"` + testEventKey + `"}`), code: CodeInvalidEvent, field: "data.reason"},
		{name: "deny empty reason", raw: deny(`{"eventKey":"` + testEventKey + `","reason":""}`), code: CodeInvalidEvent, field: "data.reason"},
		{name: "deny reason with newline", raw: deny(`{"eventKey":"` + testEventKey + `","reason":"no\nticket"}`), code: CodeInvalidEvent, field: "data.reason"},
		{name: "deny reason too long", raw: deny(`{"eventKey":"` + testEventKey + `","reason":"` + strings.Repeat("x", 129) + `"}`), code: CodeInvalidEvent, field: "data.reason"},
		{name: "deny without key", raw: deny(`{"reason":"no ticket"}`), code: CodeInvalidEvent, field: "data.eventKey"},
	}
}

// goodCase is a valid event beyond the documented examples.
type goodCase struct {
	name string
	raw  []byte
}

func goodCases() []goodCase {
	return []goodCase{
		{"object id subject in upper case", event(TypeMethodsInventory, "3F0C9A4E-8B1D-4C1A-9E0F-2B6D7C8E9A10", `{}`)},
		{"guest UPN", event(TypeMethodsInventory, "john_fabrikam.com#EXT#@contoso.onmicrosoft.com", `{}`)},
		{"UPN with apostrophe", event(TypeMethodsInventory, "o'brien@contoso.com", `{}`)},
		{"UPN of 113 characters", event(TypeMethodsInventory, strings.Repeat("a", 64)+"@"+strings.Repeat("b", 44)+".com", `{}`)},
		{"phone of 15 digits", event(TypeEmployeeJoined, "adele.vance@contoso.com", `{"officePhone":"+49 3012345630741"}`)},
		{"integer written as 60.0", event(TypeTAPIssue, "diego.siciliani@contoso.com", `{"lifetimeInMinutes":60.0,"sealTo":"`+testSealTo+`"}`)},
		{"integer written as 6e1", event(TypeTAPIssue, "diego.siciliani@contoso.com", `{"lifetimeInMinutes":6e1,"sealTo":"`+testSealTo+`"}`)},
		{"escaped characters", []byte(`{"specversion":"1.0","id":"e\u002d1","source":"hr\/workday","type":"authflow.methods.inventory.v1","subject":"adele.vance@contoso.com","time":"` + testTime + `","data":{}}`)},
		{"whitespace everywhere", []byte(" \r\n\t{ \"specversion\" : \"1.0\" , \"id\":\"e-1\",\"source\":\"hr/workday\",\"type\":\"authflow.methods.inventory.v1\",\"subject\":\"adele.vance@contoso.com\",\"time\":\"" + testTime + "\",\"data\":{ } } \n")},
		{"all optional envelope attributes", without("data", `"data":{"dryRun":true},"datacontenttype":"application/json","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"congo=t61rcWkgMzE"`)},
		{"time with offset and fraction", without("time", `"time":"2026-11-26T10:00:00.123456789+01:00"`)},
		{"moved with nulls", event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"alternateMobilePhone":null,"officePhone":null,"email":null,"smsSignIn":false}`)},
		{"moved mobile null with alternate null", event(TypeEmployeeMoved, "adele.vance@contoso.com", `{"mobilePhone":null,"alternateMobilePhone":null}`)},
		{"left one step", event(TypeEmployeeLeft, "adele.vance@contoso.com", `{"disableAccount":false,"revokeSessions":false}`)},
		{"lost by device id and kinds", event(TypeDeviceLost, "megan.bowen@contoso.com", `{"device":{"deviceId":"8c0a2d6e-4f1b-4c3d-9e7a-1b2c3d4e5f60"},"kinds":["windowsHelloForBusiness"],"revokeSessions":false}`)},
		{"joined enable account only", event(TypeEmployeeJoined, "adele.vance@contoso.com", `{"enableAccount":true}`)},
		{"joined all phones", event(TypeEmployeeJoined, "adele.vance@contoso.com", `{"mobilePhone":"+14255550100","alternateMobilePhone":"425.555.0101","officePhone":"+44 (0)20 7946 0958"}`)},
		{"mfa reset minimal", event(TypeMFAReset, "lee.gu@contoso.com", `{}`)},
		{"password reset without force change", event(TypePasswordReset, "isaiah.langer@contoso.com", `{"sealTo":"`+testSealTo+`","forceChange":false}`)},
		{"phone.set office with extension", event(TypePhoneSet, "alex.wilber@contoso.com", `{"phoneType":"office","phoneNumber":"+1 425 555 0100 x42"}`)},
		// CloudEvents 1.0 allows all of these (docs/events.md, "CloudEvents conformance").
		{"extension attributes", without("data", `"data":{},"comexampleticket":"INC0012345","priority":5,"urgent":true,"correlation":"a <b> & c"`)},
		{"extension integer written as 5.0", without("data", `"data":{},"priority":5.0`)},
		{"extension integer bounds", without("data", `"data":{},"lo":-2147483648,"hi":2147483647`)},
		{"16 extensions", without("data", `"data":{}`+manyExtensions(16))},
		{"extension name of 20 characters", without("data", `"data":{},"`+strings.Repeat("a", 20)+`":"x"`)},
		{"extension of 256 characters", without("data", `"data":{},"ticketid":"`+strings.Repeat("é", 256)+`"`)},
		{"dataschema", without("data", `"data":{},"dataschema":"https://schemas.example.com/authflow/methods.inventory.v1.json"`)},
		{"dataschema urn", without("data", `"data":{},"dataschema":"urn:example:authflow:inventory:v1"`)},
		{"datacontenttype with charset", without("data", `"data":{},"datacontenttype":"application/json; charset=utf-8"`)},
		{"datacontenttype with quoted charset", without("data", `"data":{},"datacontenttype":"application/json;charset=\"UTF-8\""`)},
		{"datacontenttype in upper case", without("data", `"data":{},"datacontenttype":"Application/JSON"`)},
		{"datacontenttype +json", without("data", `"data":{},"datacontenttype":"application/vnd.contoso.hr+json; version=2"`)},
		{"time lower-case t and z", without("time", `"time":"2026-11-26t09:00:00z"`)},
		{"time lower-case z", without("time", `"time":"2026-11-26T09:00:00.5z"`)},
		{"source with query", without("source", `"source":"https://hr.example.com/feeds?tenant=contoso&x=1"`)},
		{"source absolute path", without("source", `"source":"/sensors/tn-1234567/alerts"`)},
		{"source urn", without("source", `"source":"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"`)},
		{"source with fragment and escapes", without("source", `"source":"hr/workday%20eu#feed"`)},
		{"id with spaces", without("id", `"id":"INC 0012345 / attempt 1"`)},
		{"id in Unicode", without("id", `"id":"évènement-1"`)},
		{"id of one character", without("id", `"id":"#"`)},
		{"display name with emoji and accents", event(TypeDeviceLost, "megan.bowen@contoso.com", `{"device":{"displayName":"Mégan's 📱"}}`)},
		{"grant by object id", event(TypeApprovalGrant, "6E7F8A9B-0C1D-4E2F-8A3B-4C5D6E7F8A9B", `{"eventKey":"`+testEventKey+`"}`)},
		{"deny with a reason of 128 characters", event(TypeApprovalDeny, "adele.vance@contoso.com", `{"eventKey":"`+testEventKey+`","reason":"`+strings.Repeat("é", 128)+`"}`)},
	}
}

// manyExtensions returns n extension members x1..xn, each with a leading
// comma.
func manyExtensions(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `,"x%d":%d`, i, i)
	}
	return b.String()
}

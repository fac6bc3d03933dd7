package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles the embedded schemas once per test binary.
type schemaSet struct {
	event, result *jsonschema.Schema
	notification  *jsonschema.Schema
	byType        map[string]*jsonschema.Schema
	files         map[string]any // parsed schema documents by file name
}

var compiledSchemas = sync.OnceValues(compileSchemas)

func compileSchemas() (*schemaSet, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.DefaultDraft(jsonschema.Draft2020)
	set := &schemaSet{byType: map[string]*jsonschema.Schema{}, files: map[string]any{}}
	names, err := fs.Glob(SchemaFS(), "*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		b, err := fs.ReadFile(SchemaFS(), name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		set.files[name] = doc
		if err := c.AddResource(SchemaBaseURI+name, doc); err != nil {
			return nil, err
		}
	}
	if set.event, err = c.Compile(SchemaBaseURI + "event.json"); err != nil {
		return nil, err
	}
	if set.result, err = c.Compile(SchemaBaseURI + "result.json"); err != nil {
		return nil, err
	}
	if set.notification, err = c.Compile(SchemaBaseURI + "notification.json"); err != nil {
		return nil, err
	}
	for _, typ := range Types() {
		if set.byType[typ], err = c.Compile(SchemaBaseURI + SchemaFile(typ)); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func schemas(t testing.TB) *schemaSet {
	t.Helper()
	s, err := compiledSchemas()
	if err != nil {
		t.Fatalf("compile schemas: %v", err)
	}
	return s
}

// validates reports whether raw parses as JSON and validates against sch.
func validates(sch *jsonschema.Schema, raw []byte) (bool, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return false, err
	}
	if err := sch.Validate(inst); err != nil {
		return false, err
	}
	return true, nil
}

func TestSchemaPatternsMatchDecoder(t *testing.T) {
	t.Parallel()
	defs := schemas(t).files["defs.json"].(map[string]any)["$defs"].(map[string]any)
	tests := []struct {
		def, pattern string
		maxLength    int // 0: none
	}{
		{"id", patternID, maxIDLen},
		{"source", patternSource, maxSourceLen},
		{"objectId", patternGUID, 0},
		{"upn", patternUPN, maxUPNLen},
		{"time", patternTime, 0},
		{"traceparent", patternTraceParent, 0},
		{"tracestate", patternTraceState, maxTraceStateLen},
		{"datacontenttype", patternMediaType, maxMediaTypeLen},
		{"dataschema", patternDataSchema, maxDataSchemaLen},
		{"attributeName", patternAttrName, 0},
		{"extension", patternText, maxExtensionLen},
		{"typeName", patternTypeName, maxTypeLen},
		{"phone", patternPhoneInput, maxPhoneInputLen},
		{"email", patternEmail, maxEmailLen},
		{"xkey", patternXKey, 0},
		{"text", patternText, maxTextLen},
		{"methodId", patternMethodID, maxMethodIDLen},
		{"deviceId", patternDeviceID, maxDeviceIDLen},
	}
	for _, tc := range tests {
		d, ok := defs[tc.def].(map[string]any)
		if !ok {
			t.Errorf("defs.json has no $defs/%s", tc.def)
			continue
		}
		if d["pattern"] != tc.pattern {
			t.Errorf("$defs/%s pattern = %q, the decoder uses %q", tc.def, d["pattern"], tc.pattern)
		}
		var max int
		if n, ok := d["maxLength"].(json.Number); ok {
			v, _ := n.Int64()
			max = int(v)
		}
		if max != tc.maxLength {
			t.Errorf("$defs/%s maxLength = %d, the decoder uses %d", tc.def, max, tc.maxLength)
		}
	}
	ticket := defs["verification"].(map[string]any)["properties"].(map[string]any)["ticketId"].(map[string]any)
	if ticket["pattern"] != patternTicketID || ticket["maxLength"] != json.Number("64") {
		t.Errorf("ticketId schema %v does not match the decoder", ticket)
	}
	enum := func(def string) []string {
		var out []string
		for _, v := range defs[def].(map[string]any)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := enum("deviceKind"); !reflect.DeepEqual(got, DeviceKinds()) {
		t.Errorf("deviceKind enum %v, decoder %v", got, DeviceKinds())
	}
	if got := enum("removableKind"); !reflect.DeepEqual(got, RemovableKinds()) {
		t.Errorf("removableKind enum %v, decoder %v", got, RemovableKinds())
	}
	if got := enum("phoneType"); !reflect.DeepEqual(got, []string{PhoneMobile, PhoneAlternateMobile, PhoneOffice}) {
		t.Errorf("phoneType enum %v", got)
	}
}

func TestSchemaFiles(t *testing.T) {
	t.Parallel()
	s := schemas(t)
	want := []string{"defs.json", "event.json", "result.json", "notification.json"}
	for _, typ := range Types() {
		want = append(want, SchemaFile(typ))
		doc := s.files[SchemaFile(typ)].(map[string]any)
		if doc["title"] != typ || doc["$id"] != SchemaBaseURI+SchemaFile(typ) {
			t.Errorf("%s: title %v, $id %v", SchemaFile(typ), doc["title"], doc["$id"])
		}
	}
	var got []string
	for name := range s.files {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema files %v, want %v", got, want)
	}
	var typeEnum []string
	for _, v := range s.files["event.json"].(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)["enum"].([]any) {
		typeEnum = append(typeEnum, v.(string))
	}
	if !reflect.DeepEqual(typeEnum, Types()) {
		t.Errorf("event.json type enum %v, want %v", typeEnum, Types())
	}
	rdefs := s.files["result.json"].(map[string]any)["$defs"].(map[string]any)
	check := func(name string, got []any, want []string) {
		var g []string
		for _, v := range got {
			g = append(g, v.(string))
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("result.json %s enum %v, want %v", name, g, want)
		}
	}
	var codes, ops []string
	for _, c := range Codes() {
		codes = append(codes, string(c))
	}
	for _, o := range OpKinds() {
		ops = append(ops, string(o))
	}
	opProps := rdefs["opResult"].(map[string]any)["properties"].(map[string]any)
	check("code", rdefs["errorInfo"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any), codes)
	check("op", opProps["op"].(map[string]any)["enum"].([]any), ops)
	check("methodKind", opProps["methodKind"].(map[string]any)["enum"].([]any), MethodKinds())
	check("outcome", opProps["outcome"].(map[string]any)["enum"].([]any), []string{"created", "updated", "deleted", "unchanged", "skipped", "failed"})
	for _, typ := range Types() {
		if SchemaFile(typ) != strings.TrimPrefix(typ, "authflow.")+".json" {
			t.Errorf("SchemaFile(%s) = %s", typ, SchemaFile(typ))
		}
	}
}

// TestSchemaAndDecoderAgree runs every bad and good case through both the
// decoder and the schema: what the decoder rejects the schema rejects too,
// except the cases marked schema-blind, which the schema accepts (they are
// the documented limits of JSON Schema); what the decoder accepts the
// schema accepts.
func TestSchemaAndDecoderAgree(t *testing.T) {
	t.Parallel()
	s := schemas(t)
	for _, tc := range badCases() {
		ok, err := validates(s.event, tc.raw)
		switch {
		case tc.schemaBlind && !ok:
			t.Errorf("%s: marked schema-blind, but the schema rejects it: %v", tc.name, err)
		case !tc.schemaBlind && ok:
			t.Errorf("%s: the decoder rejects it (%s) but the schema accepts it", tc.name, tc.code)
		}
	}
	for _, tc := range goodCases() {
		if ok, err := validates(s.event, tc.raw); !ok {
			t.Errorf("%s: the decoder accepts it but the schema rejects it: %v", tc.name, err)
		}
	}
	good, err := sampleResult(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := validates(s.result, good); !ok {
		t.Errorf("a marshalled result does not validate: %v", err)
	}
	for _, change := range []func(string) string{
		func(s string) string { return strings.Replace(s, `"attempts":2,`, ``, 1) },
		func(s string) string { return strings.Replace(s, `"status":"failed"`, `"status":"done"`, 1) },
		func(s string) string { return strings.Replace(s, `"permanent":true`, `"permanent":false`, 1) },
		func(s string) string { return strings.Replace(s, `"outcome":"failed"`, `"outcome":"created"`, 1) },
		func(s string) string { return strings.Replace(s, `"secret":{`, `"secret":{"value":"x",`, 1) },
		func(s string) string { return strings.Replace(s, `"status":"failed"`, `"status":"succeeded"`, 1) },
		func(s string) string { return strings.Replace(s, `"extensions":{`, `"extensions":{"data":"x",`, 1) },
		func(s string) string { return strings.Replace(s, `"extensions":{`, `"extensions":{"com_x":"x",`, 1) },
		func(s string) string { return strings.Replace(s, `"priority":5`, `"priority":2147483648`, 1) },
		func(s string) string { return strings.Replace(s, `"urgent":true`, `"urgent":""`, 1) },
		func(s string) string {
			return strings.Replace(s, `"extensions":{`, `"extensions":{"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"a10":1,"a11":1,"a12":1,"a13":1,"a14":1,`, 1)
		},
	} {
		bad := change(string(good))
		_, derr := DecodeResult([]byte(bad))
		ok, _ := validates(s.result, []byte(bad))
		if bad == string(good) || derr == nil || ok {
			t.Errorf("result change not rejected by both (decoder: %v, schema accepts: %v): %s", derr, ok, bad)
		}
	}
}

// docBlock is a fenced block of docs/events.md that follows a marker
// comment such as <!-- example event: authflow.employee.joined.v1 -->.
type docBlock struct {
	kind, name string
	body       []byte
	line       int
}

var markerRE = regexp.MustCompile(`^<!-- (example event|plan|example result|example policy|example notification):? ?(\S*) -->$`)

func docBlocks(t testing.TB) []docBlock {
	t.Helper()
	f, err := os.Open("../docs/events.md")
	if err != nil {
		t.Fatalf("open docs: %v", err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	inFence := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && !inFence:
			if !strings.HasPrefix(line, "```") {
				t.Fatalf("docs/events.md:%d: a marker must be followed by a fenced block", n)
			}
			inFence = true
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur, inFence = nil, false
		case cur != nil:
			cur.body = append(append(cur.body, line...), '\n')
		case markerRE.MatchString(line):
			m := markerRE.FindStringSubmatch(line)
			cur = &docBlock{kind: m[1], name: m[2], line: n}
		case strings.HasPrefix(line, "<!-- example") || strings.HasPrefix(line, "<!-- plan"):
			t.Fatalf("docs/events.md:%d: malformed marker %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestDocExamples checks every example in docs/events.md: each event
// validates against its schema and event.json and decodes; each plan is
// exactly Plan's output; each result validates, decodes, names its event and
// lists the plan's operations; the policy parses.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	s := schemas(t)
	blocks := docBlocks(t)
	events := map[string]*Event{}
	raws := map[string][]byte{}
	byKind := map[string]map[string]docBlock{}
	for _, b := range blocks {
		if byKind[b.kind] == nil {
			byKind[b.kind] = map[string]docBlock{}
		}
		if _, dup := byKind[b.kind][b.name]; dup {
			t.Errorf("docs/events.md:%d: second %s block for %q", b.line, b.kind, b.name)
		}
		byKind[b.kind][b.name] = b
	}
	for _, typ := range Types() {
		for _, kind := range []string{"example event", "plan", "example result"} {
			if _, ok := byKind[kind][typ]; !ok {
				t.Errorf("docs/events.md has no %q block for %s", kind, typ)
			}
		}
	}
	for name, b := range byKind["example event"] {
		if ok, err := validates(s.event, b.body); !ok {
			t.Errorf("docs/events.md:%d: event %s does not validate against event.json: %v", b.line, name, err)
		}
		if sch := s.byType[name]; sch == nil {
			t.Errorf("docs/events.md:%d: %s is not a type", b.line, name)
		} else if ok, err := validates(sch, b.body); !ok {
			t.Errorf("docs/events.md:%d: event %s does not validate against its schema: %v", b.line, name, err)
		}
		ev, err := Decoder{DefaultRegion: "US"}.Decode(b.body)
		if err != nil {
			t.Errorf("docs/events.md:%d: event %s does not decode: %v", b.line, name, err)
			continue
		}
		if ev.Type != name {
			t.Errorf("docs/events.md:%d: the %s example has type %s", b.line, name, ev.Type)
		}
		// An approval must be signed by an approver; the examples show
		// only the message, not its signature headers.
		if err := DevPolicy().CheckAuth(ev, b.body, nil); IsApproval(name) != (CodeOf(err) == CodeBadSignature) || (!IsApproval(name) && err != nil) {
			t.Errorf("docs/events.md:%d: DevPolicy on the %s example: %v", b.line, name, err)
		}
		events[name], raws[name] = ev, b.body
	}
	for name, b := range byKind["plan"] {
		ev := events[name]
		if ev == nil {
			t.Errorf("docs/events.md:%d: plan for %s without an example event", b.line, name)
			continue
		}
		plan, err := Plan(ev)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.MarshalIndent(plan, "", "  ")
		if string(bytes.TrimSpace(b.body)) != string(want) {
			t.Errorf("docs/events.md:%d: the plan shown for %s is not Plan's output; Plan gives:\n%s", b.line, name, want)
		}
	}
	for name, b := range byKind["example result"] {
		if ok, err := validates(s.result, b.body); !ok {
			t.Errorf("docs/events.md:%d: result %s does not validate against result.json: %v", b.line, name, err)
		}
		r, err := DecodeResult(b.body)
		if err != nil {
			t.Errorf("docs/events.md:%d: result %s does not decode: %v", b.line, name, err)
			continue
		}
		// The id rule of ResultID: a rejection before acceptance carries
		// the body's hash, every other result the event key.
		key := EventKey(r.Data.Event.Source, r.Data.Event.ID)
		preAccept := r.Data.Error != nil && r.Data.Status == StatusRejected &&
			!slices.Contains([]Code{CodeProtectedUser, CodeGuestUser, CodeRateLimited, CodeApprovalDenied, CodeApprovalTimeout}, r.Data.Error.Code)
		if preAccept != regexp.MustCompile(`^[0-9a-f]{64}:[0-9a-f]{16}$`).MatchString(r.ID) || !strings.HasPrefix(r.ID, key) {
			t.Errorf("docs/events.md:%d: result id %s does not follow the rule of ResultID", b.line, r.ID)
		}
		if r.Data.Status == StatusRejected && r.Data.Attempts != 0 {
			t.Errorf("docs/events.md:%d: a rejected result shows attempts %d", b.line, r.Data.Attempts)
		}
		if r.Data.Event.Source != "" && (r.Data.Provenance == nil || r.Data.Provenance.Source != r.Data.Event.Source) {
			t.Errorf("docs/events.md:%d: result lacks its provenance", b.line)
		}
		ev := events[name]
		if ev == nil {
			continue // a result without an event example (rejected, invalid)
		}
		if r.Data.Event != ev.Ref() || r.Subject != ev.Subject || r.Data.User.Ref != ev.Subject || r.Data.DryRun != ev.DryRun {
			t.Errorf("docs/events.md:%d: result does not name its event: %+v / %q", b.line, r.Data.Event, r.Subject)
		}
		plan, _ := Plan(ev)
		var planKinds, resultKinds []OpKind
		for _, op := range plan {
			planKinds = append(planKinds, op.Kind)
		}
		for i, op := range r.Data.Operations {
			multi := op.Op == OpRemoveAllMethods || op.Op == OpRemoveDeviceMethods || op.Op == OpRemoveTAPs
			if i == 0 || !multi || r.Data.Operations[i-1].Op != op.Op {
				resultKinds = append(resultKinds, op.Op)
			}
			if op.Secret != nil {
				j := slices.IndexFunc(plan, func(o Op) bool { return o.Kind == op.Op })
				if j < 0 || plan[j].SealTo != op.Secret.Recipient {
					t.Errorf("docs/events.md:%d: secret sealed to %s, not to the event's sealTo", b.line, op.Secret.Recipient)
				}
			}
		}
		if !reflect.DeepEqual(planKinds, resultKinds) {
			t.Errorf("docs/events.md:%d: result operations %v, plan %v", b.line, resultKinds, planKinds)
		}
	}
	// The approval examples are one story: the pending and the denied
	// results are of one parked event, which the grant and deny name.
	pending, denied := byKind["example result"]["pending"], byKind["example result"]["denied"]
	if p, err := DecodeResult(pending.body); err != nil || p.Data.Status != StatusPendingApproval {
		t.Errorf("docs/events.md:%d: the pending example: %v", pending.line, err)
	} else {
		key := p.Data.Approval.EventKey
		if d, err := DecodeResult(denied.body); err != nil || d.ID != key || d.Data.Approval.Decision != DecisionDenied {
			t.Errorf("docs/events.md:%d: the denied example is not the pending event's final result: %v", denied.line, err)
		}
		for _, typ := range []string{TypeApprovalGrant, TypeApprovalDeny} {
			if dec, ok := DecisionOf(events[typ]); !ok || dec.EventKey != key || events[typ].Subject != p.Subject {
				t.Errorf("docs/events.md: the %s example does not name the pending event (%s, %s)", typ, key, p.Subject)
			}
		}
	}
	for _, extra := range []string{"invalid", "rejected", "pending", "denied"} {
		if _, ok := byKind["example result"][extra]; !ok {
			t.Errorf("docs/events.md has no %q result example", extra)
		}
	}
	b, ok := byKind["example policy"][""]
	if !ok {
		t.Fatal("docs/events.md has no example policy")
	}
	p, err := ParsePolicy(b.body)
	if err != nil {
		t.Fatalf("docs/events.md:%d: example policy: %v", b.line, err)
	}
	// The example policy admits the examples from its sources, except the
	// unsigned ones from sources that must sign.
	for name, ev := range events {
		err := p.CheckAuth(ev, raws[name], nil)
		switch {
		case IsApproval(name):
			if CodeOf(err) != CodeBadSignature {
				t.Errorf("example policy, unsigned %s: %v, want bad_signature", name, err)
			}
		case ev.Source == "hr/workday" || ev.Source == "helpdesk/servicenow" || ev.Source == "enrolment/desk-1":
			if CodeOf(err) != CodeBadSignature {
				t.Errorf("example policy, unsigned %s: %v, want bad_signature", name, err)
			}
		default:
			if err != nil {
				t.Errorf("example policy refuses %s: %v", name, err)
			}
		}
	}
}

package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Route is one /v1/hooks/{route}: a sender's own JSON, mapped to an
// authflow event by CEL expressions.
type Route struct {
	Name string
	// Sources may call the route; the event's source is the one the
	// request authenticated as.
	Sources []string
	// OktaVerification answers Okta's one-time verification GET.
	OktaVerification bool
	Mapping          Mapping

	typ, subject, id, time, data cel.Program
}

// Mapping holds the CEL expressions of a route. Each sees body (the JSON
// body), headers (lower-case names, first value; credentials left out),
// source and route (strings). type, subject and id yield strings; time a
// string in RFC 3339 or a timestamp; data a map (default {}).
type Mapping struct {
	Type, Subject, ID, Time, Data string
}

// mappingCostLimit bounds one expression's evaluation (CEL's cost units,
// roughly one per operation): a mapping is a few field reads, and the
// limit keeps a crafted body from making one run long.
const mappingCostLimit = 100_000

var celEnv = mustEnv()

func mustEnv() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("body", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("source", cel.StringType),
		cel.Variable("route", cel.StringType),
		ext.Strings(),
		cel.OptionalTypes(),
	)
	if err != nil {
		panic(fmt.Sprintf("cel environment: %v", err))
	}
	return env
}

// compileRoute checks a route's settings and compiles and type-checks its
// expressions; an error names the route and the expression.
func compileRoute(name string, y *yamlRoute, c *Config) (*Route, *ConfigError) {
	p := "routes." + name
	if !validRouteName(name) {
		return nil, pathErr(p, "a route name is 1..64 letters, digits, - and _")
	}
	if y == nil || y.Mapping == nil {
		return nil, pathErr(p+".mapping", "required: the CEL expressions type, subject, id, time (and data)")
	}
	if len(y.Sources) == 0 {
		return nil, pathErr(p+".sources", "required: the sources that may call this route")
	}
	for i, s := range y.Sources {
		if c.Sources[s] == nil {
			return nil, pathErr(fmt.Sprintf("%s.sources[%d]", p, i), "source %q is not in sources", s)
		}
	}
	rt := &Route{Name: name, Sources: y.Sources, OktaVerification: y.OktaVerification, Mapping: Mapping(*y.Mapping)}
	if err := rt.compile(); err != nil {
		err.Path = p + ".mapping." + err.Path
		return nil, err
	}
	return rt, nil
}

// compile compiles the route's expressions.
func (rt *Route) compile() *ConfigError {
	m := rt.Mapping
	if m.Data == "" {
		m.Data = "{}"
	}
	for _, e := range []struct {
		field, expr string
		want        []*cel.Type
		prg         *cel.Program
	}{
		{"type", m.Type, []*cel.Type{cel.StringType}, &rt.typ},
		{"subject", m.Subject, []*cel.Type{cel.StringType}, &rt.subject},
		{"id", m.ID, []*cel.Type{cel.StringType}, &rt.id},
		{"time", m.Time, []*cel.Type{cel.StringType, cel.TimestampType}, &rt.time},
		{"data", m.Data, []*cel.Type{cel.MapType(cel.StringType, cel.DynType), cel.MapType(cel.DynType, cel.DynType)}, &rt.data},
	} {
		if strings.TrimSpace(e.expr) == "" {
			return pathErr(e.field, "required: a CEL expression")
		}
		ast, iss := celEnv.Compile(e.expr)
		if iss != nil && iss.Err() != nil {
			return pathErr(e.field, "expression %q: %v", e.expr, iss.Err())
		}
		if out := ast.OutputType(); !out.IsDyn() && !assignable(e.want, out) {
			return pathErr(e.field, "expression %q has type %s; want %s", e.expr, out, typeNames(e.want))
		}
		prg, err := celEnv.Program(ast, cel.CostLimit(mappingCostLimit), cel.InterruptCheckFrequency(100))
		if err != nil {
			return pathErr(e.field, "expression %q: %v", e.expr, err)
		}
		*e.prg = prg
	}
	return nil
}

func assignable(want []*cel.Type, t *cel.Type) bool {
	for _, w := range want {
		if w.IsAssignableType(t) {
			return true
		}
	}
	return false
}

func typeNames(ts []*cel.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, " or ")
}

func validRouteName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// hiddenHeaders are left out of the headers a mapping sees: credentials
// and signatures have no business in an event.
var hiddenHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true,
	"webhook-signature": true, "x-hub-signature": true, "x-hub-signature-256": true,
	"authflow-signature": true,
}

// mapped is what a route's mapping produced.
type mapped struct {
	typ, subject, id string
	time             time.Time
	data             json.RawMessage
}

// apply evaluates the mapping for one request. An error is a problem
// naming the event field whose expression failed.
func (rt *Route) apply(ctx context.Context, body any, h http.Header, source string, hideHeader string) (*mapped, *problem) {
	hs := make(map[string]string, len(h))
	for k, vs := range h {
		lk := strings.ToLower(k)
		if len(vs) == 0 || hiddenHeaders[lk] || lk == strings.ToLower(hideHeader) {
			continue
		}
		hs[lk] = vs[0]
	}
	vars := map[string]any{"body": body, "headers": hs, "source": source, "route": rt.Name}
	eval := func(field string, prg cel.Program) (ref.Val, *problem) {
		v, _, err := prg.ContextEval(ctx, vars)
		if err != nil {
			return nil, invalidProblem(field, fmt.Sprintf("route %s: mapping.%s: %v", rt.Name, field, err))
		}
		return v, nil
	}
	str := func(field string, prg cel.Program) (string, *problem) {
		v, p := eval(field, prg)
		if p != nil {
			return "", p
		}
		s, ok := v.Value().(string)
		if !ok || v.Type() != types.StringType {
			return "", invalidProblem(field, fmt.Sprintf("route %s: mapping.%s gave %s, not a string", rt.Name, field, v.Type().TypeName()))
		}
		return s, nil
	}
	var (
		m mapped
		p *problem
	)
	if m.typ, p = str("type", rt.typ); p != nil {
		return nil, p
	}
	if m.subject, p = str("subject", rt.subject); p != nil {
		return nil, p
	}
	if m.id, p = str("id", rt.id); p != nil {
		return nil, p
	}
	tv, p := eval("time", rt.time)
	if p != nil {
		return nil, p
	}
	switch t := tv.Value().(type) {
	case string:
		parsed, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return nil, invalidProblem("time", fmt.Sprintf("route %s: mapping.time gave %q, not an RFC 3339 time", rt.Name, truncateRunes(t, 64)))
		}
		m.time = parsed
	case time.Time:
		m.time = t
	case *timestamppb.Timestamp:
		m.time = t.AsTime()
	default:
		return nil, invalidProblem("time", fmt.Sprintf("route %s: mapping.time gave %s, not a string or timestamp", rt.Name, tv.Type().TypeName()))
	}
	dv, p := eval("data", rt.data)
	if p != nil {
		return nil, p
	}
	native, err := dv.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, invalidProblem("data", fmt.Sprintf("route %s: mapping.data: %v", rt.Name, err))
	}
	obj, ok := native.(*structpb.Value).AsInterface().(map[string]any)
	if !ok {
		return nil, invalidProblem("data", fmt.Sprintf("route %s: mapping.data gave %s, not a map", rt.Name, dv.Type().TypeName()))
	}
	if m.data, err = marshalNoEscape(obj); err != nil {
		return nil, invalidProblem("data", fmt.Sprintf("route %s: mapping.data: %v", rt.Name, err))
	}
	return &m, nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}

package events

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestSchemaDecoderDifferential mutates every field of every documented
// example (replace the value with each of a set of interesting values,
// delete the field, add an unknown sibling) and checks that the decoder
// and the schema agree on every mutant: both accept, or both reject, or
// the decoder rejects for a reason JSON Schema cannot express.
func TestSchemaDecoderDifferential(t *testing.T) {
	t.Parallel()
	s := schemas(t)
	d := Decoder{DefaultRegion: "US"}
	values := []any{
		nil, "", "x", "+1 4255550100", "(425) 555-0100", "+1 5555551234", "+1 4255550100x", "a@b.example", testSealTo,
		testSealTo[:55] + "A", hrKey, "2026-11-26T09:00:00Z", "2026-02-30T09:00:00Z", "2026-11-26T09:00:00z",
		json.Number("0"), json.Number("9"), json.Number("10"), json.Number("60"), json.Number("480.0"), json.Number("43200"),
		json.Number("43201"), json.Number("60.5"), json.Number("-1"), json.Number("1e400"), true, false,
		[]any{}, []any{"fido2"}, []any{"fido2", "fido2"}, []any{"password"}, map[string]any{}, map[string]any{"displayName": "x"},
		strings.Repeat("a", 129), strings.Repeat("é", 129), "mobile", "office", "fido2", "softwareOath", "callback", "INC-1",
		"3f0c9a4e-8b1d-4c1a-9e0f-2b6d7c8e9a10", "adele@contoso.com", "adele..x@contoso.com", "Megan\u202e", "Megan\u00e9",
		"d-1/..", "1.0", "application/json", "authflow.tap.issue.v1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	var mutants, agreed int
	check := func(t *testing.T, what string, doc any) {
		t.Helper()
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		mutants++
		_, derr := d.Decode(raw)
		sok, serr := validates(s.event, raw)
		switch {
		case derr == nil && !sok:
			t.Errorf("%s: decoder accepts, schema rejects (%v): %s", what, serr, raw)
		case derr != nil && sok:
			if e, ok := derr.(*Error); !ok || !e.schemaBlind() {
				t.Errorf("%s: decoder rejects (%v), schema accepts: %s", what, derr, raw)
				return
			}
		}
		agreed++
	}
	for _, b := range docBlocks(t) {
		if b.kind != "example event" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b.body))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		t.Run(b.name, func(t *testing.T) {
			mutate(doc, func(what string, set func(any), del func(), add func()) {
				for _, v := range values {
					set(v)
					check(t, what+" = "+short(v), doc)
				}
				del()
				check(t, "without "+what, doc)
				add()
				check(t, "unknown field beside "+what, doc)
			})
		})
	}
	t.Logf("%d mutants", mutants)
	if mutants < 5000 || agreed != mutants {
		t.Errorf("%d of %d mutants agreed", agreed, mutants)
	}
}

// mutate calls visit for every member of every object in doc, depth
// first. set, del and add change the document in place; mutate restores
// the member after visit returns.
func mutate(doc map[string]any, visit func(what string, set func(any), del func(), add func())) {
	var walk func(path string, m map[string]any)
	walk = func(path string, m map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			orig := m[k]
			p := join(path, k)
			visit(p, func(v any) { m[k] = v }, func() { delete(m, k) }, func() { m[k] = orig; m["zz"+k] = true })
			delete(m, "zz"+k)
			m[k] = orig
			if child, ok := orig.(map[string]any); ok {
				walk(p, child)
			}
		}
	}
	walk("", doc)
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

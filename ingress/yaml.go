package ingress

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ConfigError is an error in an ingress configuration. Path names the
// setting, e.g. "sources.hr/workday.auth.bearer.tokenSHA256[1]"; Line and
// Column are 1-based, 0 when unknown (errors found after parsing).
type ConfigError struct {
	Line, Column int
	Path         string
	Message      string
}

// Error renders "ingress config: line L, column C: path: message".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("ingress config")
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

func nodeErr(n *yaml.Node, path, format string, args ...any) *ConfigError {
	return &ConfigError{Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)}
}

func pathErr(path, format string, args ...any) *ConfigError {
	return &ConfigError{Path: path, Message: fmt.Sprintf(format, args...)}
}

var durationType = reflect.TypeFor[time.Duration]()

// decodeStrict fills v from n, refusing what yaml.v3's own decoding lets
// through: unknown keys (named with their path), duplicate keys, anchors and
// aliases, and scalars of the wrong YAML type (a quoted "5" for a number, 5
// for a string). Struct fields are named by their yaml tag.
func decodeStrict(n *yaml.Node, v reflect.Value, path string) *ConfigError {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return nodeErr(n, path, "YAML anchors and aliases are not supported")
	}
	if v.Type() == durationType {
		s, err := scalarOf(n, path, "!!str", "a duration such as 5m or 30s")
		if err != nil {
			return err
		}
		d, perr := time.ParseDuration(s)
		if perr != nil || d < 0 {
			return nodeErr(n, path, "must be a duration such as 5m or 30s")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := decodeStrict(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return decodeStruct(n, v, path)
	case reflect.Map:
		members, err := mappingOf(n, path)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), len(members))
		for _, mem := range members {
			el := reflect.New(v.Type().Elem()).Elem()
			if err := decodeStrict(mem.val, el, join(path, mem.key)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(mem.key), el)
		}
		v.Set(m)
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nodeErr(n, path, "must be a list")
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			if err := decodeStrict(el, s.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		s, err := scalarOf(n, path, "!!str", "a string")
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		s, err := scalarOf(n, path, "!!bool", "true or false")
		if err != nil {
			return err
		}
		b, perr := strconv.ParseBool(s)
		if perr != nil || (s != "true" && s != "false") {
			return nodeErr(n, path, "must be true or false")
		}
		v.SetBool(b)
		return nil
	case reflect.Int:
		s, err := scalarOf(n, path, "!!int", "an integer")
		if err != nil {
			return err
		}
		i, perr := strconv.Atoi(s)
		if perr != nil {
			return nodeErr(n, path, "must be a decimal integer")
		}
		v.SetInt(int64(i))
		return nil
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			return nodeErr(n, path, "must be a number")
		}
		f, perr := strconv.ParseFloat(n.Value, 64)
		if perr != nil {
			return nodeErr(n, path, "must be a decimal number")
		}
		v.SetFloat(f)
		return nil
	}
	return nodeErr(n, path, "internal: cannot decode into %s", v.Type())
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) *ConfigError {
	members, err := mappingOf(n, path)
	if err != nil {
		return err
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	for _, mem := range members {
		i, ok := fields[mem.key]
		if !ok {
			return nodeErr(mem.keyNode, join(path, mem.key), "unknown setting (known: %s)", strings.Join(known, ", "))
		}
		if err := decodeStrict(mem.val, v.Field(i), join(path, mem.key)); err != nil {
			return err
		}
	}
	return nil
}

type member struct {
	key          string
	keyNode, val *yaml.Node
}

func mappingOf(n *yaml.Node, path string) ([]member, *ConfigError) {
	if n.Kind != yaml.MappingNode {
		return nil, nodeErr(n, path, "must be a mapping")
	}
	out := make([]member, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode || k.Anchor != "" {
			return nil, nodeErr(k, path, "YAML anchors and aliases are not supported")
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return nil, nodeErr(k, path, "keys must be plain strings")
		}
		if k.Value == "<<" {
			return nil, nodeErr(k, path, "YAML merge keys are not supported")
		}
		if j := slices.IndexFunc(out, func(m member) bool { return m.key == k.Value }); j >= 0 {
			return nil, nodeErr(k, join(path, k.Value), "duplicate key (first at line %d)", out[j].keyNode.Line)
		}
		out = append(out, member{key: k.Value, keyNode: k, val: val})
	}
	return out, nil
}

func scalarOf(n *yaml.Node, path, tag, want string) (string, *ConfigError) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tag {
		return "", nodeErr(n, path, "must be %s", want)
	}
	return n.Value, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

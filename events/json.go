package events

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small strict JSON parser (RFC 8259). encoding/json cannot
// be used as the first pass: it accepts invalid UTF-8 (replacing it), keeps
// the last of duplicate keys and matches field names case-insensitively,
// and each of those lets two parsers read one signed message differently.

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	}
	return "an object"
}

// value is one parsed JSON value.
type value struct {
	kind       kind
	b          bool     // kindBool
	s          string   // kindString: the unescaped text; kindNumber: the literal
	members    []member // kindObject, in document order
	elems      []value  // kindArray
	start, end int      // byte offsets of the value in the input
}

type member struct {
	key string
	val value
}

// maxDepth bounds nesting; no valid event nests deeper than 6.
const maxDepth = 32

type parser struct {
	in    []byte
	pos   int
	depth int
	// path holds the keys and indexes from the document root to the value
	// being parsed, so that a duplicate key is reported by its JSON path,
	// like every other violation. It is rendered only on error.
	path []pathElem
	// top, when set, sees each top-level member of an object document as
	// soon as it is parsed, before duplicate checks (PeekIdentity uses it).
	top func(key string, v *value)
}

// pathElem is one step of a JSON path: an object key, or an array index
// when index >= 0.
type pathElem struct {
	key   string
	index int
}

// pathTo renders the path of member key of the current object, in the
// form bind uses ("data.tap.lifetimeInMinutes", "data.kinds[1]").
func (p *parser) pathTo(key string) string {
	var s string
	for _, el := range p.path {
		if el.index >= 0 {
			s += "[" + strconv.Itoa(el.index) + "]"
		} else {
			s = join(s, el.key)
		}
	}
	return join(s, key)
}

// parseJSON parses one JSON document: one value, optional surrounding
// whitespace, nothing else.
func parseJSON(in []byte) (value, *Error) {
	var path [8]pathElem // deep enough for every valid event, without an allocation
	p := parser{in: in, path: path[:0]}
	return p.document()
}

func (p *parser) document() (value, *Error) {
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return value{}, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return value{}, p.errorf("unexpected data after the JSON value")
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) *Error {
	e := invalid("", format, args...)
	e.Line, e.Column = position(p.in, p.pos)
	return e
}

// position converts a byte offset to a 1-based line and column.
func position(in []byte, off int) (line, col int) {
	if off > len(in) {
		off = len(in)
	}
	line = 1 + strings.Count(string(in[:off]), "\n")
	col = off + 1
	if i := strings.LastIndexByte(string(in[:off]), '\n'); i >= 0 {
		col = off - i
	}
	return line, col
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (value, *Error) {
	if p.pos >= len(p.in) {
		return value{}, p.errorf("unexpected end of JSON input")
	}
	start := p.pos
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return value{}, err
		}
		return value{kind: kindString, s: s, start: start, end: p.pos}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := p.number()
		if err != nil {
			return value{}, err
		}
		return value{kind: kindNumber, s: lit, start: start, end: p.pos}, nil
	case c == 't':
		return p.literal("true", value{kind: kindBool, b: true})
	case c == 'f':
		return p.literal("false", value{kind: kindBool})
	case c == 'n':
		return p.literal("null", value{kind: kindNull})
	default:
		return value{}, p.errorf("invalid character %s looking for a value", quoteByte(c))
	}
}

func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return "0x" + strconv.FormatUint(uint64(c), 16)
}

func (p *parser) literal(word string, v value) (value, *Error) {
	v.start = p.pos
	if !strings.HasPrefix(string(p.in[p.pos:]), word) {
		if len(p.in)-p.pos < len(word) && strings.HasPrefix(word, string(p.in[p.pos:])) {
			p.pos = len(p.in)
			return value{}, p.errorf("unexpected end of JSON input")
		}
		return value{}, p.errorf("invalid literal, want %s", word)
	}
	p.pos += len(word)
	v.end = p.pos
	return v, nil
}

func (p *parser) enter() *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("JSON nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) object() (value, *Error) {
	if err := p.enter(); err != nil {
		return value{}, err
	}
	v := value{kind: kindObject, start: p.pos}
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.depth--
		v.end = p.pos
		return v, nil
	}
	var seen map[string]struct{} // only for large objects; small ones scan
	for {
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.errorf("unexpected end of JSON input")
		}
		if p.in[p.pos] != '"' {
			return value{}, p.errorf("invalid character %s looking for an object key", quoteByte(p.in[p.pos]))
		}
		keyPos := p.pos
		key, err := p.str()
		if err != nil {
			return value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.errorf("unexpected end of JSON input")
		}
		if p.in[p.pos] != ':' {
			return value{}, p.errorf("invalid character %s after object key", quoteByte(p.in[p.pos]))
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, pathElem{key: key, index: -1})
		val, err := p.value()
		p.path = p.path[:len(p.path)-1]
		if err != nil {
			return value{}, err
		}
		if p.top != nil && p.depth == 1 {
			p.top(key, &val)
		}
		dup := false
		if seen != nil {
			_, dup = seen[key]
			seen[key] = struct{}{}
		} else {
			for i := range v.members {
				if v.members[i].key == key {
					dup = true
					break
				}
			}
			if len(v.members) == 16 {
				seen = make(map[string]struct{}, 32)
				for i := range v.members {
					seen[v.members[i].key] = struct{}{}
				}
				seen[key] = struct{}{}
			}
		}
		if dup {
			e := invalid(p.pathTo(key), "duplicate object key")
			e.Line, e.Column = position(p.in, keyPos)
			e.rule = ruleDuplicate
			return value{}, e
		}
		v.members = append(v.members, member{key: key, val: val})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.errorf("unexpected end of JSON input")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			v.end = p.pos
			return v, nil
		default:
			return value{}, p.errorf("invalid character %s after object member", quoteByte(p.in[p.pos]))
		}
	}
}

func (p *parser) array() (value, *Error) {
	if err := p.enter(); err != nil {
		return value{}, err
	}
	v := value{kind: kindArray, start: p.pos}
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.depth--
		v.end = p.pos
		return v, nil
	}
	for {
		p.skipSpace()
		p.path = append(p.path, pathElem{index: len(v.elems)})
		el, err := p.value()
		p.path = p.path[:len(p.path)-1]
		if err != nil {
			return value{}, err
		}
		v.elems = append(v.elems, el)
		p.skipSpace()
		if p.pos >= len(p.in) {
			return value{}, p.errorf("unexpected end of JSON input")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			v.end = p.pos
			return v, nil
		default:
			return value{}, p.errorf("invalid character %s after array element", quoteByte(p.in[p.pos]))
		}
	}
}

// str parses a string at p.pos (which holds the opening quote) and returns
// its unescaped text.
func (p *parser) str() (string, *Error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		if c == '"' {
			s := string(p.in[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errorf("invalid control character in string")
		}
		if c < utf8.RuneSelf {
			p.pos++
			continue
		}
		r, size := utf8.DecodeRune(p.in[p.pos:])
		if r == utf8.RuneError && size <= 1 {
			e := p.errorf("invalid UTF-8 in string")
			e.rule = ruleEncoding
			return "", e
		}
		p.pos += size
	}
	if p.pos >= len(p.in) {
		return "", p.errorf("unexpected end of JSON input")
	}
	// Slow path: at least one escape.
	b := make([]byte, 0, p.pos-start+16)
	b = append(b, p.in[start:p.pos]...)
	for {
		if p.pos >= len(p.in) {
			return "", p.errorf("unexpected end of JSON input")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
		case c < 0x20:
			return "", p.errorf("invalid control character in string")
		case c < utf8.RuneSelf:
			b = append(b, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				e := p.errorf("invalid UTF-8 in string")
				e.rule = ruleEncoding
				return "", e
			}
			b = append(b, p.in[p.pos:p.pos+size]...)
			p.pos += size
		}
	}
}

// escape parses one escape sequence at p.pos (the backslash), including a
// UTF-16 surrogate pair, and returns the rune.
func (p *parser) escape() (rune, *Error) {
	if p.pos+1 >= len(p.in) {
		p.pos = len(p.in)
		return 0, p.errorf("unexpected end of JSON input")
	}
	c := p.in[p.pos+1]
	switch c {
	case '"', '\\', '/':
		p.pos += 2
		return rune(c), nil
	case 'b':
		p.pos += 2
		return '\b', nil
	case 'f':
		p.pos += 2
		return '\f', nil
	case 'n':
		p.pos += 2
		return '\n', nil
	case 'r':
		p.pos += 2
		return '\r', nil
	case 't':
		p.pos += 2
		return '\t', nil
	case 'u':
	default:
		p.pos++
		return 0, p.errorf("invalid escape sequence")
	}
	r, ok := p.hex4(p.pos + 2)
	if !ok {
		return 0, p.errorf("invalid \\u escape")
	}
	p.pos += 6
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	// A high surrogate must be followed by an escaped low surrogate.
	if r < 0xDC00 && p.pos+1 < len(p.in) && p.in[p.pos] == '\\' && p.in[p.pos+1] == 'u' {
		if r2, ok := p.hex4(p.pos + 2); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				p.pos += 6
				return d, nil
			}
		}
	}
	e := p.errorf("unpaired UTF-16 surrogate in \\u escape")
	e.rule = ruleEncoding
	return 0, e
}

func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.in) {
		return 0, false
	}
	var r rune
	for _, c := range p.in[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number scans a number literal per RFC 8259 and returns it unparsed.
func (p *parser) number() (string, *Error) {
	start := p.pos
	if p.in[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.in) && p.in[p.pos] == '0':
		p.pos++
	case p.pos < len(p.in) && p.in[p.pos] >= '1' && p.in[p.pos] <= '9':
		p.digits()
	default:
		return "", p.errorf("invalid number")
	}
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return "", p.errorf("invalid number: no digits after the decimal point")
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return "", p.errorf("invalid number: no digits in the exponent")
		}
	}
	return string(p.in[start:p.pos]), nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

// jsonInt interprets a number literal exactly. isInt is false when the value
// has a fractional part; inRange is false when it does not fit in an int64.
// JSON Schema counts 480.0 and 4.8e2 as integers, so this does too.
func jsonInt(lit string) (n int64, isInt, inRange bool) {
	if v, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return v, true, true
	}
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, expPart, hasExp := strings.Cut(strings.ToLower(lit), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	// value = digits × 10^exp
	exp := -int64(len(frac))
	if trimmed := strings.TrimRight(digits, "0"); len(trimmed) != len(digits) {
		exp += int64(len(digits) - len(trimmed))
		digits = trimmed
	}
	if digits == "" {
		return 0, true, true
	}
	if hasExp {
		e, err := strconv.ParseInt(expPart, 10, 32)
		if err != nil {
			// An exponent beyond ±2^31 dwarfs any mantissa that fits in
			// the input, so only its sign matters.
			if strings.HasPrefix(expPart, "-") {
				return 0, false, false
			}
			return 0, true, false
		}
		exp += e
	}
	if exp < 0 {
		return 0, false, false
	}
	if int64(len(digits))+exp > 19 {
		return 0, true, false
	}
	v, err := strconv.ParseInt(digits+strings.Repeat("0", int(exp)), 10, 64)
	if err != nil {
		return 0, true, false
	}
	if neg {
		v = -v
	}
	return v, true, true
}

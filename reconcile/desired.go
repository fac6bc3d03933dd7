package reconcile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/authflow/authflow/events"
)

// Status is a person's employment status in the desired state.
type Status string

// The statuses of a desired row.
const (
	StatusNone   Status = ""       // no opinion: only the phones and email are compared
	StatusActive Status = "active" // employed: phones and email must be as desired
	StatusLeft   Status = "left"   // a leaver: account disabled, no methods
)

// Field is an attribute of a desired row, named as in the file.
type Field string

// The fields of a desired row.
const (
	FieldUser            Field = "user"
	FieldStatus          Field = "status"
	FieldMobile          Field = "mobile"
	FieldAlternateMobile Field = "alternateMobile"
	FieldOffice          Field = "office"
	FieldEmail           Field = "email"
)

// fields are the columns (CSV) or keys (JSON Lines) a desired file may
// have; read-only.
var fields = []Field{FieldUser, FieldStatus, FieldMobile, FieldAlternateMobile, FieldOffice, FieldEmail}

// phoneFields are the phone columns in the order their corrections are
// published (the alternate mobile needs the mobile first).
var phoneFields = []Field{FieldMobile, FieldAlternateMobile, FieldOffice}

// phoneType is the Graph phone type of a phone field.
func phoneType(f Field) string {
	switch f {
	case FieldMobile:
		return events.PhoneMobile
	case FieldAlternateMobile:
		return events.PhoneAlternateMobile
	case FieldOffice:
		return events.PhoneOffice
	}
	return ""
}

// Row is one person of the desired state. An empty field has no opinion.
type Row struct {
	// Line is the row's line in the file (1-based; the CSV header is line 1).
	Line int
	// User is the object id or user principal name, as written.
	User   string
	Status Status
	// Mobile, AlternateMobile and Office are in Graph's form
	// ("+1 4255550100"), normalised as the worker normalises event data.
	Mobile, AlternateMobile, Office string
	Email                           string
}

// value returns the desired value of a phone or email field.
func (r *Row) value(f Field) string {
	switch f {
	case FieldMobile:
		return r.Mobile
	case FieldAlternateMobile:
		return r.AlternateMobile
	case FieldOffice:
		return r.Office
	case FieldEmail:
		return r.Email
	}
	return ""
}

func (r *Row) set(f Field, v string) {
	switch f {
	case FieldUser:
		r.User = v
	case FieldStatus:
		r.Status = Status(v)
	case FieldMobile:
		r.Mobile = v
	case FieldAlternateMobile:
		r.AlternateMobile = v
	case FieldOffice:
		r.Office = v
	case FieldEmail:
		r.Email = v
	}
}

// BadRow is a row that was skipped, and why.
type BadRow struct {
	Line int `json:"line"`
	// User is the row's user as written, when it could be read and is one.
	User  string `json:"user,omitempty"`
	Error string `json:"error"`
}

// Desired is a parsed desired-state file.
type Desired struct {
	Rows []Row
	Bad  []BadRow
	// Ignored are the columns (CSV) or keys (JSON Lines) that name no
	// field; they are not read. Sorted.
	Ignored []string
}

// Format is the syntax of a desired-state file.
type Format string

// The formats of a desired-state file.
const (
	FormatCSV   Format = "csv"
	FormatJSONL Format = "jsonl"
)

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatCSV, FormatJSONL:
		return Format(s), nil
	}
	return "", fmt.Errorf("format %q: want csv or jsonl", s)
}

// FormatOf guesses the format from a file name: .jsonl and .ndjson are JSON
// Lines, anything else CSV.
func FormatOf(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson":
		return FormatJSONL
	}
	return FormatCSV
}

// Limits of a desired-state file. A longer line or more rows is an error
// for the whole file, not a bad row: it is not an HR export.
const (
	MaxLineBytes = 64 << 10
	MaxRows      = 1_000_000
)

// Read parses a desired-state file. Phone numbers without a country code
// are read in region (an ISO 3166 code such as "US"). A row that cannot be
// used is a BadRow (its line and why) and is skipped; so is a second row
// for the same user. Only a file that cannot be read at all is an error: an
// I/O error, a line over MaxLineBytes, more than MaxRows rows, or a CSV
// header without a user column or with a column twice.
func Read(r io.Reader, f Format, region string) (*Desired, error) {
	p := parser{region: region, seen: map[string]int{}, ignored: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var err error
		switch f {
		case FormatCSV:
			err = p.csvLine(line, string(text))
		case FormatJSONL:
			p.jsonLine(line, text)
		default:
			return nil, fmt.Errorf("desired state: unknown format %q", f)
		}
		if err != nil {
			return nil, err
		}
		if len(p.out.Rows)+len(p.out.Bad) > MaxRows {
			return nil, fmt.Errorf("desired state: more than %d rows", MaxRows)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("desired state: line %d is longer than %d bytes", line+1, MaxLineBytes)
		}
		return nil, fmt.Errorf("desired state: %w", err)
	}
	if f == FormatCSV && p.header == nil {
		return nil, errors.New("desired state: empty file (a CSV file starts with a header row naming its columns)")
	}
	for k := range p.ignored {
		p.out.Ignored = append(p.out.Ignored, k)
	}
	slices.Sort(p.out.Ignored)
	return &p.out, nil
}

type parser struct {
	region  string
	header  []Field // CSV: the field of each column, "" for an ignored one
	seen    map[string]int
	ignored map[string]bool
	out     Desired
}

func (p *parser) bad(line int, user, format string, a ...any) {
	p.out.Bad = append(p.out.Bad, BadRow{Line: line, User: user, Error: fmt.Sprintf(format, a...)})
}

func fieldByName(name string) (Field, bool) {
	for _, f := range fields {
		if strings.EqualFold(name, string(f)) {
			return f, true
		}
	}
	return "", false
}

// csvLine reads one CSV line: one record per line (a quoted field cannot
// span lines), so that a broken line never swallows the next.
func (p *parser) csvLine(line int, text string) error {
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	rec, err := cr.Read()
	if p.header == nil {
		if err != nil {
			return fmt.Errorf("desired state: line %d: header row: %v", line, csvError(err))
		}
		return p.csvHeader(line, rec)
	}
	if err != nil {
		p.bad(line, "", "not a CSV row: %v", csvError(err))
		return nil
	}
	if _, err := cr.Read(); err != io.EOF {
		p.bad(line, "", "not a CSV row: a quoted field must end on its line")
		return nil
	}
	if len(rec) != len(p.header) {
		p.bad(line, "", "has %d fields, the header names %d columns", len(rec), len(p.header))
		return nil
	}
	vals := map[Field]string{}
	for i, f := range p.header {
		if f != "" {
			vals[f] = strings.TrimSpace(rec[i])
		}
	}
	p.row(line, vals)
	return nil
}

func (p *parser) csvHeader(line int, rec []string) error {
	p.header = make([]Field, len(rec))
	var have []Field
	for i, name := range rec {
		name = strings.TrimSpace(name)
		f, ok := fieldByName(name)
		if !ok {
			p.ignored[name] = true
			continue
		}
		if slices.Contains(have, f) {
			return fmt.Errorf("desired state: line %d: header names the column %s twice", line, f)
		}
		have = append(have, f)
		p.header[i] = f
	}
	if !slices.Contains(have, FieldUser) {
		return fmt.Errorf("desired state: line %d: the header has no %s column (columns: %s)", line, FieldUser, fieldList())
	}
	return nil
}

func fieldList() string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// csvError drops encoding/csv's position, which counts within one line.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// jsonLine reads one JSON Lines row: an object of strings (or null, no
// opinion), without duplicate keys.
func (p *parser) jsonLine(line int, text []byte) {
	dec := json.NewDecoder(bytes.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		p.bad(line, "", "not a JSON object")
		return
	}
	vals := map[Field]string{}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			p.bad(line, "", "not valid JSON")
			return
		}
		key := tok.(string) // object keys are strings
		if slices.Contains(keys, key) {
			p.bad(line, "", "key %q appears twice", key)
			return
		}
		keys = append(keys, key)
		var v any
		if err := dec.Decode(&v); err != nil {
			p.bad(line, "", "not valid JSON")
			return
		}
		f, known := fieldByName(key)
		if !known || string(f) != key {
			p.ignored[key] = true
			continue
		}
		switch v := v.(type) {
		case nil:
		case string:
			vals[f] = strings.TrimSpace(v)
		default:
			p.bad(line, "", "%s must be a string or null", key)
			return
		}
	}
	if _, err := dec.Token(); err != nil {
		p.bad(line, "", "not valid JSON")
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		p.bad(line, "", "more than one JSON value on the line")
		return
	}
	p.row(line, vals)
}

// row validates and normalises one row's values and keeps it, or records
// why not.
func (p *parser) row(line int, vals map[Field]string) {
	r := Row{Line: line}
	user := vals[FieldUser]
	if user == "" {
		p.bad(line, "", "%s is required", FieldUser)
		return
	}
	ref, err := events.ParseUser(user)
	if err != nil {
		p.bad(line, "", "%s: %s", FieldUser, eventMessage(err))
		return
	}
	r.User = user
	switch s := Status(strings.ToLower(vals[FieldStatus])); s {
	case StatusNone, StatusActive, StatusLeft:
		r.Status = s
	default:
		p.bad(line, user, "%s must be active or left (or empty for no opinion)", FieldStatus)
		return
	}
	for _, f := range phoneFields {
		v := vals[f]
		if v == "" {
			continue
		}
		n, err := events.NormalizePhone(v, p.region)
		if err != nil {
			p.bad(line, user, "%s: %v", f, err)
			return
		}
		r.set(f, n)
	}
	if v := vals[FieldEmail]; v != "" {
		if err := events.CheckEmail(v); err != nil {
			p.bad(line, user, "%s: %v", FieldEmail, err)
			return
		}
		r.Email = v
	}
	key := strings.ToLower(ref.String())
	if first, ok := p.seen[key]; ok {
		p.bad(line, user, "the user is already on line %d", first)
		return
	}
	p.seen[key] = line
	p.out.Rows = append(p.out.Rows, r)
}

// eventMessage is the message of an events.Error without its code and field.
func eventMessage(err error) string {
	var ee *events.Error
	if errors.As(err, &ee) && ee.Message != "" {
		return ee.Message
	}
	return err.Error()
}

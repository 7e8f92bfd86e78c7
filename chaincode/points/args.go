package points

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// maxArgsDepth bounds the nesting of an argument document.
const maxArgsDepth = 16

// errInvalid is an Invalid error naming the offending field.
func errInvalid(reason, field, format string, args ...any) error {
	e := apperr.New(apperr.Invalid, reason, format, args...)
	if field != "" {
		e.Fields = []apperr.FieldError{{Field: field, Reason: reason, Detail: e.Detail}}
	}
	return e
}

// decodeArgs decodes one JSON object into v, strictly: at most MaxArgsBytes,
// exactly one document, an object at the top, field names matching exactly
// (encoding/json alone would match case-insensitively), no unknown and no
// duplicate fields, numbers fitting their Go types. An empty document is "{}".
func decodeArgs(data []byte, v any) error {
	if len(data) > MaxArgsBytes {
		return apperr.New(apperr.TooLarge, "args_too_large", "the arguments exceed %d bytes", MaxArgsBytes)
	}
	data = bytes.Trim(data, " \t\r\n") // JSON whitespace only
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return errInvalid("malformed_args", "", "the arguments must be one JSON object")
	}
	if !utf8.Valid(data) {
		return errInvalid("malformed_args", "", "the arguments are not valid UTF-8")
	}
	if !json.Valid(data) {
		return errInvalid("malformed_args", "", "the arguments are not exactly one valid JSON document")
	}
	// Field names first: a misspelt or duplicated field is reported as such
	// rather than as whatever the decoder makes of it.
	if err := checkFields(data, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	if f, ok := v.(fastDecoder); ok && f.decodeFast(data) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errInvalid("malformed_args", jsonErrorField(err), "the arguments cannot be decoded: %s", sanitize(err.Error()))
	}
	return nil
}

func jsonErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

// sanitize keeps an error message short and on one line.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(s, 200)
}

// fieldSets caches, per struct type, its JSON field names and types.
var fieldSets sync.Map // reflect.Type -> map[string]reflect.Type

func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldSets.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			m[name] = f.Type
		}
	}
	walk(t)
	fieldSets.Store(t, m)
	return m
}

var timeType = reflect.TypeOf(time.Time{})

// checkFields walks the document (already known to be valid JSON) alongside
// the Go type and rejects object keys that do not match a field exactly,
// and duplicate keys. Type mismatches are left to the decoder. It is a small
// hand-written scanner: json.Decoder.Token would cost as much as the
// decoding itself.
func checkFields(data []byte, t reflect.Type) error {
	sc := fieldScanner{data: data}
	return sc.value(t, 0)
}

type fieldScanner struct {
	data []byte
	pos  int
	path []pathSeg // where the scanner is, rendered only for an error
}

type pathSeg struct {
	key   string
	index int // -1 for an object key
}

func (s *fieldScanner) where() string {
	var b strings.Builder
	for _, p := range s.path {
		if p.index >= 0 {
			fmt.Fprintf(&b, "[%d]", p.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.key)
	}
	return b.String()
}

func (s *fieldScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *fieldScanner) malformed() error {
	return errInvalid("malformed_args", s.where(), "the arguments are not valid JSON")
}

// str scans a string at pos and returns its raw contents (escapes kept) and
// whether it contains escapes.
func (s *fieldScanner) str() (raw []byte, escaped bool, ok bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			s.pos = i + 1
			return s.data[start:i], escaped, true
		}
	}
	return nil, false, false
}

func (s *fieldScanner) value(t reflect.Type, depth int) error {
	if depth > maxArgsDepth {
		return errInvalid("malformed_args", s.where(), "the arguments nest too deeply")
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s.ws()
	if s.pos >= len(s.data) {
		return s.malformed()
	}
	switch s.data[s.pos] {
	case '{':
		s.pos++
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct && t != timeType {
			fields = jsonFields(t)
		}
		var seen [][]byte // an object has a handful of fields: a slice beats a map
		for first := true; ; first = false {
			s.ws()
			if s.pos < len(s.data) && s.data[s.pos] == '}' {
				s.pos++
				return nil
			}
			if !first {
				if s.pos >= len(s.data) || s.data[s.pos] != ',' {
					return s.malformed()
				}
				s.pos++
				s.ws()
			}
			raw, escaped, ok := s.str()
			if !ok {
				return s.malformed()
			}
			if escaped { // rare: compare the unescaped name
				var key string
				if err := json.Unmarshal(s.data[s.pos-len(raw)-2:s.pos], &key); err != nil {
					return s.malformed()
				}
				raw = []byte(key)
			}
			s.path = append(s.path, pathSeg{key: string(raw), index: -1})
			for _, k := range seen {
				if bytes.Equal(k, raw) {
					return errInvalid("duplicate_field", s.where(), "field %q appears twice", truncate(string(raw), 64))
				}
			}
			seen = append(seen, raw)
			var ft reflect.Type
			if fields != nil {
				var known bool
				if ft, known = fields[string(raw)]; !known {
					return errInvalid("unknown_field", s.where(), "unknown field %q", truncate(string(raw), 64))
				}
			}
			s.ws()
			if s.pos >= len(s.data) || s.data[s.pos] != ':' {
				return s.malformed()
			}
			s.pos++
			if err := s.value(ft, depth+1); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '[':
		s.pos++
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; ; i++ {
			s.ws()
			if s.pos < len(s.data) && s.data[s.pos] == ']' {
				s.pos++
				return nil
			}
			if i > 0 {
				if s.pos >= len(s.data) || s.data[s.pos] != ',' {
					return s.malformed()
				}
				s.pos++
			}
			s.path = append(s.path, pathSeg{index: i})
			if err := s.value(et, depth+1); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '"':
		if _, _, ok := s.str(); !ok {
			return s.malformed()
		}
		return nil
	default: // a number, true, false or null
		start := s.pos
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			s.pos++
		}
		if s.pos == start {
			return s.malformed()
		}
		return nil
	}
}

// Field validators. Each returns an Invalid error naming the field.

func needID(field, v string) error {
	if !validID(v) {
		return errInvalid("invalid_"+snake(field), field, "%s must match [A-Za-z0-9._:-]{1,128}", field)
	}
	return nil
}

func needHex64(field, v string) error {
	if !validHex(v, claimHexLen) {
		return errInvalid("invalid_"+snake(field), field, "%s must be 64 lowercase hex digits", field)
	}
	return nil
}

func needStatus(field, v string) error {
	if v != StatusActive && v != StatusSuspended {
		return errInvalid("invalid_status", field, "%s must be active or suspended", field)
	}
	return nil
}

func needPositive(field string, v int64) error {
	if v <= 0 {
		return errInvalid("invalid_points", field, "%s must be positive", field)
	}
	return nil
}

// needName checks a human-readable name: 1..MaxNameLen bytes, no control characters.
func needName(field, v string, required bool) error {
	if v == "" && !required {
		return nil
	}
	if v == "" || len(v) > MaxNameLen || strings.TrimSpace(v) != v {
		return errInvalid("invalid_"+snake(field), field, "%s must be 1 to %d bytes without surrounding spaces", field, MaxNameLen)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return errInvalid("invalid_"+snake(field), field, "%s contains a control character", field)
		}
	}
	return nil
}

// snake turns a camelCase field name into snake_case for reasons.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Reasons of BindJSON's errors, besides ReasonBodyTooLarge and
// ReasonUnsupportedMediaType.
const (
	ReasonMalformedJSON    = "malformed_json"    // not one well-formed JSON value
	ReasonValidationFailed = "validation_failed" // see the field-level errors
)

// Field-level reasons produced by decoding; validation adds the validator
// tags ("required", "min", "uscc", ...).
const (
	FieldReasonType    = "type"          // the JSON value has the wrong type or range
	FieldReasonUnknown = "unknown_field" // the object has a member the API does not define
)

// BindJSON decodes the request body into dst (a pointer, normally to a
// struct) and validates it with the `validate` struct tags. Every error is an
// *apperr.Error ready for WriteError:
//
//   - 415 unsupported_media_type: Content-Type is not application/json;
//   - 413 body_too_large: the body exceeds the Server's limit;
//   - 400 malformed_json: not exactly one JSON value (detail has the byte offset);
//   - 400 validation_failed: unknown members, wrong types or broken rules,
//     one field-level error each, with the JSON path ("items[2].points").
//
// Strictness is deliberate: a misspelt optional member silently ignored is a
// partner integration bug found in production.
func BindJSON(c *gin.Context, dst any) error {
	if err := requireJSON(c.GetHeader("Content-Type")); err != nil {
		return err
	}
	if c.Request.Body == nil {
		return apperr.New(apperr.Invalid, ReasonMalformedJSON, "request body is empty")
	}
	// The whole body is read first (it is bounded by LimitBody) so that a
	// type error's offset can be turned back into a JSON path.
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return bodyReadError(err)
	}
	if err := decodeJSON(data, dst); err != nil {
		return err
	}
	return validateValue(dst)
}

// requireJSON accepts application/json with any parameters (charset=utf-8).
func requireJSON(contentType string) error {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		if contentType == "" {
			contentType = "none"
		}
		return apperr.New(apperr.Invalid, ReasonUnsupportedMediaType,
			"Content-Type must be application/json, got %s", strconv.Quote(contentType))
	}
	return nil
}

func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apperr.Wrap(err, apperr.TooLarge, ReasonBodyTooLarge, "request body exceeds the limit of %d bytes", mbe.Limit)
	}
	// The client went away or sent a broken chunked encoding.
	return apperr.Wrap(err, apperr.Invalid, ReasonMalformedJSON, "request body could not be read")
}

// decodeJSON decodes exactly one JSON value from data into dst.
func decodeJSON(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(data, dst, err)
	}
	// One value only: "{...}{...}" or "{...} x" is a client bug, and
	// accepting it would let two layers disagree on what was sent.
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.Invalid, ReasonMalformedJSON,
			"unexpected data after the JSON value, which ends at byte offset %d", end)
	}
	return nil
}

// unknownFieldPrefix is how encoding/json reports a member that
// DisallowUnknownFields rejects; it has no typed error for it.
const unknownFieldPrefix = "json: unknown field "

func decodeError(data []byte, dst any, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		tpe *time.ParseError
	)
	switch {
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, ReasonMalformedJSON, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, ReasonMalformedJSON,
			"JSON ends unexpectedly at byte offset %d", len(data))
	case errors.As(err, &syn):
		return apperr.New(apperr.Invalid, ReasonMalformedJSON,
			"malformed JSON at byte offset %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		path := jsonPathAt(data, typ.Offset)
		fe := apperr.FieldError{Field: path, Reason: FieldReasonType,
			Detail: fmt.Sprintf("%s must be %s, not %s", fieldName(path), jsonTypeName(typ.Type), typ.Value)}
		return &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed,
			Detail: "the request body has a value of the wrong type", Fields: []apperr.FieldError{fe}}
	case errors.As(err, &tpe), strings.HasPrefix(err.Error(), timeErrorPrefix):
		// time.Time's UnmarshalJSON reports a bad time without its place in
		// the document: find the first time-typed value that does not decode.
		path := badTimePath(data, reflect.TypeOf(dst))
		fe := apperr.FieldError{Field: path, Reason: FieldReasonType,
			Detail: fmt.Sprintf("%s must be an RFC 3339 time with an offset, like 2026-03-14T09:30:00+08:00", fieldName(path))}
		return &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed,
			Detail: "the request body has a value of the wrong type", Fields: []apperr.FieldError{fe}}
	case strings.HasPrefix(err.Error(), unknownFieldPrefix):
		name, uErr := strconv.Unquote(strings.TrimPrefix(err.Error(), unknownFieldPrefix))
		if uErr != nil {
			name = strings.TrimPrefix(err.Error(), unknownFieldPrefix)
		}
		path := unknownFieldPath(data, reflect.TypeOf(dst), name)
		fe := apperr.FieldError{Field: path, Reason: FieldReasonUnknown,
			Detail: fmt.Sprintf("%s is not a known field", path)}
		return &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed,
			Detail: "the request body has an unknown field", Fields: []apperr.FieldError{fe}}
	}
	// Anything else is a decoder failure we did not foresee (e.g. dst is not
	// a pointer): a bug on our side, not the client's.
	return fmt.Errorf("api: decoding JSON body: %w", err)
}

// fieldName names a path in a sentence; the empty path is the body itself.
func fieldName(path string) string {
	if path == "" {
		return "the request body"
	}
	return path
}

// jsonTypeName describes a Go type in JSON terms, for error details.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer within range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a value of another type"
}

// pathSeg is one step of a JSON path: an object member or an array index.
type pathSeg struct {
	key   string
	index int // -1 for a member
}

// formatPath writes segs as "items[2].points". A member name that is not a
// plain identifier (empty, or with dots, brackets, spaces...) is written
// quoted, `["a.b"]`, so that every path reads back unambiguously.
func formatPath(segs []pathSeg) string {
	var b strings.Builder
	for _, s := range segs {
		switch {
		case s.index >= 0:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case !plainKey(s.key):
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// walkJSON calls visit for every key and value in data, in document order,
// with its path and the byte offset just past its token (for an object or
// array: past the opening delimiter). It stops when visit returns false or
// at the first syntax error. Recursion is safe: it only runs on bodies that
// encoding/json already scanned, which caps nesting at 10000.
func walkJSON(data []byte, visit func(path []pathSeg, end int64, isKey bool) bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(path []pathSeg) bool
	walk = func(path []pathSeg) bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if !visit(path, dec.InputOffset(), false) {
			return false
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return false
				}
				k, _ := key.(string)
				p := append(path[:len(path):len(path)], pathSeg{key: k, index: -1})
				if !visit(p, dec.InputOffset(), true) || !walk(p) {
					return false
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if !walk(append(path[:len(path):len(path)], pathSeg{index: i})) {
					return false
				}
			}
			_, err = dec.Token()
		}
		return err == nil
	}
	walk(nil)
}

// jsonPathAt returns the path of the value that encoding/json blamed for a
// type error at offset (which lies just past that value's first token).
// encoding/json's own UnmarshalTypeError.Field drops array indices, and
// "items.points" does not tell a client which of 500 items is wrong.
func jsonPathAt(data []byte, offset int64) string {
	var found string
	walkJSON(data, func(path []pathSeg, end int64, isKey bool) bool {
		if isKey || end < offset {
			return true
		}
		found = formatPath(path)
		return false
	})
	return found
}

// unknownFieldPath finds where the member named key that encoding/json
// rejected sits: the first occurrence of key whose enclosing object decodes
// into a struct without such a field. encoding/json reports only the name.
func unknownFieldPath(data []byte, root reflect.Type, key string) string {
	found := ""
	walkJSON(data, func(path []pathSeg, _ int64, isKey bool) bool {
		if !isKey || path[len(path)-1].key != key {
			return true
		}
		parent, ok := typeAt(root, path[:len(path)-1])
		if !ok || parent.Kind() != reflect.Struct || hasJSONField(parent, key) {
			return true
		}
		found = formatPath(path)
		return false
	})
	if found == "" { // cannot happen if the walk mirrors encoding/json; name the key at least
		return key
	}
	return found
}

// typeAt resolves the Go type that the value at path decodes into.
func typeAt(t reflect.Type, path []pathSeg) (reflect.Type, bool) {
	for _, seg := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case seg.index >= 0 && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case seg.index < 0 && t.Kind() == reflect.Map:
			t = t.Elem()
		case seg.index < 0 && t.Kind() == reflect.Struct:
			f, ok := jsonField(t, seg.key)
			if !ok {
				return nil, false
			}
			t = f.Type
		default:
			return nil, false
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t, true
}

func hasJSONField(t reflect.Type, key string) bool {
	_, ok := jsonField(t, key)
	return ok
}

// jsonField finds the field of struct t that encoding/json decodes key into:
// an exact name match first, then a case-insensitive one, looking through
// untagged embedded structs as encoding/json does.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	var search func(t reflect.Type) (reflect.StructField, bool)
	search = func(t reflect.Type) (reflect.StructField, bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, tagged := jsonName(f)
			if name == "-" {
				continue
			}
			if f.Anonymous && !tagged {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if sf, ok := search(et); ok {
						return sf, true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == key {
				return f, true
			}
			if fold == nil && strings.EqualFold(name, key) {
				fold = &f
			}
		}
		return reflect.StructField{}, false
	}
	if f, ok := search(t); ok {
		return f, true
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// jsonName returns a field's JSON name and whether a json tag named it.
func jsonName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "-", true
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name, false
	}
	return name, true
}

var timeType = reflect.TypeOf(time.Time{})

// timeErrorPrefix starts time.Time's UnmarshalJSON errors that are not a
// *time.ParseError (e.g. a number where a time string belongs).
const timeErrorPrefix = "Time.UnmarshalJSON: "

// badTimePath returns the path of the first value in data that decodes into
// a time.Time and is not a valid RFC 3339 time string ("" if none is found).
func badTimePath(data []byte, root reflect.Type) string {
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return ""
	}
	var walk func(v any, path []pathSeg) (string, bool)
	walk = func(v any, path []pathSeg) (string, bool) {
		if t, ok := typeAt(root, path); ok && t == timeType {
			var tm time.Time
			b, _ := json.Marshal(v)
			if tm.UnmarshalJSON(b) != nil {
				return formatPath(path), true
			}
			return "", false
		}
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys) // deterministic: the same body names the same field
			for _, k := range keys {
				e := x[k]
				if p, ok := walk(e, append(path[:len(path):len(path)], pathSeg{key: k, index: -1})); ok {
					return p, true
				}
			}
		case []any:
			for i, e := range x {
				if p, ok := walk(e, append(path[:len(path):len(path)], pathSeg{index: i})); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	p, _ := walk(doc, nil)
	return p
}

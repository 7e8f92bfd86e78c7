// Package apperr provides the one application error type of greenpoints.
//
// Domain packages return *Error values carrying a Code (the class of failure,
// mapped to an HTTP status in exactly one place, api/problem.go) and a stable,
// machine-readable Reason that clients may switch on. Errors that are not
// *Error are internal: clients see "internal error", the log sees the detail.
package apperr

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies an error. Each code maps to exactly one HTTP status.
type Code string

// The codes. Keep them few: the Reason carries the detail.
const (
	Invalid      Code = "invalid"      // the request is malformed or breaks a rule (400/422)
	NotFound     Code = "not_found"    // the named thing does not exist (404)
	Conflict     Code = "conflict"     // the request conflicts with current state (409)
	Unauthorized Code = "unauthorized" // no or bad credentials (401)
	Forbidden    Code = "forbidden"    // authenticated but not allowed (403)
	TooLarge     Code = "too_large"    // the request body or batch is too big (413)
	RateLimited  Code = "rate_limited" // too many requests (429)
	Unavailable  Code = "unavailable"  // a dependency is down; retry later (503)
	Internal     Code = "internal"     // a bug or an unexpected failure (500)
)

// FieldError says what is wrong with one input field.
type FieldError struct {
	Field  string `json:"field"`  // JSON path of the field, e.g. "items[2].points"
	Reason string `json:"reason"` // stable code, e.g. "required", "min", "uscc_checksum"
	Detail string `json:"detail"` // human sentence
}

// Error is the application error.
type Error struct {
	Code   Code         // class of failure
	Reason string       // stable machine-readable reason, snake_case, e.g. "insufficient_points"
	Detail string       // human-readable sentence, safe to show to the caller
	Fields []FieldError // field-level problems, for Invalid
	Err    error        // wrapped cause, never shown to clients
}

// New returns an *Error with a formatted detail.
func New(code Code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that wraps cause; cause is logged, never shown.
func Wrap(cause error, code Code, reason, format string, args ...any) *Error {
	e := New(code, reason, format, args...)
	e.Err = cause
	return e
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Reason != "" {
		b.WriteString("/" + e.Reason)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// CodeOf returns the code of err: Internal for any error that is not an *Error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if e := As(err); e != nil {
		return e.Code
	}
	return Internal
}

// ReasonOf returns the reason of err, or "internal_error".
func ReasonOf(err error) string {
	if e := As(err); e != nil && e.Reason != "" {
		return e.Reason
	}
	return "internal_error"
}

// wirePrefix marks an encoded application error in a chaincode error message.
const wirePrefix = "gp1|"

// EncodeWire encodes err as a single-line string that survives Fabric's
// transport of chaincode errors (which keeps only the message). Field errors
// are dropped; the wrapped cause is dropped (it may hold internal detail).
func EncodeWire(err error) string {
	e := As(err)
	if e == nil {
		return wirePrefix + string(Internal) + "|internal_error|" + oneLine(err.Error())
	}
	return wirePrefix + string(e.Code) + "|" + e.Reason + "|" + oneLine(e.Detail)
}

// DecodeWire finds an encoded application error in msg (anywhere: Fabric
// prefixes its own text) and returns it; ok is false when msg holds none.
func DecodeWire(msg string) (err *Error, ok bool) {
	i := strings.Index(msg, wirePrefix)
	if i < 0 {
		return nil, false
	}
	parts := strings.SplitN(msg[i+len(wirePrefix):], "|", 3)
	if len(parts) != 3 {
		return nil, false
	}
	return &Error{Code: Code(parts[0]), Reason: parts[1], Detail: parts[2]}, true
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

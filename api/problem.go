package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// ProblemTypeBase prefixes every problem type URI: the type of a problem is
// ProblemTypeBase + its reason, so the URI is as stable as the reason code and
// clients may switch on either. The URIs are identifiers, not necessarily
// dereferenceable pages.
const ProblemTypeBase = "https://greenpoints.dev/problems/"

// contentTypeProblem is the RFC 9457 media type. No charset parameter: JSON
// is UTF-8 by definition (RFC 8259).
const contentTypeProblem = "application/problem+json"

// Problem is the RFC 9457 problem details body of every error response.
type Problem struct {
	Type      string              `json:"type"`             // ProblemTypeBase + Reason
	Title     string              `json:"title"`            // short summary, fixed per status
	Status    int                 `json:"status"`           // the HTTP status, repeated for clients that lose it
	Detail    string              `json:"detail"`           // human sentence about this occurrence
	Instance  string              `json:"instance"`         // request path (no query: it may carry tokens)
	Reason    string              `json:"reason"`           // stable machine-readable reason code
	RequestID string              `json:"request_id"`       // to quote when reporting a problem
	Errors    []apperr.FieldError `json:"errors,omitempty"` // field-level problems, for invalid input
}

// codeStatus maps each application error code to its one HTTP status.
var codeStatus = map[apperr.Code]int{
	apperr.Invalid:      http.StatusBadRequest,
	apperr.NotFound:     http.StatusNotFound,
	apperr.Conflict:     http.StatusConflict,
	apperr.Unauthorized: http.StatusUnauthorized,
	apperr.Forbidden:    http.StatusForbidden,
	apperr.TooLarge:     http.StatusRequestEntityTooLarge,
	apperr.RateLimited:  http.StatusTooManyRequests,
	apperr.Unavailable:  http.StatusServiceUnavailable,
	apperr.Internal:     http.StatusInternalServerError,
}

// Reasons whose HTTP status is more specific than their code's. They exist
// because HTTP has a precise status that clients and proxies understand,
// while the application error codes stay few.
const (
	ReasonUnsupportedMediaType = "unsupported_media_type" // Invalid, but 415
	ReasonMethodNotAllowed     = "method_not_allowed"     // NotFound-like, but 405
)

// ReasonInternal is the reason of every error that is not an *apperr.Error
// and of recovered panics.
const ReasonInternal = "internal_error"

// reasonStatus overrides codeStatus for a few reasons.
var reasonStatus = map[string]int{
	ReasonUnsupportedMediaType: http.StatusUnsupportedMediaType,
	ReasonMethodNotAllowed:     http.StatusMethodNotAllowed,
	// Well-formed requests that cannot be processed as sent: the same partner
	// transaction id re-sent with a different body, a settlement file with
	// invalid lines.
	"transaction_conflict": http.StatusUnprocessableEntity,
	"file_invalid":         http.StatusUnprocessableEntity,
}

// StatusOf returns the HTTP status WriteError uses for err.
func StatusOf(err error) int {
	e := apperr.As(err)
	if e == nil {
		return http.StatusInternalServerError
	}
	if s, ok := reasonStatus[e.Reason]; ok {
		return s
	}
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// WriteError writes err as application/problem+json and aborts the handler
// chain. It is the only place where errors become HTTP responses.
//
// An *apperr.Error shows its Reason, Detail and Fields (safe by contract);
// its wrapped cause is only logged. Any other error is a bug or an unexpected
// failure: the client sees "internal error", the log sees everything, tied
// together by the request id.
func WriteError(c *gin.Context, err error) {
	c.Abort()
	if err == nil { // a handler bug; still answer, and say so in the log
		err = errors.New("api: WriteError called with a nil error")
	}
	status := StatusOf(err)
	p := Problem{
		Status:    status,
		Title:     http.StatusText(status),
		Instance:  c.Request.URL.Path,
		RequestID: RequestID(c),
	}
	if e := apperr.As(err); e != nil {
		p.Reason = e.Reason
		if p.Reason == "" {
			p.Reason = string(e.Code)
		}
		p.Detail = e.Detail
		p.Errors = e.Fields
	} else {
		p.Reason = ReasonInternal
		p.Detail = "internal error"
	}
	if p.Detail == "" {
		p.Detail = p.Title
	}
	p.Type = ProblemTypeBase + p.Reason

	logError(c, status, p.Reason, err)

	if c.Writer.Written() {
		// Headers are gone: a handler failed mid-stream. Nothing valid can be
		// appended; the log line above is all we can do.
		return
	}
	body, _ := json.Marshal(p) // cannot fail: strings and ints only
	c.Data(status, contentTypeProblem, body)
}

// logError logs what the client does not see. Server-side failures are
// errors; client errors carry no news unless they wrap a cause worth seeing.
func logError(c *gin.Context, status int, reason string, err error) {
	log := Logger(c)
	switch {
	case status >= 500:
		log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.Int("status", status), slog.String("reason", reason), slog.String("error", err.Error()))
	case errors.Unwrap(err) != nil:
		log.LogAttrs(c.Request.Context(), slog.LevelDebug, "request rejected",
			slog.Int("status", status), slog.String("reason", reason), slog.String("error", err.Error()))
	}
}

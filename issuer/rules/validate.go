package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$`)
	jurisPattern   = regexp.MustCompile(`^[A-Z]{2}$`)
)

// validator collects field errors.
type validator struct{ fields []apperr.FieldError }

func (v *validator) bad(field, reason, format string, args ...any) {
	v.fields = append(v.fields, apperr.FieldError{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
}

// ref checks the fields every published version has.
func (v *validator) ref(id, version string, effectiveAt, publishedAt time.Time) {
	if !idPattern.MatchString(id) {
		v.bad("id", "invalid_id", "id must be 1-64 lowercase letters, digits and dashes")
	}
	if !versionPattern.MatchString(version) {
		v.bad("version", "invalid_version", "version must be 1-32 letters, digits, dots and dashes")
	}
	if effectiveAt.IsZero() {
		v.bad("effectiveAt", "required", "effectiveAt is required")
	}
	if publishedAt.IsZero() {
		v.bad("publishedAt", "required", "publishedAt is required")
	}
	if effectiveAt.Before(publishedAt) {
		v.bad("effectiveAt", "retroactive", "effectiveAt must not be before publishedAt")
	}
}

// err returns nil or an apperr Invalid carrying the field errors.
func (v *validator) err(reason, format string, args ...any) error {
	if len(v.fields) == 0 {
		return nil
	}
	return &apperr.Error{Code: apperr.Invalid, Reason: reason, Detail: fmt.Sprintf(format, args...), Fields: v.fields}
}

// canonical encodes v, a struct without maps, as compact JSON: encoding/json
// emits struct fields in declaration order.
func canonical(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Plain structs of strings, integers, booleans and UTC times.
		panic(fmt.Sprintf("rules: canonical JSON: %v", err))
	}
	return b
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) <= 32 {
		return s
	}
	return s[:32] + "..."
}

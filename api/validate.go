package api

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Bounds of the custom numeric rules. A limit on everything: a points amount
// or a fen amount beyond these is a client bug or an attack, never a real
// green purchase, and rejecting it here keeps overflow far from the ledger.
const (
	MaxFen    = 1_000_000_000_000 // 10^12 fen = 10^10 yuan
	MaxPoints = 1_000_000_000     // 10^9 points in one request item
)

// validate is shared by all handlers: validator caches struct metadata, so
// one instance is both faster and the one place custom rules are registered.
var validate = newValidator()

func newValidator() *validator.Validate {
	// WithRequiredStructEnabled makes `required` on a struct field mean
	// "not the zero struct", the behaviour v11 will make the default.
	v := validator.New(validator.WithRequiredStructEnabled())
	// Field paths in errors use JSON names, since that is what clients send.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _ := jsonName(f)
		if name == "-" {
			return ""
		}
		return name
	})
	rules := map[string]validator.Func{
		"uscc":   func(fl validator.FieldLevel) bool { return isString(fl) && validUSCC(fl.Field().String()) },
		"mcc":    func(fl validator.FieldLevel) bool { return isString(fl) && validMCC(fl.Field().String()) },
		"fen":    func(fl validator.FieldLevel) bool { return intInRange(fl, 0, MaxFen) },
		"points": func(fl validator.FieldLevel) bool { return intInRange(fl, 1, MaxPoints) },
	}
	for tag, fn := range rules {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(fmt.Sprintf("api: registering validation %q: %v", tag, err))
		}
	}
	return v
}

func isString(fl validator.FieldLevel) bool { return fl.Field().Kind() == reflect.String }

// intInRange fails on non-integer fields so that a tag put on the wrong type
// shows up in the first test rather than passing silently.
func intInRange(fl validator.FieldLevel, lo, hi int64) bool {
	switch fl.Field().Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := fl.Field().Int()
		return n >= lo && n <= hi
	}
	return false
}

// validateValue runs the validator on the struct dst points to. Other
// destinations (a top-level array, a map) have no tags to check.
func validateValue(dst any) error {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	err := validate.Struct(dst)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return fmt.Errorf("api: validating request: %w", err) // a malformed tag: our bug
	}
	fields := make([]apperr.FieldError, 0, len(verrs))
	for _, fe := range verrs {
		path := fieldPath(fe.Namespace())
		fields = append(fields, apperr.FieldError{Field: path, Reason: fe.Tag(), Detail: fieldDetail(path, fe)})
	}
	return &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed,
		Detail: fmt.Sprintf("the request body has %d invalid field(s)", len(fields)), Fields: fields}
}

// fieldPath drops the Go type name that validator puts first in a namespace
// ("createReq.items[2].points" -> "items[2].points").
func fieldPath(ns string) string {
	_, rest, found := strings.Cut(ns, ".")
	if !found {
		return ns
	}
	return rest
}

// fieldDetail writes a sentence a partner's developer can act on.
func fieldDetail(path string, fe validator.FieldError) string {
	p := fe.Param()
	kind := fe.Kind()
	sized := func(what string) string { // min, max, len read differently for text, lists, numbers
		switch kind {
		case reflect.String:
			return fmt.Sprintf("%s must have %s %s characters", path, what, p)
		case reflect.Slice, reflect.Array, reflect.Map:
			return fmt.Sprintf("%s must have %s %s items", path, what, p)
		}
		return ""
	}
	switch fe.Tag() {
	case "required":
		return path + " is required"
	case "min":
		if d := sized("at least"); d != "" {
			return d
		}
		return fmt.Sprintf("%s must be at least %s", path, p)
	case "max":
		if d := sized("at most"); d != "" {
			return d
		}
		return fmt.Sprintf("%s must be at most %s", path, p)
	case "len":
		if d := sized("exactly"); d != "" {
			return d
		}
		return fmt.Sprintf("%s must be %s", path, p)
	case "gt", "gte", "lt", "lte":
		op := map[string]string{"gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most"}[fe.Tag()]
		return fmt.Sprintf("%s must be %s %s", path, op, p)
	case "oneof":
		return fmt.Sprintf("%s must be one of: %s", path, p)
	case "uscc":
		return path + " must be an 18-character unified social credit code with a valid check character (GB 32100-2015)"
	case "mcc":
		return path + " must be a 4-digit merchant category code (ISO 18245)"
	case "fen":
		return fmt.Sprintf("%s must be an amount in fen from 0 to %d", path, int64(MaxFen))
	case "points":
		return fmt.Sprintf("%s must be a number of points from 1 to %d", path, int64(MaxPoints))
	}
	return fmt.Sprintf("%s fails the %q rule", path, fe.Tag())
}

// Package labels holds China Energy Label (中国能效标识) registry entries: the
// appliance models whose efficiency grade the rules look up when an itemised
// purchase names a model.
//
// The registry is imported from a CSV file validated whole (see Parse and
// docs/partners.md, "Energy label registry import"): any invalid line rejects
// the file and nothing is imported. It imports no HTTP and no SQL.
package labels

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/csvfile"
)

// Categories with a label standard the methodologies use.
const (
	CategoryRefrigerator   = "refrigerator"
	CategoryWashingMachine = "washing_machine"
	CategoryAirConditioner = "air_conditioner"
)

// Bounds on an entry.
const (
	MaxModelLen          = 64 // runes, as written in the file
	MaxBrandLen          = 64 // runes
	MaxStandardLen       = 32 // bytes
	MaxRegistrationNoLen = 64 // bytes
	// MaxLabelValueMilli bounds the label value (1000.000 in the category's
	// unit): real values are below 10 in every category's unit, so anything
	// near the bound is a unit error.
	MaxLabelValueMilli = 1_000_000
	// MaxCapacityW is the largest rated cooling capacity in scope of
	// GB 21455 (room air conditioners up to 14 kW).
	MaxCapacityW = 14_000
)

// Field reasons of Validate and Parse, beyond those of csvfile.
const (
	FieldRequired        = "required"
	FieldTooLong         = "too_long"
	FieldInvalidChars    = "invalid_chars"
	FieldUnknownCategory = "unknown_category"
	FieldOutOfRange      = "out_of_range"
	FieldFormat          = "format"
	FieldNotApplicable   = "not_applicable"
	FieldDecimal         = "decimal"
	FieldDuplicate       = "duplicate"
)

// Entry is one registered model.
type Entry struct {
	Model    string // as on the label; match on NormalizeModel(Model)
	Brand    string
	Category string // Category* constant
	Grade    int    // 1 (best) .. 5
	// LabelValueMilli is the label's headline value x 1000 in the category's
	// unit: refrigerators kWh/24h, washing machines kWh per cycle, air
	// conditioners APF (annual performance factor, dimensionless).
	LabelValueMilli int64
	// CapacityW is an air conditioner's rated cooling capacity in watts;
	// 0 for other categories.
	CapacityW      int64
	Standard       string // the label standard, e.g. "GB 12021.2-2015"
	RegistrationNo string // the label's registration (备案) number
}

// NormalizeModel returns the key models are matched on, so that "kfr-35gw/
// BP3DN1Y" from a receipt finds "KFR-35GW/BP3DN1Y" in the registry. It is a
// simple, stdlib-only subset of NFKC case folding:
//   - full-width ASCII forms (U+FF01..U+FF5E) become their ASCII characters;
//   - ASCII letters become upper case (other scripts are left alone);
//   - every white space character (Unicode White_Space, the ideographic
//     space U+3000 included) is removed, which also trims.
//
// Hyphens, slashes and other punctuation are kept: they distinguish models.
// NormalizeModel is idempotent.
func NormalizeModel(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E {
			r -= 0xFF01 - '!'
		}
		switch {
		case unicode.IsSpace(r):
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Validate returns every problem with e (nil when there is none), with field
// paths model, brand, category, grade, labelValueMilli, capacityW, standard
// and registrationNo. All fields are required except CapacityW, which is
// required (1..MaxCapacityW) for air conditioners and must be 0 otherwise.
func (e Entry) Validate() []apperr.FieldError {
	var errs []apperr.FieldError
	add := func(field, reason, format string, args ...any) {
		errs = append(errs, apperr.FieldError{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	text := func(field, s string, maxLen int) {
		switch {
		case s == "":
			add(field, FieldRequired, "%s is required", field)
		case len(s) > 4*maxLen || utf8.RuneCountInString(s) > maxLen:
			add(field, FieldTooLong, "%s is longer than %d characters", field, maxLen)
		case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
			add(field, FieldInvalidChars, "%s contains a control character or invalid UTF-8", field)
		case NormalizeModel(s) == "":
			add(field, FieldRequired, "%s is only white space", field)
		}
	}
	text("model", e.Model, MaxModelLen)
	text("brand", e.Brand, MaxBrandLen)
	switch e.Category {
	case CategoryRefrigerator, CategoryWashingMachine, CategoryAirConditioner:
	case "":
		add("category", FieldRequired, "category is required")
	default:
		add("category", FieldUnknownCategory, "category must be one of %q",
			[]string{CategoryRefrigerator, CategoryWashingMachine, CategoryAirConditioner})
	}
	if e.Grade < 1 || e.Grade > 5 {
		add("grade", FieldOutOfRange, "grade must be between 1 and 5")
	}
	if e.LabelValueMilli < 1 || e.LabelValueMilli > MaxLabelValueMilli {
		add("labelValueMilli", FieldOutOfRange, "the label value must be between 0.001 and %d", MaxLabelValueMilli/1000)
	}
	switch {
	case e.Category == CategoryAirConditioner && (e.CapacityW < 1 || e.CapacityW > MaxCapacityW):
		add("capacityW", FieldOutOfRange, "an air conditioner's cooling capacity must be between 1 and %d W", MaxCapacityW)
	case e.Category != CategoryAirConditioner && e.CapacityW != 0:
		add("capacityW", FieldNotApplicable, "only air conditioners have a cooling capacity")
	}
	switch {
	case e.Standard == "":
		add("standard", FieldRequired, "standard is required")
	case !validStandard(e.Standard):
		add("standard", FieldFormat, `standard must look like "GB 12021.2-2015" or "GB/T 1234-2020"`)
	}
	switch {
	case e.RegistrationNo == "":
		add("registrationNo", FieldRequired, "registrationNo is required")
	case len(e.RegistrationNo) > MaxRegistrationNoLen || !allOf(e.RegistrationNo, regNoChar):
		add("registrationNo", FieldFormat, "registrationNo must be 1 to %d of A-Z, a-z, 0-9 and '-'", MaxRegistrationNoLen)
	}
	return errs
}

// validStandard checks the shape of a Chinese national standard number:
// "GB" or "GB/T", a space, a number with an optional part ("12021.2"), a
// hyphen and a four-digit year.
func validStandard(s string) bool {
	if len(s) > MaxStandardLen {
		return false
	}
	rest, ok := strings.CutPrefix(s, "GB/T ")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "GB "); !ok {
			return false
		}
	}
	number, year, ok := strings.Cut(rest, "-")
	if !ok || len(year) != 4 || !allOf(year, isDigit) {
		return false
	}
	num, part, hasPart := strings.Cut(number, ".")
	return num != "" && allOf(num, isDigit) && (!hasPart || part != "" && allOf(part, isDigit))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func regNoChar(c byte) bool {
	return isDigit(c) || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-'
}

func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// Defaults for Options left at zero. The registry holds a few hundred
// thousand models across all categories.
const (
	DefaultMaxLines = 500_000
	DefaultMaxBytes = 128 << 20
)

// Options bound a parse. Zero values take the defaults.
type Options struct {
	MaxLines int   // physical lines, header included; default DefaultMaxLines
	MaxBytes int64 // file size; default DefaultMaxBytes
}

// Columns are the header of a registry file, in order.
var Columns = []string{"model", "brand", "category", "grade", "label_value", "capacity_w", "standard", "registration_no"}

const (
	colModel = iota
	colBrand
	colCategory
	colGrade
	colLabelValue
	colCapacityW
	colStandard
	colRegistrationNo
)

// fieldColumns maps Validate's field paths to columns.
var fieldColumns = map[string]string{
	"model": "model", "brand": "brand", "category": "category", "grade": "grade",
	"labelValueMilli": "label_value", "capacityW": "capacity_w", "standard": "standard",
	"registrationNo": "registration_no",
}

// Parse reads and validates a whole registry file and returns its entries in
// file order. The file has the header Columns and no trailer; label_value is
// a decimal with at most three decimals ("0.85", "4.5"), parsed exactly
// into milli units; capacity_w may be empty for categories other than air
// conditioners. Two entries with the same normalised brand and model are an
// error.
//
// Errors: TooLarge ("file_too_large", "file_too_many_lines") beyond opts;
// Invalid "file_invalid" with one FieldError per problem ("line 12: grade");
// a plain error when r fails.
func Parse(r io.Reader, opts Options) ([]Entry, error) {
	if opts.MaxLines <= 0 {
		opts.MaxLines = DefaultMaxLines
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	raw, rep, err := csvfile.Read(r, csvfile.Spec{Header: Columns, MaxBytes: opts.MaxBytes, MaxLines: opts.MaxLines})
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	entries := make([]Entry, 0, len(raw.Records))
	type key struct{ brand, model string }
	seen := make(map[key]int, len(raw.Records))
	for _, rec := range raw.Records {
		v := rec.Fields
		e := Entry{
			Model:          v[colModel],
			Brand:          v[colBrand],
			Category:       v[colCategory],
			Standard:       v[colStandard],
			RegistrationNo: v[colRegistrationNo],
		}
		bad := map[string]bool{}
		if n, ok := rep.Int(rec.Line, Columns[colGrade], v[colGrade], 0, 100); ok {
			e.Grade = int(n)
		} else {
			bad[Columns[colGrade]] = true
		}
		if n, ok := parseMilli(v[colLabelValue]); ok {
			e.LabelValueMilli = n
		} else {
			bad[Columns[colLabelValue]] = true
			rep.Add(rec.Line, Columns[colLabelValue], FieldDecimal, "label_value must be a decimal number with at most 3 decimals, like 0.85")
		}
		if s := v[colCapacityW]; s != "" {
			if n, ok := rep.Int(rec.Line, Columns[colCapacityW], s, 0, 1<<62); ok {
				e.CapacityW = n
			} else {
				bad[Columns[colCapacityW]] = true
			}
		}
		rep.AddFieldErrors(rec.Line, e.Validate(), fieldColumns, bad)
		if k := (key{NormalizeModel(e.Brand), NormalizeModel(e.Model)}); k.brand != "" && k.model != "" {
			if first, dup := seen[k]; dup {
				rep.Addf(rec.Line, Columns[colModel], FieldDuplicate, "the same brand and model (after normalisation) as line %d", first)
			} else {
				seen[k] = rec.Line
			}
		}
		entries = append(entries, e)
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return entries, nil
}

// parseMilli parses an unsigned decimal with at most three decimals into
// thousandths without floating point: "0.85" is 850. It accepts only ASCII
// digits and one '.', with digits on both sides of it; the result is at
// most 10^15 so it cannot overflow.
func parseMilli(s string) (int64, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 || !allOf(whole, isDigit) {
		return 0, false
	}
	if hasFrac && (frac == "" || len(frac) > 3 || !allOf(frac, isDigit)) {
		return 0, false
	}
	var n int64
	for i := 0; i < len(whole); i++ {
		n = n*10 + int64(whole[i]-'0')
	}
	for i := range 3 {
		n *= 10
		if i < len(frac) {
			n += int64(frac[i] - '0')
		}
	}
	return n, true
}

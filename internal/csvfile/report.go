package csvfile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// MaxProblems caps the problems a Report lists: a file broken on every line
// would otherwise produce an error response larger than the file. The count
// of omitted problems is still reported.
const MaxProblems = 1_000

// ReasonFileInvalid is the apperr reason of a rejected file.
const ReasonFileInvalid = "file_invalid"

// Problem is one thing wrong with one line of a file.
type Problem struct {
	Line   int    // physical 1-based line in the file (the line a record starts on)
	Field  string // column name, or "header", "trailer", "record", "encoding"
	Reason string // stable snake_case code, e.g. "column_count", "required"
	Detail string // human sentence
}

// Report collects the problems of one file. The zero value is ready to use.
// A file is applied only when its report is empty.
type Report struct {
	// Problems holds the first MaxProblems problems in the order added.
	Problems []Problem
	// Omitted counts the problems beyond MaxProblems.
	Omitted int

	lines map[int]struct{}
}

// Add records a problem on line.
func (r *Report) Add(line int, field, reason, detail string) {
	if r.lines == nil {
		r.lines = make(map[int]struct{})
	}
	r.lines[line] = struct{}{}
	if len(r.Problems) >= MaxProblems {
		r.Omitted++
		return
	}
	r.Problems = append(r.Problems, Problem{Line: line, Field: field, Reason: reason, Detail: detail})
}

// Addf records a problem on line with a formatted detail.
func (r *Report) Addf(line int, field, reason, format string, args ...any) {
	r.Add(line, field, reason, fmt.Sprintf(format, args...))
}

// AddFieldErrors records a domain type's Validate problems found on line.
// columns maps a field path (JSON name) to its CSV column; paths it does not
// know are reported as they are. Problems on a column listed in skip are
// dropped: the column already failed to parse, and the domain check of its
// zero value would only repeat that.
func (r *Report) AddFieldErrors(line int, fes []apperr.FieldError, columns map[string]string, skip map[string]bool) {
	for _, fe := range fes {
		col, ok := columns[fe.Field]
		if !ok {
			col = fe.Field
		}
		if skip[col] {
			continue
		}
		r.Add(line, col, fe.Reason, fe.Detail)
	}
}

// Len returns the number of problems, omitted ones included.
func (r *Report) Len() int { return len(r.Problems) + r.Omitted }

// Empty reports whether the file had no problems.
func (r *Report) Empty() bool { return r.Len() == 0 }

// Err returns nil for an empty report, otherwise one *apperr.Error with code
// Invalid, reason "file_invalid" and one FieldError per listed problem,
// sorted by line, with Field "line 12: mcc".
func (r *Report) Err() error {
	if r.Empty() {
		return nil
	}
	ps := slices.Clone(r.Problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	fields := make([]apperr.FieldError, len(ps))
	for i, p := range ps {
		f := "line " + strconv.Itoa(p.Line)
		if p.Field != "" {
			f += ": " + p.Field
		}
		fields[i] = apperr.FieldError{Field: f, Reason: p.Reason, Detail: p.Detail}
	}
	detail := fmt.Sprintf("%d %s in %d %s; nothing was applied",
		r.Len(), plural(r.Len(), "problem", "problems"), len(r.lines), plural(len(r.lines), "line", "lines"))
	if r.Omitted > 0 {
		detail += fmt.Sprintf("; the first %d are listed, %d omitted", len(ps), r.Omitted)
	}
	e := apperr.New(apperr.Invalid, ReasonFileInvalid, "%s", detail)
	e.Fields = fields
	return e
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Int parses s as a base-10 integer in [lo, hi] for column field of line.
// Only an optional '-' and ASCII digits are accepted (no '+', spaces,
// underscores or exponents). Details never echo the value: a shifted
// column may put a card number where a number was expected. On failure it records a problem ("required",
// "number" or "range") and returns false.
func (r *Report) Int(line int, field, s string, lo, hi int64) (int64, bool) {
	if s == "" {
		r.Add(line, field, "required", "a value is required")
		return 0, false
	}
	digits := s
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" || !allDigits(digits) {
		r.Add(line, field, "number", "the value is not an integer")
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		r.Addf(line, field, "range", "the value is outside %d..%d", lo, hi)
		return 0, false
	}
	return n, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

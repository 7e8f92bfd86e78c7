// Package quantify turns verified green actions into grams of CO2e avoided,
// under published, versioned methodologies.
//
// A Methodology is data: its parameters (emission factors, reference
// consumptions, assumptions) carry a unit, an official source and a vintage,
// and its canonical JSON Document is what gets anchored on the ledger by
// SHA-256. Every quantification returns a Record that names the methodology
// version and the factors used, so a grant can be re-derived by anyone holding
// the published document. Results are integer grams, computed with exact
// integer arithmetic and rounded down (never in the consumer's favour beyond
// what the factors support).
//
// Emission factors and published reductions are different quantities: a
// reduction is already (baseline - mode) and is never subtracted from a
// factor. Published reductions appear only as CrossChecks, which no
// computation reads.
//
// The package imports no HTTP and no SQL. Errors are *apperr.Error values:
// Invalid for bad input, NotFound for an unknown methodology version.
package quantify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Categories of green action with a methodology.
const (
	CategoryTransit   = "transit"
	CategoryAppliance = "appliance"
)

// Ref names one version of a methodology.
type Ref struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// String returns "id@version".
func (r Ref) String() string { return r.ID + "@" + r.Version }

// Factor is one parameter of a methodology: an integer Value in the stated
// Unit (milli-units where the official figure has decimals), where it comes
// from and the year (or period) it describes. Assumption marks a value the
// methodology chose rather than took from an official source.
type Factor struct {
	Name       string `json:"name"`
	Unit       string `json:"unit"`
	Value      int64  `json:"value"`
	Source     string `json:"source"`
	Vintage    string `json:"vintage"`
	Assumption bool   `json:"assumption"`
}

// Methodology is one published version of a quantification method for a
// category of action in a jurisdiction.
type Methodology struct {
	Ref
	// Category is CategoryTransit or CategoryAppliance.
	Category string `json:"category"`
	// Jurisdiction is an ISO 3166-1 alpha-2 code, e.g. "CN".
	Jurisdiction string `json:"jurisdiction"`
	Title        string `json:"title"`
	// EffectiveAt is when this version starts to apply to new quantifications.
	EffectiveAt time.Time `json:"effectiveAt"`
	// Formula states the computation in words; the code is its mirror.
	Formula string `json:"formula"`
	// Parameters are the values the computation reads, by Name.
	Parameters []Factor `json:"parameters"`
	// CrossChecks are published figures the parameters were checked against
	// (for example another city's published reductions). Nothing reads them.
	CrossChecks []Factor `json:"crossChecks"`
	// Notes are the assumptions and limits a reader must know.
	Notes []string `json:"notes"`
}

// Document returns the canonical JSON of the methodology: fixed field order,
// times in UTC, empty lists as []. It is what gets anchored by SHA-256.
func (m Methodology) Document() []byte {
	c := m.clone()
	c.EffectiveAt = c.EffectiveAt.UTC()
	return canonical(c)
}

// SHA256 returns the lowercase hex SHA-256 of Document.
func (m Methodology) SHA256() string { return hexSHA256(m.Document()) }

// Param returns the parameter called name.
func (m Methodology) Param(name string) (Factor, bool) {
	i := slices.IndexFunc(m.Parameters, func(f Factor) bool { return f.Name == name })
	if i < 0 {
		return Factor{}, false
	}
	return m.Parameters[i], true
}

// clone returns m with its own slices, never nil, so a caller can neither
// alter a catalogue through a returned value nor see null in a document.
func (m Methodology) clone() Methodology {
	m.Parameters = append([]Factor{}, m.Parameters...)
	m.CrossChecks = append([]Factor{}, m.CrossChecks...)
	m.Notes = append([]string{}, m.Notes...)
	return m
}

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$`)
	jurisPattern   = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Validate checks that m is complete: a well-formed ref, a known category,
// every parameter its computation reads present, sourced and in range.
// It returns an apperr Invalid with field errors.
func (m Methodology) Validate() error {
	var fe []apperr.FieldError
	bad := func(field, reason, format string, args ...any) {
		fe = append(fe, apperr.FieldError{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	if !idPattern.MatchString(m.ID) {
		bad("id", "invalid_id", "id must be 1-64 lowercase letters, digits and dashes")
	}
	if !versionPattern.MatchString(m.Version) {
		bad("version", "invalid_version", "version must be 1-32 letters, digits, dots and dashes")
	}
	if !jurisPattern.MatchString(m.Jurisdiction) {
		bad("jurisdiction", "invalid_jurisdiction", "jurisdiction must be an ISO 3166-1 alpha-2 code")
	}
	if m.Title == "" {
		bad("title", "required", "title is required")
	}
	if m.EffectiveAt.IsZero() {
		bad("effectiveAt", "required", "effectiveAt is required")
	}
	seen := map[string]bool{}
	for i, f := range m.Parameters {
		field := fmt.Sprintf("parameters[%d]", i)
		switch {
		case f.Name == "" || f.Unit == "":
			bad(field, "required", "a parameter needs a name and a unit")
		case seen[f.Name]:
			bad(field, "duplicate", "parameter %q appears twice", f.Name)
		case f.Source == "" || f.Vintage == "":
			bad(field, "unsourced", "parameter %q needs a source and a vintage", f.Name)
		}
		seen[f.Name] = true
	}
	var need []paramSpec
	switch m.Category {
	case CategoryTransit:
		need = transitParams
	case CategoryAppliance:
		need = applianceParams
	default:
		bad("category", "unknown_category", "category must be %q or %q", CategoryTransit, CategoryAppliance)
	}
	for _, s := range need {
		f, ok := m.Param(s.name)
		if !ok {
			bad("parameters", "missing_parameter", "parameter %q is required", s.name)
			continue
		}
		if f.Value < s.min || f.Value > s.max {
			bad("parameters", "parameter_out_of_range", "parameter %q must be %d to %d %s", s.name, s.min, s.max, f.Unit)
		}
	}
	if m.Category == CategoryTransit {
		base, _ := m.Param(paramBaseline)
		for _, mode := range transitModes {
			if f, ok := m.Param(modeParam(mode)); ok && f.Value >= base.Value {
				bad("parameters", "mode_not_below_baseline", "the %s factor must be below the baseline factor", mode)
			}
		}
	}
	if len(fe) > 0 {
		return &apperr.Error{Code: apperr.Invalid, Reason: "invalid_methodology", Detail: fmt.Sprintf("methodology %s is invalid", m.Ref), Fields: fe}
	}
	return nil
}

// paramSpec is a parameter a computation reads and its allowed range: a
// bound on every factor keeps every product within int64 before the checks.
type paramSpec struct {
	name     string
	min, max int64
}

// canonical encodes v, a struct without maps, as compact JSON. encoding/json
// emits struct fields in declaration order, so the bytes depend only on the
// values.
func canonical(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// The encoded types are plain structs of strings, integers, booleans
		// and UTC times: Marshal cannot fail on them.
		panic(fmt.Sprintf("quantify: canonical JSON: %v", err))
	}
	return b
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

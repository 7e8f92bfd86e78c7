package quantify

import (
	"fmt"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Quantity is one derived value of a quantification, e.g. the distance used
// or an annual consumption, in an integer unit.
type Quantity struct {
	Name  string `json:"name"`
	Unit  string `json:"unit"`
	Value int64  `json:"value"`
}

// Record is the canonical account of one quantification: the methodology
// version (and the SHA-256 of its document), the inputs as given, the
// derived quantities, the factors applied, the decisions taken and the
// result in integer grams of CO2e. It is pseudonymous: it names no account,
// card or person, so it can be disclosed and hashed onto the ledger.
type Record struct {
	Methodology       Ref    `json:"methodology"`
	MethodologySHA256 string `json:"methodologySha256"`
	Category          string `json:"category"`
	// Transit or Appliance holds the inputs, whichever the category uses.
	Transit   *TransitInput   `json:"transit,omitempty"`
	Appliance *ApplianceInput `json:"appliance,omitempty"`
	// DistanceSource is DistanceMeasured or DistanceOperatorAverage (transit).
	DistanceSource string     `json:"distanceSource,omitempty"`
	Quantities     []Quantity `json:"quantities"`
	Factors        []Factor   `json:"factors"`
	// Decisions are stable snake_case codes, e.g. "not_better_than_reference".
	Decisions []string `json:"decisions"`
	Grams     int64    `json:"grams"`
}

// Canonical returns the record's canonical JSON: fixed field order, empty
// lists as [].
func (r Record) Canonical() []byte {
	if r.Quantities == nil {
		r.Quantities = []Quantity{}
	}
	if r.Factors == nil {
		r.Factors = []Factor{}
	}
	if r.Decisions == nil {
		r.Decisions = []string{}
	}
	return canonical(r)
}

// Hash returns the lowercase hex SHA-256 of Canonical: the quantification
// hash written with an issuance.
func (r Record) Hash() string { return hexSHA256(r.Canonical()) }

// HashOf is Hash given Canonical's bytes, for a caller that keeps them.
func HashOf(canonical []byte) string { return hexSHA256(canonical) }

// newRecord starts the record of a quantification under m.
func newRecord(m Methodology) Record {
	return Record{
		Methodology:       m.Ref,
		MethodologySHA256: m.SHA256(),
		Category:          m.Category,
		Quantities:        []Quantity{},
		Factors:           []Factor{},
		Decisions:         []string{},
	}
}

// requireCategory checks that m is a valid methodology of category.
func (m Methodology) requireCategory(category string) error {
	if m.Category != category {
		return apperr.New(apperr.Invalid, "wrong_methodology", "methodology %s is for %s, not %s", m.Ref, m.Category, category)
	}
	return m.Validate()
}

// param returns a parameter the methodology is known (validated) to have.
func (m Methodology) param(name string) Factor {
	f, ok := m.Param(name)
	if !ok {
		panic(fmt.Sprintf("quantify: validated methodology %s lacks %q", m.Ref, name))
	}
	return f
}

// invalidInput returns an apperr Invalid for one bad input field.
func invalidInput(field, reason, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	return &apperr.Error{Code: apperr.Invalid, Reason: reason, Detail: detail,
		Fields: []apperr.FieldError{{Field: field, Reason: reason, Detail: detail}}}
}

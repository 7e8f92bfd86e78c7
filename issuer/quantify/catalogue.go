package quantify

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Catalogue holds methodology versions. It is immutable once built and safe
// for concurrent use; the values it returns are copies.
type Catalogue struct {
	// versions sorted by category, jurisdiction, effectiveAt.
	versions []Methodology
}

// NewCatalogue validates ms and returns a catalogue of them. Two versions with
// the same ref, or the same category and jurisdiction taking effect at the
// same instant, are rejected (apperr Invalid): which one applies would be
// ambiguous.
func NewCatalogue(ms ...Methodology) (*Catalogue, error) {
	c := &Catalogue{}
	refs := map[Ref]bool{}
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		if refs[m.Ref] {
			return nil, apperr.New(apperr.Invalid, "duplicate_methodology", "methodology %s appears twice", m.Ref)
		}
		refs[m.Ref] = true
		c.versions = append(c.versions, m.clone())
	}
	slices.SortStableFunc(c.versions, func(a, b Methodology) int {
		if n := strings.Compare(a.Category, b.Category); n != 0 {
			return n
		}
		if n := strings.Compare(a.Jurisdiction, b.Jurisdiction); n != 0 {
			return n
		}
		return a.EffectiveAt.Compare(b.EffectiveAt)
	})
	for i := 1; i < len(c.versions); i++ {
		a, b := c.versions[i-1], c.versions[i]
		if a.Category == b.Category && a.Jurisdiction == b.Jurisdiction && a.EffectiveAt.Equal(b.EffectiveAt) {
			return nil, apperr.New(apperr.Invalid, "duplicate_effective_at", "methodologies %s and %s take effect at the same instant", a.Ref, b.Ref)
		}
	}
	return c, nil
}

// All returns every version, sorted by category, jurisdiction and effective
// time.
func (c *Catalogue) All() []Methodology {
	out := make([]Methodology, len(c.versions))
	for i, m := range c.versions {
		out[i] = m.clone()
	}
	return out
}

// Find returns the version in force for category and jurisdiction at `at`:
// the latest with EffectiveAt <= at. It returns apperr NotFound (reason
// "no_methodology") when none is.
func (c *Catalogue) Find(category, jurisdiction string, at time.Time) (Methodology, error) {
	var found *Methodology
	for i := range c.versions {
		m := &c.versions[i]
		if m.Category == category && m.Jurisdiction == jurisdiction && !m.EffectiveAt.After(at) {
			found = m
		}
	}
	if found == nil {
		return Methodology{}, apperr.New(apperr.NotFound, "no_methodology",
			"no %s methodology for %s is in force at %s", category, jurisdiction, at.UTC().Format(time.RFC3339))
	}
	return found.clone(), nil
}

// Get returns the version named by ref, or apperr NotFound (reason
// "methodology_not_found").
func (c *Catalogue) Get(ref Ref) (Methodology, error) {
	for _, m := range c.versions {
		if m.Ref == ref {
			return m.clone(), nil
		}
	}
	return Methodology{}, apperr.New(apperr.NotFound, "methodology_not_found", "methodology %s is not published", ref)
}

// Published returns the catalogue of the built-in published versions.
func Published() *Catalogue {
	c, err := NewCatalogue(published()...)
	if err != nil {
		// The built-ins are tested to validate; failing here is a build defect.
		panic(fmt.Sprintf("quantify: built-in methodologies: %v", err))
	}
	return c
}

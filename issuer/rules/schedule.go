package rules

import (
	"slices"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Version is a published version a Schedule can order: Profile or RuleSet.
type Version interface {
	Profile | RuleSet
	Effective() time.Time
}

// Schedule is the versions of one profile or rule set, ordered by effective
// time.
type Schedule[T Version] struct {
	versions []T
}

// NewSchedule validates versions and orders them by EffectiveAt. Two versions
// taking effect at the same instant are rejected (apperr Invalid, reason
// "duplicate_effective_at"): which applies would be ambiguous.
func NewSchedule[T Version](versions []T) (*Schedule[T], error) {
	s := &Schedule[T]{versions: slices.Clone(versions)}
	for _, v := range s.versions {
		var err error
		switch v := any(v).(type) {
		case Profile:
			err = v.Validate()
		case RuleSet:
			err = v.Validate()
		}
		if err != nil {
			return nil, err
		}
	}
	sortVersions(s.versions)
	for i := 1; i < len(s.versions); i++ {
		if s.versions[i].Effective().Equal(s.versions[i-1].Effective()) {
			return nil, apperr.New(apperr.Invalid, "duplicate_effective_at", "two versions take effect at %s", s.versions[i].Effective().UTC().Format(time.RFC3339))
		}
	}
	return s, nil
}

// InForce returns the version in force at `at`: the latest with EffectiveAt
// <= at; ok is false when none is.
func (s *Schedule[T]) InForce(at time.Time) (v T, ok bool) {
	for _, x := range s.versions {
		if !x.Effective().After(at) {
			v, ok = x, true
		}
	}
	return v, ok
}

// Upcoming returns the versions published but not yet in force at `at`,
// earliest first.
func (s *Schedule[T]) Upcoming(at time.Time) []T {
	var out []T
	for _, x := range s.versions {
		if x.Effective().After(at) {
			out = append(out, x)
		}
	}
	return out
}

// All returns every version, earliest first.
func (s *Schedule[T]) All() []T { return slices.Clone(s.versions) }

// sortVersions orders by effective time; ties (which NewSchedule rejects, and
// Disclose tolerates) by version string, so the order never depends on input
// order.
func sortVersions[T Version](vs []T) {
	slices.SortStableFunc(vs, func(a, b T) int {
		if n := a.Effective().Compare(b.Effective()); n != 0 {
			return n
		}
		return strings.Compare(versionOf(a), versionOf(b))
	})
}

func versionOf[T Version](v T) string {
	switch v := any(v).(type) {
	case Profile:
		return v.ID + "@" + v.Version
	case RuleSet:
		return v.ID + "@" + v.Version
	}
	return ""
}

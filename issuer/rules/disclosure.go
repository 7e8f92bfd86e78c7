package rules

import (
	"slices"
	"time"

	"github.com/greenpoints/greenpoints/issuer/quantify"
)

// Disclosure is what GET /v1/disclosure returns: the earning, accumulation,
// expiry and redemption terms in force and those published to come, and the
// methodologies behind the grams.
type Disclosure struct {
	At time.Time `json:"at"`
	// Current is nil when no profile or rule set is in force.
	Current  *Terms  `json:"current"`
	Upcoming []Terms `json:"upcoming"`
	// Methodologies are those in force at At; UpcomingMethodologies those
	// published to take effect later.
	Methodologies         []MethodologyTerms `json:"methodologies"`
	UpcomingMethodologies []MethodologyTerms `json:"upcomingMethodologies"`
}

// VersionTerms names a published version and the hash anchored for it.
type VersionTerms struct {
	ID          string    `json:"id"`
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	EffectiveAt time.Time `json:"effectiveAt"`
	PublishedAt time.Time `json:"publishedAt"`
}

// Terms are the conditions from EffectiveAt on: one profile version and one
// rule set version.
type Terms struct {
	EffectiveAt  time.Time    `json:"effectiveAt"`
	Profile      VersionTerms `json:"profile"`
	Rules        VersionTerms `json:"rules"`
	Earning      Earning      `json:"earning"`
	Accumulation Accumulation `json:"accumulation"`
	Expiry       Expiry       `json:"expiry"`
	Redemption   Redemption   `json:"redemption"`
	Changes      Changes      `json:"changes"`
}

// Earning says what earns points and how many.
type Earning struct {
	// Rates are the points per kg CO2e of each accepted category.
	Rates []CategoryRate `json:"rates"`
	// Campaigns are those not yet over.
	Campaigns []Campaign `json:"campaigns"`
	// HoldPeriod is the wait after a card transaction clears (refund
	// window), as a Go duration string; HoldPeriodHours the same in hours.
	HoldPeriod      string `json:"holdPeriod"`
	HoldPeriodHours int64  `json:"holdPeriodHours"`
	// Rounding: points are rounded down.
	Rounding string `json:"rounding"`
}

// Accumulation says how earnings are limited and grouped.
type Accumulation struct {
	Timezone string `json:"timezone"`
	// Caps per person per category per local day, month or year.
	Caps []Cap `json:"caps"`
	// TransitAggregation: transit trips of one local day make one grant.
	TransitAggregation string `json:"transitAggregation"`
}

// Expiry says when points expire and how consumers are told.
type Expiry struct {
	ValidityDays    int    `json:"validityDays"`
	MaxValidityDays int    `json:"maxValidityDays"`
	Timezone        string `json:"timezone"`
	Rule            string `json:"rule"`
	// ReminderOffsetsDays: reminders are sent this many days before expiry.
	ReminderOffsetsDays []int `json:"reminderOffsetsDays"`
	// GraceDays extend points whose reminder could not be delivered.
	GraceDays int `json:"graceDays"`
}

// Redemption says how points can be used.
type Redemption struct {
	TransfersAllowed          bool   `json:"transfersAllowed"`
	TransferMaxPoints         int64  `json:"transferMaxPoints"`         // 0: no cap
	TransferMaxPointsPerMonth int64  `json:"transferMaxPointsPerMonth"` // 0: no cap
	Donations                 bool   `json:"donations"`
	PointValueFen             int64  `json:"pointValueFen"`
	SpendOrder                string `json:"spendOrder"`
}

// Changes says how terms change.
type Changes struct {
	NoticeDays int    `json:"noticeDays"`
	Rule       string `json:"rule"`
}

// MethodologyTerms discloses one methodology version.
type MethodologyTerms struct {
	Ref          quantify.Ref      `json:"ref"`
	Category     string            `json:"category"`
	Jurisdiction string            `json:"jurisdiction"`
	Title        string            `json:"title"`
	SHA256       string            `json:"sha256"`
	EffectiveAt  time.Time         `json:"effectiveAt"`
	Formula      string            `json:"formula"`
	Parameters   []quantify.Factor `json:"parameters"`
	Notes        []string          `json:"notes"`
}

// Disclose builds the disclosure at `at` from the versions of the issuer's
// profile and rule set (pass one profile's and one rule set's versions: they
// are read as one schedule each) and the published methodologies. Terms
// exist from each instant where both a profile and a rule set are in force;
// Upcoming has one entry per later change of either.
func Disclose(profiles []Profile, rules []RuleSet, meths []quantify.Methodology, at time.Time) Disclosure {
	ps, rs := slices.Clone(profiles), slices.Clone(rules)
	sortVersions(ps)
	sortVersions(rs)
	d := Disclosure{At: at.UTC(), Upcoming: []Terms{}, Methodologies: []MethodologyTerms{}, UpcomingMethodologies: []MethodologyTerms{}}
	if t, ok := termsAt(ps, rs, at); ok {
		d.Current = &t
	}
	var changes []time.Time
	for _, p := range ps {
		changes = append(changes, p.EffectiveAt)
	}
	for _, r := range rs {
		changes = append(changes, r.EffectiveAt)
	}
	slices.SortFunc(changes, time.Time.Compare)
	changes = slices.CompactFunc(changes, time.Time.Equal)
	for _, c := range changes {
		if !c.After(at) {
			continue
		}
		if t, ok := termsAt(ps, rs, c); ok {
			d.Upcoming = append(d.Upcoming, t)
		}
	}
	for _, m := range inForceMethodologies(meths, at) {
		d.Methodologies = append(d.Methodologies, methodologyTerms(m))
	}
	for _, m := range meths {
		if m.EffectiveAt.After(at) {
			d.UpcomingMethodologies = append(d.UpcomingMethodologies, methodologyTerms(m))
		}
	}
	slices.SortStableFunc(d.UpcomingMethodologies, func(a, b MethodologyTerms) int { return a.EffectiveAt.Compare(b.EffectiveAt) })
	return d
}

// latest returns the last of sorted versions in force at `at`.
func latest[T Version](vs []T, at time.Time) (v T, ok bool) {
	for _, x := range vs {
		if !x.Effective().After(at) {
			v, ok = x, true
		}
	}
	return v, ok
}

// termsAt returns the terms in force at `at`.
func termsAt(ps []Profile, rs []RuleSet, at time.Time) (Terms, bool) {
	p, ok1 := latest(ps, at)
	r, ok2 := latest(rs, at)
	if !ok1 || !ok2 {
		return Terms{}, false
	}
	t := Terms{
		EffectiveAt: maxTime(p.EffectiveAt, r.EffectiveAt).UTC(),
		Profile:     VersionTerms{p.ID, p.Version, p.SHA256(), p.EffectiveAt.UTC(), p.PublishedAt.UTC()},
		Rules:       VersionTerms{r.ID, r.Version, r.SHA256(), r.EffectiveAt.UTC(), r.PublishedAt.UTC()},
		Earning: Earning{
			Rates: []CategoryRate{}, Campaigns: []Campaign{},
			HoldPeriod: p.HoldPeriod.String(), HoldPeriodHours: int64(p.HoldPeriod / time.Hour),
			Rounding: "points = floor(grams x pointsPerKg x campaign multiplier / 1 000 000)",
		},
		Accumulation: Accumulation{
			Timezone: p.Timezone, Caps: append([]Cap{}, p.Caps...),
			TransitAggregation: "transit trips of one local day in the profile's time zone make one grant",
		},
		Expiry: Expiry{
			ValidityDays: p.ValidityDays, MaxValidityDays: p.MaxValidityDays, Timezone: p.Timezone,
			Rule:                "points expire at the end of the local day validityDays after issuance, never more than maxValidityDays x 24 h after issuance",
			ReminderOffsetsDays: append([]int{}, p.ReminderOffsetsDays...), GraceDays: p.GraceDays,
		},
		Redemption: Redemption{
			TransfersAllowed: p.TransfersAllowed, TransferMaxPoints: p.TransferMaxPoints,
			TransferMaxPointsPerMonth: p.TransferMaxPointsPerMonth,
			Donations:                 true, PointValueFen: p.PointValueFen, SpendOrder: "earliest_expiry_first",
		},
		Changes: Changes{
			NoticeDays: p.NoticeDays,
			Rule:       "a change that reduces consumers' rights is published at least noticeDays before it takes effect and applies only to later issuances",
		},
	}
	for _, c := range r.PointsPerKg {
		if slices.Contains(p.Categories, c.Category) {
			t.Earning.Rates = append(t.Earning.Rates, c)
		}
	}
	for _, c := range r.Campaigns {
		if c.To.After(at) && slices.Contains(p.Categories, c.Category) {
			c.From, c.To = c.From.UTC(), c.To.UTC()
			t.Earning.Campaigns = append(t.Earning.Campaigns, c)
		}
	}
	return t, true
}

// inForceMethodologies returns, per category and jurisdiction, the version
// in force at `at`, ordered by category then jurisdiction.
func inForceMethodologies(meths []quantify.Methodology, at time.Time) []quantify.Methodology {
	var out []quantify.Methodology
	for _, m := range meths {
		if m.EffectiveAt.After(at) {
			continue
		}
		i := slices.IndexFunc(out, func(o quantify.Methodology) bool {
			return o.Category == m.Category && o.Jurisdiction == m.Jurisdiction
		})
		switch {
		case i < 0:
			out = append(out, m)
		case m.EffectiveAt.After(out[i].EffectiveAt):
			out[i] = m
		}
	}
	slices.SortFunc(out, func(a, b quantify.Methodology) int {
		if a.Category != b.Category {
			if a.Category < b.Category {
				return -1
			}
			return 1
		}
		if a.Jurisdiction < b.Jurisdiction {
			return -1
		}
		if a.Jurisdiction > b.Jurisdiction {
			return 1
		}
		return 0
	})
	return out
}

func methodologyTerms(m quantify.Methodology) MethodologyTerms {
	return MethodologyTerms{
		Ref: m.Ref, Category: m.Category, Jurisdiction: m.Jurisdiction, Title: m.Title,
		SHA256: m.SHA256(), EffectiveAt: m.EffectiveAt.UTC(), Formula: m.Formula,
		Parameters: append([]quantify.Factor{}, m.Parameters...), Notes: append([]string{}, m.Notes...),
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

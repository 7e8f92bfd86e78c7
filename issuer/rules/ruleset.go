package rules

import (
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Bounds on rule sets.
const (
	MaxPointsPerKg        = 100_000
	MaxCampaigns          = 64
	MinMultiplierPermille = 1000                  // a campaign never lowers points
	MaxMultiplierPermille = 10000                 // x10
	maxGrams              = 1_000_000_000_000_000 // 10^15 g = 10^9 t: beyond any grant; with the rate and multiplier bounds the result stays below 10^18
)

// CategoryRate is the points earned per kg CO2e in a category.
type CategoryRate struct {
	Category    string `json:"category"`
	PointsPerKg int64  `json:"pointsPerKg"`
}

// Campaign multiplies the points of a category during [From, To).
type Campaign struct {
	ID       string    `json:"id"`
	Category string    `json:"category"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// MultiplierPermille: 1500 = x1.5.
	MultiplierPermille int64 `json:"multiplierPermille"`
}

// RuleSet is one version of the earning rules.
type RuleSet struct {
	ID          string         `json:"id"`
	Version     string         `json:"version"`
	EffectiveAt time.Time      `json:"effectiveAt"`
	PublishedAt time.Time      `json:"publishedAt"`
	PointsPerKg []CategoryRate `json:"pointsPerKg"`
	Campaigns   []Campaign     `json:"campaigns"`
}

// Effective returns EffectiveAt (for Schedule).
func (r RuleSet) Effective() time.Time { return r.EffectiveAt }

// Document returns the canonical JSON of the rule set (times in UTC, lists
// never null): what gets anchored by SHA-256.
func (r RuleSet) Document() []byte {
	c := r.clone()
	c.EffectiveAt, c.PublishedAt = c.EffectiveAt.UTC(), c.PublishedAt.UTC()
	for i := range c.Campaigns {
		c.Campaigns[i].From, c.Campaigns[i].To = c.Campaigns[i].From.UTC(), c.Campaigns[i].To.UTC()
	}
	return canonical(c)
}

// SHA256 returns the lowercase hex SHA-256 of Document.
func (r RuleSet) SHA256() string { return hexSHA256(r.Document()) }

func (r RuleSet) clone() RuleSet {
	r.PointsPerKg = append([]CategoryRate{}, r.PointsPerKg...)
	r.Campaigns = append([]Campaign{}, r.Campaigns...)
	return r
}

// Rate returns the points per kg of category.
func (r RuleSet) Rate(category string) (int64, bool) {
	i := slices.IndexFunc(r.PointsPerKg, func(c CategoryRate) bool { return c.Category == category })
	if i < 0 {
		return 0, false
	}
	return r.PointsPerKg[i].PointsPerKg, true
}

// Validate checks every field; it returns apperr Invalid (reason
// "invalid_rule_set") listing each bad field. Campaigns of one category must
// not overlap, so at most one applies at any instant.
func (r RuleSet) Validate() error {
	var v validator
	v.ref(r.ID, r.Version, r.EffectiveAt, r.PublishedAt)
	if len(r.PointsPerKg) == 0 {
		v.bad("pointsPerKg", "required", "at least one category rate is required")
	}
	for i, c := range r.PointsPerKg {
		field := fmt.Sprintf("pointsPerKg[%d]", i)
		switch {
		case !slices.Contains(knownCategories, c.Category):
			v.bad(field, "unknown_category", "unknown category %q", truncate(c.Category))
		case slices.IndexFunc(r.PointsPerKg, func(d CategoryRate) bool { return d.Category == c.Category }) != i:
			v.bad(field, "duplicate", "category %q appears twice", c.Category)
		case c.PointsPerKg < 1 || c.PointsPerKg > MaxPointsPerKg:
			v.bad(field, "out_of_range", "pointsPerKg must be 1 to %d", MaxPointsPerKg)
		}
	}
	if len(r.Campaigns) > MaxCampaigns {
		v.bad("campaigns", "too_many", "at most %d campaigns", MaxCampaigns)
	}
	for i, c := range r.Campaigns {
		field := fmt.Sprintf("campaigns[%d]", i)
		switch {
		case !idPattern.MatchString(c.ID):
			v.bad(field, "invalid_id", "campaign id must be 1-64 lowercase letters, digits and dashes")
		case slices.IndexFunc(r.Campaigns, func(d Campaign) bool { return d.ID == c.ID }) != i:
			v.bad(field, "duplicate", "campaign %q appears twice", c.ID)
		case slices.IndexFunc(r.PointsPerKg, func(d CategoryRate) bool { return d.Category == c.Category }) < 0:
			v.bad(field, "unknown_category", "campaign category %q has no rate", truncate(c.Category))
		case c.From.IsZero() || !c.From.Before(c.To):
			v.bad(field, "invalid_window", "a campaign needs from < to")
		case c.MultiplierPermille < MinMultiplierPermille || c.MultiplierPermille > MaxMultiplierPermille:
			v.bad(field, "out_of_range", "multiplierPermille must be %d to %d", MinMultiplierPermille, MaxMultiplierPermille)
		default:
			for _, d := range r.Campaigns[:i] {
				if d.Category == c.Category && d.From.Before(c.To) && c.From.Before(d.To) {
					v.bad(field, "overlapping_campaigns", "campaigns %q and %q overlap", d.ID, c.ID)
				}
			}
		}
	}
	return v.err("invalid_rule_set", "rule set %s@%s is invalid", r.ID, r.Version)
}

// Campaign returns the campaign of category running at `at` (From <= at <
// To), if any.
func (r RuleSet) Campaign(category string, at time.Time) (Campaign, bool) {
	for _, c := range r.Campaigns {
		if c.Category == category && !at.Before(c.From) && at.Before(c.To) {
			return c, true
		}
	}
	return Campaign{}, false
}

// Points converts grams of CO2e avoided in category at `at` into points:
//
//	points = floor(grams x pointsPerKg x multiplierPermille / 1 000 000)
//
// with multiplierPermille 1000 outside campaigns, computed exactly. Decisions
// name the campaign applied ("campaign:<id>") and say "below_one_point" when
// the result is 0, which is allowed.
//
// Errors (apperr Invalid): "grams_out_of_range" (negative or absurd grams),
// "category_not_accepted", "rules_not_in_force" (at before EffectiveAt),
// "overflow".
func (r RuleSet) Points(category string, grams int64, at time.Time) (points int64, decisions []string, err error) {
	if grams < 0 || grams > maxGrams {
		return 0, nil, errInvalid("grams_out_of_range", "grams", "grams must be 0 to %d", int64(maxGrams))
	}
	if at.Before(r.EffectiveAt) {
		return 0, nil, errInvalid("rules_not_in_force", "at", "rule set %s@%s takes effect at %s", r.ID, r.Version, r.EffectiveAt.UTC().Format(time.RFC3339))
	}
	rate, ok := r.Rate(category)
	if !ok {
		return 0, nil, errInvalid("category_not_accepted", "category", "rule set %s@%s has no rate for %q", r.ID, r.Version, truncate(category))
	}
	mult := int64(1000)
	decisions = []string{}
	if c, ok := r.Campaign(category, at); ok {
		mult = c.MultiplierPermille
		decisions = append(decisions, "campaign:"+c.ID)
	}
	n := new(big.Int).Mul(big.NewInt(grams), big.NewInt(rate))
	n.Mul(n, big.NewInt(mult))
	n.Quo(n, big.NewInt(1_000_000))
	if !n.IsInt64() {
		return 0, nil, apperr.New(apperr.Invalid, "overflow", "the points overflow a 64-bit integer")
	}
	points = n.Int64()
	if points == 0 {
		decisions = append(decisions, "below_one_point")
	}
	return points, decisions, nil
}

// Package rules holds the issuer's policy as data: compliance profiles (time
// zone, hold period, validity, transfers, notice, reminders, caps) and rule
// sets (points per kg CO2e per category, campaigns), each versioned and
// published with an effective time, and the public disclosure built from
// them.
//
// Every version has a canonical JSON Document whose SHA-256 is anchored on
// the ledger. Points are integers computed with exact arithmetic and rounded
// down. Local days, months and years are those of the profile's IANA time
// zone, so caps and expiry follow the consumer's calendar, not UTC.
//
// The package imports no HTTP and no SQL. Errors are *apperr.Error values
// with code Invalid.
package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
	_ "time/tzdata" // every node resolves zone names alike, whatever its OS ships

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Categories of green action.
const (
	CategoryTransit   = "transit"
	CategoryAppliance = "appliance"
)

// knownCategories are the categories with a methodology.
var knownCategories = []string{CategoryTransit, CategoryAppliance}

// Cap periods, in the profile's time zone.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
	PeriodYear  = "year"
)

var periods = []string{PeriodDay, PeriodMonth, PeriodYear}

// Bounds: a limit on everything.
const (
	// MaxValidityDaysLimit bounds MaxValidityDays; the chaincode enforces the
	// same limit (100 years).
	MaxValidityDaysLimit = 36525
	MaxHoldPeriod        = 90 * 24 * time.Hour
	MaxNoticeDays        = 3650
	MaxGraceDays         = 365
	MaxReminders         = 10
	MaxCaps              = 32
	MaxCapPoints         = 1_000_000_000
	MaxPointValueFen     = 10_000
)

const day = 24 * time.Hour

// Profile is one version of a compliance profile.
type Profile struct {
	ID           string    `json:"id"`
	Version      string    `json:"version"`
	EffectiveAt  time.Time `json:"effectiveAt"`
	PublishedAt  time.Time `json:"publishedAt"`
	Jurisdiction string    `json:"jurisdiction"`
	// Timezone is an IANA name, e.g. "Asia/Shanghai": it decides local days
	// (expiry, transit aggregation) and cap periods.
	Timezone string `json:"timezone"`
	// HoldPeriod is how long a cleared card transaction waits before
	// issuance (the refund window). Encoded in JSON as a Go duration string,
	// e.g. "72h0m0s".
	HoldPeriod time.Duration `json:"-"`
	// ValidityDays: points expire at the end of the local day ValidityDays
	// after issuance.
	ValidityDays int `json:"validityDays"`
	// MaxValidityDays bounds expiresAt - issuedAt in days of 24 hours; the
	// ledger enforces it.
	MaxValidityDays  int  `json:"maxValidityDays"`
	TransfersAllowed bool `json:"transfersAllowed"`
	// TransferMaxPoints caps one transfer and TransferMaxPointsPerMonth an
	// account's transfers per local month; 0 means no cap (as on the ledger).
	TransferMaxPoints         int64 `json:"transferMaxPoints"`
	TransferMaxPointsPerMonth int64 `json:"transferMaxPointsPerMonth"`
	// NoticeDays: a change reducing consumers' rights is published at least
	// this long before it takes effect.
	NoticeDays int `json:"noticeDays"`
	// ReminderOffsetsDays are the days before expiry a reminder is sent,
	// largest first, e.g. [30, 7, 1].
	ReminderOffsetsDays []int `json:"reminderOffsetsDays"`
	// GraceDays extend the validity of points whose reminder could not be
	// delivered.
	GraceDays int `json:"graceDays"`
	// Categories are the accepted categories.
	Categories []string `json:"categories"`
	// Caps limit points per person per category per local period.
	Caps []Cap `json:"caps"`
	// PointValueFen is the published value of a donated point, in fen.
	PointValueFen int64 `json:"pointValueFen"`
}

// Cap limits the points one person earns in a category per period.
type Cap struct {
	Category string `json:"category"`
	// Period is PeriodDay, PeriodMonth or PeriodYear in the profile's zone.
	Period    string `json:"period"`
	MaxPoints int64  `json:"maxPoints"`
}

// profileJSON is Profile with the hold period as a duration string; the
// embedded alias keeps one field list.
type profileJSON struct {
	profileAlias
	HoldPeriod string `json:"holdPeriod"`
}

type profileAlias Profile

// MarshalJSON encodes p with HoldPeriod as a duration string.
func (p Profile) MarshalJSON() ([]byte, error) {
	return json.Marshal(profileJSON{profileAlias(p), p.HoldPeriod.String()})
}

// UnmarshalJSON decodes p, HoldPeriod from a duration string.
func (p *Profile) UnmarshalJSON(b []byte) error {
	var w profileJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt policy field must not pass silently
	if err := dec.Decode(&w); err != nil {
		return err
	}
	d, err := time.ParseDuration(w.HoldPeriod)
	if err != nil {
		return fmt.Errorf("holdPeriod: %w", err)
	}
	*p = Profile(w.profileAlias)
	p.HoldPeriod = d
	return nil
}

// Document returns the canonical JSON of the profile (times in UTC, lists
// never null): what gets anchored by SHA-256.
func (p Profile) Document() []byte {
	c := p.clone()
	c.EffectiveAt, c.PublishedAt = c.EffectiveAt.UTC(), c.PublishedAt.UTC()
	return canonical(c)
}

// SHA256 returns the lowercase hex SHA-256 of Document.
func (p Profile) SHA256() string { return hexSHA256(p.Document()) }

// Effective returns EffectiveAt (for Schedule).
func (p Profile) Effective() time.Time { return p.EffectiveAt }

func (p Profile) clone() Profile {
	p.ReminderOffsetsDays = append([]int{}, p.ReminderOffsetsDays...)
	p.Categories = append([]string{}, p.Categories...)
	p.Caps = append([]Cap{}, p.Caps...)
	return p
}

// Validate checks every field; it returns apperr Invalid (reason
// "invalid_profile") listing each bad field.
func (p Profile) Validate() error {
	var v validator
	v.ref(p.ID, p.Version, p.EffectiveAt, p.PublishedAt)
	if !jurisPattern.MatchString(p.Jurisdiction) {
		v.bad("jurisdiction", "invalid_jurisdiction", "jurisdiction must be an ISO 3166-1 alpha-2 code")
	}
	if _, err := loadZone(p.Timezone); err != nil {
		v.bad("timezone", "invalid_timezone", "%v", err)
	}
	if p.HoldPeriod < 0 || p.HoldPeriod > MaxHoldPeriod {
		v.bad("holdPeriod", "out_of_range", "holdPeriod must be 0 to %s", MaxHoldPeriod)
	}
	if p.MaxValidityDays < 1 || p.MaxValidityDays > MaxValidityDaysLimit {
		v.bad("maxValidityDays", "out_of_range", "maxValidityDays must be 1 to %d", MaxValidityDaysLimit)
	}
	if p.ValidityDays < 1 || p.ValidityDays > p.MaxValidityDays {
		v.bad("validityDays", "validity_exceeds_max", "validityDays must be 1 to maxValidityDays (%d)", p.MaxValidityDays)
	}
	switch {
	case p.TransferMaxPoints < 0 || p.TransferMaxPointsPerMonth < 0 || p.TransferMaxPoints > MaxCapPoints || p.TransferMaxPointsPerMonth > MaxCapPoints:
		v.bad("transferMaxPoints", "out_of_range", "transfer caps must be 0 (no cap) to %d", MaxCapPoints)
	case !p.TransfersAllowed && (p.TransferMaxPoints != 0 || p.TransferMaxPointsPerMonth != 0):
		v.bad("transferMaxPoints", "transfers_not_allowed", "transfer caps must be 0 when transfers are not allowed")
	}
	if p.NoticeDays < 0 || p.NoticeDays > MaxNoticeDays {
		v.bad("noticeDays", "out_of_range", "noticeDays must be 0 to %d", MaxNoticeDays)
	}
	if len(p.ReminderOffsetsDays) > MaxReminders {
		v.bad("reminderOffsetsDays", "too_many", "at most %d reminders", MaxReminders)
	}
	for i, d := range p.ReminderOffsetsDays {
		if d < 1 || d > p.ValidityDays || (i > 0 && d >= p.ReminderOffsetsDays[i-1]) {
			v.bad(fmt.Sprintf("reminderOffsetsDays[%d]", i), "invalid_reminder",
				"reminder offsets must be 1 to validityDays, strictly decreasing")
		}
	}
	if p.GraceDays < 0 || p.GraceDays > MaxGraceDays {
		v.bad("graceDays", "out_of_range", "graceDays must be 0 to %d", MaxGraceDays)
	}
	if len(p.Categories) == 0 {
		v.bad("categories", "required", "at least one category is required")
	}
	for i, c := range p.Categories {
		if !slices.Contains(knownCategories, c) {
			v.bad(fmt.Sprintf("categories[%d]", i), "unknown_category", "unknown category %q", truncate(c))
		} else if slices.Index(p.Categories, c) != i {
			v.bad(fmt.Sprintf("categories[%d]", i), "duplicate", "category %q appears twice", c)
		}
	}
	if len(p.Caps) > MaxCaps {
		v.bad("caps", "too_many", "at most %d caps", MaxCaps)
	}
	for i, c := range p.Caps {
		field := fmt.Sprintf("caps[%d]", i)
		switch {
		case !slices.Contains(p.Categories, c.Category):
			v.bad(field, "unknown_category", "cap category %q is not an accepted category", truncate(c.Category))
		case !slices.Contains(periods, c.Period):
			v.bad(field, "unknown_period", "cap period must be day, month or year")
		case c.MaxPoints < 1 || c.MaxPoints > MaxCapPoints:
			v.bad(field, "out_of_range", "maxPoints must be 1 to %d", MaxCapPoints)
		case slices.IndexFunc(p.Caps, func(d Cap) bool { return d.Category == c.Category && d.Period == c.Period }) != i:
			v.bad(field, "duplicate_cap", "a %s cap for %s appears twice", c.Period, c.Category)
		}
	}
	if p.PointValueFen < 0 || p.PointValueFen > MaxPointValueFen {
		v.bad("pointValueFen", "out_of_range", "pointValueFen must be 0 to %d", MaxPointValueFen)
	}
	return v.err("invalid_profile", "profile %s@%s is invalid", p.ID, p.Version)
}

// Cap returns the profile's cap for category and period.
func (p Profile) Cap(category, period string) (Cap, bool) {
	i := slices.IndexFunc(p.Caps, func(c Cap) bool { return c.Category == category && c.Period == period })
	if i < 0 {
		return Cap{}, false
	}
	return p.Caps[i], true
}

// ApplyCap grants what fits of points under c given usedInWindow points
// already granted in the cap's current window: granted = min(points,
// max(0, c.MaxPoints - usedInWindow)); capped reports granted < points.
// Negative arguments count as 0.
func ApplyCap(c Cap, usedInWindow, points int64) (granted int64, capped bool) {
	usedInWindow, points = max(usedInWindow, 0), max(points, 0)
	room := max(c.MaxPoints-usedInWindow, 0) // both non-negative: no overflow
	granted = min(points, room)
	return granted, granted < points
}

// location returns the profile's zone. Profiles come through Validate; an
// unknown zone here is a programming error.
func (p Profile) location() *time.Location {
	loc, err := loadZone(p.Timezone)
	if err != nil {
		panic(fmt.Sprintf("rules: profile %s@%s used without Validate: %v", p.ID, p.Version, err))
	}
	return loc
}

// ExpiresAt returns when points issued at issuedAt expire: the end of the
// local day (the next local midnight) ValidityDays after the local day of
// issuance, in the profile's zone, but never later than issuedAt +
// MaxValidityDays x 24 h (the bound the ledger enforces). Local days are
// calendar days, so a DST change makes a validity period an hour shorter or
// longer in absolute time, never a day. p must be valid.
func (p Profile) ExpiresAt(issuedAt time.Time) time.Time {
	loc := p.location()
	y, m, d := issuedAt.In(loc).Date()
	end := startOfDay(y, m, d+p.ValidityDays+1, loc)
	if limit := issuedAt.Add(time.Duration(p.MaxValidityDays) * day); end.After(limit) {
		return limit
	}
	return end
}

// LocalDay returns t's date in the profile's zone as "2006-01-02": the key
// transit trips are aggregated by. p must be valid.
func (p Profile) LocalDay(t time.Time) string { return t.In(p.location()).Format(time.DateOnly) }

// PeriodWindow returns the cap window [start, end) of period containing at,
// bounded by local midnights in the profile's zone. An unknown period gives
// zero times. p must be valid.
func (p Profile) PeriodWindow(period string, at time.Time) (start, end time.Time) {
	loc := p.location()
	y, m, d := at.In(loc).Date()
	switch period {
	case PeriodDay:
		return startOfDay(y, m, d, loc), startOfDay(y, m, d+1, loc)
	case PeriodMonth:
		return startOfDay(y, m, 1, loc), startOfDay(y, m+1, 1, loc)
	case PeriodYear:
		return startOfDay(y, 1, 1, loc), startOfDay(y+1, 1, 1, loc)
	}
	return time.Time{}, time.Time{}
}

// startOfDay returns the first instant of the local date (y, m, d) in loc,
// normalising d and m as time.Date does. Where a DST change skips midnight
// (clocks jump from 00:00 to 01:00), the day starts at the transition.
func startOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	// Noon always exists: normalise the date there first.
	y, m, d = time.Date(y, m, d, 12, 0, 0, 0, loc).Date()
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if ty, tm, td := t.Date(); ty != y || tm != m || td != d {
		// time.Date fell back into the previous day: the zone period that
		// contains t ends at the transition, the day's first instant.
		_, end := t.ZoneBounds()
		return end
	}
	return t
}

// zones caches loaded time zones by name.
var zones sync.Map // string -> *time.Location

// loadZone loads an IANA zone; "" and "Local" are refused (they depend on
// the machine).
func loadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "" || name == "Local" || len(name) > 64 {
		return nil, fmt.Errorf("the time zone must be an IANA name such as Asia/Shanghai")
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	zones.Store(name, l)
	return l, nil
}

// errInvalid returns an apperr Invalid with one field error.
func errInvalid(reason, field, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	return &apperr.Error{Code: apperr.Invalid, Reason: reason, Detail: detail,
		Fields: []apperr.FieldError{{Field: field, Reason: reason, Detail: detail}}}
}

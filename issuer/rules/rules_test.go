package rules

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/quantify"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func defaultProfile(t *testing.T) Profile {
	t.Helper()
	ps, _ := Published()
	for _, p := range ps {
		if p.ID == "cn-default" {
			return p.clone()
		}
	}
	t.Fatal("cn-default not published")
	return Profile{}
}

func defaultRules(t *testing.T) RuleSet {
	t.Helper()
	_, rs := Published()
	return rs[0].clone()
}

var sh = time.FixedZone("CST", 8*3600)

func TestPoints(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, sh)
	to := time.Date(2026, 5, 8, 0, 0, 0, 0, sh)
	r.Campaigns = []Campaign{{ID: "may-week", Category: CategoryTransit, From: from, To: to, MultiplierPermille: 1500}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	before := from.Add(-time.Nanosecond)
	tests := []struct {
		name     string
		category string
		grams    int64
		at       time.Time
		want     int64
		wantDec  []string
	}{
		{"10 km metro", CategoryTransit, 2110, before, 21, []string{}}, // 2.11 kg x 10
		{"999 g transit", CategoryTransit, 999, before, 9, []string{}}, // 9.99 -> 9
		{"99 g transit", CategoryTransit, 99, before, 0, []string{"below_one_point"}},
		{"0 g", CategoryTransit, 0, before, 0, []string{"below_one_point"}},
		{"fridge", CategoryAppliance, 587_577, before, 587, []string{}}, // 587.577 kg x 1
		{"appliance below 1 kg", CategoryAppliance, 999, before, 0, []string{"below_one_point"}},
		{"campaign starts (inclusive)", CategoryTransit, 2110, from, 31, []string{"campaign:may-week"}}, // 31.65
		{"campaign last instant", CategoryTransit, 2110, to.Add(-time.Nanosecond), 31, []string{"campaign:may-week"}},
		{"campaign ended (exclusive)", CategoryTransit, 2110, to, 21, []string{}},
		{"campaign is per category", CategoryAppliance, 2110, from, 2, []string{}},
		{"campaign below one point", CategoryTransit, 66, from, 0, []string{"campaign:may-week", "below_one_point"}}, // 0.99
		{"campaign exactly one point", CategoryTransit, 67, from, 1, []string{"campaign:may-week"}},                  // 1.005
		{"largest grams", CategoryAppliance, maxGrams, before, maxGrams / 1000, []string{}},
		{"largest grams, largest rate and campaign", CategoryTransit, maxGrams, from, maxGrams * 10 * 15 / 10 / 1000, []string{"campaign:may-week"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, dec, err := r.Points(tc.category, tc.grams, tc.at)
			if err != nil {
				t.Fatalf("Points: %v", err)
			}
			if got != tc.want {
				t.Errorf("Points(%s, %d) = %d, want %d", tc.category, tc.grams, got, tc.want)
			}
			if diff := cmp.Diff(tc.wantDec, dec); diff != "" {
				t.Errorf("decisions mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPointsRejects(t *testing.T) {
	t.Parallel()
	r := defaultRules(t)
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	big := r.clone()
	// Within the validated bounds (1e15 g x 1e5 x 1e4 / 1e6 = 1e18) no result
	// overflows; an unvalidated rate can.
	big.PointsPerKg = []CategoryRate{{CategoryTransit, math.MaxInt64 / 1000}}
	big.Campaigns = []Campaign{{ID: "x10", Category: CategoryTransit, From: at.Add(-time.Hour), To: at.Add(time.Hour), MultiplierPermille: MaxMultiplierPermille}}
	tests := []struct {
		name     string
		r        RuleSet
		category string
		grams    int64
		at       time.Time
		reason   string
	}{
		{"negative grams", r, CategoryTransit, -1, at, "grams_out_of_range"},
		{"absurd grams", r, CategoryTransit, math.MaxInt64, at, "grams_out_of_range"},
		{"unknown category", r, "flights", 1000, at, "category_not_accepted"},
		{"before effective", r, CategoryTransit, 1000, r.EffectiveAt.Add(-time.Second), "rules_not_in_force"},
		{"overflow", big, CategoryTransit, 1_000_000_000_000, at, "overflow"}, // 1e9 kg x (MaxInt64/1000) x 10
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := tc.r.Points(tc.category, tc.grams, tc.at)
			if apperr.CodeOf(err) != apperr.Invalid || apperr.ReasonOf(err) != tc.reason {
				t.Errorf("error = %v, want invalid/%s", err, tc.reason)
			}
		})
	}
}

func TestExpiresAt(t *testing.T) {
	t.Parallel()
	shanghai := zone(t, "Asia/Shanghai")
	ny := zone(t, "America/New_York")
	sp := zone(t, "America/Sao_Paulo")
	prof := func(tz string, validity, maxValidity int) Profile {
		p := defaultProfile(t)
		p.Timezone, p.ValidityDays, p.MaxValidityDays, p.ReminderOffsetsDays = tz, validity, maxValidity, []int{1}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		p      Profile
		issued time.Time
		want   time.Time
	}{
		{"shanghai 730 days", prof("Asia/Shanghai", 730, 3650),
			time.Date(2026, 1, 15, 10, 0, 0, 0, shanghai), time.Date(2028, 1, 16, 0, 0, 0, 0, shanghai)},
		{"shanghai issued 23:59:59 local", prof("Asia/Shanghai", 730, 3650),
			time.Date(2026, 1, 15, 23, 59, 59, 0, shanghai), time.Date(2028, 1, 16, 0, 0, 0, 0, shanghai)},
		{"shanghai issued 00:30 local is 16:30 UTC the day before", prof("Asia/Shanghai", 730, 3650),
			time.Date(2026, 1, 15, 16, 30, 0, 0, time.UTC), time.Date(2028, 1, 17, 0, 0, 0, 0, shanghai)},
		// 2026-01-15 + 3650 days = 2036-01-13 (leap days 2028, 2032); end of that
		// day is 2036-01-14 00:00, beyond issuance + 3650 x 24 h.
		{"max validity bound", prof("Asia/Shanghai", 3650, 3650),
			time.Date(2026, 1, 15, 10, 0, 0, 0, shanghai), time.Date(2036, 1, 13, 10, 0, 0, 0, shanghai)},
		// DST starts 2026-03-08 in New York: 35 h, not 36.
		{"new york across spring forward", prof("America/New_York", 1, 3650),
			time.Date(2026, 3, 7, 12, 0, 0, 0, ny), time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC)},
		// DST ends 2026-11-01: 37 h.
		{"new york across fall back", prof("America/New_York", 1, 3650),
			time.Date(2026, 10, 31, 12, 0, 0, 0, ny), time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC)},
		{"new york validity 1 bounded by max 1", prof("America/New_York", 1, 1),
			time.Date(2026, 3, 7, 12, 0, 0, 0, ny), time.Date(2026, 3, 8, 17, 0, 0, 0, time.UTC)},
		// Sao Paulo skipped midnight on 2018-11-04 (00:00 -> 01:00 -02): the day
		// starts at the transition, 03:00 UTC.
		{"sao paulo midnight skipped", prof("America/Sao_Paulo", 1, 3650),
			time.Date(2018, 11, 2, 12, 0, 0, 0, sp), time.Date(2018, 11, 4, 3, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.p.ExpiresAt(tc.issued)
			if !got.Equal(tc.want) {
				t.Errorf("ExpiresAt(%s) = %s, want %s", tc.issued, got, tc.want)
			}
			if limit := tc.issued.Add(time.Duration(tc.p.MaxValidityDays) * day); got.After(limit) {
				t.Errorf("ExpiresAt beyond the ledger's bound %s", limit)
			}
		})
	}
}

func TestLocalDayAndPeriodWindow(t *testing.T) {
	t.Parallel()
	p := defaultProfile(t)
	if got := p.LocalDay(time.Date(2026, 1, 15, 16, 30, 0, 0, time.UTC)); got != "2026-01-16" {
		t.Errorf("LocalDay = %s", got)
	}
	if got := p.LocalDay(time.Date(2026, 1, 15, 15, 59, 59, 0, time.UTC)); got != "2026-01-15" {
		t.Errorf("LocalDay = %s", got)
	}
	d := func(y int, m time.Month, dd int) time.Time { return time.Date(y, m, dd, 0, 0, 0, 0, sh) }
	tests := []struct {
		period     string
		at         time.Time
		start, end time.Time
	}{
		{PeriodDay, d(2026, 1, 16), d(2026, 1, 16), d(2026, 1, 17)},                       // exactly local midnight
		{PeriodDay, d(2026, 1, 16).Add(-time.Nanosecond), d(2026, 1, 15), d(2026, 1, 16)}, // just before
		{PeriodDay, time.Date(2026, 1, 15, 23, 0, 0, 0, time.UTC), d(2026, 1, 16), d(2026, 1, 17)},
		{PeriodMonth, d(2026, 2, 1), d(2026, 2, 1), d(2026, 3, 1)},
		{PeriodMonth, d(2026, 2, 1).Add(-time.Nanosecond), d(2026, 1, 1), d(2026, 2, 1)},
		{PeriodMonth, d(2026, 12, 31), d(2026, 12, 1), d(2027, 1, 1)},
		{PeriodYear, d(2026, 1, 1), d(2026, 1, 1), d(2027, 1, 1)},
		{PeriodYear, d(2026, 1, 1).Add(-time.Nanosecond), d(2025, 1, 1), d(2026, 1, 1)},
	}
	for _, tc := range tests {
		start, end := p.PeriodWindow(tc.period, tc.at)
		if !start.Equal(tc.start) || !end.Equal(tc.end) {
			t.Errorf("PeriodWindow(%s, %s) = [%s, %s), want [%s, %s)", tc.period, tc.at, start, end, tc.start, tc.end)
		}
	}
	if s, e := p.PeriodWindow("week", d(2026, 1, 1)); !s.IsZero() || !e.IsZero() {
		t.Error("unknown period gave a window")
	}
	// New York day of the spring-forward change is 23 hours long.
	ny := p
	ny.Timezone = "America/New_York"
	s, e := ny.PeriodWindow(PeriodDay, time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC))
	if e.Sub(s) != 23*time.Hour {
		t.Errorf("2026-03-08 in New York lasts %s", e.Sub(s))
	}
}

func TestCapAndApplyCap(t *testing.T) {
	t.Parallel()
	p := defaultProfile(t)
	c, ok := p.Cap(CategoryTransit, PeriodDay)
	if !ok || c.MaxPoints != 200 {
		t.Fatalf("Cap(transit, day) = %+v, %v", c, ok)
	}
	if _, ok := p.Cap(CategoryTransit, PeriodYear); ok {
		t.Error("found a cap that is not there")
	}
	tests := []struct {
		used, points, granted int64
		capped                bool
	}{
		{0, 50, 50, false},
		{150, 50, 50, false},
		{150, 51, 50, true},
		{200, 10, 0, true},
		{250, 10, 0, true}, // over already (cap lowered later): nothing more
		{0, 0, 0, false},
		{-5, 10, 10, false},
		{0, math.MaxInt64, 200, true},
	}
	for _, tc := range tests {
		g, capped := ApplyCap(c, tc.used, tc.points)
		if g != tc.granted || capped != tc.capped {
			t.Errorf("ApplyCap(used %d, points %d) = %d, %v; want %d, %v", tc.used, tc.points, g, capped, tc.granted, tc.capped)
		}
	}
}

func TestProfileValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(*Profile)
		reason string
	}{
		{"unknown zone", func(p *Profile) { p.Timezone = "Mars/Olympus" }, "invalid_timezone"},
		{"local zone", func(p *Profile) { p.Timezone = "Local" }, "invalid_timezone"},
		{"validity above max", func(p *Profile) { p.ValidityDays = 3651 }, "validity_exceeds_max"},
		{"zero validity", func(p *Profile) { p.ValidityDays = 0 }, "validity_exceeds_max"},
		{"max above limit", func(p *Profile) { p.MaxValidityDays = MaxValidityDaysLimit + 1 }, "out_of_range"},
		{"negative cap", func(p *Profile) { p.Caps[0].MaxPoints = -1 }, "out_of_range"},
		{"unknown category", func(p *Profile) { p.Categories = append(p.Categories, "flights") }, "unknown_category"},
		{"cap on unaccepted category", func(p *Profile) { p.Categories = p.Categories[:1] }, "unknown_category"},
		{"duplicate cap", func(p *Profile) { p.Caps = append(p.Caps, p.Caps[0]) }, "duplicate_cap"},
		{"unknown period", func(p *Profile) { p.Caps[0].Period = "week" }, "unknown_period"},
		{"duplicate category", func(p *Profile) { p.Categories = append(p.Categories, CategoryTransit) }, "duplicate"},
		{"reminders not decreasing", func(p *Profile) { p.ReminderOffsetsDays = []int{7, 30} }, "invalid_reminder"},
		{"reminder beyond validity", func(p *Profile) { p.ReminderOffsetsDays = []int{731} }, "invalid_reminder"},
		{"negative hold", func(p *Profile) { p.HoldPeriod = -time.Hour }, "out_of_range"},
		{"transfer caps without transfers", func(p *Profile) { p.TransfersAllowed = false }, "transfers_not_allowed"},
		{"negative transfer cap", func(p *Profile) { p.TransferMaxPoints = -1 }, "out_of_range"},
		{"negative point value", func(p *Profile) { p.PointValueFen = -1 }, "out_of_range"},
		{"effective before published", func(p *Profile) { p.PublishedAt = p.EffectiveAt.Add(time.Second) }, "retroactive"},
		{"bad id", func(p *Profile) { p.ID = "CN Default" }, "invalid_id"},
		{"bad jurisdiction", func(p *Profile) { p.Jurisdiction = "china" }, "invalid_jurisdiction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := defaultProfile(t)
			tc.edit(&p)
			err := p.Validate()
			e := apperr.As(err)
			if e == nil || e.Code != apperr.Invalid {
				t.Fatalf("Validate() = %v, want invalid", err)
			}
			var reasons []string
			for _, f := range e.Fields {
				reasons = append(reasons, f.Reason)
			}
			if !strings.Contains(strings.Join(reasons, ","), tc.reason) {
				t.Errorf("field reasons %v lack %s", reasons, tc.reason)
			}
		})
	}
}

func TestRuleSetValidate(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, sh)
	camp := Campaign{ID: "a", Category: CategoryTransit, From: at, To: at.AddDate(0, 0, 7), MultiplierPermille: 1500}
	tests := []struct {
		name string
		edit func(*RuleSet)
	}{
		{"no rates", func(r *RuleSet) { r.PointsPerKg = nil }},
		{"zero rate", func(r *RuleSet) { r.PointsPerKg[0].PointsPerKg = 0 }},
		{"unknown category", func(r *RuleSet) { r.PointsPerKg[0].Category = "flights" }},
		{"duplicate category", func(r *RuleSet) { r.PointsPerKg = append(r.PointsPerKg, r.PointsPerKg[0]) }},
		{"empty window", func(r *RuleSet) { c := camp; c.To = c.From; r.Campaigns = []Campaign{c} }},
		{"multiplier below 1", func(r *RuleSet) { c := camp; c.MultiplierPermille = 900; r.Campaigns = []Campaign{c} }},
		{"overlap", func(r *RuleSet) {
			c := camp
			c.ID, c.From = "b", camp.To.Add(-time.Nanosecond)
			c.To = c.From.AddDate(0, 0, 1)
			r.Campaigns = []Campaign{camp, c}
		}},
		{"duplicate campaign id", func(r *RuleSet) {
			c := camp
			c.Category = CategoryAppliance
			r.Campaigns = []Campaign{camp, c}
		}},
	}
	for _, tc := range tests {
		r := defaultRules(t)
		tc.edit(&r)
		if err := r.Validate(); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
	r := defaultRules(t)
	adjacent := camp
	adjacent.ID, adjacent.From, adjacent.To = "b", camp.To, camp.To.AddDate(0, 0, 1)
	r.Campaigns = []Campaign{camp, adjacent}
	if err := r.Validate(); err != nil {
		t.Errorf("adjacent campaigns rejected: %v", err)
	}
}

func TestProfileReductions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Profile)
		want string // substring of the one reason; "" = no reduction
	}{
		{"identical", func(*Profile) {}, ""},
		{"longer validity", func(p *Profile) { p.ValidityDays = 1000 }, ""},
		{"shorter hold", func(p *Profile) { p.HoldPeriod = time.Hour }, ""},
		{"higher cap", func(p *Profile) { p.Caps[0].MaxPoints = 300 }, ""},
		{"cap removed", func(p *Profile) { p.Caps = p.Caps[1:] }, ""},
		{"transfer cap removed (0 = none)", func(p *Profile) { p.TransferMaxPoints = 0 }, ""},
		{"earlier extra reminder", func(p *Profile) { p.ReminderOffsetsDays = []int{60, 30, 7, 1} }, ""},
		{"shorter validity", func(p *Profile) { p.ValidityDays = 365 }, "validity shortened"},
		{"shorter max validity", func(p *Profile) { p.MaxValidityDays = 1000 }, "maximum validity"},
		{"transfers forbidden", func(p *Profile) {
			p.TransfersAllowed, p.TransferMaxPoints, p.TransferMaxPointsPerMonth = false, 0, 0
		}, "transfers are no longer allowed"},
		{"lower transfer cap", func(p *Profile) { p.TransferMaxPoints = 100 }, "per transfer"},
		{"lower monthly transfer cap", func(p *Profile) { p.TransferMaxPointsPerMonth = 1000 }, "per month"},
		{"longer hold", func(p *Profile) { p.HoldPeriod = 96 * time.Hour }, "hold period"},
		{"shorter notice", func(p *Profile) { p.NoticeDays = 10 }, "notice period"},
		{"fewer reminders", func(p *Profile) { p.ReminderOffsetsDays = []int{30, 7} }, "reminders"},
		{"later reminder", func(p *Profile) { p.ReminderOffsetsDays = []int{14, 7, 1} }, "reminders"},
		{"shorter grace", func(p *Profile) { p.GraceDays = 7 }, "grace"},
		{"category removed", func(p *Profile) { p.Categories = p.Categories[:1]; p.Caps = p.Caps[:1] }, "appliance is no longer accepted"},
		{"lower cap", func(p *Profile) { p.Caps[0].MaxPoints = 100 }, "cap for transit lowered"},
		{"new cap", func(p *Profile) { p.Caps = append(p.Caps, Cap{CategoryTransit, PeriodMonth, 3000}) }, "new month cap"},
		{"lower point value", func(p *Profile) { p.PointValueFen = 0 }, "point value"},
		{"other zone", func(p *Profile) { p.Timezone = "Asia/Urumqi" }, "time zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prev := defaultProfile(t)
			next := prev.clone()
			tc.edit(&next)
			got := ProfileReductions(prev, next)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("reductions = %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("reductions = %q, want one containing %q", got, tc.want)
			}
		})
	}
	// Transfers newly allowed with a cap: an increase, not a reduction.
	sz := defaultProfile(t)
	sz.TransfersAllowed, sz.TransferMaxPoints, sz.TransferMaxPointsPerMonth = false, 0, 0
	if got := ProfileReductions(sz, defaultProfile(t)); len(got) != 0 {
		t.Errorf("allowing transfers reported as %q", got)
	}
}

func TestRuleReductions(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 3, 1, 0, 0, 0, 0, sh)
	running := Campaign{ID: "spring", Category: CategoryTransit, From: eff.AddDate(0, 0, -10), To: eff.AddDate(0, 0, 10), MultiplierPermille: 2000}
	past := Campaign{ID: "winter", Category: CategoryTransit, From: eff.AddDate(0, -2, 0), To: eff.AddDate(0, -1, 0), MultiplierPermille: 2000}
	tests := []struct {
		name string
		edit func(*RuleSet)
		want string
	}{
		{"identical", func(*RuleSet) {}, ""},
		{"higher rate", func(r *RuleSet) { r.PointsPerKg[0].PointsPerKg = 20 }, ""},
		{"past campaign dropped", func(r *RuleSet) { r.Campaigns = []Campaign{running} }, ""},
		{"campaign extended", func(r *RuleSet) {
			c := running
			c.To = c.To.AddDate(0, 0, 5)
			r.Campaigns = []Campaign{past, c}
		}, ""},
		{"lower rate", func(r *RuleSet) { r.PointsPerKg[0].PointsPerKg = 5 }, "transit rate lowered"},
		{"category removed", func(r *RuleSet) { r.PointsPerKg = r.PointsPerKg[:1] }, "appliance no longer earns"},
		{"running campaign withdrawn", func(r *RuleSet) { r.Campaigns = []Campaign{past} }, "spring withdrawn"},
		{"campaign shortened", func(r *RuleSet) {
			c := running
			c.To = eff.AddDate(0, 0, 1)
			r.Campaigns = []Campaign{past, c}
		}, "shortened"},
		{"lower multiplier", func(r *RuleSet) {
			c := running
			c.MultiplierPermille = 1500
			r.Campaigns = []Campaign{past, c}
		}, "multiplier lowered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prev := defaultRules(t)
			prev.Campaigns = []Campaign{past, running}
			next := prev.clone()
			next.Version, next.EffectiveAt = "2", eff
			tc.edit(&next)
			got := RuleReductions(prev, next)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("reductions = %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("reductions = %q, want one containing %q", got, tc.want)
			}
		})
	}
}

func TestCheckPublication(t *testing.T) {
	t.Parallel()
	prev := defaultProfile(t) // notice 30 days
	pub := time.Date(2026, 2, 1, 9, 0, 0, 0, sh)
	tests := []struct {
		name       string
		reductions []string
		effective  time.Time
		reason     string
	}{
		{"reduction with exactly 30 days", []string{"x"}, pub.Add(30 * day), ""},
		{"reduction one ns short", []string{"x"}, pub.Add(30*day - time.Nanosecond), "notice_period_too_short"},
		{"reduction immediately", []string{"x"}, pub, "notice_period_too_short"},
		{"no reduction immediately", nil, pub, ""},
		{"retroactive", nil, pub.Add(-time.Second), "retroactive"},
	}
	for _, tc := range tests {
		err := CheckPublication(prev, tc.reductions, pub, tc.effective)
		if apperr.ReasonOf(err) != tc.reason && !(tc.reason == "" && err == nil) {
			t.Errorf("%s: CheckPublication = %v, want %q", tc.name, err, tc.reason)
		}
	}
	// End to end: shortening validity announced 10 days ahead is refused;
	// the notice is the profile in force's, not the new one's.
	next := prev.clone()
	next.Version, next.ValidityDays, next.NoticeDays = "2", 365, 0
	next.PublishedAt, next.EffectiveAt = pub, pub.AddDate(0, 0, 10)
	if err := CheckProfileChange(prev, next); apperr.ReasonOf(err) != "notice_period_too_short" {
		t.Errorf("CheckProfileChange = %v", err)
	}
	next.EffectiveAt = pub.AddDate(0, 0, 30)
	if err := CheckProfileChange(prev, next); err != nil {
		t.Errorf("CheckProfileChange with notice = %v", err)
	}
	r := defaultRules(t)
	r2 := r.clone()
	r2.Version, r2.PublishedAt, r2.EffectiveAt = "2", pub, pub.AddDate(0, 0, 1)
	r2.PointsPerKg[0].PointsPerKg = 8
	if err := CheckRuleChange(prev, r, r2); apperr.ReasonOf(err) != "notice_period_too_short" {
		t.Errorf("CheckRuleChange = %v", err)
	}
	r2.PointsPerKg[0].PointsPerKg = 12
	if err := CheckRuleChange(prev, r, r2); err != nil {
		t.Errorf("CheckRuleChange (increase) = %v", err)
	}
}

// Golden hashes of the built-in documents: a change is a new version.
var goldenDocs = map[string]string{
	"cn-default@1":       "ba2de5d67141d5dea4bafdabea3f4f1f06c4a1723893ac991ea472a5954ab114",
	"cn-shenzhen@1":      "d43d2bb6ad1e8cd1f08563bdd1d94a8fd94aed52d37a2038f50b9e7f2dfb5964",
	"cn-default-rules@1": "dfb578b914c45c725520782b1de93cf4f2887997866aa6f95bd69dccc9669897",
}

func TestPublished(t *testing.T) {
	t.Parallel()
	ps, rs := Published()
	if len(ps) != 2 || len(rs) != 1 {
		t.Fatalf("Published() = %d profiles, %d rule sets", len(ps), len(rs))
	}
	wantEff := time.Date(2026, 1, 1, 0, 0, 0, 0, sh)
	got := map[string]string{}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p.ID, err)
		}
		if !p.EffectiveAt.Equal(wantEff) {
			t.Errorf("%s effective %s", p.ID, p.EffectiveAt)
		}
		got[p.ID+"@"+p.Version] = p.SHA256()
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r.ID, err)
		}
		got[r.ID+"@"+r.Version] = r.SHA256()
	}
	if diff := cmp.Diff(goldenDocs, got); diff != "" {
		t.Errorf("document hashes mismatch (-want +got):\n%s", diff)
	}
	ps2, rs2 := Published()
	if ps2[0].SHA256() != ps[0].SHA256() || rs2[0].SHA256() != rs[0].SHA256() {
		t.Error("unstable hashes")
	}
	sz := ps[1]
	if sz.ID != "cn-shenzhen" || sz.TransfersAllowed || sz.MaxValidityDays != 3650 {
		t.Errorf("cn-shenzhen = %+v", sz)
	}
	// The document is canonical UTC and round-trips.
	doc := ps[0].Document()
	if !strings.Contains(string(doc), `"effectiveAt":"2025-12-31T16:00:00Z"`) || !strings.Contains(string(doc), `"holdPeriod":"72h0m0s"`) {
		t.Errorf("document: %s", doc)
	}
	var back Profile
	if err := json.Unmarshal(doc, &back); err != nil {
		t.Fatal(err)
	}
	if back.SHA256() != ps[0].SHA256() || back.HoldPeriod != 72*time.Hour {
		t.Errorf("round trip changed the profile: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"id":"x","holdPeriod":"1h","validityDayz":3}`), &back); err == nil {
		t.Error("a misspelt field was accepted")
	}
}

func TestScheduleAndDisclose(t *testing.T) {
	t.Parallel()
	p1 := defaultProfile(t)
	p2 := p1.clone()
	p2.Version, p2.PublishedAt, p2.EffectiveAt = "2", time.Date(2026, 6, 1, 0, 0, 0, 0, sh), time.Date(2026, 7, 1, 0, 0, 0, 0, sh)
	p2.ValidityDays = 365
	r1 := defaultRules(t)
	r2 := r1.clone()
	r2.Version, r2.PublishedAt, r2.EffectiveAt = "2", time.Date(2026, 3, 1, 0, 0, 0, 0, sh), time.Date(2026, 4, 1, 0, 0, 0, 0, sh)
	r2.Campaigns = []Campaign{
		{ID: "over", Category: CategoryTransit, From: r2.EffectiveAt, To: r2.EffectiveAt.AddDate(0, 0, 1), MultiplierPermille: 2000},
		{ID: "later", Category: CategoryTransit, From: time.Date(2026, 9, 1, 0, 0, 0, 0, sh), To: time.Date(2026, 9, 8, 0, 0, 0, 0, sh), MultiplierPermille: 1500},
	}

	s, err := NewSchedule([]Profile{p2, p1})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, sh)
	if cur, ok := s.InForce(at); !ok || cur.Version != "1" {
		t.Errorf("InForce = %v, %v", cur.Version, ok)
	}
	if up := s.Upcoming(at); len(up) != 1 || up[0].Version != "2" {
		t.Errorf("Upcoming = %v", up)
	}
	if _, ok := s.InForce(p1.EffectiveAt.Add(-time.Nanosecond)); ok {
		t.Error("a version in force before its effective time")
	}
	dup := p2.clone()
	dup.Version, dup.PublishedAt, dup.EffectiveAt = "3", p1.PublishedAt, p1.EffectiveAt
	if _, err := NewSchedule([]Profile{p1, dup}); apperr.ReasonOf(err) != "duplicate_effective_at" {
		t.Errorf("duplicate effective time: %v", err)
	}
	bad := p1.clone()
	bad.Timezone = "nowhere"
	if _, err := NewSchedule([]Profile{bad}); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("invalid version scheduled: %v", err)
	}

	meths := quantify.Published().All()
	d := Disclose([]Profile{p2, p1}, []RuleSet{r2, r1}, meths, at)
	if d.Current == nil || d.Current.Profile.Version != "1" || d.Current.Rules.Version != "2" {
		t.Fatalf("current = %+v", d.Current)
	}
	if got := d.Current.Earning.Campaigns; len(got) != 1 || got[0].ID != "later" {
		t.Errorf("campaigns disclosed = %+v, want only the one not over", got)
	}
	if d.Current.Earning.HoldPeriodHours != 72 || d.Current.Accumulation.Timezone != "Asia/Shanghai" ||
		!d.Current.Redemption.TransfersAllowed || d.Current.Redemption.PointValueFen != 1 ||
		d.Current.Changes.NoticeDays != 30 || d.Current.Expiry.ValidityDays != 730 {
		t.Errorf("current terms = %+v", d.Current)
	}
	if d.Current.Profile.SHA256 != p1.SHA256() {
		t.Error("profile hash not disclosed")
	}
	if len(d.Upcoming) != 1 || d.Upcoming[0].Profile.Version != "2" || d.Upcoming[0].Expiry.ValidityDays != 365 ||
		!d.Upcoming[0].EffectiveAt.Equal(p2.EffectiveAt) {
		t.Errorf("upcoming = %+v", d.Upcoming)
	}
	if len(d.Methodologies) != 2 || d.Methodologies[0].Ref != quantify.ApplianceCNLabel2026 ||
		d.Methodologies[1].SHA256 != meths[1].SHA256() || len(d.Methodologies[1].Parameters) == 0 {
		t.Errorf("methodologies = %+v", d.Methodologies)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatal(err)
	}
	// Before anything is in force.
	early := Disclose([]Profile{p1}, []RuleSet{r1}, meths, p1.EffectiveAt.Add(-time.Hour))
	if early.Current != nil || len(early.Upcoming) != 1 || len(early.Methodologies) != 0 || len(early.UpcomingMethodologies) != 2 {
		t.Errorf("early disclosure = %+v", early)
	}
}

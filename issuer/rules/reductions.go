package rules

import (
	"fmt"
	"slices"
	"time"
)

// ProfileReductions lists, in human-readable sentences, how next reduces
// consumers' rights compared with prev; empty when it does not. Reductions:
// shorter validity or maximum validity, transfers no longer allowed or lower
// transfer caps (0 is "no cap", the most generous), a longer hold period, a
// shorter notice period (else a reduction could be prepared with none),
// fewer or later reminders, a shorter grace, a category removed, a lower or
// new cap, a lower point value, a different time zone (it moves every local
// day boundary).
func ProfileReductions(prev, next Profile) []string {
	out := []string{}
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if next.ValidityDays < prev.ValidityDays {
		add("validity shortened from %d to %d days", prev.ValidityDays, next.ValidityDays)
	}
	if next.MaxValidityDays < prev.MaxValidityDays {
		add("maximum validity shortened from %d to %d days", prev.MaxValidityDays, next.MaxValidityDays)
	}
	if next.Timezone != prev.Timezone {
		add("time zone changed from %s to %s", prev.Timezone, next.Timezone)
	}
	if prev.TransfersAllowed && !next.TransfersAllowed {
		add("transfers are no longer allowed")
	}
	if prev.TransfersAllowed && next.TransfersAllowed {
		if lowerCap(prev.TransferMaxPoints, next.TransferMaxPoints) {
			add("maximum points per transfer lowered from %s to %d", capText(prev.TransferMaxPoints), next.TransferMaxPoints)
		}
		if lowerCap(prev.TransferMaxPointsPerMonth, next.TransferMaxPointsPerMonth) {
			add("maximum points transferred per month lowered from %s to %d", capText(prev.TransferMaxPointsPerMonth), next.TransferMaxPointsPerMonth)
		}
	}
	if next.HoldPeriod > prev.HoldPeriod {
		add("hold period before issuance lengthened from %s to %s", prev.HoldPeriod, next.HoldPeriod)
	}
	if next.NoticeDays < prev.NoticeDays {
		add("notice period for reducing changes shortened from %d to %d days", prev.NoticeDays, next.NoticeDays)
	}
	if fewerOrLaterReminders(prev.ReminderOffsetsDays, next.ReminderOffsetsDays) {
		add("expiry reminders reduced from %v to %v days before expiry", prev.ReminderOffsetsDays, next.ReminderOffsetsDays)
	}
	if next.GraceDays < prev.GraceDays {
		add("grace extension shortened from %d to %d days", prev.GraceDays, next.GraceDays)
	}
	for _, c := range prev.Categories {
		if !slices.Contains(next.Categories, c) {
			add("category %s is no longer accepted", c)
		}
	}
	for _, c := range next.Caps {
		if !slices.Contains(prev.Categories, c.Category) {
			continue // a newly accepted category: its cap limits nothing that existed
		}
		old, ok := prev.Cap(c.Category, c.Period)
		switch {
		case !ok:
			add("new %s cap of %d points for %s", c.Period, c.MaxPoints, c.Category)
		case c.MaxPoints < old.MaxPoints:
			add("%s cap for %s lowered from %d to %d points", c.Period, c.Category, old.MaxPoints, c.MaxPoints)
		}
	}
	if next.PointValueFen < prev.PointValueFen {
		add("point value lowered from %d to %d fen", prev.PointValueFen, next.PointValueFen)
	}
	return out
}

// RuleReductions lists how next reduces consumers' rights compared with
// prev: a category's rate lowered or removed, or a campaign still running
// or to come when next takes effect removed, shortened or with a lower
// multiplier. Empty when none.
func RuleReductions(prev, next RuleSet) []string {
	out := []string{}
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, r := range prev.PointsPerKg {
		n, ok := next.Rate(r.Category)
		switch {
		case !ok:
			add("category %s no longer earns points", r.Category)
		case n < r.PointsPerKg:
			add("%s rate lowered from %d to %d points per kg CO2e", r.Category, r.PointsPerKg, n)
		}
	}
	for _, c := range prev.Campaigns {
		if !c.To.After(next.EffectiveAt) {
			continue // over before next applies
		}
		i := slices.IndexFunc(next.Campaigns, func(d Campaign) bool { return d.ID == c.ID })
		if i < 0 {
			add("campaign %s withdrawn", c.ID)
			continue
		}
		d := next.Campaigns[i]
		if d.Category != c.Category || d.From.After(c.From) || d.To.Before(c.To) {
			add("campaign %s shortened or moved", c.ID)
		}
		if d.MultiplierPermille < c.MultiplierPermille {
			add("campaign %s multiplier lowered from %d to %d permille", c.ID, c.MultiplierPermille, d.MultiplierPermille)
		}
	}
	return out
}

// lowerCap reports whether cap n is stricter than p, 0 meaning no cap.
func lowerCap(p, n int64) bool { return n != 0 && (p == 0 || n < p) }

func capText(c int64) string {
	if c == 0 {
		return "no cap"
	}
	return fmt.Sprint(c)
}

// fewerOrLaterReminders reports whether next drops a reminder of prev or
// moves one closer to expiry: pairing both lists largest first, every
// reminder of prev must have one at least as early in next.
func fewerOrLaterReminders(prev, next []int) bool {
	p, n := slices.Clone(prev), slices.Clone(next)
	slices.Sort(p)
	slices.Reverse(p)
	slices.Sort(n)
	slices.Reverse(n)
	if len(n) < len(p) {
		return true
	}
	for i := range p {
		if n[i] < p[i] {
			return true
		}
	}
	return false
}

// CheckPublication checks the timing of a change published at publishedAt
// to take effect at effectiveAt, with reductions as listed by
// ProfileReductions or RuleReductions. A change may not be retroactive
// (apperr Invalid "retroactive"); one that reduces rights must take effect
// at least the notice period of the profile in force (days of 24 hours)
// after its publication (apperr Invalid "notice_period_too_short").
func CheckPublication(inForce Profile, reductions []string, publishedAt, effectiveAt time.Time) error {
	if effectiveAt.Before(publishedAt) {
		return errInvalid("retroactive", "effectiveAt", "a change cannot take effect before it is published")
	}
	if len(reductions) == 0 {
		return nil
	}
	earliest := publishedAt.Add(time.Duration(inForce.NoticeDays) * day)
	if effectiveAt.Before(earliest) {
		return errInvalid("notice_period_too_short", "effectiveAt",
			"the change reduces consumers' rights (%s) and must take effect no earlier than %s (%d days' notice)",
			reductions[0], earliest.UTC().Format(time.RFC3339), inForce.NoticeDays)
	}
	return nil
}

// CheckProfileChange checks that next may replace prev (the profile in
// force): it is valid and gives the notice prev requires for its
// reductions.
func CheckProfileChange(prev, next Profile) error {
	if err := next.Validate(); err != nil {
		return err
	}
	return CheckPublication(prev, ProfileReductions(prev, next), next.PublishedAt, next.EffectiveAt)
}

// CheckRuleChange checks that next may replace prev under the profile in
// force: it is valid and gives the profile's notice for its reductions.
func CheckRuleChange(profile Profile, prev, next RuleSet) error {
	if err := next.Validate(); err != nil {
		return err
	}
	return CheckPublication(profile, RuleReductions(prev, next), next.PublishedAt, next.EffectiveAt)
}

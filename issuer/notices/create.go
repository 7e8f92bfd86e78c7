package notices

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/issuer/rules"
)

// newRow is a notification to create.
type newRow struct {
	kind, account string
	lotKey        *string
	offsetDays    *int
	expiresAt     *time.Time
	points        *int64
	changeID      *string
	effectiveAt   *time.Time
	summary       string
	deadline      time.Time // zero: none
}

// insert creates rows that do not exist yet (unique per lot and offset, or
// per change and account) and returns how many it created. Each gets the
// account's preferences: its first channel and quiet hours, which decide
// when it is first sent.
func (s *Service) insert(ctx context.Context, now time.Time, rows []newRow) (int, error) {
	prefs := map[string]Prefs{}
	b := &pgx.Batch{}
	for _, r := range rows {
		p, ok := prefs[r.account]
		if !ok {
			var err error
			if p, err = s.cfg.Preferences.For(ctx, r.account); err != nil {
				return 0, fmt.Errorf("preferences of %s: %w", r.account, err)
			}
			if p.Quiet != nil {
				if err := p.Quiet.Validate(); err != nil {
					// Bad quiet hours must not stop a legally required
					// notice: send as if there were none.
					s.log.Warn("ignoring invalid quiet hours", "account", r.account, "err", err)
					p.Quiet = nil
				}
			}
			prefs[r.account] = p
		}
		channel := ""
		if len(p.Channels) > 0 {
			channel = p.Channels[0]
		}
		var qs, qe *int
		var qz *string
		if p.Quiet != nil && p.Quiet.Start != p.Quiet.End {
			qs, qe, qz = &p.Quiet.Start, &p.Quiet.End, &p.Quiet.Zone
		}
		id, err := uuid.NewV7()
		if err != nil {
			return 0, err
		}
		b.Queue(`INSERT INTO notifications (id, issuer, kind, account, lot_key, offset_days, expires_at, points,
				change_id, effective_at, summary, channel, quiet_start, quiet_end, quiet_zone, next_attempt_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT DO NOTHING`,
			id.String(), s.cfg.IssuerMSP, r.kind, r.account, r.lotKey, r.offsetDays, r.expiresAt, r.points,
			r.changeID, r.effectiveAt, r.summary, channel, qs, qe, qz, SendAt(now, r.deadline, p.Quiet), now)
	}
	if b.Len() == 0 {
		return 0, nil
	}
	res := s.pool.SendBatch(ctx, b)
	defer res.Close()
	n := 0
	for range b.Len() {
		tag, err := res.Exec()
		if err != nil {
			return n, err
		}
		n += int(tag.RowsAffected())
	}
	return n, res.Close()
}

// CreateReminders creates the expiry reminders due at now, each once per
// lot and offset: for a lot with points left and offsets d1 > d2 > ... of
// its profile, the reminder of offset d is due while the lot expires within
// (d_next, d] days of now. A lot first seen inside a later window (issued
// late, or the job was down) gets only that window's reminder: one warning,
// not a burst. It returns how many it created.
func (s *Service) CreateReminders(ctx context.Context, now time.Time) (int, error) {
	type group struct {
		offsets []int
		filter  string
		args    []any
	}
	var groups []group
	var known []string
	for _, p := range s.cfg.Profiles {
		known = append(known, p.ID+"@"+p.Version)
		groups = append(groups, group{offsetsOf(p, true), `l.profile_id = $6 AND l.profile_version = $7`, []any{p.ID, p.Version}})
	}
	cur, ok := s.inForce(now)
	groups = append(groups, group{offsetsOf(cur, ok), `NOT (l.profile_id || '@' || l.profile_version = ANY($6::text[]))`, []any{known}})
	total := 0
	for _, g := range groups {
		for i, d := range g.offsets {
			next := 0
			if i+1 < len(g.offsets) {
				next = g.offsets[i+1]
			}
			n, err := s.remindWindow(ctx, now, d, next, g.filter, g.args)
			if err != nil {
				return total, err
			}
			total += n
		}
	}
	return total, nil
}

func (s *Service) remindWindow(ctx context.Context, now time.Time, d, next int, filter string, extra []any) (int, error) {
	total := 0
	for {
		args := append([]any{s.cfg.IssuerMSP, now, now.AddDate(0, 0, d), now.AddDate(0, 0, next), d}, extra...)
		rows, err := s.pool.Query(ctx, `SELECT l.lot_key, l.account, l.expires_at, l.remaining FROM proj_lots l
			WHERE l.issuer = $1 AND l.remaining > 0 AND l.expires_at > $2 AND l.expires_at <= $3 AND l.expires_at > $4
			  AND `+filter+`
			  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.lot_key = l.lot_key AND n.offset_days = $5)
			ORDER BY l.expires_at, l.lot_key LIMIT `+fmt.Sprint(chunk), args...)
		if err != nil {
			return total, err
		}
		var batch []newRow
		var lotKey, account string
		var exp time.Time
		var pts int64
		_, err = pgx.ForEachRow(rows, []any{&lotKey, &account, &exp, &pts}, func() error {
			lk, e, p, off := lotKey, exp, pts, d
			batch = append(batch, newRow{kind: KindReminder, account: account, lotKey: &lk, offsetDays: &off, expiresAt: &e, points: &p, deadline: e})
			return nil
		})
		if err != nil {
			return total, err
		}
		n, err := s.insert(ctx, now, batch)
		total += n
		if err != nil || len(batch) < chunk {
			return total, err
		}
	}
}

// Change is a published change that reduces consumers' rights.
type Change struct {
	ID          string // "profile:<id>@<version>" or "rules:<id>@<version>"
	PublishedAt time.Time
	EffectiveAt time.Time
	Reductions  []string
	// Check is rules.CheckPublication's verdict (nil: enough notice). A
	// change published with too little notice is still announced: late is
	// better than never, and the verdict is logged for the operator.
	Check error
}

// Changes lists the rights-reducing changes among profiles and rule sets
// (each sorted by EffectiveAt) that are published at now and not yet in
// effect: each version compared with the one before it.
func Changes(profiles []rules.Profile, ruleSets []rules.RuleSet, now time.Time) []Change {
	var out []Change
	upcoming := func(pub, eff time.Time) bool { return !pub.After(now) && eff.After(now) }
	for i := 1; i < len(profiles); i++ {
		prev, next := profiles[i-1], profiles[i]
		if red := rules.ProfileReductions(prev, next); len(red) > 0 && upcoming(next.PublishedAt, next.EffectiveAt) {
			out = append(out, Change{ID: "profile:" + next.ID + "@" + next.Version, PublishedAt: next.PublishedAt, EffectiveAt: next.EffectiveAt,
				Reductions: red, Check: rules.CheckPublication(prev, red, next.PublishedAt, next.EffectiveAt)})
		}
	}
	for i := 1; i < len(ruleSets); i++ {
		prev, next := ruleSets[i-1], ruleSets[i]
		red := rules.RuleReductions(prev, next)
		if len(red) == 0 || !upcoming(next.PublishedAt, next.EffectiveAt) {
			continue
		}
		c := Change{ID: "rules:" + next.ID + "@" + next.Version, PublishedAt: next.PublishedAt, EffectiveAt: next.EffectiveAt, Reductions: red}
		// The notice period is that of the profile in force at publication.
		var inForce *rules.Profile
		for j := range profiles {
			if !profiles[j].EffectiveAt.After(next.PublishedAt) {
				inForce = &profiles[j]
			}
		}
		if inForce != nil {
			c.Check = rules.CheckPublication(*inForce, red, next.PublishedAt, next.EffectiveAt)
		}
		out = append(out, c)
	}
	return out
}

// EnqueueNotices creates a notice of every change Changes lists at now for
// every account of the issuer (consumers and enterprises: every holder, and
// every account that could earn), once per change and account; accounts
// opened later get theirs at the next run. It returns how many it created.
func (s *Service) EnqueueNotices(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, c := range Changes(s.cfg.Profiles, s.cfg.RuleSets, now) {
		if c.Check != nil {
			s.log.Error("a rights-reducing change gives too little notice; announcing it anyway", "change", c.ID, "err", c.Check)
		}
		summary := ""
		for i, r := range c.Reductions {
			if i > 0 {
				summary += "; "
			}
			summary += r
		}
		for {
			rows, err := s.pool.Query(ctx, `SELECT a.account_id FROM proj_accounts a
				WHERE a.issuer = $1 AND a.kind IN ('consumer', 'enterprise')
				  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.change_id = $2 AND n.account = a.account_id)
				ORDER BY a.account_id LIMIT `+fmt.Sprint(chunk), s.cfg.IssuerMSP, c.ID)
			if err != nil {
				return total, err
			}
			var batch []newRow
			var account string
			_, err = pgx.ForEachRow(rows, []any{&account}, func() error {
				id, eff := c.ID, c.EffectiveAt
				batch = append(batch, newRow{kind: KindNotice, account: account, changeID: &id, effectiveAt: &eff, summary: summary, deadline: eff})
				return nil
			})
			if err != nil {
				return total, err
			}
			n, err := s.insert(ctx, now, batch)
			total += n
			if err != nil {
				return total, err
			}
			if len(batch) < chunk {
				break
			}
		}
	}
	return total, nil
}

package notices

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Grace reasons.
const (
	GraceUndelivered = "reminder_undelivered" // reminders were made, none delivered
	GraceNoReminder  = "no_reminder"          // no reminder was made before the lot expired
)

// RecordGrace records the grace of every lot of the issuer that expired in
// (now - GraceLookback, now] with points in it, none of whose reminders was
// delivered (or that never got one): the points that expired, and
// grace_until = expiry + the graceDays of the lot's profile. The ledger has
// no extension: the record is what entitles the holder to an
// operator-approved re-issuance until grace_until (docs/notices.md). Pending
// reminders of expired lots are closed first. It returns how many it
// recorded; a lot is recorded once.
func (s *Service) RecordGrace(ctx context.Context, now time.Time) (int, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE notifications SET status = 'undelivered', finished_at = $2,
			last_error = 'the lot expired before delivery'
		WHERE issuer = $1 AND status = 'pending' AND kind = 'expiry_reminder' AND expires_at <= $2`, s.cfg.IssuerMSP, now); err != nil {
		return 0, err
	}
	total := 0
	for {
		rows, err := s.pool.Query(ctx, `SELECT l.lot_key, l.account, l.expires_at, l.remaining + l.expired, l.profile_id, l.profile_version,
				EXISTS (SELECT 1 FROM notifications n WHERE n.lot_key = l.lot_key)
			FROM proj_lots l
			WHERE l.issuer = $1 AND l.expires_at > $2 AND l.expires_at <= $3 AND l.remaining + l.expired > 0
			  AND NOT EXISTS (SELECT 1 FROM grace_records g WHERE g.lot_key = l.lot_key)
			  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.lot_key = l.lot_key AND n.status = 'sent')
			ORDER BY l.expires_at, l.lot_key LIMIT `+fmt.Sprint(chunk), s.cfg.IssuerMSP, now.Add(-s.cfg.GraceLookback), now)
		if err != nil {
			return total, err
		}
		b := &pgx.Batch{}
		var lotKey, account, profID, profVer string
		var exp time.Time
		var pts int64
		var had bool
		_, err = pgx.ForEachRow(rows, []any{&lotKey, &account, &exp, &pts, &profID, &profVer, &had}, func() error {
			graceDays := 0
			if p, ok := s.profileOf(profID, profVer, exp); ok {
				graceDays = p.GraceDays
			}
			reason := GraceNoReminder
			if had {
				reason = GraceUndelivered
			}
			b.Queue(`INSERT INTO grace_records (lot_key, issuer, account, points, expires_at, grace_days, grace_until, reason, recorded_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (lot_key) DO NOTHING`,
				lotKey, s.cfg.IssuerMSP, account, pts, exp, graceDays, exp.AddDate(0, 0, graceDays), reason, now)
			return nil
		})
		if err != nil {
			return total, err
		}
		if b.Len() == 0 {
			return total, nil
		}
		n := b.Len()
		res := s.pool.SendBatch(ctx, b)
		for range n {
			tag, err := res.Exec()
			if err != nil {
				res.Close()
				return total, err
			}
			total += int(tag.RowsAffected())
		}
		if err := res.Close(); err != nil {
			return total, err
		}
		if n < chunk {
			return total, nil
		}
	}
}

// GraceRecord is a lot's recorded grace.
type GraceRecord struct {
	LotKey     string
	Account    string
	Points     int64
	ExpiresAt  time.Time
	GraceDays  int
	GraceUntil time.Time
	Reason     string
	Status     string
}

// Grace returns the grace record of a lot; ok is false when it has none.
func (s *Service) Grace(ctx context.Context, lotKey string) (GraceRecord, bool, error) {
	var g GraceRecord
	err := s.pool.QueryRow(ctx, `SELECT lot_key, account, points, expires_at, grace_days, grace_until, reason, status
		FROM grace_records WHERE lot_key = $1`, lotKey).Scan(&g.LotKey, &g.Account, &g.Points, &g.ExpiresAt, &g.GraceDays, &g.GraceUntil, &g.Reason, &g.Status)
	if err == pgx.ErrNoRows {
		return g, false, nil
	}
	return g, err == nil, err
}

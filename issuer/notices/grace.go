package notices

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// graceLotID is the lot id of a grace record's lot key
// (lot/<account>/<expiry>/<lotId>): a lot keeps its id when an extension
// moves it to a new key, so records match lots by id.
const graceLotID = `split_part(g.lot_key, '/', 4)`

// extendCandidate is a lot ExtendGrace may extend.
type extendCandidate struct {
	lotKey, account, noticeRef string
	expiresAt, newExpiresAt    time.Time
	remaining                  int64
	graceDays                  int
	reason                     string
}

// ExtendGrace applies the grace extension before expiry: for the issuer's
// lots with points left that expire within the last reminder offset of
// their profile (after now) and none of whose reminders was delivered (all
// finished undelivered, or none made: no channel or issued too late), it
// submits ExtendLots to push the expiry by the profile's graceDays, capped
// at maxValidityDays from the claim's issuance. A lot with a pending
// reminder waits: it may still be delivered. Each extension is recorded in
// grace_records (lot_key: the key before, grace_until: the new expiry),
// which keeps a lot from being extended twice (the contract refuses that
// too: already_extended is recorded like a success, finishing a cycle that
// crashed after the ledger call). It looks at most chunk lots per call,
// soonest expiry first, and returns how many it extended.
func (s *Service) ExtendGrace(ctx context.Context, now time.Time) (int, error) {
	horizon := 0
	for _, p := range s.cfg.Profiles {
		horizon = max(horizon, lastOffset(p, true))
	}
	if len(s.cfg.Profiles) == 0 {
		horizon = lastOffset(rules.Profile{}, false)
	}
	rows, err := s.pool.Query(ctx, `SELECT l.lot_key, l.account, l.expires_at, l.remaining, l.profile_id, l.profile_version,
			COALESCE(c.issued_at, l.issued_at),
			COALESCE((SELECT n.id::text FROM notifications n WHERE n.lot_key = l.lot_key ORDER BY n.id DESC LIMIT 1), '')
		FROM proj_lots l LEFT JOIN proj_claims c ON c.claim = l.claim
		WHERE l.issuer = $1 AND l.remaining > 0 AND l.expires_at > $2 AND l.expires_at <= $3
		  AND NOT EXISTS (SELECT 1 FROM grace_records g WHERE g.issuer = l.issuer AND `+graceLotID+` = l.lot_id)
		  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.lot_key = l.lot_key AND n.status <> 'undelivered')
		ORDER BY l.expires_at, l.lot_key LIMIT `+fmt.Sprint(chunk), s.cfg.IssuerMSP, now, now.Add(time.Duration(horizon)*24*time.Hour))
	if err != nil {
		return 0, err
	}
	var (
		cands           []extendCandidate
		c               extendCandidate
		profID, profVer string
		issuedAt        time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&c.lotKey, &c.account, &c.expiresAt, &c.remaining, &profID, &profVer, &issuedAt, &c.noticeRef}, func() error {
		p, ok := s.profileOf(profID, profVer, c.expiresAt)
		if c.expiresAt.Sub(now) > time.Duration(lastOffset(p, ok))*24*time.Hour || !ok || p.GraceDays <= 0 {
			return nil
		}
		// Days of 24 hours, as the contract counts them.
		c.graceDays = p.GraceDays
		c.newExpiresAt = c.expiresAt.Add(time.Duration(p.GraceDays) * 24 * time.Hour).UTC().Truncate(time.Second)
		if bound := issuedAt.Add(time.Duration(p.MaxValidityDays) * 24 * time.Hour).UTC().Truncate(time.Second); c.newExpiresAt.After(bound) {
			c.newExpiresAt = bound
		}
		if !c.newExpiresAt.After(c.expiresAt) {
			return nil // no room under the validity bound: RecordGrace records it after expiry
		}
		c.reason = GraceUndelivered
		if c.noticeRef == "" {
			c.reason = GraceNoReminder
		}
		cands = append(cands, c)
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for len(cands) > 0 {
		batch := cands[:min(len(cands), points.MaxExtendLots)]
		cands = cands[len(batch):]
		n, err := s.extendBatch(ctx, now, batch)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// extendBatch submits one ExtendLots and records what it extended.
func (s *Service) extendBatch(ctx context.Context, now time.Time, batch []extendCandidate) (int, error) {
	a := points.ExtendLotsArgs{Items: make([]points.ExtendItem, len(batch))}
	for i, c := range batch {
		a.Items[i] = points.ExtendItem{LotKey: c.lotKey, NewExpiresAt: c.newExpiresAt, Reason: c.reason, NoticeRef: c.noticeRef}
	}
	args, err := json.Marshal(a)
	if err != nil {
		return 0, err
	}
	var tx *issuer.TxResult
	for i := 0; ; i++ {
		tx, err = s.led.Submit(ctx, issuer.Proposal{Caller: s.cfg.IssuerMSP, Function: "ExtendLots", Args: args})
		if err == nil {
			break
		}
		if apperr.CodeOf(err) != apperr.Conflict || i+1 >= conflictRetry {
			return 0, err
		}
	}
	var res points.ExtendLotsResult
	if err := json.Unmarshal(tx.Payload, &res); err != nil || len(res.Results) != len(batch) {
		return 0, fmt.Errorf("ExtendLots result (%d items): %v", len(res.Results), err)
	}
	b := &pgx.Batch{}
	extended := 0
	for i, r := range res.Results {
		c := batch[i]
		switch {
		case r.Status == points.ItemExtended:
			extended++
		case r.Reason == "already_extended":
		default:
			// Projection lag (the lot moved or expired meanwhile) or a
			// profile the ledger knows otherwise: the next cycle looks again.
			s.log.Warn("grace extension refused", "lot", c.lotKey, "reason", r.Reason)
			continue
		}
		b.Queue(`INSERT INTO grace_records (lot_key, issuer, account, points, expires_at, grace_days, grace_until, reason, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (lot_key) DO NOTHING`,
			c.lotKey, s.cfg.IssuerMSP, c.account, c.remaining, c.expiresAt, c.graceDays, c.newExpiresAt, c.reason, now)
	}
	if b.Len() > 0 {
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return extended, err
		}
	}
	return extended, nil
}

// lastOffset is the smallest reminder offset (days) of a profile: the
// window in which the last reminder is due and the extension applies.
func lastOffset(p rules.Profile, ok bool) int {
	o := offsetsOf(p, ok)
	if len(o) == 0 {
		return 0
	}
	return o[len(o)-1]
}

// Grace reasons.
const (
	GraceUndelivered = "reminder_undelivered" // reminders were made, none delivered
	GraceNoReminder  = "no_reminder"          // no reminder was made before the lot expired
)

// RecordGrace is the fallback for lots that expired without an extension
// (ExtendGrace missed them: the job was down, or the profile has no grace,
// or the validity bound left no room): it records every lot of the issuer
// that expired in (now - GraceLookback, now] with points in it, none of
// whose reminders was delivered (or that never got one): the points that
// expired, and grace_until = expiry + the graceDays of the lot's profile,
// which entitles the holder to an operator-approved re-issuance until then
// (docs/notices.md). Pending reminders of expired lots are closed first. It
// returns how many it recorded; a lot (by lot id: an extension moves its
// key) is recorded once.
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
			  AND NOT EXISTS (SELECT 1 FROM grace_records g WHERE g.issuer = l.issuer AND `+graceLotID+` = l.lot_id)
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

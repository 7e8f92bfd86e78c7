package notices

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// lease is how long a claimed notification is hidden from other deliverers
// while its send runs; a crashed deliverer's claims come back after it.
const lease = 2 * time.Minute

// maxBackoff caps the delay between attempts.
const maxBackoff = time.Hour

type claimed struct {
	id, kind, account, channel string
	lotKey, changeID           *string
	offsetDays                 *int
	expiresAt, effectiveAt     *time.Time
	points                     *int64
	summary                    string
	quiet                      *QuietHours
	attempts                   int
}

// Deliver sends up to 50 notifications due at now and records each outcome;
// it returns how many it attempted. Reminders whose lot has expired are
// first closed as undelivered: a late reminder is worth nothing, and the
// grace check takes over. A failed send is retried with exponential
// backoff (re-timed around quiet hours, never past the reminder's expiry)
// up to MaxAttempts; a permanent refusal ends it at once.
func (s *Service) Deliver(ctx context.Context, now time.Time) (int, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE notifications SET status = 'undelivered', finished_at = $2,
			last_error = CASE WHEN last_error = '' THEN 'the lot expired before delivery' ELSE 'the lot expired before delivery; last error: ' || last_error END
		WHERE issuer = $1 AND status = 'pending' AND kind = 'expiry_reminder' AND expires_at <= $2`, s.cfg.IssuerMSP, now); err != nil {
		return 0, err
	}
	rows, err := s.pool.Query(ctx, `UPDATE notifications SET next_attempt_at = $3, attempts = attempts + 1
		WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND issuer = $1 AND next_attempt_at <= $2
			ORDER BY next_attempt_at LIMIT `+fmt.Sprint(deliverChunk)+` FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, account, channel, lot_key, change_id, offset_days, expires_at, effective_at, points, summary,
			quiet_start, quiet_end, quiet_zone, attempts`, s.cfg.IssuerMSP, now, now.Add(lease))
	if err != nil {
		return 0, err
	}
	var cs []claimed
	var c claimed
	var qs, qe *int
	var qz *string
	_, err = pgx.ForEachRow(rows, []any{&c.id, &c.kind, &c.account, &c.channel, &c.lotKey, &c.changeID, &c.offsetDays,
		&c.expiresAt, &c.effectiveAt, &c.points, &c.summary, &qs, &qe, &qz, &c.attempts}, func() error {
		if qs != nil && qe != nil && qz != nil {
			c.quiet = &QuietHours{Start: *qs, End: *qe, Zone: *qz}
		}
		cs = append(cs, c)
		c = claimed{}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range cs {
		if err := s.attempt(ctx, now, c); err != nil {
			return len(cs), err
		}
	}
	return len(cs), nil
}

func (s *Service) attempt(ctx context.Context, now time.Time, c claimed) error {
	if c.channel == "" {
		return s.finish(ctx, now, c.id, StatusUndelivered, Receipt{}, "the consumer has no notification channel")
	}
	rec, err := s.cfg.Sender.Send(ctx, s.message(c, now))
	if err == nil {
		return s.finish(ctx, now, c.id, StatusSent, rec, "")
	}
	msg := truncate(err.Error())
	var deadline time.Time
	if c.expiresAt != nil {
		deadline = *c.expiresAt
	}
	backoff := min(maxBackoff, s.cfg.RetryBase<<min(c.attempts-1, 20))
	next := SendAt(now.Add(backoff), deadline, c.quiet)
	switch {
	case IsPermanent(err):
		return s.finish(ctx, now, c.id, StatusUndelivered, Receipt{}, "refused: "+msg)
	case c.attempts >= s.cfg.MaxAttempts:
		return s.finish(ctx, now, c.id, StatusUndelivered, Receipt{}, fmt.Sprintf("gave up after %d attempts: %s", c.attempts, msg))
	case !deadline.IsZero() && !next.Before(deadline):
		return s.finish(ctx, now, c.id, StatusUndelivered, Receipt{}, "no retry possible before the lot expires: "+msg)
	}
	_, err = s.pool.Exec(ctx, `UPDATE notifications SET next_attempt_at = $2, last_error = $3 WHERE id = $1 AND status = 'pending'`, c.id, next, msg)
	return err
}

func (s *Service) finish(ctx context.Context, now time.Time, id, status string, r Receipt, lastErr string) error {
	var raw []byte
	if r.Raw != nil {
		raw = []byte(r.Raw)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE notifications SET status = $2, finished_at = $3, receipt_id = $4, receipt = $5, last_error = $6
		WHERE id = $1 AND status = 'pending'`, id, status, now, r.ID, raw, lastErr)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		// Another deliverer finished it after our lease ran out: it was
		// sent at least once, which is what we promise.
		s.log.Warn("notification already finished by another deliverer", "id", id)
	}
	return nil
}

// message renders a notification. The wording is the demo's; production
// texts (languages, templates) belong to the gateway or a template store.
func (s *Service) message(c claimed, now time.Time) Message {
	m := Message{ID: c.id, Account: c.account, Channel: c.channel, Kind: c.kind}
	loc := time.UTC
	if p, ok := s.inForce(now); ok {
		if l, err := time.LoadLocation(p.Timezone); err == nil {
			loc = l
		}
	}
	switch c.kind {
	case KindReminder:
		m.LotKey, m.ExpiresAt, m.Points = deref(c.lotKey), c.expiresAt, deref(c.points)
		m.Title = "Green points expiring"
		m.Body = fmt.Sprintf("%d of your green points expire at %s. Use or donate them before then.",
			m.Points, c.expiresAt.In(loc).Format("2006-01-02 15:04 MST"))
	case KindNotice:
		m.ChangeID, m.EffectiveAt = deref(c.changeID), c.effectiveAt
		m.Title = "Changes to your green points terms"
		m.Body = fmt.Sprintf("From %s: %s.", c.effectiveAt.In(loc).Format("2006-01-02 15:04 MST"), c.summary)
	}
	return m
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}

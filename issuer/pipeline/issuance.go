package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// issuance is one ledger IssueBatch item before it is queued.
type issuance struct {
	id          uuid.UUID
	kind        string
	account     string
	category    string
	claim       string
	subClaims   []string
	localDay    string
	occurredAt  time.Time
	notBefore   time.Time
	grams       int64
	points      int64
	record      []byte
	recordHash  string
	rule        quantify.Ref
	methodology quantify.Ref
}

// IssuanceRecord is the canonical, pseudonymous record of how an issuance's
// points were reached: the quantification records of its actions (inputs,
// factors and their sources), the rule version and every rule decision
// (campaign multipliers, caps). Its SHA-256 is in the lot, the record is
// kept for export, so an auditor can recompute grams and points.
type IssuanceRecord struct {
	V               int               `json:"v"`
	Category        string            `json:"category"`
	LocalDay        string            `json:"localDay,omitempty"`
	Grams           int64             `json:"grams"`
	Quantifications []json.RawMessage `json:"quantifications"`
	Rule            quantify.Ref      `json:"rule"`
	RulePoints      int64             `json:"rulePoints"` // before caps
	Points          int64             `json:"points"`
	Decisions       []string          `json:"decisions"`
}

// price computes the issuance's points under the rule set in force when the
// action happened and the profile's caps for its window, and fills in its
// record. It returns a rejection reason when nothing can be issued. Callers
// hold the account's cap lock (lockAccount) so concurrent requests cannot
// both use the last of a cap.
func price(ctx context.Context, tx pgx.Tx, pol *Policy, prof rules.Profile, iss *issuance, recs []quantify.Record) (int64, string, error) {
	rs, err := pol.RuleSet(iss.occurredAt)
	if err != nil {
		return 0, "", err
	}
	iss.rule = quantify.Ref{ID: rs.ID, Version: rs.Version}
	pts, decisions, err := rs.Points(iss.category, iss.grams, iss.occurredAt)
	if err != nil {
		return 0, "", err
	}
	rulePoints := pts
	if err := lockAccount(ctx, tx, iss.account); err != nil {
		return 0, "", err
	}
	for _, c := range prof.Caps {
		if c.Category != iss.category || pts == 0 {
			continue
		}
		start, end := prof.PeriodWindow(c.Period, iss.occurredAt)
		var used int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(points), 0) FROM issuances WHERE account = $1 AND category = $2
			AND occurred_at >= $3 AND occurred_at < $4 AND status IN ('queued', 'issued')`,
			iss.account, iss.category, start, end).Scan(&used); err != nil {
			return 0, "", fmt.Errorf("sum points in cap window: %w", err)
		}
		granted, capped := rules.ApplyCap(c, used, pts)
		if capped {
			decisions = append(decisions, fmt.Sprintf("cap_%s_%s: %d of %d points (%d used of %d)", c.Category, c.Period, granted, pts, used, c.MaxPoints))
		}
		pts = granted
	}
	rec := IssuanceRecord{V: 1, Category: iss.category, LocalDay: iss.localDay, Grams: iss.grams, Rule: iss.rule,
		RulePoints: rulePoints, Points: pts, Decisions: decisions}
	if rec.Decisions == nil {
		rec.Decisions = []string{}
	}
	for _, r := range recs {
		rec.Quantifications = append(rec.Quantifications, r.Canonical())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(b)
	iss.record, iss.recordHash, iss.points = b, hex.EncodeToString(sum[:]), pts
	switch {
	case pts > 0:
		return pts, "", nil
	case rulePoints > 0:
		return 0, evidence.ReasonCapReached, nil
	default:
		return 0, ReasonBelowOnePoint, nil
	}
}

// lockAccount serialises cap checks of one account across requests and
// server instances (a transaction-scoped advisory lock).
func lockAccount(ctx context.Context, tx pgx.Tx, account string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('greenpoints/cap/' || $1, 0))`, account)
	if err != nil {
		return fmt.Errorf("lock account caps: %w", err)
	}
	return nil
}

// insertIssuance queues an issuance in the outbox.
func insertIssuance(ctx context.Context, tx pgx.Tx, iss *issuance) error {
	sub := iss.subClaims
	if sub == nil {
		sub = []string{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO issuances (id, kind, account, category, claim, sub_claims, local_day, occurred_at,
		grams, points, record, record_hash, rule_id, rule_version, methodology_id, methodology_version, not_before, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'queued')`,
		iss.id, iss.kind, iss.account, iss.category, iss.claim, sub, iss.localDay, iss.occurredAt,
		iss.grams, iss.points, json.RawMessage(iss.record), iss.recordHash, iss.rule.ID, iss.rule.Version,
		iss.methodology.ID, iss.methodology.Version, iss.notBefore)
	if err != nil {
		return fmt.Errorf("queue issuance: %w", err)
	}
	return nil
}

// price is the request-side entry to price.
func (w *work) price(ctx context.Context, prof rules.Profile, iss *issuance, recs []quantify.Record) (int64, string, error) {
	return price(ctx, w.tx, w.s.policy, prof, iss, recs)
}

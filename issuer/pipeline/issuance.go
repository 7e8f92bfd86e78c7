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
// action happened and the profile's caps for its window (the batcher's
// transit grants), reading the account's usage. The caller holds the
// account's cap lock (grant takes it before numbering the grant).
func price(ctx context.Context, tx pgx.Tx, pol *Policy, prof rules.Profile, iss *issuance, recs []quantify.Record) (int64, string, error) {
	u := newUsage()
	for _, c := range prof.Caps {
		if c.Category == iss.category {
			start, end := prof.PeriodWindow(c.Period, iss.occurredAt)
			u.want(iss.account, iss.category, start, end)
		}
	}
	if err := u.load(ctx, tx); err != nil {
		return 0, "", err
	}
	return priceWith(pol, prof, iss, recs, u)
}

// priceWith prices an issuance given the usage of its cap windows (which it
// updates), and fills in its record. It returns a rejection reason when
// nothing can be issued. Callers hold the account's cap lock so concurrent
// requests cannot both use the last of a cap.
func priceWith(pol *Policy, prof rules.Profile, iss *issuance, recs []quantify.Record, u *usage) (int64, string, error) {
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
	type window struct{ start, end time.Time }
	var windows []window
	for _, c := range prof.Caps {
		if c.Category != iss.category {
			continue
		}
		start, end := prof.PeriodWindow(c.Period, iss.occurredAt)
		windows = append(windows, window{start, end})
		if pts == 0 {
			continue
		}
		used := u.get(iss.account, iss.category, start, end)
		granted, capped := rules.ApplyCap(c, used, pts)
		if capped {
			decisions = append(decisions, fmt.Sprintf("cap_%s_%s: %d of %d points (%d used of %d)", c.Category, c.Period, granted, pts, used, c.MaxPoints))
		}
		pts = granted
	}
	for _, w := range windows {
		u.add(iss.account, iss.category, w.start, w.end, pts)
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

// insertIssuances queues issuances in the outbox, in one statement.
func insertIssuances(ctx context.Context, tx pgx.Tx, list []*issuance) error {
	b := &pgx.Batch{}
	if err := queueIssuances(b, list); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("queue issuances: %w", err)
	}
	return nil
}

// queueIssuances queues insertIssuances' statement into b.
func queueIssuances(b *pgx.Batch, list []*issuance) error {
	if len(list) == 0 {
		return nil
	}
	n := len(list)
	ids, kinds, accts, cats, claims, subs, days, ats, grams, pts, recs, hashes, rids, rvs, mids, mvs, nbs := make([][16]byte, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]time.Time, n), make([]int64, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	for i, iss := range list {
		sub, err := json.Marshal(iss.subClaims)
		if err != nil {
			return err
		}
		if iss.subClaims == nil {
			sub = []byte("[]")
		}
		ids[i], kinds[i], accts[i], cats[i], claims[i], subs[i], days[i], ats[i], grams[i], pts[i], recs[i], hashes[i], rids[i], rvs[i], mids[i], mvs[i], nbs[i] =
			iss.id, iss.kind, iss.account, iss.category, iss.claim, string(sub), iss.localDay, iss.occurredAt, iss.grams, iss.points,
			string(iss.record), iss.recordHash, iss.rule.ID, iss.rule.Version, iss.methodology.ID, iss.methodology.Version, iss.notBefore
	}
	// Sub-claims travel as a JSON array per row (unnest cannot take an
	// array of arrays of different lengths).
	b.Queue(`INSERT INTO issuances (id, kind, account, category, claim, sub_claims, local_day, occurred_at,
		grams, points, record, record_hash, rule_id, rule_version, methodology_id, methodology_version, not_before, status)
		SELECT u.id, u.kind, u.acct, u.cat, u.claim, ARRAY(SELECT jsonb_array_elements_text(u.sub::jsonb)), u.day, u.at,
			u.grams, u.pts, u.rec::json, u.hash, u.rid, u.rv, u.mid, u.mv, u.nb, 'queued'
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
			$9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::timestamptz[])
			AS u(id, kind, acct, cat, claim, sub, day, at, grams, pts, rec, hash, rid, rv, mid, mv, nb)`,
		ids, kinds, accts, cats, claims, subs, days, ats, grams, pts, recs, hashes, rids, rvs, mids, mvs, nbs)
	return nil
}

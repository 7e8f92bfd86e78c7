package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// maxDaysPerRound bounds one grouping round: (account, local day) pairs.
const maxDaysPerRound = 200

type dueTrip struct {
	id         uuid.UUID
	account    string
	day        string
	claim      string
	grams      int64
	occurredAt time.Time
	rec        quantify.Record
}

// groupTrips turns each account's due trips of one local day into a transit
// grant: one issuance whose claim is the grant's and whose sub-claims are
// the trips', so each trip stays unique network-wide while the consumer gets
// one lot per day. Trips arriving after a day's grant make a supplemental
// grant (the next sequence number of that day).
//
// Two instances never split one day's trips: each (account, day) is taken
// under a try-lock, and the instance that gets it groups all of that day's
// due trips at once.
func (b *Batcher) groupTrips(ctx context.Context) (int, error) {
	var n int
	err := database.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		now := b.s.cfg.Now()
		rows, err := tx.Query(ctx, `SELECT account, local_day FROM actions
			WHERE kind = 'transit' AND status = 'queued' AND not_before <= $1
			GROUP BY account, local_day ORDER BY min(not_before) LIMIT $2`, now, maxDaysPerRound)
		if err != nil {
			return err
		}
		type day struct{ account, day string }
		days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (day, error) {
			var d day
			err := r.Scan(&d.account, &d.day)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range days {
			var mine bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockKey("greenpoints/grant/"+d.account+"/"+d.day)).Scan(&mine); err != nil {
				return err
			}
			if !mine {
				continue // another worker is granting this day
			}
			trips, err := dueTrips(ctx, tx, d.account, d.day, now)
			if err != nil {
				return err
			}
			n += len(trips)
			for start := 0; start < len(trips); {
				end := start + 1
				for end < len(trips) && end-start < points.MaxSubClaims && trips[end].rec.Methodology == trips[start].rec.Methodology {
					end++
				}
				if err := b.grant(ctx, tx, trips[start:end]); err != nil {
					return err
				}
				start = end
			}
		}
		return nil
	})
	return n, err
}

// dueTrips locks and returns an account's due trips of one local day.
func dueTrips(ctx context.Context, tx pgx.Tx, account, localDay string, now time.Time) ([]dueTrip, error) {
	rows, err := tx.Query(ctx, `SELECT id, account, local_day, claim, grams, occurred_at, record FROM actions
		WHERE kind = 'transit' AND status = 'queued' AND account = $1 AND local_day = $2 AND not_before <= $3
		ORDER BY occurred_at, id FOR UPDATE`, account, localDay, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var trips []dueTrip
	for rows.Next() {
		var t dueTrip
		var rec []byte
		if err := rows.Scan(&t.id, &t.account, &t.day, &t.claim, &t.grams, &t.occurredAt, &rec); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(rec, &t.rec); err != nil {
			return nil, fmt.Errorf("decode trip record %s: %w", t.id, err)
		}
		trips = append(trips, t)
	}
	return trips, rows.Err()
}

// grant queues one transit grant for trips of one account, day and methodology.
func (b *Batcher) grant(ctx context.Context, tx pgx.Tx, trips []dueTrip) error {
	first := trips[0]
	if err := lockAccount(ctx, tx, first.account); err != nil {
		return err
	}
	var seq int
	if err := tx.QueryRow(ctx, `SELECT count(*) + 1 FROM issuances WHERE kind = 'transit' AND account = $1 AND local_day = $2`,
		first.account, first.day).Scan(&seq); err != nil {
		return err
	}
	// The grant's canonical id names the issuer, account, day and sequence:
	// unique per issuer, and the same on a retry of this very grant.
	gid := fmt.Sprintf("grant|%s|%s|%s|%d", b.s.cfg.IssuerMSP, first.account, first.day, seq)
	iss := issuance{id: uuid.Must(uuid.NewV7()), kind: CategoryTransit, account: first.account, category: CategoryTransit,
		claim: evidence.Claim(b.s.cfg.ClaimKey, gid), localDay: first.day, occurredAt: first.occurredAt,
		notBefore: b.s.cfg.Now(), methodology: first.rec.Methodology}
	recs := make([]quantify.Record, len(trips))
	ids := make([]uuid.UUID, len(trips))
	for i, t := range trips {
		iss.subClaims = append(iss.subClaims, t.claim)
		iss.grams += t.grams
		recs[i], ids[i] = t.rec, t.id
	}
	prof, err := b.s.policy.Profile(first.occurredAt)
	if err != nil {
		return err
	}
	_, reason, err := price(ctx, tx, b.s.policy, prof, &iss, recs)
	if err != nil {
		return err
	}
	if reason != "" {
		rows, err := tx.Query(ctx, `UPDATE actions SET status = 'rejected', reason = $2, updated_at = now() WHERE id = ANY($1)
			RETURNING id, partner_id, partner_tx_id, grams`, ids, reason)
		if err != nil {
			return err
		}
		type rej struct {
			id            uuid.UUID
			partner, txID string
			grams         int64
		}
		var rs []rej
		for rows.Next() {
			var r rej
			if err := rows.Scan(&r.id, &r.partner, &r.txID, &r.grams); err != nil {
				rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range rs {
			if err := queueCallback(ctx, tx, r.partner, "action.rejected", map[string]any{"actionId": r.id.String(),
				"transactionId": r.txID, "kind": CategoryTransit, "grams": r.grams, "status": "rejected", "reason": reason}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := insertIssuances(ctx, tx, []*issuance{&iss}); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE actions SET status = 'grouped', issuance_id = $2, updated_at = now() WHERE id = ANY($1)`, ids, iss.id)
	return err
}

// reverse submits queued reversals (refunds and chargebacks of issued
// actions) one ledger transaction each: an issuance's whole claim, or a
// refunded trip's share of its grant by the trip's sub-claim.
func (b *Batcher) reverse(ctx context.Context) (int, error) {
	var n int
	err := database.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, issuance_id, action_id, claim, points, reason FROM reversals WHERE status = 'queued'
			ORDER BY created_at LIMIT 20 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return err
		}
		type rev struct {
			id, issuance  uuid.UUID
			action        *uuid.UUID // a trip's share; nil: the whole claim
			claim, reason string
			points        *int64
		}
		var rs []rev
		for rows.Next() {
			var r rev
			if err := rows.Scan(&r.id, &r.issuance, &r.action, &r.claim, &r.points, &r.reason); err != nil {
				rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(rs)
		for _, r := range rs {
			var res points.ReverseResult
			_, tried, err := b.submit(ctx, "Reverse", points.ReverseArgs{Claim: r.claim, Reason: r.reason, ItemID: r.id.String(), Points: r.points}, &res)
			status, errText, earlier := "done", "", isAlreadyReversed(err)
			switch {
			case err == nil:
			case earlier:
				// An earlier attempt committed before a crash: the reversal is done.
			case isGrantReversed(err):
				// The trip's share went with its whole grant: done, nothing clawed here.
				errText = err.Error()
			case isRejection(err):
				status, errText = "failed", err.Error()
				b.log.Error("ledger refused a reversal", "reversal", r.id, "err", err)
			default:
				return err // unknown outcome: retried later; a repeat reports already_reversed
			}
			result, _ := json.Marshal(res)
			if _, err := tx.Exec(ctx, `UPDATE reversals SET status = $2, attempts = attempts + 1, tx_ids = tx_ids || $3,
				result = $4, error = $5, done_at = now() WHERE id = $1`, r.id, status, tried, result, errText); err != nil {
				return err
			}
			if status != "done" {
				continue
			}
			rv := res.Reversal
			extra := map[string]any{"pointsReversed": rv.Clawed + rv.Expired + rv.Debt, "pointsClawed": rv.Clawed,
				"pointsExpired": rv.Expired, "debt": rv.Debt, "debtNow": res.DebtNow}
			if r.action != nil {
				// One trip of a grant that stays issued for its other trips.
				if earlier {
					extra["pointsReversed"] = *r.points // the share the ledger took then
				}
				if err := b.settle(ctx, tx, []settlement{{issuance: r.issuance, action: *r.action, status: "reversed", reason: r.reason, extra: extra}}); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE issuances SET status = 'reversed', reason = $2, updated_at = now() WHERE id = $1`, r.issuance, r.reason); err != nil {
				return err
			}
			if err := b.settleActions(ctx, tx, r.issuance, "reversed", r.reason, extra); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// grantFacts are what a transit grant's points were computed from.
type grantFacts struct {
	category            string
	occurredAt          time.Time
	ruleID, ruleVersion string
	points, grams       int64
}

// tripShare is a refunded trip's share of its transit grant: the points
// the grant would not have earned without the trip, the grant's trips
// refunded before (refundedGrams) being gone already.
//
// The grant was priced (priceWith) as points = min(R(grams), room): R the
// rule points of the day's grams under the rule set in force at the grant's
// time (campaign multipliers included), room the least cap room of the
// grant's cap windows then. The room is not stored and is not needed: it
// is at least points, and equals points when a cap cut the grant, and R
// never grows when grams shrink, so for the grams of any of the grant's
// trips min(R(g), room) = min(R(g), points). The share is
//
//	min(R(g), points) - min(R(g - trip), points),  g = grams - refundedGrams,
//
// never negative (0 when the day was capped beyond the trip), and the
// shares of all of a grant's trips, refunded in any order, add up to
// exactly its points: the ledger never reverses more than the grant.
func tripShare(pol *Policy, g grantFacts, refundedGrams, tripGrams int64) (int64, error) {
	i := slices.IndexFunc(pol.Rules, func(r rules.RuleSet) bool { return r.ID == g.ruleID && r.Version == g.ruleVersion })
	if i < 0 {
		return 0, fmt.Errorf("transit grant priced under rule set %s@%s, which the policy does not publish", g.ruleID, g.ruleVersion)
	}
	worth := func(grams int64) (int64, error) {
		if grams <= 0 {
			return 0, nil
		}
		pts, _, err := pol.Rules[i].Points(g.category, grams, g.occurredAt)
		return min(pts, g.points), err
	}
	before, err := worth(g.grams - refundedGrams)
	if err != nil {
		return 0, err
	}
	after, err := worth(g.grams - refundedGrams - tripGrams)
	if err != nil {
		return 0, err
	}
	return max(before-after, 0), nil
}

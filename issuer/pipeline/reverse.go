package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// reverse handles the request's refunds and chargebacks: what a payment
// earned is cancelled while still held, or clawed back on the ledger once
// issued (a reversal row the batcher submits).
//
// Lock order: issuance rows first (in id order), then their actions, the
// order the batcher uses (it locks issuances, then updates their actions),
// so a refund racing the batcher waits for its commit instead of
// deadlocking.
func (w *work) reverse(ctx context.Context, evs []*newEvent) error {
	if len(evs) == 0 {
		return nil
	}
	txIDs := make([]string, len(evs))
	byTx := map[string]*newEvent{}
	for i, n := range evs {
		txIDs[i] = n.ev.txID
		byTx[n.ev.txID] = n
	}
	type act struct {
		id, issuance uuid.UUID
		kind, txID   string
		line         int
	}
	rows, err := w.tx.Query(ctx, `SELECT id, kind, line, issuance_id, partner_tx_id FROM actions
		WHERE partner_id = $1 AND partner_tx_id = ANY($2) AND issuance_id IS NOT NULL ORDER BY partner_tx_id, line`, w.req.Partner.ID, txIDs)
	if err != nil {
		return fmt.Errorf("find actions to reverse: %w", err)
	}
	acts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (act, error) {
		var a act
		err := r.Scan(&a.id, &a.kind, &a.line, &a.issuance, &a.txID)
		return a, err
	})
	if err != nil {
		return fmt.Errorf("find actions to reverse: %w", err)
	}
	var issIDs []uuid.UUID
	for _, a := range acts {
		if a.kind != CategoryTransit {
			issIDs = append(issIDs, a.issuance)
		}
	}
	slices.SortFunc(issIDs, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	type iss struct {
		status, claim string
		points, grams int64
	}
	locked := map[uuid.UUID]iss{}
	if len(issIDs) > 0 {
		rows, err := w.tx.Query(ctx, `SELECT id, status, claim, points, grams FROM issuances WHERE id = ANY($1) ORDER BY id FOR UPDATE`, issIDs)
		if err != nil {
			return fmt.Errorf("lock issuances: %w", err)
		}
		for rows.Next() {
			var id uuid.UUID
			var i iss
			if err := rows.Scan(&id, &i.status, &i.claim, &i.points, &i.grams); err != nil {
				rows.Close()
				return err
			}
			locked[id] = i
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var cancelIss, cancelAct, revAct, revIDs, revIss []uuid.UUID
	var cancelReasons, revClaims, revReasons []string
	results := map[*newEvent][]ActionResult{}
	reversing := map[*newEvent]bool{}
	for _, a := range acts {
		n := byTx[a.txID]
		r := ActionResult{ActionID: a.id.String(), Kind: a.kind, Line: a.line}
		if a.kind == CategoryTransit {
			r.Status, r.Reason = "issued", ReasonTransitNotReverse
			results[n] = append(results[n], r)
			continue
		}
		i := locked[a.issuance]
		r.Points, r.Grams = i.points, i.grams
		switch i.status {
		case "queued":
			cancelIss, cancelReasons, cancelAct = append(cancelIss, a.issuance), append(cancelReasons, n.ev.status), append(cancelAct, a.id)
			r.Status, r.Reason = "cancelled", evidence.ReasonRefundBeforeIssue
			reversing[n] = true
		case "issued":
			revIDs, revIss, revClaims, revReasons, revAct = append(revIDs, uuid.Must(uuid.NewV7())), append(revIss, a.issuance),
				append(revClaims, i.claim), append(revReasons, n.ev.status), append(revAct, a.id)
			r.Status = "reversal_queued"
			reversing[n] = true
		default:
			r.Status = i.status // rejected, cancelled or reversed already: nothing to do
		}
		results[n] = append(results[n], r)
	}
	b := &pgx.Batch{}
	if len(cancelIss) > 0 {
		b.Queue(`UPDATE issuances i SET status = 'cancelled', reason = u.r, updated_at = now() FROM unnest($1::uuid[], $2::text[]) AS u(id, r)
			WHERE i.id = u.id`, cancelIss, cancelReasons)
		b.Queue(`UPDATE actions SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = ANY($1)`, cancelAct, evidence.ReasonRefundBeforeIssue)
	}
	if len(revIDs) > 0 {
		b.Queue(`INSERT INTO reversals (id, issuance_id, claim, reason, status)
			SELECT u.id, u.iss, u.claim, u.r, 'queued' FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(id, iss, claim, r)
			ON CONFLICT (issuance_id) DO NOTHING`, revIDs, revIss, revClaims, revReasons)
		b.Queue(`UPDATE actions SET status = 'reversal_queued', updated_at = now() WHERE id = ANY($1)`, revAct)
	}
	if b.Len() > 0 {
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("cancel and queue reversals: %w", err)
		}
	}
	for _, n := range evs {
		switch {
		case reversing[n]:
			n.out = outcome{status: OutcomeAccepted, actions: results[n]}
		default:
			n.out = outcome{status: OutcomeRecorded, reason: ReasonNothingToReverse, actions: results[n]}
		}
	}
	return nil
}

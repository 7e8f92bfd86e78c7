package pipeline

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// reverse handles a refund or chargeback: what the payment earned is
// cancelled while still held, or clawed back on the ledger once issued.
//
// Lock order: the issuance row first, then its action, the same order the
// batcher uses (it locks issuances, then updates their actions), so a refund
// racing the batcher waits for its commit instead of deadlocking.
func (w *work) reverse(ctx context.Context, t *evidence.CardTransaction) (outcome, error) {
	rows, err := w.tx.Query(ctx, `SELECT id, kind, line, issuance_id FROM actions
		WHERE partner_id = $1 AND partner_tx_id = $2 AND issuance_id IS NOT NULL ORDER BY line`, w.req.Partner.ID, t.TransactionID)
	if err != nil {
		return outcome{}, fmt.Errorf("find actions to reverse: %w", err)
	}
	type act struct {
		id, issuance uuid.UUID
		kind         string
		line         int
	}
	var acts []act
	for rows.Next() {
		var a act
		if err := rows.Scan(&a.id, &a.kind, &a.line, &a.issuance); err != nil {
			rows.Close()
			return outcome{}, err
		}
		acts = append(acts, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return outcome{}, err
	}
	if len(acts) == 0 {
		return outcome{status: OutcomeRecorded, reason: ReasonNothingToReverse}, nil
	}
	var results []ActionResult
	reversing := false
	for _, a := range acts {
		r := ActionResult{ActionID: a.id.String(), Kind: a.kind, Line: a.line}
		if a.kind == CategoryTransit {
			r.Status, r.Reason = "issued", ReasonTransitNotReverse
			results = append(results, r)
			continue
		}
		var status, claim string
		var pts, grams int64
		if err := w.tx.QueryRow(ctx, `SELECT status, claim, points, grams FROM issuances WHERE id = $1 FOR UPDATE`, a.issuance).Scan(&status, &claim, &pts, &grams); err != nil {
			return outcome{}, fmt.Errorf("lock issuance: %w", err)
		}
		r.Points, r.Grams = pts, grams
		switch status {
		case "queued":
			if _, err := w.tx.Exec(ctx, `UPDATE issuances SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = $1`, a.issuance, t.Status); err != nil {
				return outcome{}, err
			}
			if _, err := w.tx.Exec(ctx, `UPDATE actions SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = $1`, a.id, evidence.ReasonRefundBeforeIssue); err != nil {
				return outcome{}, err
			}
			r.Status, r.Reason = "cancelled", evidence.ReasonRefundBeforeIssue
			reversing = true
		case "issued":
			if _, err := w.tx.Exec(ctx, `INSERT INTO reversals (id, issuance_id, claim, reason, status) VALUES ($1, $2, $3, $4, 'queued')
				ON CONFLICT (issuance_id) DO NOTHING`, uuid.Must(uuid.NewV7()), a.issuance, claim, t.Status); err != nil {
				return outcome{}, fmt.Errorf("queue reversal: %w", err)
			}
			if _, err := w.tx.Exec(ctx, `UPDATE actions SET status = 'reversal_queued', updated_at = now() WHERE id = $1`, a.id); err != nil {
				return outcome{}, err
			}
			r.Status = "reversal_queued"
			reversing = true
		default:
			r.Status = status // rejected, cancelled or reversed already: nothing to do
		}
		results = append(results, r)
	}
	if !reversing {
		return outcome{status: OutcomeRecorded, reason: ReasonNothingToReverse, actions: results}, nil
	}
	return outcome{status: OutcomeAccepted, actions: results}, nil
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// maxLockRounds bounds reverse's attempts to lock a refund's actions with
// the issuances they belong to (see lockReversing).
const maxLockRounds = 3

// reversing is an action a refund or chargeback names, as found under its
// locks.
type reversing struct {
	id, issuance uuid.UUID // issuance: uuid.Nil for a trip not yet granted
	kind, txID   string
	status       string // the action's
	claim        string
	grams        int64
	line         int
}

// lockedIssuance is an issuance locked for a refund.
type lockedIssuance struct {
	status, claim string
	grant         grantFacts // its points and grams; for a transit grant, what a trip's share is computed from
}

// reverse handles the request's refunds and chargebacks: what a payment
// earned is cancelled while still waiting, or clawed back on the ledger once
// issued (a reversal row the batcher submits).
//
//   - An appliance line: its issuance is cancelled while queued; once issued,
//     its claim is reversed whole.
//   - A card-paid fare (a trip): while it waits for its day's grant it is
//     cancelled (refund_before_issue) and the grant is made without it; if
//     the grant is queued but not yet on the ledger, the grant is cancelled
//     and its other trips go back to wait for a new grant; once the grant is
//     issued, the trip's sub-claim gives back its share of the grant
//     (tripShare) and the grant's other trips keep theirs.
//
// Anything else (rejected, cancelled, reversed or being reversed already)
// is left alone: the event is recorded, nothing_to_reverse.
func (w *work) reverse(ctx context.Context, evs []*newEvent) error {
	// A shared transaction may carry several partners' refunds: each
	// partner's in turn, in id order (an action's partner is the one that
	// reported it, so transaction ids are per partner).
	byPartner := map[string][]*newEvent{}
	for _, n := range evs {
		byPartner[n.ev.partner().ID] = append(byPartner[n.ev.partner().ID], n)
	}
	for _, p := range slices.Sorted(maps.Keys(byPartner)) {
		if err := w.reversePartner(ctx, p, byPartner[p]); err != nil {
			return err
		}
	}
	return nil
}

// reversePartner is reverse for one partner's refunds and chargebacks.
func (w *work) reversePartner(ctx context.Context, partner string, evs []*newEvent) error {
	txIDs := make([]string, len(evs))
	byTx := map[string]*newEvent{}
	for i, n := range evs {
		txIDs[i] = n.ev.txID
		byTx[n.ev.txID] = n
	}
	acts, locked, err := w.lockReversing(ctx, partner, txIDs)
	if err != nil {
		return err
	}
	// Grams of each grant's trips refunded before, and in this request.
	refunded, err := w.refundedGrams(ctx, locked)
	if err != nil {
		return err
	}
	var q reversalQueue
	results := map[*newEvent][]ActionResult{}
	acted := map[*newEvent]bool{}
	for _, a := range acts {
		n := byTx[a.txID]
		r := ActionResult{ActionID: a.id.String(), Kind: a.kind, Line: a.line, Grams: a.grams}
		var ok bool
		var err error
		if a.kind == CategoryTransit {
			ok, err = q.trip(w.s.policy, &r, a, locked, refunded, n.ev.status)
		} else {
			ok = q.appliance(&r, a, locked[a.issuance], n.ev.status)
		}
		if err != nil {
			return err
		}
		acted[n] = acted[n] || ok
		results[n] = append(results[n], r)
	}
	if err := q.send(ctx, w.tx); err != nil {
		return err
	}
	for _, n := range evs {
		if acted[n] {
			n.out = outcome{status: OutcomeAccepted, actions: results[n]}
		} else {
			n.out = outcome{status: OutcomeRecorded, reason: ReasonNothingToReverse, actions: results[n]}
		}
	}
	return nil
}

// lockReversing finds the actions of the partner's transactions that may
// have something to reverse (those with an issuance, and trips still
// waiting for their day's grant) and locks them with their issuances, then
// returns them as they are under the locks.
//
// Lock order: issuance rows first (in id order), then actions, the
// batcher's order (it locks issuances, then updates their actions), so a
// refund racing the batcher waits for its commit instead of deadlocking.
// A trip can be grouped into a new grant between the first read and the
// lock of its row; the grant's row was then not locked first. The round is
// rolled back to its savepoint (releasing its locks) and run again, at most
// maxLockRounds times: grouping happens once per trip and day, so a second
// round finds the trip's grant at once.
func (w *work) lockReversing(ctx context.Context, partner string, txIDs []string) ([]reversing, map[uuid.UUID]*lockedIssuance, error) {
	// Savepoints by statement: the intake transaction may be a pipelined
	// one on a bare connection, without pgx's nested transactions.
	for round := 1; ; round++ {
		if _, err := w.tx.Exec(ctx, `SAVEPOINT refund_locks`); err != nil {
			return nil, nil, err
		}
		acts, locked, err := lockRound(ctx, w.tx, partner, txIDs)
		if errors.Is(err, errRegrouped) && round < maxLockRounds {
			if _, err := w.tx.Exec(ctx, `ROLLBACK TO SAVEPOINT refund_locks`); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		_, err = w.tx.Exec(ctx, `RELEASE SAVEPOINT refund_locks`)
		return acts, locked, err
	}
}

// errRegrouped: a trip was grouped into a grant while a refund locked it.
var errRegrouped = errors.New("a refunded trip was grouped into a grant meanwhile")

func lockRound(ctx context.Context, tx dbtx, partner string, txIDs []string) ([]reversing, map[uuid.UUID]*lockedIssuance, error) {
	// Trips of card-paid fares are found by the bank's transaction id; trip
	// records of operators (another partner) have no refund.
	rows, err := tx.Query(ctx, `SELECT id, kind, line, coalesce(issuance_id, '00000000-0000-0000-0000-000000000000'), partner_tx_id,
		status, claim, grams FROM actions
		WHERE partner_id = $1 AND partner_tx_id = ANY($2) AND (issuance_id IS NOT NULL OR (kind = 'transit' AND status = 'queued'))
		ORDER BY partner_tx_id, line, id`, partner, txIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("find actions to reverse: %w", err)
	}
	acts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (reversing, error) {
		var a reversing
		err := r.Scan(&a.id, &a.kind, &a.line, &a.issuance, &a.txID, &a.status, &a.claim, &a.grams)
		return a, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("find actions to reverse: %w", err)
	}
	var issIDs, tripIDs []uuid.UUID
	for _, a := range acts {
		if a.issuance != uuid.Nil {
			issIDs = append(issIDs, a.issuance)
		}
		if a.kind == CategoryTransit {
			tripIDs = append(tripIDs, a.id)
		}
	}
	slices.SortFunc(issIDs, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	issIDs = slices.Compact(issIDs)
	locked := map[uuid.UUID]*lockedIssuance{}
	if len(issIDs) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, status, claim, points, grams, category, occurred_at, rule_id, rule_version
			FROM issuances WHERE id = ANY($1) ORDER BY id FOR UPDATE`, issIDs)
		if err != nil {
			return nil, nil, fmt.Errorf("lock issuances: %w", err)
		}
		for rows.Next() {
			var id uuid.UUID
			i := &lockedIssuance{}
			g := &i.grant
			if err := rows.Scan(&id, &i.status, &i.claim, &g.points, &g.grams, &g.category, &g.occurredAt, &g.ruleID, &g.ruleVersion); err != nil {
				rows.Close()
				return nil, nil, err
			}
			locked[id] = i
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
	}
	if len(tripIDs) == 0 {
		return acts, locked, nil
	}
	// The trips themselves, as they are now: the batcher may have granted,
	// issued or split their grant while the issuances above were awaited.
	rows, err = tx.Query(ctx, `SELECT id, status, coalesce(issuance_id, '00000000-0000-0000-0000-000000000000') FROM actions
		WHERE id = ANY($1) ORDER BY id FOR UPDATE`, tripIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("lock trips: %w", err)
	}
	type state struct {
		status   string
		issuance uuid.UUID
	}
	now := map[uuid.UUID]state{}
	for rows.Next() {
		var id uuid.UUID
		var s state
		if err := rows.Scan(&id, &s.status, &s.issuance); err != nil {
			rows.Close()
			return nil, nil, err
		}
		now[id] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for i := range acts {
		s, ok := now[acts[i].id]
		if !ok {
			continue
		}
		if _, held := locked[s.issuance]; s.issuance != uuid.Nil && !held {
			return nil, nil, errRegrouped
		}
		acts[i].status, acts[i].issuance = s.status, s.issuance
	}
	return acts, locked, nil
}

// refundedGrams returns, per locked transit grant, the grams of its trips
// refunded before (reversed or being reversed): the trips a new refund's
// share no longer counts.
func (w *work) refundedGrams(ctx context.Context, locked map[uuid.UUID]*lockedIssuance) (map[uuid.UUID]int64, error) {
	out := map[uuid.UUID]int64{}
	ids := make([]uuid.UUID, 0, len(locked))
	for id := range locked {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := w.tx.Query(ctx, `SELECT issuance_id, sum(grams)::bigint FROM actions
		WHERE issuance_id = ANY($1) AND kind = 'transit' AND status IN ('reversal_queued', 'reversed') GROUP BY issuance_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("sum refunded trips: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var g int64
		if err := rows.Scan(&id, &g); err != nil {
			return nil, err
		}
		out[id] = g
	}
	return out, rows.Err()
}

// reversalQueue gathers a request's cancellations and reversals, written
// by send in one round trip.
type reversalQueue struct {
	cancelIss     []uuid.UUID // appliance issuances, with the event status as reason
	cancelReasons []string
	cancelAct     []uuid.UUID // their actions
	cancelGrants  []uuid.UUID // transit grants not yet submitted
	cancelTrips   []uuid.UUID // trips dropped from (or before) their grant

	wholeIDs, wholeIss, wholeAct []uuid.UUID // reversals of an issuance's whole claim
	wholeClaims, wholeReasons    []string
	tripIDs, tripIss, tripAct    []uuid.UUID // reversals of a trip's share
	tripClaims, tripReasons      []string
	tripPoints                   []int64
}

// appliance decides an appliance line's refund; it reports whether
// anything is cancelled or queued.
func (q *reversalQueue) appliance(r *ActionResult, a reversing, i *lockedIssuance, status string) bool {
	if i == nil {
		r.Status = a.status
		return false
	}
	r.Points = i.grant.points
	switch i.status {
	case "queued":
		q.cancelIss, q.cancelReasons, q.cancelAct = append(q.cancelIss, a.issuance), append(q.cancelReasons, status), append(q.cancelAct, a.id)
		r.Status, r.Reason = "cancelled", evidence.ReasonRefundBeforeIssue
		return true
	case "issued":
		q.wholeIDs, q.wholeIss, q.wholeAct = append(q.wholeIDs, uuid.Must(uuid.NewV7())), append(q.wholeIss, a.issuance), append(q.wholeAct, a.id)
		q.wholeClaims, q.wholeReasons = append(q.wholeClaims, i.claim), append(q.wholeReasons, status)
		r.Status = "reversal_queued"
		return true
	}
	r.Status = i.status // rejected, cancelled or reversed already: nothing to do
	return false
}

// trip decides a card-paid fare's refund; it reports whether anything is
// cancelled or queued. refunded accumulates, per grant, the grams of its
// refunded trips, so that two trips of one grant refunded in one request
// each give back their own share.
func (q *reversalQueue) trip(pol *Policy, r *ActionResult, a reversing, locked map[uuid.UUID]*lockedIssuance, refunded map[uuid.UUID]int64, status string) (bool, error) {
	i := locked[a.issuance]
	switch {
	case a.status == "queued" && i == nil: // waiting for its day's grant
	case a.status == "grouped" && i != nil && i.status == "queued": // in a grant not yet submitted
		if !slices.Contains(q.cancelGrants, a.issuance) {
			q.cancelGrants = append(q.cancelGrants, a.issuance)
		}
	case a.status == "issued" && i != nil && i.status == "issued":
		pts, err := tripShare(pol, i.grant, refunded[a.issuance], a.grams)
		if err != nil {
			return false, err
		}
		refunded[a.issuance] += a.grams
		q.tripIDs, q.tripIss, q.tripAct = append(q.tripIDs, uuid.Must(uuid.NewV7())), append(q.tripIss, a.issuance), append(q.tripAct, a.id)
		q.tripClaims, q.tripReasons, q.tripPoints = append(q.tripClaims, a.claim), append(q.tripReasons, status), append(q.tripPoints, pts)
		r.Status, r.Points = "reversal_queued", pts
		return true, nil
	default:
		r.Status = a.status // rejected, cancelled, reversed or being reversed already: nothing to do
		return false, nil
	}
	q.cancelTrips = append(q.cancelTrips, a.id)
	r.Status, r.Reason = "cancelled", evidence.ReasonRefundBeforeIssue
	return true, nil
}

// send writes the queue in one round trip.
func (q *reversalQueue) send(ctx context.Context, tx dbtx) error {
	b := &pgx.Batch{}
	if len(q.cancelIss) > 0 {
		b.Queue(`UPDATE issuances i SET status = 'cancelled', reason = u.r, updated_at = now() FROM unnest($1::uuid[], $2::text[]) AS u(id, r)
			WHERE i.id = u.id`, q.cancelIss, q.cancelReasons)
		b.Queue(`UPDATE actions SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = ANY($1)`, q.cancelAct, evidence.ReasonRefundBeforeIssue)
	}
	if len(q.cancelTrips) > 0 {
		// A dropped trip no longer names the grant it was dropped from.
		b.Queue(`UPDATE actions SET status = 'cancelled', reason = $2, issuance_id = NULL, updated_at = now() WHERE id = ANY($1)`,
			q.cancelTrips, evidence.ReasonRefundBeforeIssue)
	}
	if len(q.cancelGrants) > 0 {
		// The grant never reached the ledger: its other trips wait again
		// and the batcher grants them anew (a new sequence number, so a
		// new grant claim).
		b.Queue(`UPDATE issuances SET status = 'cancelled', reason = $2, updated_at = now() WHERE id = ANY($1)`,
			q.cancelGrants, evidence.ReasonRefundBeforeIssue)
		b.Queue(`UPDATE actions SET status = 'queued', issuance_id = NULL, updated_at = now() WHERE issuance_id = ANY($1) AND status = 'grouped'`,
			q.cancelGrants)
	}
	if len(q.wholeIDs) > 0 {
		b.Queue(`INSERT INTO reversals (id, issuance_id, claim, reason, status)
			SELECT u.id, u.iss, u.claim, u.r, 'queued' FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(id, iss, claim, r)
			ON CONFLICT DO NOTHING`, q.wholeIDs, q.wholeIss, q.wholeClaims, q.wholeReasons)
	}
	if len(q.tripIDs) > 0 {
		b.Queue(`INSERT INTO reversals (id, issuance_id, action_id, claim, points, reason, status)
			SELECT u.id, u.iss, u.act, u.claim, u.pts, u.r, 'queued'
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[]) AS u(id, iss, act, claim, pts, r)
			ON CONFLICT DO NOTHING`, q.tripIDs, q.tripIss, q.tripAct, q.tripClaims, q.tripPoints, q.tripReasons)
	}
	if acts := append(slices.Clone(q.wholeAct), q.tripAct...); len(acts) > 0 {
		b.Queue(`UPDATE actions SET status = 'reversal_queued', updated_at = now() WHERE id = ANY($1)`, acts)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("cancel and queue reversals: %w", err)
	}
	return nil
}

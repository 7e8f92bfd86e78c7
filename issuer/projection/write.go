package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenpoints/greenpoints/chaincode/points"
)

// Bounds of the statements a group is written with.
const (
	// chunkRows bounds the rows of one set-based statement: its arrays
	// travel in one bind message (a lot row is about 600 bytes).
	chunkRows = 5000
	// flushRows bounds the rows queued before a pipelined round trip, and
	// so the encoded statements held in memory.
	flushRows = 4 * chunkRows
)

// writer queues the statements of a group and sends them pipelined.
type writer struct {
	tx     pgx.Tx
	batch  pgx.Batch
	queued int // rows in batch
}

func newWriter(tx pgx.Tx) *writer { return &writer{tx: tx} }

// queue adds a statement; check, when set, judges its command tag.
func (w *writer) queue(sql string, args []any, check func(pgconn.CommandTag) error) {
	q := w.batch.Queue(sql, args...)
	if check != nil {
		q.Exec(check)
	}
	w.queued++
}

// queueRows queues sql once per chunk of n rows: args gives the statement's
// arrays for rows [i, j). With keys set, sql must return one key per row it
// changed (RETURNING) and keys(i, j) checks that every row of the chunk was
// changed.
func (w *writer) queueRows(ctx context.Context, n int, sql string, args func(i, j int) []any, keys func(i, j int, got map[string]bool) error) error {
	for i := 0; i < n; i += chunkRows {
		j := min(i+chunkRows, n)
		q := w.batch.Queue(sql, args(i, j)...)
		if keys != nil {
			q.Query(func(rows pgx.Rows) error {
				got := make(map[string]bool, j-i)
				for rows.Next() {
					var k string
					if err := rows.Scan(&k); err != nil {
						return err
					}
					got[k] = true
				}
				if err := rows.Err(); err != nil {
					return err
				}
				return keys(i, j, got)
			})
		}
		w.queued += j - i
		if w.queued >= flushRows {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) flush(ctx context.Context) error {
	if w.batch.Len() == 0 {
		return nil
	}
	err := w.tx.SendBatch(ctx, &w.batch).Close()
	w.batch, w.queued = pgx.Batch{}, 0
	if err != nil {
		var d *errDiverged
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &d):
			return d
		case errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23514"):
			// unique_violation, check_violation: the rows disagree with the change.
			return &errDiverged{pgErr.Message}
		}
		return fmt.Errorf("writing projection rows: %w", err)
	}
	return nil
}

// expectOne requires a statement to touch exactly one row.
func expectOne(what string) func(pgconn.CommandTag) error {
	return func(ct pgconn.CommandTag) error {
		if ct.RowsAffected() != 1 {
			return &errDiverged{fmt.Sprintf("%s: %d rows changed, want 1", what, ct.RowsAffected())}
		}
		return nil
	}
}

// Set-based statements: one row per element of the parameter arrays.
// Accounts come before the family and debt changes of the group, which may
// name accounts it opened; the UPDATEs only touch rows of earlier groups
// (what the group itself created is folded into its INSERTs), so the other
// statements are independent of each other.
const (
	sqlTxs = `INSERT INTO proj_txs (tx_id, block, idx, function, caller, ts, changes)
		SELECT * FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::text[], $6::timestamptz[], $7::int4[])`
	sqlAccounts = `INSERT INTO proj_accounts (account_id, issuer, kind, opened_at, opened_tx)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])`
	sqlFamily = `INSERT INTO proj_families (family_id, issuer, head, members, invited, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (family_id) DO UPDATE SET head = EXCLUDED.head, members = EXCLUDED.members, invited = EXCLUDED.invited,
			status = EXCLUDED.status, updated_at = EXCLUDED.updated_at`
	sqlFamilyLink   = `UPDATE proj_accounts SET family_id = $1 WHERE account_id = ANY($2)`
	sqlFamilyUnlink = `UPDATE proj_accounts SET family_id = '' WHERE account_id = $2 AND family_id = $1 AND NOT ($2 = ANY($3))`
	sqlDebts        = `UPDATE proj_accounts a SET debt = u.after
		FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(account_id, before, after)
		WHERE a.account_id = u.account_id AND a.debt = u.before
		RETURNING a.account_id`
	sqlLots = `INSERT INTO proj_lots (lot_key, lot_id, account, issuer, cause, claim, item_id, category, amount, remaining, grams, grams_remaining,
		donated, transferred_out, reversed, expired, issued_at, expires_at, rule_id, rule_version, methodology_id, methodology_version,
		profile_id, profile_version, quantification_hash, source_lot, tx_id, block, idx)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[],
			$17::timestamptz[], $18::timestamptz[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
			$25::text[], $26::text[], $27::text[], $28::int8[], $29::int4[])`
	// The projected remaining points and grams must be what the group's
	// first debit of the lot started from.
	sqlDebits = `UPDATE proj_lots l SET remaining = u.remaining, grams_remaining = u.grams_remaining,
			donated = l.donated + u.donated, transferred_out = l.transferred_out + u.transferred_out,
			reversed = l.reversed + u.reversed, expired = l.expired + u.expired
		FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[])
			AS u(lot_key, before_remaining, before_grams, remaining, grams_remaining, donated, transferred_out, reversed, expired)
		WHERE l.lot_key = u.lot_key AND l.remaining = u.before_remaining AND l.grams_remaining = u.before_grams
		RETURNING l.lot_key`
	sqlMovements = `INSERT INTO proj_movements (block, idx, seq, account, issuer, tx_id, cause, points, grams, lot_key, claim, counterparty, receipt_id, ts, request_hash)
		SELECT * FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[],
			$10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[])`
	sqlItems = `INSERT INTO proj_item_results (block, idx, item_index, issuer, item_id, claim, status, reason, lot_id, lot_key, debt_settled, taken_sub_claims, tx_id)
		SELECT block, idx, item_index, issuer, item_id, claim, status, reason, lot_id, lot_key, debt_settled, subs::text[], tx_id
		FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
			$11::int8[], $12::text[], $13::text[])
			AS u(block, idx, item_index, issuer, item_id, claim, status, reason, lot_id, lot_key, debt_settled, subs, tx_id)`
	sqlClaims = `INSERT INTO proj_claims (claim, issuer, item_id, account, lot_key, lot_id, parent, points, grams, debt_settled, issued_at, tx_id,
			reversed, reversal_item_id, reversal_reason, reversed_at, reversal_tx_id, clawed, expired, debt)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[],
			$11::timestamptz[], $12::text[], $13::bool[], $14::text[], $15::text[], $16::timestamptz[], $17::text[], $18::int8[], $19::int8[], $20::int8[])`
	sqlClaimsReversed = `UPDATE proj_claims c SET reversed = true, reversal_item_id = u.item_id, reversal_reason = u.reason, reversed_at = u.at,
			reversal_tx_id = u.tx_id, clawed = u.clawed, expired = u.expired, debt = u.debt
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::int8[], $7::int8[], $8::int8[])
			AS u(claim, item_id, reason, at, tx_id, clawed, expired, debt)
		WHERE c.claim = u.claim AND NOT c.reversed
		RETURNING c.claim`
	sqlReceipts = `INSERT INTO proj_receipts (receipt_id, account, issuer, charity_id, project_id, points, grams, funding_fen, profile_id, profile_version,
			tx_id, block, idx, ts, request_hash, acknowledged, acknowledged_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[], $9::text[], $10::text[],
			$11::text[], $12::int8[], $13::int4[], $14::timestamptz[], $15::text[], $16::bool[], $17::timestamptz[])`
	sqlAcknowledged = `UPDATE proj_receipts r SET acknowledged = true, acknowledged_at = u.at
		FROM unnest($1::text[], $2::timestamptz[]) AS u(receipt_id, at)
		WHERE r.receipt_id = u.receipt_id
		RETURNING r.receipt_id`
)

// write queues the group's rows, a few statements per table.
func (g *groupRows) write(ctx context.Context, w *writer) error {
	if err := w.queueRows(ctx, len(g.txs), sqlTxs, g.txArgs, nil); err != nil {
		return err
	}
	if err := w.queueRows(ctx, len(g.accounts), sqlAccounts, g.accountArgs, nil); err != nil {
		return err
	}
	for _, op := range g.families {
		f := op.family
		linked := []string{}
		if f.Status == points.FamilyActive {
			linked = append(append(linked, f.Head), f.Members...)
		}
		w.queue(sqlFamily, []any{f.ID, f.Issuer, f.Head, nonNil(f.Members), nonNil(f.Invited), f.Status, f.CreatedAt.UTC(), f.UpdatedAt.UTC()}, nil)
		w.queue(sqlFamilyLink, []any{f.ID, linked}, nil)
		if op.subject != "" {
			w.queue(sqlFamilyUnlink, []any{f.ID, op.subject, linked}, nil)
		}
	}
	debts := g.debts.order
	err := w.queueRows(ctx, len(debts), sqlDebts, func(i, j int) []any {
		rs := debts[i:j]
		acct, before, after := make([]string, len(rs)), make([]int64, len(rs)), make([]int64, len(rs))
		for k, r := range rs {
			acct[k], before[k], after[k] = r.account, r.before, r.after
		}
		return []any{acct, before, after}
	}, func(i, j int, got map[string]bool) error {
		for _, r := range debts[i:j] {
			if !got[r.account] {
				return r.first.diverged("account %s: the projected debt is not %d", r.account, r.before)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var created, debited []*lotRow
	for _, l := range g.lots.order {
		if l.created {
			created = append(created, l)
		} else {
			debited = append(debited, l)
		}
	}
	if err := w.queueRows(ctx, len(created), sqlLots, func(i, j int) []any { return lotArgs(created[i:j]) }, nil); err != nil {
		return err
	}
	err = w.queueRows(ctx, len(debited), sqlDebits, func(i, j int) []any { return debitArgs(debited[i:j]) },
		func(i, j int, got map[string]bool) error {
			for _, l := range debited[i:j] {
				if !got[l.lot.Key] {
					return l.first.diverged("lot %s: the projection does not hold it with %d points, %d grams", l.lot.Key, l.beforePts, l.beforeGrams)
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	if err := w.queueRows(ctx, len(g.movements), sqlMovements, g.movementArgs, nil); err != nil {
		return err
	}
	if err := w.queueRows(ctx, len(g.items), sqlItems, g.itemArgs, nil); err != nil {
		return err
	}
	var newClaims, reversed []*claimRow
	for _, c := range g.claims.order {
		if c.created {
			newClaims = append(newClaims, c)
		} else {
			reversed = append(reversed, c)
		}
	}
	if err := w.queueRows(ctx, len(newClaims), sqlClaims, func(i, j int) []any { return claimArgs(newClaims[i:j]) }, nil); err != nil {
		return err
	}
	err = w.queueRows(ctx, len(reversed), sqlClaimsReversed, func(i, j int) []any { return reversalArgs(reversed[i:j]) },
		func(i, j int, got map[string]bool) error {
			for _, c := range reversed[i:j] {
				if !got[c.claim.Claim] {
					return c.first.diverged("claim %s is not in the projection unreversed", c.claim.Claim)
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	var newReceipts, acked []*receiptRow
	for _, r := range g.receipts.order {
		if r.created {
			newReceipts = append(newReceipts, r)
		} else {
			acked = append(acked, r)
		}
	}
	if err := w.queueRows(ctx, len(newReceipts), sqlReceipts, func(i, j int) []any { return receiptArgs(newReceipts[i:j]) }, nil); err != nil {
		return err
	}
	return w.queueRows(ctx, len(acked), sqlAcknowledged, func(i, j int) []any {
		rs := acked[i:j]
		ids, ats := make([]string, len(rs)), make([]*time.Time, len(rs))
		for k, r := range rs {
			ids[k], ats[k] = r.receipt.ReceiptID, r.ackedAt
		}
		return []any{ids, ats}
	}, func(i, j int, got map[string]bool) error {
		for _, r := range acked[i:j] {
			if !got[r.receipt.ReceiptID] {
				return r.first.diverged("receipt %s is not in the projection", r.receipt.ReceiptID)
			}
		}
		return nil
	})
}

func (g *groupRows) txArgs(i, j int) []any {
	rs := g.txs[i:j]
	n := len(rs)
	var (
		id, fn, caller = make([]string, n), make([]string, n), make([]string, n)
		block          = make([]int64, n)
		idx, changes   = make([]int32, n), make([]int32, n)
		ts             = make([]time.Time, n)
	)
	for k, r := range rs {
		t := r.tx
		id[k], block[k], idx[k], fn[k], caller[k], ts[k], changes[k] = t.TxID, int64(t.Block), int32(t.Index), t.Function, t.Caller, t.Timestamp.UTC(), int32(r.changes)
	}
	return []any{id, block, idx, fn, caller, ts, changes}
}

func (g *groupRows) accountArgs(i, j int) []any {
	rs := g.accounts[i:j]
	n := len(rs)
	id, iss, kind, tx := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	opened := make([]time.Time, n)
	for k, a := range rs {
		id[k], iss[k], kind[k], opened[k], tx[k] = a.ID, a.Issuer, a.Kind, a.OpenedAt.UTC(), a.TxID
	}
	return []any{id, iss, kind, opened, tx}
}

func lotArgs(rs []*lotRow) []any {
	n := len(rs)
	text := func() []string { return make([]string, n) }
	num := func() []int64 { return make([]int64, n) }
	var (
		key, id, acct, iss, cause, claim, item, cat                       = text(), text(), text(), text(), text(), text(), text(), text()
		amount, rem, grams, gramsRem, donated, transferred, reversed, exp = num(), num(), num(), num(), num(), num(), num(), num()
		issuedAt, expiresAt                                               = make([]time.Time, n), make([]time.Time, n)
		ruleID, ruleV, methID, methV, profID, profV, qh, src, tx          = text(), text(), text(), text(), text(), text(), text(), text(), text()
		block                                                             = num()
		idx                                                               = make([]int32, n)
	)
	for k, r := range rs {
		l := &r.lot
		key[k], id[k], acct[k], iss[k], cause[k], claim[k], item[k], cat[k] = l.Key, l.ID, l.Account, l.Issuer, r.cause, l.Claim, l.ItemID, l.Category
		amount[k], rem[k], grams[k], gramsRem[k] = l.Amount, l.Remaining, l.Grams, l.GramsRemaining
		donated[k], transferred[k], reversed[k], exp[k] = l.Donated, l.TransferredOut, l.Reversed, l.Expired
		issuedAt[k], expiresAt[k] = l.IssuedAt.UTC(), l.ExpiresAt.UTC()
		ruleID[k], ruleV[k], methID[k], methV[k] = l.RuleVersion.ID, l.RuleVersion.Version, l.MethodologyVersion.ID, l.MethodologyVersion.Version
		profID[k], profV[k], qh[k], src[k], tx[k] = l.ProfileVersion.ID, l.ProfileVersion.Version, l.QuantificationHash, l.SourceLot, l.TxID
		block[k], idx[k] = int64(r.tx.Block), int32(r.tx.Index)
	}
	return []any{key, id, acct, iss, cause, claim, item, cat, amount, rem, grams, gramsRem, donated, transferred, reversed, exp,
		issuedAt, expiresAt, ruleID, ruleV, methID, methV, profID, profV, qh, src, tx, block, idx}
}

func debitArgs(rs []*lotRow) []any {
	n := len(rs)
	num := func() []int64 { return make([]int64, n) }
	key := make([]string, n)
	bRem, bGrams, rem, gramsRem, donated, transferred, reversed, exp := num(), num(), num(), num(), num(), num(), num(), num()
	for k, r := range rs {
		l := &r.lot
		key[k], bRem[k], bGrams[k], rem[k], gramsRem[k] = l.Key, r.beforePts, r.beforeGrams, l.Remaining, l.GramsRemaining
		donated[k], transferred[k], reversed[k], exp[k] = l.Donated, l.TransferredOut, l.Reversed, l.Expired
	}
	return []any{key, bRem, bGrams, rem, gramsRem, donated, transferred, reversed, exp}
}

func (g *groupRows) movementArgs(i, j int) []any {
	rs := g.movements[i:j]
	n := len(rs)
	text := func() []string { return make([]string, n) }
	var (
		block, pts, grams                                   = make([]int64, n), make([]int64, n), make([]int64, n)
		idx, seq                                            = make([]int32, n), make([]int32, n)
		acct, iss, tx, cause, lot, claim, cp, rcpt, reqHash = text(), text(), text(), text(), text(), text(), text(), text(), text()
		ts                                                  = make([]time.Time, n)
	)
	for k, m := range rs {
		block[k], idx[k], seq[k], acct[k], iss[k], tx[k] = int64(m.tx.Block), int32(m.tx.Index), int32(m.seq), m.account, m.issuer, m.tx.TxID
		cause[k], pts[k], grams[k], lot[k], claim[k], cp[k], rcpt[k] = m.cause, m.points, m.grams, m.lotKey, m.claim, m.counterparty, m.rcpt
		ts[k], reqHash[k] = m.tx.Timestamp.UTC(), m.requestHash
	}
	return []any{block, idx, seq, acct, iss, tx, cause, pts, grams, lot, claim, cp, rcpt, ts, reqHash}
}

func (g *groupRows) itemArgs(i, j int) []any {
	rs := g.items[i:j]
	n := len(rs)
	text := func() []string { return make([]string, n) }
	var (
		block, settled                                        = make([]int64, n), make([]int64, n)
		idx, index                                            = make([]int32, n), make([]int32, n)
		iss, item, claim, status, reason, lotID, lotKey, subs = text(), text(), text(), text(), text(), text(), text(), text()
		tx                                                    = text()
	)
	for k, r := range rs {
		it := r.item
		block[k], idx[k], index[k], iss[k], item[k], claim[k] = int64(r.tx.Block), int32(r.tx.Index), int32(it.Index), r.issuer, it.ItemID, it.Claim
		status[k], reason[k], lotID[k], lotKey[k], settled[k] = it.Status, it.Reason, it.LotID, it.LotKey, it.DebtSettled
		subs[k], tx[k] = arrayLiteral(it.TakenSubClaims), r.tx.TxID
	}
	return []any{block, idx, index, iss, item, claim, status, reason, lotID, lotKey, settled, subs, tx}
}

func claimArgs(rs []*claimRow) []any {
	n := len(rs)
	text := func() []string { return make([]string, n) }
	num := func() []int64 { return make([]int64, n) }
	var (
		claim, iss, item, acct, lotKey, lotID, parent, tx = text(), text(), text(), text(), text(), text(), text(), text()
		pts, grams, settled                               = num(), num(), num()
		issuedAt                                          = make([]time.Time, n)
		rev                                               = make([]bool, n)
		revItem, revReason, revTx                         = text(), text(), text()
		revAt                                             = make([]*time.Time, n)
		clawed, expired, debt                             = num(), num(), num()
	)
	for k, r := range rs {
		c := r.claim
		claim[k], iss[k], item[k], acct[k], lotKey[k], lotID[k], parent[k] = c.Claim, c.Issuer, c.ItemID, c.Account, c.LotKey, c.LotID, c.Parent
		pts[k], grams[k], settled[k], issuedAt[k], tx[k] = c.Points, c.Grams, c.DebtSettled, c.IssuedAt.UTC(), c.TxID
		if v := r.rev; v != nil {
			at := v.At.UTC()
			rev[k], revItem[k], revReason[k], revAt[k], revTx[k] = true, v.ItemID, v.Reason, &at, v.TxID
			clawed[k], expired[k], debt[k] = v.Clawed, v.Expired, v.Debt
		}
	}
	return []any{claim, iss, item, acct, lotKey, lotID, parent, pts, grams, settled, issuedAt, tx,
		rev, revItem, revReason, revAt, revTx, clawed, expired, debt}
}

func reversalArgs(rs []*claimRow) []any {
	n := len(rs)
	text := func() []string { return make([]string, n) }
	num := func() []int64 { return make([]int64, n) }
	claim, item, reason, tx := text(), text(), text(), text()
	ats := make([]time.Time, n)
	clawed, expired, debt := num(), num(), num()
	for k, r := range rs {
		v := r.rev
		claim[k], item[k], reason[k], ats[k], tx[k] = r.claim.Claim, v.ItemID, v.Reason, v.At.UTC(), v.TxID
		clawed[k], expired[k], debt[k] = v.Clawed, v.Expired, v.Debt
	}
	return []any{claim, item, reason, ats, tx, clawed, expired, debt}
}

func receiptArgs(rs []*receiptRow) []any {
	n := len(rs)
	text := func() []string { return make([]string, n) }
	num := func() []int64 { return make([]int64, n) }
	var (
		id, donor, iss, charity, project, profID, profV, tx, reqHash = text(), text(), text(), text(), text(), text(), text(), text(), text()
		pts, grams, fen, block                                       = num(), num(), num(), num()
		idx                                                          = make([]int32, n)
		ts                                                           = make([]time.Time, n)
		acked                                                        = make([]bool, n)
		ackedAt                                                      = make([]*time.Time, n)
	)
	for k, r := range rs {
		c := r.receipt
		id[k], donor[k], iss[k], charity[k], project[k] = c.ReceiptID, c.Donor, c.Issuer, c.CharityID, c.ProjectID
		pts[k], grams[k], fen[k], profID[k], profV[k] = c.Points, c.Grams, c.FundingFen, c.ProfileVersion.ID, c.ProfileVersion.Version
		tx[k], block[k], idx[k], ts[k], reqHash[k] = r.tx.TxID, int64(r.tx.Block), int32(r.tx.Index), c.Time.UTC(), c.RequestHash
		acked[k], ackedAt[k] = r.acked, r.ackedAt
	}
	return []any{id, donor, iss, charity, project, pts, grams, fen, profID, profV, tx, block, idx, ts, reqHash, acked, ackedAt}
}

// writeExtensions moves extended lots to their new keys and expiry, and
// repoints what names them by key: transfer lots' source_lot and claims
// (sub-claims too) that name the lot. No point moves, so no movement row.
func (g *groupRows) writeExtensions(w *writer) {
	for _, e := range g.extensions {
		w.queue(`UPDATE proj_lots SET lot_key = $2, expires_at = $3 WHERE lot_key = $1 AND expires_at = $4 AND lot_id = $5`,
			[]any{e.FromKey, e.ToKey, e.To.UTC(), e.From.UTC(), e.LotID}, expectOne("extension of lot "+e.FromKey))
		w.queue(`UPDATE proj_lots SET source_lot = $2 WHERE source_lot = $1`, []any{e.FromKey, e.ToKey}, nil)
		w.queue(`UPDATE proj_claims SET lot_key = $2 WHERE lot_key = $1`, []any{e.FromKey, e.ToKey}, nil)
	}
}

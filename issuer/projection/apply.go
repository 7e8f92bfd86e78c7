package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

// batchStatements bounds the statements sent in one pipelined round trip.
const batchStatements = 1000

// errMoved says the stored checkpoint is not where this subscription
// expects it (a rebuild reset it, or another instance is behind a different
// history): the caller resubscribes from the stored checkpoint.
var errMoved = errors.New("projection checkpoint moved")

// errDiverged marks a change the projection cannot apply to its rows (a
// debit of a lot it does not hold, a debt that does not add up): the
// projection and the ledger disagree and need a rebuild. It is permanent.
type errDiverged struct{ msg string }

func (e *errDiverged) Error() string { return "projection diverged from the ledger: " + e.msg }

// applyGroup applies txs, which follow prev in the subscription's order, in
// ONE PostgreSQL transaction that also advances the checkpoint, so a crash
// either keeps all of it or none. It first locks the checkpoint row and skips
// the transactions at or before it (applied by another instance); the
// first one it applies must directly follow the stored checkpoint, otherwise
// it returns errMoved. With reset, it first empties the projection and
// resets the checkpoint (Rebuild). It returns the checkpoint of the last
// transaction of txs (the subscription's new position) and how many it
// applied.
func applyGroup(ctx context.Context, pool *pgxpool.Pool, name string, prev issuer.Checkpoint, txs []issuer.CommittedTx, reset bool) (issuer.Checkpoint, int, error) {
	// Decode before taking any lock: a malformed event is permanent.
	evs := make([]*points.Event, len(txs))
	for i := range txs {
		ev, err := decodeEvent(&txs[i])
		if err != nil {
			return prev, 0, err
		}
		evs[i] = ev
	}
	applied := 0
	err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
		applied = 0
		var (
			block  int64
			stored issuer.Checkpoint
		)
		if err := tx.QueryRow(ctx, `SELECT block, idx FROM proj_checkpoint WHERE name = $1 FOR UPDATE`, name).Scan(&block, &stored.Index); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("projection %q has no checkpoint row (is the database migrated?)", name)
			}
			return fmt.Errorf("locking the projection checkpoint: %w", err)
		}
		stored.Block = uint64(block)
		if reset {
			if err := truncate(ctx, tx, name); err != nil {
				return err
			}
			stored = issuer.Checkpoint{}
		}
		start, p := 0, prev
		for start < len(txs) && !stored.Less(txs[start].Checkpoint) {
			p = txs[start].Checkpoint
			start++
		}
		if start == len(txs) {
			return nil
		}
		if p != stored {
			return errMoved
		}
		w := newWriter(tx)
		for i := start; i < len(txs); i++ {
			if err := w.applyTx(ctx, &txs[i], evs[i]); err != nil {
				return err
			}
		}
		last := txs[len(txs)-1]
		w.queue(`UPDATE proj_checkpoint SET block = $2, idx = $3, tx_id = $4, applied = applied + $5, updated_at = now() WHERE name = $1`,
			[]any{name, int64(last.Block), last.Index, last.TxID, len(txs) - start}, expectOne("checkpoint "+name))
		if err := w.flush(ctx); err != nil {
			return err
		}
		applied = len(txs) - start
		return nil
	})
	if err != nil {
		return prev, 0, err
	}
	return txs[len(txs)-1].Checkpoint, applied, nil
}

// truncate empties the projection and resets its checkpoint. The caller
// holds the checkpoint row lock.
func truncate(ctx context.Context, tx pgx.Tx, name string) error {
	if _, err := tx.Exec(ctx, `TRUNCATE proj_txs, proj_accounts, proj_families, proj_lots, proj_claims, proj_movements, proj_item_results, proj_receipts`); err != nil {
		return fmt.Errorf("emptying the projection: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE proj_checkpoint SET block = 0, idx = 0, tx_id = '', applied = 0, rebuilt_at = now(), updated_at = now() WHERE name = $1`, name); err != nil {
		return fmt.Errorf("resetting the projection checkpoint: %w", err)
	}
	return nil
}

// decodeEvent decodes a transaction's change list; a transaction without the
// points event (none on the embedded ledger; other chaincodes are filtered
// by the Fabric client) has no changes.
func decodeEvent(tx *issuer.CommittedTx) (*points.Event, error) {
	if tx.EventName != points.EventName {
		return &points.Event{}, nil
	}
	var ev points.Event
	if err := json.Unmarshal(tx.Event, &ev); err != nil {
		return nil, &errDiverged{fmt.Sprintf("transaction %s at %d/%d: undecodable event: %v", tx.TxID, tx.Block, tx.Index, err)}
	}
	if ev.V != points.EventVersion {
		return nil, &errDiverged{fmt.Sprintf("transaction %s: event version %d, this build projects version %d", tx.TxID, ev.V, points.EventVersion)}
	}
	return &ev, nil
}

// writer queues the statements of a group and sends them pipelined.
type writer struct {
	tx    pgx.Tx
	batch pgx.Batch
}

func newWriter(tx pgx.Tx) *writer { return &writer{tx: tx} }

// queue adds a statement; check, when set, judges its command tag.
func (w *writer) queue(sql string, args []any, check func(pgconn.CommandTag) error) {
	q := w.batch.Queue(sql, args...)
	if check != nil {
		q.Exec(check)
	}
}

func (w *writer) flushIfFull(ctx context.Context) error {
	if w.batch.Len() < batchStatements {
		return nil
	}
	return w.flush(ctx)
}

func (w *writer) flush(ctx context.Context) error {
	if w.batch.Len() == 0 {
		return nil
	}
	err := w.tx.SendBatch(ctx, &w.batch).Close()
	w.batch = pgx.Batch{}
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

// debitColumn is the lot column a debit of each cause adds to.
var debitColumn = map[string]string{
	points.CauseDonate:      "donated",
	points.CauseTransferOut: "transferred_out",
	points.CauseReverse:     "reversed",
	points.CauseDebtSettle:  "reversed",
	points.CauseExpire:      "expired",
}

// debitSQL holds one UPDATE per cause (column names cannot be parameters).
// The WHERE clause checks that the change's "after" values follow from the
// projected ones.
var debitSQL = func() map[string]string {
	m := map[string]string{}
	for cause, col := range debitColumn {
		m[cause] = `UPDATE proj_lots SET remaining = $2, grams_remaining = $3, ` + col + ` = ` + col + ` + $4
			WHERE lot_key = $1 AND remaining - $4 = $2 AND grams_remaining - $5 = $3`
	}
	return m
}()

const (
	sqlInsertTx = `INSERT INTO proj_txs (tx_id, block, idx, function, caller, ts, changes) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlAccount  = `INSERT INTO proj_accounts (account_id, issuer, kind, opened_at, opened_tx) VALUES ($1, $2, $3, $4, $5)`
	sqlFamily   = `INSERT INTO proj_families (family_id, issuer, head, members, invited, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (family_id) DO UPDATE SET head = EXCLUDED.head, members = EXCLUDED.members, invited = EXCLUDED.invited,
			status = EXCLUDED.status, updated_at = EXCLUDED.updated_at`
	sqlFamilyLink   = `UPDATE proj_accounts SET family_id = $1 WHERE account_id = ANY($2)`
	sqlFamilyUnlink = `UPDATE proj_accounts SET family_id = '' WHERE account_id = $2 AND family_id = $1 AND NOT ($2 = ANY($3))`
	sqlItem         = `INSERT INTO proj_item_results (block, idx, item_index, issuer, item_id, claim, status, reason, lot_id, lot_key, debt_settled, taken_sub_claims, tx_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	sqlClaim = `INSERT INTO proj_claims (claim, issuer, item_id, account, lot_key, lot_id, parent, points, grams, debt_settled, issued_at, tx_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	sqlClaimReversed = `UPDATE proj_claims SET reversed = true, reversal_item_id = $2, reversal_reason = $3, reversed_at = $4,
		reversal_tx_id = $5, clawed = $6, expired = $7, debt = $8 WHERE claim = $1 AND NOT reversed`
	sqlLot = `INSERT INTO proj_lots (lot_key, lot_id, account, issuer, cause, claim, item_id, category, amount, remaining, grams, grams_remaining,
		donated, transferred_out, reversed, expired, issued_at, expires_at, rule_id, rule_version, methodology_id, methodology_version,
		profile_id, profile_version, quantification_hash, source_lot, tx_id, block, idx)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)`
	sqlMovement = `INSERT INTO proj_movements (block, idx, seq, account, issuer, tx_id, cause, points, grams, lot_key, claim, counterparty, receipt_id, ts, request_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	sqlDebt    = `UPDATE proj_accounts SET debt = $2 WHERE account_id = $1 AND debt + $3 = $2`
	sqlReceipt = `INSERT INTO proj_receipts (receipt_id, account, issuer, charity_id, project_id, points, grams, funding_fen, profile_id, profile_version,
		tx_id, block, idx, ts, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	sqlAcknowledged = `UPDATE proj_receipts SET acknowledged = true, acknowledged_at = $2 WHERE receipt_id = $1`
)

// applyTx queues the rows of one transaction's changes, in their order.
func (w *writer) applyTx(ctx context.Context, t *issuer.CommittedTx, ev *points.Event) error {
	blk := int64(t.Block)
	at := t.Timestamp.UTC()
	w.queue(sqlInsertTx, []any{t.TxID, blk, t.Index, t.Function, t.Caller, at, len(ev.Changes)}, nil)

	// A transfer's and a donation's summary comes after its debits: look
	// ahead for the counterparty of the movements.
	var transfer *points.TransferRecord
	var receipt *points.Receipt
	for i := range ev.Changes {
		switch c := &ev.Changes[i]; c.Type {
		case points.ChangeTransferRecorded:
			transfer = c.Transfer
		case points.ChangeReceiptIssued:
			receipt = c.Receipt
		}
	}
	counterparty := func(cause string) (string, string) {
		switch {
		case cause == points.CauseTransferOut && transfer != nil:
			return transfer.To, ""
		case cause == points.CauseTransferIn && transfer != nil:
			return transfer.From, ""
		case cause == points.CauseDonate && receipt != nil:
			return receipt.CharityID + "/" + receipt.ProjectID, receipt.ReceiptID
		}
		return "", ""
	}
	movement := func(seq int, account, iss, cause string, pts, grams int64, lotKey, claim, requestHash string) {
		cp, rid := counterparty(cause)
		w.queue(sqlMovement, []any{blk, t.Index, seq, account, iss, t.TxID, cause, pts, grams, lotKey, claim, cp, rid, at, requestHash}, nil)
	}

	for seq := range ev.Changes {
		c := &ev.Changes[seq]
		where := fmt.Sprintf("transaction %s change %d (%s)", t.TxID, seq, c.Type)
		if err := checkPayload(c, where); err != nil {
			return err
		}
		switch c.Type {
		case points.ChangeAccountOpened:
			a := c.Account
			w.queue(sqlAccount, []any{a.ID, a.Issuer, a.Kind, a.OpenedAt.UTC(), a.TxID}, nil)
		case points.ChangeFamilyChanged:
			f := c.Family
			linked := []string{}
			if f.Status == points.FamilyActive {
				linked = append(append(linked, f.Head), f.Members...)
			}
			w.queue(sqlFamily, []any{f.ID, f.Issuer, f.Head, nonNil(f.Members), nonNil(f.Invited), f.Status, f.CreatedAt.UTC(), f.UpdatedAt.UTC()}, nil)
			w.queue(sqlFamilyLink, []any{f.ID, linked}, nil)
			if c.Subject != "" {
				w.queue(sqlFamilyUnlink, []any{f.ID, c.Subject, linked}, nil)
			}
		case points.ChangeItemResult:
			it := c.Item
			w.queue(sqlItem, []any{blk, t.Index, it.Index, ev.Caller, it.ItemID, it.Claim, it.Status, it.Reason, it.LotID, it.LotKey,
				it.DebtSettled, nonNil(it.TakenSubClaims), t.TxID}, nil)
		case points.ChangeClaimRecorded:
			cl := c.Claim
			w.queue(sqlClaim, []any{cl.Claim, cl.Issuer, cl.ItemID, cl.Account, cl.LotKey, cl.LotID, cl.Parent, cl.Points, cl.Grams,
				cl.DebtSettled, cl.IssuedAt.UTC(), cl.TxID}, nil)
		case points.ChangeClaimReversed:
			cl, r := c.Claim, c.Claim.Reversal
			if r == nil {
				return &errDiverged{where + ": no reversal"}
			}
			w.queue(sqlClaimReversed, []any{cl.Claim, r.ItemID, r.Reason, r.At.UTC(), r.TxID, r.Clawed, r.Expired, r.Debt}, expectOne(where))
		case points.ChangeLotCreated:
			l := c.Lot
			if c.Cause != points.CauseIssue && c.Cause != points.CauseTransferIn {
				return &errDiverged{where + ": unknown cause " + c.Cause}
			}
			w.queue(sqlLot, []any{l.Key, l.ID, l.Account, l.Issuer, c.Cause, l.Claim, l.ItemID, l.Category, l.Amount, l.Remaining, l.Grams, l.GramsRemaining,
				l.Donated, l.TransferredOut, l.Reversed, l.Expired, l.IssuedAt.UTC(), l.ExpiresAt.UTC(),
				l.RuleVersion.ID, l.RuleVersion.Version, l.MethodologyVersion.ID, l.MethodologyVersion.Version,
				l.ProfileVersion.ID, l.ProfileVersion.Version, l.QuantificationHash, l.SourceLot, l.TxID, blk, t.Index}, nil)
			movement(seq, l.Account, l.Issuer, c.Cause, l.Remaining, l.GramsRemaining, l.Key, l.Claim, c.RequestHash)
		case points.ChangeLotDebited:
			d := c.Debit
			sql, ok := debitSQL[c.Cause]
			if !ok {
				return &errDiverged{where + ": unknown cause " + c.Cause}
			}
			w.queue(sql, []any{d.LotKey, d.Remaining, d.GramsRemaining, d.Points, d.Grams}, expectOne(where+" lot "+d.LotKey))
			movement(seq, d.Account, d.Issuer, c.Cause, -d.Points, -d.Grams, d.LotKey, d.Claim, c.RequestHash)
		case points.ChangeDebtChanged:
			d := c.Debt
			w.queue(sqlDebt, []any{d.Account, d.Points, d.Delta}, expectOne(where+" account "+d.Account))
		case points.ChangeReceiptIssued:
			r := c.Receipt
			w.queue(sqlReceipt, []any{r.ReceiptID, r.Donor, r.Issuer, r.CharityID, r.ProjectID, r.Points, r.Grams, r.FundingFen,
				r.ProfileVersion.ID, r.ProfileVersion.Version, t.TxID, blk, t.Index, r.Time.UTC(), r.RequestHash}, nil)
		case points.ChangeDonationAcknowledged:
			r := c.Receipt
			var ackAt *time.Time
			if r.AcknowledgedAt != nil {
				t := r.AcknowledgedAt.UTC()
				ackAt = &t
			}
			w.queue(sqlAcknowledged, []any{r.ReceiptID, ackAt}, expectOne(where+" receipt "+r.ReceiptID))
		case points.ChangeTransferRecorded, points.ChangeRegulatorSet, points.ChangeMemberChanged,
			points.ChangeAnchorRecorded, points.ChangeCharityChanged:
			// Not projected (yet): the registry, anchors and charities are
			// read from the ledger; a transfer's movements carry it.
		default:
			return &errDiverged{where + ": unknown change type"}
		}
		if err := w.flushIfFull(ctx); err != nil {
			return err
		}
	}
	return nil
}

// checkPayload requires the payload a change's type promises, so that a
// malformed event is reported instead of dereferencing nil.
func checkPayload(c *points.Change, where string) error {
	var ok bool
	switch c.Type {
	case points.ChangeAccountOpened:
		ok = c.Account != nil
	case points.ChangeFamilyChanged:
		ok = c.Family != nil
	case points.ChangeItemResult:
		ok = c.Item != nil
	case points.ChangeClaimRecorded, points.ChangeClaimReversed:
		ok = c.Claim != nil
	case points.ChangeLotCreated:
		ok = c.Lot != nil
	case points.ChangeLotDebited:
		ok = c.Debit != nil
	case points.ChangeDebtChanged:
		ok = c.Debt != nil
	case points.ChangeReceiptIssued, points.ChangeDonationAcknowledged:
		ok = c.Receipt != nil
	case points.ChangeTransferRecorded:
		ok = c.Transfer != nil
	default:
		ok = true
	}
	if !ok {
		return &errDiverged{where + ": payload missing"}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// permanent reports whether err will not go away by retrying.
func permanent(err error) bool {
	var d *errDiverged
	return errors.As(err, &d)
}

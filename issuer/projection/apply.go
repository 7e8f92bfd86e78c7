package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

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
		var g groupRows
		for i := start; i < len(txs); i++ {
			if err := g.add(&txs[i], evs[i]); err != nil {
				return err
			}
			// A lot extension renames a lot's row: write what came before
			// (and the move) before folding the changes that follow.
			if len(g.extensions) > 0 || i == len(txs)-1 {
				if err := g.write(ctx, w); err != nil {
					return err
				}
				g.writeExtensions(w)
				g = groupRows{}
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

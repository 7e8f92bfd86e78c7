package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/issuer"
)

// subscribePage bounds the transactions read from the database at once.
const subscribePage = 500

const sqlCommittedAfter = `SELECT block, idx, txid, function, caller, ts, event_name, event
	FROM ledger_txs
	WHERE (block, idx) > ($1, $2) AND validation_code = 'VALID'
	ORDER BY block, idx
	LIMIT $3`

// Subscribe calls fn for every valid transaction after from, in (block,
// index) order, until ctx ends (it returns ctx.Err()), fn fails (it returns
// fn's error), the ledger closes or its database fails (Unavailable). It
// first catches up from the database, then waits for new blocks: announced
// by PostgreSQL notifications, so blocks written by other instances sharing
// the database arrive too, and polled every PollInterval in case a
// notification is missed. fn runs in Subscribe's goroutine and holds no
// database connection.
func (l *Ledger) Subscribe(ctx context.Context, from issuer.Checkpoint, fn func(issuer.CommittedTx) error) error {
	if l.isClosed() {
		return errClosed()
	}
	l.startListener()
	ticker := time.NewTicker(l.poll)
	defer ticker.Stop()
	cp := from
	for {
		// Take the wake-up channel before reading, so a block committed
		// while we read is not missed.
		changed := l.changed.wait()
		for {
			txs, err := l.committedAfter(ctx, cp)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errDatabase(err, "reading committed transactions")
			}
			for _, tx := range txs {
				if err := fn(tx); err != nil {
					return err
				}
				cp = tx.Checkpoint
			}
			if len(txs) < subscribePage {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closing:
			return errClosed()
		case <-changed:
		case <-ticker.C:
		}
	}
}

// committedAfter reads the next page of valid transactions after cp.
func (l *Ledger) committedAfter(ctx context.Context, cp issuer.Checkpoint) ([]issuer.CommittedTx, error) {
	rows, err := l.pool.Query(ctx, sqlCommittedAfter, int64(cp.Block), cp.Index, subscribePage)
	if err != nil {
		return nil, err
	}
	var (
		out   []issuer.CommittedTx
		block int64
		tx    issuer.CommittedTx
	)
	_, err = pgx.ForEachRow(rows, []any{&block, &tx.Index, &tx.TxID, &tx.Function, &tx.Caller, &tx.Timestamp, &tx.EventName, &tx.Event}, func() error {
		tx.Block = uint64(block)
		tx.Timestamp = tx.Timestamp.UTC()
		out = append(out, tx)
		tx = issuer.CommittedTx{}
		return nil
	})
	return out, err
}

// startListener starts, once, the goroutine that LISTENs for new blocks on a
// dedicated connection and wakes the subscribers.
func (l *Ledger) startListener() {
	l.listenerOnce.Do(func() {
		l.listenerWG.Add(1)
		go func() {
			defer l.listenerWG.Done()
			l.listen(l.bg)
		}()
	})
}

// listen keeps a LISTEN connection open until ctx ends, reconnecting with
// backoff. While it is down, subscribers still poll.
func (l *Ledger) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("ledger notification listener failed; subscribers poll until it reconnects", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (l *Ledger) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// Blocks may have been committed elsewhere while we were not listening.
	l.changed.fire()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("waiting for notifications: %w", err)
		}
		l.changed.fire()
	}
}

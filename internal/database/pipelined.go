package database

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Statements that open and close a pipelined transaction (PipelinedTx).
const (
	BeginReadCommitted = "BEGIN ISOLATION LEVEL READ COMMITTED"
	Commit             = "COMMIT"
)

// PipelinedTx is InTx without the round trips of BEGIN and COMMIT, for a
// hot path whose latency is a handful of round trips: fn gets a connection
// of pool, queues BeginReadCommitted first in its first batch and may queue
// Commit last in its last one, so that both travel with statements it sends
// anyway. If fn returns nil with the transaction still open, it is
// committed; if fn fails, or a batch fails before its COMMIT ran, it is
// rolled back. fn's error is returned unchanged. Savepoints are statements
// (SAVEPOINT, ROLLBACK TO SAVEPOINT): there is no pgx.Tx to nest.
func PipelinedTx(ctx context.Context, pool *pgxpool.Pool, fn func(*pgx.Conn) error) (err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	defer pc.Release()
	conn := pc.Conn()
	defer func() {
		if p := recover(); p != nil {
			end(ctx, conn, "ROLLBACK")
			panic(p)
		}
	}()
	err = fn(conn)
	if conn.IsClosed() {
		return err // a cancelled query closed it; the server rolled back
	}
	switch st := conn.PgConn().TxStatus(); {
	case st == 'I': // committed (or never begun)
	case err != nil || st == 'E':
		if rerr := end(ctx, conn, "ROLLBACK"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err == nil {
			err = errors.New("transaction failed") // st 'E' with no error from fn: a discarded batch result
		}
	default:
		if cerr := end(ctx, conn, Commit); cerr != nil {
			return fmt.Errorf("commit: %w", cerr)
		}
	}
	return err
}

// end sends COMMIT or ROLLBACK, even when ctx has ended; a connection it
// cannot end is closed, so the pool never hands out one inside a
// transaction.
func end(ctx context.Context, conn *pgx.Conn, stmt string) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ectx, stmt); err != nil {
		_ = conn.Close(ectx)
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

package database_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

// TestPipelinedTx: a pipelined transaction commits with its last batch (or
// at the end when fn queued no COMMIT), rolls back on fn's error or on a
// batch that fails before its COMMIT, and hands the connection back to the
// pool outside any transaction.
func TestPipelinedTx(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE pt (v int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pt`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(commit bool, vs ...int) func(*pgx.Conn) error {
		return func(c *pgx.Conn) error {
			b := &pgx.Batch{}
			b.Queue(database.BeginReadCommitted)
			for _, v := range vs {
				b.Queue(`INSERT INTO pt VALUES ($1)`, v)
			}
			if commit {
				b.Queue(database.Commit)
			}
			return c.SendBatch(ctx, b).Close()
		}
	}
	if err := database.PipelinedTx(ctx, pool, insert(true, 1, 2)); err != nil || count() != 2 {
		t.Fatalf("COMMIT in the batch: %v, %d rows", err, count())
	}
	if err := database.PipelinedTx(ctx, pool, insert(false, 3)); err != nil || count() != 3 {
		t.Fatalf("no COMMIT queued: %v, %d rows, want committed", err, count())
	}
	// The batch fails at its second insert (a duplicate key): the first is
	// rolled back with it, COMMIT never ran.
	if err := database.PipelinedTx(ctx, pool, insert(true, 4, 1)); err == nil || count() != 3 {
		t.Fatalf("failing batch: %v, %d rows, want an error and 3", err, count())
	}
	boom := errors.New("boom")
	err := database.PipelinedTx(ctx, pool, func(c *pgx.Conn) error {
		if err := insert(false, 5)(c); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || count() != 3 {
		t.Fatalf("fn's error: %v, %d rows, want boom and 3", err, count())
	}
	// Every connection went back idle, not inside a transaction.
	assertIdle(ctx, t, pool)
}

func assertIdle(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	conns := pool.AcquireAllIdle(ctx)
	for _, c := range conns {
		if st := c.Conn().PgConn().TxStatus(); st != 'I' {
			t.Errorf("a pooled connection is in transaction state %q", st)
		}
		c.Release()
	}
}

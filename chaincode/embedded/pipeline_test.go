package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// The block producer builds block N+1 on block N while N is being written.
// These tests hold block N in flight after its state writes, at its COPY of
// the transactions, by locking ledger_txs against writes (a block built on
// another writes its transactions only once that one has ended), so that
// N+1 is built on N for certain, and watch PostgreSQL's lock waits to know
// where each block is.

// holdTxs keeps ledger_txs from being written until release.
func holdTxs(t *testing.T, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE ledger_txs IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			if err := tx.Rollback(ctx); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// waitForLockWait waits until a session of this database waits for a lock
// of the given kind ("relation": a table; "advisory": an advisory lock) and
// returns its process id.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool, event string) int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pid int32
		err := pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1 LIMIT 1`, event).Scan(&pid)
		if err == nil {
			return pid
		}
		if err != pgx.ErrNoRows {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waits for a %s lock", event)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commitAsync commits es in the given order, each queued before the next,
// and returns their outcomes on the channel, in order.
func commitAsync(t *testing.T, l *Ledger, es ...issuer.Endorsed) <-chan []outcome {
	t.Helper()
	done := make(chan []outcome, 1)
	l.mu.Lock()
	queued := len(l.queue)
	l.mu.Unlock()
	outs := make([]chan outcome, len(es))
	for i, e := range es {
		outs[i] = make(chan outcome, 1)
		go func() {
			res, err := l.Commit(context.Background(), e)
			outs[i] <- outcome{res: res, err: err}
		}()
		if i < len(es)-1 {
			waitQueued(t, l, queued+i+1)
		}
	}
	go func() {
		got := make([]outcome, len(es))
		for i := range outs {
			got[i] = <-outs[i]
		}
		done <- got
	}()
	return done
}

func reasons(outs []outcome) []string {
	got := make([]string, len(outs))
	for i, o := range outs {
		if o.err != nil {
			got[i] = reasonOf(o.err)
		}
	}
	return got
}

func TestBlockBuiltOnBlockInFlight(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx := context.Background()
	setup := open(t, pool, Options{})
	submit(t, setup, put("k", "0"), put("a", "0"), put("c", "0"), put("r/1", "0"), put("s/1", "0"))
	l := open(t, pool, Options{MaxBlockTxs: 4, BlockLinger: time.Minute, KeyID: "pipeline/v1"})
	release := holdTxs(t, pool)

	// Block N: stuck at its transactions.
	first := commitAsync(t, l,
		endorse(t, l, put("k", "1"), put("a", "1")),
		endorse(t, l, del("c")),
		endorse(t, l, put("r/2", "1")),
		endorse(t, l, put("z", "1")),
	)
	waitForLockWait(t, pool, "relation")

	// Block N+1, endorsed before N commits and validated on N's writes.
	second := commitAsync(t, l,
		endorse(t, l, get("a"), put("d", "1")),            // read a before N wrote it
		endorse(t, l, rng("r/", "r0", 10), put("f", "1")), // N adds r/2 to the range
		endorse(t, l, del("r/2")),                         // deletes what N creates
		endorse(t, l, rng("s/", "s0", 10), put("c", "2")), // a range N leaves alone; re-creates c
	)
	// N+1 waits for N's end before it takes the producer lock.
	waitForLockWait(t, pool, "advisory")
	release()

	if got, want := reasons(<-first), []string{"", "", "", ""}; !cmp.Equal(got, want) {
		t.Errorf("block N outcomes %q, want %q", got, want)
	}
	outs := <-second
	if got, want := reasons(outs), []string{"conflict/mvcc_read_conflict", "conflict/phantom_read_conflict", "", ""}; !cmp.Equal(got, want) {
		t.Errorf("block N+1 outcomes %q, want %q", got, want)
	}
	if b := outs[2].res.Block; b != 3 || height(t, l) != 3 {
		t.Errorf("block N+1 is block %d at height %d, want 3 at height 3", b, height(t, l))
	}
	for k, v := range map[string]*string{"k": ptr("1"), "a": ptr("1"), "c": ptr("2"), "r/1": ptr("0"), "r/2": nil, "d": nil, "f": nil, "z": ptr("1")} {
		if got := stateOf(t, pool, k); !cmp.Equal(got, v) {
			t.Errorf("state of %q = %v, want %v", k, got, v)
		}
	}
	if err := l.VerifyChain(ctx, StaticKeys(setup, l)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}

func TestBlockBuiltOnFailedBlockIsValidatedAgain(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx := context.Background()
	setup := open(t, pool, Options{})
	submit(t, setup, put("k", "0"), put("a", "0"))
	l := open(t, pool, Options{MaxBlockTxs: 1, KeyID: "pipeline/v1"})
	release := holdTxs(t, pool)

	first := commitAsync(t, l, endorse(t, l, put("k", "1"), put("a", "1")))
	stuck := waitForLockWait(t, pool, "relation")
	// On top of N, this one reads a stale a: an MVCC conflict, if N commits.
	second := commitAsync(t, l, endorse(t, l, get("a"), put("d", "1")))
	waitForLockWait(t, pool, "advisory")

	// Block N fails.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, stuck); err != nil {
		t.Fatal(err)
	}
	if got := reasons(<-first); !cmp.Equal(got, []string{"unavailable/commit_failed"}) {
		t.Errorf("block N outcome %q, want unavailable/commit_failed", got)
	}
	release()
	// N+1 was rolled back and its transaction validated again, on the
	// chain as it is: a is current now.
	outs := <-second
	if got := reasons(outs); !cmp.Equal(got, []string{""}) {
		t.Fatalf("transaction built on the failed block: %q, want valid", got)
	}
	if b := outs[0].res.Block; b != 2 || height(t, l) != 2 {
		t.Errorf("it is in block %d at height %d, want block 2 at height 2 (the failed block never existed)", b, height(t, l))
	}
	for k, v := range map[string]*string{"k": ptr("0"), "a": ptr("0"), "d": ptr("1")} {
		if got := stateOf(t, pool, k); !cmp.Equal(got, v) {
			t.Errorf("state of %q = %v, want %v", k, got, v)
		}
	}
	if err := l.VerifyChain(ctx, StaticKeys(setup, l)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}

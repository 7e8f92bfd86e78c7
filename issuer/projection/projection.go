// Package projection keeps the PostgreSQL read model of the points ledger:
// accounts, lots, balance movements, claims, item results and receipts,
// derived from the one "gp.changes" event every valid committed transaction
// carries. The API reads balances, lots and history here instead of asking
// the ledger.
//
// Exactly once: a group of ledger transactions and the checkpoint after them
// are written in one PostgreSQL transaction that holds the checkpoint row
// lock and first re-reads the checkpoint, so a crash keeps all of a group or
// none of it, and several instances can run Run on one database: one leads
// (a session advisory lock per projection name), the others wait, and even
// two appliers at once would skip what the other already applied.
//
// Rebuild empties the projection and replays the ledger from block 0 with
// the same code. docs/projection.md describes the tables.
package projection

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

// Name is the checkpoint name of the points projection.
const Name = "points"

// Bounds and timings of Run.
const (
	// runGroupTxs and runGroupBytes bound one PostgreSQL transaction of Run:
	// it takes what the subscription has already delivered, up to these.
	runGroupTxs   = 256
	runGroupBytes = 16 << 20
	// queueTxs is how many delivered transactions wait for the applier.
	queueTxs = 1024
	// Backoff after a failure: doubled up to maxBackoff, reset by progress.
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
	// leaderRetry is how often a waiting instance tries to take the lead.
	leaderRetry = 2 * time.Second
	// waitPoll bounds how long WaitFor sleeps between looks at the
	// database, for transactions applied by another process.
	waitPollMin = 20 * time.Millisecond
	waitPollMax = 500 * time.Millisecond
)

// Projector applies the ledger's committed transactions to the projection.
// Its methods are safe for concurrent use.
type Projector struct {
	pool *pgxpool.Pool
	led  issuer.Ledger
	log  *slog.Logger
	name string

	// Tests shrink groups to one transaction and turn leadership off to
	// exercise the row-lock path.
	groupTxs int
	noLeader bool

	mu      sync.Mutex
	waiters map[string][]chan issuer.Checkpoint // WaitFor callers by transaction id
	pos     issuer.Checkpoint                   // the last checkpoint this process saw committed
	changed chan struct{}                       // closed and replaced when pos moves
}

// New returns a Projector of the points projection over pool (migrated) fed
// by led. A nil log discards.
func New(pool *pgxpool.Pool, led issuer.Ledger, log *slog.Logger) *Projector {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Projector{
		pool: pool, led: led, log: log.With("component", "projection"), name: Name,
		groupTxs: runGroupTxs,
		waiters:  map[string][]chan issuer.Checkpoint{},
		changed:  make(chan struct{}),
	}
}

// Run keeps the projection up to date until ctx ends, then returns nil. It
// waits to lead (one instance per database applies; the others wait and
// take over when it stops), subscribes from the stored checkpoint and
// applies what the ledger delivers. Failures (database or ledger down) are
// logged and retried with bounded backoff; a change the projection cannot
// apply (it diverged from the ledger) is logged as an error and retried at
// the longest backoff until someone rebuilds.
func (p *Projector) Run(ctx context.Context) error {
	backoff := minBackoff
	for {
		progressed, err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = minBackoff
		}
		if errors.Is(err, errMoved) {
			p.log.Info("projection checkpoint moved (rebuild?); resubscribing from it")
			continue
		}
		if permanent(err) {
			backoff = maxBackoff
			p.log.Error("projection stopped: rebuild it (greenpoints projection rebuild)", "error", err, "retry_in", backoff.String())
		} else {
			p.log.Warn("projection failed; retrying", "error", err, "retry_in", backoff.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce leads, subscribes and applies until something fails.
func (p *Projector) runOnce(ctx context.Context) (progressed bool, err error) {
	if !p.noLeader {
		release, err := p.lead(ctx)
		if err != nil {
			return false, err
		}
		defer release()
	}
	from, err := p.Position(ctx)
	if err != nil {
		return false, err
	}
	p.seen(from, nil)
	return p.follow(ctx, from, loopOptions{groupTxs: p.groupTxs, groupBytes: runGroupBytes}, nil)
}

// lead blocks until this instance holds the projection's advisory lock (a
// session lock on a connection kept until release).
func (p *Projector) lead(ctx context.Context) (release func(), err error) {
	key := lockKey(p.name)
	logged := false
	for {
		conn, err := p.pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("acquiring a connection for the projection lock: %w", err)
		}
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			conn.Release()
			return nil, fmt.Errorf("taking the projection lock: %w", err)
		}
		if ok {
			p.log.Info("leading the projection", "name", p.name)
			return func() {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
					// Closing the session releases the lock.
					_ = conn.Conn().Close(uctx)
				}
				conn.Release()
			}, nil
		}
		conn.Release()
		if !logged {
			p.log.Info("another instance leads the projection; waiting", "name", p.name)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(leaderRetry):
		}
	}
}

// lockKey is the advisory lock key of projection name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("greenpoints/projection/" + name))
	return int64(h.Sum64())
}

// loopOptions shape follow's groups and when it stops.
type loopOptions struct {
	groupTxs   int
	groupBytes int
	// reset empties the projection in the first group's transaction.
	reset bool
	// fill, when set, says how long to wait for more transactions after
	// last before applying a group that is not full and stopping (the
	// ledger is caught up); unset, follow applies what has arrived and
	// waits for more forever.
	fill func(last issuer.Checkpoint) time.Duration
	// beyond, when set, stops follow at the first transaction it accepts
	// (not applied).
	beyond func(issuer.CommittedTx) bool
}

// errSubscriptionEnded says the ledger subscription returned; follow
// replaces it with the subscription's error.
var errSubscriptionEnded = errors.New("ledger subscription ended")

// follow subscribes from `from` and applies groups of delivered
// transactions until ctx ends, a group fails, the subscription fails, or
// (with o.fill or o.beyond) it is caught up, when it returns nil. after is
// called with each committed group's last checkpoint.
func (p *Projector) follow(ctx context.Context, from issuer.Checkpoint, o loopOptions, after func(issuer.Checkpoint)) (progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	ch := make(chan issuer.CommittedTx, queueTxs)
	subErr := make(chan error, 1)
	go func() {
		defer close(ch)
		subErr <- p.led.Subscribe(sctx, from, func(tx issuer.CommittedTx) error {
			select {
			case ch <- tx:
				return nil
			case <-sctx.Done():
				return sctx.Err()
			}
		})
	}()
	defer func() {
		cancel()
		for range ch {
		}
		serr := <-subErr
		if errors.Is(err, errSubscriptionEnded) && serr != nil {
			err = serr
		}
	}()

	prev := from
	reset := o.reset
	for {
		var (
			group  []issuer.CommittedTx
			size   int
			ended  bool // the subscription ended
			caught bool // caught up (fill or beyond)
		)
	collect:
		for len(group) < o.groupTxs && size < o.groupBytes {
			var wait <-chan time.Time
			switch {
			case o.fill != nil:
				last := prev
				if len(group) > 0 {
					last = group[len(group)-1].Checkpoint
				}
				wait = time.After(o.fill(last))
			case len(group) > 0:
				wait = closedTimeChan // apply what has arrived
			}
			select {
			case tx, ok := <-ch:
				switch {
				case !ok:
					ended = true
					break collect
				case o.beyond != nil && o.beyond(tx):
					caught = true
					break collect
				}
				group = append(group, tx)
				size += len(tx.Event)
			case <-wait:
				caught = o.fill != nil
				break collect
			case <-ctx.Done():
				return progressed, ctx.Err()
			}
		}
		if len(group) > 0 || reset {
			next, n, err := p.apply(ctx, prev, group, reset)
			if err != nil {
				return progressed, err
			}
			reset = false
			progressed = progressed || n > 0
			prev = next
			if after != nil {
				after(prev)
			}
		}
		switch {
		case ended:
			return progressed, errSubscriptionEnded
		case caught:
			return progressed, nil
		}
	}
}

// closedTimeChan is a channel that is always ready: "do not wait".
var closedTimeChan = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// apply applies one group and tells the waiters.
func (p *Projector) apply(ctx context.Context, prev issuer.Checkpoint, group []issuer.CommittedTx, reset bool) (issuer.Checkpoint, int, error) {
	if len(group) == 0 {
		// A reset with nothing to replay.
		err := database.InTx(ctx, p.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT 1 FROM proj_checkpoint WHERE name = $1 FOR UPDATE`, p.name); err != nil {
				return err
			}
			return truncate(ctx, tx, p.name)
		})
		return issuer.Checkpoint{}, 0, err
	}
	next, n, err := applyGroup(ctx, p.pool, p.name, prev, group, reset)
	if err != nil {
		return prev, 0, err
	}
	// Also the skipped transactions are committed (by another instance).
	p.seen(next, group)
	return next, n, nil
}

// seen records that the projection holds everything up to cp, including
// txs, and wakes their waiters.
func (p *Projector) seen(cp issuer.Checkpoint, txs []issuer.CommittedTx) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tx := range txs {
		for _, w := range p.waiters[tx.TxID] {
			w <- tx.Checkpoint // buffered, capacity 1, sent once
		}
		delete(p.waiters, tx.TxID)
	}
	if p.pos != cp {
		p.pos = cp
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// Position returns the stored checkpoint: the last ledger transaction the
// projection holds.
func (p *Projector) Position(ctx context.Context) (issuer.Checkpoint, error) {
	return position(ctx, p.pool, p.name)
}

func position(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (issuer.Checkpoint, error) {
	var (
		block int64
		cp    issuer.Checkpoint
	)
	if err := q.QueryRow(ctx, `SELECT block, idx FROM proj_checkpoint WHERE name = $1`, name).Scan(&block, &cp.Index); err != nil {
		return cp, fmt.Errorf("reading the projection checkpoint: %w", err)
	}
	cp.Block = uint64(block)
	return cp, nil
}

// WaitFor waits until the committed ledger transaction txID is in the
// projection and returns its checkpoint. This process's applier wakes it
// at once; a transaction applied by another process is found by looking at
// the database at growing intervals (20 ms to 500 ms). A transaction that
// was never committed valid never appears: bound ctx.
func (p *Projector) WaitFor(ctx context.Context, txID string) (issuer.Checkpoint, error) {
	ch := make(chan issuer.Checkpoint, 1)
	p.mu.Lock()
	p.waiters[txID] = append(p.waiters[txID], ch)
	p.mu.Unlock()
	defer p.dropWaiter(txID, ch)

	poll := waitPollMin
	for {
		var (
			block int64
			cp    issuer.Checkpoint
		)
		err := p.pool.QueryRow(ctx, `SELECT block, idx FROM proj_txs WHERE tx_id = $1`, txID).Scan(&block, &cp.Index)
		switch {
		case err == nil:
			cp.Block = uint64(block)
			return cp, nil
		case !errors.Is(err, pgx.ErrNoRows):
			if ctx.Err() != nil {
				return cp, ctx.Err()
			}
			return cp, fmt.Errorf("looking up transaction %s in the projection: %w", txID, err)
		}
		select {
		case cp := <-ch:
			return cp, nil
		case <-ctx.Done():
			return issuer.Checkpoint{}, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, waitPollMax)
	}
}

func (p *Projector) dropWaiter(txID string, ch chan issuer.Checkpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.waiters[txID]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(p.waiters, txID)
	} else {
		p.waiters[txID] = ws
	}
}

// WaitForCheckpoint waits until the projection holds everything up to cp
// and returns the stored checkpoint.
func (p *Projector) WaitForCheckpoint(ctx context.Context, cp issuer.Checkpoint) (issuer.Checkpoint, error) {
	poll := waitPollMin
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		got, err := p.Position(ctx)
		if err != nil {
			return got, err
		}
		if !got.Less(cp) {
			return got, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, waitPollMax)
	}
}

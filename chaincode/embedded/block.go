package embedded

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

// Validation codes, Fabric's names for them.
const (
	codeValid        = "VALID"
	codeMVCCConflict = "MVCC_READ_CONFLICT"
	codePhantom      = "PHANTOM_READ_CONFLICT"
	codeDuplicate    = "DUPLICATE_TXID"
)

// maxKey is greater than every valid key (at most stub.MaxKeyLen bytes of
// UTF-8, whose byte order is code point order): the upper bound of an
// unbounded range in the batched phantom check.
var maxKey = strings.Repeat("\U0010FFFF", stub.MaxKeyLen/4+1)

// SQL of the block producer.
const (
	sqlLock         = `SELECT pg_advisory_xact_lock($1)`
	sqlHead         = `SELECT number, header_hash, created_at FROM ledger_blocks ORDER BY number DESC LIMIT 1`
	sqlVersions     = `SELECT key, block, txnum FROM ledger_state WHERE key = ANY($1::text[])`
	sqlSeenTxIDs    = `SELECT txid FROM ledger_txs WHERE txid = ANY($1::text[]) AND validation_code <> 'DUPLICATE_TXID'`
	sqlRangeRecheck = `SELECT r.i, s.key, s.block, s.txnum
		FROM unnest($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY AS r(lo, hi, incl, i)
		CROSS JOIN LATERAL (
			SELECT key, block, txnum FROM ledger_state
			WHERE key >= r.lo AND key <= r.hi AND (r.incl OR key <> r.hi)
		) s
		ORDER BY r.i, s.key`
	sqlInsertBlock = `WITH b AS (
			INSERT INTO ledger_blocks (number, prev_hash, data_hash, header_hash, signature, key_id, created_at, tx_count)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING number
		)
		SELECT pg_notify('` + notifyChannel + `', number::text) FROM b`
	sqlUpsertState = `INSERT INTO ledger_state (key, value, block, txnum)
		SELECT u.k, u.v, $3, u.t FROM unnest($1::text[], $2::bytea[], $4::int[]) AS u(k, v, t)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, block = excluded.block, txnum = excluded.txnum`
	// sqlInsertState writes keys known to be absent: a plain insert costs
	// PostgreSQL about a third less than the upsert's speculative insertion.
	// Should a key exist after all, the unique index fails the block and
	// nothing is written.
	sqlInsertState = `INSERT INTO ledger_state (key, value, block, txnum)
		SELECT u.k, u.v, $3, u.t FROM unnest($1::text[], $2::bytea[], $4::int[]) AS u(k, v, t)`
	sqlDeleteState = `DELETE FROM ledger_state WHERE key = ANY($1::text[])`
)

// pending is a transaction waiting in the producer's queue.
type pending struct {
	e    *endorsement
	done chan outcome // capacity 1: the producer never blocks on it
	// requeued counts the blocks that rolled back with it and handed it
	// back to the queue (see write); bounded by maxRequeues.
	requeued int
}

// maxRequeues bounds how often one transaction goes back to the queue.
const maxRequeues = 5

type outcome struct {
	res *issuer.TxResult
	err error
}

// Commit queues an endorsed transaction for the next block and waits for its
// validation. A valid transaction returns its result; an invalid one returns
// Conflict with reason mvcc_read_conflict, phantom_read_conflict or
// duplicate_txid, and wrote nothing. Unavailable means the outcome is
// unknown to this call: the block failed, or ctx ended while the transaction
// was queued (it may still commit).
func (l *Ledger) Commit(ctx context.Context, e issuer.Endorsed) (*issuer.TxResult, error) {
	en, ok := e.(*endorsement)
	if !ok || en == nil {
		return nil, apperr.New(apperr.Invalid, "foreign_endorsement", "the transaction was not endorsed by an embedded ledger")
	}
	if err := ctx.Err(); err != nil {
		return nil, apperr.Wrap(err, apperr.Unavailable, "ledger_timeout", "transaction %s was not ordered: the request ended", en.env.txID)
	}
	p := &pending{e: en, done: make(chan outcome, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errClosed()
	}
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	l.signal()
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, apperr.Wrap(ctx.Err(), apperr.Unavailable, "commit_unknown",
			"stopped waiting for transaction %s, which is ordered and may still commit", en.env.txID)
	}
}

// signal wakes the producer without blocking.
func (l *Ledger) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// produce is the block producer: it cuts blocks until Close has been called,
// the queue is empty and no block is being written.
//
// Blocks are pipelined two deep: block N is written by its own goroutine
// over its own connection; once N's state writes are sent, the producer cuts
// block N+1, validates, hashes and signs it on top of N's writes (still
// uncommitted), and N+1's goroutine writes the keys N did not touch and its
// history while N's statements and commit run. N+1 then takes the producer lock, which N holds
// until it commits (or fails), checks that the chain head is exactly N, and
// only then writes the rest and commits; if the head is anything else (N
// failed, or another instance wrote a block), N+1 rolls back and its
// transactions go back to the queue, to be validated again under the lock.
// So each block still commits atomically, in chain order, validated against
// exactly the state it commits on.
func (l *Ledger) produce() {
	defer close(l.producerDone)
	var prev *flight // the last block started, possibly still being written
	for {
		if prev != nil {
			// Let the queue fill while prev writes its state: cutting the
			// next block at once made blocks of ~1.2 instead of ~1.9
			// transactions at batch 1,000, and cost PostgreSQL ~12% more
			// per issuance (docs/benchmarks.md).
			<-prev.wrote
		}
		batch, ok := l.nextBatch()
		if !ok {
			if prev == nil {
				return
			}
			// It may hand its transactions back.
			l.land(prev, nil)
			prev = nil
			continue
		}
		var f *flight
		if prev != nil && prev.plan != nil && !prev.stale {
			f = l.startOnTop(batch, prev)
		}
		if f == nil {
			if prev != nil {
				l.land(prev, nil)
				prev = nil
			}
			f = l.startLocked(batch)
		}
		<-f.prepared
		if prev != nil {
			l.land(prev, f)
		}
		prev = f
	}
}

// nextBatch waits for queued transactions and takes up to maxBlockTxs of
// them; ok is false when the ledger is closed and drained.
func (l *Ledger) nextBatch() (batch []*pending, ok bool) {
	for {
		l.mu.Lock()
		n, closed := len(l.queue), l.closed
		l.mu.Unlock()
		if n > 0 {
			break
		}
		if closed {
			return nil, false
		}
		<-l.wake
	}
	if l.linger > 0 {
		l.lingerForMore()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.queue), l.maxBlockTxs)
	batch = slices.Clone(l.queue[:n])
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return batch, true
}

// requeue puts the transactions of a block that was rolled back before its
// commit back at the head of the queue.
func (l *Ledger) requeue(batch []*pending) {
	l.mu.Lock()
	l.queue = append(slices.Clone(batch), l.queue...)
	l.mu.Unlock()
	l.signal()
}

// lingerForMore waits up to the linger time for the block to fill.
func (l *Ledger) lingerForMore() {
	timer := time.NewTimer(l.linger)
	defer timer.Stop()
	for {
		l.mu.Lock()
		enough := len(l.queue) >= l.maxBlockTxs || l.closed
		l.mu.Unlock()
		if enough {
			return
		}
		select {
		case <-l.wake:
		case <-timer.C:
			return
		}
	}
}

// flight is a block being written by its own goroutine.
type flight struct {
	batch    []*pending
	plan     *blockPlan    // set before prepared is closed; nil if preparing failed
	prepared chan struct{} // closed once the block is validated and signed (or failed to be)
	// token is an advisory lock key of this block alone, which its
	// transaction takes first: the block built on it waits for its end by
	// asking for it, a wait PostgreSQL sees (and so can break a deadlock
	// with another instance's block).
	token     int64
	started   chan struct{} // closed once the transaction holds token (or has ended)
	wrote     chan struct{} // closed once its first state writes are done (or it has ended)
	wroteOnce sync.Once
	startOnce sync.Once
	done      chan struct{} // closed once the block committed or failed and its waiters were answered
	ok        bool          // the block committed; read after done
	stale     bool          // producer only: built on a block that failed, so no base for another
}

func newFlight(batch []*pending) *flight {
	var t [8]byte
	if _, err := rand.Read(t[:]); err != nil {
		panic("embedded ledger: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return &flight{batch: batch, prepared: make(chan struct{}), token: int64(binary.BigEndian.Uint64(t[:])),
		started: make(chan struct{}), wrote: make(chan struct{}), done: make(chan struct{})}
}

func (f *flight) hasStarted() { f.startOnce.Do(func() { close(f.started) }) }

func (f *flight) hasWritten() { f.wroteOnce.Do(func() { close(f.wrote) }) }

// land waits until f is written. If it failed, the window of recent writes,
// which already holds f's writes, forgets everything, and next, built on f,
// must not be built on in turn (it will fail its head check unless f
// committed after all).
func (l *Ledger) land(f, next *flight) {
	<-f.done
	if !f.ok {
		l.recent = recentWrites{}
		if next != nil {
			next.stale = true
		}
	}
}

// startLocked starts writing batch as a block that takes the producer lock
// first and validates against the committed head it then reads: the way
// when no block of ours is in flight.
func (l *Ledger) startLocked(batch []*pending) *flight {
	f := newFlight(batch)
	go l.write(f, nil)
	return f
}

// startOnTop validates and signs batch as the block after below, which is
// still being written, and starts writing it; nil if its validation reads
// failed (the caller then takes the locked way).
func (l *Ledger) startOnTop(batch []*pending, below *flight) *flight {
	// below must hold its token (and its connection) before this block's
	// goroutine asks for either.
	<-below.started
	ctx, cancel := context.WithTimeout(l.bg, blockTimeout)
	defer cancel()
	plan, err := l.prepare(ctx, l.pool, batch, below.plan.head, below.plan)
	if err != nil {
		l.log.Warn("validating a block on top of the one being written failed; validating under the lock instead", "error", err)
		return nil
	}
	f := newFlight(batch)
	f.plan = plan
	close(f.prepared)
	go l.write(f, below)
	return f
}

// errHeadMoved: a block built on top of another found a different chain head
// once it held the producer lock.
var errHeadMoved = errors.New("the chain head is not the block this one was built on")

// write writes f as one PostgreSQL transaction and answers its waiters:
// locked (below nil: lock, read the head, validate, write) or on top of
// below (validated already: write, then lock and check the head is below).
// A block rolled back before its commit for want of a place in the chain
// (on top of another: any failure; locked: a deadlock PostgreSQL broke)
// hands its transactions back to the queue, certain that none was applied,
// at most maxRequeues times each. Any other failure answers every waiter
// Unavailable: the block never existed, or (a failed COMMIT) its fate is
// unknown to us.
func (l *Ledger) write(f *flight, below *flight) {
	defer close(f.done)
	defer f.hasStarted() // or never will
	defer f.hasWritten()
	preparing := below == nil
	defer func() {
		if preparing { // the transaction failed before preparing ended
			close(f.prepared)
		}
	}()
	ctx, cancel := context.WithTimeout(l.bg, blockTimeout)
	defer cancel()
	began := time.Now()
	committing := false // the body succeeded, so COMMIT was sent
	err := database.InTx(ctx, l.pool, func(tx pgx.Tx) error {
		// Never waits: nobody else knows the token.
		if _, err := tx.Exec(ctx, sqlLock, f.token); err != nil {
			return fmt.Errorf("taking the block's own lock: %w", err)
		}
		f.hasStarted()
		if below == nil {
			plan, err := l.lockAndPrepare(ctx, tx, f)
			f.plan, preparing = plan, false
			close(f.prepared)
			if err != nil {
				return err
			}
		}
		if err := l.writeBlock(ctx, tx, f, below); err != nil {
			return err
		}
		committing = true
		return nil
	})
	if err != nil {
		batch := f.batch
		if !committing && (below != nil || isDeadlock(err)) {
			// Rolled back for certain, for want of a place in the chain:
			// validate the transactions again.
			var again []*pending
			batch = nil
			for _, p := range f.batch {
				if p.requeued < maxRequeues {
					p.requeued++
					again = append(again, p)
				} else {
					batch = append(batch, p)
				}
			}
			l.log.Info("a block was rolled back before its commit; its transactions are validated again",
				"txs", len(again), "error", err)
			l.requeue(again)
		}
		if len(batch) == 0 {
			return
		}
		// The head check at the next block resets the window if this block
		// committed after all.
		l.log.Error("committing a block failed; its transactions were not applied", "txs", len(batch), "error", err)
		fail := apperr.Wrap(err, apperr.Unavailable, "commit_failed",
			"the block holding the transaction could not be committed; check whether it was applied before resubmitting")
		for _, p := range batch {
			p.done <- outcome{err: fail}
		}
		return
	}
	f.ok = true
	b := f.plan
	l.log.Debug("block committed", "block", b.head.number, "txs", len(f.batch), "valid", b.valid, "took", time.Since(began))
	for i, p := range f.batch {
		p.done <- b.outcome(i, p.e)
	}
	l.changed.fire()
}

// isDeadlock reports whether PostgreSQL broke a deadlock by failing err's
// statement: possible between the blocks of two instances sharing the
// database (one writing the rows the other waits for while waiting for the
// producer lock the other holds).
func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40P01"
}

// blockPlan is a validated, signed block, ready to be written.
type blockPlan struct {
	head  chainHead // the block itself, as the next one is built on it
	h     header
	sig   []byte
	codes []string
	valid int
	txIDs []string
	v     *validator // its overlay: the block's net writes; read-only once planned
}

func (b *blockPlan) outcome(i int, e *endorsement) outcome {
	var reason, what string
	switch b.codes[i] {
	case codeValid:
		return outcome{res: &issuer.TxResult{
			TxID:      e.env.txID,
			Block:     uint64(b.head.number),
			Index:     i,
			Timestamp: e.env.ts,
			Payload:   e.env.result,
		}}
	case codeMVCCConflict:
		reason, what = "mvcc_read_conflict", "a key it read was changed by an earlier transaction"
	case codePhantom:
		reason, what = "phantom_read_conflict", "a range it read was changed by an earlier transaction"
	default:
		reason, what = "duplicate_txid", "its transaction id was already used"
	}
	return outcome{err: apperr.New(apperr.Conflict, reason,
		"transaction %s was invalidated at commit in block %d (%s): %s; submit it again as a new proposal",
		e.env.txID, b.head.number, b.codes[i], what)}
}

// chainHead is the last block, as the next one needs it.
type chainHead struct {
	number    int64
	hash      []byte
	createdAt time.Time
}

// queryHead reads the chain head into head; an empty chain leaves number 0
// and an empty hash (block 1 has no predecessor).
func queryHead(b *pgx.Batch, head *chainHead) {
	b.Queue(sqlHead).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&head.number, &head.hash, &head.createdAt)
		if errors.Is(err, pgx.ErrNoRows) {
			head.hash = []byte{}
			return nil
		}
		return err
	})
}

// lockAndPrepare takes the producer lock, reads the head as it is once we
// hold it (a statement of its own, so READ COMMITTED gives it a snapshot
// taken after the lock) and prepares batch on it.
func (l *Ledger) lockAndPrepare(ctx context.Context, tx pgx.Tx, f *flight) (*blockPlan, error) {
	var head chainHead
	lb := &pgx.Batch{}
	lb.Queue(sqlLock, producerLockKey)
	queryHead(lb, &head)
	if err := tx.SendBatch(ctx, lb).Close(); err != nil {
		return nil, fmt.Errorf("taking the block producer lock: %w", err)
	}
	l.recent.sync(head)
	return l.prepare(ctx, tx, f.batch, head, nil)
}

// batchSender is a pgx.Tx or the pool.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// prepare validates batch as the block after head, as a Fabric committer
// does, then builds and signs its header and adds its writes to the window
// of recent writes. below is the block head names when that block is still
// being written (nil when head is committed): its writes count as committed,
// and q's reads, which may or may not see them yet, are overlaid with them.
// This is exact only if below then commits on the head it was built on;
// the block's head check makes sure of it.
func (l *Ledger) prepare(ctx context.Context, q batchSender, batch []*pending, head chainHead, below *blockPlan) (*blockPlan, error) {
	// Which transactions the window of recent writes validates; the others
	// need the committed versions of their keys and the committed content
	// of their ranges, read in one round trip with the taken txids.
	nWrites := 0
	for _, p := range batch {
		nWrites += len(p.e.writes)
	}
	var (
		fast      = make([]bool, len(batch))
		dbRanges  = make([]int, len(batch)) // index of a transaction's first range in rangeRows
		readKeys  []string
		seen      = make(map[string]struct{})
		txIDs     = make([]string, len(batch))
		lo, hi    []string
		incl      []bool
		v         = validator{recent: &l.recent, committed: make(map[string]version), overlay: make(map[string]overlayEntry, nWrites), ovKeys: make([]string, 0, nWrites)}
		taken     = make(map[string]bool)
		rangeRows [][]readEntry
	)
	if below != nil {
		v.below = below.v
		for _, id := range below.txIDs {
			taken[id] = true
		}
	}
	for i, p := range batch {
		txIDs[i] = p.e.env.txID
		fast[i] = l.recent.covers(p.e.snapHeight)
		if fast[i] && !crossCheckRecent {
			continue
		}
		for _, r := range p.e.reads {
			if _, ok := seen[r.key]; !ok {
				seen[r.key] = struct{}{}
				readKeys = append(readKeys, r.key)
			}
		}
		dbRanges[i] = len(lo)
		for _, r := range p.e.ranges {
			lo = append(lo, r.start)
			switch {
			case r.endInclusive:
				hi, incl = append(hi, r.end), append(incl, true)
			case r.end == "":
				hi, incl = append(hi, maxKey), append(incl, true)
			default:
				hi, incl = append(hi, r.end), append(incl, false)
			}
		}
	}
	rangeRows = make([][]readEntry, len(lo))
	rb := &pgx.Batch{}
	if len(readKeys) > 0 {
		rb.Queue(sqlVersions, readKeys).Query(func(rows pgx.Rows) error {
			var (
				key string
				ver version
			)
			_, err := pgx.ForEachRow(rows, []any{&key, &ver.block, &ver.txnum}, func() error {
				v.committed[key] = ver
				return nil
			})
			return err
		})
	}
	rb.Queue(sqlSeenTxIDs, txIDs).Query(func(rows pgx.Rows) error {
		var id string
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			taken[id] = true
			return nil
		})
		return err
	})
	if len(lo) > 0 {
		rb.Queue(sqlRangeRecheck, lo, hi, incl).Query(func(rows pgx.Rows) error {
			var (
				i int64
				e readEntry
			)
			_, err := pgx.ForEachRow(rows, []any{&i, &e.key, &e.ver.block, &e.ver.txnum}, func() error {
				rangeRows[i-1] = append(rangeRows[i-1], e)
				return nil
			})
			return err
		})
	}
	if err := q.SendBatch(ctx, rb).Close(); err != nil {
		return nil, fmt.Errorf("reading the state to validate against: %w", err)
	}
	if below != nil {
		for i, p := range batch {
			if fast[i] && !crossCheckRecent {
				continue
			}
			for j := range p.e.ranges {
				k := dbRanges[i] + j
				rangeRows[k] = below.v.overlaid(&p.e.ranges[j], rangeRows[k])
			}
		}
	}
	if crossCheckRecent {
		if err := v.crossCheck(batch, fast, rangeRows, dbRanges); err != nil {
			return nil, err
		}
	}

	// Validate in order, as a Fabric committer does.
	number := head.number + 1
	b := &blockPlan{codes: make([]string, len(batch)), txIDs: txIDs, v: &v}
	for i, p := range batch {
		e := p.e
		var dbRows [][]readEntry
		if !fast[i] {
			dbRows = rangeRows[dbRanges[i] : dbRanges[i]+len(e.ranges)]
		}
		code := codeValid
		switch {
		case taken[e.env.txID]:
			code = codeDuplicate
		case !v.readsCurrent(e, fast[i]):
			code = codeMVCCConflict
		case !v.rangesCurrent(e, fast[i], dbRows):
			code = codePhantom
		}
		taken[e.env.txID] = true
		b.codes[i] = code
		if code == codeValid {
			b.valid++
			v.apply(e, version{block: number, txnum: int32(i)})
		}
	}

	// The header.
	txHashes := make([][]byte, len(batch))
	for i, p := range batch {
		txHashes[i] = p.e.env.envelopeSum
	}
	created := l.clock().UTC().Truncate(time.Microsecond)
	if prev := head.createdAt.UTC(); head.number > 0 && !created.After(prev) {
		created = prev.Add(time.Microsecond)
	}
	b.h = header{
		number:    number,
		prevHash:  head.hash,
		dataHash:  dataHash(txHashes, b.codes),
		createdAt: created,
		txCount:   len(batch),
		keyID:     l.keyID,
	}
	b.head = chainHead{number: number, hash: headerHash(&b.h), createdAt: created}
	sig, err := l.signer.Sign(rand.Reader, b.head.hash, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("signing block %d: %w", number, err)
	}
	b.sig = sig
	// Sorted once here: the block's successor reads the overlay while this
	// block's goroutine writes it.
	l.recent.add(number, b.head.hash, v.sortedKeys(), v.overlay)
	return b, nil
}

// writeBlock writes a prepared block: the block row and its net effect on
// world state, the transactions and the history, the bulk of the bytes,
// streamed with COPY. A block built on top of below (still being written)
// first writes what does not depend on below having committed: the keys
// below does not write, and the history. Then it takes the producer lock,
// which below holds until it ends, checks that the head is below, and
// writes the rest: the keys below writes (a statement started before below
// committed would not see below's rows), the block row (which
// the transactions reference) and the transactions.
func (l *Ledger) writeBlock(ctx context.Context, tx pgx.Tx, f *flight, below *flight) error {
	batch, b := f.batch, f.plan
	number := b.head.number
	insertBlock := func(wb *pgx.Batch) {
		wb.Queue(sqlInsertBlock, number, b.h.prevHash, b.h.dataHash, b.head.hash, b.sig, l.keyID, b.head.createdAt, len(batch))
	}
	writeTxs := func() error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ledger_txs"}, txColumns, &txCopy{number: number, batch: batch, codes: b.codes}); err != nil {
			return fmt.Errorf("writing the transactions of block %d: %w", number, err)
		}
		return nil
	}
	writeHistory := func() error {
		if b.valid == 0 {
			return nil
		}
		hc := &historyCopy{number: number, batch: batch, codes: b.codes, t: -1}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ledger_history"}, historyColumns, hc); err != nil {
			return fmt.Errorf("writing the history of block %d: %w", number, err)
		}
		return nil
	}
	send := func(wb *pgx.Batch) error {
		if wb.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, wb).Close(); err != nil {
			return fmt.Errorf("writing block %d: %w", number, err)
		}
		return nil
	}

	if below == nil {
		wb := &pgx.Batch{}
		insertBlock(wb)
		b.v.queueStateWrites(wb, number, nil)
		if err := send(wb); err != nil {
			return err
		}
		f.hasWritten()
		if err := writeTxs(); err != nil {
			return err
		}
		return writeHistory()
	}

	notBelow := func(k string) bool { _, ok := below.plan.v.overlay[k]; return !ok }
	wb := &pgx.Batch{}
	b.v.queueStateWrites(wb, number, notBelow)
	if err := send(wb); err != nil {
		return err
	}
	f.hasWritten()
	if err := writeHistory(); err != nil {
		return err
	}
	// Wait for below's end (startOnTop saw it hold its token), then take
	// the producer lock: asking for it before below has would take it
	// first, find the head short of below and roll back.
	var head chainHead
	end := &pgx.Batch{}
	end.Queue(sqlLock, below.token)
	end.Queue(sqlLock, producerLockKey)
	queryHead(end, &head)
	if err := tx.SendBatch(ctx, end).Close(); err != nil {
		return fmt.Errorf("taking the block producer lock: %w", err)
	}
	if head.number != below.plan.head.number || !bytes.Equal(head.hash, below.plan.head.hash) {
		return fmt.Errorf("block %d: %w (head %d)", number, errHeadMoved, head.number)
	}
	wb = &pgx.Batch{}
	b.v.queueStateWrites(wb, number, func(k string) bool { return !notBelow(k) })
	insertBlock(wb)
	if err := send(wb); err != nil {
		return err
	}
	return writeTxs()
}

var (
	txColumns = []string{"block", "idx", "txid", "caller", "function", "args", "ts", "validation_code",
		"event_name", "event", "result", "reads_hash", "writes_hash"}
	historyColumns = []string{"key", "block", "txnum", "value", "is_delete"}
)

// txCopy streams a block's transactions to COPY.
type txCopy struct {
	number int64
	batch  []*pending
	codes  []string
	i      int
	row    [13]any
}

func (c *txCopy) Next() bool { c.i++; return c.i <= len(c.batch) }

func (c *txCopy) Values() ([]any, error) {
	i := c.i - 1
	e := &c.batch[i].e.env
	c.row = [13]any{c.number, int32(i), e.txID, e.caller, e.function, e.args, e.ts, c.codes[i],
		e.eventName, e.event, e.result, e.readsHash, e.writesHash}
	return c.row[:], nil
}

func (c *txCopy) Err() error { return nil }

// historyCopy streams the writes of a block's valid transactions to COPY.
type historyCopy struct {
	number int64
	batch  []*pending
	codes  []string
	t, w   int // the current transaction and write
	row    [5]any
}

func (c *historyCopy) Next() bool {
	if c.t >= 0 {
		c.w++
		if c.w < len(c.batch[c.t].e.writes) {
			return true
		}
	}
	for c.t++; c.t < len(c.batch); c.t++ {
		if c.codes[c.t] == codeValid && len(c.batch[c.t].e.writes) > 0 {
			c.w = 0
			return true
		}
	}
	return false
}

func (c *historyCopy) Values() ([]any, error) {
	w := &c.batch[c.t].e.writes[c.w]
	c.row = [5]any{w.key, c.number, int32(c.t), w.value, w.del}
	return c.row[:], nil
}

func (c *historyCopy) Err() error { return nil }

// validator holds what validation compares against: the window of recent
// writes, the committed versions read from the database for the other
// transactions (with the writes of below, the block still being written
// that this one is built on, laid over them), and the writes of the block's
// valid transactions so far.
type validator struct {
	recent    *recentWrites
	committed map[string]version
	below     *validator
	overlay   map[string]overlayEntry
	ovKeys    []string // the overlay's keys, sorted when ovSorted
	ovSorted  bool
}

type overlayEntry struct {
	ver   version
	value []byte
	del   bool
	// fresh: the key is absent at the head of the chain, before this block
	// (the first valid transaction of the block to write it had read it as
	// absent, and validation proved that read current).
	fresh bool
}

// atHead is the committed version of a key e read (seeing seen) at the head
// of the chain, before this block.
func (v *validator) atHead(e *endorsement, fast bool, key string, seen version) version {
	if fast {
		return v.recent.current(key, e.snapHeight, seen)
	}
	return v.committedAt(key)
}

// committedAt is the version of key at the head read from the database.
func (v *validator) committedAt(key string) version {
	if v.below != nil {
		if o, ok := v.below.overlay[key]; ok {
			if o.del {
				return version{}
			}
			return o.ver
		}
	}
	return v.committed[key]
}

// current is the version of key after the block's valid transactions so far.
func (v *validator) current(e *endorsement, fast bool, key string, seen version) version {
	if o, ok := v.overlay[key]; ok {
		if o.del {
			return version{}
		}
		return o.ver
	}
	return v.atHead(e, fast, key, seen)
}

// readsCurrent is the MVCC check: every version e read is still current.
func (v *validator) readsCurrent(e *endorsement, fast bool) bool {
	for _, r := range e.reads {
		if v.current(e, fast, r.key, r.ver) != r.ver {
			return false
		}
	}
	return true
}

// rangesCurrent is the phantom check: each range query of e, re-executed
// over the committed state (from the window, or dbRows[j] for e.ranges[j])
// and the block's earlier writes, returns the same keys at the same
// versions.
func (v *validator) rangesCurrent(e *endorsement, fast bool, dbRows [][]readEntry) bool {
	for j := range e.ranges {
		r := &e.ranges[j]
		var committed []readEntry
		if fast {
			committed = v.recent.rangeAtHead(r, e.snapHeight)
		} else {
			committed = dbRows[j]
		}
		if !v.rangeCurrent(r, committed) {
			return false
		}
	}
	return true
}

// crossCheck compares, for every transaction the window validates, the
// window's view of the head with the database's (tests only).
func (v *validator) crossCheck(batch []*pending, fast []bool, rangeRows [][]readEntry, dbRanges []int) error {
	for i, p := range batch {
		if !fast[i] {
			continue
		}
		e := p.e
		for _, r := range e.reads {
			if w, db := v.atHead(e, true, r.key, r.ver), v.committedAt(r.key); w != db {
				return fmt.Errorf("window of recent writes diverged: key %q at %+v, database %+v (tx %s, snapshot %d)", r.key, w, db, e.env.txID, e.snapHeight)
			}
		}
		for j := range e.ranges {
			w, db := v.recent.rangeAtHead(&e.ranges[j], e.snapHeight), rangeRows[dbRanges[i]+j]
			if !slices.Equal(w, db) {
				return fmt.Errorf("window of recent writes diverged: range %+v is %+v, database %+v (tx %s, snapshot %d)", e.ranges[j], w, db, e.env.txID, e.snapHeight)
			}
		}
	}
	return nil
}

func (r *rangeRead) contains(k string) bool {
	switch {
	case k < r.start:
		return false
	case r.endInclusive:
		return k <= r.end
	default:
		return r.end == "" || k < r.end
	}
}

// rangeCurrent merges the committed content of r's range with the block's
// earlier writes and compares the result with what r saw.
func (v *validator) rangeCurrent(r *rangeRead, committed []readEntry) bool {
	var written []string // overlay keys in the range, sorted
	if len(v.ovKeys) > 0 {
		keys := v.sortedKeys()
		from := sort.SearchStrings(keys, r.start)
		to := from
		for to < len(keys) && r.contains(keys[to]) {
			to++
		}
		written = keys[from:to]
	}
	n := 0 // results matched so far
	match := func(k string, ver version) bool {
		if n >= len(r.results) || r.results[n].key != k || r.results[n].ver != ver {
			return false
		}
		n++
		return true
	}
	i, j := 0, 0
	for i < len(committed) || j < len(written) {
		var k string
		switch {
		case j >= len(written) || (i < len(committed) && committed[i].key < written[j]):
			if !match(committed[i].key, committed[i].ver) {
				return false
			}
			i++
			continue
		case i >= len(committed) || written[j] < committed[i].key:
			k = written[j]
			j++
		default: // written over a committed key
			k = written[j]
			i++
			j++
		}
		if o := v.overlay[k]; !o.del && !match(k, o.ver) {
			return false
		}
	}
	return n == len(r.results)
}

// overlaid is rows, the committed content of range r, with v's writes
// inside r applied.
func (v *validator) overlaid(r *rangeRead, rows []readEntry) []readEntry {
	keys := v.sortedKeys()
	from := sort.SearchStrings(keys, r.start)
	to := from
	for to < len(keys) && r.contains(keys[to]) {
		to++
	}
	if from == to {
		return rows
	}
	out := make([]readEntry, 0, len(rows)+to-from)
	i := 0
	for _, k := range keys[from:to] {
		for i < len(rows) && rows[i].key < k {
			out = append(out, rows[i])
			i++
		}
		if i < len(rows) && rows[i].key == k {
			i++
		}
		if o := v.overlay[k]; !o.del {
			out = append(out, readEntry{key: k, ver: o.ver})
		}
	}
	return append(out, rows[i:]...)
}

// sortedKeys returns the overlay's keys in order.
func (v *validator) sortedKeys() []string {
	if !v.ovSorted {
		slices.Sort(v.ovKeys)
		v.ovSorted = true
	}
	return v.ovKeys
}

// apply adds a valid transaction's writes to the overlay.
func (v *validator) apply(e *endorsement, ver version) {
	r := 0 // e.reads and e.writes are both sorted by key
	for _, w := range e.writes {
		prev, ok := v.overlay[w.key]
		fresh := prev.fresh
		if !ok {
			v.ovKeys = append(v.ovKeys, w.key)
			v.ovSorted = false
			for r < len(e.reads) && e.reads[r].key < w.key {
				r++
			}
			fresh = r < len(e.reads) && e.reads[r].key == w.key && e.reads[r].ver == version{}
		}
		v.overlay[w.key] = overlayEntry{ver: ver, value: w.value, del: w.del, fresh: fresh}
	}
}

// queueStateWrites queues the block's net effect on world state, for the
// keys that only selects (all when nil): the last write of each key (one
// statement may not touch a row twice).
func (v *validator) queueStateWrites(wb *pgx.Batch, number int64, only func(string) bool) {
	if len(v.ovKeys) == 0 {
		return
	}
	v.sortedKeys() // key order keeps index insertions local
	type rows struct {
		keys   []string
		values [][]byte
		txnums []int32
	}
	var (
		upsert, insert rows // keys that may exist, keys absent at the head
		deletes        []string
	)
	for _, k := range v.ovKeys {
		if only != nil && !only(k) {
			continue
		}
		o := v.overlay[k]
		if o.del {
			if !o.fresh {
				deletes = append(deletes, k)
			}
			continue
		}
		to := &upsert
		if o.fresh {
			to = &insert
		}
		to.keys = append(to.keys, k)
		to.values = append(to.values, o.value)
		to.txnums = append(to.txnums, o.ver.txnum)
	}
	if len(insert.keys) > 0 {
		wb.Queue(sqlInsertState, insert.keys, insert.values, number, insert.txnums)
	}
	if len(upsert.keys) > 0 {
		wb.Queue(sqlUpsertState, upsert.keys, upsert.values, number, upsert.txnums)
	}
	if len(deletes) > 0 {
		wb.Queue(sqlDeleteState, deletes)
	}
}

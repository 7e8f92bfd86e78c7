// Package embedded is the embedded ledger backend: the points contract runs
// in-process over world state, key history and hash-chained, signed blocks
// kept in PostgreSQL. It implements issuer.Ledger with Fabric's semantics, so
// the contract and its callers cannot tell it from a Fabric network:
//
//   - Endorse simulates a proposal against one consistent snapshot of
//     committed state (a REPEATABLE READ, READ ONLY transaction), recording
//     the versions it read, the range queries it made, its writes and its
//     single event. Reads never see the transaction's own writes.
//   - Commit queues the endorsed transaction to the block producer, which cuts
//     blocks of many transactions (natural group commit) and validates each
//     one in order exactly as a Fabric committer does: duplicate transaction
//     ids, MVCC read conflicts and phantom range reads, counting the writes of
//     earlier valid transactions in the same block. Invalid transactions stay
//     in the block with their validation code and write nothing. Large
//     transactions are validated from the producer's memory of the blocks it
//     wrote since their snapshot (see recentWrites), others by reading the
//     committed versions, all of a block's in one query.
//   - A block is written in one PostgreSQL transaction under an advisory
//     lock, so several server instances can share one database and still
//     build a single chain. Blocks are pipelined: block N+1 is validated on
//     block N's writes and starts writing while N is still being written,
//     then commits only once it holds the lock and finds N at the head
//     (otherwise it rolls back and its transactions are validated again).
//     Each block commits to its transactions (data hash), to its
//     predecessor (previous header hash) and is signed with the issuer's
//     Ed25519 key; VerifyChain checks all of it, and that the world state
//     is the fold of the verified writes.
//
// It is one organisation's ledger, for the demo, development and
// single-issuer pilots: whoever controls the database controls the ledger, and
// the signatures only make tampering detectable. It is not a multi-party
// trust boundary; Fabric is.
package embedded

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

// Chaincode is the contract the ledger runs: chaincode/points in production,
// small test contracts in tests.
type Chaincode interface {
	// Invoke runs function fn with its JSON argument document against s and
	// returns the function's result. Errors are encoded with
	// apperr.EncodeWire and decoded on the way out, as they cross Fabric.
	Invoke(s stub.Stub, fn string, args []byte) ([]byte, error)
	// ReadOnly reports whether fn only queries. Any function may be
	// evaluated and any may be submitted, as on Fabric; this is advisory.
	ReadOnly(fn string) bool
}

// Options configure New.
type Options struct {
	// Clock gives transaction and block times; default time.Now. The ledger
	// makes the times it hands out strictly increasing (at microsecond
	// resolution, PostgreSQL's), whatever the clock does.
	Clock func() time.Time
	// MaxBlockTxs caps the transactions in one block; default 500.
	MaxBlockTxs int
	// BlockLinger is how long the producer waits for more transactions
	// before cutting a block that is not full. The default, 0, cuts as soon
	// as the producer is free; transactions queue up while it writes a
	// block, which is natural group commit.
	BlockLinger time.Duration
	// Signer signs block headers; it must hold an Ed25519 key. Required.
	Signer crypto.Signer
	// KeyID names the signer's key (and version), stored with every block so
	// VerifyChain can find the public key after rotation. Required.
	KeyID string
	// Logger receives block and listener diagnostics; nil discards them.
	Logger *slog.Logger
	// PollInterval bounds how long Subscribe waits between looks at the
	// database when no notification arrives; default 500ms. Notifications
	// make delivery prompt; polling makes a missed one harmless.
	PollInterval time.Duration
}

const (
	defaultMaxBlockTxs  = 500
	defaultPollInterval = 500 * time.Millisecond
	// maxArgsBytes bounds a proposal's argument document.
	maxArgsBytes = 32 << 20
	// blockTimeout bounds the database transaction that writes one block.
	blockTimeout = 2 * time.Minute
	// notifyChannel is the PostgreSQL channel a new block is announced on,
	// with the new height as payload.
	notifyChannel = "greenpoints_ledger"
	// producerLockKey is the advisory lock that makes one block producer at
	// a time write blocks, across all instances sharing the database
	// ("greenpts" in ASCII).
	producerLockKey int64 = 0x677265656e707473

	sqlHeight = `SELECT coalesce(max(number), 0) FROM ledger_blocks`
)

// Ledger is the embedded ledger. It implements issuer.Ledger and is safe for
// concurrent use. Close it to stop its block producer.
type Ledger struct {
	pool   *pgxpool.Pool
	cc     Chaincode
	clock  func() time.Time
	log    *slog.Logger
	signer crypto.Signer
	keyID  string

	maxBlockTxs int
	linger      time.Duration
	poll        time.Duration

	tsMu   sync.Mutex
	lastTS time.Time // the last transaction time handed out

	mu     sync.Mutex
	closed bool
	queue  []*pending // endorsed transactions waiting for a block

	wake         chan struct{} // a transaction was queued, or Close began (capacity 1)
	producerDone chan struct{}
	recent       recentWrites // the producer's window of its recent writes; producer goroutine only

	bg       context.Context // lives until Close has drained the producer
	bgCancel context.CancelFunc
	closing  chan struct{} // closed when Close begins: subscribers stop
	changed  broadcast     // fired when a block is committed (here or, via LISTEN, elsewhere)

	listenerOnce sync.Once
	listenerWG   sync.WaitGroup
	closeOnce    sync.Once
}

var _ issuer.Ledger = (*Ledger)(nil)

// New starts an embedded ledger over pool, whose database must already be
// migrated (internal/database.Migrate). The block producer runs until Close.
func New(ctx context.Context, pool *pgxpool.Pool, cc Chaincode, opts Options) (*Ledger, error) {
	if pool == nil || cc == nil {
		return nil, errors.New("embedded ledger: a pool and a chaincode are required")
	}
	if opts.Signer == nil {
		return nil, errors.New("embedded ledger: a block signer is required")
	}
	if _, ok := opts.Signer.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("embedded ledger: the block signer must hold an Ed25519 key, not %T", opts.Signer.Public())
	}
	if opts.KeyID == "" {
		return nil, errors.New("embedded ledger: the signer's key id is required")
	}
	if opts.MaxBlockTxs < 0 || opts.BlockLinger < 0 || opts.PollInterval < 0 {
		return nil, errors.New("embedded ledger: MaxBlockTxs, BlockLinger and PollInterval must not be negative")
	}
	l := &Ledger{
		pool:         pool,
		cc:           cc,
		clock:        opts.Clock,
		log:          opts.Logger,
		signer:       opts.Signer,
		keyID:        opts.KeyID,
		maxBlockTxs:  opts.MaxBlockTxs,
		linger:       opts.BlockLinger,
		poll:         opts.PollInterval,
		wake:         make(chan struct{}, 1),
		producerDone: make(chan struct{}),
		closing:      make(chan struct{}),
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if l.maxBlockTxs == 0 {
		l.maxBlockTxs = defaultMaxBlockTxs
	}
	if l.poll == 0 {
		l.poll = defaultPollInterval
	}
	l.changed.init()

	// Start transaction times after the last block's, so they keep
	// increasing across restarts on one machine. This also checks that
	// the schema is there.
	var last *time.Time
	err := pool.QueryRow(ctx, `SELECT (SELECT created_at FROM ledger_blocks ORDER BY number DESC LIMIT 1)`).Scan(&last)
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: reading the chain head (is the database migrated?): %w", err)
	}
	if last != nil {
		l.lastTS = last.UTC()
	}

	l.bg, l.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	go l.produce()
	return l, nil
}

// Close stops accepting transactions, waits until every transaction already
// queued has been committed (or refused) and its caller told, then stops the
// notification listener and ends every Subscribe. It is idempotent.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.closing)
		l.signal()
		<-l.producerDone
		l.bgCancel()
		l.listenerWG.Wait()
	})
	return nil
}

func (l *Ledger) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func errClosed() error {
	return apperr.New(apperr.Unavailable, "ledger_closed", "the ledger is closed")
}

func errDatabase(err error, doing string) error {
	return apperr.Wrap(err, apperr.Unavailable, "ledger_unavailable", "the ledger database failed while %s", doing)
}

// Submit endorses p and commits it: Endorse followed by Commit.
func (l *Ledger) Submit(ctx context.Context, p issuer.Proposal) (*issuer.TxResult, error) {
	e, err := l.Endorse(ctx, p)
	if err != nil {
		return nil, err
	}
	return l.Commit(ctx, e)
}

// Endorse simulates p against a consistent snapshot of committed state and
// returns the endorsed transaction, with a new random transaction id and the
// next transaction time. Paginated range queries and history reads fail in
// it, as in any Fabric transaction that is to be ordered. A contract error is
// returned as the contract encoded it; nothing is ordered then.
func (l *Ledger) Endorse(ctx context.Context, p issuer.Proposal) (issuer.Endorsed, error) {
	e, _, err := l.simulate(ctx, p, false)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Evaluate simulates p read-only and returns its result. Any function may be
// evaluated; its writes and event are discarded. Paginated range queries and
// history reads are allowed.
func (l *Ledger) Evaluate(ctx context.Context, p issuer.Proposal) ([]byte, error) {
	_, result, err := l.simulate(ctx, p, true)
	return result, err
}

// Height returns the number of committed blocks, which is also the number of
// the last one (blocks are numbered from 1).
func (l *Ledger) Height(ctx context.Context) (uint64, error) {
	var h int64
	if err := l.pool.QueryRow(ctx, sqlHeight).Scan(&h); err != nil {
		return 0, errDatabase(err, "reading the height")
	}
	return uint64(h), nil
}

// newTxID returns 32 random hex digits: unpredictable, so nobody can claim a
// transaction id ahead of its proposal.
func newTxID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("embedded ledger: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return hex.EncodeToString(b[:])
}

// nextTimestamp returns the clock's time at microsecond resolution, made
// strictly greater than every time handed out before.
func (l *Ledger) nextTimestamp() time.Time {
	t := l.clock().UTC().Truncate(time.Microsecond)
	l.tsMu.Lock()
	defer l.tsMu.Unlock()
	if !t.After(l.lastTS) {
		t = l.lastTS.Add(time.Microsecond)
	}
	l.lastTS = t
	return t
}

// simulate runs p's function over a snapshot. For a submit (readOnly false)
// it returns the endorsement; for an evaluation only the result.
func (l *Ledger) simulate(ctx context.Context, p issuer.Proposal, readOnly bool) (*endorsement, []byte, error) {
	if l.isClosed() {
		return nil, nil, errClosed()
	}
	switch {
	case p.Function == "":
		return nil, nil, apperr.New(apperr.Invalid, "missing_function", "the proposal names no function")
	case p.Caller == "":
		return nil, nil, apperr.New(apperr.Invalid, "missing_caller", "the proposal names no caller MSP id")
	case len(p.Args) > maxArgsBytes:
		return nil, nil, apperr.New(apperr.TooLarge, "args_too_large", "the proposal's arguments exceed %d bytes", maxArgsBytes)
	}
	sim := &simulator{
		snapHeight: -1,
		ctx:        ctx,
		txID:       newTxID(),
		ts:         l.nextTimestamp(),
		caller:     p.Caller,
		readOnly:   readOnly,
	}
	var (
		result []byte
		ccErr  error
	)
	err := database.InTxOpts(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		sim.tx = tx
		result, ccErr = l.invoke(sim, p.Function, p.Args)
		sim.tx = nil // the stub must not outlive the snapshot
		if sim.err == nil && ccErr == nil && !readOnly && len(sim.reads)+len(sim.ranges) >= max(recentMinReads, 1) {
			// The height this snapshot saw, so the producer can validate the
			// transaction from its window of recent writes.
			if err := tx.QueryRow(ctx, sqlHeight).Scan(&sim.snapHeight); err != nil {
				sim.err = err
			}
		}
		return sim.err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, apperr.Wrap(err, apperr.Unavailable, "ledger_timeout", "the simulation of %s was cancelled", p.Function)
		}
		return nil, nil, errDatabase(err, "simulating "+p.Function)
	}
	if ccErr != nil {
		// Exactly what crosses Fabric: the code, reason and detail, no cause.
		e, _ := apperr.DecodeWire(apperr.EncodeWire(ccErr))
		return nil, nil, e
	}
	if readOnly {
		return nil, result, nil
	}
	return sim.endorsement(p, result), result, nil
}

// invoke calls the contract, turning a panic into an error: a contract bug
// must not take the issuer's server down with it.
func (l *Ledger) invoke(s *simulator, fn string, args []byte) (result []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("contract panicked", "function", fn, "txid", s.txID, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("contract function %s panicked: %v", fn, r)
		}
	}()
	return l.cc.Invoke(s, fn, args)
}

// broadcast wakes every waiter at once: waiters take the current channel,
// fire closes it and installs a new one.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) init() { b.ch = make(chan struct{}) }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

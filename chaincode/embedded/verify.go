package embedded

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// ErrChainInvalid is wrapped by every VerifyChain error that reports a
// broken ledger (rather than a failure to read it).
var ErrChainInvalid = errors.New("ledger verification failed")

// KeyLookup returns the public key of one version of a signing key. A
// keys.Manager's PublicKey method is one.
type KeyLookup func(ctx context.Context, id keys.KeyID) (crypto.PublicKey, error)

// StaticKey returns a KeyLookup that answers pub for every key id: for a
// ledger signed by one key only.
func StaticKey(pub crypto.PublicKey) KeyLookup {
	return func(context.Context, keys.KeyID) (crypto.PublicKey, error) { return pub, nil }
}

const tagState = "greenpoints/ledger/state/v1"

// StateHash returns the SHA-256 over every (key, value) of world state in key
// (byte) order, each length-prefixed, read from one snapshot. Replaying the
// same transactions yields the same hash.
func (l *Ledger) StateHash(ctx context.Context) ([]byte, error) {
	var sum []byte
	err := database.InTxOpts(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT key, value FROM ledger_state ORDER BY key`)
		if err != nil {
			return err
		}
		w := newHasher(tagState)
		var (
			key   string
			value []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&key, &value}, func() error {
			w.str(key)
			w.bytes(value)
			return nil
		})
		sum = w.sum()
		return err
	})
	if err != nil {
		return nil, errDatabase(err, "hashing the world state")
	}
	return sum, nil
}

// VerifyChain checks the whole ledger in one snapshot; see the package
// function VerifyChain.
func (l *Ledger) VerifyChain(ctx context.Context, lookup KeyLookup) error {
	return VerifyChain(ctx, l.pool, lookup)
}

// VerifyChain checks a ledger database: blocks numbered 1..height without a
// gap; each block's prev_hash is its predecessor's header hash; its header
// hash is recomputed and its signature verifies under the key its key id
// names; its data hash is recomputed from its transaction rows (each
// transaction's envelope and validation code); each valid transaction's
// writes_hash is recomputed from its history rows, and invalid ones have
// none; and the world state is exactly the fold of the history. A broken
// ledger gives an error wrapping ErrChainInvalid that names the first
// problem found.
//
// It does not know how many blocks there should be: removing the newest
// blocks leaves a valid, shorter chain. Compare the height and the last
// header hash with a copy kept elsewhere (an export manifest, an anchor) to
// detect that.
func VerifyChain(ctx context.Context, pool *pgxpool.Pool, lookup KeyLookup) error {
	if lookup == nil {
		return errors.New("verify chain: a key lookup is required")
	}
	return database.InTxOpts(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		v := &chainVerifier{ctx: ctx, tx: tx, lookup: lookup, pubs: make(map[string]ed25519.PublicKey)}
		return v.run()
	})
}

type blockRow struct {
	number                                  int64
	prevHash, dataHash, headerHash, sigHash []byte
	keyID                                   string
	createdAt                               time.Time
	txCount                                 int32
}

type txRow struct {
	block int64
	idx   int32
	code  string
	env   envelope
}

type historyRow struct {
	block int64
	txnum int32
	w     writeEntry
}

// cursor reads a server-side cursor in chunks, so the three ordered streams
// the verifier merges share one snapshot and bounded memory.
type cursor[T any] struct {
	ctx  context.Context
	tx   pgx.Tx
	name string
	scan pgx.RowToFunc[T]
	buf  []T
	pos  int
	done bool
}

const cursorChunk = 2000

func openCursor[T any](ctx context.Context, tx pgx.Tx, name, query string, scan pgx.RowToFunc[T]) (*cursor[T], error) {
	if _, err := tx.Exec(ctx, "DECLARE "+name+" NO SCROLL CURSOR FOR "+query); err != nil {
		return nil, fmt.Errorf("declaring cursor %s: %w", name, err)
	}
	return &cursor[T]{ctx: ctx, tx: tx, name: name, scan: scan}, nil
}

// peek returns the next row without consuming it; nil at the end.
func (c *cursor[T]) peek() (*T, error) {
	if c.pos < len(c.buf) {
		return &c.buf[c.pos], nil
	}
	if c.done {
		return nil, nil
	}
	rows, err := c.tx.Query(c.ctx, fmt.Sprintf("FETCH %d FROM %s", cursorChunk, c.name))
	if err != nil {
		return nil, fmt.Errorf("reading cursor %s: %w", c.name, err)
	}
	c.buf, err = pgx.CollectRows(rows, c.scan)
	if err != nil {
		return nil, fmt.Errorf("reading cursor %s: %w", c.name, err)
	}
	c.pos = 0
	if len(c.buf) == 0 {
		c.done = true
		return nil, nil
	}
	return &c.buf[0], nil
}

// next returns the next row and consumes it; nil at the end.
func (c *cursor[T]) next() (*T, error) {
	r, err := c.peek()
	if r != nil {
		c.pos++
	}
	return r, err
}

type chainVerifier struct {
	ctx    context.Context
	tx     pgx.Tx
	lookup KeyLookup
	pubs   map[string]ed25519.PublicKey
}

func broken(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrChainInvalid}, args...)...)
}

func (v *chainVerifier) run() error {
	blocks, err := openCursor(v.ctx, v.tx, "verify_blocks",
		`SELECT number, prev_hash, data_hash, header_hash, signature, key_id, created_at, tx_count FROM ledger_blocks ORDER BY number`,
		func(row pgx.CollectableRow) (b blockRow, err error) {
			err = row.Scan(&b.number, &b.prevHash, &b.dataHash, &b.headerHash, &b.sigHash, &b.keyID, &b.createdAt, &b.txCount)
			return b, err
		})
	if err != nil {
		return err
	}
	txs, err := openCursor(v.ctx, v.tx, "verify_txs",
		`SELECT block, idx, validation_code, txid, caller, function, args, ts, event_name, event, result, reads_hash, writes_hash
		 FROM ledger_txs ORDER BY block, idx`,
		func(row pgx.CollectableRow) (t txRow, err error) {
			e := &t.env
			err = row.Scan(&t.block, &t.idx, &t.code, &e.txID, &e.caller, &e.function, &e.args, &e.ts,
				&e.eventName, &e.event, &e.result, &e.readsHash, &e.writesHash)
			return t, err
		})
	if err != nil {
		return err
	}
	history, err := openCursor(v.ctx, v.tx, "verify_history",
		`SELECT block, txnum, key, value, is_delete FROM ledger_history ORDER BY block, txnum, key`,
		func(row pgx.CollectableRow) (h historyRow, err error) {
			err = row.Scan(&h.block, &h.txnum, &h.w.key, &h.w.value, &h.w.del)
			return h, err
		})
	if err != nil {
		return err
	}

	var prevHash []byte = []byte{}
	for want := int64(1); ; want++ {
		b, err := blocks.next()
		if err != nil {
			return err
		}
		if b == nil {
			break
		}
		if b.number != want {
			return broken("block %d is missing (the next block is %d)", want, b.number)
		}
		if err := v.block(b, prevHash, txs, history); err != nil {
			return err
		}
		prevHash = b.headerHash
	}
	if t, err := txs.peek(); err != nil {
		return err
	} else if t != nil {
		return broken("transaction %s at (%d, %d) belongs to no block", t.env.txID, t.block, t.idx)
	}
	if h, err := history.peek(); err != nil {
		return err
	} else if h != nil {
		return broken("history row of key %q at (%d, %d) belongs to no block", h.w.key, h.block, h.txnum)
	}
	return v.stateIsFoldOfHistory()
}

// block verifies one block and consumes its transaction and history rows.
func (v *chainVerifier) block(b *blockRow, prevHash []byte, txs *cursor[txRow], history *cursor[historyRow]) error {
	if !bytes.Equal(b.prevHash, prevHash) {
		return broken("block %d: prev_hash does not match the header hash of block %d", b.number, b.number-1)
	}
	txHashes := make([][]byte, 0, b.txCount)
	codes := make([]string, 0, b.txCount)
	var writes []writeEntry
	for i := int32(0); i < b.txCount; i++ {
		t, err := txs.next()
		if err != nil {
			return err
		}
		if t == nil || t.block != b.number || t.idx != i {
			return broken("block %d: transaction %d of %d is missing", b.number, i, b.txCount)
		}
		writes = writes[:0]
		for {
			h, err := history.peek()
			if err != nil {
				return err
			}
			if h == nil || h.block > t.block || (h.block == t.block && h.txnum > t.idx) {
				break
			}
			if h.block != t.block || h.txnum != t.idx {
				return broken("history row of key %q at (%d, %d) belongs to no transaction", h.w.key, h.block, h.txnum)
			}
			writes = append(writes, h.w)
			history.pos++
		}
		switch {
		case t.code != codeValid && len(writes) > 0:
			return broken("block %d: transaction %d (%s) is %s but has history rows", b.number, i, t.env.txID, t.code)
		case t.code == codeValid && !bytes.Equal(writesHash(writes), t.env.writesHash):
			return broken("block %d: transaction %d (%s): its history rows do not match its write set", b.number, i, t.env.txID)
		}
		txHashes = append(txHashes, txHash(&t.env))
		codes = append(codes, t.code)
	}
	if t, err := txs.peek(); err != nil {
		return err
	} else if t != nil && t.block == b.number {
		return broken("block %d holds more transactions than its tx_count %d", b.number, b.txCount)
	}
	if !bytes.Equal(dataHash(txHashes, codes), b.dataHash) {
		return broken("block %d: data hash does not match its transactions", b.number)
	}
	h := header{number: b.number, prevHash: b.prevHash, dataHash: b.dataHash, createdAt: b.createdAt, txCount: int(b.txCount), keyID: b.keyID}
	hh := headerHash(&h)
	if !bytes.Equal(hh, b.headerHash) {
		return broken("block %d: header hash does not match its header", b.number)
	}
	pub, err := v.publicKey(b.keyID)
	if err != nil {
		return fmt.Errorf("block %d: %w", b.number, err)
	}
	if !ed25519.Verify(pub, hh, b.sigHash) {
		return broken("block %d: the signature does not verify under key %s", b.number, b.keyID)
	}
	return nil
}

func (v *chainVerifier) publicKey(id string) (ed25519.PublicKey, error) {
	if pub, ok := v.pubs[id]; ok {
		return pub, nil
	}
	pub, err := v.lookup(v.ctx, keys.KeyID(id))
	if err != nil {
		return nil, fmt.Errorf("looking up key %s: %w", id, err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key %s is a %T, not an Ed25519 public key", id, pub)
	}
	v.pubs[id] = edPub
	return edPub, nil
}

// stateIsFoldOfHistory checks that world state holds exactly the last
// history entry of every key that was not deleted, at its version.
func (v *chainVerifier) stateIsFoldOfHistory() error {
	var key string
	err := v.tx.QueryRow(v.ctx, `
		WITH h AS (
			SELECT DISTINCT ON (key) key, block, txnum, value, is_delete
			FROM ledger_history ORDER BY key, block DESC, txnum DESC
		)
		SELECT coalesce(s.key, h.key) FROM ledger_state s FULL JOIN h ON h.key = s.key
		WHERE h.key IS NULL
		   OR (s.key IS NULL AND NOT h.is_delete)
		   OR (s.key IS NOT NULL AND (h.is_delete OR s.value <> h.value OR s.block <> h.block OR s.txnum <> h.txnum))
		LIMIT 1`).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("comparing world state with history: %w", err)
	}
	return broken("world state of key %q is not what its history says", key)
}

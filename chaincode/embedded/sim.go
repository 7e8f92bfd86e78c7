package embedded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/issuer"
)

// maxQueryResults bounds what one range query, page or history read
// returns, like Fabric's totalQueryLimit (same default). A range query cut
// by it is recorded as cut, so phantom checking stays exact.
const maxQueryResults = 100_000

// version is the (block, transaction) that last wrote a key. The zero
// version means "absent": blocks are numbered from 1.
type version struct {
	block int64
	txnum int32
}

// readEntry is one key read and the version seen.
type readEntry struct {
	key string
	ver version
}

// writeEntry is one key written (or deleted) by a transaction.
type writeEntry struct {
	key   string
	value []byte // nil when del
	del   bool
}

// rangeRead is what a range query saw, for the phantom check at commit:
// keys in [start, end), or in [start, end] when endInclusive (a query cut
// short by its limit counts only up to the last key it returned, as Fabric
// records an iterator closed early); end "" without endInclusive means
// unbounded.
type rangeRead struct {
	start, end   string
	endInclusive bool
	results      []readEntry
}

// endorsement is an endorsed transaction: the envelope the chain will commit
// to, and the read/write sets the producer validates and applies.
type endorsement struct {
	env    envelope
	reads  []readEntry // sorted by key, one per key
	ranges []rangeRead
	writes []writeEntry // sorted by key, the last write of each key
	// snapHeight is the chain height the simulation's snapshot saw, or -1
	// when not recorded (see recentMinReads).
	snapHeight int64
}

// TxID implements issuer.Endorsed.
func (e *endorsement) TxID() string { return e.env.txID }

// Result implements issuer.Endorsed. The slice must not be modified.
func (e *endorsement) Result() []byte { return e.env.result }

// simulator is the stub of one simulation. It is used by one goroutine.
type simulator struct {
	ctx      context.Context
	tx       pgx.Tx // the snapshot; nil once the simulation is over
	txID     string
	ts       time.Time
	caller   string
	readOnly bool // an evaluation: nothing is recorded, pagination and history allowed

	// reads and writes are appended as they happen (a key may repeat) and
	// made one entry per key, sorted, by endorsement: one sort of a batch's
	// thousands of keys costs less than a map kept up to date on every call.
	reads  []readEntry
	ranges []rangeRead
	writes []writeEntry

	eventName string
	event     []byte

	snapHeight int64 // see endorsement.snapHeight

	err error // the first database failure: the endorsement fails whatever the contract says
}

var _ stub.Stub = (*simulator)(nil)

// SQL of the simulation. Prepared and cached per connection by pgx.
const (
	sqlGetState       = `SELECT value, block, txnum FROM ledger_state WHERE key = $1`
	sqlGetStates      = `SELECT key, value, block, txnum FROM ledger_state WHERE key = ANY($1::text[])`
	sqlRange          = `SELECT key, value, block, txnum FROM ledger_state WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3`
	sqlRangeUnbounded = `SELECT key, value, block, txnum FROM ledger_state WHERE key >= $1 ORDER BY key LIMIT $2`
	sqlHistory        = `SELECT t.txid, t.ts, h.value, h.is_delete
		FROM ledger_history h JOIN ledger_txs t ON t.block = h.block AND t.idx = h.txnum
		WHERE h.key = $1 ORDER BY h.block, h.txnum LIMIT $2`
)

// TxID implements stub.Stub.
func (s *simulator) TxID() string { return s.txID }

// TxTimestamp implements stub.Stub.
func (s *simulator) TxTimestamp() time.Time { return s.ts }

// CreatorMSPID implements stub.Stub.
func (s *simulator) CreatorMSPID() (string, error) { return s.caller, nil }

// dbFailed records the first database failure and returns it for the
// contract, which will fail; simulate then reports Unavailable.
func (s *simulator) dbFailed(err error) error {
	if s.err == nil {
		s.err = err
	}
	return fmt.Errorf("txid [%s]: reading state: %w", s.txID, err)
}

func (s *simulator) live() error {
	if s.tx == nil {
		return fmt.Errorf("txid [%s]: the transaction simulation is over", s.txID)
	}
	return nil
}

// validateKey applies Fabric's rules for simple keys, plus PostgreSQL's: a
// text value cannot hold 0x00 anywhere.
func validateKey(key string) error {
	switch {
	case key == "":
		return errors.New("key must not be an empty string")
	case len(key) > stub.MaxKeyLen:
		return fmt.Errorf("key of %d bytes exceeds the maximum of %d", len(key), stub.MaxKeyLen)
	case key[0] == 0:
		return fmt.Errorf("first character of the key [%q] contains a null character which is not allowed", key)
	case !utf8.ValidString(key):
		return fmt.Errorf("invalid key [%#v], must be a UTF-8 string", key)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("key [%q] contains a null character, which the embedded ledger cannot store", key)
	}
	return nil
}

// validateBound checks a range bound; "" means open.
func validateBound(key string) error {
	if key == "" {
		return nil
	}
	return validateKey(key)
}

func (s *simulator) recordRead(key string, v version) {
	if s.readOnly {
		return
	}
	s.reads = append(s.reads, readEntry{key: key, ver: v})
}

// GetState implements stub.Stub: the committed value, never this
// transaction's own write.
func (s *simulator) GetState(key string) ([]byte, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if err := validateKey(key); err != nil {
		return nil, err
	}
	var (
		value []byte
		v     version
	)
	err := s.tx.QueryRow(s.ctx, sqlGetState, key).Scan(&value, &v.block, &v.txnum)
	if errors.Is(err, pgx.ErrNoRows) {
		s.recordRead(key, version{})
		return nil, nil
	}
	if err != nil {
		return nil, s.dbFailed(err)
	}
	s.recordRead(key, v)
	return value, nil
}

// GetMultipleStates implements stub.Stub with one query for all keys.
func (s *simulator) GetMultipleStates(keys ...string) ([][]byte, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	type found struct {
		value []byte
		ver   version
	}
	// Callers repeat keys (every item of a batch names the same anchors):
	// ask for each key once.
	byKey := make(map[string]found, len(keys))
	uniq := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := byKey[k]; !ok {
			byKey[k] = found{}
			uniq = append(uniq, k)
		}
	}
	rows, err := s.tx.Query(s.ctx, sqlGetStates, uniq)
	if err != nil {
		return nil, s.dbFailed(err)
	}
	var (
		key   string
		value []byte
		v     version
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &value, &v.block, &v.txnum}, func() error {
		byKey[key] = found{value: value, ver: v}
		value = nil // Scan allocated it; the next row gets its own
		return nil
	})
	if err != nil {
		return nil, s.dbFailed(err)
	}
	if !s.readOnly {
		s.reads = slices.Grow(s.reads, len(uniq))
	}
	for i, k := range keys {
		f := byKey[k]
		out[i] = f.value
	}
	for _, k := range uniq {
		s.recordRead(k, byKey[k].ver)
	}
	return out, nil
}

// queryRange reads [start, end) (end "" unbounded), at most limit rows.
func (s *simulator) queryRange(start, end string, limit int) ([]stub.KV, []version, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if end == "" {
		rows, err = s.tx.Query(s.ctx, sqlRangeUnbounded, start, limit)
	} else {
		rows, err = s.tx.Query(s.ctx, sqlRange, start, end, limit)
	}
	if err != nil {
		return nil, nil, s.dbFailed(err)
	}
	var (
		kvs   []stub.KV
		vers  []version
		key   string
		value []byte
		v     version
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &value, &v.block, &v.txnum}, func() error {
		kvs = append(kvs, stub.KV{Key: key, Value: value})
		vers = append(vers, v)
		value = nil
		return nil
	})
	if err != nil {
		return nil, nil, s.dbFailed(err)
	}
	return kvs, vers, nil
}

// GetStateByRange implements stub.Stub and records the range for the
// phantom check.
func (s *simulator) GetStateByRange(start, end string, limit int) ([]stub.KV, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if err := validateBound(start); err != nil {
		return nil, err
	}
	if err := validateBound(end); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > maxQueryResults {
		limit = maxQueryResults
	}
	kvs, vers, err := s.queryRange(start, end, limit)
	if err != nil {
		return nil, err
	}
	if !s.readOnly {
		r := rangeRead{start: start, end: end, results: make([]readEntry, len(kvs))}
		for i := range kvs {
			r.results[i] = readEntry{key: kvs[i].Key, ver: vers[i]}
		}
		if len(kvs) == limit {
			// Cut short: only what was read up to the last key counts.
			r.end, r.endInclusive = kvs[len(kvs)-1].Key, true
		}
		s.ranges = append(s.ranges, r)
	}
	return kvs, nil
}

func (s *simulator) refuseInSubmit() error {
	return fmt.Errorf("txid [%s]: Paginated queries and history queries are supported only in a read-only transaction", s.txID)
}

// GetStateByRangeWithPagination implements stub.Stub; evaluations only.
// The bookmark is the first key of the next page.
func (s *simulator) GetStateByRangeWithPagination(start, end string, pageSize int32, bookmark string) ([]stub.KV, string, error) {
	if err := s.live(); err != nil {
		return nil, "", err
	}
	if !s.readOnly {
		return nil, "", s.refuseInSubmit()
	}
	for _, k := range []string{start, end, bookmark} {
		if err := validateBound(k); err != nil {
			return nil, "", err
		}
	}
	if pageSize <= 0 {
		return nil, "", fmt.Errorf("txid [%s]: page size %d must be positive", s.txID, pageSize)
	}
	size := min(int(pageSize), maxQueryResults)
	from := start
	if bookmark > from {
		from = bookmark
	}
	kvs, _, err := s.queryRange(from, end, size+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(kvs) > size {
		next = kvs[size].Key
		kvs = kvs[:size]
	}
	return kvs, next, nil
}

// GetHistoryForKey implements stub.Stub; evaluations only. Oldest first.
func (s *simulator) GetHistoryForKey(key string) ([]stub.HistoryEntry, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if !s.readOnly {
		return nil, s.refuseInSubmit()
	}
	if err := validateKey(key); err != nil {
		return nil, err
	}
	rows, err := s.tx.Query(s.ctx, sqlHistory, key, maxQueryResults+1)
	if err != nil {
		return nil, s.dbFailed(err)
	}
	var (
		out []stub.HistoryEntry
		h   stub.HistoryEntry
	)
	_, err = pgx.ForEachRow(rows, []any{&h.TxID, &h.Timestamp, &h.Value, &h.IsDelete}, func() error {
		h.Timestamp = h.Timestamp.UTC()
		out = append(out, h)
		h = stub.HistoryEntry{}
		return nil
	})
	if err != nil {
		return nil, s.dbFailed(err)
	}
	if len(out) > maxQueryResults {
		return nil, fmt.Errorf("txid [%s]: the history of key [%s] has more than %d entries", s.txID, key, maxQueryResults)
	}
	return out, nil
}

// PutState implements stub.Stub. The last write of a key wins; an empty
// value deletes the key, as in Fabric (its write set marks a write with an
// empty value as a delete).
func (s *simulator) PutState(key string, value []byte) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := validateKey(key); err != nil {
		return err
	}
	if len(value) == 0 {
		s.write(key, nil, true)
		return nil
	}
	// Copy: the contract may reuse its buffer, as it may with Fabric's
	// shim, which sends the value at once.
	s.write(key, append([]byte(nil), value...), false)
	return nil
}

// DelState implements stub.Stub.
func (s *simulator) DelState(key string) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := validateKey(key); err != nil {
		return err
	}
	s.write(key, nil, true)
	return nil
}

func (s *simulator) write(key string, value []byte, del bool) {
	if s.readOnly {
		return // an evaluation's writes are discarded anyway
	}
	s.writes = append(s.writes, writeEntry{key: key, value: value, del: del})
}

// SetEvent implements stub.Stub: only the last event counts.
func (s *simulator) SetEvent(name string, payload []byte) error {
	if err := s.live(); err != nil {
		return err
	}
	if name == "" {
		return errors.New("event name can not be empty string")
	}
	// Kept, not copied, as Fabric's shim keeps it until the invocation
	// ends: the contract hands over a fresh buffer (a batch's event is
	// megabytes, a copy was 4% of the bytes a batch allocates).
	if len(payload) == 0 {
		payload = nil // stored as NULL
	}
	s.eventName = name
	s.event = payload
	return nil
}

// readSet sorts reads by key, one entry per key: a key read twice in one
// snapshot has one version, so which entry stays does not matter.
func readSet(reads []readEntry) []readEntry {
	slices.SortFunc(reads, func(a, b readEntry) int { return cmp.Compare(a.key, b.key) })
	return slices.CompactFunc(reads, func(a, b readEntry) bool { return a.key == b.key })
}

// writeSet sorts writes by key, keeping each key's last write.
func writeSet(writes []writeEntry) []writeEntry {
	slices.SortStableFunc(writes, func(a, b writeEntry) int { return cmp.Compare(a.key, b.key) })
	out := writes[:0]
	for i, w := range writes {
		if i+1 < len(writes) && writes[i+1].key == w.key {
			continue // a later write of the same key wins
		}
		out = append(out, w)
	}
	return out
}

// lastWrite is the transaction's last write of key, if any. The contract
// sets a key's endorsers right after writing it, so the search ends at once.
func (s *simulator) lastWrite(key string) (writeEntry, bool) {
	for i := len(s.writes) - 1; i >= 0; i-- {
		if s.writes[i].key == key {
			return s.writes[i], true
		}
	}
	return writeEntry{}, false
}

// endorsement packages a finished submit simulation, computing its digests
// here, in the caller's goroutine, rather than in the block producer.
func (s *simulator) endorsement(p issuer.Proposal, result []byte) *endorsement {
	s.reads, s.writes = readSet(s.reads), writeSet(s.writes)
	e := &endorsement{
		env: envelope{
			txID:      s.txID,
			caller:    s.caller,
			function:  p.Function,
			args:      append(make([]byte, 0, len(p.Args)), p.Args...), // non-nil: the column is NOT NULL
			ts:        s.ts,
			eventName: s.eventName,
			event:     s.event,
			result:    result,
		},
		reads:      s.reads,
		ranges:     s.ranges,
		writes:     s.writes,
		snapHeight: s.snapHeight,
	}
	e.env.readsHash = readsHash(e.reads, e.ranges)
	e.env.writesHash = writesHash(e.writes)
	e.env.envelopeSum = txHash(&e.env)
	return e
}

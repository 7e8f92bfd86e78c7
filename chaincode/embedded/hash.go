package embedded

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"
)

// The canonical encodings hashed into the chain. Every variable-length field
// is length-prefixed, so no two different inputs encode alike; every
// encoding starts with a domain tag, so no hash of one kind can stand for
// another. VerifyChain recomputes them from the stored rows, so each field
// hashed here is a column (or derived from columns) of ledger_txs,
// ledger_history or ledger_blocks.
const (
	tagReads  = "greenpoints/ledger/reads/v1"
	tagWrites = "greenpoints/ledger/writes/v1"
	tagTx     = "greenpoints/ledger/tx/v1"
	tagData   = "greenpoints/ledger/data/v1"
	tagHeader = "greenpoints/ledger/header/v1"
)

// hasher feeds length-prefixed fields into SHA-256 through a scratch buffer,
// so that hashing strings costs no allocation.
type hasher struct {
	h   hash.Hash
	buf []byte
}

func newHasher(tag string) *hasher {
	w := &hasher{h: sha256.New(), buf: make([]byte, 0, 4096)}
	w.str(tag)
	return w
}

func (w *hasher) flushIfFull() {
	if len(w.buf) >= 32<<10 {
		w.h.Write(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *hasher) u64(v uint64) {
	w.buf = binary.BigEndian.AppendUint64(w.buf, v)
	w.flushIfFull()
}

func (w *hasher) i64(v int64) { w.u64(uint64(v)) }

func (w *hasher) boolean(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

func (w *hasher) str(s string) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(s)))
	if len(s) > 16<<10 {
		w.h.Write(w.buf)
		w.buf = w.buf[:0]
		w.h.Write([]byte(s))
		return
	}
	w.buf = append(w.buf, s...)
	w.flushIfFull()
}

func (w *hasher) bytes(b []byte) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(b)))
	if len(b) > 16<<10 {
		w.h.Write(w.buf)
		w.buf = w.buf[:0]
		w.h.Write(b)
		return
	}
	w.buf = append(w.buf, b...)
	w.flushIfFull()
}

func (w *hasher) version(v version) {
	w.i64(v.block)
	w.u64(uint64(uint32(v.txnum)))
}

func (w *hasher) sum() []byte {
	w.h.Write(w.buf)
	w.buf = w.buf[:0]
	return w.h.Sum(nil)
}

// readsHash digests a read set (sorted by key) and the range-query infos (in
// the order the contract made them).
func readsHash(reads []readEntry, ranges []rangeRead) []byte {
	w := newHasher(tagReads)
	w.u64(uint64(len(reads)))
	for i := range reads {
		w.str(reads[i].key)
		w.version(reads[i].ver)
	}
	w.u64(uint64(len(ranges)))
	for i := range ranges {
		r := &ranges[i]
		w.str(r.start)
		w.str(r.end)
		w.boolean(r.endInclusive)
		w.u64(uint64(len(r.results)))
		for j := range r.results {
			w.str(r.results[j].key)
			w.version(r.results[j].ver)
		}
	}
	return w.sum()
}

// writesHash digests a write set sorted by key.
func writesHash(writes []writeEntry) []byte {
	w := newHasher(tagWrites)
	w.u64(uint64(len(writes)))
	for i := range writes {
		w.str(writes[i].key)
		w.boolean(writes[i].del)
		if !writes[i].del {
			w.bytes(writes[i].value)
		}
	}
	return w.sum()
}

// envelope is the part of a transaction that the chain commits to: its
// proposal, its endorsed outcome (result, event, digests of the read and
// write sets). It is what Fabric's transaction envelope is to a block.
type envelope struct {
	txID        string
	caller      string
	function    string
	args        []byte
	ts          time.Time
	eventName   string
	event       []byte
	result      []byte
	readsHash   []byte
	writesHash  []byte
	envelopeSum []byte // txHash of the fields above, computed once
}

// txHash digests an envelope.
func txHash(e *envelope) []byte {
	w := newHasher(tagTx)
	w.str(e.txID)
	w.str(e.caller)
	w.str(e.function)
	w.bytes(e.args)
	w.i64(e.ts.UnixMicro())
	w.str(e.eventName)
	w.bytes(e.event)
	w.bytes(e.result)
	w.bytes(e.readsHash)
	w.bytes(e.writesHash)
	return w.sum()
}

// dataHash digests a block's transactions: each envelope's hash and its
// validation code. Fabric leaves validation codes in unhashed block
// metadata; we hash them, so flipping a transaction's validity is detected.
func dataHash(txHashes [][]byte, codes []string) []byte {
	w := newHasher(tagData)
	w.u64(uint64(len(txHashes)))
	for i, h := range txHashes {
		w.bytes(h)
		w.str(codes[i])
	}
	return w.sum()
}

// header is what a block's signature covers, through headerHash.
type header struct {
	number    int64
	prevHash  []byte
	dataHash  []byte
	createdAt time.Time
	txCount   int
	keyID     string
}

func headerHash(h *header) []byte {
	w := newHasher(tagHeader)
	w.i64(h.number)
	w.bytes(h.prevHash)
	w.bytes(h.dataHash)
	w.i64(h.createdAt.UnixMicro())
	w.u64(uint64(h.txCount))
	w.str(h.keyID)
	return w.sum()
}

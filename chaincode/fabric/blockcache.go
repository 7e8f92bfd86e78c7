package fabric

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"google.golang.org/protobuf/proto"
)

// txPos is where a transaction is in its block.
type txPos struct {
	index     int
	timestamp time.Time
}

// blockIndex is a block decoded once: the position of each endorser
// transaction by transaction id (the first one when an id repeats, as a
// DUPLICATE_TXID transaction does).
type blockIndex map[string]txPos

// indexBlock decodes b's endorser transactions' headers.
func indexBlock(b *common.Block) blockIndex {
	idx := blockIndex{}
	for i, raw := range b.GetData().GetData() {
		id, ts, ok := txHeader(raw)
		if !ok {
			continue
		}
		if _, dup := idx[id]; !dup {
			idx[id] = txPos{index: i, timestamp: ts}
		}
	}
	return idx
}

// txHeader decodes an envelope's channel header; ok is false unless it
// is an endorser transaction.
func txHeader(raw []byte) (id string, ts time.Time, ok bool) {
	var env common.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		return "", time.Time{}, false
	}
	var pl common.Payload
	if err := proto.Unmarshal(env.GetPayload(), &pl); err != nil {
		return "", time.Time{}, false
	}
	var ch common.ChannelHeader
	if err := proto.Unmarshal(pl.GetHeader().GetChannelHeader(), &ch); err != nil {
		return "", time.Time{}, false
	}
	if common.HeaderType(ch.GetType()) != common.HeaderType_ENDORSER_TRANSACTION {
		return "", time.Time{}, false
	}
	return ch.GetTxId(), ch.GetTimestamp().AsTime().UTC(), true
}

// blockCacheSize is how many decoded blocks a ledger keeps. The
// transactions of one block have their commit statuses at about the same
// time, so a few blocks are enough for all of them to share one fetch.
const blockCacheSize = 16

// blockCache shares one fetch and decoding of a block among the commits
// of its transactions: concurrent lookups of a block wait for the fetch in
// flight, later ones find it among the last blockCacheSize blocks. A
// failed fetch is not kept.
type blockCache struct {
	fetch func(context.Context, uint64) (blockIndex, error)

	mu      sync.Mutex
	entries map[uint64]*list.Element // of *blockEntry
	lru     list.List                // most recently used first
}

type blockEntry struct {
	num  uint64
	done chan struct{} // closed when idx and err are set
	idx  blockIndex
	err  error
}

func newBlockCache(fetch func(context.Context, uint64) (blockIndex, error)) *blockCache {
	return &blockCache{fetch: fetch, entries: map[uint64]*list.Element{}}
}

// get returns block num's index: from the cache, from the fetch in flight
// or from a fetch of its own (with ctx). A caller whose ctx ends while it
// waits for another's fetch returns ctxErr(ctx.Err()); a caller that sees
// another's fetch fail tries again (that fetch may have failed only
// because its caller's ctx ended).
func (c *blockCache) get(ctx context.Context, num uint64, ctxErr func(error) error) (blockIndex, error) {
	for {
		e, leader := c.entry(num)
		if leader {
			e.idx, e.err = c.fetch(ctx, num)
			if e.err != nil {
				c.drop(e)
			}
			close(e.done)
			return e.idx, e.err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctxErr(ctx.Err())
		}
		if e.err == nil {
			return e.idx, nil
		}
		if ctx.Err() != nil {
			return nil, ctxErr(ctx.Err())
		}
	}
}

// entry returns block num's entry, creating it (leader true: the caller
// must fetch it) when there is none.
func (c *blockCache) entry(num uint64) (e *blockEntry, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[num]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*blockEntry), false
	}
	e = &blockEntry{num: num, done: make(chan struct{})}
	c.entries[num] = c.lru.PushFront(e)
	for c.lru.Len() > blockCacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*blockEntry).num)
	}
	return e, true
}

// drop removes a failed entry (unless it was already evicted or replaced).
func (c *blockCache) drop(e *blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.num]; ok && el.Value.(*blockEntry) == e {
		c.lru.Remove(el)
		delete(c.entries, e.num)
	}
}

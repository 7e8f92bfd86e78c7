package embedded

import (
	"bytes"
	"slices"
	"sort"
)

// recentWrites remembers the writes of the last blocks this producer
// committed. A transaction endorsed against a snapshot at height h can then
// be validated without reading the database: a key it read is unchanged
// unless a remembered block after h wrote it, and a range it read is what it
// saw, changed by the remembered writes after h inside it. That is exactly
// what re-reading the state would find, without the per-key index lookups,
// the block producer's costliest read.
//
// It is trusted only while the chain head is the last block it remembers:
// a block written by another instance sharing the database (or a commit
// whose outcome was lost) makes the producer forget everything and read the
// database until it has written blocks of its own again. Tests cross-check
// every such validation against the database (crossCheckRecent).
type recentWrites struct {
	base     int64 // blocks (base, last] are remembered
	last     int64
	lastHash []byte
	blocks   []recentBlock // oldest first
	latest   map[string]recentWrite
	keys     int // total keys over blocks
}

type recentBlock struct {
	number int64
	keys   []string // sorted
}

// recentWrite is the last write of a key in the window.
type recentWrite struct {
	ver version
	del bool
}

// Bounds on what the window holds; older blocks are forgotten first. A
// transaction is usually validated one to three blocks after its
// endorsement, so a short window serves nearly all of them; the rest are
// validated by reading the database.
const (
	maxRecentBlocks = 64
	maxRecentKeys   = 256 << 10
)

var (
	// recentMinReads is the smallest read set (keys and ranges) for which
	// an endorsement records its snapshot height so that the window can
	// validate it. Small transactions are cheaper to validate by reading the
	// database (their keys join one query per block) than to fetch their
	// height. Tests lower it to 0 to exercise the window everywhere.
	recentMinReads = 32
	// crossCheckRecent makes the producer also read the database for every
	// transaction the window validates and fail the block if they disagree.
	// Tests turn it on.
	crossCheckRecent = false
)

// sync forgets everything unless head is the last block remembered.
func (w *recentWrites) sync(head chainHead) {
	if w.latest != nil && head.number == w.last && bytes.Equal(head.hash, w.lastHash) {
		return
	}
	*w = recentWrites{base: head.number, last: head.number, lastHash: head.hash, latest: make(map[string]recentWrite)}
}

// covers reports whether every block after snapshot height h is remembered.
// h < 0 means the snapshot height is unknown.
func (w *recentWrites) covers(h int64) bool {
	return h >= w.base && h <= w.last
}

// current is the version of key at the head, for a transaction that saw
// version seen at height h (covered).
func (w *recentWrites) current(key string, h int64, seen version) version {
	if r, ok := w.latest[key]; ok && r.ver.block > h {
		if r.del {
			return version{}
		}
		return r.ver
	}
	return seen
}

// rangeAtHead is the committed content (keys and versions) of range r at the
// head, for a transaction that saw r.results at height h (covered).
func (w *recentWrites) rangeAtHead(r *rangeRead, h int64) []readEntry {
	var changed []string
	for i := range w.blocks {
		b := &w.blocks[i]
		if b.number <= h {
			continue
		}
		for j := sort.SearchStrings(b.keys, r.start); j < len(b.keys) && r.contains(b.keys[j]); j++ {
			changed = append(changed, b.keys[j])
		}
	}
	if len(changed) == 0 {
		return r.results
	}
	slices.Sort(changed)
	changed = slices.Compact(changed)
	out := make([]readEntry, 0, len(r.results)+len(changed))
	i, j := 0, 0
	for i < len(r.results) || j < len(changed) {
		if j >= len(changed) || (i < len(r.results) && r.results[i].key < changed[j]) {
			out = append(out, r.results[i])
			i++
			continue
		}
		k := changed[j]
		j++
		if i < len(r.results) && r.results[i].key == k {
			i++
		}
		// Written after h, so its last write is the one that counts.
		if lw := w.latest[k]; !lw.del {
			out = append(out, readEntry{key: k, ver: lw.ver})
		}
	}
	return out
}

// add remembers a block this producer committed: keys (sorted) are the keys
// it wrote, overlay their last writes.
func (w *recentWrites) add(number int64, hash []byte, keys []string, overlay map[string]overlayEntry) {
	if w.latest == nil || number != w.last+1 {
		*w = recentWrites{base: number, latest: make(map[string]recentWrite, len(keys))}
	}
	w.blocks = append(w.blocks, recentBlock{number: number, keys: keys})
	for _, k := range keys {
		o := overlay[k]
		w.latest[k] = recentWrite{ver: o.ver, del: o.del}
	}
	w.keys += len(keys)
	w.last, w.lastHash = number, hash
	for len(w.blocks) > maxRecentBlocks || (w.keys > maxRecentKeys && len(w.blocks) > 1) {
		old := w.blocks[0]
		for _, k := range old.keys {
			if w.latest[k].ver.block == old.number {
				delete(w.latest, k)
			}
		}
		w.keys -= len(old.keys)
		w.base = old.number
		w.blocks[0] = recentBlock{}
		w.blocks = w.blocks[1:]
	}
}

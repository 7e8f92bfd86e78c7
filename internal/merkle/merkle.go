// Package merkle implements the Merkle tree hash of RFC 6962 (section 2.1,
// as restated by RFC 9162 section 2.1): the root of a list of leaves, an
// inclusion proof of one leaf and its verification.
//
// Leaves and interior nodes are hashed with different prefixes (0x00 and
// 0x01), so a leaf can never pass for an interior node (second-preimage
// resistance), and trees of every size (not only powers of two) are
// defined. It is the tree Certificate Transparency uses, so auditors can
// check our proofs with any RFC 6962 library (for example
// github.com/transparency-dev/merkle's proof.VerifyInclusion).
package merkle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// Hash is a SHA-256 digest: a leaf hash, a node hash or a root.
type Hash = [sha256.Size]byte

// LeafHash returns SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// nodeHash returns SHA-256(0x01 || left || right).
func nodeHash(left, right Hash) Hash {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+sha256.Size:], right[:])
	return sha256.Sum256(buf[:])
}

// split returns the largest power of two smaller than n (n >= 2).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// Root returns the Merkle tree hash of the leaf hashes, in order. The root
// of no leaves is SHA-256 of the empty string, as RFC 6962 defines it.
func Root(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := split(len(leaves))
	return nodeHash(Root(leaves[:k]), Root(leaves[k:]))
}

// InclusionProof returns the audit path of leaves[index]: the sibling
// hashes from the leaf up to the root (RFC 6962 PATH(m, D[n])).
func InclusionProof(leaves []Hash, index int) ([]Hash, error) {
	if index < 0 || index >= len(leaves) {
		return nil, fmt.Errorf("merkle: leaf index %d out of range of a tree of %d", index, len(leaves))
	}
	return path(leaves, index), nil
}

func path(leaves []Hash, m int) []Hash {
	if len(leaves) <= 1 {
		return nil
	}
	k := split(len(leaves))
	if m < k {
		return append(path(leaves[:k], m), Root(leaves[k:]))
	}
	return append(path(leaves[k:], m-k), Root(leaves[:k]))
}

// ErrMismatch is returned by VerifyInclusion when the proof does not lead
// to the root.
var ErrMismatch = errors.New("merkle: inclusion proof does not match the root")

// VerifyInclusion checks that leafHash is the leaf at index of the tree of
// size leaves whose root is root, given its audit path (RFC 9162 section
// 2.1.3.2). It returns nil, ErrMismatch, or an error for a malformed proof.
func VerifyInclusion(leafHash Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("merkle: leaf index %d out of range of a tree of %d", index, size)
	}
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("merkle: proof of %d hashes is too long for index %d of %d", len(proof), index, size)
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("merkle: proof of %d hashes is too short for index %d of %d", len(proof), index, size)
	}
	if r != root {
		return ErrMismatch
	}
	return nil
}

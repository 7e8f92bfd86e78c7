package points

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// sweepReadChunk is how many index entries a sweep range-reads at a time.
// An entry lists one lot or, since entries are per transaction, up to a
// batch's worth: reading limit entries at once could fetch limit batches.
const sweepReadChunk = 16

// sweepExpired records the expiry of due lots of one of the caller's expiry
// buckets (a UTC day). It examines at most limit lots: it range-reads the
// bucket's index entries a few at a time (phantom-checked ranges) and for
// each listed lot whose expiresAt <= the transaction time moves its
// remaining points to expired. An entry keeps the lots not due yet (later
// the same day) and those beyond the limit; it is rewritten when that is
// fewer than it listed and deleted when none are left. Lots emptied or
// moved since are dropped from it (pruned). More says the limit cut the
// bucket short: sweep it again.
//
// Expiry itself does not wait for this: a due lot is expired for balance,
// spending and conservation from its expiresAt on. The sweep writes it down.
func sweepExpired(t *txn, a *SweepArgs) (any, error) {
	if _, err := time.Parse(bucketLayout, a.Bucket); err != nil || len(a.Bucket) != len(bucketLayout) {
		return nil, errInvalid("invalid_bucket", "bucket", "bucket must be a UTC day as YYYYMMDD")
	}
	limit := a.Limit
	switch {
	case limit == 0:
		limit = DefaultSweepLimit
	case limit < 0:
		return nil, errInvalid("invalid_limit", "limit", "limit must be 1 to %d", MaxSweepLimit)
	case limit > MaxSweepLimit:
		return nil, apperr.New(apperr.TooLarge, "limit_too_large", "limit must be 1 to %d", MaxSweepLimit)
	}
	prefix := expiryPrefix(t.caller, a.Bucket)
	res := SweepResult{Bucket: a.Bucket}
	budget := limit // lots still to examine
	for start, end := prefix, stub.PrefixEnd(prefix); ; {
		n := min(budget, sweepReadChunk)
		entries, err := t.rangeRead(start, end, n)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if budget == 0 {
				res.More = true
				break
			}
			if budget, err = t.sweepEntry(prefix, e, budget, &res); err != nil {
				return nil, err
			}
		}
		if len(entries) < n {
			return res, nil // the bucket is read to its end
		}
		if budget == 0 {
			res.More = true
			return res, nil
		}
		start = entries[len(entries)-1].Key + "\x01" // as spends do: nothing sorts between (keys hold no NUL)
	}
}

// sweepEntry sweeps the lots of one index entry, at most budget of them,
// and returns the budget left.
func (t *txn) sweepEntry(prefix string, e stub.KV, budget int, res *SweepResult) (int, error) {
	t.cache[e.Key] = e.Value // read committed: a rewrite keeps its endorsement policy
	suffix := e.Key[len(prefix):]
	listed := []string{suffix} // an entry of the first version: one lot, named by the key
	if strings.HasPrefix(suffix, expiryGroupPrefix) {
		listed = nil
		if err := unmarshalState(e.Key, e.Value, &listed); err != nil {
			return 0, err
		}
	}
	examine := listed[:min(len(listed), budget)]
	keep := slices.Clone(listed[len(examine):]) // beyond the limit: next time
	if len(keep) > 0 {
		res.More = true
	}
	lots, err := t.getMany(examine...)
	if err != nil {
		return 0, err
	}
	for i, raw := range lots {
		if raw == nil { // moved by an extension (its new key has its own entry)
			res.Pruned++
			continue
		}
		var l Lot
		if err := unmarshalState(examine[i], raw, &l); err != nil {
			return 0, err
		}
		switch {
		case l.ExpiresAt.After(t.now):
			res.NotDue++
			keep = append(keep, examine[i])
		case l.Remaining == 0:
			res.Pruned++
		default:
			take, grams := l.Remaining, l.GramsRemaining
			l.Expired += take
			l.Remaining, l.GramsRemaining = 0, 0
			if err := t.put(l.Key, &l); err != nil {
				return 0, err
			}
			t.emit(Change{Type: ChangeLotDebited, Cause: CauseExpire, Debit: debitOf(&l, take, grams)})
			res.Swept++
			if err := sumChecked(&res.Points, take, "the swept points"); err != nil {
				return 0, err
			}
		}
	}
	switch {
	case len(keep) == 0:
		t.del(e.Key)
	case len(keep) < len(listed):
		slices.Sort(keep)
		raw, err := json.Marshal(keep)
		if err != nil {
			return 0, apperr.Wrap(err, apperr.Internal, "encode_failed", "encoding the expiry index entry %q", e.Key)
		}
		t.write(e.Key, raw)
	}
	return budget - len(examine), nil
}

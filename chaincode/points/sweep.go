package points

import (
	"time"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// sweepExpired records the expiry of due lots of one of the caller's expiry
// buckets (a UTC day): it range-reads at most limit index entries (a
// phantom-checked range, so kept small), and for each lot whose expiresAt <=
// the transaction time moves its remaining points to expired and removes its
// index entry. Lots not due yet (later the same day) stay. More says the
// limit cut the range short: sweep the bucket again.
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
	entries, err := t.rangeRead(prefix, stub.PrefixEnd(prefix), limit)
	if err != nil {
		return nil, err
	}
	res := SweepResult{Bucket: a.Bucket, More: len(entries) == limit}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key[len(prefix):]
	}
	lots, err := t.getMany(keys...)
	if err != nil {
		return nil, err
	}
	for i, raw := range lots {
		if raw == nil { // an index entry without its lot: cannot happen, but heal it
			t.del(entries[i].Key)
			res.Pruned++
			continue
		}
		var l Lot
		if err := unmarshalState(keys[i], raw, &l); err != nil {
			return nil, err
		}
		switch {
		case l.ExpiresAt.After(t.now):
			res.NotDue++
		case l.Remaining == 0:
			t.del(entries[i].Key)
			res.Pruned++
		default:
			take, grams := l.Remaining, l.GramsRemaining
			l.Expired += take
			l.Remaining, l.GramsRemaining = 0, 0
			if err := t.put(l.Key, &l); err != nil {
				return nil, err
			}
			t.del(entries[i].Key)
			t.emit(Change{Type: ChangeLotDebited, Cause: CauseExpire, Debit: debitOf(&l, take, grams)})
			res.Swept++
			if err := sumChecked(&res.Points, take, "the swept points"); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

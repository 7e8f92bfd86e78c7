package points

import (
	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// part is what a spend takes from one lot.
type part struct {
	lot    *Lot // the lot, already debited
	points int64
	grams  int64
}

// liveLots reads an account's lots that are not expired at the transaction
// time, earliest expiry first, in chunks of scanChunk (each range read is
// phantom-checked at commit only over what it returned), until enough holds
// need points (need <= 0: all of them, up to MaxScanLots). Lots with nothing
// remaining are skipped. Expired lots are never read: spending and balances
// do not touch what the sweep writes.
func (t *txn) liveLots(account string, need int64) ([]*Lot, error) {
	start, end := liveLotStart(account, t.now), stub.PrefixEnd(lotPrefix(account))
	var (
		lots    []*Lot
		scanned int
		have    int64
	)
	for {
		chunk := scanChunk
		if need <= 0 && t.readOnly {
			chunk = MaxScanLots + 1 // a query reads its range at once
		}
		kvs, err := t.rangeRead(start, end, chunk)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			var l Lot
			if err := unmarshalState(kv.Key, kv.Value, &l); err != nil {
				return nil, err
			}
			if l.Remaining > 0 && l.ExpiresAt.After(t.now) {
				lots = append(lots, &l)
				if err := sumChecked(&have, l.Remaining, "the balance"); err != nil {
					return nil, err
				}
			}
		}
		scanned += len(kvs)
		if len(kvs) < chunk || (need > 0 && have >= need) {
			return lots, nil
		}
		if scanned >= MaxScanLots {
			if need > 0 {
				return nil, apperr.New(apperr.Conflict, "too_many_lots", "account %s has more than %d lots to look through; spend less at once", account, MaxScanLots)
			}
			return nil, apperr.New(apperr.TooLarge, "too_many_lots", "account %s has more than %d live lots", account, MaxScanLots)
		}
		// The next key after the last one read: no key contains a NUL
		// (the embedded ledger refuses them), so nothing sorts between.
		start = kvs[len(kvs)-1].Key + "\x01"
	}
}

// spend takes points from an account's live lots, earliest expiry first,
// with their grams apportioned exactly, and debits the lots (by the given
// cause). A lot left empty loses its expiry index entry. The caller records
// where the points went.
func (t *txn) spend(account string, points int64, cause, requestHash string) ([]part, error) {
	lots, err := t.liveLots(account, points)
	if err != nil {
		return nil, err
	}
	avail := make([]int64, len(lots))
	for i, l := range lots {
		avail[i] = l.Remaining
	}
	takes, ok := allocate(avail, points)
	if !ok {
		return nil, apperr.New(apperr.Conflict, "insufficient_points", "account %s holds fewer than %d points", account, points)
	}
	// Read the lots to be spent again, as keys: the range read only protects
	// against phantoms, these point reads put each lot's version in the read
	// set, so a concurrent spend of the same lot is an MVCC read conflict,
	// as on Fabric.
	var keys []string
	for i, take := range takes {
		if take > 0 {
			keys = append(keys, lots[i].Key)
		}
	}
	if len(keys) > MaxSpendLots {
		return nil, apperr.New(apperr.Conflict, "too_many_lots", "the points are spread over more than %d lots; spend less at once", MaxSpendLots)
	}
	if _, err := t.getMany(keys...); err != nil {
		return nil, err
	}
	var parts []part
	for i, take := range takes {
		if take == 0 {
			continue
		}
		l := lots[i]
		grams := apportion(l.GramsRemaining, take, l.Remaining)
		l.Remaining -= take
		l.GramsRemaining -= grams
		switch cause {
		case CauseDonate:
			l.Donated += take
		case CauseTransferOut:
			l.TransferredOut += take
		default:
			return nil, apperr.New(apperr.Internal, "bad_cause", "spend cause %q", cause)
		}
		parts = append(parts, part{lot: l, points: take, grams: grams})
	}
	for _, p := range parts {
		if err := t.put(p.lot.Key, p.lot); err != nil {
			return nil, err
		}
		t.emit(Change{Type: ChangeLotDebited, Cause: cause, RequestHash: requestHash, Debit: debitOf(p.lot, p.points, p.grams)})
	}
	return parts, nil
}

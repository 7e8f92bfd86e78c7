package points

import (
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// transfer moves points between two accounts of one family, if the issuer's
// profile in force allows it and within its caps. It spends the sender's
// lots earliest expiry first; for each lot it takes from, the recipient gets
// a lot with the same expiry, versions, claim and a proportional share of
// grams, pointing to its source (sourceLot; the source lists it in
// children). A transfer never extends a point's life.
func transfer(t *txn, a *TransferArgs) (any, error) {
	if err := needID("from", a.From); err != nil {
		return nil, err
	}
	if err := needID("to", a.To); err != nil {
		return nil, err
	}
	if err := needPositive("points", a.Points); err != nil {
		return nil, err
	}
	if err := needHex64("requestHash", a.RequestHash); err != nil {
		return nil, err
	}
	if a.From == a.To {
		return nil, errInvalid("same_account", "to", "a transfer needs two different accounts")
	}
	if _, err := t.getMany(accountKey(a.From), accountKey(a.To), familyOfKey(a.From), familyOfKey(a.To), scheduleKey(t.caller)); err != nil {
		return nil, err
	}
	if _, err := t.ownAccount(a.From); err != nil {
		return nil, err
	}
	if _, err := t.ownAccount(a.To); err != nil {
		return nil, err
	}
	famFrom, err := t.familyOf(a.From)
	if err != nil {
		return nil, err
	}
	famTo, err := t.familyOf(a.To)
	if err != nil {
		return nil, err
	}
	if famFrom == "" || famFrom != famTo {
		return nil, apperr.New(apperr.Conflict, "not_same_family", "transfers are only allowed within one family")
	}
	prof, err := t.profileInForce(t.caller)
	if err != nil {
		return nil, err
	}
	p := prof.Profile
	if !p.TransfersAllowed {
		return nil, apperr.New(apperr.Conflict, "transfers_not_allowed", "the compliance profile in force (%s %s) does not allow transfers", prof.ID, prof.Version)
	}
	if p.TransferMaxPoints > 0 && a.Points > p.TransferMaxPoints {
		return nil, errInvalid("transfer_limit_exceeded", "points", "one transfer may move at most %d points", p.TransferMaxPoints)
	}
	loc, err := loadZone(p.Timezone)
	if err != nil {
		return nil, err
	}
	month := t.now.In(loc).Format(monthLayout)
	ckey := transfersKey(a.From, month)
	counter := TransferCounter{Account: a.From, Month: month}
	if _, err := t.getJSON(ckey, &counter); err != nil {
		return nil, err
	}
	monthTotal, ok := add(counter.Points, a.Points)
	if !ok {
		return nil, errOverflow("the monthly transfer total")
	}
	if p.TransferMaxPointsPerMonth > 0 && monthTotal > p.TransferMaxPointsPerMonth {
		return nil, apperr.New(apperr.Conflict, "monthly_transfer_limit_exceeded", "account %s may transfer at most %d points in %s (%d already)", a.From, p.TransferMaxPointsPerMonth, month, counter.Points)
	}

	parts, err := t.spend(a.From, a.Points, CauseTransferOut, a.RequestHash)
	if err != nil {
		return nil, err
	}
	rec := TransferRecord{From: a.From, To: a.To, Issuer: t.caller, FamilyID: famFrom, Points: a.Points, Month: month, MonthPoints: monthTotal}
	res := TransferResult{Lots: make([]string, 0, len(parts))}
	for i, p := range parts {
		src := p.lot
		if len(src.Children) >= MaxLotChildren {
			return nil, apperr.New(apperr.Conflict, "lot_fanout_limit", "lot %s has been transferred from %d times already", src.ID, MaxLotChildren)
		}
		id := deriveID(t.txID, "transfer", i)
		key := lotKey(a.To, src.ExpiresAt, id)
		child := Lot{
			Key: key, ID: id, Account: a.To, Issuer: src.Issuer,
			Amount: p.points, Remaining: p.points, Grams: p.grams, GramsRemaining: p.grams,
			IssuedAt: t.now, ExpiresAt: src.ExpiresAt, Category: src.Category,
			RuleVersion: src.RuleVersion, MethodologyVersion: src.MethodologyVersion, ProfileVersion: src.ProfileVersion,
			QuantificationHash: src.QuantificationHash, Claim: src.Claim, ItemID: src.ItemID, TxID: t.txID,
			SourceLot: src.Key, Children: []string{},
		}
		src.Children = append(src.Children, key)
		if err := t.put(src.Key, src); err != nil {
			return nil, err
		}
		if err := t.placeLot(&child); err != nil {
			return nil, err
		}
		created := child
		t.emit(Change{Type: ChangeLotCreated, Cause: CauseTransferIn, RequestHash: a.RequestHash, Lot: &created})
		if err := sumChecked(&rec.Grams, p.grams, "the transferred grams"); err != nil {
			return nil, err
		}
		res.Lots = append(res.Lots, key)
	}
	counter.Points, counter.Count = monthTotal, counter.Count+1
	if err := t.put(ckey, counter); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeTransferRecorded, RequestHash: a.RequestHash, Transfer: &rec})
	res.Transfer = rec
	return res, nil
}

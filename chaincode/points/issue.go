package points

import (
	"slices"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// issueBatch issues up to MaxIssueBatch items. Each item is judged on its
// own: one bad item never fails the rest. A claim pays once: a claim already
// recorded (committed, or earlier in this batch: the contract's overlay sees
// its own writes even though the stub does not) reports already_issued when
// it is the same issuer's same item (a harmless retry) and claimed_elsewhere
// otherwise; a claim recorded as a sub-claim (of any grant, even the same
// item's) is claimed elsewhere: a trip is never a grant's claim. An item's sub-claims must all be free (committed or earlier in
// this batch, through the overlay too), or the item is rejected with
// sub_claim_taken, listing them, and writes nothing. All claims and
// sub-claims, accounts, debts, anchors and the profile schedule are read
// with one GetMultipleStates call.
func issueBatch(t *txn, a *IssueBatchArgs) (any, error) {
	n := len(a.Items)
	if n == 0 {
		return nil, errInvalid("empty_batch", "items", "no items given")
	}
	if n > MaxIssueBatch {
		return nil, apperr.New(apperr.TooLarge, "batch_too_large", "at most %d items per batch, got %d", MaxIssueBatch, n)
	}
	subs := 0
	for i := range a.Items {
		subs += len(a.Items[i].SubClaims)
	}
	if subs > MaxBatchSubClaims {
		return nil, apperr.New(apperr.TooLarge, "batch_too_large", "at most %d sub-claims per batch, got %d", MaxBatchSubClaims, subs)
	}
	res := IssueBatchResult{Results: make([]ItemResult, n)}

	// Static checks; collect the keys to read for the items that pass.
	reasons := make([]string, n)
	keys := []string{scheduleKey(t.caller)}
	for i := range a.Items {
		it := &a.Items[i]
		reasons[i] = staticItemCheck(it, t.now)
		if !validID(it.ItemID) || !validHex(it.Claim, claimHexLen) {
			continue
		}
		keys = append(keys, claimKey(it.Claim))
		if reasons[i] != "" {
			continue
		}
		keys = append(keys, accountKey(it.Account), debtKey(it.Account),
			anchorKey(t.caller, AnchorRule, it.RuleVersion),
			anchorKey(t.caller, AnchorMethodology, it.MethodologyVersion),
			anchorKey(t.caller, AnchorProfile, it.ProfileVersion))
		for _, sc := range it.SubClaims {
			keys = append(keys, claimKey(sc))
		}
	}
	// An issued item writes its claim and lot, its sub-claims and perhaps
	// its debt (the batch adds an expiry entry per bucket), and emits three
	// changes or more.
	t.reserve(len(keys), 3*n+subs)
	t.changes = slices.Grow(t.changes, 3*n)
	if _, err := t.getMany(keys...); err != nil { // one round trip; later reads hit the cache
		return nil, err
	}
	sched, err := t.loadSchedule(t.caller)
	if err != nil {
		return nil, err
	}
	inForce := sched.inForce(t.now)

	itemClaims := map[string]string{} // itemId -> claim, within this batch
	for i := range a.Items {
		it := &a.Items[i]
		r := ItemResult{Index: i, ItemID: it.ItemID, Claim: it.Claim}
		if !validID(it.ItemID) || !validHex(it.Claim, claimHexLen) {
			r.Status, r.Reason = ItemRejected, reasons[i]
			res.Results[i] = t.itemDone(&res, r)
			continue
		}
		var c Claim
		found, err := t.getJSON(claimKey(it.Claim), &c)
		if err != nil {
			return nil, err
		}
		switch {
		case found && c.Issuer == t.caller && c.ItemID == it.ItemID && c.Parent == "":
			r.Status, r.LotID, r.LotKey = ItemAlreadyIssued, c.LotID, c.LotKey
		case found:
			r.Status = ItemClaimedElsewhere
		case reasons[i] != "":
			r.Status, r.Reason = ItemRejected, reasons[i]
		default:
			if prev, dup := itemClaims[it.ItemID]; dup && prev != it.Claim {
				r.Status, r.Reason = ItemRejected, "duplicate_item_id"
				break
			}
			reason, err := t.checkItem(it, inForce)
			if err != nil {
				return nil, err
			}
			if reason != "" {
				r.Status, r.Reason = ItemRejected, reason
				break
			}
			taken, err := t.takenSubClaims(it.SubClaims)
			if err != nil {
				return nil, err
			}
			if len(taken) > 0 {
				r.Status, r.Reason, r.TakenSubClaims = ItemRejected, "sub_claim_taken", taken
				break
			}
			if err := t.issueItem(i, it, &r); err != nil {
				return nil, err
			}
			itemClaims[it.ItemID] = it.Claim
		}
		res.Results[i] = t.itemDone(&res, r)
	}
	return res, nil
}

// itemDone counts and emits an item's result.
func (t *txn) itemDone(res *IssueBatchResult, r ItemResult) ItemResult {
	switch r.Status {
	case ItemIssued:
		res.Issued++
	case ItemAlreadyIssued:
		res.AlreadyIssued++
	case ItemClaimedElsewhere:
		res.ClaimedElsewhere++
	default:
		res.Rejected++
	}
	rc := r
	t.emit(Change{Type: ChangeItemResult, Item: &rc})
	return r
}

// staticItemCheck validates an item's fields without reading state and
// returns the rejection reason, "" when they are fine.
func staticItemCheck(it *IssueItem, now time.Time) string {
	switch {
	case !validID(it.ItemID):
		return "invalid_item_id"
	case !validHex(it.Claim, claimHexLen):
		return "invalid_claim"
	}
	if reason := subClaimsCheck(it); reason != "" {
		return reason
	}
	switch {
	case !validID(it.Account):
		return "invalid_account"
	case it.Points <= 0:
		return "invalid_points"
	case it.Grams < 0:
		return "invalid_grams"
	case !validID(it.Category):
		return "invalid_category"
	case !validID(it.RuleVersion.ID) || !validID(it.RuleVersion.Version):
		return "invalid_rule_version"
	case !validID(it.MethodologyVersion.ID) || !validID(it.MethodologyVersion.Version):
		return "invalid_methodology_version"
	case !validID(it.ProfileVersion.ID) || !validID(it.ProfileVersion.Version):
		return "invalid_profile_version"
	case !validHex(it.QuantificationHash, claimHexLen):
		return "invalid_quantification_hash"
	case it.ExpiresAt.IsZero() || it.ExpiresAt.Nanosecond() != 0 || it.ExpiresAt.Unix() > maxUnix:
		return "invalid_expires_at"
	case !it.ExpiresAt.After(now):
		return "expiry_not_in_future"
	}
	return ""
}

// subClaimsCheck validates an item's sub-claims without reading state:
// at most MaxSubClaims, each a valid claim, none twice and none equal to
// the item's claim. It returns the rejection reason, "" when they are fine.
func subClaimsCheck(it *IssueItem) string {
	if len(it.SubClaims) > MaxSubClaims {
		return "too_many_sub_claims"
	}
	for i, sc := range it.SubClaims {
		if !validHex(sc, claimHexLen) {
			return "invalid_sub_claim"
		}
		if sc == it.Claim || slices.Contains(it.SubClaims[:i], sc) {
			return "duplicate_sub_claim"
		}
	}
	return ""
}

// takenSubClaims returns the sub-claims already recorded, committed or
// written earlier in this transaction (the overlay), in their order.
func (t *txn) takenSubClaims(subs []string) ([]string, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(subs))
	for i, sc := range subs {
		keys[i] = claimKey(sc)
	}
	vals, err := t.getMany(keys...) // read with the batch: no round trip
	if err != nil {
		return nil, err
	}
	var taken []string
	for i, v := range vals {
		if v != nil {
			taken = append(taken, subs[i])
		}
	}
	return taken, nil
}

// checkItem checks an item against state: its account and its anchored
// versions. It returns the rejection reason, "" when the item may issue.
func (t *txn) checkItem(it *IssueItem, inForce *ScheduledProfile) (string, error) {
	acct, err := lookup[Account](t, accountKey(it.Account))
	if err != nil {
		return "", err
	}
	if acct == nil {
		return "account_not_found", nil
	}
	if acct.Issuer != t.caller {
		return "not_account_owner", nil
	}
	for _, v := range []struct {
		kind string
		ref  VersionRef
	}{{AnchorRule, it.RuleVersion}, {AnchorMethodology, it.MethodologyVersion}} {
		an, err := lookup[Anchor](t, anchorKey(t.caller, v.kind, v.ref))
		if err != nil {
			return "", err
		}
		if an == nil {
			return v.kind + "_not_anchored", nil
		}
		if an.EffectiveAt.After(t.now) {
			return v.kind + "_not_effective", nil
		}
	}
	if inForce == nil || inForce.ID != it.ProfileVersion.ID || inForce.Version != it.ProfileVersion.Version {
		an, err := lookup[Anchor](t, anchorKey(t.caller, AnchorProfile, it.ProfileVersion))
		if err != nil {
			return "", err
		}
		switch {
		case an == nil:
			return "profile_not_anchored", nil
		case an.EffectiveAt.After(t.now):
			return "profile_not_effective", nil
		default:
			return "profile_not_in_force", nil
		}
	}
	limit := t.now.Add(time.Duration(inForce.Profile.MaxValidityDays) * day)
	if it.ExpiresAt.After(limit) {
		return "validity_exceeds_profile", nil
	}
	return "", nil
}

// issueItem writes one issuance: its lot (settling the account's debt
// first), its expiry index entry, its claim and its sub-claims.
func (t *txn) issueItem(index int, it *IssueItem, r *ItemResult) error {
	exp := it.ExpiresAt.UTC()
	id := deriveID(t.txID, "lot", index)
	key := lotKey(it.Account, exp, id)
	lot := Lot{
		Key: key, ID: id, Account: it.Account, Issuer: t.caller,
		Amount: it.Points, Remaining: it.Points, Grams: it.Grams, GramsRemaining: it.Grams,
		IssuedAt: t.now, ExpiresAt: exp, Category: it.Category,
		RuleVersion: it.RuleVersion, MethodologyVersion: it.MethodologyVersion, ProfileVersion: it.ProfileVersion,
		QuantificationHash: it.QuantificationHash, Claim: it.Claim, ItemID: it.ItemID, TxID: t.txID,
		Children: []string{},
	}
	created := lot
	t.emit(Change{Type: ChangeLotCreated, Cause: CauseIssue, Lot: &created})

	var debt Debt
	hasDebt, err := t.getJSON(debtKey(it.Account), &debt)
	if err != nil {
		return err
	}
	var settled int64
	if hasDebt && debt.Points > 0 {
		settled = min(debt.Points, lot.Remaining)
		grams := apportion(lot.GramsRemaining, settled, lot.Remaining)
		lot.Remaining -= settled
		lot.GramsRemaining -= grams
		lot.Reversed += settled
		t.emit(Change{Type: ChangeLotDebited, Cause: CauseDebtSettle, Debit: debitOf(&lot, settled, grams)})
		debt.Points -= settled
		debt.UpdatedAt = t.now
		if err := t.putDebt(&debt, -settled, it.Claim, CauseDebtSettle); err != nil {
			return err
		}
	}
	if err := t.placeLot(&lot); err != nil {
		return err
	}
	c := Claim{
		Claim: it.Claim, Issuer: t.caller, ItemID: it.ItemID, Account: it.Account, LotKey: key, LotID: id,
		Points: it.Points, Grams: it.Grams, DebtSettled: settled, IssuedAt: t.now, TxID: t.txID,
	}
	if err := t.put(claimKey(it.Claim), &c); err != nil {
		return err
	}
	t.emit(Change{Type: ChangeClaimRecorded, Claim: &c})
	for _, s := range it.SubClaims {
		sc := Claim{
			Claim: s, Issuer: t.caller, ItemID: it.ItemID, Account: it.Account, LotKey: key, LotID: id,
			IssuedAt: t.now, TxID: t.txID, Parent: it.Claim,
		}
		if err := t.put(claimKey(s), &sc); err != nil {
			return err
		}
		t.emit(Change{Type: ChangeClaimRecorded, Claim: &sc})
	}
	r.Status, r.LotID, r.LotKey, r.DebtSettled = ItemIssued, id, key, settled
	return nil
}

// putDebt writes (or, at zero, deletes) an account's debt and emits the change.
func (t *txn) putDebt(d *Debt, delta int64, claim, cause string) error {
	if d.Points == 0 {
		t.del(debtKey(d.Account))
	} else if err := t.put(debtKey(d.Account), d); err != nil {
		return err
	}
	t.emit(Change{Type: ChangeDebtChanged, Cause: cause, Debt: &DebtChange{Account: d.Account, Issuer: d.Issuer, Delta: delta, Points: d.Points, Claim: claim}})
	return nil
}

// debitOf describes points leaving a lot (the lot already debited).
func debitOf(l *Lot, points, grams int64) *Debit {
	return &Debit{
		LotKey: l.Key, LotID: l.ID, Account: l.Account, Issuer: l.Issuer, Claim: l.Claim, ExpiresAt: l.ExpiresAt,
		Points: points, Grams: grams, Remaining: l.Remaining, GramsRemaining: l.GramsRemaining,
	}
}

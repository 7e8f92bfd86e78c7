package points

import (
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// reverse claws a claim's points back. It takes the remaining points of the
// claim's lot and, following transfer provenance breadth-first (at most
// MaxReverseLots lots), of the lots made from it, wherever they moved.
// Expired points (recorded, or due but not yet swept) are gone: they are
// neither clawed nor owed. The shortfall, the points already used (donated,
// transferred and used, or used to settle an earlier debt at issuance, or
// beyond the walk's bound), becomes debt on the claim's account, which later
// issuances settle first. No lot ever goes negative. A claim reverses once.
// A grant reverses by its own claim, never by a sub-claim
// (reverse_sub_claim); the reversal is recorded on that claim only, and its
// sub-claims stay recorded: evidence whose grant was reversed cannot be
// claimed again.
func reverse(t *txn, a *ReverseArgs) (any, error) {
	if err := needHex64("claim", a.Claim); err != nil {
		return nil, err
	}
	if err := needID("reason", a.Reason); err != nil {
		return nil, err
	}
	if err := needID("itemId", a.ItemID); err != nil {
		return nil, err
	}
	c, err := t.loadClaim(a.Claim)
	if err != nil {
		return nil, err
	}
	if c.Issuer != t.caller {
		return nil, errForbidden("not_claim_owner", "claim %s belongs to another issuer", a.Claim)
	}
	if c.Parent != "" {
		return nil, errInvalid("reverse_sub_claim", "claim", "claim %s is a sub-claim of grant %s: reverse the grant's claim", a.Claim, c.Parent)
	}
	if c.Reversal != nil {
		return nil, apperr.New(apperr.Conflict, "already_reversed", "claim %s was reversed in transaction %s", a.Claim, c.Reversal.TxID)
	}
	rev := Reversal{ItemID: a.ItemID, Reason: a.Reason, At: t.now, TxID: t.txID}
	var (
		root    int64 = -1 // the claim's lot's amount, read below
		level         = []string{c.LotKey}
		visited       = map[string]bool{}
	)
	for len(level) > 0 {
		if rev.Lots+len(level) > MaxReverseLots {
			level = level[:MaxReverseLots-rev.Lots]
			rev.Truncated = true
		}
		vals, err := t.getMany(level...)
		if err != nil {
			return nil, err
		}
		var next []string
		for i, key := range level {
			if vals[i] == nil || visited[key] {
				continue
			}
			visited[key] = true
			rev.Lots++
			var l Lot
			if err := unmarshalState(key, vals[i], &l); err != nil {
				return nil, err
			}
			if root < 0 {
				root = l.Amount
			}
			if err := sumChecked(&rev.Expired, l.Expired, "the expired points"); err != nil {
				return nil, err
			}
			switch {
			case l.Remaining == 0:
			case !l.ExpiresAt.After(t.now): // due: expired, whatever the sweep has done
				if err := sumChecked(&rev.Expired, l.Remaining, "the expired points"); err != nil {
					return nil, err
				}
			default:
				take, grams := l.Remaining, l.GramsRemaining
				l.Remaining, l.GramsRemaining = 0, 0
				l.Reversed += take
				if err := t.putLot(&l); err != nil {
					return nil, err
				}
				t.emit(Change{Type: ChangeLotDebited, Cause: CauseReverse, Debit: debitOf(&l, take, grams)})
				if err := sumChecked(&rev.Clawed, take, "the clawed points"); err != nil {
					return nil, err
				}
			}
			next = append(next, l.Children...)
		}
		if rev.Truncated {
			break
		}
		level = next
	}
	if root < 0 {
		return nil, apperr.New(apperr.Internal, "corrupt_state", "the lot of claim %s is missing", a.Claim)
	}
	// Points of this claim: the lot's amount. Clawed and expired points are
	// accounted for; the rest was used.
	debt := root - rev.Clawed - rev.Expired
	if debt < 0 { // cannot happen: a lot tree holds at most its root's amount
		return nil, apperr.New(apperr.Internal, "corrupt_state", "claim %s accounts for more points than it issued", a.Claim)
	}
	rev.Debt = debt
	res := ReverseResult{Claim: c.Claim, Account: c.Account, Reversal: rev}
	d := Debt{Account: c.Account, Issuer: c.Issuer}
	if _, err := t.getJSON(debtKey(c.Account), &d); err != nil {
		return nil, err
	}
	if debt > 0 {
		if err := sumChecked(&d.Points, debt, "the debt"); err != nil {
			return nil, err
		}
		d.UpdatedAt = t.now
		if err := t.putDebt(&d, debt, c.Claim, CauseReverse); err != nil {
			return nil, err
		}
	}
	res.DebtNow = d.Points
	c.Reversal = &rev
	if err := t.put(claimKey(c.Claim), c); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeClaimReversed, Claim: c})
	return res, nil
}

// loadClaim reads a committed claim; claim_not_found when absent.
func (t *txn) loadClaim(claim string) (*Claim, error) {
	var c Claim
	found, err := t.getJSON(claimKey(claim), &c)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apperr.New(apperr.NotFound, "claim_not_found", "claim %s does not exist", claim)
	}
	return &c, nil
}

package points

import (
	"slices"
	"strings"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// reverse claws points back, by a claim. A claim that is not a sub-claim
// reverses whole: its points, less what its sub-claims' reversals took
// before (args.Points is refused: points_not_allowed). A sub-claim of a
// grant (a refunded trip of a daily transit grant) reverses the share of
// the grant the caller names in args.Points (required: reverse_sub_claim),
// never more than the grant has left (points_exceed_grant), and not once
// the grant itself is reversed (grant_reversed).
//
// Either way the points come from the grant's (the claim's) lot and the
// lots transfers made from it (clawBack); of what the lots no longer hold,
// points that expired are gone, neither clawed nor owed, and the rest was
// used (donated, transferred and used, spent at issuance to settle an
// earlier debt, or beyond the walk's bound) and becomes debt on the claim's
// account, which later issuances settle first. No lot ever goes negative.
// A claim (a sub-claim too) reverses once, recorded on it; a sub-claim's
// reversal also adds its share to the grant's claim (SubReversed,
// SubExpired), so the shares of a grant never add up to more than its
// points and the grant's own reversal takes only what they left. Reversed
// sub-claims stay recorded, as do those of a reversed grant: evidence whose
// points were reversed cannot be claimed again.
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
	if a.Points != nil && *a.Points < 0 {
		return nil, errInvalid("invalid_points", "points", "points must be 0 or more")
	}
	c, err := t.loadClaim(a.Claim)
	if err != nil {
		return nil, err
	}
	if c.Issuer != t.caller {
		return nil, errForbidden("not_claim_owner", "claim %s belongs to another issuer", a.Claim)
	}
	if c.Reversal != nil {
		return nil, apperr.New(apperr.Conflict, "already_reversed", "claim %s was reversed in transaction %s", a.Claim, c.Reversal.TxID)
	}
	// grant is the claim whose lot pays: the claim itself, or a sub-claim's
	// parent (whose lotKey follows the lot when ExtendLots moves it).
	grant, need, err := t.reversalShare(c, a.Points)
	if err != nil {
		return nil, err
	}
	found, err := t.clawBack(grant.LotKey, c.Account, need)
	if err != nil {
		return nil, err
	}
	// Of what was not clawed, count as expired what had expired and no
	// earlier share of the grant counted; the rest was used: debt.
	rev := Reversal{ItemID: a.ItemID, Reason: a.Reason, At: t.now, TxID: t.txID,
		Clawed: found.clawed, Lots: found.lots, Truncated: found.truncated}
	rev.Expired = max(0, min(need-found.clawed, found.expired-grant.SubExpired))
	rev.Debt = need - rev.Clawed - rev.Expired
	res := ReverseResult{Claim: c.Claim, Account: c.Account, Reversal: rev}
	d := Debt{Account: c.Account, Issuer: c.Issuer}
	if _, err := t.getJSON(debtKey(c.Account), &d); err != nil {
		return nil, err
	}
	if rev.Debt > 0 {
		if err := sumChecked(&d.Points, rev.Debt, "the debt"); err != nil {
			return nil, err
		}
		d.UpdatedAt = t.now
		if err := t.putDebt(&d, rev.Debt, c.Claim, CauseReverse); err != nil {
			return nil, err
		}
	}
	res.DebtNow = d.Points
	if grant != c {
		grant.SubReversed += need // need <= Points - SubReversed: no overflow
		grant.SubExpired += rev.Expired
		if err := t.put(claimKey(grant.Claim), grant); err != nil {
			return nil, err
		}
	}
	c.Reversal = &rev
	if err := t.put(claimKey(c.Claim), c); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeClaimReversed, Claim: c})
	return res, nil
}

// reversalShare returns the claim whose lot pays a reversal of c and how
// many points it reverses: all that is left of c's points, or, for a
// sub-claim, the share asked of its grant.
func (t *txn) reversalShare(c *Claim, points *int64) (*Claim, int64, error) {
	if c.Parent == "" {
		if points != nil {
			return nil, 0, errInvalid("points_not_allowed", "points", "claim %s is not a sub-claim: it reverses whole, without points", c.Claim)
		}
		need := c.Points - c.SubReversed
		if need < 0 || c.SubExpired > c.SubReversed {
			return nil, 0, apperr.New(apperr.Internal, "corrupt_state", "claim %s has reversed %d of its %d points by sub-claims", c.Claim, c.SubReversed, c.Points)
		}
		return c, need, nil
	}
	if points == nil {
		return nil, 0, errInvalid("reverse_sub_claim", "points", "claim %s is a sub-claim of grant %s: give the points of its share, or reverse the grant's claim", c.Claim, c.Parent)
	}
	g, err := t.loadClaim(c.Parent)
	if apperr.ReasonOf(err) == "claim_not_found" {
		return nil, 0, apperr.New(apperr.Internal, "corrupt_state", "the grant %s of sub-claim %s is missing", c.Parent, c.Claim)
	}
	if err != nil {
		return nil, 0, err
	}
	if g.Reversal != nil {
		return nil, 0, apperr.New(apperr.Conflict, "grant_reversed", "grant %s of sub-claim %s was reversed whole in transaction %s", g.Claim, c.Claim, g.Reversal.TxID)
	}
	if left := g.Points - g.SubReversed; *points > left {
		return nil, 0, errInvalid("points_exceed_grant", "points", "sub-claim %s gives back %d points; its grant %s has %d left to reverse", c.Claim, *points, g.Claim, left)
	}
	return g, *points, nil
}

// clawed is what a reversal's walk found.
type clawed struct {
	clawed    int64 // points taken back
	expired   int64 // points of the visited lots that had expired
	lots      int   // lots visited
	truncated bool  // the walk stopped at MaxReverseLots
}

// clawBack takes up to need points back from the lot at root and the lots
// transfers made from it, wherever they moved. It walks the provenance
// breadth-first (at most MaxReverseLots lots: truncated), counting as
// expired every point of the visited lots that had expired (recorded, or
// due but not yet swept: expired for every purpose). It then takes, from
// the lots not expired, as much of their remaining points as is still
// needed (grams with them): first from the lots of account, whose evidence
// was refunded, then from the others' by account id. That order decides
// who loses points when only part of them goes back, and it depends on
// accounts only, never on which of an account's lots a spend happened to
// take from. Every reversal, whole or a sub-claim's share, walks through
// here; a share of 0 reads nothing.
func (t *txn) clawBack(root, account string, need int64) (clawed, error) {
	var r clawed
	if need <= 0 { // nothing to take, nothing to count: no read
		return r, nil
	}
	var live []*Lot // visited lots holding points not expired, in walk order
	level := []string{root}
	visited := map[string]bool{}
	for first := true; len(level) > 0; first = false {
		if r.lots+len(level) > MaxReverseLots {
			level, r.truncated = level[:MaxReverseLots-r.lots], true
		}
		vals, err := t.getMany(level...)
		if err != nil {
			return r, err
		}
		if first && vals[0] == nil {
			return r, apperr.New(apperr.Internal, "corrupt_state", "lot %s of a claim is missing", root)
		}
		var next []string
		for i, key := range level {
			if vals[i] == nil || visited[key] {
				continue
			}
			visited[key] = true
			r.lots++
			l := new(Lot)
			if err := unmarshalState(key, vals[i], l); err != nil {
				return r, err
			}
			if err := sumChecked(&r.expired, l.Expired, "the expired points"); err != nil {
				return r, err
			}
			switch {
			case l.Remaining == 0:
			case !l.ExpiresAt.After(t.now): // due: expired, whatever the sweep has done
				if err := sumChecked(&r.expired, l.Remaining, "the expired points"); err != nil {
					return r, err
				}
			default:
				live = append(live, l)
			}
			next = append(next, l.Children...)
		}
		if r.truncated {
			break
		}
		level = next
	}
	slices.SortStableFunc(live, func(a, b *Lot) int {
		switch {
		case a.Account == b.Account:
			return 0
		case a.Account == account:
			return -1
		case b.Account == account:
			return 1
		}
		return strings.Compare(a.Account, b.Account)
	})
	for _, l := range live {
		if r.clawed == need {
			break
		}
		take := min(l.Remaining, need-r.clawed)
		grams := apportion(l.GramsRemaining, take, l.Remaining)
		l.Remaining -= take
		l.GramsRemaining -= grams
		l.Reversed += take
		if err := t.put(l.Key, l); err != nil {
			return r, err
		}
		t.emit(Change{Type: ChangeLotDebited, Cause: CauseReverse, Debit: debitOf(l, take, grams)})
		r.clawed += take
	}
	return r, nil
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

package contracttest

// Sub-claim reversals: a refunded trip of a daily transit grant gives back
// its share of the grant, walked like any reversal; the shares of a grant
// never add up to more than its points, and the grant's own reversal takes
// only what they left.

import (
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// share is the Points of a sub-claim's reversal.
func share(n int64) *int64 { return &n }

// reverseTrip reverses a trip's share of its grant.
func (w *world) reverseTrip(trip string, pts int64, item string) points.ReverseResult {
	w.t.Helper()
	return submitInto[points.ReverseResult](w, w.o.IssuerA, "Reverse", points.ReverseArgs{Claim: w.trip(trip), Reason: "refund", ItemID: w.id(item), Points: share(pts)})
}

// wantReversal compares a reversal's clawed, expired, debt and lots.
func (w *world) wantReversal(what string, got points.Reversal, clawed, expired, debt int64, lots int) {
	w.t.Helper()
	type sums struct {
		Clawed, Expired, Debt int64
		Lots                  int
	}
	if diff := cmp.Diff(sums{clawed, expired, debt, lots}, sums{got.Clawed, got.Expired, got.Debt, got.Lots}); diff != "" || got.Truncated {
		w.t.Errorf("%s mismatch (-want +got):\n%s (truncated %v)", what, diff, got.Truncated)
	}
}

// testSubClaimReversal: a trip's share is clawed from the grant's lot and,
// following transfers, from where its points went; what was used becomes
// debt. The share is checked against what the grant has left, a trip
// reverses once, the other trips stay as they were, and the grant's own
// reversal takes the rest; once the grant is reversed, its trips cannot be.
// Points are refused for a claim that is not a sub-claim and required for
// one; refused arguments change nothing.
func testSubClaimReversal(w *world) {
	a, b := w.o.IssuerA, w.o.IssuerB
	day := w.grant("rday", w.a1, 30, "r1", "r2", "r3", "r4")
	w.issue(a, day)

	before := w.fingerprint()
	for _, tc := range []struct {
		what, caller string
		args         points.ReverseArgs
		code         apperr.Code
		reason       string
	}{
		{"a trip without points", a, points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: "x"}, apperr.Invalid, "reverse_sub_claim"},
		{"the grant with points", a, points.ReverseArgs{Claim: day.Claim, Reason: "refund", ItemID: "x", Points: share(5)}, apperr.Invalid, "points_not_allowed"},
		{"negative points", a, points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: "x", Points: share(-1)}, apperr.Invalid, "invalid_points"},
		{"more than the grant", a, points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: "x", Points: share(31)}, apperr.Invalid, "points_exceed_grant"},
		{"another issuer", b, points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: "x", Points: share(1)}, apperr.Forbidden, "not_claim_owner"},
	} {
		wantErr(w.t, w.try(tc.caller, "Reverse", tc.args), tc.code, tc.reason, tc.what)
	}
	w.unchanged(before, "refused sub-claim reversals")

	// A first trip gives back 10 of the 30 points: from the grant's lot.
	tx := w.submit(a, "Reverse", points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: w.id("rv1"), Points: share(10)})
	ev := decodeEvent(w.t, w.committedTxs(tx.TxID)[tx.TxID])
	if diff := cmp.Diff([]string{"lot_debited:reverse", "claim_reversed"}, changeTypes(ev)); diff != "" {
		w.t.Fatalf("changes of a trip's reversal mismatch (-want +got):\n%s", diff)
	}
	if c := ev.Changes[1].Claim; c.Claim != w.trip("r1") || c.Parent != day.Claim || c.Reversal == nil || c.Reversal.Clawed != 10 {
		w.t.Errorf("claim_reversed %+v", c)
	}
	if d := ev.Changes[0].Debit; d.Points != 10 || d.Remaining != 20 || d.Grams != 100 || d.GramsRemaining != 200 || d.Claim != day.Claim {
		w.t.Errorf("lot_debited %+v", d)
	}
	if b := w.balance(w.a1); b.Total != 20 || b.Debt != 0 {
		w.t.Errorf("balance after the first trip %+v", b)
	}
	g := eval[points.Claim](w, w.o.Auditor, "GetClaim", points.ClaimArgs{Claim: day.Claim})
	if g.SubReversed != 10 || g.SubExpired != 0 || g.Reversal != nil || g.Points != 30 {
		w.t.Errorf("grant after the first trip %+v", g)
	}
	if c := eval[points.Claim](w, a, "GetClaim", points.ClaimArgs{Claim: w.trip("r2")}); c.Reversal != nil || c.Parent != day.Claim {
		w.t.Errorf("another trip of the grant %+v", c)
	}
	wantErr(w.t, w.try(a, "Reverse", points.ReverseArgs{Claim: w.trip("r1"), Reason: "refund", ItemID: w.id("rv1b"), Points: share(1)}),
		apperr.Conflict, "already_reversed", "a trip reversed twice")
	// 20 left: 21 is too many.
	wantErr(w.t, w.try(a, "Reverse", points.ReverseArgs{Claim: w.trip("r2"), Reason: "refund", ItemID: "x", Points: share(21)}),
		apperr.Invalid, "points_exceed_grant", "more than the grant has left")

	// The consumer moves 15 to a2, who donates 10: a1 holds 5, a2 holds 5.
	w.family(w.id("rfam"), w.a1, w.a2)
	w.submit(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 15, RequestHash: hex64("r-transfer")})
	w.submit(a, "Donate", w.donate(w.a2, 10, "r-donate"))
	// The second trip's 8 come from a1 (5) and, following the transfer, a2 (3).
	w.wantReversal("the second trip", w.reverseTrip("r2", 8, "rv2").Reversal, 8, 0, 0, 2)
	// A trip whose share is 0 (a capped day) is recorded, nothing moves.
	w.wantReversal("a trip of no share", w.reverseTrip("r3", 0, "rv3").Reversal, 0, 0, 0, 0)
	// The last trip's 12: the 2 a2 still holds, and 10 donated: debt.
	last := w.reverseTrip("r4", 12, "rv4")
	w.wantReversal("the last trip", last.Reversal, 2, 0, 10, 2)
	if last.DebtNow != 10 || last.Account != w.a1 {
		w.t.Errorf("the last trip's result %+v", last)
	}
	for acct, want := range map[string]points.Balance{w.a1: {Total: 0, Debt: 10}, w.a2: {Total: 0, Debt: 0}} {
		if got := w.balance(acct); got.Total != want.Total || got.Debt != want.Debt {
			t := w.t
			t.Errorf("%s after every trip: %+v, want %d held, %d owed", acct, got, want.Total, want.Debt)
		}
	}
	// Every point of the grant is reversed: its own reversal has nothing left.
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: day.Claim, Reason: "refund", ItemID: w.id("rvday")})
	w.wantReversal("the grant after all its trips", rr.Reversal, 0, 0, 0, 0)
	if rr.DebtNow != 10 {
		w.t.Errorf("debt after the grant's reversal %d", rr.DebtNow)
	}
	// 30 issued: 10 donated, 20 reversed.
	if x := w.issuerTotals(a); x.Issued != 30 || x.Donated != 10 || x.Reversed != 20 || x.Held != 0 || !x.Balanced() {
		w.t.Errorf("totals %+v", x)
	}

	// Another grant reversed whole after one of its trips: the grant takes
	// what the trip left, and then its other trip cannot be reversed.
	day2 := w.grant("rday2", w.a3, 9, "s1", "s2")
	w.issue(a, day2)
	w.wantReversal("a trip of the second grant", w.reverseTrip("s1", 4, "rs1").Reversal, 4, 0, 0, 1)
	rr = submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: day2.Claim, Reason: "chargeback", ItemID: w.id("rsday")})
	w.wantReversal("the second grant", rr.Reversal, 5, 0, 0, 1)
	wantErr(w.t, w.try(a, "Reverse", points.ReverseArgs{Claim: w.trip("s2"), Reason: "refund", ItemID: w.id("rs2"), Points: share(0)}),
		apperr.Conflict, "grant_reversed", "a trip of a reversed grant")
	if b := w.balance(w.a3); b.Total != 0 || b.Debt != 0 {
		w.t.Errorf("a3 %+v", b)
	}
	// Reversed trips stay taken.
	if rr := w.issue(a, w.grant("again", w.a3, 1, "r1")).Results[0]; rr.Status != points.ItemRejected || rr.Reason != "sub_claim_taken" {
		w.t.Errorf("re-claiming a reversed trip %+v", rr)
	}
}

// testSubClaimReversalExpiry: expired points of a grant are neither clawed
// nor owed, and are counted once over the grant's trips and its own
// reversal; a trip's reversal finds the grant's lot after ExtendLots moved
// it.
func testSubClaimReversalExpiry(w *world) {
	a := w.o.IssuerA
	short := time.Now().UTC().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	day := w.grant("eday", w.a3, 10, "e1", "e2", "e3")
	day.ExpiresAt = short
	moved := w.grant("mday", w.a4, 7, "m1", "m2")
	res := w.issue(a, day, moved)
	// 6 of the 10 are donated; the other 4 expire.
	w.submit(a, "Donate", w.donate(w.a3, 6, "e-donate"))
	ext := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{
		{LotKey: res.Results[1].LotKey, NewExpiresAt: moved.ExpiresAt.Add(24 * time.Hour), Reason: "no_reminder"}}})
	if ext.Extended != 1 {
		w.t.Fatalf("extension %+v", ext)
	}
	time.Sleep(time.Until(short) + 300*time.Millisecond)

	// The first trip's 3: expired, nothing clawed or owed.
	w.wantReversal("a trip of expired points", w.reverseTrip("e1", 3, "re1").Reversal, 0, 3, 0, 1)
	// The second's 3: the 1 expired point left, then 2 donated: debt.
	w.wantReversal("a trip past the expired points", w.reverseTrip("e2", 3, "re2").Reversal, 0, 1, 2, 1)
	// The grant's remaining 4 were donated: debt, no expired point counted twice.
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: day.Claim, Reason: "refund", ItemID: w.id("reday")})
	w.wantReversal("the grant of expired points", rr.Reversal, 0, 0, 4, 1)
	if rr.DebtNow != 6 {
		w.t.Errorf("debt %d, want the 6 donated points", rr.DebtNow)
	}
	if x := w.issuerTotals(a); x.Expired != 4 || x.Donated != 6 || !x.Balanced() {
		w.t.Errorf("totals %+v", x)
	}

	// The moved lot is found through the grant's claim.
	w.wantReversal("a trip of a moved lot", w.reverseTrip("m1", 5, "rm1").Reversal, 5, 0, 0, 1)
	for _, l := range w.lots(w.a4) {
		if l.Key != ext.Results[0].NewLotKey || l.Remaining != 2 || l.Reversed != 5 {
			w.t.Errorf("the moved lot after its trip's reversal %+v", l.Lot)
		}
	}
}

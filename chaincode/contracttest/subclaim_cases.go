package contracttest

// Sub-claims: a daily transit grant is one item (one lot) whose trips are
// claimed with it, each trip's claim unique network-wide.

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// trip is the claim of one of the test's trips.
func (w *world) trip(name string) string { return hex64("trip" + w.prefix + name) }

// grant is a daily grant of pts points to account with the given trips.
func (w *world) grant(name, account string, pts int64, trips ...string) points.IssueItem {
	it := w.item(name, account, pts, 10*pts, days(30))
	for _, tr := range trips {
		it.SubClaims = append(it.SubClaims, w.trip(tr))
	}
	return it
}

// claimMissing checks that claims are not recorded.
func (w *world) claimMissing(what string, claims ...string) {
	w.t.Helper()
	for _, c := range claims {
		_, err := w.evalErr(w.o.Auditor, "GetClaim", points.ClaimArgs{Claim: c})
		wantErr(w.t, err, apperr.NotFound, "claim_not_found", what)
	}
}

// testSubClaims: a grant's sub-claims are recorded with it, pointing to its
// one lot, each with a claim_recorded change; a retry of the grant is
// already_issued; another grant (of any issuer) reusing a trip, or naming an
// existing grant's claim as a trip, is rejected with sub_claim_taken and the
// taken trips listed, writing nothing; a trip is not a grant's claim;
// reversal goes by the grant's claim and leaves its trips taken.
func testSubClaims(w *world) {
	a, b := w.o.IssuerA, w.o.IssuerB
	day1 := w.grant("day1", w.a1, 12, "t1", "t2", "t3")
	tx := w.submit(a, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{day1}})
	var res points.IssueBatchResult
	if err := json.Unmarshal(tx.Payload, &res); err != nil {
		w.t.Fatal(err)
	}
	r := res.Results[0]
	if res.Issued != 1 || r.Status != points.ItemIssued || r.LotID == "" || len(r.TakenSubClaims) != 0 {
		w.t.Fatalf("grant %+v", res)
	}
	if b := w.balance(w.a1); b.Total != 12 || b.Lots != 1 {
		w.t.Errorf("one lot for the day: %+v", b)
	}
	parent := eval[points.Claim](w, a, "GetClaim", points.ClaimArgs{Claim: day1.Claim})
	if parent.Parent != "" || parent.Points != 12 || parent.LotID != r.LotID {
		w.t.Errorf("grant claim %+v", parent)
	}
	for _, sc := range day1.SubClaims {
		for _, caller := range []string{a, w.o.Auditor, w.o.Regulator} {
			got := eval[points.Claim](w, caller, "GetClaim", points.ClaimArgs{Claim: sc})
			want := points.Claim{Claim: sc, Issuer: a, ItemID: day1.ItemID, Account: w.a1, LotKey: r.LotKey, LotID: r.LotID,
				IssuedAt: parent.IssuedAt, TxID: tx.TxID, Parent: day1.Claim}
			if diff := cmp.Diff(want, got); diff != "" {
				w.t.Errorf("sub-claim read by %s mismatch (-want +got):\n%s", caller, diff)
			}
		}
	}
	_, err := w.evalErr(b, "GetClaim", points.ClaimArgs{Claim: day1.SubClaims[0]})
	wantErr(w.t, err, apperr.Forbidden, "not_own_data", "another issuer reading a sub-claim")

	// The event: the grant's claim, then each trip's, all naming the lot.
	ev := decodeEvent(w.t, w.committedTxs(tx.TxID)[tx.TxID])
	if diff := cmp.Diff([]string{"lot_created:issue", "claim_recorded", "claim_recorded", "claim_recorded", "claim_recorded", "item_result"}, changeTypes(ev)); diff != "" {
		w.t.Fatalf("grant changes mismatch (-want +got):\n%s", diff)
	}
	for i, sc := range append([]string{day1.Claim}, day1.SubClaims...) {
		c := ev.Changes[1+i].Claim
		wantParent := day1.Claim
		if i == 0 {
			wantParent = ""
		}
		if c == nil || c.Claim != sc || c.Parent != wantParent || c.LotKey != r.LotKey || c.LotID != r.LotID || c.ItemID != day1.ItemID || c.Account != w.a1 {
			w.t.Errorf("claim_recorded %d: %+v, want claim %s with parent %q", i, c, sc, wantParent)
		}
	}

	// A retry of the grant is decided by its claim: already_issued.
	if rr := w.issue(a, day1).Results[0]; rr.Status != points.ItemAlreadyIssued || rr.LotID != r.LotID || len(rr.TakenSubClaims) != 0 {
		w.t.Errorf("retry of the grant %+v", rr)
	}

	// Another grant reusing a trip is rejected, names the trip and writes
	// nothing; without it (new item id and claim) it issues.
	day2 := w.grant("day2", w.a1, 5, "t4", "t2", "t5")
	rr := w.issue(a, day2).Results[0]
	if rr.Status != points.ItemRejected || rr.Reason != "sub_claim_taken" || rr.LotID != "" {
		w.t.Errorf("grant reusing a trip %+v", rr)
	}
	if diff := cmp.Diff([]string{w.trip("t2")}, rr.TakenSubClaims); diff != "" {
		w.t.Errorf("taken sub-claims mismatch (-want +got):\n%s", diff)
	}
	w.claimMissing("a claim of the rejected grant", day2.Claim, w.trip("t4"), w.trip("t5"))
	day2b := w.grant("day2b", w.a1, 5, "t4", "t5")
	if rr := w.issue(a, day2b).Results[0]; rr.Status != points.ItemIssued {
		w.t.Errorf("the grant resubmitted without the taken trip %+v", rr)
	}

	// Trips are unique network-wide: issuer B cannot claim them either.
	theirs := w.grant("theirs", w.b1, 3, "t1", "t3", "t6")
	if rr := w.issue(b, theirs).Results[0]; rr.Status != points.ItemRejected || rr.Reason != "sub_claim_taken" ||
		!cmp.Equal([]string{w.trip("t1"), w.trip("t3")}, rr.TakenSubClaims) {
		w.t.Errorf("issuer B reusing A's trips %+v", rr)
	}
	// An existing grant's claim cannot be a trip of another grant.
	day3 := w.grant("day3", w.a1, 4, "t7")
	day3.SubClaims = append(day3.SubClaims, day1.Claim)
	if rr := w.issue(a, day3).Results[0]; rr.Status != points.ItemRejected || rr.Reason != "sub_claim_taken" ||
		!cmp.Equal([]string{day1.Claim}, rr.TakenSubClaims) {
		w.t.Errorf("a grant's claim as a trip %+v", rr)
	}
	// A trip is not a grant's claim: an item claiming it is claimed
	// elsewhere, even under the grant's own item id.
	for _, name := range []string{"trip-as-claim", "day1"} {
		it := w.item(name, w.a1, 1, 1, days(30))
		it.Claim = w.trip("t3")
		if rr := w.issue(a, it).Results[0]; rr.Status != points.ItemClaimedElsewhere {
			w.t.Errorf("item %s claiming a trip: %+v", name, rr)
		}
	}
	w.claimMissing("a claim of a rejected grant", day3.Claim, w.trip("t7"), theirs.Claim, w.trip("t6"))

	// Reversal goes by the grant's claim; the trips stay taken.
	wantErr(w.t, w.try(a, "Reverse", points.ReverseArgs{Claim: w.trip("t1"), Reason: "refund", ItemID: w.id("rev-trip")}), apperr.Invalid, "reverse_sub_claim", "reversing a trip")
	wantErr(w.t, w.try(b, "Reverse", points.ReverseArgs{Claim: w.trip("t1"), Reason: "refund", ItemID: w.id("rev-b")}), apperr.Forbidden, "not_claim_owner", "another issuer reversing a trip")
	rev := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: day1.Claim, Reason: "refund", ItemID: w.id("rev1")})
	if rev.Reversal.Clawed != 12 || rev.Reversal.Debt != 0 {
		w.t.Errorf("reversal of the grant %+v", rev)
	}
	if c := eval[points.Claim](w, a, "GetClaim", points.ClaimArgs{Claim: w.trip("t2")}); c.Reversal != nil || c.Parent != day1.Claim {
		w.t.Errorf("a trip of the reversed grant %+v", c)
	}
	again := w.grant("day1-again", w.a1, 12, "t1")
	if rr := w.issue(a, again).Results[0]; rr.Status != points.ItemRejected || rr.Reason != "sub_claim_taken" {
		w.t.Errorf("re-claiming a trip of a reversed grant %+v", rr)
	}
	if x := w.issuerTotals(a); x.Issued != 17 || x.Reversed != 12 || x.Held != 5 {
		w.t.Errorf("totals %+v", x)
	}
	if x := w.issuerTotals(b); x.Issued != 0 {
		w.t.Errorf("issuer B's totals %+v", x)
	}
}

// testSubClaimBatches: within one batch the overlay sees the sub-claims of
// items issued before (the stub has no read-your-writes), but not those of
// items rejected; sub-claims are checked statically (format, duplicates,
// the item's own claim, at most points.MaxSubClaims per item) and a batch
// carries at most points.MaxBatchSubClaims.
func testSubClaimBatches(w *world) {
	a := w.o.IssuerA
	first := w.grant("first", w.a1, 10, "s1", "s2")
	second := w.grant("second", w.a1, 20, "s3", "s2", "s4") // shares s2 with first
	third := w.grant("third", w.a1, 30, "s5")               // names first's claim as a trip
	third.SubClaims = append(third.SubClaims, first.Claim)
	bad := w.grant("bad", w.a1, 0, "s6")              // rejected (points): s6 stays free
	fourth := w.grant("fourth", w.a1, 40, "s6", "s3") // s3 of the rejected second: free
	dup := w.grant("dup", w.a1, 1, "s7", "s8", "s7")
	own := w.grant("own", w.a1, 1, "s9")
	own.SubClaims = append(own.SubClaims, own.Claim)
	upper := w.grant("upper", w.a1, 1)
	upper.SubClaims = []string{strings.ToUpper(w.trip("u"))}
	short := w.grant("short", w.a1, 1)
	short.SubClaims = []string{"abc"}
	many := w.grant("many", w.a1, 1)
	most := w.grant("most", w.a1, 2)
	for i := range points.MaxSubClaims + 1 {
		many.SubClaims = append(many.SubClaims, w.trip(fmt.Sprint("many", i)))
		if i < points.MaxSubClaims {
			most.SubClaims = append(most.SubClaims, w.trip(fmt.Sprint("most", i)))
		}
	}
	items := []points.IssueItem{first, second, third, bad, fourth, dup, own, upper, short, many, most}
	res := w.issue(a, items...)
	type outcome struct {
		Status, Reason string
		Taken          []string
	}
	var got []outcome
	for _, r := range res.Results {
		got = append(got, outcome{r.Status, r.Reason, r.TakenSubClaims})
	}
	want := []outcome{
		{points.ItemIssued, "", nil},
		{points.ItemRejected, "sub_claim_taken", []string{w.trip("s2")}},
		{points.ItemRejected, "sub_claim_taken", []string{first.Claim}},
		{points.ItemRejected, "invalid_points", nil},
		{points.ItemIssued, "", nil},
		{points.ItemRejected, "duplicate_sub_claim", nil},
		{points.ItemRejected, "duplicate_sub_claim", nil},
		{points.ItemRejected, "invalid_sub_claim", nil},
		{points.ItemRejected, "invalid_sub_claim", nil},
		{points.ItemRejected, "too_many_sub_claims", nil},
		{points.ItemIssued, "", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		w.t.Fatalf("outcomes mismatch (-want +got):\n%s", diff)
	}
	if res.Issued != 3 || res.Rejected != 8 {
		w.t.Errorf("counts %+v", res)
	}
	w.claimMissing("a claim of a rejected item", second.Claim, w.trip("s4"), third.Claim, w.trip("s5"), w.trip("s7"), w.trip("many0"))
	for _, tc := range []struct {
		trip   string
		parent points.IssueItem
	}{{"s1", first}, {"s2", first}, {"s6", fourth}, {"s3", fourth}, {"most63", most}} {
		if c := eval[points.Claim](w, w.o.Auditor, "GetClaim", points.ClaimArgs{Claim: w.trip(tc.trip)}); c.Parent != tc.parent.Claim || c.ItemID != tc.parent.ItemID {
			w.t.Errorf("trip %s: %+v, want it under %s", tc.trip, c, tc.parent.ItemID)
		}
	}
	if b := w.balance(w.a1); b.Total != 10+40+2 || b.Lots != 3 {
		w.t.Errorf("balance %+v", b)
	}

	// The same batch again: the issued grants are already_issued, the rest
	// as before (second is still taken: s2 is first's).
	again := w.issue(a, items...)
	for i, r := range again.Results {
		wantStatus := want[i].Status
		if wantStatus == points.ItemIssued {
			wantStatus = points.ItemAlreadyIssued
		}
		if r.Status != wantStatus || r.Reason != want[i].Reason {
			w.t.Errorf("retried item %d: %+v, want %s/%s", i, r, wantStatus, want[i].Reason)
		}
	}

	// More sub-claims in one batch than points.MaxBatchSubClaims: the whole
	// batch is refused and nothing changes.
	before := w.fingerprint()
	var big []points.IssueItem
	for n := 0; n <= points.MaxBatchSubClaims; n += points.MaxSubClaims {
		it := w.grant(fmt.Sprint("big", n), w.a1, 1)
		for j := range points.MaxSubClaims {
			it.SubClaims = append(it.SubClaims, w.trip(fmt.Sprint("big", n+j)))
		}
		big = append(big, it)
	}
	wantErr(w.t, w.try(a, "IssueBatch", points.IssueBatchArgs{Items: big}), apperr.TooLarge, "batch_too_large", "a batch beyond the sub-claim bound")
	w.unchanged(before, "a batch beyond the sub-claim bound")
}

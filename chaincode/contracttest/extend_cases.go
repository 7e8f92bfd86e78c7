package contracttest

import (
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/chaincode/points"
)

// testGraceExtension: ExtendLots moves a lot's expiry (and key) without
// moving a point, once, within the profile's graceDays and maxValidityDays,
// for the lot's issuer only, and only before the lot expires; the moved lot
// is then spent and reversed like any other.
func testGraceExtension(w *world) {
	a, b := w.o.IssuerA, w.o.IssuerB
	old := days(5)
	short := time.Now().UTC().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	r := w.issue(a, w.item("g1", w.a1, 10, 100, old), w.item("gmax", w.a1, 3, 0, days(3649)), w.item("gshort", w.a1, 2, 0, short))
	key, maxKey, shortKey := r.Results[0].LotKey, r.Results[1].LotKey, r.Results[2].LotKey
	totals, bal := w.issuerTotals(a), w.balance(w.a1)

	week := 7 * 24 * time.Hour
	newExp := old.Add(week)
	res := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{
		{LotKey: key, NewExpiresAt: old.Add(11 * 24 * time.Hour), Reason: "reminder_undelivered"}, // grace is 10 days
		{LotKey: key, NewExpiresAt: old.Add(-time.Hour), Reason: "reminder_undelivered"},          // never shortens
		{LotKey: key, NewExpiresAt: newExp, Reason: "reminder_undelivered", NoticeRef: "n-1"},
		{LotKey: key, NewExpiresAt: newExp.Add(time.Hour), Reason: "reminder_undelivered"}, // moved away in this batch
		{LotKey: maxKey, NewExpiresAt: days(3651), Reason: "no_reminder"},
		{LotKey: "lot/x", NewExpiresAt: newExp, Reason: "no_reminder"},
	}})
	var reasons []string
	for _, it := range res.Results {
		reasons = append(reasons, it.Status+":"+it.Reason)
	}
	want := []string{"rejected:exceeds_grace", "rejected:not_later", "extended:", "rejected:lot_not_found", "rejected:validity_exceeds_profile", "rejected:invalid_lot_key"}
	if diff := cmp.Diff(want, reasons); diff != "" || res.Extended != 1 || res.Rejected != 5 {
		w.t.Fatalf("ExtendLots results mismatch (-want +got):\n%s\n%+v", diff, res)
	}
	newKey := res.Results[2].NewLotKey

	// No point moved: balance and conservation are as before.
	if diff := cmp.Diff(totals, w.issuerTotals(a)); diff != "" {
		w.t.Errorf("the extension changed conservation (-before +after):\n%s", diff)
	}
	if got := w.balance(w.a1); got.Total != bal.Total {
		w.t.Errorf("balance %d after the extension, %d before", got.Total, bal.Total)
	}
	var moved *points.Lot
	for _, l := range w.lots(w.a1) {
		switch l.Key {
		case key:
			w.t.Errorf("the old key still holds a lot: %+v", l.Lot)
		case newKey:
			moved = &l.Lot
		}
	}
	switch {
	case moved == nil:
		w.t.Fatalf("no lot under the new key %s", newKey)
	case !moved.ExpiresAt.Equal(newExp) || moved.ID != r.Results[0].LotID || moved.Remaining != 10 || moved.Extension == nil ||
		moved.Extension.FromKey != key || !moved.Extension.From.Equal(old) || moved.Extension.NoticeRef != "n-1":
		w.t.Errorf("extended lot %+v (extension %+v)", moved, moved.Extension)
	}
	if c := eval[points.Claim](w, a, "GetClaim", points.ClaimArgs{Claim: w.claim("g1")}); c.LotKey != newKey {
		w.t.Errorf("the claim names lot %s, want %s", c.LotKey, newKey)
	}

	// Once per lot; the issuer's own lots only.
	again := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{{LotKey: newKey, NewExpiresAt: newExp.Add(time.Hour), Reason: "again"}}})
	foreign := submitInto[points.ExtendLotsResult](w, b, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{{LotKey: maxKey, NewExpiresAt: days(3650), Reason: "foreign"}}})
	if again.Results[0].Reason != "already_extended" || foreign.Results[0].Reason != "not_lot_issuer" {
		w.t.Errorf("second extension %+v, foreign issuer %+v", again, foreign)
	}

	// An expired lot is not revived.
	time.Sleep(time.Until(short) + 300*time.Millisecond)
	late := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{{LotKey: shortKey, NewExpiresAt: short.Add(24 * time.Hour), Reason: "late"}}})
	if late.Results[0].Reason != "lot_expired" {
		w.t.Errorf("extension of an expired lot %+v", late)
	}

	// The moved lot is spent first (earliest expiry) and reversal finds it
	// through its claim: the donated points become debt, nothing is lost.
	w.submit(a, "Donate", w.donate(w.a1, 10, "g-donate"))
	for _, l := range w.lots(w.a1) {
		if l.Key == newKey && (l.Donated != 10 || l.Remaining != 0) {
			w.t.Errorf("donation from the extended lot %+v", l.Lot)
		}
	}
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: w.claim("g1"), Reason: "refund", ItemID: w.id("g-rev")})
	if rr.Reversal.Lots != 1 || rr.Reversal.Debt != 10 {
		w.t.Errorf("reversal of the extended lot's claim %+v", rr.Reversal)
	}
	testGraceExtensionProvenance(w)
}

// testGraceExtensionProvenance: a transfer's source and recipient lots both
// move in one batch (the second sees the first's writes), and a reversal
// still walks from the claim to both.
func testGraceExtensionProvenance(w *world) {
	a := w.o.IssuerA
	exp := days(6)
	src := w.issue(a, w.item("gt", w.a2, 6, 60, exp)).Results[0].LotKey
	w.family(w.id("gfam"), w.a2, w.a3)
	tr := submitInto[points.TransferResult](w, a, "Transfer", points.TransferArgs{From: w.a2, To: w.a3, Points: 4, RequestHash: hex64("gt-transfer")})
	later := exp.Add(24 * time.Hour)
	res := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{
		{LotKey: src, NewExpiresAt: later, Reason: "no_reminder"},
		{LotKey: tr.Lots[0], NewExpiresAt: later, Reason: "no_reminder"},
	}})
	if res.Extended != 2 {
		w.t.Fatalf("extending a transfer's lots %+v", res)
	}
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: w.claim("gt"), Reason: "refund", ItemID: w.id("gt-rev")})
	if rr.Reversal.Lots != 2 || rr.Reversal.Clawed != 6 || rr.Reversal.Debt != 0 {
		w.t.Errorf("reversal across moved lots %+v", rr.Reversal)
	}
	for _, l := range w.lots(w.a3) {
		if l.Key == res.Results[1].NewLotKey && l.SourceLot != res.Results[0].NewLotKey {
			w.t.Errorf("the moved child names source %s, want %s", l.SourceLot, res.Results[0].NewLotKey)
		}
	}
}

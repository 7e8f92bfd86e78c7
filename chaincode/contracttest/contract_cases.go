package contracttest

// The contract's own cases that the tests above did not cover yet, moved
// here from chaincode/points (where they ran on an in-memory stub) so that
// every backend runs them: item fields rejected before any read, family
// rules and the family event, spends across several range reads and their
// events, own-data views, InitLedger on an empty ledger, and a profile
// taking over from the one in force.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// committedTxs reads the ledger from its start until every transaction in
// ids has been delivered, and returns them by transaction id.
func (w *world) committedTxs(ids ...string) map[string]issuer.CommittedTx {
	w.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]issuer.CommittedTx{}
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := w.l.Subscribe(c, issuer.Checkpoint{}, func(tx issuer.CommittedTx) error {
		if want[tx.TxID] {
			got[tx.TxID] = tx
			if len(got) == len(want) {
				return errStop
			}
		}
		return nil
	})
	if err != errStop {
		w.t.Fatalf("Subscribe: %v (%d of %d transactions delivered)", err, len(got), len(want))
	}
	return got
}

// testItemFieldRejections: an item's own fields are checked before anything
// is read; a bad one is rejected alone, the rest of the batch issues.
func testItemFieldRejections(w *world) {
	a := w.o.IssuerA
	exp := days(30)
	mod := func(name string, f func(*points.IssueItem)) points.IssueItem {
		it := w.item(name, w.a1, 10, 10, exp)
		f(&it)
		return it
	}
	cases := []struct {
		item   points.IssueItem
		reason string
	}{
		{mod("noid", func(i *points.IssueItem) { i.ItemID = "" }), "invalid_item_id"},
		{mod("slash", func(i *points.IssueItem) { i.Account = "bad/id" }), "invalid_account"},
		{mod("nocat", func(i *points.IssueItem) { i.Category = "" }), "invalid_category"},
		{mod("milli", func(i *points.IssueItem) { i.ExpiresAt = exp.Add(time.Millisecond) }), "invalid_expires_at"},
		{mod("upper", func(i *points.IssueItem) { i.Claim = strings.ToUpper(i.Claim) }), "invalid_claim"},
	}
	items := []points.IssueItem{w.item("good", w.a1, 7, 7, exp)}
	for _, c := range cases {
		items = append(items, c.item)
	}
	res := w.issue(a, items...)
	if res.Issued != 1 || res.Rejected != len(cases) || res.Results[0].Status != points.ItemIssued {
		w.t.Fatalf("the good item alone issues: %+v", res)
	}
	for i, c := range cases {
		if r := res.Results[i+1]; r.Status != points.ItemRejected || r.Reason != c.reason || r.Index != i+1 {
			w.t.Errorf("item %q: %+v, want rejected/%s", c.item.ItemID, r, c.reason)
		}
	}
	if b := w.balance(w.a1); b.Total != 7 || b.Lots != 1 {
		w.t.Errorf("balance %+v, want the good item's 7 points", b)
	}
}

// testFamilyRules: family ids are unique, a withdrawn invitation cannot be
// accepted, the head cannot be removed, the family event says who left at
// whose request, a dissolved family's head may head a new one, and only
// consumer accounts take part.
func testFamilyRules(w *world) {
	a := w.o.IssuerA
	fam, rh := w.id("fam"), hex64("family rules")
	w.submit(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam, Head: w.a1, RequestHash: rh})
	wantErr(w.t, w.try(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam, Head: w.a2, RequestHash: rh}), apperr.Conflict, "family_exists", "a second family under the same id")
	for _, acct := range []string{w.a2, w.a3} {
		w.submit(a, "InviteMember", points.FamilyMemberArgs{FamilyID: fam, Account: acct, RequestHash: rh})
	}
	w.submit(a, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fam, Account: w.a2, RequestHash: rh})
	// Removing an invitee withdraws the invitation.
	w.submit(a, "RemoveMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.a3, RequestHash: rh})
	wantErr(w.t, w.try(a, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fam, Account: w.a3, RequestHash: rh}), apperr.Conflict, "not_invited", "accepting a withdrawn invitation")
	wantErr(w.t, w.try(a, "RemoveMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.a1, RequestHash: rh}), apperr.Conflict, "cannot_remove_head", "removing the head")

	left := w.submit(a, "LeaveFamily", points.FamilyMemberArgs{FamilyID: fam, Account: w.a2, RequestHash: hex64("leave")})
	var fr points.FamilyResult
	if err := json.Unmarshal(left.Payload, &fr); err != nil {
		w.t.Fatal(err)
	}
	if f := fr.Family; f.Head != w.a1 || len(f.Members) != 0 || len(f.Invited) != 0 || f.Status != points.FamilyActive {
		w.t.Errorf("family after a2 left %+v", f)
	}
	tx := w.committedTxs(left.TxID)[left.TxID]
	// The event's fields come in a fixed order.
	if prefix := `{"v":1,"txId":"` + left.TxID + `","function":"LeaveFamily","time":"`; !strings.HasPrefix(string(tx.Event), prefix) {
		w.t.Errorf("event payload %.120s, want it to start %s", tx.Event, prefix)
	}
	ev := decodeEvent(w.t, tx)
	if len(ev.Changes) != 1 {
		w.t.Fatalf("LeaveFamily changes %v", changeTypes(ev))
	}
	if c := ev.Changes[0]; c.Type != points.ChangeFamilyChanged || c.Action != "left" || c.Subject != w.a2 || c.RequestHash != hex64("leave") ||
		c.Family == nil || c.Family.ID != fam || len(c.Family.Members) != 0 {
		w.t.Errorf("family change %+v (family %+v)", c, c.Family)
	}

	// The head leaves last, dissolving the family, and may then head another.
	fr = submitInto[points.FamilyResult](w, a, "LeaveFamily", points.FamilyMemberArgs{FamilyID: fam, Account: w.a1, RequestHash: rh})
	if fr.Family.Status != points.FamilyDissolved {
		w.t.Errorf("family after the head left %+v", fr.Family)
	}
	fam2 := w.id("fam2")
	w.submit(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam2, Head: w.a1, RequestHash: rh})

	ent := w.id("ent")
	w.submit(a, "OpenAccount", points.OpenAccountArgs{AccountID: ent, Kind: points.KindEnterprise})
	wantErr(w.t, w.try(a, "InviteMember", points.FamilyMemberArgs{FamilyID: fam2, Account: ent, RequestHash: rh}), apperr.Conflict, "not_consumer_account", "inviting an enterprise account")
	wantErr(w.t, w.try(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: w.id("fam3"), Head: ent, RequestHash: rh}), apperr.Conflict, "not_consumer_account", "an enterprise account heading a family")
}

// spreadLots is more lots than three of the contract's range reads of a
// spend take (100 lots each).
const spreadLots = 3*100 + 7

// testSpendAcrossChunks: a donation taking one point from each of 302 lots
// reads them in several phantom-checked chunks, earliest expiry first; the
// issuance's event lists its changes item by item, the donation's one debit
// per lot, each with the consumer's request hash.
func testSpendAcrossChunks(w *world) {
	a := w.o.IssuerA
	now := time.Now().UTC()
	items := make([]points.IssueItem, spreadLots)
	for i := range items {
		items[i] = w.item(fmt.Sprint("s", i), w.a1, 1, 3, now.Add(time.Duration(i+1)*time.Hour))
	}
	rIssue := w.submit(a, "IssueBatch", points.IssueBatchArgs{Items: items})
	var res points.IssueBatchResult
	if err := json.Unmarshal(rIssue.Payload, &res); err != nil {
		w.t.Fatal(err)
	}
	if res.Issued != spreadLots {
		w.t.Fatalf("issued %d of %d", res.Issued, spreadLots)
	}
	const spend = spreadLots - 5
	rDonate := w.submit(a, "Donate", w.donate(w.a1, spend, "spread"))
	var r points.ReceiptResult
	if err := json.Unmarshal(rDonate.Payload, &r); err != nil {
		w.t.Fatal(err)
	}
	if r.Receipt.Points != spend || r.Receipt.Grams != 3*spend {
		w.t.Errorf("receipt %+v", r.Receipt)
	}
	if b := w.balance(w.a1); b.Total != 5 || b.Lots != 5 {
		w.t.Errorf("balance %+v, want 5 points in 5 lots", b)
	}
	wantErr(w.t, w.try(a, "Donate", w.donate(w.a1, 6, "more")), apperr.Conflict, "insufficient_points", "spending a point more than is left")

	txs := w.committedTxs(rIssue.TxID, rDonate.TxID)
	var want []string
	for range spreadLots {
		want = append(want, "lot_created:issue", "claim_recorded", "item_result")
	}
	if diff := cmp.Diff(want, changeTypes(decodeEvent(w.t, txs[rIssue.TxID]))); diff != "" {
		w.t.Errorf("issuance changes mismatch (-want +got):\n%s", diff)
	}
	ev := decodeEvent(w.t, txs[rDonate.TxID])
	want = want[:0]
	for range spend {
		want = append(want, "lot_debited:donate")
	}
	want = append(want, "receipt_issued")
	if diff := cmp.Diff(want, changeTypes(ev)); diff != "" {
		w.t.Fatalf("donation changes mismatch (-want +got):\n%s", diff)
	}
	for i, c := range ev.Changes {
		if c.RequestHash != hex64("spread") {
			w.t.Errorf("change %d (%s) request hash %q", i, c.Type, c.RequestHash)
		}
		if d := c.Debit; d != nil && (d.Points != 1 || d.Grams != 3 || d.Remaining != 0 || !d.ExpiresAt.Equal(items[i].ExpiresAt)) {
			w.t.Errorf("debit %d %+v, want all of the lot expiring at %s", i, d, items[i].ExpiresAt)
		}
	}
}

// testOwnViews: GetAnchors without an issuer is the caller's own; an issuer
// sees its own conservation, by default or named, never another's; overseers
// may narrow theirs to one issuer; members read the registry's projects.
func testOwnViews(w *world) {
	o := w.o
	w.issue(o.IssuerA, w.item("a", w.a1, 10, 10, days(30)))
	w.issue(o.IssuerB, w.item("b", w.b1, 20, 20, days(30)))
	for _, bank := range []string{o.IssuerA, o.IssuerB} {
		an := eval[points.Anchors](w, bank, "GetAnchors", points.IssuerArgs{})
		if an.Issuer != bank || an.InForce == nil || *an.InForce != (points.VersionRef{ID: profID, Version: vers}) {
			w.t.Errorf("own anchors of %s: issuer %s, in force %+v", bank, an.Issuer, an.InForce)
		}
		for _, id := range []string{ruleID, methID, profID} {
			if !slices.ContainsFunc(an.Versions, func(x points.Anchor) bool { return x.ID == id && x.Issuer == bank }) {
				w.t.Errorf("own anchors of %s lack %s: %+v", bank, id, an.Versions)
			}
		}
	}
	_, err := w.evalErr(o.IssuerA, "GetConservation", points.ConservationArgs{Issuer: o.IssuerB})
	wantErr(w.t, err, apperr.Forbidden, "not_own_data", "an issuer reading another's conservation")
	for _, args := range []points.ConservationArgs{{}, {Issuer: o.IssuerA}} {
		p := eval[points.ConservationPage](w, o.IssuerA, "GetConservation", args)
		if len(p.Issuers) != 1 || p.Issuers[0].Issuer != o.IssuerA || p.Total.Issued != 10 {
			w.t.Errorf("issuer A's conservation (%+v): %+v", args, p)
		}
	}
	p := eval[points.ConservationPage](w, o.Auditor, "GetConservation", points.ConservationArgs{Issuer: o.IssuerB})
	if len(p.Issuers) != 1 || p.Issuers[0].Issuer != o.IssuerB || p.Total.Issued != 20 {
		w.t.Errorf("the auditor's view of issuer B: %+v", p)
	}
	reg := eval[points.Registry](w, o.Charity, "GetRegistry", struct{}{})
	if !slices.ContainsFunc(reg.Projects, func(p points.Project) bool {
		return p.CharityID == w.charity && p.ID == w.project && p.Status == points.StatusActive
	}) {
		w.t.Errorf("registry projects %+v", reg.Projects)
	}
}

// testInitLedgerOnlyByTheRegulator runs on a second, empty ledger: nothing
// works before InitLedger, and only the MSP named regulator may call it,
// once.
func testInitLedgerOnlyByTheRegulator(w *world) {
	o := w.o
	l := w.newLedger(w.t)
	c, cancel := ctx()
	defer cancel()
	height := func() uint64 {
		h, err := l.Height(c)
		if err != nil {
			w.t.Fatalf("Height: %v", err)
		}
		return h
	}
	h0 := height()
	_, err := l.Evaluate(c, w.proposal(o.Regulator, "GetRegistry", struct{}{}))
	wantErr(w.t, err, apperr.Conflict, "not_initialized", "GetRegistry before InitLedger")
	_, err = l.Submit(c, w.proposal(o.IssuerA, "OpenAccount", points.OpenAccountArgs{AccountID: w.id("x"), Kind: points.KindConsumer}))
	wantErr(w.t, err, apperr.Conflict, "not_initialized", "OpenAccount before InitLedger")
	// Nobody can make another MSP the regulator by calling first.
	for _, caller := range []string{o.Stranger, o.IssuerA} {
		_, err = l.Submit(c, w.proposal(caller, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Regulator}))
		wantErr(w.t, err, apperr.Forbidden, "not_regulator", "InitLedger by "+caller)
	}
	if h := height(); h != h0 {
		w.t.Errorf("rejected calls moved the height from %d to %d", h0, h)
	}
	res, err := l.Submit(c, w.proposal(o.Regulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Regulator}))
	if err != nil {
		w.t.Fatalf("InitLedger by the regulator: %v", err)
	}
	var reg points.Regulator
	if err := json.Unmarshal(res.Payload, &reg); err != nil || reg.MSP != o.Regulator || reg.TxID != res.TxID {
		w.t.Errorf("InitLedger result %s (%v)", res.Payload, err)
	}
	_, err = l.Submit(c, w.proposal(o.Stranger, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Stranger}))
	wantErr(w.t, err, apperr.Conflict, "already_initialized", "InitLedger by a stranger naming itself, afterwards")
	out, err := l.Evaluate(c, w.proposal(o.Regulator, "GetRegistry", struct{}{}))
	if err != nil {
		w.t.Fatalf("GetRegistry: %v", err)
	}
	var r points.Registry
	if err := json.Unmarshal(out, &r); err != nil || r.Regulator.MSP != o.Regulator || len(r.Members) != 0 {
		w.t.Errorf("registry of a new ledger %s (%v)", out, err)
	}
}

// testProfileTakesOver: a profile giving consumers more needs no notice and
// takes over at once: items naming the superseded profile are refused, items
// under the new one issue, and its caps govern transfers. The transfer's
// month is the sender's month in the profile's time zone. Re-anchoring the
// profile is a no-op; other content under its version a conflict. (The
// notice a reducing profile needs is tested in testAnchors; that it takes
// effect only at the end of the notice, and a month turning in the profile's
// zone, need a chosen clock: chaincode/embedded's TestProfileNoticeAndMonthTurn.)
//
// It puts a new profile in force for issuer A for good: it needs its own
// ledger.
func testProfileTakesOver(w *world) {
	a := w.o.IssuerA
	fam := w.id("fam")
	w.issue(a, w.item("i1", w.a1, 3000, 3000, days(30)))
	w.family(fam, w.a1, w.a2)
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1200, RequestHash: hex64("t1")}), apperr.Invalid, "transfer_limit_exceeded", "a transfer beyond the suite profile's cap")

	more := suiteProfile
	more.TransferMaxPoints, more.TransferMaxPointsPerMonth = 2000, 3000
	p2 := points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: w.id("p2"), Version: "1", SHA256: hex64("p2" + w.prefix),
		EffectiveAt: time.Now().UTC().Truncate(time.Second), Profile: &more}
	if r := submitInto[points.AnchorResult](w, a, "AnchorVersion", p2); r.Status != "anchored" {
		w.t.Fatalf("anchoring a more generous profile %+v", r)
	}
	if r := submitInto[points.AnchorResult](w, a, "AnchorVersion", p2); r.Status != "already_anchored" {
		w.t.Errorf("anchoring it again %+v", r)
	}
	other := p2
	other.SHA256 = hex64("other")
	wantErr(w.t, w.try(a, "AnchorVersion", other), apperr.Conflict, "anchor_conflict", "the profile version with another hash")
	changed := more
	changed.PointValueFen = 3
	other = p2
	other.Profile = &changed
	wantErr(w.t, w.try(a, "AnchorVersion", other), apperr.Conflict, "anchor_conflict", "the profile version with other parameters")
	if an := eval[points.Anchors](w, a, "GetAnchors", points.IssuerArgs{}); an.InForce == nil || *an.InForce != (points.VersionRef{ID: p2.ID, Version: p2.Version}) {
		w.t.Errorf("profile in force %+v, want %s/%s", an.InForce, p2.ID, p2.Version)
	}

	old := w.item("old", w.a1, 1, 1, days(10))
	neu := w.item("new", w.a1, 1, 1, days(10))
	neu.ProfileVersion = points.VersionRef{ID: p2.ID, Version: p2.Version}
	res := w.issue(a, old, neu)
	if r := res.Results[0]; r.Status != points.ItemRejected || r.Reason != "profile_not_in_force" {
		w.t.Errorf("item under the superseded profile %+v", r)
	}
	if r := res.Results[1]; r.Status != points.ItemIssued {
		w.t.Errorf("item under the profile in force %+v", r)
	}

	tx := w.submit(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1200, RequestHash: hex64("t2")})
	var tr points.TransferResult
	if err := json.Unmarshal(tx.Payload, &tr); err != nil {
		w.t.Fatal(err)
	}
	zone, err := time.LoadLocation(more.Timezone)
	if err != nil {
		w.t.Fatal(err)
	}
	if month := tx.Timestamp.In(zone).Format("200601"); tr.Transfer.Points != 1200 || tr.Transfer.Month != month || tr.Transfer.MonthPoints != 1200 {
		w.t.Errorf("transfer %+v, want 1200 points in month %s", tr.Transfer, month)
	}
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 2001, RequestHash: hex64("t3")}), apperr.Invalid, "transfer_limit_exceeded", "a transfer beyond the new cap")
}

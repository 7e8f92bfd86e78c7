package contracttest

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

var tests = []testCase{
	{"Registry", testRegistry},
	{"Anchors", testAnchors},
	{"IssueAndQueries", testIssueAndQueries},
	{"ItemRejections", testItemRejections},
	{"ClaimPaysOnce", testClaimPaysOnce},
	{"BadArgumentsChangeNothing", testBadArguments},
	{"FamiliesAndTransfers", testFamiliesAndTransfers},
	{"DonationAndReceipt", testDonationAndReceipt},
	{"EarliestExpiryFirst", testEarliestExpiryFirst},
	{"ReverseAndDebt", testReverseAndDebt},
	{"ExpiryAndSweep", testExpiryAndSweep},
	{"ExpiryIndexEntries", testExpiryIndexEntries},
	{"MVCCConflict", testMVCC},
	{"PhantomConflict", testPhantom},
	{"QueriesOnlyEvaluated", testQueriesOnlyEvaluated},
	{"EventsAndSubscribe", testEvents},
	{"AuthorizationMatrix", testAuthorizationMatrix},
	{"Suspension", testSuspension},
	// contract_cases.go
	{"ItemFieldRejections", testItemFieldRejections},
	{"FamilyRules", testFamilyRules},
	{"SpendAcrossChunks", testSpendAcrossChunks},
	{"OwnViews", testOwnViews},
	{"InitLedgerOnlyByTheRegulator", testInitLedgerOnlyByTheRegulator},
	{"ProfileTakesOver", testProfileTakesOver},
	// subclaim_cases.go
	{"SubClaims", testSubClaims},
	{"SubClaimBatches", testSubClaimBatches},
	// subclaim_reverse_cases.go
	{"SubClaimReversal", testSubClaimReversal},
	{"SubClaimReversalExpiry", testSubClaimReversalExpiry},
	// extend_cases.go
	{"GraceExtension", testGraceExtension},
}

func testRegistry(w *world) {
	o := w.o
	wantErr(w.t, w.try(o.Regulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Regulator}), apperr.Conflict, "already_initialized", "InitLedger again")
	wantErr(w.t, w.try(o.Stranger, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Stranger}), apperr.Conflict, "already_initialized", "InitLedger by a stranger")
	for _, caller := range []string{o.Regulator, o.IssuerA, o.Auditor, o.Charity} {
		r := eval[points.Registry](w, caller, "GetRegistry", struct{}{})
		var msps []string
		for _, m := range r.Members {
			msps = append(msps, m.MSP)
		}
		for _, want := range []string{o.IssuerA, o.IssuerB, o.Auditor, o.Charity} {
			if !slices.Contains(msps, want) {
				w.t.Errorf("GetRegistry by %s lacks %s: %v", caller, want, msps)
			}
		}
		if r.Regulator.MSP != o.Regulator || !slices.ContainsFunc(r.Charities, func(c points.Charity) bool { return c.ID == w.charity && c.MSP == o.Charity }) {
			t := w.t
			t.Errorf("GetRegistry by %s: %+v", caller, r)
		}
	}
	wantErr(w.t, w.try(o.Regulator, "RegisterMember", points.RegisterMemberArgs{MSP: o.IssuerA, Role: points.RoleAuditor, Name: "A", Status: points.StatusActive}), apperr.Conflict, "role_change_forbidden", "role change")
	wantErr(w.t, w.try(o.Regulator, "RegisterMember", points.RegisterMemberArgs{MSP: w.id("x"), Role: "king", Name: "A", Status: points.StatusActive}), apperr.Invalid, "invalid_role", "bad role")
	wantErr(w.t, w.try(o.Regulator, "RegisterMember", points.RegisterMemberArgs{MSP: w.id("x"), Role: points.RoleIssuer, Name: "A", Status: points.StatusActive}), apperr.Invalid, "invalid_filing_number", "issuer without filing number")
	wantErr(w.t, w.try(o.Regulator, "RegisterMember", points.RegisterMemberArgs{MSP: o.Regulator, Role: points.RoleAuditor, Name: "R", Status: points.StatusActive}), apperr.Conflict, "msp_is_regulator", "regulator as member")
	wantErr(w.t, w.try(o.Regulator, "SetMemberStatus", points.SetMemberStatusArgs{MSP: w.id("nobody"), Status: points.StatusActive}), apperr.NotFound, "member_not_found", "unknown member")
	wantErr(w.t, w.try(o.Regulator, "RegisterCharity", points.RegisterCharityArgs{CharityID: w.id("c2"), Name: "C", MSP: o.IssuerA}), apperr.Conflict, "msp_not_charity", "charity MSP not a charity")
	wantErr(w.t, w.try(o.Regulator, "RegisterProject", points.RegisterProjectArgs{CharityID: w.id("none"), ProjectID: "p", Name: "P"}), apperr.NotFound, "charity_not_found", "project of unknown charity")
	// Updating a member keeps its role and registration time.
	m := submitInto[points.Member](w, o.Regulator, "RegisterMember", points.RegisterMemberArgs{MSP: o.IssuerB, Role: points.RoleIssuer, Name: "Bank B Ltd", FilingNumber: "F-B2", Status: points.StatusActive})
	if m.Name != "Bank B Ltd" || m.FilingNumber != "F-B2" || m.Role != points.RoleIssuer {
		w.t.Errorf("updated member %+v", m)
	}
}

func testAnchors(w *world) {
	a := w.o.IssuerA
	eff := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	args := points.AnchorVersionArgs{Kind: points.AnchorRule, ID: w.id("r"), Version: "2", SHA256: hex64("x"), EffectiveAt: eff}
	if r := submitInto[points.AnchorResult](w, a, "AnchorVersion", args); r.Status != "anchored" || r.Anchor.Issuer != a {
		w.t.Fatalf("anchor %+v", r)
	}
	if r := submitInto[points.AnchorResult](w, a, "AnchorVersion", args); r.Status != "already_anchored" {
		w.t.Errorf("re-anchor %+v", r)
	}
	bad := args
	bad.SHA256 = hex64("y")
	wantErr(w.t, w.try(a, "AnchorVersion", bad), apperr.Conflict, "anchor_conflict", "re-anchor with another hash")
	// Anchors are per issuer: B may anchor the same id and version.
	submitInto[points.AnchorResult](w, w.o.IssuerB, "AnchorVersion", bad)

	prof := points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: w.id("p"), Version: "1", SHA256: hex64("p"), EffectiveAt: days(1)}
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Invalid, "profile_required", "profile without parameters")
	withProfile := args
	withProfile.Version = "3"
	withProfile.Profile = &suiteProfile
	wantErr(w.t, w.try(a, "AnchorVersion", withProfile), apperr.Invalid, "profile_unexpected", "rule with profile parameters")
	badTZ := suiteProfile
	badTZ.Timezone = "Mars/Olympus"
	prof.Profile = &badTZ
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Invalid, "invalid_timezone", "unknown time zone")
	reduced := suiteProfile
	reduced.TransfersAllowed = false
	prof.Profile = &reduced
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Invalid, "insufficient_notice", "rights reduced at a day's notice")
	lower := suiteProfile
	lower.MaxValidityDays = 365
	prof.Profile, prof.EffectiveAt = &lower, days(29)
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Invalid, "insufficient_notice", "validity cut at 29 days' notice")
	// Shortening the notice period is itself a reduction: otherwise an
	// issuer could anchor "no notice" first and cut rights right after.
	noNotice := suiteProfile
	zero := int64(0)
	noNotice.NoticeDays = &zero
	prof.Profile = &noNotice
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Invalid, "insufficient_notice", "notice period shortened at 29 days' notice")
	prof.Profile, prof.EffectiveAt = &suiteProfile, anchorsEffective.Add(-time.Hour)
	wantErr(w.t, w.try(a, "AnchorVersion", prof), apperr.Conflict, "profile_out_of_order", "profile effective before the one in force")

	nb := points.AnchorNoticeBatchArgs{BatchID: w.id("n1"), Kind: "expiry_reminder", MerkleRoot: hex64("root"), Count: 12}
	if r := submitInto[points.NoticeResult](w, a, "AnchorNoticeBatch", nb); r.Status != "anchored" {
		w.t.Errorf("notice %+v", r)
	}
	if r := submitInto[points.NoticeResult](w, a, "AnchorNoticeBatch", nb); r.Status != "already_anchored" {
		w.t.Errorf("notice again %+v", r)
	}
	nb2 := nb
	nb2.MerkleRoot = hex64("other")
	wantErr(w.t, w.try(a, "AnchorNoticeBatch", nb2), apperr.Conflict, "anchor_conflict", "notice batch with another root")
	nb2.Count = 0
	wantErr(w.t, w.try(a, "AnchorNoticeBatch", nb2), apperr.Invalid, "invalid_count", "empty notice batch")

	got := eval[points.Anchors](w, w.o.Auditor, "GetAnchors", points.IssuerArgs{Issuer: a})
	if got.InForce == nil || *got.InForce != (points.VersionRef{ID: profID, Version: vers}) {
		w.t.Errorf("profile in force %+v", got.InForce)
	}
	if !slices.ContainsFunc(got.Versions, func(x points.Anchor) bool { return x.ID == w.id("r") && x.Version == "2" }) ||
		!slices.ContainsFunc(got.Notices, func(x points.NoticeBatch) bool { return x.BatchID == w.id("n1") && x.Count == 12 }) {
		w.t.Errorf("anchors %+v", got)
	}
}

func testIssueAndQueries(w *world) {
	a := w.o.IssuerA
	e1, e2 := days(200), days(10)
	res := w.issue(a, w.item("i1", w.a1, 100, 5000, e1), w.item("i2", w.a1, 30, 700, e2))
	if res.Issued != 2 || res.Results[0].Status != points.ItemIssued || res.Results[0].LotID == "" {
		w.t.Fatalf("issue %+v", res)
	}
	b := w.balance(w.a1)
	if b.Total != 130 || b.ExpiringSoon != 30 || b.Lots != 2 || b.Debt != 0 || b.NextExpiry == nil || !b.NextExpiry.Equal(e2) {
		w.t.Errorf("balance %+v", b)
	}
	lots := w.lots(w.a1)
	if len(lots) != 2 || !lots[0].ExpiresAt.Equal(e2) || !lots[1].ExpiresAt.Equal(e1) {
		w.t.Fatalf("lots not in expiry order: %+v", lots)
	}
	l := lots[1]
	want := points.Lot{
		Key: l.Key, ID: res.Results[0].LotID, Account: w.a1, Issuer: a, Amount: 100, Remaining: 100, Grams: 5000, GramsRemaining: 5000,
		IssuedAt: l.IssuedAt, ExpiresAt: e1, Category: "transit",
		RuleVersion: points.VersionRef{ID: ruleID, Version: vers}, MethodologyVersion: points.VersionRef{ID: methID, Version: vers},
		ProfileVersion: points.VersionRef{ID: profID, Version: vers}, QuantificationHash: hex64("q" + w.prefix + "i1"),
		Claim: w.claim("i1"), ItemID: w.id("i1"), TxID: l.TxID, Children: []string{},
	}
	if diff := cmp.Diff(want, l.Lot); diff != "" {
		w.t.Errorf("lot mismatch (-want +got):\n%s", diff)
	}
	if l.Held != 100 || l.Due {
		w.t.Errorf("lot view held %d due %v", l.Held, l.Due)
	}
	c := eval[points.Claim](w, a, "GetClaim", points.ClaimArgs{Claim: w.claim("i1")})
	if c.Issuer != a || c.ItemID != w.id("i1") || c.LotKey != l.Key || c.Points != 100 || c.Reversal != nil {
		w.t.Errorf("claim %+v", c)
	}
	_, err := w.evalErr(a, "GetClaim", points.ClaimArgs{Claim: hex64("nothing")})
	wantErr(w.t, err, apperr.NotFound, "claim_not_found", "unknown claim")
	h := eval[points.HistoryPage](w, a, "GetAccountHistory", points.PageArgs{Account: w.a1})
	keys := map[string]bool{}
	for _, e := range h.Entries {
		keys[e.Key] = true
	}
	if !keys[lots[0].Key] || !keys[lots[1].Key] || len(h.Entries) < 3 {
		w.t.Errorf("history %+v", h)
	}
	x := w.issuerTotals(a)
	if x.Issued != 130 || x.Held != 130 || x.Lots != 2 {
		w.t.Errorf("totals %+v", x)
	}
	// An issuer's own conservation view.
	own := eval[points.ConservationPage](w, a, "GetConservation", points.ConservationArgs{})
	if len(own.Issuers) != 1 || own.Issuers[0].Issuer != a || own.Total.Issued != 130 {
		w.t.Errorf("own conservation %+v", own)
	}
}

func testItemRejections(w *world) {
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
		{mod("zero", func(i *points.IssueItem) { i.Points = 0 }), "invalid_points"},
		{mod("neg", func(i *points.IssueItem) { i.Points = -1 }), "invalid_points"},
		{mod("grams", func(i *points.IssueItem) { i.Grams = -1 }), "invalid_grams"},
		{mod("unknown", func(i *points.IssueItem) { i.Account = w.id("nobody") }), "account_not_found"},
		{mod("theirs", func(i *points.IssueItem) { i.Account = w.b1 }), "not_account_owner"},
		{mod("past", func(i *points.IssueItem) { i.ExpiresAt = days(-1) }), "expiry_not_in_future"},
		{mod("long", func(i *points.IssueItem) { i.ExpiresAt = days(3652) }), "validity_exceeds_profile"},
		{mod("rule", func(i *points.IssueItem) { i.RuleVersion.Version = "404" }), "rule_not_anchored"},
		{mod("meth", func(i *points.IssueItem) { i.MethodologyVersion.ID = "nope" }), "methodology_not_anchored"},
		{mod("prof", func(i *points.IssueItem) { i.ProfileVersion.Version = "404" }), "profile_not_anchored"},
		{mod("claim", func(i *points.IssueItem) { i.Claim = "abc" }), "invalid_claim"},
		{mod("qh", func(i *points.IssueItem) { i.QuantificationHash = strings.ToUpper(hex64("q")) }), "invalid_quantification_hash"},
	}
	// A rule anchored to take effect tomorrow is not usable yet.
	w.anchor(a, points.AnchorRule, w.id("future-rule"), "1", days(1), nil)
	cases = append(cases, struct {
		item   points.IssueItem
		reason string
	}{mod("notyet", func(i *points.IssueItem) { i.RuleVersion = points.VersionRef{ID: w.id("future-rule"), Version: "1"} }), "rule_not_effective"})

	before := w.balance(w.a1)
	items := []points.IssueItem{w.item("good", w.a1, 7, 70, exp)}
	for _, c := range cases {
		items = append(items, c.item)
	}
	res := w.issue(a, items...)
	if res.Issued != 1 || res.Rejected != len(cases) || res.Results[0].Status != points.ItemIssued {
		w.t.Fatalf("the good item alone issues: %+v", res)
	}
	for i, c := range cases {
		if r := res.Results[i+1]; r.Status != points.ItemRejected || r.Reason != c.reason || r.Index != i+1 {
			w.t.Errorf("item %s: %+v, want rejected/%s", c.item.ItemID, r, c.reason)
		}
	}
	if got := w.balance(w.a1).Total; got != before.Total+7 {
		w.t.Errorf("balance %d, want %d", got, before.Total+7)
	}
	// A rejected item's claim is not consumed: fixed, it issues.
	fixed := mod("zero", func(*points.IssueItem) {})
	if r := w.issue(a, fixed); r.Issued != 1 {
		w.t.Errorf("fixed item %+v", r)
	}
}

func testClaimPaysOnce(w *world) {
	a, b := w.o.IssuerA, w.o.IssuerB
	exp := days(30)
	it := w.item("c1", w.a1, 10, 100, exp)
	again := it
	other := it
	other.ItemID = w.id("c1-other")
	// Twice in ONE batch: the stub does not let the transaction read its
	// own writes, the contract's overlay must catch it.
	res := w.issue(a, it, again, other)
	got := []string{res.Results[0].Status, res.Results[1].Status, res.Results[2].Status}
	if diff := cmp.Diff([]string{points.ItemIssued, points.ItemAlreadyIssued, points.ItemClaimedElsewhere}, got); diff != "" {
		w.t.Fatalf("statuses mismatch (-want +got):\n%s", diff)
	}
	if res.Results[1].LotID != res.Results[0].LotID {
		w.t.Errorf("already_issued names the lot: %+v", res.Results)
	}
	// Across batches: a retry, another item, another issuer.
	res = w.issue(a, it, other)
	if res.Results[0].Status != points.ItemAlreadyIssued || res.Results[1].Status != points.ItemClaimedElsewhere {
		w.t.Errorf("second batch %+v", res.Results)
	}
	theirs := it
	theirs.Account = w.b1
	if res := w.issue(b, theirs); res.Results[0].Status != points.ItemClaimedElsewhere {
		w.t.Errorf("other issuer %+v", res.Results)
	}
	if got := w.balance(w.a1).Total; got != 10 {
		w.t.Errorf("a claim paid %d points, want 10", got)
	}
	if x := w.issuerTotals(b); x.Issued != 0 {
		w.t.Errorf("issuer B issued %+v", x)
	}
}

func testBadArguments(w *world) {
	a := w.o.IssuerA
	w.issue(a, w.item("seed", w.a1, 100, 100, days(30)))
	w.family(w.id("fam"), w.a1, w.a2)
	over := make([]points.IssueItem, points.MaxIssueBatch+1)
	for i := range over {
		over[i] = w.item(fmt.Sprint("over", i), w.a1, 1, 1, days(30))
	}
	rh := hex64("r")
	cases := []struct {
		name   string
		fn     string
		args   any
		code   apperr.Code
		reason string
	}{
		{"oversized batch", "IssueBatch", points.IssueBatchArgs{Items: over}, apperr.TooLarge, "batch_too_large"},
		{"empty batch", "IssueBatch", points.IssueBatchArgs{}, apperr.Invalid, "empty_batch"},
		{"malformed JSON", "IssueBatch", []byte(`{"items":[`), apperr.Invalid, "malformed_args"},
		{"unknown field", "IssueBatch", []byte(`{"items":[],"extra":true}`), apperr.Invalid, "unknown_field"},
		{"wrong case", "Donate", []byte(`{"Account":"x"}`), apperr.Invalid, "unknown_field"},
		{"duplicate field", "Donate", []byte(`{"points":1,"points":2}`), apperr.Invalid, "duplicate_field"},
		{"two documents", "GetRegistry", []byte(`{}{}`), apperr.Invalid, "malformed_args"},
		{"not an object", "Donate", []byte(`"x"`), apperr.Invalid, "malformed_args"},
		{"overflowing points", "Transfer", []byte(`{"from":"` + w.a1 + `","to":"` + w.a2 + `","points":9223372036854775808,"requestHash":"` + rh + `"}`), apperr.Invalid, "malformed_args"},
		{"fractional points", "Transfer", []byte(`{"from":"` + w.a1 + `","to":"` + w.a2 + `","points":1.5,"requestHash":"` + rh + `"}`), apperr.Invalid, "malformed_args"},
		{"negative donation", "Donate", w.donate(w.a1, -5, "r"), apperr.Invalid, "invalid_points"},
		{"zero donation", "Donate", w.donate(w.a1, 0, "r"), apperr.Invalid, "invalid_points"},
		{"too large donation", "Donate", w.donate(w.a1, 101, "r"), apperr.Conflict, "insufficient_points"},
		{"overflowing funding", "Donate", w.donate(w.a1, 1<<62, "r"), apperr.Invalid, "overflow"},
		{"unknown account", "Donate", w.donate(w.id("ghost"), 1, "r"), apperr.NotFound, "account_not_found"},
		{"bad account id", "Donate", w.donate("a/b", 1, "r"), apperr.Invalid, "invalid_account"},
		{"bad request hash", "Donate", points.DonateArgs{Account: w.a1, CharityID: w.charity, ProjectID: w.project, Points: 1, RequestHash: "ABC"}, apperr.Invalid, "invalid_request_hash"},
		{"unknown project", "Donate", points.DonateArgs{Account: w.a1, CharityID: w.charity, ProjectID: "nope", Points: 1, RequestHash: rh}, apperr.NotFound, "project_not_found"},
		{"negative transfer", "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: -1, RequestHash: rh}, apperr.Invalid, "invalid_points"},
		{"transfer to self", "Transfer", points.TransferArgs{From: w.a1, To: w.a1, Points: 1, RequestHash: rh}, apperr.Invalid, "same_account"},
		{"transfer beyond balance", "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 101, RequestHash: rh}, apperr.Conflict, "insufficient_points"},
		{"transfer beyond cap", "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1001, RequestHash: rh}, apperr.Invalid, "transfer_limit_exceeded"},
		{"unknown claim", "Reverse", points.ReverseArgs{Claim: hex64("none"), Reason: "refund", ItemID: "r"}, apperr.NotFound, "claim_not_found"},
		{"bad bucket", "SweepExpired", points.SweepArgs{Bucket: "2030-01-01"}, apperr.Invalid, "invalid_bucket"},
		{"sweep limit", "SweepExpired", points.SweepArgs{Bucket: "20300101", Limit: points.MaxSweepLimit + 1}, apperr.TooLarge, "limit_too_large"},
		{"bad account kind", "OpenAccount", points.OpenAccountArgs{AccountID: w.id("k"), Kind: "pet"}, apperr.Invalid, "invalid_kind"},
		{"account exists", "OpenAccount", points.OpenAccountArgs{AccountID: w.b1, Kind: points.KindConsumer}, apperr.Conflict, "account_exists"},
		{"unknown function", "Mint", []byte(`{}`), apperr.Invalid, "unknown_function"},
		{"oversized document", "IssueBatch", make([]byte, points.MaxArgsBytes+1), apperr.TooLarge, "args_too_large"},
	}
	before := w.fingerprint()
	for _, c := range cases {
		wantErr(w.t, w.try(a, c.fn, c.args), c.code, c.reason, c.name)
	}
	w.unchanged(before, "rejected calls")
}

func testFamiliesAndTransfers(w *world) {
	a := w.o.IssuerA
	fam := w.id("fam")
	exp := days(40)
	w.issue(a, w.item("i1", w.a1, 2000, 20000, exp))
	rh := hex64("rh")
	fr := submitInto[points.FamilyResult](w, a, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam, Head: w.a1, RequestHash: rh})
	if fr.Family.Head != w.a1 || fr.Family.Issuer != a || fr.Family.Status != points.FamilyActive {
		w.t.Errorf("family %+v", fr.Family)
	}
	wantErr(w.t, w.try(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: w.id("f2"), Head: w.a1, RequestHash: rh}), apperr.Conflict, "already_in_family", "second family")
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1, RequestHash: rh}), apperr.Conflict, "not_same_family", "transfer outside a family")
	w.submit(a, "InviteMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.a2, RequestHash: rh})
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1, RequestHash: rh}), apperr.Conflict, "not_same_family", "transfer to an invitee")
	w.submit(a, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fam, Account: w.a2, RequestHash: rh})
	wantErr(w.t, w.try(a, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fam, Account: w.a3, RequestHash: rh}), apperr.Conflict, "not_invited", "accept without invitation")
	wantErr(w.t, w.try(w.o.IssuerB, "InviteMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.b1, RequestHash: rh}), apperr.Forbidden, "not_account_owner", "another issuer's family")

	tr := submitInto[points.TransferResult](w, a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1000, RequestHash: hex64("t1")})
	if tr.Transfer.Points != 1000 || tr.Transfer.Grams != 10000 || len(tr.Lots) != 1 || tr.Transfer.FamilyID != fam {
		w.t.Fatalf("transfer %+v", tr)
	}
	child := w.lots(w.a2)[0]
	src := w.lots(w.a1)[0]
	if !child.ExpiresAt.Equal(exp) || child.SourceLot != src.Key || child.Claim != w.claim("i1") || child.Grams != 10000 || child.RuleVersion != src.RuleVersion {
		w.t.Errorf("recipient lot %+v (source %s)", child.Lot, src.Key)
	}
	if !slices.Equal(src.Children, []string{child.Key}) || src.TransferredOut != 1000 || src.Remaining != 1000 {
		w.t.Errorf("source lot %+v", src.Lot)
	}
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 501, RequestHash: hex64("t2")}), apperr.Conflict, "monthly_transfer_limit_exceeded", "monthly cap")
	w.submit(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 500, RequestHash: hex64("t3")})
	// The recipient may send back within its own cap; expiry never moves.
	w.submit(a, "Transfer", points.TransferArgs{From: w.a2, To: w.a1, Points: 1000, RequestHash: hex64("t4")})
	for _, acct := range []string{w.a1, w.a2} {
		for _, l := range w.lots(acct) {
			if !l.ExpiresAt.Equal(exp) {
				w.t.Errorf("a transfer moved an expiry: %+v", l.Lot)
			}
		}
	}
	if b1, b2 := w.balance(w.a1).Total, w.balance(w.a2).Total; b1 != 1500 || b2 != 500 {
		w.t.Errorf("balances %d %d, want 1500 500", b1, b2)
	}
	x := w.issuerTotals(a)
	if x.TransferredIn != 2500 || x.TransferredOut != 2500 || x.Held != 2000 {
		w.t.Errorf("totals %+v", x)
	}
	// Leaving ends transfers; the head leaves last, dissolving the family.
	wantErr(w.t, w.try(a, "LeaveFamily", points.FamilyMemberArgs{FamilyID: fam, Account: w.a1, RequestHash: rh}), apperr.Conflict, "family_not_empty", "head leaves first")
	w.submit(a, "InviteMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.a3, RequestHash: rh})
	w.submit(a, "RemoveMember", points.FamilyMemberArgs{FamilyID: fam, Account: w.a3, RequestHash: rh})
	w.submit(a, "LeaveFamily", points.FamilyMemberArgs{FamilyID: fam, Account: w.a2, RequestHash: rh})
	wantErr(w.t, w.try(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 1, RequestHash: rh}), apperr.Conflict, "not_same_family", "transfer after leaving")
	fr = submitInto[points.FamilyResult](w, a, "LeaveFamily", points.FamilyMemberArgs{FamilyID: fam, Account: w.a1, RequestHash: rh})
	if fr.Family.Status != points.FamilyDissolved {
		w.t.Errorf("family %+v", fr.Family)
	}
	if b := w.balance(w.a2); b.FamilyID != "" {
		w.t.Errorf("a2 still in family %s", b.FamilyID)
	}
}

func testDonationAndReceipt(w *world) {
	a, o := w.o.IssuerA, w.o
	w.issue(a, w.item("i1", w.a1, 100, 1000, days(60)))
	r := submitInto[points.ReceiptResult](w, a, "Donate", w.donate(w.a1, 40, "req1"))
	rc := r.Receipt
	if rc.Points != 40 || rc.Grams != 400 || rc.FundingFen != 80 || rc.Donor != w.a1 || rc.Issuer != a || rc.CharityID != w.charity ||
		rc.RequestHash != hex64("req1") || len(rc.ReceiptID) != 32 || rc.Acknowledged || rc.TxID == "" {
		w.t.Fatalf("receipt %+v", rc)
	}
	for _, caller := range []string{o.Regulator, o.Auditor, a, o.Charity} {
		got := eval[points.ReceiptResult](w, caller, "GetReceipt", points.ReceiptArgs{ReceiptID: rc.ReceiptID})
		if diff := cmp.Diff(rc, got.Receipt); diff != "" {
			w.t.Errorf("GetReceipt by %s mismatch (-want +got):\n%s", caller, diff)
		}
	}
	_, err := w.evalErr(o.IssuerB, "GetReceipt", points.ReceiptArgs{ReceiptID: rc.ReceiptID})
	wantErr(w.t, err, apperr.Forbidden, "not_own_data", "GetReceipt by another issuer")
	_, err = w.evalErr(o.Regulator, "GetReceipt", points.ReceiptArgs{ReceiptID: strings.Repeat("0", 32)})
	wantErr(w.t, err, apperr.NotFound, "receipt_not_found", "unknown receipt")
	ack := submitInto[points.ReceiptResult](w, o.Charity, "AcknowledgeDonation", points.ReceiptArgs{ReceiptID: rc.ReceiptID})
	if ack.Status != "acknowledged" || !ack.Receipt.Acknowledged || ack.Receipt.AcknowledgedAt == nil {
		w.t.Errorf("ack %+v", ack)
	}
	if ack := submitInto[points.ReceiptResult](w, o.Charity, "AcknowledgeDonation", points.ReceiptArgs{ReceiptID: rc.ReceiptID}); ack.Status != "already_acknowledged" {
		w.t.Errorf("second ack %+v", ack)
	}
	if b := w.balance(w.a1); b.Total != 60 {
		w.t.Errorf("balance %+v", b)
	}
	if x := w.issuerTotals(a); x.Donated != 40 || x.Held != 60 {
		w.t.Errorf("totals %+v", x)
	}
	// Suspended projects and charities take nothing.
	w.submit(o.Regulator, "SetProjectStatus", points.SetProjectStatusArgs{CharityID: w.charity, ProjectID: w.project, Status: points.StatusSuspended})
	wantErr(w.t, w.try(a, "Donate", w.donate(w.a1, 1, "r2")), apperr.Conflict, "project_suspended", "donation to a suspended project")
	w.submit(o.Regulator, "SetProjectStatus", points.SetProjectStatusArgs{CharityID: w.charity, ProjectID: w.project, Status: points.StatusActive})
	w.submit(o.Regulator, "SetCharityStatus", points.SetCharityStatusArgs{CharityID: w.charity, Status: points.StatusSuspended})
	wantErr(w.t, w.try(a, "Donate", w.donate(w.a1, 1, "r3")), apperr.Conflict, "charity_suspended", "donation to a suspended charity")
	w.submit(o.Regulator, "SetCharityStatus", points.SetCharityStatusArgs{CharityID: w.charity, Status: points.StatusActive})
	w.submit(a, "Donate", w.donate(w.a1, 1, "r4"))
}

func testEarliestExpiryFirst(w *world) {
	a := w.o.IssuerA
	w.issue(a, w.item("late", w.a1, 50, 500, days(300)), w.item("early", w.a1, 30, 301, days(10)), w.item("mid", w.a1, 40, 400, days(100)))
	r := submitInto[points.ReceiptResult](w, a, "Donate", w.donate(w.a1, 50, "d"))
	if r.Receipt.Grams != 301+200 {
		w.t.Errorf("grams %d, want 501 (all of the earliest lot, half of the next)", r.Receipt.Grams)
	}
	lots := w.lots(w.a1)
	got := []int64{lots[0].Remaining, lots[1].Remaining, lots[2].Remaining}
	if diff := cmp.Diff([]int64{0, 20, 50}, got); diff != "" {
		w.t.Errorf("remaining mismatch (-want +got):\n%s", diff)
	}
	if lots[0].GramsRemaining != 0 || lots[1].GramsRemaining != 200 || lots[2].GramsRemaining != 500 {
		w.t.Errorf("grams remaining %d %d %d", lots[0].GramsRemaining, lots[1].GramsRemaining, lots[2].GramsRemaining)
	}
}

func testReverseAndDebt(w *world) {
	a := w.o.IssuerA
	exp := days(50)
	w.issue(a, w.item("i1", w.a1, 100, 1000, exp))
	w.family(w.id("fam"), w.a1, w.a2)
	w.submit(a, "Transfer", points.TransferArgs{From: w.a1, To: w.a2, Points: 60, RequestHash: hex64("t")})
	w.submit(a, "Donate", w.donate(w.a2, 25, "d"))
	wantErr(w.t, w.try(w.o.IssuerB, "Reverse", points.ReverseArgs{Claim: w.claim("i1"), Reason: "refund", ItemID: "x"}), apperr.Forbidden, "not_claim_owner", "reverse another issuer's claim")
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: w.claim("i1"), Reason: "refund", ItemID: w.id("rev1")})
	// 40 back from a1, 35 from a2 (following the transfer), 25 donated: owed by a1.
	if rr.Reversal.Clawed != 75 || rr.Reversal.Debt != 25 || rr.Reversal.Expired != 0 || rr.DebtNow != 25 || rr.Account != w.a1 || rr.Reversal.Lots != 2 {
		w.t.Fatalf("reversal %+v", rr)
	}
	if b := w.balance(w.a1); b.Total != 0 || b.Debt != 25 {
		w.t.Errorf("a1 %+v", b)
	}
	if b := w.balance(w.a2); b.Total != 0 || b.Debt != 0 {
		w.t.Errorf("a2 %+v", b)
	}
	wantErr(w.t, w.try(a, "Reverse", points.ReverseArgs{Claim: w.claim("i1"), Reason: "refund", ItemID: w.id("rev2")}), apperr.Conflict, "already_reversed", "second reversal")
	c := eval[points.Claim](w, w.o.Auditor, "GetClaim", points.ClaimArgs{Claim: w.claim("i1")})
	if c.Reversal == nil || c.Reversal.ItemID != w.id("rev1") || c.Reversal.Reason != "refund" {
		w.t.Errorf("claim %+v", c)
	}
	// Later issuances settle the debt first.
	res := w.issue(a, w.item("i2", w.a1, 10, 100, exp), w.item("i3", w.a1, 30, 300, exp))
	if res.Results[0].DebtSettled != 10 || res.Results[1].DebtSettled != 15 {
		w.t.Fatalf("settlement %+v", res.Results)
	}
	if b := w.balance(w.a1); b.Total != 15 || b.Debt != 0 {
		w.t.Errorf("a1 after settlement %+v", b)
	}
	// Reversing an issuance that settled debt restores that debt.
	rr = submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: w.claim("i3"), Reason: "chargeback", ItemID: w.id("rev3")})
	if rr.Reversal.Clawed != 15 || rr.Reversal.Debt != 15 || rr.DebtNow != 15 {
		w.t.Errorf("reversal of a settling issuance %+v", rr)
	}
	x := w.issuerTotals(a)
	if x.Issued != 140 || x.Donated != 25 || x.Reversed != 115 || x.Held != 0 {
		w.t.Errorf("totals %+v", x)
	}
}

// testExpiryAndSweep uses real time: a lot expiring two seconds ahead.
// Issuer B has seven lots due in the same bucket: sweeps are per issuer and
// go in chunks.
func testExpiryAndSweep(w *world) {
	a, b := w.o.IssuerA, w.o.IssuerB
	exp := time.Now().UTC().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	w.issue(a, w.item("short", w.a1, 10, 100, exp), w.item("long", w.a1, 5, 50, days(30)))
	var chunked []points.IssueItem
	for i := range 7 {
		chunked = append(chunked, w.item(fmt.Sprint("chunk", i), w.b1, 1, 0, exp))
	}
	w.issue(b, chunked...)
	if b := w.balance(w.a1); b.Total != 15 {
		w.t.Fatalf("balance before expiry %+v", b)
	}
	time.Sleep(time.Until(exp) + 300*time.Millisecond)
	// Expired from expiresAt on, before any sweep.
	if b := w.balance(w.a1); b.Total != 5 {
		w.t.Errorf("balance after expiry %+v", b)
	}
	wantErr(w.t, w.try(a, "Donate", w.donate(w.a1, 6, "d")), apperr.Conflict, "insufficient_points", "spending expired points")
	before := w.issuerTotals(a)
	if before.Expired != 10 || before.Held != 5 {
		w.t.Errorf("totals before the sweep %+v", before)
	}
	lots := w.lots(w.a1)
	if !lots[0].Due || lots[0].Held != 0 || lots[0].Remaining != 10 {
		w.t.Errorf("due lot before the sweep %+v", lots[0])
	}
	bucket := exp.Format("20060102")
	s := submitInto[points.SweepResult](w, a, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 10})
	if s.Swept != 1 || s.Points != 10 || s.More {
		w.t.Errorf("sweep %+v", s)
	}
	if s := submitInto[points.SweepResult](w, a, "SweepExpired", points.SweepArgs{Bucket: bucket}); s.Swept != 0 {
		w.t.Errorf("second sweep %+v", s)
	}
	// A's sweeps left B's index alone: B's seven lots take two chunks of five.
	for _, want := range []points.SweepResult{{Swept: 5, Points: 5, More: true}, {Swept: 2, Points: 2}} {
		s := submitInto[points.SweepResult](w, b, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 5})
		if s.Swept != want.Swept || s.Points != want.Points || s.More != want.More || s.NotDue != 0 {
			w.t.Errorf("B's sweep %+v, want %+v", s, want)
		}
	}
	if x := w.issuerTotals(b); x.Expired != 7 || x.Held != 0 {
		w.t.Errorf("B's totals after its sweeps %+v", x)
	}
	after := w.issuerTotals(a)
	if diff := cmp.Diff(before, after); diff != "" {
		w.t.Errorf("the sweep changed conservation (-before +after):\n%s", diff)
	}
	if l := w.lots(w.a1)[0]; l.Expired != 10 || l.Remaining != 0 {
		w.t.Errorf("swept lot %+v", l.Lot)
	}
	// Expired points are gone: a reversal neither claws nor owes them.
	rr := submitInto[points.ReverseResult](w, a, "Reverse", points.ReverseArgs{Claim: w.claim("short"), Reason: "refund", ItemID: w.id("r")})
	if rr.Reversal.Expired != 10 || rr.Reversal.Debt != 0 || rr.Reversal.Clawed != 0 {
		w.t.Errorf("reversal of expired points %+v", rr)
	}
}

func testMVCC(w *world) {
	a := w.o.IssuerA
	w.issue(a, w.item("i1", w.a1, 100, 100, days(30)))
	c, cancel := ctx()
	defer cancel()
	e1, err := w.l.Endorse(c, w.proposal(a, "Donate", w.donate(w.a1, 80, "d1")))
	if err != nil {
		w.t.Fatal(err)
	}
	e2, err := w.l.Endorse(c, w.proposal(a, "Donate", w.donate(w.a1, 80, "d2")))
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.l.Commit(c, e1); err != nil {
		w.t.Fatalf("first commit: %v", err)
	}
	_, err = w.l.Commit(c, e2)
	wantErr(w.t, err, apperr.Conflict, "mvcc_read_conflict", "second donation of the same points")
	if b := w.balance(w.a1); b.Total != 20 {
		w.t.Errorf("balance %+v: the conflicted donation changed state", b)
	}
	var r2 points.ReceiptResult
	if err := json.Unmarshal(e2.Result(), &r2); err != nil {
		w.t.Fatal(err)
	}
	_, err = w.evalErr(w.o.Regulator, "GetReceipt", points.ReceiptArgs{ReceiptID: r2.Receipt.ReceiptID})
	wantErr(w.t, err, apperr.NotFound, "receipt_not_found", "receipt of the invalidated donation")
	if x := w.issuerTotals(a); x.Donated != 80 {
		w.t.Errorf("totals %+v", x)
	}
}

func testPhantom(w *world) {
	a := w.o.IssuerA
	// Two expiries in one UTC-day bucket, a minute or two ahead.
	e1 := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	if e1.Add(time.Minute).Format("20060102") != e1.Format("20060102") {
		e1 = e1.Add(3 * time.Minute)
	}
	bucket := e1.Format("20060102")
	c, cancel := ctx()
	defer cancel()
	sweep, err := w.l.Endorse(c, w.proposal(a, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 10}))
	if err != nil {
		w.t.Fatal(err)
	}
	// A write outside the swept range does not disturb the sweep ...
	w.issue(a, w.item("elsewhere", w.a1, 5, 5, days(3)))
	if _, err := w.l.Commit(c, sweep); err != nil {
		w.t.Fatalf("sweep after a write outside its range: %v", err)
	}
	// ... a new index entry inside it does.
	sweep, err = w.l.Endorse(c, w.proposal(a, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 10}))
	if err != nil {
		w.t.Fatal(err)
	}
	w.issue(a, w.item("inside", w.a1, 5, 5, e1.Add(time.Minute)))
	_, err = w.l.Commit(c, sweep)
	wantErr(w.t, err, apperr.Conflict, "phantom_read_conflict", "sweep after a new lot in its bucket")
}

func testQueriesOnlyEvaluated(w *world) {
	a := w.o.IssuerA
	w.issue(a, w.item("i1", w.a1, 10, 10, days(30)))
	before := w.fingerprint()
	for _, q := range []struct {
		fn   string
		args any
	}{
		{"GetLots", points.PageArgs{Account: w.a1}},
		{"GetAccountHistory", points.PageArgs{Account: w.a1}},
		{"GetConservation", points.ConservationArgs{}},
	} {
		wantErr(w.t, w.try(a, q.fn, q.args), apperr.Invalid, "read_only_query", q.fn+" submitted")
		if _, err := w.evalErr(a, q.fn, q.args); err != nil {
			w.t.Errorf("%s evaluated: %v", q.fn, err)
		}
	}
	// Evaluating a write changes nothing.
	if _, err := w.evalErr(a, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{w.item("ev", w.a1, 99, 9, days(30))}}); err != nil {
		w.t.Errorf("evaluating IssueBatch: %v", err)
	}
	w.unchanged(before, "refused queries and an evaluated write")
}

func testEvents(w *world) {
	a := w.o.IssuerA
	rIssue := w.submit(a, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{w.item("i1", w.a1, 100, 100, days(30))}})
	rDonate := w.submit(a, "Donate", w.donate(w.a1, 10, "d"))
	rFamily := w.submit(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: w.id("fam"), Head: w.a1, RequestHash: hex64("f")})
	want := map[string][]string{
		rIssue.TxID:  {"lot_created:issue", "claim_recorded", "item_result"},
		rDonate.TxID: {"lot_debited:donate", "receipt_issued"},
		rFamily.TxID: {"family_changed"},
	}
	fns := map[string]string{rIssue.TxID: "IssueBatch", rDonate.TxID: "Donate", rFamily.TxID: "CreateFamily"}

	seen := map[string]int{}
	var order []issuer.CommittedTx
	subscribe := func(from issuer.Checkpoint, until string) {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := w.l.Subscribe(c, from, func(tx issuer.CommittedTx) error {
			order = append(order, tx)
			if tx.EventName != points.EventName {
				w.t.Errorf("tx %s (%s): event %q", tx.TxID, tx.Function, tx.EventName)
			}
			ev := decodeEvent(w.t, tx)
			if ev.V != points.EventVersion || ev.TxID != tx.TxID || ev.Function != tx.Function || ev.Caller != tx.Caller {
				w.t.Errorf("event header %+v for tx %+v", ev, tx.Checkpoint)
			}
			if tx.TxID == until {
				return errStop
			}
			return nil
		})
		if err != errStop {
			w.t.Fatalf("Subscribe: %v", err)
		}
	}
	subscribe(issuer.Checkpoint{}, rFamily.TxID)
	for _, tx := range order {
		seen[tx.TxID]++
		if types, ok := want[tx.TxID]; ok {
			ev := decodeEvent(w.t, tx)
			if diff := cmp.Diff(types, changeTypes(ev)); diff != "" {
				w.t.Errorf("%s changes mismatch (-want +got):\n%s", fns[tx.TxID], diff)
			}
			if tx.Function != fns[tx.TxID] || tx.Caller != a {
				w.t.Errorf("tx %+v", tx)
			}
		}
	}
	for id := range want {
		if seen[id] != 1 {
			w.t.Errorf("tx %s delivered %d times", fns[id], seen[id])
		}
	}
	// The issuance's changes carry what a projection needs.
	ev := decodeEvent(w.t, order[indexOf(order, rIssue.TxID)])
	lot := ev.Changes[0].Lot
	if lot == nil || lot.Account != w.a1 || lot.Issuer != a || lot.Amount != 100 || lot.Grams != 100 || lot.ExpiresAt.IsZero() || lot.Claim != w.claim("i1") {
		w.t.Errorf("lot_created %+v", lot)
	}
	ev = decodeEvent(w.t, order[indexOf(order, rDonate.TxID)])
	if d := ev.Changes[0].Debit; d == nil || d.Points != 10 || d.Remaining != 90 || ev.Changes[0].RequestHash != hex64("d") {
		w.t.Errorf("lot_debited %+v", ev.Changes[0])
	}
	// Resume after the issuance's checkpoint: the donation comes next.
	order = nil
	subscribe(issuer.Checkpoint{Block: rIssue.Block, Index: rIssue.Index}, rDonate.TxID)
	if len(order) == 0 || order[0].TxID != rDonate.TxID || !(issuer.Checkpoint{Block: rIssue.Block, Index: rIssue.Index}).Less(order[0].Checkpoint) {
		w.t.Errorf("resumed at %+v, want the donation %s", order, rDonate.TxID)
	}
}

func indexOf(txs []issuer.CommittedTx, id string) int {
	for i, tx := range txs {
		if tx.TxID == id {
			return i
		}
	}
	return -1
}

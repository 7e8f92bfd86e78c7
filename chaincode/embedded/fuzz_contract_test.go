package embedded_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// The MSPs of the points ledgers set up by seedPoints.
const (
	fzReg      = "RegulatorMSP"
	fzBankA    = "BankAMSP"
	fzBankB    = "BankBMSP"
	fzAuditor  = "AuditorMSP"
	fzCharity  = "CharityMSP"
	fzStranger = "StrangerMSP"
)

// pointsCalls calls one points ledger for a test.
type pointsCalls struct {
	tb testing.TB
	l  issuer.Ledger
}

func (c pointsCalls) try(caller, fn string, args any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.l.Submit(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: mustArgs(args)})
	if err != nil {
		return nil, err
	}
	return res.Payload, nil
}

// ok submits and fails the test on error.
func (c pointsCalls) ok(caller, fn string, args any) []byte {
	c.tb.Helper()
	out, err := c.try(caller, fn, args)
	if err != nil {
		c.tb.Fatalf("%s by %s: %v", fn, caller, err)
	}
	return out
}

// okInto submits and decodes the result into v.
func (c pointsCalls) okInto(v any, caller, fn string, args any) {
	c.tb.Helper()
	if err := json.Unmarshal(c.ok(caller, fn, args), v); err != nil {
		c.tb.Fatalf("%s: %v", fn, err)
	}
}

// fail submits and wants the error's reason.
func (c pointsCalls) fail(reason, caller, fn string, args any) {
	c.tb.Helper()
	if _, err := c.try(caller, fn, args); apperr.ReasonOf(err) != reason {
		c.tb.Fatalf("%s by %s: got %v, want %s", fn, caller, err, reason)
	}
}

// seedPoints sets a points ledger up: the regulator; issuers A and B, each
// with rule rule/1, methodology meth/1 and profile cn/1 (Asia/Shanghai,
// transfers of at most 1000 points, 1500 a month, 30 days' notice)
// effective from eff; an auditor; a charity member with charity "trees" and
// its project "p1"; consumer accounts a1..a4 of A and b1 of B.
func seedPoints(c pointsCalls, eff time.Time) {
	c.tb.Helper()
	c.ok(fzReg, "InitLedger", points.InitLedgerArgs{RegulatorMSP: fzReg})
	for _, m := range []points.RegisterMemberArgs{
		{MSP: fzBankA, Role: points.RoleIssuer, Name: "Bank A", FilingNumber: "F-1", Status: points.StatusActive},
		{MSP: fzBankB, Role: points.RoleIssuer, Name: "Bank B", FilingNumber: "F-2", Status: points.StatusActive},
		{MSP: fzAuditor, Role: points.RoleAuditor, Name: "Auditor", Status: points.StatusActive},
		{MSP: fzCharity, Role: points.RoleCharity, Name: "Charity", Status: points.StatusActive},
	} {
		c.ok(fzReg, "RegisterMember", m)
	}
	for _, bank := range []string{fzBankA, fzBankB} {
		c.ok(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hexOf("r1"), EffectiveAt: eff})
		c.ok(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hexOf("m1"), EffectiveAt: eff})
		c.ok(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hexOf("p1"), EffectiveAt: eff,
			Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, TransferMaxPoints: 1000, TransferMaxPointsPerMonth: 1500, PointValueFen: 2}})
	}
	c.ok(fzReg, "RegisterCharity", points.RegisterCharityArgs{CharityID: "trees", Name: "Trees", MSP: fzCharity})
	c.ok(fzReg, "RegisterProject", points.RegisterProjectArgs{CharityID: "trees", ProjectID: "p1", Name: "Plant"})
	var accts points.OpenAccountsArgs
	for _, a := range []string{"a1", "a2", "a3", "a4"} {
		accts.Accounts = append(accts.Accounts, points.OpenAccountArgs{AccountID: a, Kind: points.KindConsumer})
	}
	c.ok(fzBankA, "OpenAccounts", accts)
	c.ok(fzBankB, "OpenAccount", points.OpenAccountArgs{AccountID: "b1", Kind: points.KindConsumer})
}

// seedItem is an item under the versions seedPoints anchors.
func seedItem(id, account string, pts, grams int64, exp time.Time) points.IssueItem {
	return points.IssueItem{
		ItemID: id, Account: account, Points: pts, Grams: grams, Category: "transit",
		RuleVersion: points.VersionRef{ID: "rule", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "meth", Version: "1"},
		ProfileVersion: points.VersionRef{ID: "cn", Version: "1"}, QuantificationHash: hexOf("q" + id),
		ExpiresAt: exp.UTC().Truncate(time.Second), Claim: hexOf("c" + id),
	}
}

// seedFamily makes head (of bank A) the head of family id with members.
func seedFamily(c pointsCalls, id, head string, members ...string) {
	c.tb.Helper()
	c.ok(fzBankA, "CreateFamily", points.CreateFamilyArgs{FamilyID: id, Head: head, RequestHash: hexOf("f" + id)})
	for _, m := range members {
		c.ok(fzBankA, "InviteMember", points.FamilyMemberArgs{FamilyID: id, Account: m, RequestHash: hexOf("i" + m)})
		c.ok(fzBankA, "AcceptInvite", points.FamilyMemberArgs{FamilyID: id, Account: m, RequestHash: hexOf("a" + m)})
	}
}

// FuzzInvokeArgs calls random functions with random arguments as random
// callers on one populated embedded ledger (a fresh database per fuzzing
// process), each input as a Submit and then as an Evaluate. Neither may
// panic or fail other than with an *apperr.Error naming a reason (never an
// internal one); a rejected Submit changes nothing (height and state hash),
// an accepted one keeps conservation; an Evaluate never commits.
func FuzzInvokeArgs(f *testing.F) {
	l := newPointsLedger(f, embedded.Options{})
	c := pointsCalls{tb: f, l: l}
	now := time.Now().UTC()
	seedPoints(c, now.Add(-24*time.Hour))
	exp := now.Add(24 * time.Hour).Truncate(time.Second)
	grant := seedItem("g1", "a1", 30, 300, exp)
	grant.SubClaims = []string{hexOf("trip1"), hexOf("trip2")}
	c.ok(fzBankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{
		seedItem("i1", "a1", 100, 1000, exp), seedItem("i2", "a2", 50, 10, now.Add(time.Hour)), grant,
	}})
	seedFamily(c, "fam", "a1", "a2")
	fns := points.New().Functions()
	callers := []string{fzReg, fzBankA, fzBankB, fzAuditor, fzCharity, fzStranger}

	seed := func(fn string, caller int, args any) { f.Add(fn, uint8(caller), mustArgs(args)) }
	seed("IssueBatch", 1, points.IssueBatchArgs{Items: []points.IssueItem{seedItem("s1", "a1", 5, 5, exp), seedItem("s1", "a1", 5, 5, exp)}})
	seed("Transfer", 1, points.TransferArgs{From: "a1", To: "a2", Points: 10, RequestHash: hexOf("t")})
	seed("Donate", 1, points.DonateArgs{Account: "a1", CharityID: "trees", ProjectID: "p1", Points: 10, RequestHash: hexOf("d")})
	seed("Reverse", 1, points.ReverseArgs{Claim: hexOf("ci1"), Reason: "refund", ItemID: "r"})
	three := int64(3)
	seed("Reverse", 1, points.ReverseArgs{Claim: hexOf("trip1"), Reason: "refund", ItemID: "r", Points: &three})
	f.Add("Reverse", uint8(1), []byte(`{"claim":"`+hexOf("trip2")+`","reason":"refund","itemId":"r","points":null}`))
	f.Add("Reverse", uint8(1), []byte(`{"claim":"`+hexOf("trip2")+`","reason":"refund","itemId":"r","points":31}`))
	seed("SweepExpired", 1, points.SweepArgs{Bucket: exp.Format("20060102"), Limit: 5})
	seed("AnchorVersion", 1, points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "9", SHA256: hexOf("x"), EffectiveAt: exp, Profile: &points.ProfileArgs{Timezone: "UTC", MaxValidityDays: 1}})
	seed("GetBalance", 0, points.AccountArgs{Account: "a1"})
	seed("GetConservation", 3, points.ConservationArgs{PageSize: 2})
	seed("InviteMember", 1, points.FamilyMemberArgs{FamilyID: "fam", Account: "a3", RequestHash: hexOf("i")})
	seed("RegisterMember", 0, points.RegisterMemberArgs{MSP: "New", Role: points.RoleIssuer, Name: "n", FilingNumber: "f", Status: points.StatusActive})
	seed("AcknowledgeDonation", 4, points.ReceiptArgs{ReceiptID: "00000000000000000000000000000000"})
	f.Add("IssueBatch", uint8(1), []byte(`{"items":[{"points":-1}]}`))
	f.Add("Transfer", uint8(1), []byte(`{"from":"a1","to":"a2","points":9223372036854775807,"requestHash":"`+hexOf("t")+`"}`))
	f.Add("GetLots", uint8(2), []byte(`{"account":"a1","pageSize":1,"bookmark":"lot/a1/"}`))
	f.Add("GetAccountHistory", uint8(1), []byte(`{"account":"a1","pageSize":1}`))
	f.Add("x", uint8(9), []byte(`{{{`))
	f.Add("", uint8(0), []byte(nil))

	f.Fuzz(func(t *testing.T, fn string, caller uint8, args []byte) {
		if len(fn) > 0 && fn[0] < byte(len(fns)) { // steer most inputs to real functions
			fn = fns[fn[0]]
		}
		p := issuer.Proposal{Caller: callers[int(caller)%len(callers)], Function: fn, Args: args}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()

		before := fuzzLedgerState(t, l)
		_, err := l.Submit(ctx, p)
		checkFuzzErr(t, "Submit", p, err)
		after := fuzzLedgerState(t, l)
		if err != nil && after != before {
			t.Fatalf("Submit %s by %s was rejected (%v) but changed the ledger: %+v -> %+v", fn, p.Caller, err, before, after)
		}
		if err == nil {
			checkFuzzConservation(t, l)
		}

		_, err = l.Evaluate(ctx, p)
		checkFuzzErr(t, "Evaluate", p, err)
		if h, herr := l.Height(ctx); herr != nil || h != after.height {
			t.Fatalf("Evaluate %s by %s: height %d -> %d (%v)", fn, p.Caller, after.height, h, herr)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s by %s took %v", fn, p.Caller, d)
		}
	})
}

type fuzzState struct {
	height uint64
	hash   string
}

func fuzzLedgerState(t *testing.T, l *embedded.Ledger) fuzzState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := l.Height(ctx)
	if err != nil {
		t.Fatalf("Height: %v", err)
	}
	sum, err := l.StateHash(ctx)
	if err != nil {
		t.Fatalf("StateHash: %v", err)
	}
	return fuzzState{height: h, hash: fmt.Sprintf("%x", sum)}
}

// checkFuzzErr: an error is an *apperr.Error with a reason, and not an
// internal one (a panic, corrupt state, a key the contract should have
// refused to build).
func checkFuzzErr(t *testing.T, what string, p issuer.Proposal, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e := apperr.As(err)
	switch {
	case e == nil:
		t.Fatalf("%s %s by %s: %T %v is not an *apperr.Error", what, p.Function, p.Caller, err, err)
	case e.Reason == "":
		t.Fatalf("%s %s by %s: %v has no reason", what, p.Function, p.Caller, err)
	case e.Code == apperr.Internal || e.Code == apperr.Unavailable:
		t.Fatalf("%s %s by %s with %q: %v", what, p.Function, p.Caller, bytes.ToValidUTF8(p.Args, []byte("?")), err)
	}
}

// checkFuzzConservation: conservation per issuer and in total, summed over
// every page.
func checkFuzzConservation(t *testing.T, l *embedded.Ledger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := map[string]*points.Totals{}
	var total points.Totals
	bm := ""
	for {
		out, err := l.Evaluate(ctx, issuer.Proposal{Caller: fzReg, Function: "GetConservation", Args: mustArgs(points.ConservationArgs{PageSize: points.MaxConservationPage, Bookmark: bm})})
		if err != nil {
			t.Fatalf("GetConservation: %v", err)
		}
		var p points.ConservationPage
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatal(err)
		}
		for _, x := range p.Issuers {
			if per[x.Issuer] == nil {
				per[x.Issuer] = &points.Totals{Issuer: x.Issuer}
			}
			if err := per[x.Issuer].Add(x); err != nil {
				t.Fatal(err)
			}
		}
		if err := total.Add(p.Total); err != nil {
			t.Fatal(err)
		}
		if p.Bookmark == "" {
			break
		}
		bm = p.Bookmark
	}
	for _, x := range per {
		if !x.Balanced() {
			t.Fatalf("conservation broken for %s: %+v", x.Issuer, *x)
		}
	}
	if !total.Balanced() {
		t.Fatalf("conservation broken in total: %+v", total)
	}
}

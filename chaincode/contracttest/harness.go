// Package contracttest is the backend-agnostic test suite of the points
// contract. It drives a ledger only through issuer.Ledger (Submit, Endorse,
// Commit, Evaluate, Subscribe, Height) and real time, so the same suite runs
// against the embedded ledger now and against Fabric later, unchanged.
//
//	func TestContract(t *testing.T) {
//		contracttest.Run(t, func(t *testing.T) issuer.Ledger { return newLedger(t) })
//	}
//
// newLedger must return an independent, empty ledger running the points
// contract for each call (the embedded backend: a fresh database; Fabric: a
// fresh channel), closed by its own t.Cleanup. Tests run in parallel. The
// suite's setup is idempotent and its ids carry a per-test prefix, but tests
// check issuer totals, and ProfileTakesOver puts a new profile in force for
// issuer A, so each test needs the fresh ledger newLedger promises.
// InitLedgerOnlyByTheRegulator asks newLedger for a second, uninitialized
// ledger.
//
// After every test the suite checks conservation, per issuer and in total,
// and every lot of the accounts it used.
package contracttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// Options name the MSP ids the suite calls as. On Fabric each must be an
// identity the test client can sign as; Stranger must not be registered.
type Options struct {
	Regulator string
	IssuerA   string
	IssuerB   string
	Auditor   string
	Charity   string
	Stranger  string
}

// DefaultOptions are the MSP ids used by Run.
func DefaultOptions() Options {
	return Options{
		Regulator: "RegulatorMSP", IssuerA: "BankAMSP", IssuerB: "BankBMSP",
		Auditor: "AuditorMSP", Charity: "CharityMSP", Stranger: "StrangerMSP",
	}
}

// Run runs the whole suite with DefaultOptions.
func Run(t *testing.T, newLedger func(t *testing.T) issuer.Ledger) {
	RunWithOptions(t, newLedger, DefaultOptions())
}

// RunWithOptions runs the whole suite.
func RunWithOptions(t *testing.T, newLedger func(t *testing.T) issuer.Ledger, o Options) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(newWorld(t, newLedger, o))
		})
	}
}

type testCase struct {
	name string
	run  func(w *world)
}

// The profile every issuer of the suite anchors. Its effective time is fixed
// so that anchoring it again (a shared ledger) is a no-op.
var (
	anchorsEffective = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	suiteProfile     = points.ProfileArgs{
		Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true,
		TransferMaxPoints: 1000, TransferMaxPointsPerMonth: 1500, PointValueFen: 2, GraceDays: 10,
	}
)

const (
	ruleID, methID, profID, vers = "suite-rule", "suite-meth", "suite-profile", "1"
	callTimeout                  = 30 * time.Second
)

// world is one test's view of a ledger set up with a regulator, two issuers
// with anchored versions, an auditor, a charity member, a charity with a
// project, and accounts.
type world struct {
	t         *testing.T
	l         issuer.Ledger
	newLedger func(t *testing.T) issuer.Ledger
	o         Options
	prefix    string
	// Accounts: a1..a4 of issuer A, b1 of issuer B (prefixed).
	a1, a2, a3, a4, b1 string
	charity, project   string
	accounts           []string
}

func hex64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newWorld(t *testing.T, newLedger func(t *testing.T) issuer.Ledger, o Options) *world {
	t.Helper()
	w := &world{t: t, l: newLedger(t), newLedger: newLedger, o: o, prefix: hex64(t.Name())[:8] + "-"}
	w.a1, w.a2, w.a3, w.a4, w.b1 = w.id("a1"), w.id("a2"), w.id("a3"), w.id("a4"), w.id("b1")
	w.charity, w.project = w.id("trees"), "p1"

	if err := w.try(o.Regulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: o.Regulator}); err != nil && apperr.ReasonOf(err) != "already_initialized" {
		t.Fatalf("InitLedger: %v", err)
	}
	for _, m := range []points.RegisterMemberArgs{
		{MSP: o.IssuerA, Role: points.RoleIssuer, Name: "Bank A", FilingNumber: "F-A", Status: points.StatusActive},
		{MSP: o.IssuerB, Role: points.RoleIssuer, Name: "Bank B", FilingNumber: "F-B", Status: points.StatusActive},
		{MSP: o.Auditor, Role: points.RoleAuditor, Name: "Auditor", Status: points.StatusActive},
		{MSP: o.Charity, Role: points.RoleCharity, Name: "Charity", Status: points.StatusActive},
	} {
		w.submit(o.Regulator, "RegisterMember", m)
	}
	for _, bank := range []string{o.IssuerA, o.IssuerB} {
		w.anchor(bank, points.AnchorRule, ruleID, vers, anchorsEffective, nil)
		w.anchor(bank, points.AnchorMethodology, methID, vers, anchorsEffective, nil)
		p := suiteProfile
		w.anchor(bank, points.AnchorProfile, profID, vers, anchorsEffective, &p)
	}
	w.submit(o.Regulator, "RegisterCharity", points.RegisterCharityArgs{CharityID: w.charity, Name: "Trees", MSP: o.Charity})
	w.submit(o.Regulator, "RegisterProject", points.RegisterProjectArgs{CharityID: w.charity, ProjectID: w.project, Name: "Plant"})
	w.open(o.IssuerA, w.a1, w.a2, w.a3, w.a4)
	w.open(o.IssuerB, w.b1)
	t.Cleanup(w.checkConservation)
	return w
}

func (w *world) id(s string) string { return w.prefix + s }

func (w *world) anchor(bank, kind, id, version string, eff time.Time, p *points.ProfileArgs) {
	w.t.Helper()
	w.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: kind, ID: id, Version: version, SHA256: hex64(kind + id + version), EffectiveAt: eff, Profile: p})
}

func (w *world) open(bank string, accounts ...string) {
	w.t.Helper()
	var a points.OpenAccountsArgs
	for _, id := range accounts {
		a.Accounts = append(a.Accounts, points.OpenAccountArgs{AccountID: id, Kind: points.KindConsumer})
	}
	w.submit(bank, "OpenAccounts", a)
	w.accounts = append(w.accounts, accounts...)
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func raw(tb testing.TB, args any) []byte {
	tb.Helper()
	if b, ok := args.([]byte); ok {
		return b
	}
	b, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (w *world) proposal(caller, fn string, args any) issuer.Proposal {
	return issuer.Proposal{Caller: caller, Function: fn, Args: raw(w.t, args)}
}

// try submits and returns the error.
func (w *world) try(caller, fn string, args any) error {
	c, cancel := ctx()
	defer cancel()
	_, err := w.l.Submit(c, w.proposal(caller, fn, args))
	return err
}

// submit submits and fails the test on error.
func (w *world) submit(caller, fn string, args any) *issuer.TxResult {
	w.t.Helper()
	c, cancel := ctx()
	defer cancel()
	res, err := w.l.Submit(c, w.proposal(caller, fn, args))
	if err != nil {
		w.t.Fatalf("%s by %s: %v", fn, caller, err)
	}
	return res
}

// submitInto submits and decodes the result.
func submitInto[T any](w *world, caller, fn string, args any) T {
	w.t.Helper()
	res := w.submit(caller, fn, args)
	var v T
	if err := json.Unmarshal(res.Payload, &v); err != nil {
		w.t.Fatalf("%s: decoding %s: %v", fn, res.Payload, err)
	}
	return v
}

// evalErr evaluates and returns the raw result and the error.
func (w *world) evalErr(caller, fn string, args any) ([]byte, error) {
	c, cancel := ctx()
	defer cancel()
	return w.l.Evaluate(c, w.proposal(caller, fn, args))
}

// eval evaluates a query and decodes its result.
func eval[T any](w *world, caller, fn string, args any) T {
	w.t.Helper()
	out, err := w.evalErr(caller, fn, args)
	if err != nil {
		w.t.Fatalf("%s by %s: %v", fn, caller, err)
	}
	var v T
	if err := json.Unmarshal(out, &v); err != nil {
		w.t.Fatalf("%s: decoding %s: %v", fn, out, err)
	}
	return v
}

// wantErr checks an error's code and reason.
func wantErr(tb testing.TB, err error, code apperr.Code, reason string, what string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s succeeded, want %s/%s", what, code, reason)
	}
	if apperr.CodeOf(err) != code || apperr.ReasonOf(err) != reason {
		tb.Fatalf("%s: got %v, want %s/%s", what, err, code, reason)
	}
}

// fingerprint captures what a rejected call must not change: the height,
// the conservation totals and the accounts' balances and lots.
type fingerprint struct {
	Height uint64
	Totals []points.Totals
	Lots   map[string][]points.LotView
	Debts  map[string]int64
}

func (w *world) fingerprint() fingerprint {
	w.t.Helper()
	c, cancel := ctx()
	defer cancel()
	h, err := w.l.Height(c)
	if err != nil {
		w.t.Fatalf("Height: %v", err)
	}
	per, total := w.conservation()
	f := fingerprint{Height: h, Totals: append(per, total), Lots: map[string][]points.LotView{}, Debts: map[string]int64{}}
	for _, a := range w.accounts {
		f.Lots[a] = w.lots(a)
		f.Debts[a] = w.balance(a).Debt
	}
	return f
}

// unchanged fails the test if the ledger moved since before.
func (w *world) unchanged(before fingerprint, what string) {
	w.t.Helper()
	after := w.fingerprint()
	a, _ := json.Marshal(before)
	b, _ := json.Marshal(after)
	if string(a) != string(b) {
		w.t.Fatalf("%s changed the ledger:\nbefore %s\nafter  %s", what, a, b)
	}
}

func (w *world) balance(account string) points.Balance {
	w.t.Helper()
	return eval[points.Balance](w, w.o.Regulator, "GetBalance", points.AccountArgs{Account: account})
}

// lots pages through an account's lots, 2 per page, as the auditor.
func (w *world) lots(account string) []points.LotView {
	w.t.Helper()
	var all []points.LotView
	bm := ""
	for range 1000 {
		p := eval[points.LotsPage](w, w.o.Auditor, "GetLots", points.PageArgs{Account: account, PageSize: 2, Bookmark: bm})
		all = append(all, p.Lots...)
		if p.Bookmark == "" {
			return all
		}
		bm = p.Bookmark
	}
	w.t.Fatalf("GetLots of %s does not end", account)
	return nil
}

// conservation sums GetConservation over every page: per issuer (sorted)
// and in total.
func (w *world) conservation() ([]points.Totals, points.Totals) {
	w.t.Helper()
	var per []points.Totals
	var total points.Totals
	bm := ""
	for range 100000 {
		p := eval[points.ConservationPage](w, w.o.Regulator, "GetConservation", points.ConservationArgs{PageSize: 50, Bookmark: bm})
		for _, x := range p.Issuers {
			merged := false
			for i := range per {
				if per[i].Issuer == x.Issuer {
					if err := per[i].Add(x); err != nil {
						w.t.Fatal(err)
					}
					merged = true
				}
			}
			if !merged {
				per = append(per, x)
			}
		}
		if err := total.Add(p.Total); err != nil {
			w.t.Fatal(err)
		}
		if p.Bookmark == "" {
			break
		}
		bm = p.Bookmark
	}
	return per, total
}

func (w *world) issuerTotals(msp string) points.Totals {
	w.t.Helper()
	per, _ := w.conservation()
	for _, x := range per {
		if x.Issuer == msp {
			return x
		}
	}
	return points.Totals{Issuer: msp}
}

// checkConservation runs after every test: conservation per issuer and in
// total, and every lot of the test's accounts keeps its identity.
func (w *world) checkConservation() {
	t := w.t
	per, total := w.conservation()
	for _, x := range per {
		if !x.Balanced() {
			t.Errorf("conservation broken for %s: %+v", x.Issuer, x)
		}
	}
	if !total.Balanced() {
		t.Errorf("conservation broken in total: %+v", total)
	}
	for _, a := range w.accounts {
		for _, l := range w.lots(a) {
			if l.Remaining < 0 || l.GramsRemaining < 0 || l.Amount != l.Remaining+l.Donated+l.TransferredOut+l.Reversed+l.Expired {
				t.Errorf("lot %s breaks its identity: %+v", l.Key, l.Lot)
			}
		}
		if b := w.balance(a); b.Total < 0 || b.Debt < 0 {
			t.Errorf("account %s: negative balance %+v", a, b)
		}
	}
}

// item is a valid issuance of points to account under the suite's versions.
func (w *world) item(name, account string, pts, grams int64, exp time.Time) points.IssueItem {
	return points.IssueItem{
		ItemID: w.id(name), Account: account, Points: pts, Grams: grams, Category: "transit",
		RuleVersion:        points.VersionRef{ID: ruleID, Version: vers},
		MethodologyVersion: points.VersionRef{ID: methID, Version: vers},
		ProfileVersion:     points.VersionRef{ID: profID, Version: vers},
		QuantificationHash: hex64("q" + w.prefix + name), ExpiresAt: exp.UTC().Truncate(time.Second), Claim: w.claim(name),
	}
}

func (w *world) claim(name string) string { return hex64("claim" + w.prefix + name) }

func (w *world) issue(bank string, items ...points.IssueItem) points.IssueBatchResult {
	w.t.Helper()
	return submitInto[points.IssueBatchResult](w, bank, "IssueBatch", points.IssueBatchArgs{Items: items})
}

// days returns whole-second times relative to now.
func days(n int) time.Time {
	return time.Now().UTC().Add(time.Duration(n) * 24 * time.Hour).Truncate(time.Second)
}

func (w *world) family(id, head string, members ...string) {
	w.t.Helper()
	a := w.o.IssuerA
	w.submit(a, "CreateFamily", points.CreateFamilyArgs{FamilyID: id, Head: head, RequestHash: hex64("create" + id)})
	for _, m := range members {
		w.submit(a, "InviteMember", points.FamilyMemberArgs{FamilyID: id, Account: m, RequestHash: hex64("invite" + m)})
		w.submit(a, "AcceptInvite", points.FamilyMemberArgs{FamilyID: id, Account: m, RequestHash: hex64("accept" + m)})
	}
}

func (w *world) donate(account string, pts int64, req string) points.DonateArgs {
	return points.DonateArgs{Account: account, CharityID: w.charity, ProjectID: w.project, Points: pts, RequestHash: hex64(req)}
}

// errStop ends a Subscribe.
var errStop = errors.New("stop")

func decodeEvent(tb testing.TB, tx issuer.CommittedTx) points.Event {
	tb.Helper()
	var ev points.Event
	if err := json.Unmarshal(tx.Event, &ev); err != nil {
		tb.Fatalf("event of %s: %v", tx.TxID, err)
	}
	return ev
}

func changeTypes(ev points.Event) []string {
	out := make([]string, 0, len(ev.Changes))
	for _, c := range ev.Changes {
		s := c.Type
		if c.Cause != "" {
			s += ":" + c.Cause
		}
		out = append(out, s)
	}
	return out
}

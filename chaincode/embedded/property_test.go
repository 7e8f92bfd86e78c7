package embedded_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// The property test drives the points contract on the embedded ledger with
// random sequences of every transaction and checks them against a small
// model: conservation per issuer and in total, no negative lot or balance,
// earliest expiry first, transfers never extend expiry, a claim pays once
// (also twice in one batch), a trip (a grant's sub-claim) is never a claim,
// reversals account for every point of their claim and never leave a
// negative lot, a refunded trip gives back exactly its share of its grant
// (clawed from what the grant's lots still hold, then counted as expired,
// then owed) and the shares and the grant's own reversal never reverse a
// point twice, debts settle first, suspended
// issuers and charities cannot act, expired points cannot be spent before
// the sweep, and replaying the same transactions at the same clock in a
// fresh database gives the same state.
//
// The default run makes propChecks checks of about propSteps steps each;
// -rapid.checks and -rapid.steps (or RAPID_CHECKS, RAPID_STEPS) override it.
const (
	propChecks = 25
	propSteps  = 50
)

const (
	pReg, pBankA, pBankB, pCharityMSP = "RegMSP", "BankAMSP", "BankBMSP", "CharityMSP"
	pCharity, pProject                = "ch", "p"
)

var propStart = time.Date(2030, 3, 1, 1, 0, 0, 0, time.UTC)

// fakeClock is the ledger's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// step is one submitted proposal, with the clock it ran at and its outcome.
type step struct {
	at     time.Time
	p      issuer.Proposal
	reason string // "" when valid
}

type pclaim struct {
	claim, issuer, itemID, account string
	points                         int64
	reversed                       bool
	// A grant's trips, and what their reversals took (SubReversed,
	// SubExpired on the ledger).
	trips                   []*ptrip
	subReversed, subExpired int64
}

// ptrip is a trip of a grant: a sub-claim.
type ptrip struct {
	claim    string
	grant    *pclaim
	reversed bool
}

type pfamily struct {
	head             string
	members, invited map[string]bool
	dissolved        bool
}

type propModel struct {
	tb    testing.TB
	l     *embedded.Ledger
	pool  interface{ Close() }
	clock *fakeClock
	log   []step

	owner     map[string]string // account -> issuer
	accounts  []string
	claims    []*pclaim
	byClaim   map[string]*pclaim
	trips     []*ptrip
	issued    map[string]int64 // issuer -> points issued (model)
	debt      map[string]int64
	suspended map[string]bool // issuer MSPs and the charity (pCharity)
	famOf     map[string]string
	families  map[string]*pfamily
	famIDs    []string
	expiries  map[int64]bool
	n         int
}

func setPropChecks() {
	for name, v := range map[string]int{"checks": propChecks, "steps": propSteps} {
		if os.Getenv("RAPID_"+strings.ToUpper(name)) != "" {
			continue
		}
		set := false
		flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid."+name })
		if f := flag.Lookup("rapid." + name); f != nil && !set {
			_ = f.Value.Set(fmt.Sprint(v))
		}
	}
}

func openPropLedger(tb testing.TB, clock *fakeClock) (*embedded.Ledger, interface{ Close() }) {
	tb.Helper()
	pool := pgtest.NewDB(tb)
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := embedded.New(context.Background(), pool, points.New(), embedded.Options{Clock: clock.Now, Signer: priv, KeyID: "prop/v1"})
	if err != nil {
		tb.Fatalf("embedded.New: %v", err)
	}
	return l, pool
}

func TestPointsProperties(t *testing.T) {
	setPropChecks()
	rapid.Check(t, func(rt *rapid.T) {
		clock := &fakeClock{now: propStart}
		l, pool := openPropLedger(t, clock)
		m := &propModel{
			tb: t, l: l, pool: pool, clock: clock,
			owner: map[string]string{}, byClaim: map[string]*pclaim{}, issued: map[string]int64{}, debt: map[string]int64{},
			suspended: map[string]bool{}, famOf: map[string]string{}, families: map[string]*pfamily{}, expiries: map[int64]bool{},
		}
		defer func() { l.Close(); pool.Close() }()
		m.setup(rt)
		// rapid picks actions uniformly: repeat keys to weight them.
		rt.Repeat(map[string]func(*rapid.T){
			"issue": m.issue, "issue2": m.issue, "issue3": m.issue,
			"transfer": m.transfer, "transfer2": m.transfer,
			"donate": m.donate, "donate2": m.donate,
			"reverse": m.reverse, "refundTrip": m.refundTrip, "refundTrip2": m.refundTrip,
			"sweep":   m.sweep,
			"family":  m.family,
			"status":  m.status,
			"advance": m.advance, "advance2": m.advance,
			"": m.check,
		})
		m.replay(rt)
	})
}

func hexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func mustArgs(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// submit submits a proposal, records it for the replay, and returns the
// result payload and the error reason ("" when valid).
func (m *propModel) submit(rt *rapid.T, caller, fn string, args any) ([]byte, string) {
	p := issuer.Proposal{Caller: caller, Function: fn, Args: mustArgs(args)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := m.l.Submit(ctx, p)
	reason := ""
	if err != nil {
		reason = apperr.ReasonOf(err)
		if c := apperr.CodeOf(err); c == apperr.Internal || c == apperr.Unavailable {
			rt.Fatalf("%s by %s: %v", fn, caller, err)
		}
	}
	m.log = append(m.log, step{at: m.clock.Now(), p: p, reason: reason})
	if err != nil {
		return nil, reason
	}
	return res.Payload, ""
}

func (m *propModel) mustSubmit(rt *rapid.T, caller, fn string, args any) []byte {
	out, reason := m.submit(rt, caller, fn, args)
	if reason != "" {
		rt.Fatalf("%s by %s failed: %s", fn, caller, reason)
	}
	return out
}

// expect submits and checks the outcome against the model's expected reason.
func (m *propModel) expect(rt *rapid.T, want, caller, fn string, args any) []byte {
	out, got := m.submit(rt, caller, fn, args)
	if got != want {
		rt.Fatalf("%s by %s %s: got reason %q, model expects %q", fn, caller, mustArgs(args), got, want)
	}
	return out
}

func evalAs[T any](rt *rapid.T, l *embedded.Ledger, caller, fn string, args any) T {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: mustArgs(args)})
	if err != nil {
		rt.Fatalf("%s: %v", fn, err)
	}
	var v T
	if err := json.Unmarshal(out, &v); err != nil {
		rt.Fatalf("%s: %v", fn, err)
	}
	return v
}

func (m *propModel) setup(rt *rapid.T) {
	m.mustSubmit(rt, pReg, "InitLedger", points.InitLedgerArgs{RegulatorMSP: pReg})
	for _, mm := range []points.RegisterMemberArgs{
		{MSP: pBankA, Role: points.RoleIssuer, Name: "A", FilingNumber: "1", Status: points.StatusActive},
		{MSP: pBankB, Role: points.RoleIssuer, Name: "B", FilingNumber: "2", Status: points.StatusActive},
		{MSP: pCharityMSP, Role: points.RoleCharity, Name: "C", Status: points.StatusActive},
	} {
		m.mustSubmit(rt, pReg, "RegisterMember", mm)
	}
	eff := propStart.Add(-time.Hour)
	for _, bank := range []string{pBankA, pBankB} {
		m.mustSubmit(rt, bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "r", Version: "1", SHA256: hexOf("r"), EffectiveAt: eff})
		m.mustSubmit(rt, bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "m", Version: "1", SHA256: hexOf("m"), EffectiveAt: eff})
		m.mustSubmit(rt, bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "p", Version: "1", SHA256: hexOf("p"), EffectiveAt: eff,
			Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, PointValueFen: 1}})
	}
	m.mustSubmit(rt, pReg, "RegisterCharity", points.RegisterCharityArgs{CharityID: pCharity, Name: "Charity", MSP: pCharityMSP})
	m.mustSubmit(rt, pReg, "RegisterProject", points.RegisterProjectArgs{CharityID: pCharity, ProjectID: pProject, Name: "Project"})
	for bank, accts := range map[string][]string{pBankA: {"a0", "a1", "a2", "a3"}, pBankB: {"b0", "b1"}} {
		var args points.OpenAccountsArgs
		for _, a := range accts {
			args.Accounts = append(args.Accounts, points.OpenAccountArgs{AccountID: a, Kind: points.KindConsumer})
			m.owner[a] = bank
		}
		m.mustSubmit(rt, bank, "OpenAccounts", args)
	}
	m.accounts = []string{"a0", "a1", "a2", "a3", "b0", "b1"}
	// A family from the start, so that transfers happen; family actions
	// change it at random later.
	fid := m.fresh("fam")
	m.mustSubmit(rt, pBankA, "CreateFamily", points.CreateFamilyArgs{FamilyID: fid, Head: "a0", RequestHash: m.reqHash()})
	f := &pfamily{head: "a0", members: map[string]bool{}, invited: map[string]bool{}}
	m.families[fid], m.famIDs, m.famOf["a0"] = f, []string{fid}, fid
	for _, a := range []string{"a1", "a2"} {
		m.mustSubmit(rt, pBankA, "InviteMember", points.FamilyMemberArgs{FamilyID: fid, Account: a, RequestHash: m.reqHash()})
		m.mustSubmit(rt, pBankA, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fid, Account: a, RequestHash: m.reqHash()})
		f.members[a], m.famOf[a] = true, fid
	}
}

func (m *propModel) accountsOf(issuer string) []string {
	var out []string
	for _, a := range m.accounts {
		if m.owner[a] == issuer {
			out = append(out, a)
		}
	}
	return out
}

func (m *propModel) fresh(prefix string) string {
	m.n++
	return fmt.Sprintf("%s%d", prefix, m.n)
}

// uniqueExpiry returns a whole-second expiry no other lot of the run has,
// so that no two issuances tie in earliest-expiry order (ties are broken by
// lot ids, which derive from random transaction ids).
func (m *propModel) uniqueExpiry(d time.Duration) time.Time {
	e := m.clock.Now().Add(d).Truncate(time.Second).Add(time.Second)
	for m.expiries[e.Unix()] {
		e = e.Add(time.Second)
	}
	m.expiries[e.Unix()] = true
	return e
}

func (m *propModel) issue(rt *rapid.T) {
	bank := rapid.SampledFrom([]string{pBankA, pBankB}).Draw(rt, "issuer")
	n := rapid.IntRange(1, 4).Draw(rt, "items")
	var items []points.IssueItem
	for i := range n {
		it := points.IssueItem{
			ItemID: m.fresh("item"), Account: rapid.SampledFrom(m.accounts).Draw(rt, "account"),
			Points: rapid.Int64Range(1, 200).Draw(rt, "points"), Grams: rapid.Int64Range(0, 5000).Draw(rt, "grams"),
			Category: "transit", RuleVersion: points.VersionRef{ID: "r", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "m", Version: "1"},
			ProfileVersion: points.VersionRef{ID: "p", Version: "1"}, QuantificationHash: hexOf("q"),
			ExpiresAt: m.uniqueExpiry(rapid.SampledFrom([]time.Duration{3 * time.Second, 30 * time.Second, 10 * time.Minute, 6 * time.Hour, 48 * time.Hour, 40 * 24 * time.Hour}).Draw(rt, "validity")),
		}
		it.Claim = hexOf(it.ItemID)
		if rapid.IntRange(0, 2).Draw(rt, "grant") == 0 { // a day's transit grant: fresh trips
			for range rapid.IntRange(1, 3).Draw(rt, "trips") {
				it.SubClaims = append(it.SubClaims, hexOf(m.fresh("trip")))
			}
		}
		switch rapid.IntRange(0, 10).Draw(rt, "dup") {
		case 0, 1: // an earlier claim, as a retry (same item) or by another item
			if len(m.claims) > 0 {
				c := rapid.SampledFrom(m.claims).Draw(rt, "old")
				it.Claim = c.claim
				if rapid.Bool().Draw(rt, "sameItem") {
					it.ItemID = c.itemID
				}
			}
		case 2: // twice in this batch
			if i > 0 {
				prev := items[rapid.IntRange(0, i-1).Draw(rt, "prev")]
				it.Claim = prev.Claim
				if rapid.Bool().Draw(rt, "sameItem") {
					it.ItemID = prev.ItemID
				}
			}
		case 3: // a trip as the claim: never a grant's claim
			if len(m.trips) > 0 {
				it.Claim = rapid.SampledFrom(m.trips).Draw(rt, "trip").claim
			}
		}
		items = append(items, it)
	}
	if m.suspended[bank] {
		m.expect(rt, "member_suspended", bank, "IssueBatch", points.IssueBatchArgs{Items: items})
		return
	}
	out := m.expect(rt, "", bank, "IssueBatch", points.IssueBatchArgs{Items: items})
	var res points.IssueBatchResult
	if err := json.Unmarshal(out, &res); err != nil {
		rt.Fatal(err)
	}
	inBatch := map[string]*pclaim{}
	for i, it := range items {
		r := res.Results[i]
		c := m.byClaim[it.Claim]
		if c == nil {
			c = inBatch[it.Claim]
		}
		want, settle := "", int64(0)
		switch {
		case m.isTrip(it.Claim):
			want = points.ItemClaimedElsewhere
		case c != nil && c.issuer == bank && c.itemID == it.ItemID:
			want = points.ItemAlreadyIssued
		case c != nil:
			want = points.ItemClaimedElsewhere
		case m.owner[it.Account] != bank:
			want = points.ItemRejected
		default:
			want = points.ItemIssued
			settle = min(m.debt[it.Account], it.Points)
			m.debt[it.Account] -= settle
			m.issued[bank] += it.Points
			g := &pclaim{claim: it.Claim, issuer: bank, itemID: it.ItemID, account: it.Account, points: it.Points}
			for _, sc := range it.SubClaims {
				g.trips = append(g.trips, &ptrip{claim: sc, grant: g})
			}
			inBatch[it.Claim] = g
		}
		if r.Status != want || r.DebtSettled != settle {
			rt.Fatalf("item %d %+v: got %s (%s) settled %d, model expects %s settled %d", i, it, r.Status, r.Reason, r.DebtSettled, want, settle)
		}
		if want == points.ItemRejected && r.Reason != "not_account_owner" {
			rt.Fatalf("item %d rejected for %s", i, r.Reason)
		}
	}
	for _, it := range items {
		if c := inBatch[it.Claim]; c != nil && m.byClaim[it.Claim] == nil {
			m.byClaim[it.Claim] = c
			m.claims = append(m.claims, c)
			m.trips = append(m.trips, c.trips...)
		}
	}
}

// live returns an account's lots (key order) and the points the model says
// it may spend: remaining points of lots whose expiry is after the clock.
func (m *propModel) live(rt *rapid.T, account string) ([]points.LotView, int64) {
	lots := m.allLots(rt, account)
	now := m.clock.Now()
	var sum int64
	for _, l := range lots {
		if l.ExpiresAt.After(now) {
			sum += l.Remaining
		}
	}
	return lots, sum
}

func (m *propModel) allLots(rt *rapid.T, account string) []points.LotView {
	var all []points.LotView
	bm := ""
	for {
		p := evalAs[points.LotsPage](rt, m.l, pReg, "GetLots", points.PageArgs{Account: account, PageSize: points.MaxLotsPage, Bookmark: bm})
		all = append(all, p.Lots...)
		if p.Bookmark == "" {
			return all
		}
		bm = p.Bookmark
	}
}

// checkEarliestFirst checks that a spend of pts took from the live lots in
// key (expiry) order: every lot it touched but the last was emptied, and no
// later lot gave while an earlier one still holds points.
func (m *propModel) checkEarliestFirst(rt *rapid.T, before, after []points.LotView, pts int64, at time.Time) {
	rem := map[string]int64{}
	for _, l := range after {
		rem[l.Key] = l.Remaining
	}
	var took int64
	sawPartial := false
	for _, l := range before {
		if l.Remaining == 0 || !l.ExpiresAt.After(at) {
			if rem[l.Key] != l.Remaining {
				rt.Fatalf("lot %s (empty or expired) was spent", l.Key)
			}
			continue
		}
		d := l.Remaining - rem[l.Key]
		if d < 0 {
			rt.Fatalf("lot %s grew in a spend", l.Key)
		}
		if d > 0 && sawPartial {
			rt.Fatalf("lot %s spent after an earlier lot kept points", l.Key)
		}
		if rem[l.Key] > 0 {
			sawPartial = true
		}
		took += d
	}
	if took != pts {
		rt.Fatalf("the spend took %d points, want %d", took, pts)
	}
}

func (m *propModel) reqHash() string { return hexOf(m.fresh("req")) }

func (m *propModel) transfer(rt *rapid.T) {
	accts := m.accountsOf(pBankA)
	from := m.pickFunded(rt, accts)
	to := rapid.SampledFrom(accts).Filter(func(s string) bool { return s != from }).Draw(rt, "to")
	// Mostly between members of one family, so that transfers happen.
	var kin []string
	for _, a := range accts {
		if a != from && m.famOf[a] != "" && m.famOf[a] == m.famOf[from] {
			kin = append(kin, a)
		}
	}
	if len(kin) > 0 && rapid.IntRange(0, 4).Draw(rt, "kin") > 0 {
		to = rapid.SampledFrom(kin).Draw(rt, "to")
	}
	before, spendable := m.live(rt, from)
	pts := m.amount(rt, spendable)
	args := points.TransferArgs{From: from, To: to, Points: pts, RequestHash: m.reqHash()}
	want := ""
	switch {
	case m.suspended[pBankA]:
		want = "member_suspended"
	case m.famOf[from] == "" || m.famOf[from] != m.famOf[to]:
		want = "not_same_family"
	case spendable < pts:
		want = "insufficient_points"
	}
	at := m.clock.Now()
	if m.expect(rt, want, pBankA, "Transfer", args); want != "" {
		return
	}
	m.checkEarliestFirst(rt, before, m.allLots(rt, from), pts, at)
}

func (m *propModel) donate(rt *rapid.T) {
	bank := rapid.SampledFrom([]string{pBankA, pBankB}).Draw(rt, "issuer")
	acct := m.pickFunded(rt, m.accountsOf(bank))
	before, spendable := m.live(rt, acct)
	pts := m.amount(rt, spendable)
	args := points.DonateArgs{Account: acct, CharityID: pCharity, ProjectID: pProject, Points: pts, RequestHash: m.reqHash()}
	want := ""
	switch {
	case m.suspended[bank]:
		want = "member_suspended"
	case m.suspended[pCharity]:
		want = "charity_suspended"
	case spendable < pts:
		want = "insufficient_points"
	}
	at := m.clock.Now()
	out := m.expect(rt, want, bank, "Donate", args)
	if want != "" {
		return
	}
	var r points.ReceiptResult
	if err := json.Unmarshal(out, &r); err != nil {
		rt.Fatal(err)
	}
	if r.Receipt.Points != pts || r.Receipt.FundingFen != pts || r.Receipt.Grams < 0 {
		rt.Fatalf("receipt %+v", r.Receipt)
	}
	m.checkEarliestFirst(rt, before, m.allLots(rt, acct), pts, at)
}

func (m *propModel) reverse(rt *rapid.T) {
	if len(m.claims) == 0 {
		rt.Skip("no claims yet")
	}
	c := rapid.SampledFrom(m.claims).Draw(rt, "claim")
	caller := c.issuer
	if rapid.IntRange(0, 4).Draw(rt, "wrongIssuer") == 0 {
		caller = map[string]string{pBankA: pBankB, pBankB: pBankA}[c.issuer]
	}
	want := ""
	switch {
	case m.suspended[caller]:
		want = "member_suspended"
	case caller != c.issuer:
		want = "not_claim_owner"
	case c.reversed:
		want = "already_reversed"
	}
	live, expired := m.claimLots(rt, c.claim)
	out := m.expect(rt, want, caller, "Reverse", points.ReverseArgs{Claim: c.claim, Reason: "refund", ItemID: m.fresh("rev")})
	if want != "" {
		return
	}
	m.checkReversal(rt, out, c, c.points-c.subReversed, live, expired)
	c.reversed = true
	// Nothing of the claim remains spendable anywhere.
	now := m.clock.Now()
	for _, a := range m.accounts {
		for _, l := range m.allLots(rt, a) {
			if l.Claim == c.claim && l.Remaining > 0 && l.ExpiresAt.After(now) {
				rt.Fatalf("lot %s of the reversed claim still holds %d", l.Key, l.Remaining)
			}
		}
	}
}

// isTrip reports whether claim is a recorded trip (a grant's sub-claim).
func (m *propModel) isTrip(claim string) bool {
	return slices.ContainsFunc(m.trips, func(t *ptrip) bool { return t.claim == claim })
}

// claimLots returns what the lots of a claim (its lot and those transfers
// made from it) hold that has not expired, and what of them has expired
// (recorded, or due at the clock).
func (m *propModel) claimLots(rt *rapid.T, claim string) (live, expired int64) {
	now := m.clock.Now()
	for _, a := range m.accounts {
		for _, l := range m.allLots(rt, a) {
			if l.Claim != claim {
				continue
			}
			expired += l.Expired
			if l.ExpiresAt.After(now) {
				live += l.Remaining
			} else {
				expired += l.Remaining
			}
		}
	}
	return live, expired
}

// checkReversal checks a reversal of need points of grant c's lots (c
// itself, or the grant of a refunded trip), given what they held before:
// clawed from the live points first, then counted as expired what expired
// and no earlier share counted, the rest owed; the live points went down by
// exactly what was clawed.
func (m *propModel) checkReversal(rt *rapid.T, out []byte, c *pclaim, need, live, expired int64) points.Reversal {
	var r points.ReverseResult
	if err := json.Unmarshal(out, &r); err != nil {
		rt.Fatal(err)
	}
	rv := r.Reversal
	clawed := min(need, live)
	exp := max(0, min(need-clawed, expired-c.subExpired))
	want := points.Reversal{Clawed: clawed, Expired: exp, Debt: need - clawed - exp}
	if rv.Clawed != want.Clawed || rv.Expired != want.Expired || rv.Debt != want.Debt || rv.Truncated || rv.Debt < 0 {
		rt.Fatalf("reversal of %d points of %s (live %d, expired %d, %d expired counted before): %+v, model %+v",
			need, c.claim, live, expired, c.subExpired, rv, want)
	}
	if after, _ := m.claimLots(rt, c.claim); after != live-clawed {
		rt.Fatalf("the claim's lots hold %d live points after clawing %d of %d", after, clawed, live)
	}
	m.debt[c.account] += rv.Debt
	if r.DebtNow != m.debt[c.account] {
		rt.Fatalf("debt now %d, model %d", r.DebtNow, m.debt[c.account])
	}
	return rv
}

// refundTrip reverses a trip's share of its grant (a refunded fare):
// mostly a share the grant has left, sometimes more.
func (m *propModel) refundTrip(rt *rapid.T) {
	if len(m.trips) == 0 {
		rt.Skip("no trips yet")
	}
	tr := rapid.SampledFrom(m.trips).Draw(rt, "trip")
	g := tr.grant
	caller := g.issuer
	if rapid.IntRange(0, 5).Draw(rt, "wrongIssuer") == 0 {
		caller = map[string]string{pBankA: pBankB, pBankB: pBankA}[g.issuer]
	}
	left := g.points - g.subReversed
	pts := rapid.Int64Range(0, left).Draw(rt, "share")
	if rapid.IntRange(0, 5).Draw(rt, "tooMany") == 0 {
		pts = left + rapid.Int64Range(1, 5).Draw(rt, "over")
	}
	want := ""
	switch {
	case m.suspended[caller]:
		want = "member_suspended"
	case caller != g.issuer:
		want = "not_claim_owner"
	case tr.reversed:
		want = "already_reversed"
	case g.reversed:
		want = "grant_reversed"
	case pts > left:
		want = "points_exceed_grant"
	}
	live, expired := m.claimLots(rt, g.claim)
	out := m.expect(rt, want, caller, "Reverse", points.ReverseArgs{Claim: tr.claim, Reason: "refund", ItemID: m.fresh("trev"), Points: &pts})
	if want != "" {
		return
	}
	rv := m.checkReversal(rt, out, g, pts, live, expired)
	tr.reversed = true
	g.subReversed += pts
	g.subExpired += rv.Expired
	led := evalAs[points.Claim](rt, m.l, pReg, "GetClaim", points.ClaimArgs{Claim: g.claim})
	if led.SubReversed != g.subReversed || led.SubExpired != g.subExpired || led.SubReversed > led.Points {
		rt.Fatalf("grant %s on the ledger reversed %d (%d expired) by its trips, model %d (%d)", g.claim, led.SubReversed, led.SubExpired, g.subReversed, g.subExpired)
	}
}

func (m *propModel) totals(rt *rapid.T) []points.Totals {
	var per []points.Totals
	bm := ""
	for {
		p := evalAs[points.ConservationPage](rt, m.l, pReg, "GetConservation", points.ConservationArgs{PageSize: points.MaxConservationPage, Bookmark: bm})
		for _, x := range p.Issuers {
			i := slices.IndexFunc(per, func(y points.Totals) bool { return y.Issuer == x.Issuer })
			if i < 0 {
				per = append(per, x)
			} else if err := per[i].Add(x); err != nil {
				rt.Fatal(err)
			}
		}
		if p.Bookmark == "" {
			break
		}
		bm = p.Bookmark
	}
	sort.Slice(per, func(i, j int) bool { return per[i].Issuer < per[j].Issuer })
	return per
}

func (m *propModel) sweep(rt *rapid.T) {
	bank := rapid.SampledFrom([]string{pBankA, pBankB}).Draw(rt, "issuer")
	var days []string
	for e := range m.expiries {
		days = append(days, time.Unix(e, 0).UTC().Format("20060102"))
	}
	days = append(days, m.clock.Now().UTC().Format("20060102"))
	slices.Sort(days)
	bucket := rapid.SampledFrom(slices.Compact(days)).Draw(rt, "bucket")
	limit := rapid.IntRange(1, 10).Draw(rt, "limit")
	if m.suspended[bank] {
		m.expect(rt, "member_suspended", bank, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: limit})
		return
	}
	before := m.totals(rt)
	out := m.expect(rt, "", bank, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: limit})
	var r points.SweepResult
	if err := json.Unmarshal(out, &r); err != nil {
		rt.Fatal(err)
	}
	if r.Swept+r.Pruned+r.NotDue > limit {
		rt.Fatalf("examined %d lots > limit %d: %+v", r.Swept+r.Pruned+r.NotDue, limit, r)
	}
	// Swept on (as the issuer's sweeper does) until the bucket is read to
	// its end, no lot of the bank due in it holds points: the index lists
	// every lot placed in the bucket (issued, transferred), whatever was
	// emptied, reversed or swept in parts since.
	for round := 0; r.More && r.Swept+r.Pruned > 0; round++ {
		if round == 200 {
			rt.Fatalf("bucket %s: still more after %d sweeps", bucket, round)
		}
		out := m.expect(rt, "", bank, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: limit})
		r = points.SweepResult{}
		if err := json.Unmarshal(out, &r); err != nil {
			rt.Fatal(err)
		}
	}
	if !r.More {
		now := m.clock.Now()
		for _, acct := range m.accounts {
			for _, l := range m.allLots(rt, acct) {
				if l.Issuer == bank && l.Remaining > 0 && !l.ExpiresAt.After(now) && l.ExpiresAt.UTC().Format("20060102") == bucket {
					rt.Fatalf("lot %s is due in swept bucket %s and still holds %d points", l.Key, bucket, l.Remaining)
				}
			}
		}
	}
	// The sweep only writes down what had already happened.
	after := m.totals(rt)
	a, _ := json.Marshal(before)
	b, _ := json.Marshal(after)
	if string(a) != string(b) {
		rt.Fatalf("the sweep changed conservation:\n%s\n%s", a, b)
	}
}

func (m *propModel) family(rt *rapid.T) {
	accts := m.accountsOf(pBankA)
	acct := rapid.SampledFrom(accts).Draw(rt, "account")
	action := rapid.SampledFrom([]string{"CreateFamily", "InviteMember", "AcceptInvite", "LeaveFamily", "RemoveMember"}).Draw(rt, "action")
	var fid string
	if action == "CreateFamily" || len(m.famIDs) == 0 {
		action, fid = "CreateFamily", m.fresh("fam")
	} else {
		fid = rapid.SampledFrom(m.famIDs).Draw(rt, "family")
	}
	f := m.families[fid]
	want := ""
	if m.suspended[pBankA] {
		want = "member_suspended"
	} else {
		switch action {
		case "CreateFamily":
			if m.famOf[acct] != "" {
				want = "already_in_family"
			}
		case "InviteMember":
			switch {
			case f.dissolved:
				want = "family_not_found"
			case m.famOf[acct] != "":
				want = "already_in_family"
			case f.invited[acct]:
				want = "already_invited"
			case 1+len(f.members)+len(f.invited) >= points.MaxFamilySize:
				want = "family_full"
			}
		case "AcceptInvite":
			switch {
			case f.dissolved:
				want = "family_not_found"
			case !f.invited[acct]:
				want = "not_invited"
			case m.famOf[acct] != "":
				want = "already_in_family"
			}
		case "LeaveFamily":
			switch {
			case f.dissolved:
				want = "family_not_found"
			case acct == f.head && len(f.members) > 0:
				want = "family_not_empty"
			case acct != f.head && !f.members[acct]:
				want = "not_a_member"
			}
		case "RemoveMember":
			switch {
			case f.dissolved:
				want = "family_not_found"
			case acct == f.head:
				want = "cannot_remove_head"
			case !f.members[acct] && !f.invited[acct]:
				want = "not_a_member"
			}
		}
	}
	rh := m.reqHash()
	if action == "CreateFamily" {
		m.expect(rt, want, pBankA, action, points.CreateFamilyArgs{FamilyID: fid, Head: acct, RequestHash: rh})
	} else {
		m.expect(rt, want, pBankA, action, points.FamilyMemberArgs{FamilyID: fid, Account: acct, RequestHash: rh})
	}
	if want != "" {
		return
	}
	switch action {
	case "CreateFamily":
		m.families[fid] = &pfamily{head: acct, members: map[string]bool{}, invited: map[string]bool{}}
		m.famIDs = append(m.famIDs, fid)
		m.famOf[acct] = fid
	case "InviteMember":
		f.invited[acct] = true
	case "AcceptInvite":
		delete(f.invited, acct)
		f.members[acct] = true
		m.famOf[acct] = fid
	case "LeaveFamily":
		if acct == f.head {
			f.dissolved, f.invited = true, map[string]bool{}
		} else {
			delete(f.members, acct)
		}
		delete(m.famOf, acct)
	case "RemoveMember":
		if f.members[acct] {
			delete(f.members, acct)
			delete(m.famOf, acct)
		} else {
			delete(f.invited, acct)
		}
	}
}

// pickFunded draws an account, mostly one holding points.
func (m *propModel) pickFunded(rt *rapid.T, accts []string) string {
	var funded []string
	for _, a := range accts {
		if _, n := m.live(rt, a); n > 0 {
			funded = append(funded, a)
		}
	}
	if len(funded) > 0 && rapid.IntRange(0, 4).Draw(rt, "funded") > 0 {
		return rapid.SampledFrom(funded).Draw(rt, "account")
	}
	return rapid.SampledFrom(accts).Draw(rt, "account")
}

// amount draws points to spend: mostly what the account can afford,
// sometimes more.
func (m *propModel) amount(rt *rapid.T, spendable int64) int64 {
	if spendable > 0 && rapid.IntRange(0, 3).Draw(rt, "affordable") > 0 {
		return rapid.Int64Range(1, spendable).Draw(rt, "points")
	}
	return rapid.Int64Range(1, spendable+50).Draw(rt, "points")
}

// status suspends an issuer or the charity, lets a few actions run against
// the suspension (they must fail), and reactivates it.
func (m *propModel) status(rt *rapid.T) {
	who := rapid.SampledFrom([]string{pBankA, pBankB, pCharity}).Draw(rt, "who")
	m.setStatus(rt, who, true)
	for range rapid.IntRange(1, 3).Draw(rt, "tries") {
		rapid.SampledFrom([]func(*rapid.T){m.issue, m.donate, m.transfer, m.reverse, m.refundTrip, m.sweep, m.family}).Draw(rt, "try")(rt)
	}
	m.setStatus(rt, who, false)
}

func (m *propModel) setStatus(rt *rapid.T, who string, suspended bool) {
	m.suspended[who] = suspended
	st := points.StatusActive
	if suspended {
		st = points.StatusSuspended
	}
	if who == pCharity {
		m.mustSubmit(rt, pReg, "SetCharityStatus", points.SetCharityStatusArgs{CharityID: pCharity, Status: st})
	} else {
		m.mustSubmit(rt, pReg, "SetMemberStatus", points.SetMemberStatusArgs{MSP: who, Status: st})
	}
}

func (m *propModel) advance(rt *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 20 * time.Second, time.Minute, time.Hour, 24 * time.Hour, 10 * 24 * time.Hour}).Draw(rt, "advance")
	m.clock.set(m.clock.Now().Add(d))
}

// check is run after every step.
func (m *propModel) check(rt *rapid.T) {
	var total points.Totals
	for _, x := range m.totals(rt) {
		if !x.Balanced() {
			rt.Fatalf("conservation broken for %s: %+v", x.Issuer, x)
		}
		if x.Issued != m.issued[x.Issuer] {
			rt.Fatalf("%s issued %d, model %d", x.Issuer, x.Issued, m.issued[x.Issuer])
		}
		if err := total.Add(x); err != nil {
			rt.Fatal(err)
		}
	}
	if !total.Balanced() {
		rt.Fatalf("conservation broken in total: %+v", total)
	}
	now := m.clock.Now()
	byKey := map[string]points.LotView{}
	var all []points.LotView
	issueLots := map[string]int{}
	for _, a := range m.accounts {
		lots, spendable := m.live(rt, a)
		for _, l := range lots {
			byKey[l.Key] = l
			all = append(all, l)
			if l.Remaining < 0 || l.GramsRemaining < 0 || l.Amount != l.Remaining+l.Donated+l.TransferredOut+l.Reversed+l.Expired {
				rt.Fatalf("lot %s breaks its identity: %+v", l.Key, l.Lot)
			}
			if l.SourceLot == "" {
				issueLots[l.Claim]++
			}
		}
		b := evalAs[points.Balance](rt, m.l, pReg, "GetBalance", points.AccountArgs{Account: a})
		if b.Total != spendable || b.Debt != m.debt[a] || b.Total < 0 {
			rt.Fatalf("balance of %s %+v, model spendable %d debt %d at %s", a, b, spendable, m.debt[a], now)
		}
		if b.FamilyID != m.famOf[a] {
			rt.Fatalf("%s in family %q, model %q", a, b.FamilyID, m.famOf[a])
		}
	}
	for _, l := range all {
		if l.SourceLot != "" {
			src, ok := byKey[l.SourceLot]
			if !ok || !src.ExpiresAt.Equal(l.ExpiresAt) || src.Claim != l.Claim || !slices.Contains(src.Children, l.Key) {
				rt.Fatalf("transfer lot %s does not match its source %s", l.Key, l.SourceLot)
			}
		}
	}
	for _, c := range m.claims {
		if issueLots[c.claim] != 1 {
			rt.Fatalf("claim %s paid %d times", c.claim, issueLots[c.claim])
		}
	}
	if len(issueLots) != len(m.claims) {
		rt.Fatalf("%d claims paid, model %d", len(issueLots), len(m.claims))
	}
}

// stateDigest is the ledger's state seen through queries, without what
// derives from random transaction ids (lot and receipt ids, lot order
// among equal expiries, grams rounding of that order, timestamps).
func stateDigest(rt *rapid.T, l *embedded.Ledger, accounts []string) string {
	type group struct {
		Account, Claim                                            string
		Expires                                                   int64
		Amount, Remaining, Donated, TransferredOut, Reversed, Exp int64
	}
	type acct struct {
		Balance, Debt int64
		Family        string
		Groups        []group
	}
	var out struct {
		Accounts []acct
		Totals   []points.Totals
	}
	for _, a := range accounts {
		b := evalAs[points.Balance](rt, l, pReg, "GetBalance", points.AccountArgs{Account: a})
		x := acct{Balance: b.Total, Debt: b.Debt, Family: b.FamilyID}
		idx := map[string]int{}
		bm := ""
		for {
			p := evalAs[points.LotsPage](rt, l, pReg, "GetLots", points.PageArgs{Account: a, PageSize: points.MaxLotsPage, Bookmark: bm})
			for _, lv := range p.Lots {
				k := fmt.Sprint(lv.Claim, lv.ExpiresAt.Unix())
				i, ok := idx[k]
				if !ok {
					i = len(x.Groups)
					idx[k] = i
					x.Groups = append(x.Groups, group{Account: a, Claim: lv.Claim, Expires: lv.ExpiresAt.Unix()})
				}
				// A due lot is expired whether or not a sweep (whose
				// limit may cut a bucket at a lot-id-dependent place) has
				// written it down.
				g := &x.Groups[i]
				g.Amount += lv.Amount
				g.Remaining += lv.Held
				g.Donated += lv.Donated
				g.TransferredOut += lv.TransferredOut
				g.Reversed += lv.Reversed
				g.Exp += lv.Expired + lv.Remaining - lv.Held
			}
			if p.Bookmark == "" {
				break
			}
			bm = p.Bookmark
		}
		sort.Slice(x.Groups, func(i, j int) bool {
			gi, gj := x.Groups[i], x.Groups[j]
			return gi.Expires < gj.Expires || (gi.Expires == gj.Expires && gi.Claim < gj.Claim)
		})
		out.Accounts = append(out.Accounts, x)
	}
	p := evalAs[points.ConservationPage](rt, l, pReg, "GetConservation", points.ConservationArgs{PageSize: points.MaxConservationPage})
	out.Totals = p.Issuers
	for i := range out.Totals {
		out.Totals[i].Lots = 0 // how many lots a transfer makes depends on the order of equal expiries
	}
	b, _ := json.MarshalIndent(out, "", " ")
	return string(b)
}

// replay runs the recorded transactions again, at the same clock, on a
// fresh database: every outcome and the final state must be the same.
func (m *propModel) replay(rt *rapid.T) {
	want := stateDigest(rt, m.l, m.accounts)
	stats := map[string]int{}
	for _, st := range m.log {
		if st.reason == "" {
			stats[st.p.Function]++
		} else {
			stats[st.p.Function+":"+st.reason]++
		}
	}
	m.tb.Logf("replaying %d transactions: %v", len(m.log), stats)
	clock := &fakeClock{now: propStart}
	l, pool := openPropLedger(m.tb, clock)
	defer func() { l.Close(); pool.Close() }()
	for i, s := range m.log {
		clock.set(s.at)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := l.Submit(ctx, s.p)
		cancel()
		got := ""
		if err != nil {
			got = apperr.ReasonOf(err)
		}
		if got != s.reason {
			rt.Fatalf("replay step %d (%s): reason %q, first run %q", i, s.p.Function, got, s.reason)
		}
	}
	clock.set(m.clock.Now())
	if got := stateDigest(rt, l, m.accounts); got != want {
		rt.Fatalf("replayed state differs (-first +replay):\n%s", cmp.Diff(want, got))
	}
}

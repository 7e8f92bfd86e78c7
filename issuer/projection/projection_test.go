package projection

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	regulator = "RegulatorMSP"
	bankA     = "BankAMSP"
	bankB     = "BankBMSP"
	charityM  = "CharityMSP"
)

// env is one test's database, embedded ledger (running the points contract
// on a clock the test can move forward) and what the workload did.
type env struct {
	t      testing.TB
	pool   *pgxpool.Pool
	led    *embedded.Ledger
	offset atomic.Int64 // added to the ledger's clock

	mu       sync.Mutex
	owner    map[string]string // account -> issuer
	lastTxID string
	extended []string // keys of lots the workload extended
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, pgtest.NewDB(t))
}

// newEnvOn is newEnv on a migrated database of the caller's.
func newEnvOn(t testing.TB, pool *pgxpool.Pool) *env {
	t.Helper()
	e := &env{t: t, pool: pool, owner: map[string]string{}}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.led, err = embedded.New(context.Background(), e.pool, points.New(), embedded.Options{
		Signer: priv, KeyID: "ledger/v1",
		Clock:        func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.led.Close() })
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())).UTC() }

func hex64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (e *env) submit(caller, fn string, args any) *issuer.TxResult {
	e.t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.led.Submit(context.Background(), issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		e.t.Fatalf("%s %s: %v", caller, fn, err)
	}
	e.mu.Lock()
	e.lastTxID = res.TxID
	e.mu.Unlock()
	return res
}

func submitInto[T any](e *env, caller, fn string, args any) T {
	e.t.Helper()
	var out T
	if err := json.Unmarshal(e.submit(caller, fn, args).Payload, &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func evalInto[T any](e *env, caller, fn string, args any) T {
	e.t.Helper()
	b, _ := json.Marshal(args)
	res, err := e.led.Evaluate(context.Background(), issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		e.t.Fatalf("%s %s: %v", caller, fn, err)
	}
	var out T
	if err := json.Unmarshal(res, &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

var (
	rule = points.VersionRef{ID: "rule", Version: "1"}
	meth = points.VersionRef{ID: "meth", Version: "1"}
	prof = points.VersionRef{ID: "profile", Version: "1"}
)

// setup registers the regulator, two issuers, a charity member, a charity
// with a project and anchored versions, and opens the accounts.
func (e *env) setup(accountsA, accountsB []string) {
	e.t.Helper()
	eff := e.now().Add(-time.Hour)
	e.submit(regulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulator})
	for _, m := range []points.RegisterMemberArgs{
		{MSP: bankA, Role: points.RoleIssuer, Name: "Bank A", FilingNumber: "F-A", Status: points.StatusActive},
		{MSP: bankB, Role: points.RoleIssuer, Name: "Bank B", FilingNumber: "F-B", Status: points.StatusActive},
		{MSP: charityM, Role: points.RoleCharity, Name: "Charity", Status: points.StatusActive},
	} {
		e.submit(regulator, "RegisterMember", m)
	}
	e.submit(regulator, "RegisterCharity", points.RegisterCharityArgs{CharityID: "trees", Name: "Trees", MSP: charityM})
	e.submit(regulator, "RegisterProject", points.RegisterProjectArgs{CharityID: "trees", ProjectID: "p1", Name: "Plant"})
	for _, bank := range []string{bankA, bankB} {
		e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: rule.ID, Version: rule.Version, SHA256: hex64("r"), EffectiveAt: eff})
		e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: meth.ID, Version: meth.Version, SHA256: hex64("m"), EffectiveAt: eff})
		e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: prof.ID, Version: prof.Version, SHA256: hex64("p"), EffectiveAt: eff,
			Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, TransferMaxPoints: 1000, TransferMaxPointsPerMonth: 5000, PointValueFen: 2, GraceDays: 30}})
	}
	for bank, accts := range map[string][]string{bankA: accountsA, bankB: accountsB} {
		var a points.OpenAccountsArgs
		for _, id := range accts {
			a.Accounts = append(a.Accounts, points.OpenAccountArgs{AccountID: id, Kind: points.KindConsumer})
			e.owner[id] = bank
		}
		if len(a.Accounts) > 0 {
			e.submit(bank, "OpenAccounts", a)
		}
	}
}

func item(name, account string, pts, grams int64, exp time.Time) points.IssueItem {
	return points.IssueItem{
		ItemID: name, Account: account, Points: pts, Grams: grams, Category: "transit",
		RuleVersion: rule, MethodologyVersion: meth, ProfileVersion: prof,
		QuantificationHash: hex64("q" + name), ExpiresAt: exp.UTC().Truncate(time.Second), Claim: hex64("claim" + name),
	}
}

var (
	accountsA = []string{"a1", "a2", "a3", "a4", "a5"}
	accountsB = []string{"b1", "b2"}
)

// workload drives a realistic sequence: batches with retries, a claim taken
// elsewhere, rejections and sub-claims; a family with transfers; donations
// and an acknowledgement; reversals following provenance and making debt,
// settled by a later issuance; family departures; expiry and sweeps.
func (e *env) workload() {
	e.t.Helper()
	e.setup(accountsA, accountsB)
	now := e.now()
	short := now.Add(24 * time.Hour)
	for k := range 5 {
		var items []points.IssueItem
		for i, acct := range accountsA[:4] {
			exp := now.Add(time.Duration(30+40*k+i) * 24 * time.Hour)
			if (k+i)%3 == 0 {
				exp = short
			}
			it := item(fmt.Sprintf("it-%d-%d", k, i), acct, int64(10+7*k+i), int64(1000+37*k+i), exp)
			if k == 2 && i == 1 {
				it.SubClaims = []string{hex64("trip1"), hex64("trip2")}
			}
			items = append(items, it)
		}
		if k > 0 {
			items = append(items, item("it-0-0", "a1", 10, 1000, short)) // a retry: already_issued
		}
		if k == 3 {
			items = append(items, item("bad", "nobody", 5, 0, short)) // rejected
		}
		e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: items})
	}
	e.submit(bankB, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{
		item("b-1", "b1", 50, 5000, now.Add(90*24*time.Hour)),
		item("b-2", "b2", 20, 2000, short),
		{ItemID: "steal", Account: "b1", Points: 10, Category: "transit", RuleVersion: rule, MethodologyVersion: meth, ProfileVersion: prof,
			QuantificationHash: hex64("q"), ExpiresAt: short.Truncate(time.Second), Claim: hex64("claimit-0-0")}, // claimed_elsewhere
	}})

	fam := func(fn, acct string) {
		e.submit(bankA, fn, points.FamilyMemberArgs{FamilyID: "fam1", Account: acct, RequestHash: hex64(fn + acct)})
	}
	e.submit(bankA, "CreateFamily", points.CreateFamilyArgs{FamilyID: "fam1", Head: "a1", RequestHash: hex64("create")})
	for _, m := range []string{"a2", "a3"} {
		fam("InviteMember", m)
		fam("AcceptInvite", m)
	}
	fam("InviteMember", "a4")
	for i, tr := range []points.TransferArgs{{From: "a1", To: "a2", Points: 30}, {From: "a2", To: "a3", Points: 15}, {From: "a1", To: "a3", Points: 20}} {
		tr.RequestHash = hex64(fmt.Sprint("transfer", i))
		e.submit(bankA, "Transfer", tr)
	}
	donate := func(bank, acct string, pts int64) points.ReceiptResult {
		return submitInto[points.ReceiptResult](e, bank, "Donate", points.DonateArgs{Account: acct, CharityID: "trees", ProjectID: "p1", Points: pts, RequestHash: hex64("donate" + acct)})
	}
	r := donate(bankA, "a1", 25)
	donate(bankA, "a3", 5)
	donate(bankB, "b1", 10)
	e.submit(charityM, "AcknowledgeDonation", points.ReceiptArgs{ReceiptID: r.Receipt.ReceiptID})

	e.extend()

	// A reversal that follows the transfers, one that makes debt, and an
	// issuance that settles part of it.
	e.submit(bankA, "Reverse", points.ReverseArgs{Claim: hex64("claimit-0-1"), Reason: "refund", ItemID: "rev-1"})
	e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item("a5-1", "a5", 40, 4000, now.Add(200*24*time.Hour))}})
	donate(bankA, "a5", 40)
	e.submit(bankA, "Reverse", points.ReverseArgs{Claim: hex64("claima5-1"), Reason: "chargeback", ItemID: "rev-2"})
	e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item("a5-2", "a5", 30, 3000, now.Add(300*24*time.Hour))}})

	fam("RemoveMember", "a3")
	fam("LeaveFamily", "a2")
	fam("RemoveMember", "a4") // withdraws the invitation

	// Expiry: the short lots expire; sweep both issuers' bucket.
	e.offset.Add(int64(2 * 24 * time.Hour))
	bucket := short.UTC().Format("20060102")
	for _, bank := range []string{bankA, bankB} {
		for {
			s := submitInto[points.SweepResult](e, bank, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 3})
			if !s.More {
				break
			}
		}
	}
	e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item("late", "a4", 9, 900, e.now().Add(60*24*time.Hour))}})
}

// extend grace-extends the lot of it-0-1 (which the first reversal walks)
// and a transfer lot of a3 in one ExtendLots, so that the projection moves
// lots, their claim and their source references.
func (e *env) extend() {
	e.t.Helper()
	var items []points.ExtendItem
	for _, acct := range []string{"a2", "a3"} {
		for _, v := range evalInto[points.LotsPage](e, bankA, "GetLots", points.PageArgs{Account: acct, PageSize: 200}).Lots {
			l := v.Lot
			if l.Remaining > 0 && (l.Claim == hex64("claimit-0-1") && l.SourceLot == "" || acct == "a3" && l.SourceLot != "" && len(items) == 1) {
				items = append(items, points.ExtendItem{LotKey: l.Key, NewExpiresAt: l.ExpiresAt.Add(10 * 24 * time.Hour), Reason: "no_reminder"})
			}
		}
	}
	res := submitInto[points.ExtendLotsResult](e, bankA, "ExtendLots", points.ExtendLotsArgs{Items: items})
	if len(items) != 2 || res.Extended != 2 {
		e.t.Fatalf("ExtendLots(%+v) = %+v", items, res)
	}
	e.extended = append(e.extended, res.Results[0].NewLotKey, res.Results[1].NewLotKey)
}

// runProjector runs p until the test ends.
func runProjector(t *testing.T, p *Projector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func waitFor(t *testing.T, p *Projector, txID string) issuer.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cp, err := p.WaitFor(ctx, txID)
	if err != nil {
		t.Fatalf("WaitFor %s: %v", txID, err)
	}
	return cp
}

// checkAgainstLedger compares, for every account, the projection's balance
// and lots with the ledger's, and the sum of its movements with its lots.
func checkAgainstLedger(t *testing.T, e *env, p *Projector) {
	t.Helper()
	ctx := context.Background()
	extended := map[string]bool{}
	defer func() {
		for _, k := range e.extended {
			if !extended[k] {
				t.Errorf("the ledger holds no extended lot %s", k)
			}
		}
	}()
	for acct, bank := range e.owner {
		want := evalInto[points.Balance](e, bank, "GetBalance", points.AccountArgs{Account: acct})
		got, err := p.Balance(ctx, acct, want.AsOf)
		if err != nil {
			t.Fatalf("Balance %s: %v", acct, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("balance of %s mismatch (-ledger +projection):\n%s", acct, diff)
		}
		var ledgerLots []points.Lot
		for bookmark := ""; ; {
			page := evalInto[points.LotsPage](e, bank, "GetLots", points.PageArgs{Account: acct, PageSize: 200, Bookmark: bookmark})
			for _, v := range page.Lots {
				if v.Lot.Extension != nil {
					// Not projected: the row holds the moved key and expiry.
					extended[v.Lot.Key] = true
					v.Lot.Extension = nil
				}
				ledgerLots = append(ledgerLots, v.Lot)
			}
			if bookmark = page.Bookmark; bookmark == "" {
				break
			}
		}
		projLots, err := queryLots(ctx, e.pool, `WHERE l.account = $1 ORDER BY l.lot_key`, acct)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ledgerLots, projLots); diff != "" {
			t.Errorf("lots of %s mismatch (-ledger +projection):\n%s", acct, diff)
		}
		var moved, held int64
		if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(points), 0) FROM proj_movements WHERE account = $1`, acct).Scan(&moved); err != nil {
			t.Fatal(err)
		}
		for _, l := range ledgerLots {
			held += l.Remaining
		}
		if moved != held {
			t.Errorf("account %s: movements sum to %d, lots hold %d", acct, moved, held)
		}
		if moved != got.Total {
			t.Errorf("account %s: movements sum to %d, balance %d (every due lot is swept)", acct, moved, got.Total)
		}
		live, err := p.Lots(ctx, acct, want.AsOf)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != want.Lots {
			t.Errorf("account %s: Lots returned %d, the ledger counts %d", acct, len(live), want.Lots)
		}
	}
}

// dump is a canonical text of every projection table.
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	tables := []struct{ name, order string }{
		{"(SELECT name, block, idx, tx_id FROM proj_checkpoint)", "name"},
		{"proj_txs", "block, idx"},
		{"proj_accounts", "account_id"},
		{"proj_families", "family_id"},
		{"proj_lots", "lot_key"},
		{"proj_claims", "claim"},
		{"proj_movements", "block, idx, seq"},
		{"proj_item_results", "block, idx, item_index"},
		{"proj_receipts", "receipt_id"},
	}
	var b strings.Builder
	for _, tb := range tables {
		var s string
		q := fmt.Sprintf(`SELECT coalesce(json_agg(t ORDER BY %s)::text, '[]') FROM %s t`, tb.order, tb.name)
		if err := pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("dumping %s: %v", tb.name, err)
		}
		fmt.Fprintf(&b, "%s\n%s\n", tb.name, strings.ReplaceAll(s, "}, {", "},\n{"))
	}
	return b.String()
}

func rebuild(t *testing.T, e *env) time.Duration {
	t.Helper()
	began := time.Now()
	if err := Rebuild(context.Background(), e.pool, e.led, nil); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	return time.Since(began)
}

// ledgerCounts scans the ledger: valid transactions and balance movements.
func ledgerCounts(t *testing.T, e *env) (txs, movements int) {
	t.Helper()
	h, err := e.led.Height(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := errors.New("stop")
	err = e.led.Subscribe(ctx, issuer.Checkpoint{}, func(tx issuer.CommittedTx) error {
		var ev points.Event
		if err := json.Unmarshal(tx.Event, &ev); err != nil {
			return err
		}
		txs++
		for _, c := range ev.Changes {
			if c.Type == points.ChangeLotCreated || c.Type == points.ChangeLotDebited {
				movements++
			}
		}
		if tx.TxID == e.lastTxID || tx.Block > h {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Subscribe: %v", err)
	}
	return txs, movements
}

func countRows(t testing.TB, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestProjectionMatchesLedger runs the projector while the workload runs,
// then compares it with the ledger and with a rebuild from scratch.
func TestProjectionMatchesLedger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := New(e.pool, e.led, nil)
	runProjector(t, p)
	e.workload()
	cp := waitFor(t, p, e.lastTxID)
	if pos, err := p.Position(context.Background()); err != nil || pos != cp {
		t.Fatalf("Position = %v, %v; want %v", pos, err, cp)
	}
	checkAgainstLedger(t, e, p)

	txs, movements := ledgerCounts(t, e)
	if n := countRows(t, e.pool, "proj_txs"); n != txs {
		t.Errorf("proj_txs has %d rows, the ledger %d valid transactions", n, txs)
	}
	if n := countRows(t, e.pool, "proj_movements"); n != movements {
		t.Errorf("proj_movements has %d rows, want %d", n, movements)
	}

	// Read helpers.
	ctx := context.Background()
	r, err := p.ItemResult(ctx, bankA, "it-0-0")
	if err != nil || r.Status != points.ItemAlreadyIssued {
		t.Errorf("ItemResult(it-0-0) = %+v, %v; want the retry's already_issued", r, err)
	}
	if r, err := p.ItemResult(ctx, bankB, "steal"); err != nil || r.Status != points.ItemClaimedElsewhere {
		t.Errorf("ItemResult(steal) = %+v, %v", r, err)
	}
	if r, err := p.ItemResult(ctx, bankA, "bad"); err != nil || r.Status != points.ItemRejected || r.Reason != "account_not_found" {
		t.Errorf("ItemResult(bad) = %+v, %v", r, err)
	}
	if _, err := p.ItemResult(ctx, bankA, "none"); apperr.ReasonOf(err) != "item_not_found" {
		t.Errorf("ItemResult(none): %v", err)
	}
	if _, err := p.Balance(ctx, "nobody", time.Now()); apperr.ReasonOf(err) != "account_not_found" {
		t.Errorf("Balance(nobody): %v", err)
	}
	var subs int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM proj_claims WHERE parent = $1`, hex64("claimit-2-1")).Scan(&subs); err != nil || subs != 2 {
		t.Errorf("sub-claims of it-2-1: %d, %v", subs, err)
	}
	var debt int64
	if err := e.pool.QueryRow(ctx, `SELECT debt FROM proj_accounts WHERE account_id = 'a5'`).Scan(&debt); err != nil || debt != 10 {
		t.Errorf("a5's debt = %d, %v; want 40 - 30 settled", debt, err)
	}
	// Movements pages: newest first, every movement once.
	var all []Movement
	for cursor := ""; ; {
		page, next, err := p.Movements(ctx, "a1", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM proj_movements WHERE account = 'a1'`).Scan(&n); err != nil || n != len(all) || n < 5 {
		t.Errorf("paged %d movements of a1, table has %d (%v)", len(all), n, err)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if !(issuer.Checkpoint{Block: b.Position.Block, Index: b.Position.Index}.Less(a.Position) || (a.Position == b.Position && b.Seq < a.Seq)) {
			t.Fatalf("movements out of order: %+v then %+v", a, b)
		}
	}
	for _, m := range all {
		if m.Cause == points.CauseTransferOut && m.Counterparty == "" || m.Cause == points.CauseDonate && m.ReceiptID == "" {
			t.Errorf("movement without its counterparty: %+v", m)
		}
	}
	if _, _, err := p.Movements(ctx, "a1", "bogus", 3); apperr.ReasonOf(err) != "invalid_cursor" {
		t.Errorf("Movements with a bad cursor: %v", err)
	}

	incremental := dump(t, e.pool)
	took := rebuild(t, e)
	if diff := cmp.Diff(incremental, dump(t, e.pool)); diff != "" {
		t.Errorf("rebuild differs from the incremental projection (-incremental +rebuilt):\n%s", diff)
	}
	t.Logf("%d transactions, %d movements; rebuild took %s", txs, movements, took.Round(time.Millisecond))
	checkAgainstLedger(t, e, p)
}

// TestRestartAppliesOnce stops the projector at random moments (between and
// inside its transactions) and restarts it: each ledger transaction is
// applied exactly once.
func TestRestartAppliesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.workload()
	txs, movements := ledgerCounts(t, e)
	restarts := 0
	for {
		p := New(e.pool, e.led, nil)
		p.groupTxs = 1 + rand.IntN(3)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(5+rand.IntN(40))*time.Millisecond)
		if err := p.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		cancel()
		restarts++
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM proj_txs WHERE tx_id = $1`, e.lastTxID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if restarts > 2000 {
			t.Fatal("the projection does not catch up")
		}
	}
	if n := countRows(t, e.pool, "proj_txs"); n != txs {
		t.Errorf("proj_txs has %d rows, want %d", n, txs)
	}
	if n := countRows(t, e.pool, "proj_movements"); n != movements {
		t.Errorf("proj_movements has %d rows, want %d", n, movements)
	}
	var applied int
	if err := e.pool.QueryRow(context.Background(), `SELECT applied FROM proj_checkpoint WHERE name = $1`, Name).Scan(&applied); err != nil || applied != txs {
		t.Errorf("checkpoint counts %d applied transactions (%v), want %d", applied, err, txs)
	}
	checkAgainstLedger(t, e, New(e.pool, e.led, nil))
	incremental := dump(t, e.pool)
	rebuild(t, e)
	if diff := cmp.Diff(incremental, dump(t, e.pool)); diff != "" {
		t.Errorf("after %d restarts the projection differs from a rebuild (-restarted +rebuilt):\n%s", restarts, diff)
	}
	t.Logf("%d restarts", restarts)
}

// TestConcurrentProjectors runs four projectors on one database while the
// workload runs: two contend for the leader lock, two apply without it (the
// checkpoint row lock alone keeps them exactly-once). A rebuild in the
// middle resets the checkpoint under them.
func TestConcurrentProjectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ps []*Projector
	for i := range 4 {
		p := New(e.pool, e.led, nil)
		p.groupTxs = 1 + i
		p.noLeader = i >= 2
		runProjector(t, p)
		ps = append(ps, p)
	}
	e.workload()
	if err := Rebuild(context.Background(), e.pool, e.led, nil); err != nil {
		t.Fatal(err)
	}
	e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item("after-rebuild", "a1", 3, 30, e.now().Add(99*24*time.Hour))}})
	for _, p := range ps {
		waitFor(t, p, e.lastTxID)
	}
	txs, movements := ledgerCounts(t, e)
	if n := countRows(t, e.pool, "proj_txs"); n != txs {
		t.Errorf("proj_txs has %d rows, want %d", n, txs)
	}
	if n := countRows(t, e.pool, "proj_movements"); n != movements {
		t.Errorf("proj_movements has %d rows, want %d", n, movements)
	}
	checkAgainstLedger(t, e, ps[0])
	concurrent := dump(t, e.pool)
	rebuild(t, e)
	if diff := cmp.Diff(concurrent, dump(t, e.pool)); diff != "" {
		t.Errorf("concurrent projectors differ from a rebuild (-concurrent +rebuilt):\n%s", diff)
	}
}

// TestRebuildRate measures Rebuild and Run over a ledger of many small
// transactions (issuances, transfers, donations).
// TestRebuildRate checks a larger ledger's rebuild against its incremental
// projection and logs the rates (docs/benchmarks.md); no timing is asserted.
func TestRebuildRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const accounts, rounds, perBatch = 10, 12, 25
	var ids []string
	for i := range accounts {
		ids = append(ids, fmt.Sprintf("c%03d", i))
	}
	e.setup(ids, nil)
	now := e.now()
	var wg sync.WaitGroup
	for w := range accounts {
		wg.Go(func() {
			acct := ids[w]
			for r := range rounds {
				name := fmt.Sprintf("%s-%d", acct, r)
				var items []points.IssueItem
				for j := range perBatch {
					items = append(items, item(fmt.Sprint(name, "-", j), acct, 10, 1000, now.Add(time.Duration(30+r+j%5)*24*time.Hour)))
				}
				e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: items})
				if r%4 == 3 {
					e.submit(bankA, "Donate", points.DonateArgs{Account: acct, CharityID: "trees", ProjectID: "p1", Points: 75, RequestHash: hex64(name)})
				}
			}
		})
	}
	wg.Wait()
	txs, movements := ledgerCounts(t, e)

	p := New(e.pool, e.led, nil)
	began := time.Now()
	runProjector(t, p)
	waitFor(t, p, e.lastTxID)
	runTook := time.Since(began)
	checkAgainstLedger(t, e, p)
	incremental := dump(t, e.pool)
	took := rebuild(t, e)
	if diff := cmp.Diff(incremental, dump(t, e.pool)); diff != "" {
		t.Errorf("rebuild differs (-run +rebuild):\n%s", diff)
	}
	t.Logf("%d transactions, %d movements: Rebuild %s (%.0f tx/s, %.0f movements/s, incl. %s quiet wait); Run catch-up %s (%.0f tx/s)",
		txs, movements, took.Round(time.Millisecond), float64(txs)/(took-rebuildQuietAtHeight).Seconds(), float64(movements)/(took-rebuildQuietAtHeight).Seconds(),
		rebuildQuietAtHeight, runTook.Round(time.Millisecond), float64(txs)/runTook.Seconds())
}

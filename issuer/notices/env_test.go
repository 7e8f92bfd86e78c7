package notices

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/projection"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	regulator = "RegulatorMSP"
	bank      = "BankMSP"
)

var (
	ruleRef = points.VersionRef{ID: "rule", Version: "1"}
	methRef = points.VersionRef{ID: "meth", Version: "1"}
	profRef = points.VersionRef{ID: "p", Version: "1"}
)

// env is one test's database, embedded ledger (on a clock the test can move
// forward), running projection and an issuer with accounts.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	led    *embedded.Ledger
	proj   *projection.Projector
	offset atomic.Int64
	prof   rules.Profile
	n      int
}

func hex64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newEnv(t *testing.T, accounts ...string) *env {
	t.Helper()
	e := &env{t: t, pool: pgtest.NewDB(t)}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.led, err = embedded.New(context.Background(), e.pool, points.New(), embedded.Options{
		Signer: priv, KeyID: "ledger/v1",
		Clock:        func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
		PollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.led.Close() })
	e.proj = projection.New(e.pool, e.led, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.proj.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	eff := e.now().Add(-time.Hour).Truncate(time.Second)
	e.prof = rules.Profile{ID: profRef.ID, Version: profRef.Version, EffectiveAt: eff, PublishedAt: eff.Add(-time.Hour), Jurisdiction: "CN",
		Timezone: "Asia/Shanghai", ValidityDays: 730, MaxValidityDays: 3650, NoticeDays: 30, ReminderOffsetsDays: []int{30, 7, 1},
		GraceDays: 30, Categories: []string{rules.CategoryTransit}, PointValueFen: 1}
	if err := e.prof.Validate(); err != nil {
		t.Fatal(err)
	}
	e.submit(regulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulator})
	e.submit(regulator, "RegisterMember", points.RegisterMemberArgs{MSP: bank, Role: points.RoleIssuer, Name: "Bank", FilingNumber: "F-1", Status: points.StatusActive})
	e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: ruleRef.ID, Version: ruleRef.Version, SHA256: hex64("r"), EffectiveAt: eff})
	e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: methRef.ID, Version: methRef.Version, SHA256: hex64("m"), EffectiveAt: eff})
	nd := int64(30)
	e.submit(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: profRef.ID, Version: profRef.Version, SHA256: e.prof.SHA256(), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, NoticeDays: &nd, PointValueFen: 1, GraceDays: int64(e.prof.GraceDays)}})
	var open points.OpenAccountsArgs
	for _, a := range accounts {
		open.Accounts = append(open.Accounts, points.OpenAccountArgs{AccountID: a, Kind: points.KindConsumer})
	}
	if len(open.Accounts) > 0 {
		e.wait(e.submit(bank, "OpenAccounts", open))
	}
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())).UTC() }

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
	return res
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

// wait blocks until the projection has applied tx.
func (e *env) wait(tx *issuer.TxResult) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.proj.WaitFor(ctx, tx.TxID); err != nil {
		e.t.Fatalf("projection never applied %s: %v", tx.TxID, err)
	}
}

type lotSpec struct {
	account string
	points  int64
	expires time.Time
}

// issue issues one lot per spec in one transaction, waits for the
// projection and returns the lot keys in order.
func (e *env) issue(specs ...lotSpec) []string {
	e.t.Helper()
	var a points.IssueBatchArgs
	for _, s := range specs {
		e.n++
		name := fmt.Sprintf("item-%d", e.n)
		a.Items = append(a.Items, points.IssueItem{
			ItemID: name, Account: s.account, Points: s.points, Grams: s.points * 10, Category: "transit",
			RuleVersion: ruleRef, MethodologyVersion: methRef, ProfileVersion: profRef,
			QuantificationHash: hex64("q" + name), ExpiresAt: s.expires.UTC().Truncate(time.Second), Claim: hex64("claim" + name),
		})
	}
	tx := e.submit(bank, "IssueBatch", a)
	var res points.IssueBatchResult
	if err := json.Unmarshal(tx.Payload, &res); err != nil {
		e.t.Fatal(err)
	}
	keys := make([]string, len(res.Results))
	for i, r := range res.Results {
		if r.Status != "issued" {
			e.t.Fatalf("item %d: %s %s", i, r.Status, r.Reason)
		}
		keys[i] = r.LotKey
	}
	e.wait(tx)
	return keys
}

func (e *env) service(cfg Config) *Service {
	e.t.Helper()
	cfg.IssuerMSP = bank
	if cfg.Profiles == nil {
		cfg.Profiles = []rules.Profile{e.prof}
	}
	if cfg.Sender == nil {
		cfg.Sender = LogSender{}
	}
	s, err := New(e.pool, e.led, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// row is a notification as stored.
type row struct {
	ID, Kind, Account, Status, Channel, LastError, ReceiptID string
	LotKey                                                   *string
	Offset                                                   *int
	Attempts                                                 int
	Next                                                     time.Time
	Receipt                                                  []byte
}

func (e *env) rows(where string, args ...any) []row {
	e.t.Helper()
	rs, err := e.pool.Query(context.Background(), `SELECT id, kind, account, status, channel, last_error, receipt_id, lot_key, offset_days,
		attempts, next_attempt_at, receipt FROM notifications WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.ID, &r.Kind, &r.Account, &r.Status, &r.Channel, &r.LastError, &r.ReceiptID, &r.LotKey, &r.Offset,
			&r.Attempts, &r.Next, &r.Receipt); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

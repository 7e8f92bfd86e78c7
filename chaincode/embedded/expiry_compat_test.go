package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// TestSweepsFirstVersionExpiryEntries: the first version of the contract
// wrote one expiry index entry per lot, exp/<issuer>/<day>/<lot key> with
// the lot key as value, and ledgers written by it keep them after an
// upgrade. The sweep records those lots' expiry as it does for entries
// listing a transaction's lots, and drops an old entry whose lot is gone.
// The old entries are written here by a second chaincode over the same
// state, as an upgraded contract finds them.
func TestSweepsFirstVersionExpiryEntries(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	var (
		mu  sync.Mutex
		now = time.Date(2030, 3, 1, 1, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	setNow := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	pl := openCC(t, pool, points.New(), Options{Clock: clock})
	raw := openCC(t, pool, testCC{}, Options{Clock: clock})
	ctx := context.Background()
	call := func(caller, fn string, args, result any) {
		t.Helper()
		doc, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		res, err := pl.Submit(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: doc})
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if result != nil {
			if err := json.Unmarshal(res.Payload, result); err != nil {
				t.Fatal(err)
			}
		}
	}
	const reg, bank = "RegMSP", "BankMSP"
	call(reg, "InitLedger", points.InitLedgerArgs{RegulatorMSP: reg}, nil)
	call(reg, "RegisterMember", points.RegisterMemberArgs{MSP: bank, Role: points.RoleIssuer, Name: "Bank", FilingNumber: "F-1", Status: points.StatusActive}, nil)
	eff := clock().Add(-time.Hour)
	call(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hex64("r"), EffectiveAt: eff}, nil)
	call(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hex64("m"), EffectiveAt: eff}, nil)
	call(bank, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hex64("p"), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, PointValueFen: 2}}, nil)
	call(bank, "OpenAccounts", points.OpenAccountsArgs{Accounts: []points.OpenAccountArgs{{AccountID: "acct-1", Kind: points.KindConsumer}}}, nil)
	setNow(clock().Add(time.Second))

	exp := clock().Add(time.Hour)
	item := func(id string, pts int64) points.IssueItem {
		return points.IssueItem{ItemID: id, Account: "acct-1", Points: pts, Grams: 100, Category: "transit",
			RuleVersion: points.VersionRef{ID: "rule", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "meth", Version: "1"},
			ProfileVersion: points.VersionRef{ID: "cn", Version: "1"}, QuantificationHash: hex64("q" + id), ExpiresAt: exp, Claim: hex64("c" + id)}
	}
	var issued points.IssueBatchResult
	call(bank, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item("i1", 5), item("i2", 7)}}, &issued)
	if issued.Issued != 2 {
		t.Fatalf("IssueBatch: %+v", issued)
	}
	setNow(clock().Add(time.Second))

	// First-version entries: one for a lot the batch's entry lists too, one
	// for a lot that is gone (moved or never there).
	prefix := "exp/" + bank + "/" + exp.Format("20060102") + "/"
	oldKey := issued.Results[0].LotKey
	goneKey := fmt.Sprintf("lot/acct-1/%012d/%s", exp.Unix(), hex64("gone")[:32])
	put := func(key string) op {
		v, _ := json.Marshal(key)
		s := string(v)
		return op{Op: "put", Key: prefix + key, Value: &s}
	}
	submit(t, raw, put(oldKey), put(goneKey))
	setNow(exp.Add(time.Hour))

	var s points.SweepResult
	call(bank, "SweepExpired", points.SweepArgs{Bucket: exp.Format("20060102"), Limit: 10}, &s)
	if s.Swept != 2 || s.Points != 12 || s.Pruned != 2 || s.NotDue != 0 || s.More {
		t.Errorf("sweep %+v, want both lots swept (12 points) and 2 entries' lots pruned (the gone one, and lot i1 listed twice)", s)
	}
	setNow(clock().Add(time.Second))
	call(bank, "SweepExpired", points.SweepArgs{Bucket: exp.Format("20060102"), Limit: 10}, &s)
	if s.Swept+s.Pruned+s.NotDue != 0 || s.More {
		t.Errorf("second sweep %+v: every entry should be gone", s)
	}
	left := evaluate(t, raw, op{Op: "range", Start: prefix, End: stub.PrefixEnd(prefix), Limit: 10})
	if len(left[0].KVs) != 0 {
		t.Errorf("index entries left in the bucket: %+v", left[0].KVs)
	}
}

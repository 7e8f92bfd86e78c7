package embedded

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/pgtest"
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
	p := &pointsBench{l: openCC(t, pool, points.New(), Options{Clock: clock})}
	raw := openCC(t, pool, testCC{}, Options{Clock: clock})
	p.setupIssuer(t, clock().Add(-time.Hour), 1)
	setNow(clock().Add(time.Second))

	exp := clock().Add(time.Hour)
	p.expires = exp
	var issued points.IssueBatchResult
	p.call(t, benchIssuer, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{p.item(p.accounts[0], 5), p.item(p.accounts[0], 7)}}, &issued)
	if issued.Issued != 2 {
		t.Fatalf("IssueBatch: %+v", issued)
	}
	setNow(clock().Add(time.Second))

	// First-version entries: one for a lot the batch's entry lists too, one
	// for a lot that is gone (moved or never there).
	prefix := "exp/" + benchIssuer + "/" + exp.Format("20060102") + "/"
	oldKey := issued.Results[0].LotKey
	goneKey := fmt.Sprintf("lot/%s/%012d/%s", p.accounts[0], exp.Unix(), hex64("gone")[:32])
	oldEntry := func(lotKey string) op { return put(prefix+lotKey, `"`+lotKey+`"`) } // the lot key as a JSON string
	submit(t, raw, oldEntry(oldKey), oldEntry(goneKey))
	setNow(exp.Add(time.Hour))

	var s points.SweepResult
	p.call(t, benchIssuer, "SweepExpired", points.SweepArgs{Bucket: exp.Format("20060102"), Limit: 10}, &s)
	if s.Swept != 2 || s.Points != 12 || s.Pruned != 2 || s.NotDue != 0 || s.More {
		t.Errorf("sweep %+v, want both lots swept (12 points) and 2 entries' lots pruned (the gone one, and the first lot listed twice)", s)
	}
	setNow(clock().Add(time.Second))
	p.call(t, benchIssuer, "SweepExpired", points.SweepArgs{Bucket: exp.Format("20060102"), Limit: 10}, &s)
	if s.Swept+s.Pruned+s.NotDue != 0 || s.More {
		t.Errorf("second sweep %+v: every entry should be gone", s)
	}
	left := evaluate(t, raw, op{Op: "range", Start: prefix, End: stub.PrefixEnd(prefix), Limit: 10})
	if len(left[0].KVs) != 0 {
		t.Errorf("index entries left in the bucket: %+v", left[0].KVs)
	}
}

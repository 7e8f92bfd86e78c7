package app

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/api"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/issuer"
)

// TestLotsArePaged: an account with more lots than the balance lists gets
// the earliest-expiring ones and a cursor; paging GET /v1/me/lots returns
// every lot once, earliest expiry first.
func TestLotsArePaged(t *testing.T) {
	t.Parallel()
	e := newConsumerEnv(t)
	const n = 150
	hexOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	now := time.Now()
	var items []points.IssueItem
	for i := range n {
		items = append(items, points.IssueItem{ItemID: fmt.Sprintf("page-%03d", i), Account: "demo-alice", Points: 1, Grams: 100,
			Category: "appliance", RuleVersion: points.VersionRef{ID: "cn-default-rules", Version: "1"},
			MethodologyVersion: points.VersionRef{ID: "appliance-cn-label", Version: "2026.1"},
			ProfileVersion:     points.VersionRef{ID: "cn-default", Version: "1"}, QuantificationHash: hexOf(fmt.Sprint("q", i)),
			// Expiries in reverse order of the item ids, so key order and issue order differ.
			ExpiresAt: now.Add(time.Duration(400-i) * 24 * time.Hour).Truncate(time.Second), Claim: hexOf(fmt.Sprint("page-claim", i))})
	}
	var res points.IssueBatchResult
	if err := submit(t.Context(), e.a.Ledger(), DemoIssuerMSP, "IssueBatch", points.IssueBatchArgs{Items: items}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Issued != n {
		t.Fatalf("issued %d of %d: %+v", res.Issued, n, res.Results[0])
	}
	h, err := e.a.Ledger().Height(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Projection().WaitForCheckpoint(t.Context(), issuer.Checkpoint{Block: h}); err != nil {
		t.Fatal(err)
	}
	tok := e.token("demo-alice")
	var bal api.BalanceJSON
	e.do(http.MethodGet, "/v1/me/balance", tok, nil).decode(t, &bal)
	if len(bal.Lots) != api.BalanceLots || bal.LotsNext == "" || bal.Total != n {
		t.Fatalf("balance lists %d lots (next %q), total %d", len(bal.Lots), bal.LotsNext, bal.Total)
	}
	seen := map[string]bool{}
	var expiries []time.Time
	for _, l := range bal.Lots {
		seen[l.LotID] = true
		expiries = append(expiries, l.ExpiresAt)
	}
	cursor := bal.LotsNext
	for pages := 0; cursor != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var page api.LotsJSON
		r := e.do(http.MethodGet, "/v1/me/lots?limit=20&cursor="+cursor, tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("lots page: %d %s", r.status, r.body)
		}
		r.decode(t, &page)
		for _, l := range page.Lots {
			if seen[l.LotID] {
				t.Errorf("lot %s listed twice", l.LotID)
			}
			seen[l.LotID] = true
			expiries = append(expiries, l.ExpiresAt)
		}
		cursor = page.NextCursor
	}
	if len(seen) != n {
		t.Errorf("paged through %d lots, want %d", len(seen), n)
	}
	if !slices.IsSortedFunc(expiries, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Error("lots are not in expiry order")
	}
	for _, q := range []string{"?limit=0", "?limit=201", "?cursor=not-a-cursor"} {
		if r := e.do(http.MethodGet, "/v1/me/lots"+q, tok, nil); r.status != http.StatusBadRequest {
			t.Errorf("lots%s: %d %s", q, r.status, r.body)
		}
	}
}

package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// TestGroupingDoesNotMatter applies the workload's ledger one transaction
// per group, in random groups and in one group: the set-based writes fold
// changes of the same lot, claim, receipt and debt inside a group, and every
// split must give the same rows.
func TestGroupingDoesNotMatter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.workload()
	txs, _ := committedTxs(t, e)
	applyAll(t, e, txs, 1, runGroupBytes)
	want := dump(t, e.pool)
	checkAgainstLedger(t, e, New(e.pool, e.led, nil))
	splits := []func() int{
		func() int { return len(txs) },
		func() int { return 1 + rand.IntN(8) },
		func() int { return 1 + rand.IntN(40) },
	}
	for i, size := range splits {
		ctx := context.Background()
		prev := issuer.Checkpoint{}
		for start := 0; start < len(txs); {
			end := min(len(txs), start+size())
			next, _, err := applyGroup(ctx, e.pool, Name, prev, txs[start:end], start == 0)
			if err != nil {
				t.Fatalf("split %d: applying %d-%d: %v", i, start, end, err)
			}
			prev, start = next, end
		}
		if diff := cmp.Diff(want, dump(t, e.pool)); diff != "" {
			t.Errorf("split %d differs from one transaction per group (-one +split):\n%s", i, diff)
		}
	}
}

// synthetic builds committed transactions from change lists, one per
// transaction, at consecutive positions from block.
type synthetic struct {
	block uint64
	at    time.Time
}

func (s *synthetic) txs(t *testing.T, changes ...[]points.Change) []issuer.CommittedTx {
	t.Helper()
	var out []issuer.CommittedTx
	for i, cs := range changes {
		id := fmt.Sprintf("tx-%d-%d", s.block, i)
		b, err := json.Marshal(points.Event{V: points.EventVersion, TxID: id, Function: "F", Caller: bankA, Changes: cs})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, issuer.CommittedTx{Checkpoint: issuer.Checkpoint{Block: s.block, Index: i}, TxID: id, Function: "F",
			Caller: bankA, Timestamp: s.at, EventName: points.EventName, Event: b})
	}
	s.block++
	return out
}

func applyAllOrFail(t *testing.T, pool *pgxpool.Pool, prev issuer.Checkpoint, txs []issuer.CommittedTx, group int) issuer.Checkpoint {
	t.Helper()
	for start := 0; start < len(txs); start += group {
		next, _, err := applyGroup(context.Background(), pool, Name, prev, txs[start:min(start+group, len(txs))], false)
		if err != nil {
			t.Fatalf("applyGroup: %v", err)
		}
		prev = next
	}
	return prev
}

// Synthetic rows: an account x1 with a debt of 5, lot L1 (10 points, 100
// grams) with its claim C1, and receipt R1.
var (
	synAt = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	synL1 = points.Lot{Key: "L1", ID: "l1", Account: "x1", Issuer: bankA, Amount: 10, Remaining: 10, Grams: 100, GramsRemaining: 100,
		IssuedAt: synAt, ExpiresAt: synAt.Add(90 * 24 * time.Hour), Category: "transit", Claim: "C1", ItemID: "i1", TxID: "tx-1-0",
		RuleVersion: rule, MethodologyVersion: meth, ProfileVersion: prof}
	synBase = []points.Change{
		{Type: points.ChangeAccountOpened, Account: &points.Account{ID: "x1", Kind: points.KindConsumer, Issuer: bankA, OpenedAt: synAt, TxID: "tx-1-0"}},
		{Type: points.ChangeItemResult, Item: &points.ItemResult{Index: 0, ItemID: "i1", Claim: "C1", Status: points.ItemIssued, LotID: "l1", LotKey: "L1",
			TakenSubClaims: []string{`a"b`, `c\d`, "e,f", "{g}", "", "NULL"}}},
		{Type: points.ChangeClaimRecorded, Claim: &points.Claim{Claim: "C1", Issuer: bankA, ItemID: "i1", Account: "x1", LotKey: "L1", LotID: "l1", Points: 10, Grams: 100, IssuedAt: synAt, TxID: "tx-1-0"}},
		{Type: points.ChangeLotCreated, Cause: points.CauseIssue, Lot: &synL1},
		{Type: points.ChangeDebtChanged, Cause: points.CauseReverse, Debt: &points.DebtChange{Account: "x1", Issuer: bankA, Delta: 5, Points: 5}},
		{Type: points.ChangeReceiptIssued, Receipt: &points.Receipt{ReceiptID: "R1", Donor: "x1", Issuer: bankA, CharityID: "trees", ProjectID: "p1", Points: 1, Time: synAt}},
	}
)

func debit(key, cause string, pts, grams, remaining, gramsRemaining int64) points.Change {
	return points.Change{Type: points.ChangeLotDebited, Cause: cause, Debit: &points.Debit{LotKey: key, Account: "x1", Issuer: bankA, Claim: "C1",
		Points: pts, Grams: grams, Remaining: remaining, GramsRemaining: gramsRemaining}}
}

func debt(delta, after int64) points.Change {
	return points.Change{Type: points.ChangeDebtChanged, Cause: points.CauseReverse, Debt: &points.DebtChange{Account: "x1", Issuer: bankA, Delta: delta, Points: after}}
}

func reversal(claim, item string) points.Change {
	return points.Change{Type: points.ChangeClaimReversed, Claim: &points.Claim{Claim: claim, Reversal: &points.Reversal{ItemID: item, Reason: "refund", At: synAt, TxID: "rev", Clawed: 1, Debt: 2}}}
}

func ack(id string, at time.Time) points.Change {
	return points.Change{Type: points.ChangeDonationAcknowledged, Receipt: &points.Receipt{ReceiptID: id, AcknowledgedAt: &at}}
}

// TestFoldingMatchesOneByOne applies dependent changes (a lot of an earlier
// group debited twice, a lot created and debited, a debt changing in
// sequence, claims and receipts changed after they were made) once in one
// group and once one per group: same rows, and the values the changes say.
func TestFoldingMatchesOneByOne(t *testing.T) {
	t.Parallel()
	l2 := synL1
	l2.Key, l2.ID, l2.Claim = "L2", "l2", "C2"
	c2 := *synBase[2].Claim
	c2.Claim, c2.LotKey, c2.LotID = "C2", "L2", "l2"
	changes := [][]points.Change{
		{debit("L1", points.CauseDonate, 3, 30, 7, 70)},
		{debit("L1", points.CauseTransferOut, 2, 20, 5, 50)},
		{debt(3, 8), debt(-8, 0)},
		{reversal("C1", "rev-1")},
		{ack("R1", synAt.Add(time.Hour))},
		{ack("R1", synAt.Add(2*time.Hour))},
		{{Type: points.ChangeClaimRecorded, Claim: &c2}, {Type: points.ChangeLotCreated, Cause: points.CauseTransferIn, Lot: &l2}},
		{debit("L2", points.CauseExpire, 4, 40, 6, 60), debit("L2", points.CauseDebtSettle, 6, 60, 0, 0)},
		{reversal("C2", "rev-2")},
		{{Type: points.ChangeReceiptIssued, Receipt: &points.Receipt{ReceiptID: "R2", Donor: "x1", Issuer: bankA, Time: synAt}}, ack("R2", synAt.Add(3*time.Hour))},
		{debit("L1", points.CauseReverse, 5, 50, 0, 0)},
	}
	var dumps []string
	for _, group := range []int{1, len(changes)} {
		pool := pgtest.NewDB(t)
		s := &synthetic{block: 1, at: synAt}
		prev := applyAllOrFail(t, pool, issuer.Checkpoint{}, s.txs(t, synBase), 1)
		applyAllOrFail(t, pool, prev, s.txs(t, changes...), group)
		dumps = append(dumps, dump(t, pool))

		var l1, l2 [6]int64
		for key, dst := range map[string]*[6]int64{"L1": &l1, "L2": &l2} {
			if err := pool.QueryRow(context.Background(), `SELECT remaining, grams_remaining, donated, transferred_out, reversed, expired FROM proj_lots WHERE lot_key = $1`, key).
				Scan(&dst[0], &dst[1], &dst[2], &dst[3], &dst[4], &dst[5]); err != nil {
				t.Fatal(err)
			}
		}
		if want := [6]int64{0, 0, 3, 2, 5, 0}; l1 != want {
			t.Errorf("group %d: L1 = %v, want %v", group, l1, want)
		}
		if want := [6]int64{0, 0, 0, 0, 6, 4}; l2 != want {
			t.Errorf("group %d: L2 = %v, want %v", group, l2, want)
		}
		var (
			subs     []string
			reversed int
			ackedAt  time.Time
		)
		err := pool.QueryRow(context.Background(), `SELECT (SELECT taken_sub_claims FROM proj_item_results), (SELECT count(*) FROM proj_claims WHERE reversed),
			(SELECT acknowledged_at FROM proj_receipts WHERE receipt_id = 'R1')`).Scan(&subs, &reversed, &ackedAt)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(synBase[1].Item.TakenSubClaims, subs); diff != "" {
			t.Errorf("taken_sub_claims mismatch (-want +got):\n%s", diff)
		}
		if reversed != 2 || !ackedAt.Equal(synAt.Add(2*time.Hour)) {
			t.Errorf("group %d: %d claims reversed, R1 acknowledged at %s; want 2 and the last acknowledgement", group, reversed, ackedAt)
		}
	}
	if diff := cmp.Diff(dumps[0], dumps[1]); diff != "" {
		t.Errorf("one group differs from one change per group (-one by one +one group):\n%s", diff)
	}
}

// TestDivergedGroupWritesNothing: a change the projected rows contradict,
// whether the contradiction is inside the group (folded in Go) or against
// the rows of earlier groups (checked by the statements), stops the group
// with a permanent error and writes none of it.
func TestDivergedGroupWritesNothing(t *testing.T) {
	t.Parallel()
	dup := synL1
	cases := []struct {
		name    string
		changes [][]points.Change
	}{
		{"debit of a lot not projected", [][]points.Change{{debit("LX", points.CauseDonate, 1, 1, 0, 0)}}},
		{"debit from other remaining points", [][]points.Change{{debit("L1", points.CauseDonate, 3, 30, 6, 70)}}},
		{"second debit does not follow the first", [][]points.Change{{debit("L1", points.CauseDonate, 3, 30, 7, 70)}, {debit("L1", points.CauseDonate, 2, 20, 4, 50)}}},
		{"debit below zero", [][]points.Change{{debit("L1", points.CauseDonate, 11, 110, -1, -10)}}},
		{"debit of an unknown cause", [][]points.Change{{debit("L1", "gift", 1, 10, 9, 90)}}},
		{"lot created again", [][]points.Change{{{Type: points.ChangeLotCreated, Cause: points.CauseIssue, Lot: &dup}}}},
		{"claim reversed twice", [][]points.Change{{reversal("C1", "r1")}, {reversal("C1", "r2")}}},
		{"reversal of a claim not projected", [][]points.Change{{reversal("CX", "r1")}}},
		{"debt that does not add up", [][]points.Change{{debt(1, 7)}}},
		{"debt sequence that breaks", [][]points.Change{{debt(-5, 0)}, {debt(3, 4)}}},
		{"acknowledgement of a receipt not projected", [][]points.Change{{ack("RX", synAt)}}},
		{"unknown change type", [][]points.Change{{{Type: "gift_wrapped"}}}},
		{"missing payload", [][]points.Change{{{Type: points.ChangeLotDebited}}}},
	}
	pool := pgtest.NewDB(t)
	s := &synthetic{block: 1, at: synAt}
	base := applyAllOrFail(t, pool, issuer.Checkpoint{}, s.txs(t, synBase), 1)
	// A valid transaction first in each group: it must be rolled back too.
	valid := []points.Change{{Type: points.ChangeAccountOpened, Account: &points.Account{ID: "x2", Kind: points.KindConsumer, Issuer: bankA, OpenedAt: synAt, TxID: "tx-x2"}}}
	before := dump(t, pool)
	for _, tc := range cases {
		txs := s.txs(t, append([][]points.Change{valid}, tc.changes...)...)
		_, n, err := applyGroup(context.Background(), pool, Name, base, txs, false)
		if !permanent(err) || n != 0 {
			t.Errorf("%s: applied %d, error %v; want a permanent error", tc.name, n, err)
		}
		t.Logf("%s: %v", tc.name, err)
		if diff := cmp.Diff(before, dump(t, pool)); diff != "" {
			t.Errorf("%s: the projection changed (-before +after):\n%s", tc.name, diff)
		}
	}
}

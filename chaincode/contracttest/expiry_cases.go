package contracttest

import (
	"fmt"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
)

// testExpiryIndexEntries: an IssueBatch lists its lots in one expiry index
// entry per bucket. Lots moved by an extension or emptied by a donation
// since stay listed and are pruned by the sweep; a small limit sweeps the
// entry in parts (each examining at most limit lots) until only the lot not
// due yet is left. Uses real time: lots expiring a few seconds ahead.
func testExpiryIndexEntries(w *world) {
	a := w.o.IssuerA
	exp := time.Now().UTC().Add(4 * time.Second).Truncate(time.Second).Add(time.Second)
	moved := exp.Add(30 * time.Minute)
	if moved.Format("20060102") != exp.Format("20060102") { // keep both in one bucket
		moved = exp.Add(2 * time.Second)
	}
	var items []points.IssueItem
	for i := range 6 {
		items = append(items, w.item(fmt.Sprint("ix", i), w.a1, 1, 10, exp))
	}
	r := w.issue(a, items...)
	if r.Issued != 6 {
		w.t.Fatalf("issue %+v", r)
	}
	ext := submitInto[points.ExtendLotsResult](w, a, "ExtendLots", points.ExtendLotsArgs{Items: []points.ExtendItem{
		{LotKey: r.Results[0].LotKey, NewExpiresAt: moved, Reason: "reminder_undelivered"}}})
	if ext.Extended != 1 {
		w.t.Fatalf("extension %+v", ext)
	}
	w.submit(a, "Donate", w.donate(w.a1, 2, "ix-donation")) // empties two of the other five

	// More entries than a sweep range-reads at once (16), none due: the
	// sweep reads on past the first chunk and examines every lot.
	later := days(3)
	for i := range 17 {
		w.issue(a, w.item(fmt.Sprint("ixl", i), w.a2, 1, 0, later))
	}
	if s := submitInto[points.SweepResult](w, a, "SweepExpired", points.SweepArgs{Bucket: later.Format("20060102"), Limit: 100}); s.NotDue != 17 || s.Swept+s.Pruned != 0 || s.More {
		w.t.Errorf("sweep of 17 entries not due: %+v, want 17 not due", s)
	}
	time.Sleep(time.Until(exp) + 300*time.Millisecond)
	before := w.issuerTotals(a) // expired from expiresAt on: the sweep only writes it down
	if before.Expired != 3 || before.Held != 1+17 {
		w.t.Errorf("totals after expiry, before the sweeps: %+v", before)
	}

	bucket := exp.Format("20060102")
	var got points.SweepResult
	for round := 0; ; round++ {
		if round == 10 {
			w.t.Fatalf("still more to sweep after %d rounds: %+v", round, got)
		}
		s := submitInto[points.SweepResult](w, a, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 2})
		if n := s.Swept + s.Pruned + s.NotDue; n > 2 || n == 0 {
			w.t.Fatalf("round %d examined %d lots with limit 2: %+v", round, n, s)
		}
		got.Swept, got.Points, got.Pruned = got.Swept+s.Swept, got.Points+s.Points, got.Pruned+s.Pruned
		if !s.More {
			break
		}
	}
	// Three due lots swept; the moved lot's old key and the two emptied
	// lots pruned.
	if got.Swept != 3 || got.Points != 3 || got.Pruned != 3 {
		w.t.Errorf("sweeps in parts: %+v, want 3 swept (3 points) and 3 pruned", got)
	}
	// What is left listed: the moved lot, not due yet.
	if s := submitInto[points.SweepResult](w, a, "SweepExpired", points.SweepArgs{Bucket: bucket, Limit: 10}); s.NotDue != 1 || s.Swept+s.Pruned != 0 || s.More {
		w.t.Errorf("last sweep %+v, want only the moved lot, not due", s)
	}
	if x := w.issuerTotals(a); x != before {
		w.t.Errorf("the sweeps changed conservation: %+v, before %+v", x, before)
	}
	expired := 0
	for _, l := range w.lots(w.a1) {
		if l.Expired == 1 && l.Remaining == 0 {
			expired++
		}
	}
	if expired != 3 {
		w.t.Errorf("%d lots recorded as expired, want 3", expired)
	}
}

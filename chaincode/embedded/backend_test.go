package embedded

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

func TestNoReadYourWrites(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	submit(t, l, put("k", "v1"))

	_, got := submit(t, l, put("k", "v2"), put("new", "n"), get("k"), get("new"), multi("k", "new", "k"))
	want := []opResult{{}, {}, {Value: ptr("v1")}, {}, {Values: []*string{ptr("v1"), nil, ptr("v1")}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reads inside the writing transaction mismatch (-want +got):\n%s", diff)
	}
	// Once committed, the writes are there.
	got = evaluate(t, l, get("k"), get("new"))
	if diff := cmp.Diff([]opResult{{Value: ptr("v2")}, {Value: ptr("n")}}, got); diff != "" {
		t.Errorf("reads after commit mismatch (-want +got):\n%s", diff)
	}
}

func TestLastWriteWinsAndEmptyValueDeletes(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	submit(t, l, put("a", "1"), put("b", "1"))
	submit(t, l, put("a", "2"), put("a", "3"), put("b", ""), del("c"), put("c", "back"))
	if diff := cmp.Diff([]*string{ptr("3"), nil, ptr("back")}, []*string{stateOf(t, pool, "a"), stateOf(t, pool, "b"), stateOf(t, pool, "c")}); diff != "" {
		t.Errorf("state mismatch (-want +got):\n%s", diff)
	}
	verifyOK(t, l)
}

func TestMVCC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		first     []op // endorsed second, committed first
		second    []op // endorsed first, committed second
		wantValid bool
	}{
		{"read key changed", []op{put("k", "b")}, []op{get("k"), put("k", "a")}, false},
		{"read absent key created", []op{put("x", "b")}, []op{get("x"), put("marker", "a")}, false},
		{"read key deleted", []op{del("k")}, []op{get("k"), put("marker", "a")}, false},
		{"multi-get key changed", []op{put("k", "b")}, []op{multi("j", "k"), put("marker", "a")}, false},
		{"unrelated key changed", []op{put("j", "b")}, []op{get("k"), put("marker", "a")}, true},
		{"blind writes", []op{put("k", "b")}, []op{put("k", "a")}, true},
		{"rewritten with the same value", []op{put("k", "0")}, []op{get("k"), put("marker", "a")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := open(t, pool, Options{})
			submit(t, l, put("k", "0"))

			second := endorse(t, l, tc.second...)
			first := endorse(t, l, tc.first...)
			if _, err := l.Commit(context.Background(), first); err != nil {
				t.Fatalf("first Commit: %v", err)
			}
			res, err := l.Commit(context.Background(), second)
			if tc.wantValid {
				if err != nil {
					t.Fatalf("second Commit: %v, want valid", err)
				}
				if res.TxID != second.TxID() {
					t.Errorf("TxID = %s, want %s", res.TxID, second.TxID())
				}
				return
			}
			if got := reasonOf(err); got != "conflict/mvcc_read_conflict" {
				t.Fatalf("second Commit: %s (%v), want conflict/mvcc_read_conflict", got, err)
			}
			if v := stateOf(t, pool, "marker"); v != nil {
				t.Errorf("the invalid transaction's write is visible: marker = %q", *v)
			}
			var code string
			if err := pool.QueryRow(context.Background(), `SELECT validation_code FROM ledger_txs WHERE txid = $1`, second.TxID()).Scan(&code); err != nil {
				t.Fatal(err)
			}
			if code != "MVCC_READ_CONFLICT" {
				t.Errorf("recorded validation code %s, want MVCC_READ_CONFLICT", code)
			}
			verifyOK(t, l)
		})
	}
}

func TestPhantom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		read      op   // the range read of the tx under test
		change    []op // committed in between
		wantValid bool
	}{
		{"insert inside", rng("r/", "r0", 0), []op{put("r/4", "x")}, false},
		{"insert outside", rng("r/", "r0", 0), []op{put("s/1", "x"), put("r0", "x"), put("r", "x")}, true},
		{"insert at exclusive end", rng("r/1", "r/5", 0), []op{put("r/5x", "x"), put("r/5", "y")}, true},
		{"insert just inside start", rng("r/1", "r/5", 0), []op{put("r/1a", "x")}, false},
		{"update inside", rng("r/", "r0", 0), []op{put("r/3", "changed")}, false},
		{"delete inside", rng("r/", "r0", 0), []op{del("r/5")}, false},
		{"insert beyond the limit cut", rng("r/", "r0", 2), []op{put("r/4", "x"), put("r/8", "x")}, true},
		{"update beyond the limit cut", rng("r/", "r0", 2), []op{put("r/5", "x")}, true},
		{"insert inside the limit cut", rng("r/", "r0", 2), []op{put("r/2", "x")}, false},
		{"update the last key of the cut", rng("r/", "r0", 2), []op{put("r/3", "x")}, false},
		{"limit not reached, insert after", rng("r/", "r0", 10), []op{put("r/9", "x")}, false},
		{"unbounded end, insert after", rng("r/", "", 0), []op{put("zzz", "x")}, false},
		{"unbounded end, insert before", rng("r/", "", 0), []op{put("a", "x")}, true},
		{"empty range, insert inside", rng("q/", "q0", 0), []op{put("q/1", "x")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := open(t, pool, Options{})
			submit(t, l, put("r/1", "1"), put("r/3", "3"), put("r/5", "5"), put("r/7", "7"))

			e := endorse(t, l, tc.read, put("marker", "m"))
			submit(t, l, tc.change...)
			_, err := l.Commit(context.Background(), e)
			if tc.wantValid {
				if err != nil {
					t.Fatalf("Commit: %v, want valid", err)
				}
				return
			}
			if got := reasonOf(err); got != "conflict/phantom_read_conflict" {
				t.Fatalf("Commit: %s (%v), want conflict/phantom_read_conflict", got, err)
			}
			if v := stateOf(t, pool, "marker"); v != nil {
				t.Errorf("the invalid transaction's write is visible")
			}
		})
	}
}

// TestValidationWithinBlock: a block's earlier valid transactions count in
// the validation of later ones; invalid ones do not.
func TestValidationWithinBlock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// prepare endorses and returns the transactions in block order.
		prepare func(t *testing.T, setup, l *Ledger) []issuer.Endorsed
		want    []string // reasons; "" for valid
	}{
		{
			name: "mvcc",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				return []issuer.Endorsed{endorse(t, l, put("k", "a")), endorse(t, l, get("k"), put("m", "b"))}
			},
			want: []string{"", "conflict/mvcc_read_conflict"},
		},
		{
			name: "phantom insert",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				return []issuer.Endorsed{endorse(t, l, put("r/2", "a")), endorse(t, l, rng("r/", "r0", 0), put("m", "b"))}
			},
			want: []string{"", "conflict/phantom_read_conflict"},
		},
		{
			name: "phantom delete",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				return []issuer.Endorsed{endorse(t, l, del("r/1")), endorse(t, l, rng("r/", "r0", 0), put("m", "b"))}
			},
			want: []string{"", "conflict/phantom_read_conflict"},
		},
		{
			name: "insert beyond the cut in the same block",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				return []issuer.Endorsed{endorse(t, l, put("r/9", "a")), endorse(t, l, rng("r/", "r0", 1), put("m", "b"))}
			},
			want: []string{"", ""},
		},
		{
			name: "an invalid transaction's writes do not count",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				stale := endorse(t, l, get("k"), put("j", "from-invalid"), put("r/2", "x"))
				submit(t, setup, put("k", "changed")) // makes stale invalid
				return []issuer.Endorsed{stale, endorse(t, l, get("j"), rng("r/", "r0", 0), put("m", "b"))}
			},
			want: []string{"conflict/mvcc_read_conflict", ""},
		},
		{
			name: "same transaction twice",
			prepare: func(t *testing.T, setup, l *Ledger) []issuer.Endorsed {
				e := endorse(t, l, put("m", "b"))
				return []issuer.Endorsed{e, e}
			},
			want: []string{"", "conflict/duplicate_txid"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			setup := open(t, pool, Options{})
			submit(t, setup, put("k", "0"), put("r/1", "1"), put("r/3", "3"))
			l := open(t, pool, Options{MaxBlockTxs: len(tc.want), BlockLinger: time.Minute, KeyID: "block/v1"})
			es := tc.prepare(t, setup, l)
			out := commitInOrder(t, l, es...)
			var got []string
			blocks := map[uint64]bool{}
			for _, o := range out {
				if o.err != nil {
					got = append(got, reasonOf(o.err))
					continue
				}
				got = append(got, "")
				blocks[o.res.Block] = true
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
			}
			if len(blocks) > 1 {
				t.Errorf("transactions landed in blocks %v, want one block", blocks)
			}
			if err := l.VerifyChain(context.Background(), StaticKeys(setup, l)); err != nil {
				t.Errorf("VerifyChain: %v", err)
			}
		})
	}
}

func TestPaginationAndHistoryOnlyInEvaluate(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	r1, _ := submit(t, l, put("p/1", "1"), put("p/2", "2"), put("p/3", "3"), put("p/4", "4"), put("p/5", "5"), put("h", "v1"))
	r2, _ := submit(t, l, put("h", "v2"))
	r3, _ := submit(t, l, del("h"))
	h0 := height(t, l)

	for name, o := range map[string]op{"pagination": page("p/", "p0", 2, ""), "history": history("h")} {
		_, err := l.Submit(context.Background(), proposal(o, put("x", "y")))
		e := apperr.As(err)
		if e == nil || !strings.Contains(e.Detail, "supported only in a read-only transaction") {
			t.Errorf("%s in Submit: %v, want the read-only refusal", name, err)
		}
		if _, err := l.Endorse(context.Background(), proposal(o)); err == nil {
			t.Errorf("%s in Endorse succeeded", name)
		}
	}
	if h := height(t, l); h != h0 {
		t.Errorf("height %d after refused submits, want %d", h, h0)
	}

	var pages [][]kv
	bookmark := ""
	for i := 0; i < 5; i++ {
		got := evaluate(t, l, page("p/", "p0", 2, bookmark))
		pages = append(pages, got[0].KVs)
		bookmark = got[0].Bookmark
		if bookmark == "" {
			break
		}
	}
	want := [][]kv{{{"p/1", "1"}, {"p/2", "2"}}, {{"p/3", "3"}, {"p/4", "4"}}, {{"p/5", "5"}}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Errorf("pages mismatch (-want +got):\n%s", diff)
	}

	got := evaluate(t, l, history("h"), history("never"))
	wantHist := []opResult{{History: []hist{{r1.TxID, "v1", false}, {r2.TxID, "v2", false}, {r3.TxID, "", true}}}, {}}
	if diff := cmp.Diff(wantHist, got); diff != "" {
		t.Errorf("history mismatch (-want +got):\n%s", diff)
	}
}

func TestEvaluateWritesNothing(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	got := evaluate(t, l, put("k", "v"), event("e", "p"), get("k"))
	if got[2].Value != nil {
		t.Errorf("evaluation read its own write")
	}
	if h := height(t, l); h != 0 {
		t.Errorf("height %d after an evaluation, want 0", h)
	}
	if v := stateOf(t, pool, "k"); v != nil {
		t.Errorf("an evaluation's write was stored")
	}
	// A read-only function may be submitted too, as on Fabric.
	p := proposal(get("k"))
	p.Function = "query"
	if _, err := l.Submit(context.Background(), p); err != nil {
		t.Errorf("Submit of a read-only function: %v", err)
	}
}

func TestContractErrorsCrossAsOnFabric(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	tests := []struct {
		name string
		ops  []op
		want *apperr.Error
	}{
		{"application error", []op{put("k", "v"), {Op: "fail", Code: "conflict", Reason: "claimed_elsewhere"}},
			&apperr.Error{Code: apperr.Conflict, Reason: "claimed_elsewhere", Detail: "failed on purpose"}},
		{"plain error", []op{{Op: "fail", Reason: "boom"}},
			&apperr.Error{Code: apperr.Internal, Reason: "internal_error", Detail: "op 0 (fail): plain failure: boom"}},
		{"panic", []op{{Op: "panic"}},
			&apperr.Error{Code: apperr.Internal, Reason: "internal_error", Detail: "contract function ops panicked: on purpose"}},
		{"bad key", []op{put("\x00k", "v")}, nil},
		{"empty key", []op{get("")}, nil},
		{"long key", []op{put(strings.Repeat("k", 513), "v")}, nil},
		{"nul inside", []op{get("a\x00b")}, nil},
		{"empty event name", []op{event("", "x")}, nil},
	}
	for _, tc := range tests {
		for _, mode := range []string{"submit", "evaluate"} {
			var err error
			if mode == "submit" {
				_, err = l.Submit(context.Background(), proposal(tc.ops...))
			} else {
				_, err = l.Evaluate(context.Background(), proposal(tc.ops...))
			}
			e := apperr.As(err)
			if e == nil {
				t.Errorf("%s (%s): %v, want an *apperr.Error", tc.name, mode, err)
				continue
			}
			if tc.want == nil {
				if e.Code != apperr.Internal {
					t.Errorf("%s (%s): %v, want an internal error", tc.name, mode, err)
				}
				continue
			}
			if diff := cmp.Diff(tc.want, e); diff != "" {
				t.Errorf("%s (%s): error mismatch (-want +got):\n%s", tc.name, mode, diff)
			}
		}
	}
	if h := height(t, l); h != 0 {
		t.Errorf("height %d after failed endorsements, want 0: nothing is ordered", h)
	}
}

func TestEventsAndSubscribe(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	var results []*issuer.TxResult
	for i := range 5 {
		res, _ := submit(t, l, put(fmt.Sprint("k", i), "v"), event("first", "dropped"), event(fmt.Sprint("E", i), fmt.Sprint("payload", i)))
		results = append(results, res)
	}
	// An invalid transaction is not delivered.
	stale := endorse(t, l, get("k0"), event("Invalid", "x"))
	submit(t, l, put("k0", "changed"))
	if _, err := l.Commit(context.Background(), stale); err == nil {
		t.Fatal("stale transaction committed")
	}
	res, _ := submit(t, l, put("last", "v"))
	results = append(results, res)

	got := collect(t, l, issuer.Checkpoint{}, 7, 10*time.Second)
	var names []string
	for _, tx := range got {
		names = append(names, tx.EventName+"="+string(tx.Event))
	}
	want := []string{"E0=payload0", "E1=payload1", "E2=payload2", "E3=payload3", "E4=payload4", "=", "="}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	for i, r := range results[:5] {
		w := issuer.CommittedTx{Checkpoint: issuer.Checkpoint{Block: r.Block, Index: r.Index}, TxID: r.TxID,
			Function: "ops", Caller: testCaller, Timestamp: r.Timestamp, EventName: fmt.Sprint("E", i), Event: []byte(fmt.Sprint("payload", i))}
		if diff := cmp.Diff(w, got[i]); diff != "" {
			t.Errorf("tx %d mismatch (-want +got):\n%s", i, diff)
		}
	}
	// Resume after the third.
	rest := collect(t, l, got[2].Checkpoint, 4, 10*time.Second)
	if rest[0].TxID != got[3].TxID {
		t.Errorf("resumed at %s, want %s", rest[0].TxID, got[3].TxID)
	}
}

func TestSubscribeSurvivesRestartAndSeesOtherInstances(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	first := open(t, pool, Options{})
	for i := range 3 {
		submit(t, first, put(fmt.Sprint("k", i), "v"), event("E", fmt.Sprint(i)))
	}
	got := collect(t, first, issuer.Checkpoint{}, 2, 10*time.Second)
	cp := got[1].Checkpoint
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Submit(context.Background(), proposal(put("x", "y"))); reasonOf(err) != "unavailable/ledger_closed" {
		t.Errorf("Submit after Close: %v", err)
	}

	// The restarted instance only learns of new blocks through LISTEN:
	// they are written by a third instance and polling is off (an hour).
	restarted := open(t, pool, Options{PollInterval: time.Hour})
	writer := open(t, pool, Options{})
	done := make(chan []issuer.CommittedTx)
	go func() { done <- collect(t, restarted, cp, 3, 20*time.Second) }()
	time.Sleep(200 * time.Millisecond) // let it catch up and wait
	submit(t, writer, put("k3", "v"), event("E", "3"))
	submit(t, writer, put("k4", "v"), event("E", "4"))
	var payloads []string
	for _, tx := range <-done {
		payloads = append(payloads, string(tx.Event))
	}
	if diff := cmp.Diff([]string{"2", "3", "4"}, payloads); diff != "" {
		t.Errorf("resumed delivery mismatch (-want +got):\n%s", diff)
	}
}

func TestDuplicateTxID(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	e := endorse(t, l, put("k", "v"))
	if _, err := l.Commit(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	_, err := l.Commit(context.Background(), e)
	if got := reasonOf(err); got != "conflict/duplicate_txid" {
		t.Fatalf("second Commit: %v, want conflict/duplicate_txid", err)
	}
	var valid, dup int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE validation_code = 'VALID'),
		count(*) FILTER (WHERE validation_code = 'DUPLICATE_TXID') FROM ledger_txs WHERE txid = $1`, e.TxID()).Scan(&valid, &dup); err != nil {
		t.Fatal(err)
	}
	if valid != 1 || dup != 1 {
		t.Errorf("txid rows: %d valid, %d duplicate; want 1 and 1", valid, dup)
	}
	verifyOK(t, l)
}

func TestTimestampsStrictlyIncrease(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	var (
		mu  sync.Mutex
		now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	backwards := func() time.Time { // each call a second earlier
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(-time.Second)
		return now
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	l := open(t, pool, Options{Clock: backwards, Signer: priv})
	var prev time.Time
	for i := range 5 {
		res, out := submit(t, l, op{Op: "tx"}, put(fmt.Sprint("k", i), "v"))
		if !res.Timestamp.After(prev) {
			t.Errorf("timestamp %d %v not after %v", i, res.Timestamp, prev)
		}
		if res.Timestamp.Nanosecond()%1000 != 0 {
			t.Errorf("timestamp %v finer than PostgreSQL's microseconds", res.Timestamp)
		}
		if got := res.Timestamp.Format("2006-01-02T15:04:05.000000Z07:00"); got != out[0].TS {
			t.Errorf("TxResult time %s, contract saw %s", got, out[0].TS)
		}
		prev = res.Timestamp
	}
	rows, err := pool.Query(context.Background(), `SELECT created_at FROM ledger_blocks ORDER BY number`)
	if err != nil {
		t.Fatal(err)
	}
	var blockPrev time.Time
	for rows.Next() {
		var c time.Time
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		if !c.After(blockPrev) {
			t.Errorf("block time %v not after %v", c, blockPrev)
		}
		blockPrev = c
	}
	// A restart keeps increasing from the last block.
	l.Close()
	l2 := open(t, pool, Options{Clock: backwards, Signer: priv})
	res, _ := submit(t, l2, put("after", "restart"))
	if !res.Timestamp.After(blockPrev) {
		t.Errorf("after restart: %v not after the last block's %v", res.Timestamp, blockPrev)
	}
	verifyOK(t, l2)
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := l.Submit(context.Background(), proposal(put(fmt.Sprint("k", i), "v"), get("shared")))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var blocks, maxTxs, txs int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), max(tx_count), sum(tx_count) FROM ledger_blocks`).Scan(&blocks, &maxTxs, &txs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transactions in %d blocks, at most %d per block", txs, blocks, maxTxs)
	if txs != n || maxTxs < 2 {
		t.Errorf("%d transactions, at most %d per block; want %d in multi-transaction blocks", txs, maxTxs, n)
	}
	verifyOK(t, l)
}

func TestTwoInstancesOneChain(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	a := open(t, pool, Options{KeyID: "a/v1"})
	b := open(t, pool, Options{})
	const workers, perWorker = 6, 20
	type done struct {
		res *issuer.TxResult
		hot bool
		err error
	}
	results := make(chan done, 2*workers*perWorker)
	var wg sync.WaitGroup
	for _, l := range []*Ledger{a, b} {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					key := fmt.Sprintf("k/%p/%d/%d", l, w, i)
					ops := []op{put(key, "v"), get("never-written")}
					hot := i%4 == 0
					if hot { // contended: some of these conflict
						ops = append(ops, get("hot"), put("hot", key))
					}
					res, err := l.Submit(context.Background(), proposal(ops...))
					results <- done{res, hot, err}
				}
			})
		}
	}
	wg.Wait()
	close(results)
	seen := map[issuer.Checkpoint]bool{}
	valid, hotValid, conflicts := 0, 0, 0
	for r := range results {
		if r.err != nil {
			if reasonOf(r.err) != "conflict/mvcc_read_conflict" || !r.hot {
				t.Errorf("Submit: %v", r.err)
			}
			conflicts++
			continue
		}
		valid++
		if r.hot {
			hotValid++
		}
		cp := issuer.Checkpoint{Block: r.res.Block, Index: r.res.Index}
		if seen[cp] {
			t.Errorf("two transactions at %v", cp)
		}
		seen[cp] = true
	}
	var rows, dups, hotWrites int
	ctx := context.Background()
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE validation_code = 'DUPLICATE_TXID') FROM ledger_txs`).Scan(&rows, &dups); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_history WHERE key = 'hot'`).Scan(&hotWrites); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d valid, %d conflicts, %d blocks", valid, conflicts, height(t, a))
	if rows != 2*workers*perWorker || dups != 0 {
		t.Errorf("%d transaction rows (%d duplicates), want %d, each once", rows, dups, 2*workers*perWorker)
	}
	if hotWrites != hotValid {
		t.Errorf("%d writes of the hot key, want one per valid hot transaction (%d)", hotWrites, hotValid)
	}
	if err := a.VerifyChain(ctx, StaticKeys(a, b)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}

func TestCloseDrainsPendingCommits(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{BlockLinger: time.Minute, MaxBlockTxs: 1000})
	const n = 20
	var es []issuer.Endorsed
	for i := range n {
		es = append(es, endorse(t, l, put(fmt.Sprint("k", i), "v")))
	}
	errs := make(chan error, n)
	for _, e := range es {
		go func() {
			_, err := l.Commit(context.Background(), e)
			errs <- err
		}()
	}
	waitQueued(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Commit pending at Close: %v", err)
		}
	}
	var count int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_state`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d keys committed, want %d", count, n)
	}
	if err := l.Subscribe(context.Background(), issuer.Checkpoint{}, func(issuer.CommittedTx) error { return nil }); reasonOf(err) != "unavailable/ledger_closed" {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if _, err := l.Endorse(context.Background(), proposal(get("k"))); reasonOf(err) != "unavailable/ledger_closed" {
		t.Errorf("Endorse after Close: %v", err)
	}
}

func TestFailedBlockAppliesNothing(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := open(t, pool, Options{})
	ctx := context.Background()
	submit(t, l, put("k", "1"))
	if _, err := pool.Exec(ctx, `ALTER TABLE ledger_history RENAME TO ledger_history_away`); err != nil {
		t.Fatal(err)
	}
	_, err := l.Submit(ctx, proposal(put("k", "2"), put("j", "1")))
	if got := reasonOf(err); got != "unavailable/commit_failed" {
		t.Errorf("Submit during failure: %v, want unavailable/commit_failed", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE ledger_history_away RENAME TO ledger_history`); err != nil {
		t.Fatal(err)
	}
	if h := height(t, l); h != 1 {
		t.Errorf("height %d, want 1: the failed block never existed", h)
	}
	if v := stateOf(t, pool, "k"); *v != "1" {
		t.Errorf("k = %s, want 1", *v)
	}
	res, _ := submit(t, l, put("k", "3"))
	if res.Block != 2 {
		t.Errorf("next block %d, want 2", res.Block)
	}
	verifyOK(t, l)
}

func TestStateHash(t *testing.T) {
	t.Parallel()
	hashAfter := func(ops ...[]op) []byte {
		pool := pgtest.NewDB(t)
		l := open(t, pool, Options{})
		for _, o := range ops {
			submit(t, l, o...)
		}
		h, err := l.StateHash(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := hashAfter([]op{put("a", "1"), put("b", "2")}, []op{put("c", "3")})
	b := hashAfter([]op{put("c", "3")}, []op{put("b", "2"), put("a", "1"), put("d", "4")}, []op{del("d")})
	c := hashAfter([]op{put("a", "1"), put("b", "2"), put("c", "4")})
	if string(a) != string(b) {
		t.Errorf("same state, different hashes")
	}
	if string(a) == string(c) {
		t.Errorf("different states, same hash")
	}
}

func TestVerifyChainDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
	}{
		{"tx args", `UPDATE ledger_txs SET args = '[]' WHERE block = 2`},
		{"tx result", `UPDATE ledger_txs SET result = '[]' WHERE block = 2`},
		{"tx event", `UPDATE ledger_txs SET event = 'forged' WHERE block = 2`},
		{"tx caller", `UPDATE ledger_txs SET caller = 'Org2MSP' WHERE block = 2`},
		{"tx time", `UPDATE ledger_txs SET ts = ts - interval '1 day' WHERE block = 2`},
		{"tx validity", `UPDATE ledger_txs SET validation_code = 'VALID' WHERE validation_code = 'MVCC_READ_CONFLICT'`},
		{"tx invalidated", `UPDATE ledger_txs SET validation_code = 'MVCC_READ_CONFLICT' WHERE block = 1`},
		{"tx removed", `DELETE FROM ledger_txs WHERE block = 3 AND idx = 0`},
		{"block time", `UPDATE ledger_blocks SET created_at = created_at + interval '1 second' WHERE number = 2`},
		{"block signature", `UPDATE ledger_blocks SET signature = (SELECT signature FROM ledger_blocks WHERE number = 3) WHERE number = 2`},
		{"block key id", `UPDATE ledger_blocks SET key_id = 'other/v1' WHERE number = 2`},
		{"block prev hash", `UPDATE ledger_blocks SET prev_hash = (SELECT header_hash FROM ledger_blocks WHERE number = 1) WHERE number = 3`},
		{"middle block removed", `DELETE FROM ledger_history WHERE block = 2; DELETE FROM ledger_txs WHERE block = 2; DELETE FROM ledger_blocks WHERE number = 2`},
		{"history value", `UPDATE ledger_history SET value = 'forged' WHERE key = 'a'`},
		{"history row added", `INSERT INTO ledger_history VALUES ('forged', 2, 0, 'x', false)`},
		{"history row removed", `DELETE FROM ledger_history WHERE key = 'b'`},
		{"state value", `UPDATE ledger_state SET value = 'forged' WHERE key = 'a'`},
		{"state version", `UPDATE ledger_state SET txnum = 7 WHERE key = 'a'`},
		{"state row added", `INSERT INTO ledger_state VALUES ('forged', 'x', 1, 0)`},
		{"state row removed", `DELETE FROM ledger_state WHERE key = 'b'`},
		{"deleted key back", `INSERT INTO ledger_state VALUES ('gone', 'x', 1, 0)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := open(t, pool, Options{})
			ctx := context.Background()
			submit(t, l, put("a", "1"), put("b", "1"), put("gone", "1"))
			stale := endorse(t, l, get("a"), put("c", "x"))
			submit(t, l, put("a", "2"), del("gone"), event("E", "p"))
			if _, err := l.Commit(ctx, stale); err == nil {
				t.Fatal("stale transaction committed")
			}
			submit(t, l, put("d", "1"))
			verifyOK(t, l)

			if _, err := pool.Exec(ctx, tc.sql); err != nil {
				t.Fatal(err)
			}
			err := l.VerifyChain(ctx, StaticKey(l.signer.Public()))
			if !errors.Is(err, ErrChainInvalid) {
				t.Errorf("VerifyChain after tampering: %v, want ErrChainInvalid", err)
			} else {
				t.Log(err)
			}
		})
	}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	_, err := New(context.Background(), pool, testCC{}, Options{KeyID: "x"})
	if err == nil {
		t.Error("New without a signer succeeded")
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"", "\x00k", "k\xff", "a\x00b", strings.Repeat("k", 513)} {
		if validateKey(k) == nil {
			t.Errorf("validateKey(%q) accepted it", k)
		}
	}
	for _, k := range []string{"k", "\U0010FFFF", strings.Repeat("k", 512), "é/1"} {
		if err := validateKey(k); err != nil {
			t.Errorf("validateKey(%q): %v", k, err)
		}
		if k >= maxKey {
			t.Errorf("%q >= maxKey", k)
		}
	}
}

// TestKeysReadAsAbsent: a key a valid transaction read as absent is written
// with a plain insert, however later transactions of the same block rewrite
// or delete it; keys that exist keep the upsert.
func TestKeysReadAsAbsent(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	setup := open(t, pool, Options{})
	submit(t, setup, put("k", "0"), put("e", "0"))
	l := open(t, pool, Options{MaxBlockTxs: 6, BlockLinger: time.Minute, KeyID: "block/v1"})
	es := []issuer.Endorsed{
		endorse(t, l, get("n"), put("n", "1"), get("g"), put("g", "1"), get("k"), put("k", "1")),
		endorse(t, l, put("n", "2")),                     // blind rewrite of a fresh key
		endorse(t, l, del("g")),                          // blind delete of a fresh key
		endorse(t, l, get("d"), put("d", "1"), del("e")), // a fresh key and a delete of an existing one
		endorse(t, l, get("d"), put("x", "1")),           // read d as absent: invalid, d was written
		endorse(t, l, put("e", "again")),                 // re-create a key deleted earlier in the block
	}
	out := commitInOrder(t, l, es...)
	want := []string{"", "", "", "", "conflict/mvcc_read_conflict", ""}
	blocks := map[uint64]bool{}
	for i, o := range out {
		got := ""
		if o.err != nil {
			got = reasonOf(o.err)
		} else {
			blocks[o.res.Block] = true
		}
		if got != want[i] {
			t.Errorf("transaction %d: %q, want %q", i, got, want[i])
		}
	}
	if len(blocks) != 1 {
		t.Errorf("transactions landed in blocks %v, want one block", blocks)
	}
	for k, v := range map[string]*string{"n": ptr("2"), "g": nil, "k": ptr("1"), "d": ptr("1"), "x": nil, "e": ptr("again")} {
		if got := stateOf(t, pool, k); !cmp.Equal(got, v) {
			t.Errorf("state of %q = %v, want %v", k, got, v)
		}
	}
	if err := l.VerifyChain(context.Background(), StaticKeys(setup, l)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
	// The next block sees the inserted keys as any others.
	submit(t, setup, get("n"), put("n", "3"))
	if got := stateOf(t, pool, "n"); got == nil || *got != "3" {
		t.Errorf("state of n = %v, want 3", got)
	}
}

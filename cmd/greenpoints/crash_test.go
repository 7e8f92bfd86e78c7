package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer"
)

const (
	crashCards     = 3000 // card links (one account each) the test may use
	crashChunk     = 50   // transactions per partner request
	crashInitial   = 400  // sent before the first kill
	crashMinKills  = 20
	crashIssuerMSP = "GreenBankMSP"
)

// crashTxBody is partner request chunk k: transactions [k*50, k*50+50), each
// an itemised fridge purchase cleared four days ago (past the 72 h hold) by
// its own card, so the per-account caps never bind.
func crashTxBody(k int, cleared time.Time) []byte {
	txs := make([]partnerclient.CardTransaction, 0, crashChunk)
	for i := k * crashChunk; i < (k+1)*crashChunk; i++ {
		txs = append(txs, app.DemoFridge(fmt.Sprintf("crash-tx-%04d", i), fmt.Sprintf("tok_crash_%04d", i), fmt.Sprintf("FP-CRASH-%04d", i), cleared))
	}
	b, err := json.Marshal(partnerclient.CardTransactions{Transactions: txs})
	if err != nil {
		panic(err)
	}
	return b
}

// TestCrashMidBatchNothingLostNothingDoubled SIGKILLs a demo server over and
// over while partner requests arrive and the batcher issues them, restarting
// it on the same database each time; in the end every acknowledged
// transaction must be issued exactly once: one issuance, one claim and one lot
// on the ledger each, and the ledger's conservation sums must balance.
func TestCrashMidBatchNothingLostNothingDoubled(t *testing.T) {
	t.Parallel()
	started := time.Now()
	ctx := t.Context()
	dbURL := pgtest.NewDBURL(t)
	keysDir := filepath.Join(t.TempDir(), "keys")
	args := []string{"demo", "--database-url", dbURL, "--keys-dir", keysDir, "--log-level", "warn"}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	count := func(q string, a ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, q, a...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	queued := func() int {
		return count(`SELECT count(*) FROM issuances WHERE status = 'queued' AND account LIKE 'crash-acct-%'`)
	}
	issued := func() int {
		return count(`SELECT count(*) FROM issuances WHERE status = 'issued' AND account LIKE 'crash-acct-%'`)
	}

	// inFlight counts the server's transactions holding claimed issuances
	// (FOR UPDATE) while it waits for the ledger.
	inFlight := func() int {
		return count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
			AND xact_start IS NOT NULL AND query LIKE '%FROM issuances%FOR UPDATE SKIP LOCKED%'`)
	}

	srv := startServer(t, nil, args...)
	srv.waitOK(t, "/readyz", 90*time.Second)

	// The demo seed wrote the bank's key; link the test's cards directly.
	keyText, err := os.ReadFile(filepath.Join(keysDir, "demo-bank.whsk"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := webhook.ParsePrivateKey(strings.TrimSpace(string(keyText)))
	if err != nil {
		t.Fatal(err)
	}
	signer := webhook.Ed25519Signer(priv)
	if _, err := pool.Exec(ctx, `INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel)
		SELECT 'demo-bank', format('tok_crash_%s', lpad(i::text, 4, '0')), format('crash-acct-%s', lpad(i::text, 4, '0')),
			'demo-consent-v1', now(), 'app'
		FROM generate_series(0, $1 - 1) AS i`, crashCards); err != nil {
		t.Fatal(err)
	}

	cleared := time.Now().In(time.FixedZone("CST", 8*3600)).AddDate(0, 0, -4)
	chunks := crashCards / crashChunk
	var (
		mu    sync.Mutex
		acked = make([]bool, chunks) // the server answered 202 to the chunk
		next  int                    // the next chunk the background sender offers
	)
	// post sends chunk k; a failure (the server was killed) leaves it
	// unacknowledged, to be re-sent (same transactions, same bodies) later.
	post := func(base string, k int) error {
		c := &partnerclient.Client{BaseURL: base, Partner: "demo-bank", Signer: signer, HTTP: &http.Client{Timeout: 20 * time.Second}}
		r, err := c.Post(ctx, "card-transactions", "application/json", crashTxBody(k, cleared))
		if err != nil {
			return err
		}
		if r.Status != http.StatusAccepted {
			return fmt.Errorf("chunk %d: HTTP %d: %s", k, r.Status, r.Body)
		}
		mu.Lock()
		acked[k] = true
		mu.Unlock()
		return nil
	}
	for k := 0; k < crashInitial/crashChunk; k++ {
		if err := post(srv.base, k); err != nil {
			t.Fatalf("initial send of chunk %d (no kill yet): %v\ndatabase sessions:\n%s\nserver output:\n%s", k, err, crashSessions(pool), srv.output())
		}
	}
	next = crashInitial / crashChunk

	// sender keeps partner requests arriving while a server lives: first
	// chunks a killed server never acknowledged, then new ones.
	sender := func(base string, stop <-chan struct{}) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(150+mrand.IntN(200)) * time.Millisecond):
				}
				mu.Lock()
				k := -1
				for i := 0; i < next; i++ {
					if !acked[i] {
						k = i
						break
					}
				}
				if k < 0 && next < chunks {
					k = next
					next++
				}
				mu.Unlock()
				if k < 0 {
					return
				}
				if err := post(base, k); err != nil {
					if strings.Contains(err.Error(), "HTTP") {
						t.Errorf("sender: %v", err) // an answer other than 202 is a failure, not a crash
					}
					return
				}
			}
		}()
		return done
	}

	kills := 0
	var killsWithWork, killsInFlight int
	for kills < crashMinKills+4 {
		stop := make(chan struct{})
		sent := sender(srv.base, stop)

		// Keep work pending: a burst of new transactions when little is queued.
		if queued() < crashChunk {
			for b := 0; b < 2; b++ {
				mu.Lock()
				k := next
				if k < chunks {
					next++
				}
				mu.Unlock()
				if k < chunks {
					if err := post(srv.base, k); err != nil {
						t.Fatalf("burst of chunk %d: %v\ndatabase sessions:\n%s\nserver output:\n%s", k, err, crashSessions(pool), srv.output())
					}
				}
			}
		}
		if kills%3 == 2 {
			// Land while the batcher starts on what is queued.
			time.Sleep(time.Duration(mrand.IntN(300)) * time.Millisecond)
		} else {
			// Wait until a batch is in flight (the batcher's transaction
			// holds claimed issuances while the ledger works) or one more
			// issuance is issued, then land a little later: mid-batch, or
			// between the ledger's commit and the outbox's.
			before := issued()
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) && issued() == before && inFlight() == 0 {
				time.Sleep(2 * time.Millisecond)
			}
			d := mrand.IntN(150)
			if kills%3 == 0 {
				d = mrand.IntN(15)
			}
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
		q, f := queued(), inFlight()
		if err := syscall.Kill(srv.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-srv.done:
			srv.done <- err // leave it for startServer's cleanup
		case <-time.After(20 * time.Second):
			t.Fatalf("server did not exit after SIGKILL")
		}
		close(stop)
		<-sent
		kills++
		if q > 0 {
			killsWithWork++
		}
		if f > 0 {
			killsInFlight++
		}
		t.Logf("kill %2d at %5.1fs: queued %d, batches in flight %d at the kill; issued %d after", kills, time.Since(started).Seconds(), q, f, issued())

		srv = startServer(t, nil, args...)
		srv.waitOK(t, "/readyz", 60*time.Second)
	}

	// Send whatever is left, then let the batcher finish.
	for k := 0; k < chunks; k++ {
		mu.Lock()
		done := acked[k]
		mu.Unlock()
		if !done {
			if err := post(srv.base, k); err != nil {
				t.Fatalf("final send of chunk %d: %v\ndatabase sessions:\n%s\nserver output:\n%s", k, err, crashSessions(pool), srv.output())
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for queued() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d issuances still queued 60 s after the last kill; server output:\n%s", queued(), srv.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d kills (%d with work queued, %d with a batch in flight); drained at %.1fs", kills, killsWithWork, killsInFlight, time.Since(started).Seconds())

	// Nothing lost: every acknowledged transaction became exactly one
	// issuance, and every issuance is issued.
	const want = crashCards
	if n := count(`SELECT count(DISTINCT partner_tx_id) FROM actions WHERE partner_id = 'demo-bank' AND partner_tx_id LIKE 'crash-tx-%'`); n != want {
		t.Errorf("actions for %d distinct transactions, want %d", n, want)
	}
	if n := count(`SELECT count(*) FROM issuances WHERE account LIKE 'crash-acct-%'`); n != want {
		t.Errorf("%d issuances, want %d", n, want)
	}
	rows, err := pool.Query(ctx, `SELECT status, reason, count(*) FROM issuances WHERE account LIKE 'crash-acct-%' GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st, reason string
		var n int
		if err := rows.Scan(&st, &reason, &n); err != nil {
			t.Fatal(err)
		}
		if st != "issued" {
			t.Errorf("%d issuances %s (reason %q), want all issued", n, st, reason)
		}
	}
	rows.Close()
	if n := count(`SELECT count(*) FROM actions WHERE partner_tx_id LIKE 'crash-tx-%' AND status <> 'issued'`); n != 0 {
		t.Errorf("%d actions not issued", n)
	}

	// Nothing doubled, on the ledger's world state: one claim key per
	// issuance, one lot per account, each lot carrying its issuance's claim
	// and written exactly once.
	lots := `SELECT key, convert_from(value, 'UTF8')::jsonb AS v FROM ledger_state WHERE key LIKE 'lot/crash-acct-%'`
	if n := count(`SELECT count(*) FROM (` + lots + `) l`); n != want {
		t.Errorf("%d lots on the ledger for the test's accounts, want %d", n, want)
	}
	if n := count(`SELECT count(*) FROM (`+lots+`) l WHERE v->>'issuer' <> $1`, crashIssuerMSP); n != 0 {
		t.Errorf("%d lots of another issuer", n)
	}
	if n := count(`SELECT count(*) FROM (SELECT v->>'account' FROM (` + lots + `) l GROUP BY 1 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d accounts hold more than one lot (an issuance doubled)", n)
	}
	if n := count(`SELECT count(DISTINCT v->>'claim') FROM (` + lots + `) l`); n != want {
		t.Errorf("%d distinct claims among the lots, want %d", n, want)
	}
	if n := count(`SELECT count(*) FROM issuances i JOIN ledger_state s ON s.key = 'claim/' || i.claim
		WHERE i.account LIKE 'crash-acct-%'`); n != want {
		t.Errorf("%d issuances have their claim key on the ledger, want %d", n, want)
	}
	if n := count(`SELECT count(*) FROM issuances i JOIN (` + lots + `) l ON l.key = i.lot_key
		WHERE i.account LIKE 'crash-acct-%' AND l.v->>'claim' = i.claim AND l.v->>'itemId' = i.id::text
			AND (l.v->>'amount')::bigint = i.points`); n != want {
		t.Errorf("%d issuances match their lot (key, claim, item id, points), want %d", n, want)
	}
	if n := count(`SELECT count(*) FROM ledger_history WHERE key LIKE 'lot/crash-acct-%'`); n != want {
		t.Errorf("lot keys of the test's accounts written %d times, want %d (once each)", n, want)
	}
	if n := count(`SELECT count(*) FROM ledger_history h WHERE h.key IN
		(SELECT 'claim/' || claim FROM issuances WHERE account LIKE 'crash-acct-%')`); n != want {
		t.Errorf("claim keys of the test's issuances written %d times, want %d (once each)", n, want)
	}
	var retried int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM issuances WHERE account LIKE 'crash-acct-%' AND tx_id = ''`).Scan(&retried); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d issuances were found already issued by a later attempt (ledger committed, outbox not)", retried)

	// Conservation, through the contract's own read-only query, evaluated
	// by an embedded ledger opened on the same database (it submits nothing).
	_, readerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	led, err := embedded.New(ctx, pool, points.New(), embedded.Options{Signer: readerKey, KeyID: "crash-test-reader"})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	var total points.Totals
	bookmark := ""
	for {
		b, _ := json.Marshal(points.ConservationArgs{Issuer: crashIssuerMSP, Bookmark: bookmark})
		res, err := led.Evaluate(context.WithoutCancel(ctx), issuer.Proposal{Caller: crashIssuerMSP, Function: "GetConservation", Args: b})
		if err != nil {
			t.Fatalf("GetConservation: %v", err)
		}
		var page points.ConservationPage
		if err := json.Unmarshal(res, &page); err != nil {
			t.Fatal(err)
		}
		if err := total.Add(page.Total); err != nil {
			t.Fatal(err)
		}
		if page.Bookmark == "" {
			break
		}
		bookmark = page.Bookmark
	}
	allLots := count(`SELECT count(*) FROM ledger_state WHERE key LIKE 'lot/%'`)
	issuedPts := count(`SELECT coalesce(sum((convert_from(value, 'UTF8')::jsonb->>'amount')::bigint), 0) FROM ledger_state WHERE key LIKE 'lot/%'`)
	if !total.Balanced() || total.Lots != int64(allLots) || total.Issued != int64(issuedPts) {
		t.Errorf("conservation: %+v; lots in state %d, points issued in state %d", total, allLots, issuedPts)
	}
	t.Logf("conservation: %d lots, %d issued = %d held; total %.1fs", total.Lots, total.Issued, total.Held, time.Since(started).Seconds())
}

// crashSessions describes the database's other sessions and their locks, for
// a failure message.
func crashSessions(pool *pgxpool.Pool) string {
	rows, err := pool.Query(context.Background(), `SELECT a.pid, a.state, coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''),
		coalesce(now() - a.xact_start, '0'::interval)::text, pg_blocking_pids(a.pid)::text, left(regexp_replace(a.query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() ORDER BY a.xact_start NULLS LAST`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var pid int
		var state, wt, we, age, blockers, q string
		if err := rows.Scan(&pid, &state, &wt, &we, &age, &blockers, &q); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "  pid %d %s wait=%s/%s xact_age=%s blocked_by=%s: %s\n", pid, state, wt, we, age, blockers, q)
	}
	return b.String()
}

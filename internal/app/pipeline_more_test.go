package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/internal/settlement"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// startAppOn starts an App on an existing database and key directory, so
// that several instances can share them as production instances do. The App
// is stopped (and its clean shutdown checked) when the test ends.
func startAppOn(t *testing.T, dbURL, keysDir string, log *slog.Logger, opts ...func(*Config)) *App {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	cfg := Config{Addr: "127.0.0.1:0", DatabaseURL: dbURL, MaxBodyBytes: 1 << 20, ShutdownTimeout: 10 * time.Second,
		Version: "test", KeysDir: keysDir}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := Start(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return a
}

// syncBuffer is a log sink the test reads while an App writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// seededApp starts one App on a fresh database with the demo seeded.
func seededApp(t *testing.T, opts ...func(*Config)) *App {
	t.Helper()
	a := startAppOn(t, pgtest.NewDBURL(t), filepath.Join(t.TempDir(), "keys"), nil, opts...)
	if _, err := SeedDemo(t.Context(), a, time.Now()); err != nil {
		t.Fatal(err)
	}
	return a
}

func queryInt(t *testing.T, a *App, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := a.pool.QueryRow(context.WithoutCancel(t.Context()), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitZero polls q until it counts zero (the batcher is asynchronous);
// the deadline only bounds a hang, it asserts no speed.
func waitZero(t *testing.T, a *App, within time.Duration, q string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := queryInt(t, a, q, args...)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after %s: %s", n, within, q)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitProjection waits until the read projection has applied every block.
func waitProjection(t *testing.T, a *App) {
	t.Helper()
	h, err := a.Ledger().Height(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cp, err := a.Projection().Position(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Block >= h {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection at %+v, ledger height %d", cp, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// conservation adds up the contract's read-only conservation query over
// every page, as the issuer sees it.
func conservation(t *testing.T, a *App) points.Totals {
	t.Helper()
	var total points.Totals
	bookmark := ""
	for {
		var page points.ConservationPage
		if err := evaluate(t.Context(), a.Ledger(), DemoIssuerMSP, "GetConservation",
			points.ConservationArgs{Issuer: DemoIssuerMSP, Bookmark: bookmark}, &page); err != nil {
			t.Fatal(err)
		}
		if err := total.Add(page.Total); err != nil {
			t.Fatal(err)
		}
		if page.Bookmark == "" {
			return total
		}
		bookmark = page.Bookmark
	}
}

// fridge is an itemised fridge purchase (a model in the demo registry).
func fridge(id, token string, at time.Time, quantity int64) partnerclient.CardTransaction {
	return store(id, "cleared", token, at, 599900*quantity, "FP-"+id, lineItem(1, "BCD-470WGHFD5DSMU1", "海尔", "冰箱", quantity, 599900))
}

func cardsBody(txs ...partnerclient.CardTransaction) []byte {
	return mustJSON(map[string]any{"transactions": txs})
}

// linkCards links count card tokens prefix_%04d of partner to accounts
// acct_%04d, with consent, the way the consent flow records them.
func linkCards(t *testing.T, a *App, partner, tokenPrefix, acctPrefix string, count int) {
	t.Helper()
	if _, err := a.pool.Exec(t.Context(), `INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel)
		SELECT $1, $2 || lpad(i::text, 4, '0'), $3 || lpad(i::text, 4, '0'), $4, now(), 'app' FROM generate_series(0, $5 - 1) AS i`,
		partner, tokenPrefix, acctPrefix, DemoConsentVersion, count); err != nil {
		t.Fatal(err)
	}
}

// TestTwoInstancesIssueEachActionOnce runs two server instances on one
// database and key directory, as a scaled-out deployment does: partner
// requests go to either, both batchers (4 workers each) claim from the same
// outbox, both embedded ledgers produce blocks. Every green action must be
// issued exactly once, each day's trips must make one grant, and the
// ledger's conservation sums must balance.
func TestTwoInstancesIssueEachActionOnce(t *testing.T) {
	t.Parallel()
	const (
		cards        = 300 // cleared fridge purchases, one card and account each
		chunk        = 25  // transactions per request
		riders       = 20  // accounts that also ride yesterday
		tripsPerDay  = 3
		smallBatches = 40 // issuances per ledger transaction: many batches for the two batchers to share
	)
	dbURL := pgtest.NewDBURL(t)
	keysDir := filepath.Join(t.TempDir(), "keys")
	small := func(c *Config) { c.BatchSize = smallBatches }
	// Each instance's embedded ledger logs the blocks it produces (debug):
	// which instance's batcher submitted what is otherwise invisible.
	logA, logB := &syncBuffer{}, &syncBuffer{}
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	a := startAppOn(t, dbURL, keysDir, slog.New(slog.NewJSONHandler(logA, debug)), small)
	now := time.Now()
	if _, err := SeedDemo(t.Context(), a, now); err != nil {
		t.Fatal(err)
	}
	b := startAppOn(t, dbURL, keysDir, slog.New(slog.NewJSONHandler(logB, debug)), small) // reads the claim key and partners the first wrote
	linkCards(t, a, DemoBank, "tok_two_", "two-acct-", cards)
	linkCards(t, a, DemoMetro, "metro_two_", "two-acct-", riders)
	instances := []*App{a, b}

	cleared := now.In(shanghai).AddDate(0, 0, -4) // past the 72 h hold
	var wg sync.WaitGroup
	for k := 0; k < cards/chunk; k++ {
		txs := make([]partnerclient.CardTransaction, 0, chunk)
		for i := k * chunk; i < (k+1)*chunk; i++ {
			txs = append(txs, fridge(fmt.Sprintf("two-tx-%04d", i), fmt.Sprintf("tok_two_%04d", i), cleared, 1))
		}
		inst := instances[k%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := sandboxClient(t, inst, DemoBank).Post(t.Context(), "card-transactions", "application/json", cardsBody(txs...))
			if err != nil || r.Status != http.StatusAccepted {
				t.Errorf("chunk %d to instance %s: %v %+v", k, inst.Addr(), err, r)
			}
		}()
	}
	// Each rider's trips of yesterday arrive in one request, so all of them
	// are there before the day's grant is made.
	y := now.In(shanghai).AddDate(0, 0, -1)
	morning := time.Date(y.Year(), y.Month(), y.Day(), 7, 0, 0, 0, shanghai)
	for r := 0; r < riders; r++ {
		var trips []partnerclient.Trip
		for j := 0; j < tripsPerDay; j++ {
			at := morning.Add(time.Duration(4*j) * time.Hour)
			mode := []string{"metro", "bus"}[j%2]
			trips = append(trips, partnerclient.Trip{TripID: fmt.Sprintf("two-trip-%04d-%d", r, j), CardToken: fmt.Sprintf("metro_two_%04d", r),
				Mode: mode, BoardedAt: at, AlightedAt: at.Add(25 * time.Minute), BoardingStop: "A", AlightingStop: "B", DistanceMeters: 6_000})
		}
		inst := instances[r%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := post(t, sandboxClient(t, inst, DemoMetro), "trips", mustJSON(map[string]any{"trips": trips}))
			for _, e := range resp.Events {
				if e.Outcome != pipeline.OutcomeAccepted {
					t.Errorf("trip %s: %s/%s", e.TransactionID, e.Outcome, e.Reason)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitZero(t, a, 120*time.Second, `SELECT (SELECT count(*) FROM issuances WHERE status = 'queued')
		+ (SELECT count(*) FROM actions WHERE status IN ('queued', 'grouped'))`)
	waitProjection(t, a)

	// The intake: every event recorded once, every action queued once.
	if n := queryInt(t, a, `SELECT count(*) FROM evidence_events WHERE partner_tx_id LIKE 'two-%'`); n != cards+riders*tripsPerDay {
		t.Errorf("%d events recorded, want %d", n, cards+riders*tripsPerDay)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM actions WHERE account LIKE 'two-acct-%' AND status = 'issued'`); n != cards+riders*tripsPerDay {
		t.Errorf("%d actions issued, want %d", n, cards+riders*tripsPerDay)
	}
	// One appliance issuance per purchase, one transit grant per rider and
	// day holding all of that day's trips; all issued.
	if n := queryInt(t, a, `SELECT count(*) FROM issuances WHERE account LIKE 'two-acct-%' AND kind = 'appliance' AND status = 'issued'`); n != cards {
		t.Errorf("%d appliance issuances issued, want %d", n, cards)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM issuances WHERE account LIKE 'two-acct-%' AND status <> 'issued'`); n != 0 {
		t.Errorf("%d issuances not issued", n)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM (SELECT account, local_day FROM issuances WHERE kind = 'transit'
		AND account LIKE 'two-acct-%' GROUP BY 1, 2 HAVING count(*) = 1 AND min(cardinality(sub_claims)) = $1) g`, tripsPerDay); n != riders {
		t.Errorf("%d riders with exactly one grant of %d trips for the day, want %d", n, tripsPerDay, riders)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM issuances WHERE kind = 'transit' AND account LIKE 'two-acct-%'`); n != riders {
		t.Errorf("%d transit grants, want %d (one per rider and day)", n, riders)
	}
	want := int64(cards + riders)

	// Exactly one lot per issuance, in the projection (every lot of the
	// test's accounts is one of its issuances, with its claim and points)...
	if n := queryInt(t, a, `SELECT count(*) FROM proj_lots WHERE account LIKE 'two-acct-%'`); n != want {
		t.Errorf("%d lots in the projection, want %d", n, want)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM issuances i JOIN proj_lots l ON l.lot_key = i.lot_key
		WHERE i.account LIKE 'two-acct-%' AND l.item_id = i.id::text AND l.claim = i.claim AND l.amount = i.points
		AND l.account = i.account AND l.cause = 'issue'`); n != want {
		t.Errorf("%d issuances match their projected lot, want %d", n, want)
	}
	// ... and on the ledger itself, account by account.
	var lotsOnLedger int
	for i := range cards {
		acct := fmt.Sprintf("two-acct-%04d", i)
		var page points.LotsPage
		if err := evaluate(t.Context(), a.Ledger(), DemoIssuerMSP, "GetLots", points.PageArgs{Account: acct}, &page); err != nil {
			t.Fatal(err)
		}
		rows, err := a.pool.Query(t.Context(), `SELECT id::text, lot_key, points FROM issuances WHERE account = $1`, acct)
		if err != nil {
			t.Fatal(err)
		}
		type lot struct {
			item, key string
			points    int64
		}
		var wantLots, gotLots []lot
		for rows.Next() {
			var l lot
			if err := rows.Scan(&l.item, &l.key, &l.points); err != nil {
				t.Fatal(err)
			}
			wantLots = append(wantLots, l)
		}
		rows.Close()
		for _, l := range page.Lots {
			gotLots = append(gotLots, lot{l.ItemID, l.Key, l.Amount})
		}
		byKey := func(x, y lot) int { return strings.Compare(x.key, y.key) }
		slices.SortFunc(gotLots, byKey)
		slices.SortFunc(wantLots, byKey)
		if !slices.Equal(wantLots, gotLots) {
			t.Errorf("%s: ledger lots %+v, issuances %+v", acct, gotLots, wantLots)
		}
		lotsOnLedger += len(page.Lots)
	}
	if lotsOnLedger != int(want) {
		t.Errorf("%d lots on the ledger, want %d", lotsOnLedger, want)
	}

	// Conservation: what the contract counts as issued is exactly what the
	// outbox issued, and all of it is held.
	total := conservation(t, b)
	issuedPts := queryInt(t, a, `SELECT coalesce(sum(points), 0) FROM issuances WHERE status = 'issued'`)
	issuedRows := queryInt(t, a, `SELECT count(*) FROM issuances WHERE status = 'issued'`)
	if !total.Balanced() || total.Issued != issuedPts || total.Lots != issuedRows || total.Held != issuedPts {
		t.Errorf("conservation %+v; outbox issued %d points in %d issuances", total, issuedPts, issuedRows)
	}
	if err := b.VerifyLedger(t.Context()); err != nil {
		t.Fatal(err)
	}
	batches := queryInt(t, a, `SELECT count(DISTINCT tx_id) FROM issuances WHERE account LIKE 'two-acct-%' AND tx_id <> ''`)
	blocks := func(l *syncBuffer) int { return strings.Count(l.String(), `"msg":"block committed"`) }
	t.Logf("%d issuances (%d points) in %d ledger transactions; blocks produced by instance A %d (seed included), B %d; conservation %+v",
		issuedRows, issuedPts, batches, blocks(logA), blocks(logB), total)
}

// settlementCSV writes a settlement file: the header, the records and the
// trailer with their count and amount total.
func settlementCSV(t *testing.T, records [][]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(settlement.Columns)
	var sum int64
	for _, r := range records {
		n, err := strconv.ParseInt(r[3], 10, 64)
		if err != nil {
			t.Fatalf("amount %q: %v", r[3], err)
		}
		sum += n
		_ = w.Write(r)
	}
	_ = w.Write([]string{"TRAILER", strconv.Itoa(len(records)), strconv.FormatInt(sum, 10)})
	w.Flush()
	return buf.Bytes()
}

// csvRecord is a card event as a settlement file line.
func csvRecord(c partnerclient.CardTransaction) []string {
	return []string{c.TransactionID, c.Status, c.CardToken, strconv.FormatInt(c.AmountFen, 10), c.Currency, c.MCC, c.MerchantID,
		c.MerchantName, c.MerchantUSCC, c.Time.Format(time.RFC3339), c.InvoiceNumber, c.OperatorTripID}
}

func fare(id, token string, at time.Time, tripID string) partnerclient.CardTransaction {
	return partnerclient.CardTransaction{TransactionID: id, Status: "cleared", CardToken: token, AmountFen: 500, Currency: "CNY", MCC: "4111",
		MerchantID: "M-DEMO-METRO", MerchantName: "Demo Metro", MerchantUSCC: DemoMetroUSCC, Time: at, OperatorTripID: tripID}
}

func problemOf(t *testing.T, r *partnerclient.Response) struct {
	Reason string
	Detail string
	Errors []struct{ Field, Reason, Detail string }
} {
	t.Helper()
	var p struct {
		Reason string
		Detail string
		Errors []struct{ Field, Reason, Detail string }
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("HTTP %d with Content-Type %q: %s", r.Status, ct, r.Body)
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettlementFileEndToEnd uploads a bank's settlement file through the
// signed API: a valid file is applied (its events recorded with source
// 'file', its fare granted on the ledger), the same file again changes
// nothing, an event first sent by API is recognised in the file, and a file
// with one bad line is refused whole with a per-line report.
func TestSettlementFileEndToEnd(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	bank := sandboxClient(t, a, DemoBank)
	d := time.Now().In(shanghai).AddDate(0, 0, -2)
	day := d.Format(time.DateOnly)
	noon := time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, shanghai)

	// The fare reaches us by API first (with the offset the bank's API
	// client uses), then again as a line of the day's file (in UTC).
	viaAPI := fare("file-tx-api-fare", "tok_demo_alice_1", noon, "M-file-api-1")
	if r := post(t, bank, "card-transactions", cardsBody(viaAPI)); r.Events[0].Outcome != pipeline.OutcomeAccepted {
		t.Fatalf("fare by API: %+v", r.Events[0])
	}
	inFile := viaAPI
	inFile.Time = noon.UTC()
	shop := store("file-tx-shop-1", "cleared", "tok_demo_bob_1", noon.Add(time.Hour), 12_000, "")
	shop.MCC, shop.MerchantName = "5411", `Green Mart, "Pudong"` // quoted on the wire
	auth := shop
	auth.TransactionID, auth.Status = "file-tx-auth-1", "authorised"
	lines := []partnerclient.CardTransaction{
		fare("file-tx-fare-1", "tok_demo_bob_1", noon.Add(2*time.Hour), "M-file-bob-1"),
		auth,
		shop,
		inFile,
		// At the business day's cut-off exactly: still this day's.
		fare("file-tx-fare-2", "tok_demo_alice_1", time.Date(d.Year(), d.Month(), d.Day(), 23, 0, 0, 0, shanghai), "M-file-alice-2"),
	}
	records := make([][]string, len(lines))
	for i, l := range lines {
		records[i] = csvRecord(l)
	}
	file := settlementCSV(t, records)
	route := "settlement-files?businessDay=" + day
	events := func() int64 { return queryInt(t, a, `SELECT count(*) FROM evidence_events`) }
	state := func() string {
		return fmt.Sprint(events(), queryInt(t, a, `SELECT count(*) FROM actions`), queryInt(t, a, `SELECT count(*) FROM issuances`),
			queryInt(t, a, `SELECT count(*) FROM callbacks`))
	}

	r, err := bank.Post(t.Context(), route, "text/csv", file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusAccepted {
		t.Fatalf("valid file: HTTP %d %s", r.Status, r.Body)
	}
	var resp pipeline.Response
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range resp.Events {
		got[e.TransactionID+"/"+e.Status] = e.Outcome + "/" + e.Reason + "/" + e.Original
	}
	wantOutcomes := map[string]string{
		"file-tx-fare-1/cleared":    "accepted//",
		"file-tx-auth-1/authorised": "recorded//",
		"file-tx-shop-1/cleared":    "rejected/no_eligible_items/",
		"file-tx-api-fare/cleared":  "duplicate//accepted",
		"file-tx-fare-2/cleared":    "accepted//",
	}
	for k, w := range wantOutcomes {
		if got[k] != w {
			t.Errorf("%s: outcome %q, want %q", k, got[k], w)
		}
	}
	if len(resp.Events) != len(lines) {
		t.Errorf("%d events in the answer, want %d", len(resp.Events), len(lines))
	}
	if n := queryInt(t, a, `SELECT count(*) FROM evidence_events WHERE source = 'file' AND partner_tx_id LIKE 'file-tx-%'`); n != 4 {
		t.Errorf("%d events recorded from the file, want 4 (the fare sent by API keeps source api)", n)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM evidence_events WHERE source = 'api' AND partner_tx_id = 'file-tx-api-fare'`); n != 1 {
		t.Errorf("the fare sent by API: %d api events, want 1", n)
	}
	// The file's fares went the API's whole way: granted on the ledger.
	st := waitActions(t, bank, "card-transactions/file-tx-fare-1", "issued")
	if st.Actions[0].LotKey == "" || st.Actions[0].Points <= 0 || len(st.Events) != 1 || st.Events[0].Source != "file" {
		t.Errorf("fare from the file: %+v", st)
	}

	// The other fare's grant too, so that its callback is not counted as a
	// change the re-upload made.
	waitActions(t, bank, "card-transactions/file-tx-fare-2", "issued")

	// The same file again: every line is a duplicate, nothing changes.
	before := state()
	r, err = bank.Post(t.Context(), route, "text/csv", file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusAccepted {
		t.Fatalf("re-upload: HTTP %d %s", r.Status, r.Body)
	}
	var again pipeline.Response
	if err := json.Unmarshal(r.Body, &again); err != nil {
		t.Fatal(err)
	}
	for _, e := range again.Events {
		if e.Outcome != pipeline.OutcomeDuplicate {
			t.Errorf("re-upload %s/%s: outcome %s, want duplicate", e.TransactionID, e.Status, e.Outcome)
		}
	}
	if after := state(); after != before || len(again.Events) != len(lines) {
		t.Errorf("re-upload changed events/actions/issuances/callbacks from %s to %s", before, after)
	}

	// One bad line (record 3, physical line 4) rejects the whole file.
	bad := [][]string{
		csvRecord(fare("file-tx-new-1", "tok_demo_bob_1", noon, "M-file-new-1")),
		csvRecord(fare("file-tx-new-2", "tok_demo_bob_1", noon, "M-file-new-2")),
		csvRecord(fare("file-tx-new-3", "tok_demo_bob_1", noon, "M-file-new-3")),
	}
	bad[2][5] = "41X1"
	requests := queryInt(t, a, `SELECT count(*) FROM partner_requests`)
	before = state()
	r, err = bank.Post(t.Context(), route, "text/csv", settlementCSV(t, bad))
	if err != nil {
		t.Fatal(err)
	}
	p := problemOf(t, r)
	if r.Status != http.StatusUnprocessableEntity || p.Reason != "file_invalid" || len(p.Errors) != 1 ||
		p.Errors[0].Field != "line 4: mcc" || strings.Contains(p.Detail+p.Errors[0].Detail, "41X1") {
		t.Errorf("file with a bad line: HTTP %d %+v", r.Status, p)
	}
	if after := state(); after != before {
		t.Errorf("a rejected file changed events/actions/issuances/callbacks from %s to %s", before, after)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM evidence_events WHERE partner_tx_id LIKE 'file-tx-new-%'`); n != 0 {
		t.Errorf("%d events of the rejected file's valid lines recorded", n)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM partner_requests`); n != requests {
		t.Errorf("the rejected file was stored as a request (%d -> %d)", requests, n)
	}
	// An event outside the business day's window rejects the file too.
	late := [][]string{csvRecord(fare("file-tx-late-1", "tok_demo_bob_1",
		time.Date(d.Year(), d.Month(), d.Day(), 23, 0, 1, 0, shanghai), "M-file-late-1"))}
	r, err = bank.Post(t.Context(), route, "text/csv", settlementCSV(t, late))
	if err != nil {
		t.Fatal(err)
	}
	if p := problemOf(t, r); r.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Reason != "outside_business_day" {
		t.Errorf("event after the cut-off: HTTP %d %+v", r.Status, p)
	}
}

// TestPartnerRateLimited gives a new partner 1 request/s with a burst of 2:
// of 5 requests sent at once, the ones over the limit are refused with 429,
// Retry-After and reason rate_limited, and leave no trace.
func TestPartnerRateLimited(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	// A partner created now: the registry's cache (15 s) loads it with the
	// low limit on its first request.
	partners := a.Pipeline().Partners()
	if err := partners.Create(t.Context(), pipeline.Partner{ID: "slow-bank", Kind: pipeline.KindBank, Name: "Slow Bank",
		USCC: DemoBankUSCC, Sandbox: true, RatePerSecond: 1, RateBurst: 2}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := partners.AddPublicKey(t.Context(), "slow-bank", "k1", pub); err != nil {
		t.Fatal(err)
	}
	c := &partnerclient.Client{BaseURL: "http://" + a.Addr(), Partner: "slow-bank", Signer: webhook.Ed25519Signer(priv)}
	const n = 5
	resps := make([]*partnerclient.Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := cardsBody(store(fmt.Sprintf("slow-tx-%d", i), "authorised", "tok_slow", time.Now().Add(-time.Hour), 100, ""))
			r, err := c.Post(t.Context(), "card-transactions", "application/json", body)
			if err != nil {
				t.Error(err)
				return
			}
			resps[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var accepted, limited int64
	for i, r := range resps {
		switch r.Status {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			limited++
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if p := problemOf(t, r); err != nil || ra < 1 || p.Reason != "rate_limited" {
				t.Errorf("request %d: 429 with Retry-After %q, reason %q", i, r.Header.Get("Retry-After"), p.Reason)
			}
		default:
			t.Errorf("request %d: HTTP %d %s", i, r.Status, r.Body)
		}
	}
	if limited == 0 || accepted == 0 {
		t.Errorf("%d accepted, %d refused; want some of each with a burst of 2", accepted, limited)
	}
	// Only the accepted requests were recorded.
	if got := queryInt(t, a, `SELECT count(*) FROM partner_requests WHERE partner_id = 'slow-bank'`); got != accepted {
		t.Errorf("%d requests recorded, want %d (the accepted ones)", got, accepted)
	}
	if got := queryInt(t, a, `SELECT count(*) FROM evidence_events WHERE partner_id = 'slow-bank'`); got != accepted {
		t.Errorf("%d events recorded, want %d", got, accepted)
	}
	t.Logf("%d accepted, %d rate limited", accepted, limited)
}

// TestCallbackRetriedUntilDelivered: the partner's endpoint fails twice;
// the callback is retried with backoff under the same webhook id and
// delivered on the third attempt, each attempt signed (v1a) by the issuer's
// partner-callbacks key.
func TestCallbackRetriedUntilDelivered(t *testing.T) {
	t.Parallel()
	type attempt struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var attempts []attempt
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		attempts = append(attempts, attempt{r.Header.Clone(), body})
		n := len(attempts)
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer hook.Close()

	a := seededApp(t)
	partners := a.Pipeline().Partners()
	if err := partners.Create(t.Context(), pipeline.Partner{ID: "cb-bank", Kind: pipeline.KindBank, Name: "Callback Bank",
		USCC: DemoBankUSCC, Sandbox: true, CallbackURL: hook.URL}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := partners.AddPublicKey(t.Context(), "cb-bank", "k1", pub); err != nil {
		t.Fatal(err)
	}
	c := &partnerclient.Client{BaseURL: "http://" + a.Addr(), Partner: "cb-bank", Signer: webhook.Ed25519Signer(priv)}
	// A card we never linked: the event is rejected and the partner told so.
	resp := post(t, c, "card-transactions", cardsBody(fridge("cb-tx-1", "tok_unlinked", time.Now().Add(-time.Hour), 1)))
	if e := resp.Events[0]; e.Outcome != pipeline.OutcomeRejected || e.Reason != "no_card_link" {
		t.Fatalf("event: %+v", e)
	}
	waitZero(t, a, 60*time.Second, `SELECT count(*) FROM callbacks WHERE partner_id = 'cb-bank' AND delivered_at IS NULL`)

	var id, tries, status int64
	var lastErr string
	if err := a.pool.QueryRow(t.Context(), `SELECT id, attempts, last_status, last_error FROM callbacks WHERE partner_id = 'cb-bank'`).
		Scan(&id, &tries, &status, &lastErr); err != nil {
		t.Fatal(err)
	}
	if tries != 3 || status != http.StatusOK || lastErr != "" {
		t.Errorf("callback %d: attempts %d, last status %d, last error %q; want 3, 200, none", id, tries, status, lastErr)
	}
	_, keyID, err := a.keys.Signer(t.Context(), CallbackKeyName)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := a.keys.PublicKey(t.Context(), keyID)
	if err != nil {
		t.Fatal(err)
	}
	issuerKey := []webhook.Key{{ID: string(keyID), Public: pk.(ed25519.PublicKey)}}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 {
		t.Fatalf("the endpoint saw %d attempts, want 3", len(attempts))
	}
	for i, at := range attempts {
		if got := at.header.Get(webhook.HeaderID); got != "cb_"+strconv.FormatInt(id, 10) {
			t.Errorf("attempt %d: webhook-id %q, want cb_%d (the same on every retry)", i+1, got, id)
		}
		if !strings.HasPrefix(at.header.Get(webhook.HeaderSignature), "v1a,") {
			t.Errorf("attempt %d: signature %q, want v1a", i+1, at.header.Get(webhook.HeaderSignature))
		}
		k, err := webhook.Verify(issuerKey, at.header, at.body, time.Now(), webhook.DefaultTolerance)
		if err != nil || k.ID != string(keyID) {
			t.Errorf("attempt %d: signature does not verify with the issuer's %s: %v", i+1, keyID, err)
		}
		// A tampered body must not verify with the same headers.
		if _, err := webhook.Verify(issuerKey, at.header, append(bytes.Clone(at.body), ' '), time.Now(), webhook.DefaultTolerance); err == nil {
			t.Errorf("attempt %d: a modified body verifies", i+1)
		}
	}
	var payload map[string]any
	if err := json.Unmarshal(attempts[2].body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["type"] != "evidence.rejected" || payload["transactionId"] != "cb-tx-1" || payload["reason"] != "no_card_link" || payload["partner"] != "cb-bank" {
		t.Errorf("payload %v", payload)
	}
}

// TestApplianceYearCapReached buys fridges on one account until the
// profile's yearly appliance cap (5000 points) binds: the purchase that
// crosses it is granted what is left (its record says so) or refused, later
// ones are refused cap_reached, and exactly 5000 points reach the ledger.
func TestApplianceYearCapReached(t *testing.T) {
	t.Parallel()
	const yearCap = 5000
	a := seededApp(t)
	linkCards(t, a, DemoBank, "tok_cap_", "cap-acct-", 1)
	bank := sandboxClient(t, a, DemoBank)
	at := time.Now().In(shanghai).AddDate(0, 0, -4) // one instant: one cap window whatever today is

	// Each purchase is ten fridges, so the cap binds within a few dozen
	// requests, and falls inside a purchase unless its points divide 5000.
	const perPurchase = 10
	var full, granted int64
	partial, refused := 0, 0
	for i := int64(0); refused < 2; i++ {
		if full > 0 && i > yearCap/full+3 {
			t.Fatalf("no cap after %d purchases (%d points granted)", i, granted)
		}
		r := post(t, bank, "card-transactions", cardsBody(fridge(fmt.Sprintf("cap-tx-%02d", i), "tok_cap_0000", at, perPurchase)))
		e := r.Events[0]
		act := e.Actions[0]
		if i == 0 {
			full = act.Points
			if full <= 0 || full >= yearCap/2 {
				t.Fatalf("a purchase of %d fridges earns %d points", perPurchase, full)
			}
		}
		switch {
		case act.Status == "queued" && act.Points == full:
			if partial+refused > 0 {
				t.Errorf("purchase %d granted in full after the cap bound", i)
			}
		case act.Status == "queued":
			partial++
			if act.Points <= 0 || act.Points >= full || granted+act.Points != yearCap {
				t.Errorf("purchase %d partially granted %d after %d", i, act.Points, granted)
			}
		default:
			refused++
			if e.Outcome != pipeline.OutcomeRejected || e.Reason != "cap_reached" || act.Reason != "cap_reached" || granted != yearCap {
				t.Errorf("purchase %d: %s/%s, action %s/%s, after %d points", i, e.Outcome, e.Reason, act.Status, act.Reason, granted)
			}
		}
		granted += act.Points
	}
	if partial > 1 {
		t.Errorf("%d partial grants, want at most 1", partial)
	}
	if got := queryInt(t, a, `SELECT sum(points) FROM issuances WHERE account = 'cap-acct-0000'`); got != yearCap {
		t.Errorf("issuances hold %d points, want the cap %d", got, yearCap)
	}
	if partial == 1 {
		var decisions []string
		if err := a.pool.QueryRow(t.Context(), `SELECT array(SELECT json_array_elements_text(record->'decisions')) FROM issuances
			WHERE account = 'cap-acct-0000' AND points < (record->>'rulePoints')::bigint`).Scan(&decisions); err != nil {
			t.Fatal(err)
		}
		if len(decisions) != 1 || !strings.HasPrefix(decisions[0], "cap_appliance_year: ") {
			t.Errorf("partial grant's decisions %q, want the year cap's", decisions)
		}
	}
	// The refused actions have no issuance and say why.
	if n := queryInt(t, a, `SELECT count(*) FROM actions WHERE account = 'cap-acct-0000' AND status = 'rejected'
		AND reason = 'cap_reached' AND issuance_id IS NULL`); n != int64(refused) {
		t.Errorf("%d actions rejected cap_reached, want %d", n, refused)
	}
	waitZero(t, a, 60*time.Second, `SELECT count(*) FROM issuances WHERE account = 'cap-acct-0000' AND status <> 'issued'`)
	if b := balance(t, a, "cap-acct-0000"); b.Total != yearCap {
		t.Errorf("ledger balance %d, want %d", b.Total, yearCap)
	}
	t.Logf("%d fridges earn %d points; %d purchases granted in full, %d partially, %d refused", perPurchase, full, yearCap/full, partial, refused)
}

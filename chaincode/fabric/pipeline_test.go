package fabric_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/fabricnet"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// The issuer on Fabric: the regulator and the issuer are different
// organisations of the suite network, so each is its own client. The
// regulator's client (a fabric.Ledger with only RegulatorMSP's identity)
// initialises the ledger and registers BankAMSP as an issuer; the issuer's
// server is an app.App started with --ledger fabric as BankAMSP's User1,
// exactly as 'greenpoints serve' would be.
const (
	regulatorMSP = "RegulatorMSP"
	issuerMSP    = "BankAMSP"
)

// waitBound bounds every wait for the pipeline's asynchronous work (batcher,
// projection, callbacks). It is a bound against hanging, not a timing
// assertion: on two busy cores a step takes a few block cuts of 200 ms.
const waitBound = 2 * time.Minute

// TestPipelineOnFabric: a signed partner request becomes points on the
// Fabric ledger and in the read projection, the partner's status says
// issued and a signed callback says so; a refund claws the points back
// (reversed) on the ledger and in the projection.
func TestPipelineOnFabric(t *testing.T) {
	t.Parallel()
	began := time.Now()
	channel := newChannel(t)
	ctx := t.Context()

	reg := ledgerOn(t, channel, regulatorMSP)
	submitAs(t, reg, regulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulatorMSP})
	submitAs(t, reg, regulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: issuerMSP, Role: points.RoleIssuer,
		Name: "Bank A", FilingNumber: "FAB-0001", Status: points.StatusActive})
	// The regulator's client holds no identity of the issuer: on Fabric an
	// organisation cannot sign for another.
	if _, err := reg.Evaluate(ctx, issuer.Proposal{Caller: issuerMSP, Function: "GetRegistry", Args: []byte(`{}`)}); err == nil {
		t.Fatal("the regulator's client evaluated as the issuer")
	}

	var (
		mu        sync.Mutex
		callbacks []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if r.Header.Get(webhook.HeaderSignature) == "" || json.NewDecoder(r.Body).Decode(&m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		callbacks = append(callbacks, m.Type)
		mu.Unlock()
	}))
	defer hook.Close()

	a, stop := startIssuer(t, channel)
	defer stop()
	bank := seedIssuer(t, a, hook.URL)
	seeded := time.Since(began)

	now := time.Now()
	cards := postSigned(t, bank, "card-transactions", app.DemoCardSample(now))
	outcome := map[string]string{}
	for _, e := range cards.Events {
		outcome[e.TransactionID] = e.Outcome + "/" + e.Reason
	}
	for id, want := range map[string]string{app.DemoSampleTxIDs.Fridge: "accepted/", app.DemoSampleTxIDs.Washer: "accepted/",
		app.DemoSampleTxIDs.Fare: "accepted/", app.DemoSampleTxIDs.TopUp: "rejected/mcc_not_trip"} {
		if outcome[id] != want {
			t.Errorf("%s: outcome %q, want %q", id, outcome[id], want)
		}
	}
	fridge := waitStatus(t, bank, "card-transactions/"+app.DemoSampleTxIDs.Fridge, "issued").Actions[0]
	washer := waitStatus(t, bank, "card-transactions/"+app.DemoSampleTxIDs.Washer, "issued").Actions[0]
	fare := waitStatus(t, bank, "card-transactions/"+app.DemoSampleTxIDs.Fare, "issued").Actions[0]
	issuedAt := time.Since(began)
	for name, act := range map[string]pipeline.ActionStatus{"fridge": fridge, "washer": washer, "fare": fare} {
		if act.Points <= 0 || act.LotKey == "" || act.LedgerTxID == "" || act.Block <= 0 {
			t.Errorf("%s not issued on the ledger: %+v", name, act)
		}
	}

	// On the ledger: each lot is the issuer's, with the status's points,
	// created by the transaction the status names.
	owner := map[string]string{"fridge": "demo-alice", "washer": "demo-bob", "fare": "demo-bob"}
	for name, act := range map[string]pipeline.ActionStatus{"fridge": fridge, "washer": washer, "fare": fare} {
		lot := ledgerLot(t, a, owner[name], act.LotKey)
		if lot.Issuer != issuerMSP || lot.Amount != act.Points || lot.TxID != act.LedgerTxID {
			t.Errorf("%s lot on the ledger: issuer %s amount %d tx %s; status says %d in %s", name, lot.Issuer, lot.Amount, lot.TxID,
				act.Points, act.LedgerTxID)
		}
	}
	alice, bob := ledgerBalance(t, a, "demo-alice"), ledgerBalance(t, a, "demo-bob")
	if alice.Total != fridge.Points || bob.Total != washer.Points+fare.Points {
		t.Errorf("ledger balances alice %d bob %d, want %d and %d", alice.Total, bob.Total, fridge.Points, washer.Points+fare.Points)
	}
	// In the projection, fed by the Fabric block events.
	for _, act := range []pipeline.ActionStatus{fridge, washer, fare} {
		waitProjected(t, a, act.LedgerTxID)
	}
	checkProjection(t, a, map[string]points.Balance{"demo-alice": alice, "demo-bob": bob})
	lots, err := a.Projection().Lots(ctx, "demo-alice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lots, func(l points.Lot) bool { return l.Key == fridge.LotKey && l.Remaining == fridge.Points }) {
		t.Errorf("projection lots of alice %+v lack the fridge lot %s of %d", lots, fridge.LotKey, fridge.Points)
	}

	// Bob returns the washer: the refund claws its points back.
	postSigned(t, bank, "card-transactions", app.DemoRefundSample(time.Now()))
	rev := waitStatus(t, bank, "card-transactions/"+app.DemoSampleTxIDs.Washer, "reversed")
	if len(rev.Actions) != 1 {
		t.Fatalf("washer after the refund: %+v", rev.Actions)
	}
	var revTxs []string
	if err := a.Pool().QueryRow(ctx, `SELECT r.tx_ids FROM reversals r JOIN issuances i ON i.id = r.issuance_id
		WHERE i.lot_key = $1 AND r.status = 'done'`, washer.LotKey).Scan(&revTxs); err != nil || len(revTxs) == 0 {
		t.Fatalf("the washer's reversal: %v, transactions %v", err, revTxs)
	}
	reversedAt := time.Since(began)
	bobAfter := ledgerBalance(t, a, "demo-bob")
	if bob.Total-bobAfter.Total != washer.Points || bobAfter.Debt != 0 {
		t.Errorf("refund took %d from bob (debt %d), want %d", bob.Total-bobAfter.Total, bobAfter.Debt, washer.Points)
	}
	if washerLot := ledgerLot(t, a, "demo-bob", washer.LotKey); washerLot.Remaining != 0 {
		t.Errorf("washer lot after the reversal: %d remaining", washerLot.Remaining)
	}
	waitProjected(t, a, revTxs[len(revTxs)-1])
	checkProjection(t, a, map[string]points.Balance{"demo-alice": ledgerBalance(t, a, "demo-alice"), "demo-bob": bobAfter})
	// The regulator, through its own client, sees the issuer's points conserved.
	var cons points.ConservationPage
	evaluateAs(t, reg, regulatorMSP, "GetConservation", points.ConservationArgs{}, &cons)
	issued := fridge.Points + washer.Points + fare.Points
	if tot := cons.Total; cons.Bookmark != "" || tot.Issued != issued || tot.Reversed != washer.Points || tot.Held != issued-washer.Points {
		t.Errorf("conservation as the regulator: %+v (bookmark %q), want issued %d reversed %d", tot, cons.Bookmark, issued, washer.Points)
	}

	// The bank was told, with signed callbacks.
	deadline := time.Now().Add(waitBound)
	for {
		mu.Lock()
		got := strings.Join(callbacks, ",")
		mu.Unlock()
		if strings.Contains(got, "action.issued") && strings.Contains(got, "action.reversed") && strings.Contains(got, "evidence.rejected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks received: %s", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("on Fabric: channel and seeding %s, card request to issued %s, refund to reversed %s, total %s",
		seeded.Round(time.Millisecond), (issuedAt - seeded).Round(time.Millisecond),
		(reversedAt - issuedAt).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// startIssuer starts the issuer's server with --ledger fabric on channel,
// signing as issuerMSP's User1 through Org1's peer (the suite's only peer).
func startIssuer(t *testing.T, channel string) (*app.App, func()) {
	t.Helper()
	org1, bankA := nw.Orgs[0], orgOf(t, issuerMSP)
	cfg := app.Config{
		Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDBURL(t), MaxBodyBytes: 1 << 20, ShutdownTimeout: 20 * time.Second,
		Version: "test", KeysDir: filepath.Join(t.TempDir(), "keys"), Ledger: app.LedgerFabric,
		Fabric: app.FabricConfig{
			PeerEndpoint:  org1.Peers[0].Address,
			TLSCACertFile: org1.TLSRootCert,
			MSPID:         bankA.MSPID,
			CertFile:      bankA.User.Cert,
			KeyFile:       bankA.User.Key,
			Channel:       channel,
			Chaincode:     "points",
		},
	}
	a, err := app.Start(t.Context(), cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("App.Run: %v", err)
		}
	}
}

// seedIssuer does the issuer's part of app.SeedDemo on Fabric: it anchors
// the published policy as the issuer, registers the sandbox bank (with a
// fresh v1a key and its callback URL) and metro operator, links the demo
// cards and imports the sample label registry. Accounts are not opened
// here: the batcher opens them on the ledger with the first issuance.
func seedIssuer(t *testing.T, a *app.App, callbackURL string) *partnerclient.Client {
	t.Helper()
	ctx := t.Context()
	if err := a.Pipeline().Policy().Anchor(ctx, a.Ledger(), issuerMSP); err != nil {
		t.Fatal(err)
	}
	partners := a.Pipeline().Partners()
	for _, p := range []pipeline.Partner{
		{ID: app.DemoBank, Kind: pipeline.KindBank, Name: "Demo Bank", USCC: app.DemoBankUSCC, Sandbox: true, CallbackURL: callbackURL},
		{ID: app.DemoMetro, Kind: pipeline.KindTransitOperator, Name: "Demo Metro", USCC: app.DemoMetroUSCC, Sandbox: true,
			AvgBusMeters: 4_200, AvgMetroMeters: 8_100, AvgSource: "test"},
	} {
		if err := partners.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	pk, err := webhook.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := partners.AddPublicKey(ctx, app.DemoBank, "fabric-test", pk); err != nil {
		t.Fatal(err)
	}
	for _, l := range app.DemoCards {
		if err := pipeline.LinkCard(ctx, a.Pool(), l); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open("../../internal/app/demodata/labels.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := labels.Parse(f, labels.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.ImportLabels(ctx, a.Pool(), entries, nil); err != nil {
		t.Fatal(err)
	}
	key, err := webhook.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &partnerclient.Client{BaseURL: "http://" + a.Addr(), Partner: app.DemoBank, Signer: webhook.Ed25519Signer(key)}
}

func orgOf(t *testing.T, msp string) *fabricnet.Org {
	t.Helper()
	for _, o := range nw.Orgs {
		if o.MSPID == msp {
			return o
		}
	}
	t.Fatalf("no org %s in the network", msp)
	return nil
}

func submitAs(t *testing.T, l *fabric.Ledger, caller, fn string, args any) {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Submit(t.Context(), issuer.Proposal{Caller: caller, Function: fn, Args: b}); err != nil {
		t.Fatalf("%s as %s: %v", fn, caller, err)
	}
}

func evaluateAs(t *testing.T, l issuer.Ledger, caller, fn string, args, out any) {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Evaluate(t.Context(), issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		t.Fatalf("%s as %s: %v", fn, caller, err)
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatal(err)
	}
}

// ledgerLot finds lot key among account's lots on the ledger.
func ledgerLot(t *testing.T, a *app.App, account, key string) points.Lot {
	t.Helper()
	var page points.LotsPage
	evaluateAs(t, a.Ledger(), issuerMSP, "GetLots", points.PageArgs{Account: account}, &page)
	for _, l := range page.Lots {
		if l.Key == key {
			return l.Lot
		}
	}
	t.Fatalf("lot %s is not among the lots of %s on the ledger: %+v", key, account, page.Lots)
	return points.Lot{}
}

func ledgerBalance(t *testing.T, a *app.App, account string) points.Balance {
	t.Helper()
	var b points.Balance
	evaluateAs(t, a.Ledger(), issuerMSP, "GetBalance", points.AccountArgs{Account: account}, &b)
	return b
}

func postSigned(t *testing.T, c *partnerclient.Client, route string, body []byte) pipeline.Response {
	t.Helper()
	r, err := c.Post(t.Context(), route, "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST %s = %d: %s", route, r.Status, r.Body)
	}
	var resp pipeline.Response
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// waitStatus polls the partner status endpoint until every action of the
// transaction has status.
func waitStatus(t *testing.T, c *partnerclient.Client, route, status string) pipeline.TransactionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	body, err := c.WaitActions(ctx, route, status, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st pipeline.TransactionStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitProjected waits until the projection holds ledger transaction txID.
func waitProjected(t *testing.T, a *app.App, txID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	if _, err := a.Projection().WaitFor(ctx, txID); err != nil {
		t.Fatalf("transaction %s never reached the projection: %v", txID, err)
	}
}

// checkProjection compares the projection's balances with the ledger's.
func checkProjection(t *testing.T, a *app.App, want map[string]points.Balance) {
	t.Helper()
	for acct, w := range want {
		got, err := a.Projection().Balance(t.Context(), acct, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != w.Total || got.Debt != w.Debt || got.Lots != w.Lots {
			t.Errorf("%s: projection total %d debt %d lots %d, ledger %d %d %d", acct, got.Total, got.Debt, got.Lots, w.Total, w.Debt, w.Lots)
		}
	}
}

// testWriter sends the server's warnings and errors to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

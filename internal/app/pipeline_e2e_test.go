package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

func bigBodies(c *Config) { c.MaxBodyBytes = 1 << 20 }

// sandboxClient is a partner client signing with the key the demo wrote.
func sandboxClient(t *testing.T, a *App, partner string) *partnerclient.Client {
	t.Helper()
	c, err := partnerclient.FromKeyFile("http://"+a.Addr(), partner, filepath.Join(a.cfg.KeysDir, partner+".whsk"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func post(t *testing.T, c *partnerclient.Client, route string, body []byte) pipeline.Response {
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

// waitActions polls a transaction's status until every action has status.
func waitActions(t *testing.T, c *partnerclient.Client, route, status string) pipeline.TransactionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	body, err := c.WaitActions(ctx, route, status, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st pipeline.TransactionStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func balance(t *testing.T, a *App, account string) points.Balance {
	t.Helper()
	var b points.Balance
	if err := evaluate(t.Context(), a.Ledger(), DemoIssuerMSP, "GetBalance", points.AccountArgs{Account: account}, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPipelineEndToEnd: signed partner requests -> classified, verified,
// quantified -> points on the ledger -> partner status and callbacks; a
// refund after a transfer claws back; the same trip reported by the bank and
// the operator is claimed once.
func TestPipelineEndToEnd(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var callbacks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		if r.Header.Get(webhook.HeaderSignature) == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		callbacks = append(callbacks, m)
		mu.Unlock()
	}))
	defer hook.Close()

	a, cancel, done := startApp(t, bigBodies)
	defer func() { cancel(); <-done }()
	now := time.Now()
	if _, err := SeedDemo(t.Context(), a, now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pool.Exec(t.Context(), `UPDATE partners SET callback_url = $1 WHERE id = $2`, hook.URL, DemoBank); err != nil {
		t.Fatal(err)
	}
	bank, metro := sandboxClient(t, a, DemoBank), sandboxClient(t, a, DemoMetro)

	cards := post(t, bank, "card-transactions", DemoCardSample(now))
	outcome := map[string]string{}
	for _, e := range cards.Events {
		outcome[e.TransactionID] = e.Outcome + "/" + e.Reason
	}
	want := map[string]string{
		DemoSampleTxIDs.Fridge: "accepted/", DemoSampleTxIDs.Washer: "accepted/", DemoSampleTxIDs.Fare: "accepted/",
		DemoSampleTxIDs.TopUp: "rejected/mcc_not_trip", DemoSampleTxIDs.Pending: "recorded/",
	}
	for id, w := range want {
		if outcome[id] != w {
			t.Errorf("%s: outcome %q, want %q", id, outcome[id], w)
		}
	}
	trips := post(t, metro, "trips", DemoTripSample(now))
	for _, e := range trips.Events {
		if e.Outcome != pipeline.OutcomeAccepted {
			t.Errorf("trip %s: %s/%s", e.TransactionID, e.Outcome, e.Reason)
		}
	}
	fridge := waitActions(t, bank, "card-transactions/"+DemoSampleTxIDs.Fridge, "issued")
	washer := waitActions(t, bank, "card-transactions/"+DemoSampleTxIDs.Washer, "issued")
	waitActions(t, metro, "trips/"+DemoSampleTrips[0], "issued")
	if fridge.Actions[0].Points <= 0 || fridge.Actions[0].LotKey == "" || fridge.Actions[0].Block == 0 {
		t.Errorf("fridge action not issued on the ledger: %+v", fridge.Actions[0])
	}
	alice := balance(t, a, "demo-alice")
	// Alice: the fridge plus one transit grant of her two rides.
	var aliceTrips int64
	if st := waitActions(t, metro, "trips/"+DemoSampleTrips[1], "issued"); len(st.Actions) == 1 {
		aliceTrips = st.Actions[0].Points
	}
	if alice.Total != fridge.Actions[0].Points+aliceTrips {
		t.Errorf("alice holds %d, want fridge %d + trips %d", alice.Total, fridge.Actions[0].Points, aliceTrips)
	}

	// A replay of the same webhook id returns the stored response and changes nothing.
	body := DemoCardSample(now)
	id := partnerclient.NewMessageID()
	r1, err := bank.Send(t.Context(), http.MethodPost, "card-transactions", "application/json", id, body)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := bank.Send(t.Context(), http.MethodPost, "card-transactions", "application/json", id, body)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Status != 202 || r2.Status != 202 || !r2.Replayed || string(r1.Body) != string(r2.Body) {
		t.Errorf("replay: %d %d replayed=%v\n%s\n%s", r1.Status, r2.Status, r2.Replayed, r1.Body, r2.Body)
	}
	var dup pipeline.Response
	_ = json.Unmarshal(r1.Body, &dup)
	for _, e := range dup.Events {
		if e.Outcome != pipeline.OutcomeDuplicate {
			t.Errorf("resent %s under a new webhook id: outcome %s, want duplicate", e.TransactionID, e.Outcome)
		}
	}
	// The same transaction id and status with a different body: 422, nothing recorded.
	changed := strings.Replace(string(body), `"amountFen":599900`, `"amountFen":599901`, 1)
	r3, err := bank.Post(t.Context(), "card-transactions", "application/json", []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	if r3.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r3.Body), "transaction_conflict") {
		t.Errorf("changed body: %d %s", r3.Status, r3.Body)
	}

	// Bob's washer is refunded after issuance; its points are clawed back.
	bobBefore := balance(t, a, "demo-bob")
	post(t, bank, "card-transactions", DemoRefundSample(now))
	rev := waitActions(t, bank, "card-transactions/"+DemoSampleTxIDs.Washer, "reversed")
	bobAfter := balance(t, a, "demo-bob")
	if bobBefore.Total-bobAfter.Total != washer.Actions[0].Points || len(rev.Actions) != 1 {
		t.Errorf("refund clawed back %d, want %d", bobBefore.Total-bobAfter.Total, washer.Actions[0].Points)
	}
	// Bob's metro ride was reported by the bank (fare with trip id
	// M-demo-bob-2) and the operator (M-demo-bob-1): different trips, both granted.
	waitActions(t, bank, "card-transactions/"+DemoSampleTxIDs.Fare, "issued")

	// Callbacks reached the bank, signed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(callbacks)
		var types []string
		for _, c := range callbacks {
			types = append(types, c["type"].(string))
		}
		mu.Unlock()
		joined := strings.Join(types, ",")
		if strings.Contains(joined, "action.issued") && strings.Contains(joined, "action.reversed") && strings.Contains(joined, "evidence.rejected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks: %d received: %s", n, joined)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := a.VerifyLedger(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Every stored quantification record re-hashes to its record_hash, the
	// hash an issuance carries to the ledger: an auditor can check the
	// records kept for export byte for byte.
	// An appliance action's record is its issuance's one quantification,
	// stored once (migration 013): action_records gives it back exactly.
	if n := queryInt(t, a, `SELECT count(*) FROM actions WHERE record IS NULL`); n == 0 {
		t.Error("every action stores its record; an issued appliance's is its issuance's")
	}
	for _, table := range []string{"action_records", "issuances"} {
		if n := queryInt(t, a, `SELECT count(*) FROM `+table); n == 0 {
			t.Fatalf("no %s to check", table)
		}
		if n := queryInt(t, a, `SELECT count(*) FROM `+table+` WHERE record IS NULL OR encode(sha256(convert_to(record::text, 'UTF8')), 'hex') <> record_hash`); n != 0 {
			t.Errorf("%d %s whose stored record does not hash to record_hash", n, table)
		}
	}
	// Prometheus shows the pipeline's work.
	mr, err := http.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{`greenpoints_ledger_items_total{status="issued"}`, `greenpoints_intake_events_total{kind="card",outcome="accepted"}`,
		"greenpoints_issuances_queued 0", `greenpoints_ledger_submit_seconds_count{function="Reverse"} 1`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The read projection caught up with the ledger: the same balances.
	h, err := a.Ledger().Height(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		cp, err := a.Projection().Position(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Block >= h {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection at %+v, ledger height %d", cp, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, acct := range []string{"demo-alice", "demo-bob"} {
		got, err := a.Projection().Balance(t.Context(), acct, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if want := balance(t, a, acct); got.Total != want.Total || got.Debt != want.Debt {
			t.Errorf("%s: projection %d/%d debt, ledger %d/%d", acct, got.Total, got.Debt, want.Total, want.Debt)
		}
	}
}

// TestPartnerSignaturesRejected: tampered, stale, unsigned, wrong-key and
// unknown-partner requests are refused with 401 and change nothing.
func TestPartnerSignaturesRejected(t *testing.T) {
	t.Parallel()
	a, cancel, done := startApp(t, bigBodies)
	defer func() { cancel(); <-done }()
	if _, err := SeedDemo(t.Context(), a, time.Now()); err != nil {
		t.Fatal(err)
	}
	bank := sandboxClient(t, a, DemoBank)
	body := DemoCardSample(time.Now())
	_, other, _ := webhook.NewKeyPair()
	otherKey, _ := webhook.ParsePrivateKey(other)
	send := func(c *partnerclient.Client, mutate func(*http.Request)) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.BaseURL+"/v1/partners/"+c.Partner+"/card-transactions", strings.NewReader(string(body)))
		now := time.Now()
		if c.Now != nil {
			now = c.Now()
		}
		for k, v := range webhook.Headers(c.Signer, partnerclient.NewMessageID(), now, body) {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		if mutate != nil {
			mutate(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	stale := *bank
	stale.Now = func() time.Time { return time.Now().Add(-6 * time.Minute) }
	wrong := *bank
	wrong.Signer = webhook.Ed25519Signer(otherKey)
	unknown := *bank
	unknown.Partner = "no-such-bank"
	cases := map[string]*http.Response{
		"tampered": send(bank, func(r *http.Request) {
			r.Body = http.NoBody
			r.ContentLength = 0
		}),
		"unsigned":  send(bank, func(r *http.Request) { r.Header.Del(webhook.HeaderSignature) }),
		"stale":     send(&stale, nil),
		"wrong key": send(&wrong, nil),
		"unknown":   send(&unknown, nil),
	}
	for name, resp := range cases {
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", name, resp.StatusCode)
		}
	}
	// A transit operator cannot report card payments.
	metro := sandboxClient(t, a, DemoMetro)
	r, err := metro.Post(t.Context(), "card-transactions", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusForbidden {
		t.Errorf("operator posting card transactions: %d", r.Status)
	}
	var n int
	if err := a.pool.QueryRow(context.Background(), `SELECT count(*) FROM evidence_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events recorded from refused requests", n)
	}
}

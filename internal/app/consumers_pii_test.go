package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// piiBank registers another sandbox bank with a fresh v1a key and returns
// its client.
func piiBank(t *testing.T, a *App, id string) *partnerclient.Client {
	t.Helper()
	if err := a.Pipeline().Partners().Create(t.Context(), pipeline.Partner{ID: id, Kind: pipeline.KindBank, Name: id, USCC: DemoBankUSCC, Sandbox: true}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	pk, err := webhook.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Pipeline().Partners().AddPublicKey(t.Context(), id, "k1", pk); err != nil {
		t.Fatal(err)
	}
	sk, err := webhook.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &partnerclient.Client{BaseURL: "http://" + a.Addr(), Partner: id, Signer: webhook.Ed25519Signer(sk)}
}

func piiLinkBody(token, account string, withConsent bool) []byte {
	m := map[string]any{"cardToken": token, "account": account}
	if withConsent {
		m["consent"] = map[string]any{"version": "card-link-v1", "grantedAt": time.Now().Add(-time.Minute).Format(time.RFC3339), "channel": "app"}
	}
	return mustJSON(m)
}

// piiFridge is a cleared, itemised fridge purchase four days ago (past the
// hold) on card token, under its own invoice number.
func piiFridge(txID, token, invoice string) []byte {
	at := time.Now().In(shanghai).AddDate(0, 0, -4)
	return mustJSON(map[string]any{"transactions": []partnerclient.CardTransaction{store(txID, "cleared", token, at, 599900, invoice,
		lineItem(1, "BCD-470WGHFD5DSMU1", "海尔", "冰箱", 1, 599900))}})
}

func piiProblemReason(t *testing.T, r *partnerclient.Response) string {
	t.Helper()
	var p struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("not a problem: %d %s", r.Status, r.Body)
	}
	return p.Reason
}

// TestCardLinksConsentAndErasure drives the real API and ledger: a bank
// links a consumer's card only with consent and only under its own partner
// id; the card earns points; withdrawing the consent stops intake for it
// (consent_withdrawn); erasing the person leaves nothing of their personal
// data readable, removes their card links, and the ledger still verifies
// and conserves points.
func TestCardLinksConsentAndErasure(t *testing.T) {
	t.Parallel()
	a, cancel, done := startApp(t, bigBodies)
	defer func() { cancel(); <-done }()
	ctx := t.Context()
	if _, err := SeedDemo(ctx, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	bankA, bankB := sandboxClient(t, a, DemoBank), piiBank(t, a, "other-bank")
	cs := a.Consumers()
	p, err := cs.Create(ctx, consumers.NewPerson{Name: "李雷 Li Lei", Phone: "+8613912345678", BirthDate: "1991-02-03"})
	if err != nil {
		t.Fatal(err)
	}

	// No consent, no link.
	r, err := bankA.Post(ctx, "card-links", "application/json", piiLinkBody("tok_li_1", p.Account, false))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusBadRequest || piiProblemReason(t, r) != consumers.ReasonConsentRequired {
		t.Errorf("link without consent: %d %s", r.Status, r.Body)
	}
	// Bank B cannot act on bank A's path: its signature does not verify under A's keys.
	impostor := *bankB
	impostor.Partner = DemoBank
	if r, err := impostor.Post(ctx, "card-links", "application/json", piiLinkBody("tok_li_1", p.Account, true)); err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("bank B on bank A's path: %v %d %s", err, r.Status, r.Body)
	}
	// A transit operator cannot link cards.
	if r, err := sandboxClient(t, a, DemoMetro).Post(ctx, "card-links", "application/json", piiLinkBody("tok_li_1", p.Account, true)); err != nil || r.Status != http.StatusForbidden {
		t.Errorf("operator linking a card: %v %d %s", err, r.Status, r.Body)
	}
	// Bank A links with consent.
	r, err = bankA.Post(ctx, "card-links", "application/json", piiLinkBody("tok_li_1", p.Account, true))
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("link with consent: %v %d %s", err, r.Status, r.Body)
	}
	var link consumers.CardLink
	if err := json.Unmarshal(r.Body, &link); err != nil || link.Partner != DemoBank || link.Account != p.Account || link.Consent.Version != "card-link-v1" {
		t.Errorf("link: %s %v", r.Body, err)
	}
	// Bank B links a token of the same name on its own path: a B-scoped
	// link, invisible to bank A's transactions.
	if r, err := bankB.Post(ctx, "card-links", "application/json", piiLinkBody("tok_b_only", p.Account, true)); err != nil || r.Status != http.StatusCreated {
		t.Fatalf("bank B's own link: %v %d %s", err, r.Status, r.Body)
	}
	resp := post(t, bankA, "card-transactions", piiFridge("li-tx-b", "tok_b_only", "FP-LI-000"))
	if e := resp.Events[0]; e.Outcome != pipeline.OutcomeRejected || e.Reason != "no_card_link" {
		t.Errorf("bank A using bank B's token: %s/%s", e.Outcome, e.Reason)
	}

	// The linked card earns points on the ledger.
	resp = post(t, bankA, "card-transactions", piiFridge("li-tx-1", "tok_li_1", "FP-LI-001"))
	if e := resp.Events[0]; e.Outcome != pipeline.OutcomeAccepted {
		t.Fatalf("linked card: %s/%s", e.Outcome, e.Reason)
	}
	st := waitActions(t, bankA, "card-transactions/li-tx-1", "issued")
	earned := st.Actions[0].Points
	if b := balance(t, a, p.Account); b.Total != earned || earned <= 0 {
		t.Fatalf("balance %d, want %d", b.Total, earned)
	}

	// The bank withdraws the link: the next transaction is refused.
	r, err = bankA.Send(ctx, http.MethodDelete, "card-links/tok_li_1", "", partnerclient.NewMessageID(), nil)
	if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"withdrawnAt"`) {
		t.Fatalf("withdraw: %v %d %s", err, r.Status, r.Body)
	}
	resp = post(t, bankA, "card-transactions", piiFridge("li-tx-2", "tok_li_1", "FP-LI-002"))
	if e := resp.Events[0]; e.Outcome != pipeline.OutcomeRejected || e.Reason != "consent_withdrawn" {
		t.Errorf("withdrawn card: %s/%s, want rejected/consent_withdrawn", e.Outcome, e.Reason)
	}

	// Erasure.
	var sealedName, wrapped []byte
	if err := a.pool.QueryRow(ctx, `SELECT c.name_sealed, k.wrapped_key FROM consumers c JOIN consumer_keys k ON k.person_id = c.id
		WHERE c.id = $1`, p.ID).Scan(&sealedName, &wrapped); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Erase(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Get(ctx, p.ID); err == nil {
		t.Error("the erased person can still be read")
	}
	var keysLeft, linksLeft, sealedLeft int
	if err := a.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM consumer_keys WHERE person_id = $1),
		(SELECT count(*) FROM card_links WHERE account = $2),
		(SELECT count(*) FROM consumers WHERE id = $1 AND (name_sealed IS NOT NULL OR phone_sealed IS NOT NULL OR birth_date_sealed IS NOT NULL))`,
		p.ID, p.Account).Scan(&keysLeft, &linksLeft, &sealedLeft); err != nil {
		t.Fatal(err)
	}
	if keysLeft != 0 || linksLeft != 0 || sealedLeft != 0 {
		t.Errorf("after erasure: %d wrapped keys, %d card links, %d sealed rows", keysLeft, linksLeft, sealedLeft)
	}
	// The sealed name copied before erasure (as a leak or a backup would
	// hold it) does not open under any data key the system can produce now:
	// the only one was the wrapped key just deleted.
	if dk, err := keys.NewDataKey(); err == nil {
		if _, err := keys.OpenData(dk, sealedName, []byte("greenpoints/consumer/"+p.ID+"/name")); err == nil {
			t.Error("sealed name opened under a new key")
		}
	}
	// The card's intake has stopped for good.
	resp = post(t, bankA, "card-transactions", piiFridge("li-tx-3", "tok_li_1", "FP-LI-003"))
	if e := resp.Events[0]; e.Outcome != pipeline.OutcomeRejected || e.Reason != "no_card_link" {
		t.Errorf("after erasure: %s/%s", e.Outcome, e.Reason)
	}

	// The pseudonymous ledger history stays and still verifies and conserves.
	if b := balance(t, a, p.Account); b.Total != earned {
		t.Errorf("ledger balance of the erased account %d, want %d (history stays)", b.Total, earned)
	}
	if err := a.VerifyLedger(ctx); err != nil {
		t.Fatalf("ledger after erasure: %v", err)
	}
	var total points.Totals
	bookmark := ""
	for {
		var page points.ConservationPage
		if err := evaluate(ctx, a.Ledger(), DemoIssuerMSP, "GetConservation", points.ConservationArgs{Issuer: DemoIssuerMSP, Bookmark: bookmark}, &page); err != nil {
			t.Fatal(err)
		}
		if err := total.Add(page.Total); err != nil {
			t.Fatal(err)
		}
		if bookmark = page.Bookmark; bookmark == "" {
			break
		}
	}
	if !total.Balanced() || total.Issued < earned {
		t.Errorf("conservation after erasure: %+v", total)
	}
}

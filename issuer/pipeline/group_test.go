package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// groupFixture is an intake service over a fresh database with two banks;
// card "tok" is linked (with consent) at bank-a only.
type groupFixture struct {
	pool         *pgxpool.Pool
	svc          *Service
	bankA, bankB *PartnerKeys
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	reg := NewPartners(pool, nil)
	for _, id := range []string{"bank-a", "bank-b"} {
		if err := reg.Create(ctx, Partner{ID: id, Kind: KindBank, Name: id, USCC: "91350100M000100Y43"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := LinkCard(ctx, pool, CardLink{Partner: "bank-a", CardToken: "tok", Account: "acct-1", ConsentVersion: "v1", ConsentChannel: "app"}); err != nil {
		t.Fatal(err)
	}
	pol, err := NewPolicy("cn-default", "cn-default-rules")
	if err != nil {
		t.Fatal(err)
	}
	f := &groupFixture{pool: pool, svc: NewService(pool, reg, pol, Config{IssuerMSP: "Org1MSP", ClaimKey: []byte("0123456789abcdef0123456789abcdef")}, slog.New(slog.DiscardHandler))}
	if f.bankA, err = reg.Get(ctx, "bank-a"); err != nil {
		t.Fatal(err)
	}
	if f.bankB, err = reg.Get(ctx, "bank-b"); err != nil {
		t.Fatal(err)
	}
	return f
}

// cardJob is a one-event request of a card payment.
func cardJob(p *PartnerKeys, webhookID, txID, status string, amount int64) *job {
	tx := evidence.CardTransaction{TransactionID: txID, Status: status, CardToken: "tok", AmountFen: amount, Currency: "CNY",
		MCC: "5722", MerchantID: "m1", MerchantName: "Shop", MerchantUSCC: "91350100M000100Y43",
		Time: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	body := []byte(fmt.Sprintf(`{"tx":%q,"status":%q,"amount":%d}`, txID, status, amount))
	j := &job{req: Request{Partner: p, WebhookID: webhookID, Route: "card-transactions", Body: body, Signature: "v1,x", KeyID: "k1", SignedAt: tx.Time},
		evs: []event{cardEvent(&tx, "api")}}
	j.bodySum = sha256.Sum256(body)
	return j
}

func (f *groupFixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharedTransactionKeepsRequestsApart runs requests of two partners in
// one shared transaction: each event is judged with its own partner's card
// links, a duplicate of an event earlier in the transaction reports it,
// and a request that conflicts is refused alone while the others commit.
func TestSharedTransactionKeepsRequestsApart(t *testing.T) {
	f := newGroupFixture(t)
	ctx := t.Context()
	jobs := []*job{
		cardJob(f.bankA, "wh-1", "t1", evidence.StatusCleared, 100),    // card linked at bank-a: no items to credit
		cardJob(f.bankB, "wh-1", "t1", evidence.StatusCleared, 100),    // the same ids at bank-b: no link there
		cardJob(f.bankA, "wh-2", "t2", evidence.StatusAuthorised, 100), // recorded
		cardJob(f.bankA, "wh-3", "t2", evidence.StatusAuthorised, 100), // the same event again: duplicate
		cardJob(f.bankA, "wh-4", "t2", evidence.StatusAuthorised, 999), // same id and status, other content: conflict
	}
	f.svc.process(ctx, jobs)

	want := []struct{ outcome, reason, original string }{
		{OutcomeRejected, evidence.ReasonNoEligibleItems, ""},
		{OutcomeRejected, evidence.ReasonNoCardLink, ""},
		{OutcomeRecorded, "", ""},
		{OutcomeDuplicate, "", OutcomeRecorded},
	}
	for i, w := range want {
		j := jobs[i]
		if j.err != nil {
			t.Fatalf("request %d: %v", i, j.err)
		}
		got := j.resp.Events[0]
		if got.Outcome != w.outcome || got.Reason != w.reason || got.Original != w.original {
			t.Errorf("request %d: got %s/%s/%s, want %s/%s/%s", i, got.Outcome, got.Reason, got.Original, w.outcome, w.reason, w.original)
		}
	}
	var ae *apperr.Error
	if !errors.As(jobs[4].err, &ae) || ae.Reason != "transaction_conflict" || len(ae.Fields) != 1 || ae.Fields[0].Field != "transactions[0]" {
		t.Fatalf("conflicting request: got %v, want transaction_conflict on transactions[0]", jobs[4].err)
	}
	if n := f.count(t, `SELECT count(*) FROM partner_requests`); n != 4 {
		t.Errorf("%d requests recorded, want 4 (the conflicting one records nothing)", n)
	}
	if n := f.count(t, `SELECT count(*) FROM evidence_events`); n != 3 {
		t.Errorf("%d events recorded, want 3", n)
	}
	if n := f.count(t, `SELECT count(*) FROM evidence_events WHERE partner_tx_id = 't2' AND item_sha256 = $1`, jobs[2].evs[0].hash); n != 1 {
		t.Errorf("t2 recorded %d times with the first content, want once", n)
	}
	if n := f.count(t, `SELECT count(*) FROM callbacks WHERE event_type = 'evidence.rejected' AND payload->>'partner' = partner_id`); n != 2 {
		t.Errorf("%d rejection callbacks addressed to their own partner, want 2", n)
	}
	// Neither partner has a callback URL: their callbacks are parked as
	// they are written, not left for the deliverer to park.
	if n := f.count(t, `SELECT count(*) FROM callbacks WHERE next_attempt_at = 'infinity' AND last_error = $1`, noURLError); n != 2 {
		t.Errorf("%d of the 2 callbacks parked when written", n)
	}

	// Each request's stored response is its own: a replay returns it, a
	// reused webhook id with another body is refused.
	again := cardJob(f.bankB, "wh-1", "t1", evidence.StatusCleared, 100)
	f.svc.process(ctx, []*job{again})
	var rp *Replayed
	if !errors.As(again.err, &rp) {
		t.Fatalf("replay: got %v", again.err)
	}
	stored, err := json.Marshal(jobs[1].resp)
	if err != nil {
		t.Fatal(err)
	}
	if string(rp.Body) != string(stored) {
		t.Errorf("replay returned %s, want bank-b's own response %s", rp.Body, stored)
	}
	reused := cardJob(f.bankA, "wh-2", "t9", evidence.StatusAuthorised, 1)
	f.svc.process(ctx, []*job{reused})
	if !errors.As(reused.err, &ae) || ae.Reason != "webhook_id_reused" {
		t.Errorf("reused webhook id: got %v, want webhook_id_reused", reused.err)
	}
}

// TestGroupCommitConcurrentRequests sends many requests at once through the
// group committer, each webhook id several times and some payments under
// two webhook ids: every request is answered, each webhook id and each
// event is recorded once, and every copy of a request gets the same answer.
func TestGroupCommitConcurrentRequests(t *testing.T) {
	f := newGroupFixture(t)
	stop := f.svc.EnableGroupCommit(3)
	defer stop()
	const hooks, copies = 120, 3
	type answer struct {
		outcome string
		body    []byte // the response as stored, or as replayed
		err     error
	}
	answers := make([][]answer, hooks)
	var wg sync.WaitGroup
	for h := range hooks {
		answers[h] = make([]answer, copies)
		for c := range copies {
			wg.Go(func() {
				// Webhook ids h and h+1 (h even) carry the same payment.
				j := cardJob(f.bankA, fmt.Sprintf("wh-%d", h), fmt.Sprintf("t%d", h/2), evidence.StatusAuthorised, 100)
				resp, err := f.svc.receive(context.Background(), j.req, j.evs)
				a := answer{err: err}
				if resp != nil {
					a.outcome = resp.Events[0].Outcome
					a.body, _ = json.Marshal(resp)
				}
				var rp *Replayed
				if errors.As(err, &rp) {
					a.body = rp.Body
				}
				answers[h][c] = a
			})
		}
	}
	wg.Wait()
	recorded := 0
	for h := range hooks {
		first := ""
		for c, a := range answers[h] {
			var rp *Replayed
			switch {
			case a.err == nil:
				if first != "" {
					t.Errorf("webhook %d copy %d: processed again (%s) after %s", h, c, a.outcome, first)
				}
				first = a.outcome
				if a.outcome == OutcomeRecorded {
					recorded++
				}
			case errors.As(a.err, &rp):
			default:
				t.Errorf("webhook %d copy %d: %v", h, c, a.err)
			}
		}
		if first == "" {
			t.Errorf("webhook %d: no copy processed", h)
		}
		for c, a := range answers[h][1:] {
			if string(a.body) != string(answers[h][0].body) {
				t.Errorf("webhook %d copy %d answered %q, copy 0 %q", h, c+1, a.body, answers[h][0].body)
			}
		}
	}
	if recorded != hooks/2 {
		t.Errorf("%d payments recorded, want %d (the other webhook id of each is a duplicate)", recorded, hooks/2)
	}
	if n := f.count(t, `SELECT count(*) FROM partner_requests WHERE response_status = 202`); n != hooks {
		t.Errorf("%d requests recorded, want %d", n, hooks)
	}
	if n := f.count(t, `SELECT count(*) FROM evidence_events`); n != hooks/2 {
		t.Errorf("%d events recorded, want %d", n, hooks/2)
	}
}

// TestGroupCommitStopped: once the workers have stopped, a request is
// answered 503 shutting_down rather than left waiting, and nothing of it is
// recorded.
func TestGroupCommitStopped(t *testing.T) {
	f := newGroupFixture(t)
	f.svc.EnableGroupCommit(2)()
	j := cardJob(f.bankA, "wh-late", "t-late", evidence.StatusAuthorised, 100)
	_, err := f.svc.receive(t.Context(), j.req, j.evs)
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.Unavailable || ae.Reason != "shutting_down" {
		t.Fatalf("got %v, want unavailable/shutting_down", err)
	}
	if n := f.count(t, `SELECT count(*) FROM partner_requests`); n != 0 {
		t.Errorf("%d requests recorded after shutdown, want 0", n)
	}
}

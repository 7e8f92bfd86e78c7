package app

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// Refunds and chargebacks of card-paid fares: a fare whose day was granted
// gives back its share of the grant (a reversal of its sub-claim); a fare
// refunded before its grant is dropped from it.

// fareAt is a metro fare paid by card at t with the operator's trip id.
func fareAt(id, token string, t time.Time, status string) partnerclient.CardTransaction {
	f := fare(id, token, t, "M-"+id)
	f.Status = status
	return f
}

// yesterdayAt is yesterday at hour h in the profile's zone: a day over, so
// its trips are granted at once.
func yesterdayAt(h int) time.Time {
	y := time.Now().In(shanghai).AddDate(0, 0, -1)
	return time.Date(y.Year(), y.Month(), y.Day(), h, 0, 0, 0, shanghai)
}

// grantRow is a transit grant as the outbox holds it.
type grantRow struct {
	claim, status string
	subClaims     []string
	points, grams int64
	occurredAt    time.Time
}

// tripOf returns a card fare's trip claim and its grant ("" when it has none).
func tripOf(t *testing.T, a *App, txID string) (claim string, g grantRow) {
	t.Helper()
	err := a.pool.QueryRow(t.Context(), `SELECT a.claim, coalesce(i.claim, ''), coalesce(i.status, ''), coalesce(i.sub_claims, '{}'),
		coalesce(i.points, 0), coalesce(i.grams, 0), coalesce(i.occurred_at, a.occurred_at)
		FROM actions a LEFT JOIN issuances i ON i.id = a.issuance_id WHERE a.partner_id = $1 AND a.partner_tx_id = $2`, DemoBank, txID).
		Scan(&claim, &g.claim, &g.status, &g.subClaims, &g.points, &g.grams, &g.occurredAt)
	if err != nil {
		t.Fatalf("trip of %s: %v", txID, err)
	}
	return claim, g
}

// ledgerClaim reads a claim on the ledger; found is false when it is not there.
func ledgerClaim(t *testing.T, a *App, claim string) (c points.Claim, found bool) {
	t.Helper()
	err := evaluate(t.Context(), a.Ledger(), DemoIssuerMSP, "GetClaim", points.ClaimArgs{Claim: claim}, &c)
	if apperr.ReasonOf(err) == "claim_not_found" {
		return c, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}

// worth is what a grant's trips of grams earn under the grant's rule set,
// at most the grant's points (docs/pipeline.md, refunds of fares).
func worth(t *testing.T, a *App, g grantRow, grams int64) int64 {
	t.Helper()
	if grams <= 0 {
		return 0
	}
	rs, err := a.Pipeline().Policy().RuleSet(g.occurredAt)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := rs.Points(pipeline.CategoryTransit, grams, g.occurredAt)
	if err != nil {
		t.Fatal(err)
	}
	return min(p, g.points)
}

// callbackSink collects the partner callbacks a test server receives.
type callbackSink struct {
	mu  sync.Mutex
	got []map[string]any
}

func (s *callbackSink) serve(t *testing.T, a *App, partner string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if r.Header.Get(webhook.HeaderSignature) == "" || json.NewDecoder(r.Body).Decode(&m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, m)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	if _, err := a.pool.Exec(t.Context(), `UPDATE partners SET callback_url = $1 WHERE id = $2`, srv.URL, partner); err != nil {
		t.Fatal(err)
	}
}

// wait returns the first callback of type typ for the action; the deadline
// only bounds a hang.
func (s *callbackSink) wait(t *testing.T, typ, actionID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		for _, c := range s.got {
			if c["type"] == typ && c["actionId"] == actionID {
				s.mu.Unlock()
				return c
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s callback for action %s", typ, actionID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkConservation checks the ledger's conservation sums and the
// projection's: every issued point is held, donated, expired or reversed,
// and the projection holds what the ledger holds.
func checkConservation(t *testing.T, a *App) {
	t.Helper()
	x := conservation(t, a)
	if !x.Balanced() {
		t.Errorf("ledger conservation broken: %+v", x)
	}
	waitProjection(t, a)
	var issued, accounted, held, reversed, out, in int64
	if err := a.pool.QueryRow(t.Context(), `SELECT coalesce(sum(amount) FILTER (WHERE cause = 'issue'), 0),
		coalesce(sum(remaining + donated + reversed + expired), 0), coalesce(sum(remaining), 0), coalesce(sum(reversed), 0),
		coalesce(sum(transferred_out), 0), coalesce(sum(amount) FILTER (WHERE cause = 'transfer_in'), 0) FROM proj_lots`).
		Scan(&issued, &accounted, &held, &reversed, &out, &in); err != nil {
		t.Fatal(err)
	}
	if issued != x.Issued || issued != accounted || out != in || held != x.Held || reversed != x.Reversed {
		t.Errorf("projection: issued %d, held+donated+reversed+expired %d, held %d, reversed %d, transfers %d/%d; ledger %+v",
			issued, accounted, held, reversed, out, in, x)
	}
}

// TestFareRefundReversesTripShare: three card-paid fares of one day make
// one grant; refunding and charging them back one by one takes back each
// trip's share (what the grant would not have earned without it), the
// others' claims and points stay, a second refund of a fare is a duplicate
// and a chargeback after its refund has nothing left to reverse; in the
// end the shares add up to the grant. A capped day's fare gives back
// nothing while the other trips still fill the cap.
func TestFareRefundReversesTripShare(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	cbs := &callbackSink{}
	cbs.serve(t, a, DemoBank)
	linkCards(t, a, DemoBank, "tok_fr_", "fr-acct-", 2)
	bank := sandboxClient(t, a, DemoBank)
	const acct, token = "fr-acct-0000", "tok_fr_0000"

	ids := []string{"fr-fare-1", "fr-fare-2", "fr-fare-3"}
	var cleared []partnerclient.CardTransaction
	for i, id := range ids {
		cleared = append(cleared, fareAt(id, token, yesterdayAt(8+i), "cleared"))
	}
	post(t, bank, "card-transactions", cardsBody(cleared...))
	var trips []string
	for _, id := range ids {
		waitActions(t, bank, "card-transactions/"+id, "issued")
		c, _ := tripOf(t, a, id)
		trips = append(trips, c)
	}
	_, g := tripOf(t, a, ids[0])
	if g.status != "issued" || len(g.subClaims) != 3 || g.points <= 0 {
		t.Fatalf("the day's grant %+v", g)
	}
	for _, id := range ids[1:] {
		if _, other := tripOf(t, a, id); other.claim != g.claim {
			t.Fatalf("fare %s in grant %s, want one grant for the day (%s)", id, other.claim, g.claim)
		}
	}
	tripGrams := g.grams / 3
	start := balance(t, a, acct)
	if start.Total != g.points {
		t.Fatalf("balance %d, want the grant's %d", start.Total, g.points)
	}

	// The first fare is refunded: its share goes back by its own sub-claim.
	want1 := worth(t, a, g, g.grams) - worth(t, a, g, g.grams-tripGrams)
	r := post(t, bank, "card-transactions", cardsBody(fareAt(ids[0], token, yesterdayAt(8), "refunded")))
	e := r.Events[0]
	if e.Outcome != pipeline.OutcomeAccepted || len(e.Actions) != 1 || e.Actions[0].Status != "reversal_queued" || e.Actions[0].Points != want1 {
		t.Fatalf("refund of a granted fare: %+v, want its share %d queued", e, want1)
	}
	st := waitActions(t, bank, "card-transactions/"+ids[0], "reversed")
	cb := cbs.wait(t, "action.reversed", st.Actions[0].ActionID)
	if cb["pointsReversed"] != float64(want1) || cb["reason"] != "refunded" || cb["transactionId"] != ids[0] {
		t.Errorf("reversal callback %v, want %d points back", cb, want1)
	}
	if b := balance(t, a, acct); b.Total != start.Total-want1 || b.Debt != 0 {
		t.Errorf("balance %+v after the refund, want %d", b, start.Total-want1)
	}
	if c, _ := ledgerClaim(t, a, trips[0]); c.Reversal == nil || c.Reversal.Clawed != want1 || c.Parent != g.claim {
		t.Errorf("the refunded trip on the ledger %+v", c)
	}
	for _, tr := range trips[1:] {
		if c, found := ledgerClaim(t, a, tr); !found || c.Reversal != nil || c.Parent != g.claim {
			t.Errorf("another trip of the grant on the ledger %+v (found %v)", c, found)
		}
	}
	for _, id := range ids[1:] {
		if st := waitActions(t, bank, "card-transactions/"+id, "issued"); st.Actions[0].Points != g.points {
			t.Errorf("fare %s: %+v", id, st.Actions[0])
		}
	}
	if gc, _ := ledgerClaim(t, a, g.claim); gc.SubReversed != want1 || gc.Reversal != nil {
		t.Errorf("the grant's claim %+v", gc)
	}
	checkConservation(t, a)
	// The projection has the trip's reversal; the grant's claim is not reversed.
	if n := queryInt(t, a, `SELECT count(*) FROM proj_claims WHERE (claim = $1 AND reversed AND clawed = $2 AND parent = $3)
		OR (claim = $3 AND NOT reversed)`, trips[0], want1, g.claim); n != 2 {
		t.Errorf("projected claims: %d of the trip's reversal and the grant's unreversed claim, want 2", n)
	}

	// The same refund again: a duplicate. A chargeback after the refund:
	// nothing left to reverse.
	r = post(t, bank, "card-transactions", cardsBody(fareAt(ids[0], token, yesterdayAt(8), "refunded")))
	if e := r.Events[0]; e.Outcome != pipeline.OutcomeDuplicate || e.Original != pipeline.OutcomeAccepted {
		t.Errorf("second refund: %+v", e)
	}
	r = post(t, bank, "card-transactions", cardsBody(fareAt(ids[0], token, yesterdayAt(8), "charged_back")))
	if e := r.Events[0]; e.Outcome != pipeline.OutcomeRecorded || e.Reason != pipeline.ReasonNothingToReverse ||
		len(e.Actions) != 1 || e.Actions[0].Status != "reversed" {
		t.Errorf("chargeback after the refund: %+v", e)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM reversals r JOIN actions x ON x.id = r.action_id WHERE x.partner_tx_id = $1`, ids[0]); n != 1 {
		t.Errorf("%d reversals of the first fare, want 1", n)
	}

	// A chargeback works as a refund; the last fare's refund takes what is left.
	want2 := worth(t, a, g, g.grams-tripGrams) - worth(t, a, g, g.grams-2*tripGrams)
	if r := post(t, bank, "card-transactions", cardsBody(fareAt(ids[1], token, yesterdayAt(9), "charged_back"))); r.Events[0].Actions[0].Points != want2 {
		t.Errorf("chargeback of the second fare: %+v, want %d", r.Events[0], want2)
	}
	waitActions(t, bank, "card-transactions/"+ids[1], "reversed")
	want3 := worth(t, a, g, g.grams-2*tripGrams)
	post(t, bank, "card-transactions", cardsBody(fareAt(ids[2], token, yesterdayAt(10), "refunded")))
	waitActions(t, bank, "card-transactions/"+ids[2], "reversed")
	if want1+want2+want3 != g.points {
		t.Errorf("shares %d + %d + %d, grant %d", want1, want2, want3, g.points)
	}
	if b := balance(t, a, acct); b.Total != 0 || b.Debt != 0 {
		t.Errorf("balance %+v after every fare was refunded", b)
	}
	if gc, _ := ledgerClaim(t, a, g.claim); gc.SubReversed != g.points {
		t.Errorf("the grant's claim %+v, want all %d points reversed by its trips", gc, g.points)
	}
	if _, gg := tripOf(t, a, ids[2]); gg.status != "issued" {
		t.Errorf("the grant's issuance %+v: it stays issued, its trips are reversed one by one", gg)
	}

	// A capped day: its fares earn more than the day's cap; refunding one
	// while the others still fill it gives back nothing, but is recorded.
	const capToken, capAcct = "tok_fr_0001", "fr-acct-0001"
	perTrip := worth(t, a, grantRow{points: 1 << 40, occurredAt: yesterdayAt(6)}, tripGrams)
	n := int(200/perTrip) + 3
	if perTrip <= 0 || n > points.MaxSubClaims {
		t.Fatalf("a fare earns %d points: cannot fill the day's cap with one grant", perTrip)
	}
	var capped []partnerclient.CardTransaction
	for i := range n {
		capped = append(capped, fareAt(fmt.Sprintf("fr-cap-%02d", i), capToken, yesterdayAt(6).Add(time.Duration(i)*time.Minute), "cleared"))
	}
	post(t, bank, "card-transactions", cardsBody(capped...))
	waitActions(t, bank, "card-transactions/fr-cap-00", "issued")
	_, cg := tripOf(t, a, "fr-cap-00")
	if cg.points != 200 || len(cg.subClaims) != n {
		t.Fatalf("capped grant %+v, want the day's cap of 200 over %d trips", cg, n)
	}
	r = post(t, bank, "card-transactions", cardsBody(fareAt("fr-cap-00", capToken, yesterdayAt(6), "refunded")))
	if act := r.Events[0].Actions[0]; act.Status != "reversal_queued" || act.Points != 0 {
		t.Errorf("refund of a capped day's fare: %+v", act)
	}
	waitActions(t, bank, "card-transactions/fr-cap-00", "reversed")
	if b := balance(t, a, capAcct); b.Total != 200 {
		t.Errorf("capped day after a refund: %+v", b)
	}
	checkConservation(t, a)
	if err := a.VerifyLedger(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFareRefundedBeforeGrant: a fare refunded while it waits for its day's
// grant is cancelled and the day's grant is made of the other fares only.
// A clearing that arrives with its refund (a settlement file holds both)
// earns nothing at all.
func TestFareRefundedBeforeGrant(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	linkCards(t, a, DemoBank, "tok_frb_", "frb-acct-", 2)
	bank := sandboxClient(t, a, DemoBank)
	const token, acct = "tok_frb_0000", "frb-acct-0000"

	// Today's fares wait for the day to end; one of them is refunded.
	now := time.Now().In(shanghai).Add(-time.Minute)
	r := post(t, bank, "card-transactions", cardsBody(fareAt("frb-fare-1", token, now, "cleared"), fareAt("frb-fare-2", token, now, "cleared")))
	for _, e := range r.Events {
		if e.Outcome != pipeline.OutcomeAccepted || e.Actions[0].Status != "queued" {
			t.Fatalf("today's fare %+v", e)
		}
	}
	r = post(t, bank, "card-transactions", cardsBody(fareAt("frb-fare-1", token, now, "refunded")))
	if e := r.Events[0]; e.Outcome != pipeline.OutcomeAccepted || len(e.Actions) != 1 || e.Actions[0].Status != "cancelled" ||
		e.Actions[0].Reason != "refund_before_issue" {
		t.Fatalf("refund of a fare waiting for its grant: %+v", e)
	}
	// The day ends (its fares fall due): the grant is made of the other fare.
	if _, err := a.pool.Exec(t.Context(), `UPDATE actions SET not_before = now() - interval '1 second' WHERE partner_tx_id IN ('frb-fare-1', 'frb-fare-2')`); err != nil {
		t.Fatal(err)
	}
	a.Batcher().Notify()
	waitActions(t, bank, "card-transactions/frb-fare-2", "issued")
	kept, g := tripOf(t, a, "frb-fare-2")
	dropped, none := tripOf(t, a, "frb-fare-1")
	if !slices.Equal(g.subClaims, []string{kept}) || none.claim != "" {
		t.Errorf("the day's grant has trips %v, want only %s; the refunded fare's grant %+v", g.subClaims, kept, none)
	}
	if st := waitActions(t, bank, "card-transactions/frb-fare-1", "cancelled"); st.Actions[0].Reason != "refund_before_issue" {
		t.Errorf("refunded fare %+v", st.Actions[0])
	}
	if _, found := ledgerClaim(t, a, dropped); found {
		t.Error("the refunded fare's trip is claimed on the ledger")
	}
	if b := balance(t, a, acct); b.Total != g.points {
		t.Errorf("balance %+v, want the grant's %d", b, g.points)
	}
	// A second refund of the cancelled fare is a duplicate; a chargeback
	// finds nothing to reverse.
	r = post(t, bank, "card-transactions", cardsBody(fareAt("frb-fare-1", token, now, "refunded"), fareAt("frb-fare-1", token, now, "charged_back")))
	if e := r.Events[0]; e.Outcome != pipeline.OutcomeDuplicate {
		t.Errorf("second refund %+v", e)
	}
	if e := r.Events[1]; e.Outcome != pipeline.OutcomeRecorded || e.Reason != pipeline.ReasonNothingToReverse {
		t.Errorf("chargeback of a cancelled fare %+v", e)
	}

	// Cleared and refunded in one request: the clearing earns nothing.
	const other = "tok_frb_0001"
	r = post(t, bank, "card-transactions", cardsBody(
		fareAt("frb-fare-3", other, yesterdayAt(8), "cleared"),
		fareAt("frb-fare-4", other, yesterdayAt(9), "cleared"),
		fareAt("frb-fare-3", other, yesterdayAt(8), "refunded"),
	))
	if e := r.Events[0]; e.Outcome != pipeline.OutcomeRejected || e.Reason != "refund_before_issue" {
		t.Errorf("a clearing refunded in the same request: %+v", e)
	}
	waitActions(t, bank, "card-transactions/frb-fare-4", "issued")
	if kept, g := tripOf(t, a, "frb-fare-4"); !slices.Equal(g.subClaims, []string{kept}) {
		t.Errorf("the other account's grant has trips %v, want only %s", g.subClaims, kept)
	}
	checkConservation(t, a)
}

// TestFareRefundedWhileGrantQueued: a fare refunded after its day's grant
// was made but before it reached the ledger (here: the ledger refuses the
// suspended issuer meanwhile) cancels that grant; the day's other fares
// are granted anew without it.
func TestFareRefundedWhileGrantQueued(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	linkCards(t, a, DemoBank, "tok_frq_", "frq-acct-", 1)
	bank := sandboxClient(t, a, DemoBank)
	const token, acct = "tok_frq_0000", "frq-acct-0000"
	setIssuerStatus(t, a, points.StatusSuspended)
	post(t, bank, "card-transactions", cardsBody(fareAt("frq-fare-1", token, yesterdayAt(8), "cleared"), fareAt("frq-fare-2", token, yesterdayAt(9), "cleared")))
	// The batcher groups the day into a grant it cannot issue.
	waitZero(t, a, 30*time.Second, `SELECT count(*) FROM actions WHERE account = $1 AND status <> 'grouped'`, acct)
	_, first := tripOf(t, a, "frq-fare-1")
	if first.status != "queued" || len(first.subClaims) != 2 {
		t.Fatalf("the day's grant %+v", first)
	}

	r := post(t, bank, "card-transactions", cardsBody(fareAt("frq-fare-1", token, yesterdayAt(8), "refunded")))
	if act := r.Events[0].Actions[0]; r.Events[0].Outcome != pipeline.OutcomeAccepted || act.Status != "cancelled" || act.Reason != "refund_before_issue" {
		t.Fatalf("refund of a fare in a queued grant: %+v", r.Events[0])
	}
	if n := queryInt(t, a, `SELECT count(*) FROM issuances WHERE claim = $1 AND status = 'cancelled' AND reason = 'refund_before_issue'`, first.claim); n != 1 {
		t.Errorf("the queued grant was not cancelled")
	}
	setIssuerStatus(t, a, points.StatusActive)
	waitActions(t, bank, "card-transactions/frq-fare-2", "issued")
	kept, g := tripOf(t, a, "frq-fare-2")
	dropped, _ := tripOf(t, a, "frq-fare-1")
	if g.claim == first.claim || !slices.Equal(g.subClaims, []string{kept}) {
		t.Errorf("the new grant %+v, want a new claim with only trip %s", g, kept)
	}
	for _, c := range []string{first.claim, dropped} {
		if _, found := ledgerClaim(t, a, c); found {
			t.Errorf("claim %s of the cancelled grant is on the ledger", c)
		}
	}
	if b := balance(t, a, acct); b.Total != g.points {
		t.Errorf("balance %+v, want the new grant's %d", b, g.points)
	}
	checkConservation(t, a)
}

// capLockKey is the advisory lock key the pipeline serialises an account's
// cap checks on (issuer/pipeline lockKey of capLockName): the test holds it
// to stop the batcher inside a grouping round.
func capLockKey(account string) int64 {
	h := fnv.New64a()
	h.Write([]byte("greenpoints/cap/" + account))
	return int64(h.Sum64())
}

// lockStatement starts the statement that takes the pipeline's advisory
// locks (issuer/pipeline queueLocks).
const lockStatement = "SELECT count(pg_advisory_xact_lock("

// waitBlocked waits until a backend waits on a lock in a statement that
// starts with prefix.
func waitBlocked(t *testing.T, a *App, prefix string) {
	t.Helper()
	waitZero(t, a, 30*time.Second, `SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
		AND datname = current_database() AND starts_with(query, $1)) THEN 0 ELSE 1 END`, prefix)
}

// TestFareRefundRacesGrouping: a refund that finds its fare waiting for the
// day's grant, while the batcher is grouping that very day, waits for the
// grouping, sees the fare in the new grant and cancels the grant (it is not
// on the ledger yet: the issuer is suspended meanwhile); the day's other
// fare is granted anew without it.
func TestFareRefundRacesGrouping(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	linkCards(t, a, DemoBank, "tok_frr_", "frr-acct-", 1)
	bank := sandboxClient(t, a, DemoBank)
	const token, acct = "tok_frr_0000", "frr-acct-0000"
	setIssuerStatus(t, a, points.StatusSuspended)
	// Hold the account's cap lock: the batcher's grouping round locks the
	// day's fares, then waits for it before writing the grant.
	hold, err := a.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(context.WithoutCancel(t.Context())) }()
	if _, err := hold.Exec(t.Context(), `SELECT pg_advisory_xact_lock($1)`, capLockKey(acct)); err != nil {
		t.Fatal(err)
	}
	post(t, bank, "card-transactions", cardsBody(fareAt("frr-fare-1", token, yesterdayAt(8), "cleared"), fareAt("frr-fare-2", token, yesterdayAt(9), "cleared")))
	waitBlocked(t, a, lockStatement)

	// The refund reads the fare as waiting, then waits for its row.
	type answer struct {
		r   pipeline.Response
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := bank.Post(context.WithoutCancel(t.Context()), "card-transactions", "application/json",
			cardsBody(fareAt("frr-fare-1", token, yesterdayAt(8), "refunded")))
		var ans answer
		switch {
		case err != nil:
			ans.err = err
		case r.Status != http.StatusAccepted:
			ans.err = fmt.Errorf("HTTP %d: %s", r.Status, r.Body)
		default:
			ans.err = json.Unmarshal(r.Body, &ans.r)
		}
		done <- ans
	}()
	waitBlocked(t, a, "SELECT id, status, coalesce(issuance_id")
	if err := hold.Commit(t.Context()); err != nil { // the grouping goes on and commits
		t.Fatal(err)
	}
	ans := <-done
	if ans.err != nil {
		t.Fatal(ans.err)
	}
	if e := ans.r.Events[0]; e.Outcome != pipeline.OutcomeAccepted || e.Actions[0].Status != "cancelled" || e.Actions[0].Reason != "refund_before_issue" {
		t.Fatalf("refund racing the grouping: %+v", e)
	}
	if n := queryInt(t, a, `SELECT count(*) FROM issuances WHERE account = $1 AND status = 'cancelled' AND reason = 'refund_before_issue'
		AND cardinality(sub_claims) = 2`, acct); n != 1 {
		t.Errorf("%d cancelled two-trip grants, want the one the grouping made", n)
	}
	setIssuerStatus(t, a, points.StatusActive)
	waitActions(t, bank, "card-transactions/frr-fare-2", "issued")
	kept, g := tripOf(t, a, "frr-fare-2")
	if !slices.Equal(g.subClaims, []string{kept}) {
		t.Errorf("the new grant has trips %v, want only %s", g.subClaims, kept)
	}
	if b := balance(t, a, acct); b.Total != g.points {
		t.Errorf("balance %+v, want the new grant's %d", b, g.points)
	}
	checkConservation(t, a)
}

// setIssuerStatus has the regulator set the demo issuer's status on the
// ledger (a suspended issuer's IssueBatch is refused).
func setIssuerStatus(t *testing.T, a *App, status string) {
	t.Helper()
	if err := submit(t.Context(), a.Ledger(), DemoRegulatorMSP, "SetMemberStatus",
		points.SetMemberStatusArgs{MSP: DemoIssuerMSP, Status: status}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFareRefundFreesCapRoom: a day whose fares earn past the daily cap is
// granted the cap; refunding one fare whose share the others no longer
// cover gives that share back, and a fare of the same day reported later
// earns up to the room the share left, no more.
func TestFareRefundFreesCapRoom(t *testing.T) {
	t.Parallel()
	a := seededApp(t)
	linkCards(t, a, DemoBank, "tok_frc_", "frc-acct-", 1)
	bank := sandboxClient(t, a, DemoBank)
	const token, acct, dayCap = "tok_frc_0000", "frc-acct-0000", 200
	day := yesterdayAt(6)
	first := fareAt("frc-fare-00", token, day, "cleared")
	post(t, bank, "card-transactions", cardsBody(first))
	waitActions(t, bank, "card-transactions/frc-fare-00", "issued")
	_, one := tripOf(t, a, "frc-fare-00")
	tripGrams := one.grams
	uncapped := grantRow{points: 1 << 40, occurredAt: day}
	// The smallest day over the cap whose refund of one fare takes it back
	// under: then the share is what the cap lost, more than nothing.
	n := 2
	for worth(t, a, uncapped, int64(n-1)*tripGrams) < dayCap && worth(t, a, uncapped, int64(n)*tripGrams) <= dayCap {
		n++
	}
	if worth(t, a, uncapped, int64(n-1)*tripGrams) >= dayCap || n > points.MaxSubClaims {
		t.Fatalf("cannot make a day whose refund frees cap room: %d fares of %d g", n, tripGrams)
	}
	// The first fare was granted alone; the others, reported the same day
	// after its grant, are granted together in a supplemental grant.
	var rest []partnerclient.CardTransaction
	for i := 1; i < n; i++ {
		rest = append(rest, fareAt(fmt.Sprintf("frc-fare-%02d", i), token, day.Add(time.Duration(i)*time.Minute), "cleared"))
	}
	post(t, bank, "card-transactions", cardsBody(rest...))
	waitActions(t, bank, fmt.Sprintf("card-transactions/frc-fare-%02d", n-1), "issued")
	if b := balance(t, a, acct); b.Total != dayCap {
		t.Fatalf("balance %d after %d fares, want the day's cap %d", b.Total, n, dayCap)
	}
	// Refund the last fare: its grant gives back what it loses without it.
	last := fmt.Sprintf("frc-fare-%02d", n-1)
	post(t, bank, "card-transactions", cardsBody(fareAt(last, token, day.Add(time.Duration(n-1)*time.Minute), "refunded")))
	waitActions(t, bank, "card-transactions/"+last, "reversed")
	after := balance(t, a, acct).Total
	room := dayCap - after
	if room <= 0 {
		t.Fatalf("balance %d after the refund: no share given back", after)
	}
	// A late fare of the same day earns the freed room, capped by it.
	post(t, bank, "card-transactions", cardsBody(fareAt("frc-fare-late", token, yesterdayAt(20), "cleared")))
	waitActions(t, bank, "card-transactions/frc-fare-late", "issued")
	want := min(worth(t, a, uncapped, tripGrams), room)
	if got := balance(t, a, acct).Total; got != after+want {
		t.Errorf("balance %d after the late fare, want %d + %d (the room the refund freed, at most a fare's worth)", got, after, want)
	}
	checkConservation(t, a)
}

package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// Intake is set-based: each phase is one statement (or one pipelined batch)
// for all the events of a transaction, whether it carries one request or
// many (group.go), so a transaction costs about nine round trips whatever
// its size.

// work is the state of one intake transaction.
type work struct {
	s       *Service
	tx      dbtx
	now     time.Time
	final   *pgx.Batch           // the statements of the transaction's last round trip
	earlier map[eventKey]earlier // events recorded before, read under the events' locks
	// refundsHere are the (partner, transaction id) pairs refunded or
	// charged back by this transaction's new events.
	refundsHere map[[2]string]bool
}

// eventKey identifies an event across requests: one partner's report of
// one transaction in one status.
type eventKey struct{ partner, kind, tx, status string }

func (ev *event) key() eventKey { return eventKey{ev.partner().ID, ev.kind, ev.txID, ev.status} }

// earlier is an event recorded by an earlier request.
type earlier struct {
	sum             []byte
	outcome, reason string
}

// newEvent is an event recorded for the first time by this transaction.
type newEvent struct {
	ev  *event
	id  uuid.UUID
	out outcome
}

// lockKey is the advisory lock key of a name: the same function for intake
// and batcher, so both serialise on the same keys.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// lockAll takes transaction-scoped advisory locks on names, in key order:
// two transactions locking overlapping sets never deadlock on them.
func lockAll(ctx context.Context, tx dbtx, names []string) error {
	b := &pgx.Batch{}
	queueLocks(b, names)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("advisory locks: %w", err)
	}
	return nil
}

// queueLocks queues lockAll's statements into b, so that they travel with
// the statements around them.
func queueLocks(b *pgx.Batch, names []string) {
	keys := make([]int64, 0, len(names))
	for _, n := range names {
		keys = append(keys, lockKey(n))
	}
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// One statement for all: a function scan of unnest yields the array's
	// elements in order, so the locks are taken in key order, as by one
	// statement each (which cost a request of 100 purchases 300 statements).
	b.Queue(`SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`, keys)
}

func eventLockName(partner, kind, txID string) string {
	return "greenpoints/event/" + partner + "/" + kind + "/" + txID
}

func capLockName(account string) string { return "greenpoints/cap/" + account }

// lockAccount serialises cap checks of one account across requests, the
// batcher's transit grants and server instances.
func lockAccount(ctx context.Context, tx dbtx, account string) error {
	return lockAll(ctx, tx, []string{capLockName(account)})
}

// run processes the transaction's events; it returns the requests whose
// events conflict with earlier ones (the transaction is then rolled back)
// or fills every event's result.
func (w *work) run(ctx context.Context, evs []*event, f *facts) (groupConflicts, error) {
	// The locks were taken, and the earlier events and the facts read, in
	// the first round trip (queueEarlier, queueLookups).
	news, firsts, conflicts := w.classify(evs)
	if len(conflicts) > 0 {
		return conflicts, nil
	}
	// A refund or chargeback in this same transaction counts as one
	// received before its clearing: the clearing earns nothing.
	w.refundsHere = map[[2]string]bool{}
	for _, n := range news {
		if n.ev.status == evidence.StatusRefunded || n.ev.status == evidence.StatusChargedBack {
			w.refundsHere[[2]string{n.ev.partner().ID, n.ev.txID}] = true
		}
	}
	var cands []*candidate
	var reversing []*newEvent
	for _, n := range news {
		switch {
		case n.ev.trip != nil:
			cands = append(cands, w.decideTrip(n, f)...)
		case n.ev.status == evidence.StatusCleared:
			cands = append(cands, w.decideCleared(n, f)...)
		case n.ev.status == evidence.StatusRefunded || n.ev.status == evidence.StatusChargedBack:
			reversing = append(reversing, n)
		default:
			n.out = outcome{status: OutcomeRecorded}
		}
	}
	if err := w.queueActions(ctx, cands, f); err != nil {
		return nil, err
	}
	if len(reversing) > 0 && w.final.Len() > 0 {
		// A refund reported with its clearing cancels the action and
		// issuance just queued, so they must be written first.
		if err := w.tx.SendBatch(ctx, w.final).Close(); err != nil {
			return nil, fmt.Errorf("record actions and issuances: %w", err)
		}
		w.final = &pgx.Batch{}
	}
	if err := w.reverse(ctx, reversing); err != nil {
		return nil, err
	}
	// Events with candidates: accepted when any action is queued.
	byEvent := map[*newEvent][]ActionResult{}
	var order []*newEvent
	for _, c := range cands {
		if _, ok := byEvent[c.n]; !ok {
			order = append(order, c.n)
		}
		byEvent[c.n] = append(byEvent[c.n], c.res)
	}
	for _, n := range order {
		n.out = summarise(byEvent[n])
	}
	for _, n := range news {
		r := n.ev.result()
		r.Outcome, r.Reason, r.Actions = n.out.status, n.out.reason, n.out.actions
	}
	// A duplicate of an event first seen in this same transaction (in its
	// own request or another) reports that event's outcome.
	for _, ev := range evs {
		if r := ev.result(); r.Outcome == OutcomeDuplicate && r.Original == "" {
			if n := firsts[ev.key()]; n != nil {
				r.Original, r.Reason = n.out.status, n.out.reason
			}
		}
	}
	return nil, w.queueOutcomes(news)
}

// eventLocks are the names of the events' locks: events of one payment are
// serialised across transactions (a refund can race its clearing through
// the API and a settlement file), so reading the events recorded before
// and inserting the new ones later in the transaction cannot race.
func eventLocks(evs []*event) []string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = eventLockName(ev.partner().ID, ev.kind, ev.txID)
	}
	return names
}

// queueEarlier queues into b, after the events' locks, the read of the
// events recorded before: the same events, and for a clearing the refund
// or chargeback of its payment (a refund can overtake its clearing: files
// and API calls race), which the same lock serialises.
func (w *work) queueEarlier(b *pgx.Batch, evs []*event) {
	var ps, ks, ts, ss []string
	probe := func(p, kind, tx, st string) {
		ps, ks, ts, ss = append(ps, p), append(ks, kind), append(ts, tx), append(ss, st)
	}
	for _, ev := range evs {
		probe(ev.partner().ID, ev.kind, ev.txID, ev.status)
		if ev.kind == "card" && ev.status == evidence.StatusCleared {
			probe(ev.partner().ID, ev.kind, ev.txID, evidence.StatusRefunded)
			probe(ev.partner().ID, ev.kind, ev.txID, evidence.StatusChargedBack)
		}
	}
	w.earlier = map[eventKey]earlier{}
	b.Queue(`SELECT e.partner_id, e.kind, e.partner_tx_id, e.event_status, e.item_sha256, e.outcome, e.reason
		FROM evidence_events e JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(p, kind, tx, st)
		ON e.partner_id = u.p AND e.kind = u.kind AND e.partner_tx_id = u.tx AND e.event_status = u.st`, ps, ks, ts, ss).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k eventKey
				var e earlier
				if err := rows.Scan(&k.partner, &k.kind, &k.tx, &k.status, &e.sum, &e.outcome, &e.reason); err != nil {
					return fmt.Errorf("load earlier events: %w", err)
				}
				w.earlier[k] = e
			}
			return rows.Err()
		})
}

// reversedBefore reports whether a refund or chargeback of a payment was
// recorded before or comes in this transaction.
func (w *work) reversedBefore(partner, txID string) bool {
	if w.refundsHere[[2]string{partner, txID}] {
		return true
	}
	for _, st := range []string{evidence.StatusRefunded, evidence.StatusChargedBack} {
		if _, ok := w.earlier[eventKey{partner, "card", txID, st}]; ok {
			return true
		}
	}
	return false
}

// classify sorts the events into new ones, duplicates (same content as an
// event recorded before or earlier in this transaction) and conflicts
// (same transaction id and status, different content). firsts maps each
// new event's key to it.
func (w *work) classify(evs []*event) (news []*newEvent, firsts map[eventKey]*newEvent, conflicts groupConflicts) {
	firsts = map[eventKey]*newEvent{}
	for _, ev := range evs {
		r := ev.result()
		*r = EventResult{Index: ev.index, TransactionID: ev.txID}
		if ev.kind == "card" {
			r.Status = ev.status
		}
		k := ev.key()
		sum, outcome, reason, seen := []byte(nil), "", "", false
		if e, ok := w.earlier[k]; ok {
			sum, outcome, reason, seen = e.sum, e.outcome, e.reason, true
		} else if n := firsts[k]; n != nil {
			sum, seen = n.ev.hash, true // its outcome is filled in once decided
		}
		switch {
		case !seen:
			n := &newEvent{ev: ev, id: uuid.Must(uuid.NewV7())}
			firsts[k] = n
			news = append(news, n)
		case !bytes.Equal(sum, ev.hash):
			if conflicts == nil {
				conflicts = groupConflicts{}
			}
			conflicts[ev.job] = append(conflicts[ev.job], apperr.FieldError{Field: fmt.Sprintf("%s[%d]", itemsField(ev.kind), ev.index), Reason: "transaction_conflict",
				Detail: fmt.Sprintf("transaction %q in status %q was received before with different content", ev.txID, ev.status)})
		default:
			r.Outcome, r.Original, r.Reason = OutcomeDuplicate, outcome, reason
		}
	}
	return news, firsts, conflicts
}

// facts are what the decisions need from the database, read in one batch.
type facts struct {
	links     map[[2]string]link         // (partner, card token) -> link
	labels    map[[2]string]labels.Entry // (brand key, model key) -> entry
	operators map[string]*Partner        // USCC -> transit operator
	accounts  map[string]bool            // accounts named by trips that we know
	taken     map[string]bool            // claims recorded before
}

type link struct {
	account   string
	withdrawn bool
}

// queueLookups queues into b, the transaction's first round trip, what the
// decisions need from the database for evs: card links, label entries,
// transit operators, accounts named by trips, and which of the events'
// claims (w.claims(evs)) are recorded already, read under the claims' locks
// taken in the same round trip, so the answer holds until commit.
// Duplicates among evs are looked up for nothing, which costs less than a
// round trip.
func (w *work) queueLookups(b *pgx.Batch, evs []*event, claims []string) *facts {
	f := &facts{links: map[[2]string]link{}, labels: map[[2]string]labels.Entry{},
		operators: map[string]*Partner{}, accounts: map[string]bool{}, taken: map[string]bool{}}
	var tokenPartners, tokens, brands, models, usccs, accounts []string
	for _, ev := range evs {
		p := ev.partner().ID
		switch {
		case ev.trip != nil:
			if ev.trip.Account != "" {
				accounts = append(accounts, ev.trip.Account)
			} else {
				tokenPartners, tokens = append(tokenPartners, p), append(tokens, ev.trip.CardToken)
			}
		case ev.status == evidence.StatusCleared:
			t := ev.card
			tokenPartners, tokens = append(tokenPartners, p), append(tokens, t.CardToken)
			if _, transit := transitMode(t.MCC); transit {
				usccs = append(usccs, t.MerchantUSCC)
			}
			for _, li := range t.LineItems {
				brands, models = append(brands, labels.NormalizeModel(li.Brand)), append(models, labels.NormalizeModel(li.Model))
			}
		}
	}
	if len(claims) > 0 {
		b.Queue(`SELECT claim FROM actions WHERE claim = ANY($1)`, claims).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var c string
				if err := rows.Scan(&c); err != nil {
					return err
				}
				f.taken[c] = true
			}
			return rows.Err()
		})
	}
	if len(tokens)+len(brands)+len(usccs)+len(accounts) == 0 {
		return f
	}
	b.Queue(`SELECT c.partner_id, c.card_token, c.account, c.withdrawn_at IS NOT NULL FROM card_links c
		JOIN unnest($1::text[], $2::text[]) AS u(p, t) ON c.partner_id = u.p AND c.card_token = u.t`, tokenPartners, tokens).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k [2]string
				var l link
				if err := rows.Scan(&k[0], &k[1], &l.account, &l.withdrawn); err != nil {
					return err
				}
				f.links[k] = l
			}
			return rows.Err()
		})
	b.Queue(`SELECT l.brand_key, l.model_key, l.brand, l.model, l.category, l.grade, l.label_value_milli, l.capacity_w
		FROM label_registry l JOIN unnest($1::text[], $2::text[]) AS u(b, m) ON l.brand_key = u.b AND l.model_key = u.m`, brands, models).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k [2]string
				var e labels.Entry
				if err := rows.Scan(&k[0], &k[1], &e.Brand, &e.Model, &e.Category, &e.Grade, &e.LabelValueMilli, &e.CapacityW); err != nil {
					return err
				}
				f.labels[k] = e
			}
			return rows.Err()
		})
	b.Queue(`SELECT id, kind, uscc, avg_bus_meters, avg_metro_meters, avg_source FROM partners
		WHERE uscc = ANY($1) AND kind = 'transit_operator' AND status = 'active' ORDER BY id DESC`, usccs).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				op := &Partner{}
				if err := rows.Scan(&op.ID, &op.Kind, &op.USCC, &op.AvgBusMeters, &op.AvgMetroMeters, &op.AvgSource); err != nil {
					return err
				}
				f.operators[op.USCC] = op // ordered by id descending: the lowest id wins
			}
			return rows.Err()
		})
	b.Queue(`SELECT a FROM unnest($1::text[]) AS a WHERE EXISTS (SELECT 1 FROM ledger_accounts l WHERE l.account = a)
		OR EXISTS (SELECT 1 FROM card_links c WHERE c.account = a AND c.withdrawn_at IS NULL)`, accounts).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var a string
				if err := rows.Scan(&a); err != nil {
					return err
				}
				f.accounts[a] = true
			}
			return rows.Err()
		})
	return f
}

// claims are the ledger claims the events' green actions would make, the
// same as decideCleared and decideTrip compute: the HMAC of each canonical
// evidence id.
func (w *work) claims(evs []*event) []string {
	var out []string
	for _, ev := range evs {
		switch {
		case ev.trip != nil:
			out = append(out, w.transitClaim(ev.partner().USCC, ev.trip.TripID))
		case ev.status != evidence.StatusCleared:
		case ev.card.OperatorTripID != "":
			// A ride's operator is the partner registered under the
			// merchant's USCC, so its claim is known before the lookup.
			out = append(out, w.transitClaim(ev.card.MerchantUSCC, ev.card.OperatorTripID))
		default:
			for _, li := range ev.card.LineItems {
				out = append(out, w.applianceClaim(ev.card, li.Line))
			}
		}
	}
	return out
}

func (w *work) transitClaim(operatorUSCC, tripID string) string {
	return evidence.Claim(w.s.cfg.ClaimKey, evidence.TransitEvidenceID(operatorUSCC, tripID))
}

func (w *work) applianceClaim(t *evidence.CardTransaction, line int) string {
	return evidence.Claim(w.s.cfg.ClaimKey, evidence.ApplianceEvidenceID(t.MerchantUSCC, t.InvoiceNumber, line))
}

// claimLocks are the names of the claims' locks: a claim is
// checked in the first round trip and recorded in the last, and the lock
// keeps a concurrent transaction (the bank's fare and the operator's trip
// record of one ride) from recording it in between.
func claimLocks(claims []string) []string {
	names := make([]string, len(claims))
	for i, c := range claims {
		names[i] = "greenpoints/claim/" + c
	}
	return names
}

// account resolves a partner's card token to its consented account.
func (f *facts) account(partner, token string) (string, string) {
	l, ok := f.links[[2]string{partner, token}]
	switch {
	case !ok:
		return "", evidence.ReasonNoCardLink
	case l.withdrawn:
		return "", evidence.ReasonConsentWithdrawn
	}
	return l.account, ""
}

// candidate is a green action found in an event, before it is recorded.
type candidate struct {
	n         *newEvent
	id        uuid.UUID
	kind      string
	line      int
	txID      string
	account   string
	claim     string
	day       string
	at        time.Time
	notBefore time.Time
	rec       quantify.Record
	meth      quantify.Ref
	prof      rules.Profile
	quantity  int64
	res       ActionResult
}

func (w *work) newCandidate(n *newEvent, kind string) *candidate {
	id := uuid.Must(uuid.NewV7())
	return &candidate{n: n, id: id, kind: kind, res: ActionResult{ActionID: id.String(), Kind: kind, Status: "rejected"}}
}

// decideCleared classifies a cleared card payment: a ride (only with the
// operator's ride-level trip id) or itemised appliances.
func (w *work) decideCleared(n *newEvent, f *facts) []*candidate {
	t := n.ev.card
	mode, isTransit := transitMode(t.MCC)
	if isTransit && t.OperatorTripID == "" {
		n.out = rejected(evidence.ReasonMCCNotTrip) // top-ups and passes are not trips
		return nil
	}
	account, reason := f.account(n.ev.partner().ID, t.CardToken)
	if reason != "" {
		n.out = rejected(reason)
		return nil
	}
	if w.reversedBefore(n.ev.partner().ID, t.TransactionID) { // a payment already reversed earns nothing
		n.out = rejected(evidence.ReasonRefundBeforeIssue)
		return nil
	}
	if isTransit {
		op := f.operators[t.MerchantUSCC]
		if op == nil {
			n.out = rejected(ReasonUnknownOperator)
			return nil
		}
		trip := evidence.Trip{TripID: t.OperatorTripID, Mode: mode, BoardedAt: t.Time, AlightedAt: t.Time}
		return []*candidate{w.transit(n, op, &trip, account, t.TransactionID)}
	}
	if len(t.LineItems) == 0 {
		n.out = rejected(evidence.ReasonNoEligibleItems)
		return nil
	}
	if t.InvoiceNumber == "" {
		n.out = rejected(ReasonNoInvoice)
		return nil
	}
	var cs []*candidate
	for i := range t.LineItems {
		cs = append(cs, w.appliance(n, f, t, &t.LineItems[i], account))
	}
	return cs
}

// appliance quantifies one invoice line; pricing comes later, for all
// candidates at once.
func (w *work) appliance(n *newEvent, f *facts, t *evidence.CardTransaction, li *evidence.LineItem, account string) *candidate {
	c := w.newCandidate(n, CategoryAppliance)
	c.line, c.res.Line, c.txID, c.account, c.at = li.Line, li.Line, t.TransactionID, account, t.Time
	c.claim = w.applianceClaim(t, li.Line)
	e, ok := f.labels[[2]string{labels.NormalizeModel(li.Brand), labels.NormalizeModel(li.Model)}]
	if !ok {
		c.res.Reason = evidence.ReasonModelNotInRegistry
		return c
	}
	prof, err := w.s.policy.Profile(t.Time)
	if err != nil {
		c.res.Reason = apperr.ReasonOf(err)
		return c
	}
	c.prof, c.notBefore = prof, t.Time.Add(prof.HoldPeriod)
	c.res.NotBefore = c.notBefore
	if !accepts(prof, CategoryAppliance) {
		c.res.Reason = evidence.ReasonCategoryNotAccepted
		return c
	}
	meth, err := w.s.policy.Methods.Find(CategoryAppliance, w.s.policy.Jurisdiction, t.Time)
	if err != nil {
		c.res.Reason = apperr.ReasonOf(err)
		return c
	}
	rec, err := meth.Appliance(quantify.ApplianceInput{Category: e.Category, Model: e.Model, Grade: e.Grade,
		LabelValueMilli: e.LabelValueMilli, Quantity: li.Quantity, CapacityW: e.CapacityW})
	if err != nil {
		c.res.Reason = evidence.ReasonGradeNotEligible
		return c
	}
	c.rec, c.meth, c.res.Grams, c.res.Status = rec, meth.Ref, rec.Grams, "queued"
	return c
}

// decideTrip handles an operator's trip record.
func (w *work) decideTrip(n *newEvent, f *facts) []*candidate {
	t := n.ev.trip
	account := t.Account
	if account == "" {
		acct, reason := f.account(n.ev.partner().ID, t.CardToken)
		if reason != "" {
			n.out = rejected(reason)
			return nil
		}
		account = acct
	} else if !f.accounts[account] {
		n.out = rejected(ReasonUnknownAccount)
		return nil
	}
	return []*candidate{w.transit(n, &n.ev.partner().Partner, t, account, t.TripID)}
}

// transit quantifies one ride, to be granted with the account's other
// rides of its local day when that day ends.
func (w *work) transit(n *newEvent, op *Partner, t *evidence.Trip, account, txID string) *candidate {
	c := w.newCandidate(n, CategoryTransit)
	c.txID, c.account, c.at = txID, account, t.BoardedAt
	c.claim = w.transitClaim(op.USCC, t.TripID)
	prof, err := w.s.policy.Profile(t.BoardedAt)
	if err != nil {
		c.res.Reason = apperr.ReasonOf(err)
		return c
	}
	c.prof = prof
	c.day = prof.LocalDay(t.BoardedAt)
	_, c.notBefore = prof.PeriodWindow("day", t.BoardedAt)
	c.res.NotBefore = c.notBefore
	if !accepts(prof, CategoryTransit) {
		c.res.Reason = evidence.ReasonCategoryNotAccepted
		return c
	}
	meth, err := w.s.policy.Methods.Find(CategoryTransit, w.s.policy.Jurisdiction, t.BoardedAt)
	if err != nil {
		c.res.Reason = apperr.ReasonOf(err)
		return c
	}
	avg := op.AvgBusMeters
	if t.Mode == evidence.ModeMetro {
		avg = op.AvgMetroMeters
	}
	rec, err := meth.Transit(quantify.TransitInput{Mode: t.Mode, DistanceMeters: t.DistanceMeters, OperatorAverageMeters: avg, AverageSource: op.AvgSource})
	if err != nil {
		c.res.Reason = apperr.ReasonOf(err)
		return c
	}
	c.rec, c.meth, c.res.Grams, c.res.Status = rec, meth.Ref, rec.Grams, "queued"
	return c
}

// queueActions records the candidates: claims already recorded (or earlier
// in this request) are duplicates; appliances are priced under their caps
// and queued as issuances; rides wait for their day's grant.
func (w *work) queueActions(ctx context.Context, cands []*candidate, f *facts) error {
	if len(cands) == 0 {
		return nil
	}
	// The cap locks of the accounts with appliances to price, and their
	// usage read once the locks are granted.
	u := newUsage()
	var locks []string
	for _, c := range cands {
		if c.kind != CategoryAppliance || c.res.Status != "queued" || f.taken[c.claim] {
			continue
		}
		locks = append(locks, capLockName(c.account))
		for _, cp := range c.prof.Caps {
			if cp.Category == CategoryAppliance {
				start, end := c.prof.PeriodWindow(cp.Period, c.at)
				u.want(c.account, CategoryAppliance, start, end)
			}
		}
	}
	if len(locks) > 0 {
		b := &pgx.Batch{}
		queueLocks(b, locks)
		u.queue(b)
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("cap locks and usage: %w", err)
		}
	}
	taken := f.taken
	var live []*candidate
	for _, c := range cands {
		if c.rec.Methodology.ID == "" {
			continue // not quantified (unknown model, intercity mode...): nothing claimed, the evidence may come back
		}
		if taken[c.claim] {
			c.res.Status, c.res.Reason, c.res.Points = "rejected", evidence.ReasonDuplicateEvidence, 0
			continue
		}
		taken[c.claim] = true // the same evidence twice in one transaction: the first one counts
		live = append(live, c)
	}
	issues, err := w.priceAppliances(live, u)
	if err != nil {
		return err
	}
	if len(live) == 0 {
		return nil
	}
	// The actions, each naming its issuance if it gets one, and the
	// issuances travel with the transaction's last round trip; the claims'
	// locks (first round trip) keep anyone else from recording them.
	n := len(live)
	// UUIDs travel as [16]byte: pgx encodes those directly, while
	// uuid.UUID goes through its driver.Valuer (a string, parsed back).
	ids, events, partners, kinds, txs, lines, accts, cls, days, ats, grams, recs, hashes, sts, reasons, nbs, issIDs := make([][16]byte, n),
		make([][16]byte, n), make([]string, n), make([]string, n), make([]string, n), make([]int32, n), make([]string, n), make([]string, n),
		make([]string, n), make([]time.Time, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]time.Time, n), make([]pgtype.UUID, n)
	var queue []*issuance
	for i, c := range live {
		canon := c.rec.Canonical()
		rec, hash := string(canon), quantify.HashOf(canon)
		nb := c.notBefore
		if nb.IsZero() {
			nb = c.at
		}
		ids[i], events[i], partners[i], kinds[i], txs[i], lines[i], accts[i], cls[i], days[i], ats[i], grams[i], recs[i], hashes[i], sts[i], reasons[i], nbs[i] =
			c.id, c.n.id, c.n.ev.partner().ID, c.kind, c.txID, int32(c.line), c.account, c.claim, c.day, c.at, c.res.Grams, rec, hash, c.res.Status, c.res.Reason, nb
		if iss := issues[c]; iss != nil && c.res.Status == "queued" {
			issIDs[i] = pgtype.UUID{Bytes: iss.id, Valid: true}
			queue = append(queue, iss)
			if c.kind == CategoryAppliance {
				// Its issuance's record holds this one verbatim (its one
				// quantification): kept once (view action_records).
				recs[i] = ""
			}
		}
	}
	w.final.Queue(`INSERT INTO actions (id, event_id, partner_id, kind, partner_tx_id, line, account, claim,
		local_day, occurred_at, grams, record, record_hash, status, reason, not_before, issuance_id)
		SELECT u.id, u.ev, u.p, u.kind, u.tx, u.line, u.acct, u.claim, u.day, u.at, u.grams, nullif(u.rec, '')::json, u.hash, u.st, u.reason, u.nb, u.iss
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::timestamptz[],
			$11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::uuid[])
			AS u(id, ev, p, kind, tx, line, acct, claim, day, at, grams, rec, hash, st, reason, nb, iss)`,
		ids, events, partners, kinds, txs, lines, accts, cls, days, ats, grams, recs, hashes, sts, reasons, nbs, issIDs)
	if len(queue) == 0 {
		return nil
	}
	return queueIssuances(w.final, queue)
}

// priceAppliances prices the queued appliance candidates under the rule set
// in force at each purchase and the profile's caps, given the usage read
// under the accounts' cap locks; a capped-out candidate becomes rejected.
func (w *work) priceAppliances(cands []*candidate, u *usage) (map[*candidate]*issuance, error) {
	out := map[*candidate]*issuance{}
	var priced []*candidate
	for _, c := range cands {
		if c.kind == CategoryAppliance && c.res.Status == "queued" {
			priced = append(priced, c)
		}
	}
	for _, c := range priced {
		iss := &issuance{id: c.id, kind: CategoryAppliance, account: c.account, category: CategoryAppliance, claim: c.claim,
			occurredAt: c.at, notBefore: c.notBefore, grams: c.rec.Grams, methodology: c.meth}
		pts, reason, err := priceWith(w.s.policy, c.prof, iss, []quantify.Record{c.rec}, u)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			c.res.Status, c.res.Reason = "rejected", reason
			continue
		}
		c.res.Points = pts
		out[c] = iss
	}
	return out, nil
}

// usage is the points already queued or issued per account, category and
// cap window, loaded in one query and then kept current as this
// transaction prices more.
type usage struct {
	keys []usageKey
	used map[usageKey]int64
}

type usageKey struct {
	account, category string
	start, end        time.Time
}

func newUsage() *usage { return &usage{used: map[usageKey]int64{}} }

func (u *usage) want(account, category string, start, end time.Time) {
	k := usageKey{account, category, start.UTC(), end.UTC()}
	if _, ok := u.used[k]; !ok {
		u.used[k] = 0
		u.keys = append(u.keys, k)
	}
}

func (u *usage) load(ctx context.Context, tx dbtx) error {
	b := &pgx.Batch{}
	u.queue(b)
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// queue queues the usage query into b; its rows fill u when b is sent.
func (u *usage) queue(b *pgx.Batch) {
	if len(u.keys) == 0 {
		return
	}
	n := len(u.keys)
	accts, cats, starts, ends := make([]string, n), make([]string, n), make([]time.Time, n), make([]time.Time, n)
	for i, k := range u.keys {
		accts[i], cats[i], starts[i], ends[i] = k.account, k.category, k.start, k.end
	}
	// A grant's points count less the shares its refunded trips gave back
	// (queued or done): a refund frees the cap room it used.
	b.Queue(`SELECT u.i, coalesce((SELECT sum(x.points - coalesce((SELECT sum(r.points) FROM reversals r
				WHERE r.issuance_id = x.id AND r.action_id IS NOT NULL AND r.status <> 'failed'), 0))
			FROM issuances x WHERE x.account = u.acct AND x.category = u.cat
			AND x.occurred_at >= u.s AND x.occurred_at < u.e AND x.status IN ('queued', 'issued')), 0)
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY AS u(acct, cat, s, e, i)`,
		accts, cats, starts, ends).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var i int
			var sum int64
			if err := rows.Scan(&i, &sum); err != nil {
				return fmt.Errorf("sum points in cap windows: %w", err)
			}
			u.used[u.keys[i-1]] = sum
		}
		return rows.Err()
	})
}

func (u *usage) get(account, category string, start, end time.Time) int64 {
	return u.used[usageKey{account, category, start.UTC(), end.UTC()}]
}

func (u *usage) add(account, category string, start, end time.Time, pts int64) {
	u.used[usageKey{account, category, start.UTC(), end.UTC()}] += pts
}

// queueOutcomes queues the new events, with their outcomes, and a callback
// for each rejected one into w.final, which the transaction's last round
// trip sends.
func (w *work) queueOutcomes(news []*newEvent) error {
	if len(news) == 0 {
		return nil
	}
	n := len(news)
	ids, ps, kinds, txs, sts, hashes, reqs, idxs, srcs, ats, outs, reasons := make([][16]byte, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([][]byte, n), make([]string, n), make([]int32, n), make([]string, n), make([]time.Time, n),
		make([]string, n), make([]string, n)
	var cbPartners, cbTypes []string
	var payloads [][]byte
	for i, ne := range news {
		ev := ne.ev
		ids[i], ps[i], kinds[i], txs[i], sts[i], hashes[i], reqs[i], idxs[i], srcs[i], ats[i], outs[i], reasons[i] =
			ne.id, ev.partner().ID, ev.kind, ev.txID, ev.status, ev.hash, ev.job.resp.RequestID, int32(ev.index), ev.source, ev.at, ne.out.status, ne.out.reason
		if ne.out.status == OutcomeRejected {
			b, err := json.Marshal(map[string]any{"type": "evidence.rejected", "partner": ev.partner().ID, "kind": ev.kind,
				"transactionId": ev.txID, "status": ev.status, "reason": ne.out.reason})
			if err != nil {
				return err
			}
			cbPartners, cbTypes, payloads = append(cbPartners, ev.partner().ID), append(cbTypes, "evidence.rejected"), append(payloads, b)
		}
	}
	w.final.Queue(`INSERT INTO evidence_events (id, partner_id, kind, partner_tx_id, event_status, item_sha256,
		request_id, item_index, source, occurred_at, outcome, reason)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::uuid[], $8::int[],
			$9::text[], $10::timestamptz[], $11::text[], $12::text[])`, ids, ps, kinds, txs, sts, hashes, reqs, idxs, srcs, ats, outs, reasons)
	if len(payloads) > 0 {
		queueCallbacks(w.final, w.s.metrics, cbPartners, cbTypes, payloads)
	}
	return nil
}

func itemsField(kind string) string {
	if kind == "trip" {
		return "trips"
	}
	return "transactions"
}

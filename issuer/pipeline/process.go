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

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// The intake of one request is set-based: each phase is one statement (or
// one pipelined batch) for all of the request's events, so a request of 100
// events costs about fifteen round trips, not a thousand.

// work is the state of one request's transaction.
type work struct {
	s         *Service
	tx        pgx.Tx
	req       Request
	requestID string
	now       time.Time
	final     *pgx.Batch // the statements of the request's last round trip
}

// newEvent is an event recorded for the first time by this request.
type newEvent struct {
	i   int // index in the request
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
func lockAll(ctx context.Context, tx pgx.Tx, names []string) error {
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
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, k)
	}
}

func eventLockName(partner, kind, txID string) string {
	return "greenpoints/event/" + partner + "/" + kind + "/" + txID
}

func capLockName(account string) string { return "greenpoints/cap/" + account }

// lockAccount serialises cap checks of one account across requests, the
// batcher's transit grants and server instances.
func lockAccount(ctx context.Context, tx pgx.Tx, account string) error {
	return lockAll(ctx, tx, []string{capLockName(account)})
}

// run processes a request's events; it returns the conflicts (the request
// is then rolled back) or fills res.
func (w *work) run(ctx context.Context, evs []event, res []EventResult) ([]apperr.FieldError, error) {
	// The events' locks were taken with the request row (eventLocks).
	news, conflicts, err := w.recordEvents(ctx, evs, res)
	if err != nil || len(conflicts) > 0 {
		return conflicts, err
	}
	f, err := w.lookups(ctx, news)
	if err != nil {
		return nil, err
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
	if err := w.queueActions(ctx, cands); err != nil {
		return nil, err
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
		res[n.i].Outcome, res[n.i].Reason, res[n.i].Actions = n.out.status, n.out.reason, n.out.actions
	}
	// A duplicate of an event first seen in this same request reports it.
	for i := range res {
		if res[i].Outcome == OutcomeDuplicate && res[i].Original == "" {
			for _, n := range news {
				if n.ev.kind == evs[i].kind && n.ev.txID == evs[i].txID && n.ev.status == evs[i].status {
					res[i].Original, res[i].Reason = n.out.status, n.out.reason
				}
			}
		}
	}
	return nil, w.queueOutcomes(news)
}

// eventLocks are the names of the request's event locks: events of one
// payment are serialised across requests (a refund can race its clearing
// through the API and a settlement file).
func eventLocks(partner string, evs []event) []string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = eventLockName(partner, ev.kind, ev.txID)
	}
	return names
}

// recordEvents inserts the request's events; an event received before is a
// duplicate (same content) or a conflict (different content).
func (w *work) recordEvents(ctx context.Context, evs []event, res []EventResult) ([]*newEvent, []apperr.FieldError, error) {
	n := len(evs)
	ids, kinds, txs, sts, hashes, idxs, srcs, ats := make([]uuid.UUID, n), make([]string, n), make([]string, n), make([]string, n),
		make([][]byte, n), make([]int32, n), make([]string, n), make([]time.Time, n)
	for i, ev := range evs {
		ids[i], kinds[i], txs[i], sts[i], hashes[i], idxs[i], srcs[i], ats[i] = uuid.Must(uuid.NewV7()), ev.kind, ev.txID, ev.status, ev.hash, int32(i), ev.source, ev.at
		res[i] = EventResult{Index: i, TransactionID: ev.txID}
		if ev.kind == "card" {
			res[i].Status = ev.status
		}
	}
	rows, err := w.tx.Query(ctx, `INSERT INTO evidence_events (id, partner_id, kind, partner_tx_id, event_status, item_sha256,
		request_id, item_index, source, occurred_at, outcome)
		SELECT u.id, $1, u.kind, u.tx, u.st, u.h, $2, u.idx, u.src, u.at, ''
		FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::int[], $9::text[], $10::timestamptz[])
			AS u(id, kind, tx, st, h, idx, src, at)
		ON CONFLICT (partner_id, kind, partner_tx_id, event_status) DO NOTHING RETURNING id`,
		w.req.Partner.ID, w.requestID, ids, kinds, txs, sts, hashes, idxs, srcs, ats)
	if err != nil {
		return nil, nil, fmt.Errorf("record events: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, nil, fmt.Errorf("record events: %w", err)
	}
	isNew := make(map[uuid.UUID]bool, len(inserted))
	for _, id := range inserted {
		isNew[id] = true
	}
	var news []*newEvent
	var dupIdx []int
	for i := range evs {
		if isNew[ids[i]] {
			news = append(news, &newEvent{i: i, ev: &evs[i], id: ids[i]})
		} else {
			dupIdx = append(dupIdx, i)
		}
	}
	if len(dupIdx) == 0 {
		return news, nil, nil
	}
	// Earlier events: compare content.
	type key struct{ kind, tx, st string }
	dk, dt, ds := make([]string, len(dupIdx)), make([]string, len(dupIdx)), make([]string, len(dupIdx))
	for j, i := range dupIdx {
		dk[j], dt[j], ds[j] = kinds[i], txs[i], sts[i]
	}
	rows, err = w.tx.Query(ctx, `SELECT e.kind, e.partner_tx_id, e.event_status, e.item_sha256, e.outcome, e.reason
		FROM evidence_events e JOIN unnest($2::text[], $3::text[], $4::text[]) AS u(kind, tx, st)
		ON e.kind = u.kind AND e.partner_tx_id = u.tx AND e.event_status = u.st WHERE e.partner_id = $1`, w.req.Partner.ID, dk, dt, ds)
	if err != nil {
		return nil, nil, fmt.Errorf("load earlier events: %w", err)
	}
	type earlier struct {
		sum             []byte
		outcome, reason string
	}
	seen := map[key]earlier{}
	for rows.Next() {
		var k key
		var e earlier
		if err := rows.Scan(&k.kind, &k.tx, &k.st, &e.sum, &e.outcome, &e.reason); err != nil {
			rows.Close()
			return nil, nil, err
		}
		seen[k] = e
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	var conflicts []apperr.FieldError
	for _, i := range dupIdx {
		e, ok := seen[key{kinds[i], txs[i], sts[i]}]
		if !ok {
			return nil, nil, fmt.Errorf("event %s/%s vanished", txs[i], sts[i])
		}
		if !bytes.Equal(e.sum, hashes[i]) {
			conflicts = append(conflicts, apperr.FieldError{Field: fmt.Sprintf("%s[%d]", itemsField(kinds[i]), i), Reason: "transaction_conflict",
				Detail: fmt.Sprintf("transaction %q in status %q was received before with different content", txs[i], sts[i])})
			continue
		}
		res[i].Outcome, res[i].Original, res[i].Reason = OutcomeDuplicate, e.outcome, e.reason
	}
	return news, conflicts, nil
}

// facts are what the decisions need from the database, read in one batch.
type facts struct {
	links     map[string]link            // card token -> link
	refunded  map[string]bool            // transaction ids with a refund or chargeback
	labels    map[[2]string]labels.Entry // (brand key, model key) -> entry
	operators map[string]*Partner        // USCC -> transit operator
	accounts  map[string]bool            // accounts named by trips that we know
}

type link struct {
	account   string
	withdrawn bool
}

func (w *work) lookups(ctx context.Context, news []*newEvent) (*facts, error) {
	f := &facts{links: map[string]link{}, refunded: map[string]bool{}, labels: map[[2]string]labels.Entry{},
		operators: map[string]*Partner{}, accounts: map[string]bool{}}
	var tokens, cleared, brands, models, usccs, accounts []string
	for _, n := range news {
		switch {
		case n.ev.trip != nil:
			if n.ev.trip.Account != "" {
				accounts = append(accounts, n.ev.trip.Account)
			} else {
				tokens = append(tokens, n.ev.trip.CardToken)
			}
		case n.ev.status == evidence.StatusCleared:
			t := n.ev.card
			tokens = append(tokens, t.CardToken)
			cleared = append(cleared, t.TransactionID)
			if _, transit := transitMode(t.MCC); transit {
				usccs = append(usccs, t.MerchantUSCC)
			}
			for _, li := range t.LineItems {
				brands, models = append(brands, labels.NormalizeModel(li.Brand)), append(models, labels.NormalizeModel(li.Model))
			}
		}
	}
	if len(tokens)+len(cleared)+len(brands)+len(usccs)+len(accounts) == 0 {
		return f, nil
	}
	p := w.req.Partner.ID
	b := &pgx.Batch{}
	b.Queue(`SELECT card_token, account, withdrawn_at IS NOT NULL FROM card_links WHERE partner_id = $1 AND card_token = ANY($2)`, p, tokens).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var tok string
				var l link
				if err := rows.Scan(&tok, &l.account, &l.withdrawn); err != nil {
					return err
				}
				f.links[tok] = l
			}
			return rows.Err()
		})
	// A refund or chargeback can overtake its clearing (files and API
	// calls race); a payment already reversed earns nothing.
	b.Queue(`SELECT DISTINCT partner_tx_id FROM evidence_events WHERE partner_id = $1 AND kind = 'card'
		AND event_status IN ('refunded', 'charged_back') AND partner_tx_id = ANY($2)`, p, cleared).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var tx string
				if err := rows.Scan(&tx); err != nil {
					return err
				}
				f.refunded[tx] = true
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
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("look up links, refunds, labels and operators: %w", err)
	}
	return f, nil
}

// account resolves a card token to its consented account.
func (f *facts) account(token string) (string, string) {
	l, ok := f.links[token]
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
	account, reason := f.account(t.CardToken)
	if reason != "" {
		n.out = rejected(reason)
		return nil
	}
	if f.refunded[t.TransactionID] {
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
	c.claim = evidence.Claim(w.s.cfg.ClaimKey, evidence.ApplianceEvidenceID(t.MerchantUSCC, t.InvoiceNumber, li.Line))
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
		acct, reason := f.account(t.CardToken)
		if reason != "" {
			n.out = rejected(reason)
			return nil
		}
		account = acct
	} else if !f.accounts[account] {
		n.out = rejected(ReasonUnknownAccount)
		return nil
	}
	return []*candidate{w.transit(n, &w.req.Partner.Partner, t, account, t.TripID)}
}

// transit quantifies one ride, to be granted with the account's other
// rides of its local day when that day ends.
func (w *work) transit(n *newEvent, op *Partner, t *evidence.Trip, account, txID string) *candidate {
	c := w.newCandidate(n, CategoryTransit)
	c.txID, c.account, c.at = txID, account, t.BoardedAt
	c.claim = evidence.Claim(w.s.cfg.ClaimKey, evidence.TransitEvidenceID(op.USCC, t.TripID))
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
func (w *work) queueActions(ctx context.Context, cands []*candidate) error {
	if len(cands) == 0 {
		return nil
	}
	claims := make([]string, len(cands))
	for i, c := range cands {
		claims[i] = c.claim
	}
	// One round trip: the claims already recorded, then the cap locks of
	// the accounts with appliances to price and their usage (read after the
	// locks are granted; a candidate found taken was priced for nothing).
	var takenList []string
	b := &pgx.Batch{}
	b.Queue(`SELECT claim FROM actions WHERE claim = ANY($1)`, claims).Query(func(rows pgx.Rows) error {
		var err error
		takenList, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	u := newUsage()
	var locks []string
	for _, c := range cands {
		if c.kind != CategoryAppliance || c.res.Status != "queued" {
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
	queueLocks(b, locks)
	u.queue(b)
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("look up claims and cap usage: %w", err)
	}
	taken := map[string]bool{}
	for _, c := range takenList {
		taken[c] = true
	}
	var live []*candidate
	for _, c := range cands {
		if c.rec.Methodology.ID == "" {
			continue // not quantified (unknown model, intercity mode...): nothing claimed, the evidence may come back
		}
		if taken[c.claim] {
			c.res.Status, c.res.Reason, c.res.Points = "rejected", evidence.ReasonDuplicateEvidence, 0
			continue
		}
		taken[c.claim] = true // the same evidence twice in one request: the first one counts
		live = append(live, c)
	}
	issues, err := w.priceAppliances(live, u)
	if err != nil {
		return err
	}
	// Record the actions; a claim recorded meanwhile by a concurrent
	// request makes this one a duplicate (and it gets no issuance).
	n := len(live)
	ids, events, kinds, txs, lines, accts, cls, days, ats, grams, recs, hashes, sts, reasons, nbs := make([]uuid.UUID, n), make([]uuid.UUID, n),
		make([]string, n), make([]string, n), make([]int32, n), make([]string, n), make([]string, n), make([]string, n),
		make([]time.Time, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	for i, c := range live {
		rec, hash := string(c.rec.Canonical()), c.rec.Hash()
		nb := c.notBefore
		if nb.IsZero() {
			nb = c.at
		}
		ids[i], events[i], kinds[i], txs[i], lines[i], accts[i], cls[i], days[i], ats[i], grams[i], recs[i], hashes[i], sts[i], reasons[i], nbs[i] =
			c.id, c.n.id, c.kind, c.txID, int32(c.line), c.account, c.claim, c.day, c.at, c.res.Grams, rec, hash, c.res.Status, c.res.Reason, nb
	}
	rows, err := w.tx.Query(ctx, `INSERT INTO actions (id, event_id, partner_id, kind, partner_tx_id, line, account, claim,
		local_day, occurred_at, grams, record, record_hash, status, reason, not_before)
		SELECT u.id, u.ev, $1, u.kind, u.tx, u.line, u.acct, u.claim, u.day, u.at, u.grams, u.rec::jsonb, u.hash, u.st, u.reason, u.nb
		FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::timestamptz[],
			$11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[])
			AS u(id, ev, kind, tx, line, acct, claim, day, at, grams, rec, hash, st, reason, nb)
		ON CONFLICT (claim) DO NOTHING RETURNING id`, w.req.Partner.ID, ids, events, kinds, txs, lines, accts, cls, days, ats, grams, recs, hashes, sts, reasons, nbs)
	if err != nil {
		return fmt.Errorf("record actions: %w", err)
	}
	insertedList, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return fmt.Errorf("record actions: %w", err)
	}
	inserted := map[uuid.UUID]bool{}
	for _, id := range insertedList {
		inserted[id] = true
	}
	var queue []*issuance
	for _, c := range live {
		if !inserted[c.id] {
			c.res.Status, c.res.Reason, c.res.Points = "rejected", evidence.ReasonDuplicateEvidence, 0
			continue
		}
		if iss := issues[c]; iss != nil && c.res.Status == "queued" {
			queue = append(queue, iss)
		}
	}
	if len(queue) == 0 {
		return nil
	}
	qids := make([]uuid.UUID, len(queue))
	for i, iss := range queue {
		qids[i] = iss.id
	}
	b = &pgx.Batch{}
	if err := queueIssuances(b, queue); err != nil {
		return err
	}
	b.Queue(`UPDATE actions SET issuance_id = id WHERE id = ANY($1)`, qids)
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("queue issuances: %w", err)
	}
	return nil
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

func (u *usage) load(ctx context.Context, tx pgx.Tx) error {
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
	b.Queue(`SELECT u.i, coalesce((SELECT sum(x.points) FROM issuances x WHERE x.account = u.acct AND x.category = u.cat
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

// queueOutcomes queues each new event's outcome and a callback for each
// rejected one into w.final, which the request's last round trip sends.
func (w *work) queueOutcomes(news []*newEvent) error {
	if len(news) == 0 {
		return nil
	}
	ids, outs, reasons := make([]uuid.UUID, len(news)), make([]string, len(news)), make([]string, len(news))
	var payloads [][]byte
	for i, n := range news {
		ids[i], outs[i], reasons[i] = n.id, n.out.status, n.out.reason
		if n.out.status == OutcomeRejected {
			b, err := json.Marshal(map[string]any{"type": "evidence.rejected", "partner": w.req.Partner.ID, "kind": n.ev.kind,
				"transactionId": n.ev.txID, "status": n.ev.status, "reason": n.out.reason})
			if err != nil {
				return err
			}
			payloads = append(payloads, b)
		}
	}
	w.final.Queue(`UPDATE evidence_events e SET outcome = u.o, reason = u.r FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, o, r)
		WHERE e.id = u.id`, ids, outs, reasons)
	if len(payloads) > 0 {
		w.final.Queue(`INSERT INTO callbacks (partner_id, event_type, payload) SELECT $1, 'evidence.rejected', p FROM unnest($2::jsonb[]) AS p`,
			w.req.Partner.ID, payloads)
	}
	return nil
}

func itemsField(kind string) string {
	if kind == "trip" {
		return "trips"
	}
	return "transactions"
}

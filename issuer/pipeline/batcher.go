package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer"
)

// DefaultWorkers is how many batches an instance has in flight by default.
const DefaultWorkers = 4

// BatcherConfig bounds the group commit.
type BatcherConfig struct {
	MaxItems int           // issuances per ledger transaction (<= points.MaxIssueBatch); 0 means 500
	Workers  int           // concurrent batches in flight per instance; 0 means 4
	Poll     time.Duration // how often an idle worker looks for due work; 0 means 250ms
}

// Batcher group-commits due issuances into IssueBatch transactions, groups
// each account's due transit trips into daily grants, and submits queued
// reversals. Every unit of work is claimed with FOR UPDATE SKIP LOCKED, so
// any number of workers and server instances share the queue; the row lock
// is held until the ledger outcome is written, and a crash in between only
// makes the next attempt report already_issued for our own claims.
type Batcher struct {
	pool   *pgxpool.Pool
	led    issuer.Ledger
	s      *Service
	cfg    BatcherConfig
	log    *slog.Logger
	wake   chan struct{}
	mu     sync.Mutex
	closed bool
}

// NewBatcher returns a batcher for the service's outbox.
func NewBatcher(pool *pgxpool.Pool, led issuer.Ledger, s *Service, cfg BatcherConfig, log *slog.Logger) *Batcher {
	if cfg.MaxItems <= 0 || cfg.MaxItems > points.MaxIssueBatch {
		cfg.MaxItems = 500
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	return &Batcher{pool: pool, led: led, s: s, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
}

// Notify wakes an idle worker (e.g. after intake queued work due now).
func (b *Batcher) Notify() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Run runs the workers until ctx ends. The batch a worker has in flight
// when ctx ends is finished (its ledger call and outcome write use a
// context that is not cancelled), so shutdown drains instead of abandoning.
func (b *Batcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < b.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.worker(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (b *Batcher) worker(ctx context.Context) {
	backoff := b.cfg.Poll
	for ctx.Err() == nil {
		n, err := b.Step(context.WithoutCancel(ctx))
		if err != nil {
			b.log.Warn("batcher step failed; retrying", "err", err, "retry_in", backoff.String())
			sleep(ctx, backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = b.cfg.Poll
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-b.wake:
		case <-time.After(b.cfg.Poll + rand.N(b.cfg.Poll/4+1)):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Step does one round of work: group due trips, issue one batch of due
// issuances, submit due reversals. It returns how many units it handled.
func (b *Batcher) Step(ctx context.Context) (int, error) {
	g, err := b.groupTrips(ctx)
	if err != nil {
		return 0, fmt.Errorf("group trips: %w", err)
	}
	n, err := b.issue(ctx)
	if err != nil {
		return g, fmt.Errorf("issue: %w", err)
	}
	r, err := b.reverse(ctx)
	if err != nil {
		return g + n, fmt.Errorf("reverse: %w", err)
	}
	return g + n + r, nil
}

// Drain runs steps until no due work is left (tests, the demo, shutdown).
func (b *Batcher) Drain(ctx context.Context) error {
	for {
		n, err := b.Step(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

type queued struct {
	id                      uuid.UUID
	kind, account, category string
	claim                   string
	subClaims               []string
	grams, points           int64
	recordHash              string
	ruleID, ruleVer         string
	methID, methVer         string
}

// maxConflictRetries bounds re-submissions after MVCC conflicts; each is a
// new proposal with a new transaction id, as Fabric requires.
const maxConflictRetries = 5

func (b *Batcher) issue(ctx context.Context) (int, error) {
	var n int
	err := database.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		now := b.s.cfg.Now()
		rows, err := tx.Query(ctx, `SELECT id, kind, account, category, claim, sub_claims, grams, points, record_hash,
			rule_id, rule_version, methodology_id, methodology_version FROM issuances
			WHERE status = 'queued' AND not_before <= $1 ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED`, now, b.cfg.MaxItems)
		if err != nil {
			return err
		}
		var qs []queued
		for rows.Next() {
			var q queued
			if err := rows.Scan(&q.id, &q.kind, &q.account, &q.category, &q.claim, &q.subClaims, &q.grams, &q.points,
				&q.recordHash, &q.ruleID, &q.ruleVer, &q.methID, &q.methVer); err != nil {
				rows.Close()
				return err
			}
			qs = append(qs, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(qs) == 0 {
			return err
		}
		n = len(qs)
		accounts := make([]string, 0, len(qs))
		for _, q := range qs {
			accounts = append(accounts, q.account)
		}
		if err := b.ensureAccounts(ctx, tx, accounts); err != nil {
			return err
		}
		prof, err := b.s.policy.Profile(now)
		if err != nil {
			return err
		}
		expires := prof.ExpiresAt(now)
		pref := points.VersionRef{ID: prof.ID, Version: prof.Version}
		args := points.IssueBatchArgs{Items: make([]points.IssueItem, len(qs))}
		for i, q := range qs {
			args.Items[i] = points.IssueItem{ItemID: q.id.String(), Account: q.account, Points: q.points, Grams: q.grams,
				Category: q.category, RuleVersion: points.VersionRef{ID: q.ruleID, Version: q.ruleVer},
				MethodologyVersion: points.VersionRef{ID: q.methID, Version: q.methVer}, ProfileVersion: pref,
				QuantificationHash: q.recordHash, ExpiresAt: expires, Claim: q.claim, SubClaims: q.subClaims}
		}
		var res points.IssueBatchResult
		txr, tried, err := b.submit(ctx, "IssueBatch", args, &res)
		if err != nil {
			return err
		}
		b.s.metrics.batch(len(qs))
		if len(res.Results) != len(qs) {
			return fmt.Errorf("IssueBatch returned %d results for %d items", len(res.Results), len(qs))
		}
		return b.applyResults(ctx, tx, qs, res.Results, txr, tried, expires, pref)
	})
	return n, err
}

// submit sends one proposal, re-submitting a conflicted one as a new
// proposal; it returns every transaction id tried.
func (b *Batcher) submit(ctx context.Context, fn string, args, out any) (*issuer.TxResult, []string, error) {
	body, err := json.Marshal(args)
	if err != nil {
		return nil, nil, err
	}
	var tried []string
	for attempt := 0; ; attempt++ {
		began := time.Now()
		e, err := b.led.Endorse(ctx, issuer.Proposal{Caller: b.s.cfg.IssuerMSP, Function: fn, Args: body})
		if err != nil {
			// Endorsers at different block heights answer differently
			// (Fabric: endorsement_mismatch); a new proposal settles it.
			if transientConflict(err) && attempt < maxConflictRetries {
				b.log.Info("endorsement conflict; re-proposing", "function", fn, "reason", apperr.ReasonOf(err))
				continue
			}
			return nil, tried, err
		}
		tried = append(tried, e.TxID())
		r, err := b.led.Commit(ctx, e)
		b.s.metrics.submitted(fn, time.Since(began))
		if err != nil {
			if transientConflict(err) && attempt < maxConflictRetries {
				b.log.Info("ledger conflict; re-submitting as a new proposal", "function", fn, "tx", e.TxID(), "reason", apperr.ReasonOf(err))
				continue
			}
			return nil, tried, err
		}
		if out != nil {
			if err := json.Unmarshal(r.Payload, out); err != nil {
				return nil, tried, fmt.Errorf("decode %s result: %w", fn, err)
			}
		}
		return r, tried, nil
	}
}

// ensureAccounts opens on the ledger the accounts it has not seen open.
func (b *Batcher) ensureAccounts(ctx context.Context, tx pgx.Tx, accounts []string) error {
	rows, err := tx.Query(ctx, `SELECT a FROM unnest($1::text[]) AS a
		WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts l WHERE l.account = a) GROUP BY a ORDER BY a`, accounts)
	if err != nil {
		return err
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(missing) == 0 {
		return err
	}
	args := points.OpenAccountsArgs{}
	for _, a := range missing {
		args.Accounts = append(args.Accounts, points.OpenAccountArgs{AccountID: a, Kind: points.KindConsumer})
	}
	if _, _, err := b.submit(ctx, "OpenAccounts", args, nil); err != nil {
		return fmt.Errorf("open accounts: %w", err)
	}
	// Recorded at once, outside the claiming transaction: the accounts are
	// open on the ledger whatever becomes of this batch, and rows left
	// uncommitted until the batch's IssueBatch returned made every other
	// worker opening one of the same accounts wait for that whole batch.
	_, err = b.pool.Exec(ctx, `INSERT INTO ledger_accounts (account) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, missing)
	return err
}

// applyResults writes the ledger's per-item outcomes to the outbox, the
// actions and the partners' callbacks, all in the claiming transaction and
// in a few statements for the whole batch.
func (b *Batcher) applyResults(ctx context.Context, tx pgx.Tx, qs []queued, results []points.ItemResult, txr *issuer.TxResult,
	tried []string, expires time.Time, prof points.VersionRef) error {
	var issIDs, rejIDs []uuid.UUID
	var lotKeys, txIDs, rejReasons []string
	var blocks []int64
	var settled []settlement
	for i, r := range results {
		q := qs[i]
		b.s.metrics.item(r.Status)
		switch r.Status {
		case points.ItemIssued, points.ItemAlreadyIssued:
			txID, block := txr.TxID, int64(txr.Block)
			if r.Status == points.ItemAlreadyIssued {
				txID, block = "", 0 // issued by an earlier attempt; the projection knows which
			}
			issIDs, lotKeys, txIDs, blocks = append(issIDs, q.id), append(lotKeys, r.LotKey), append(txIDs, txID), append(blocks, block)
			settled = append(settled, settlement{issuance: q.id, status: "issued", extra: map[string]any{"lotKey": r.LotKey,
				"ledgerTxId": txID, "block": block, "issuancePoints": q.points, "expiresAt": expires}})
		case points.ItemRejected:
			if r.Reason == "sub_claim_taken" {
				if err := b.splitGrant(ctx, tx, q, r.TakenSubClaims, tried); err != nil {
					return err
				}
				continue
			}
			fallthrough
		default: // claimed_elsewhere, rejected
			reason := r.Reason
			if r.Status == points.ItemClaimedElsewhere {
				reason = r.Status
			}
			rejIDs, rejReasons = append(rejIDs, q.id), append(rejReasons, reason)
			settled = append(settled, settlement{issuance: q.id, status: "rejected", reason: reason})
		}
	}
	if len(issIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE issuances i SET status = 'issued', lot_key = u.lot, tx_id = u.tx, block = u.block, expires_at = $5,
			profile_id = $6, profile_version = $7, attempts = attempts + 1, tx_ids = tx_ids || $8, updated_at = now()
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS u(id, lot, tx, block) WHERE i.id = u.id`,
			issIDs, lotKeys, txIDs, blocks, expires, prof.ID, prof.Version, tried); err != nil {
			return fmt.Errorf("record issued items: %w", err)
		}
	}
	if len(rejIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE issuances i SET status = 'rejected', reason = u.r, attempts = attempts + 1,
			tx_ids = tx_ids || $3, updated_at = now() FROM unnest($1::uuid[], $2::text[]) AS u(id, r) WHERE i.id = u.id`,
			rejIDs, rejReasons, tried); err != nil {
			return fmt.Errorf("record rejected items: %w", err)
		}
	}
	return b.settle(ctx, tx, settled)
}

// settlement is the new status of one issuance's actions.
type settlement struct {
	issuance       uuid.UUID
	action         uuid.UUID // only this action of the issuance (a refunded trip of a grant); uuid.Nil: all of them
	status, reason string
	extra          map[string]any // callback fields
}

// settleActions moves one issuance's actions to status and queues their
// callbacks.
func (b *Batcher) settleActions(ctx context.Context, tx pgx.Tx, issuance uuid.UUID, status, reason string, extra map[string]any) error {
	return b.settle(ctx, tx, []settlement{{issuance: issuance, status: status, reason: reason, extra: extra}})
}

// settle moves the actions of each issuance to its status and queues a
// callback for each action to the partner that reported it.
func (b *Batcher) settle(ctx context.Context, tx pgx.Tx, list []settlement) error {
	if len(list) == 0 {
		return nil
	}
	ids, acts, sts, reasons := make([]uuid.UUID, len(list)), make([]uuid.UUID, len(list)), make([]string, len(list)), make([]string, len(list))
	byID := make(map[uuid.UUID]*settlement, len(list)) // by issuance, or by action for one action's
	for i := range list {
		ids[i], acts[i], sts[i], reasons[i] = list[i].issuance, list[i].action, list[i].status, list[i].reason
		key := list[i].issuance
		if list[i].action != uuid.Nil {
			key = list[i].action
		}
		byID[key] = &list[i]
	}
	rows, err := tx.Query(ctx, `UPDATE actions a SET status = u.st, reason = u.r, updated_at = now()
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[]) AS u(iss, st, r, act)
		WHERE a.issuance_id = u.iss AND (u.act = '00000000-0000-0000-0000-000000000000' OR a.id = u.act)
		RETURNING a.id, a.partner_id, a.partner_tx_id, a.kind, a.line, a.grams, a.issuance_id`, ids, sts, reasons, acts)
	if err != nil {
		return fmt.Errorf("settle actions: %w", err)
	}
	var partners, types []string
	var payloads [][]byte
	for rows.Next() {
		var id, iss uuid.UUID
		var partner, txID, kind string
		var line int
		var grams int64
		if err := rows.Scan(&id, &partner, &txID, &kind, &line, &grams, &iss); err != nil {
			rows.Close()
			return err
		}
		st := byID[id]
		if st == nil {
			st = byID[iss]
		}
		p := map[string]any{"type": "action." + st.status, "partner": partner, "actionId": id.String(), "transactionId": txID,
			"kind": kind, "grams": grams, "status": st.status}
		if line > 0 {
			p["line"] = line
		}
		if st.reason != "" {
			p["reason"] = st.reason
		}
		for k, v := range st.extra {
			p[k] = v
		}
		b, err := json.Marshal(p)
		if err != nil {
			rows.Close()
			return err
		}
		partners, types, payloads = append(partners, partner), append(types, "action."+st.status), append(payloads, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(payloads) == 0 {
		return nil
	}
	cb := &pgx.Batch{}
	queueCallbacks(cb, b.s.metrics, partners, types, payloads)
	return tx.SendBatch(ctx, cb).Close()
}

// splitGrant handles a transit grant some of whose trips were claimed
// elsewhere meanwhile: those trips are rejected, the others go back to the
// queue and are granted again under a new grant claim.
func (b *Batcher) splitGrant(ctx context.Context, tx pgx.Tx, q queued, taken []string, tried []string) error {
	if _, err := tx.Exec(ctx, `UPDATE issuances SET status = 'rejected', reason = 'sub_claim_taken', attempts = attempts + 1,
		tx_ids = tx_ids || $2, updated_at = now() WHERE id = $1`, q.id, tried); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE actions SET status = 'queued', issuance_id = NULL, updated_at = now()
		WHERE issuance_id = $1 AND NOT (claim = ANY($2))`, q.id, taken); err != nil {
		return err
	}
	return b.settleActions(ctx, tx, q.id, "rejected", "claimed_elsewhere", map[string]any{})
}

// transientConflict: the transaction lost a race (MVCC or phantom read at
// commit, endorsers disagreeing); the same proposal made again may pass.
// Contract conflicts (already_reversed, anchor_conflict...) are final.
func transientConflict(err error) bool {
	if apperr.CodeOf(err) != apperr.Conflict {
		return false
	}
	switch apperr.ReasonOf(err) {
	case "mvcc_read_conflict", "phantom_read_conflict", "endorsement_mismatch":
		return true
	}
	return false
}

func isAlreadyReversed(err error) bool { return apperr.ReasonOf(err) == "already_reversed" }

// isGrantReversed: a refunded trip's grant was reversed whole meanwhile;
// the trip's share went with it and there is nothing left to give back.
func isGrantReversed(err error) bool { return apperr.ReasonOf(err) == "grant_reversed" }

// isRejection: the contract refused the transaction; resubmitting the same
// arguments would be refused again.
func isRejection(err error) bool {
	switch apperr.CodeOf(err) {
	case apperr.Invalid, apperr.NotFound, apperr.Forbidden:
		return true
	}
	return false
}

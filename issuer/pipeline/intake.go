package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// Config is what the pipeline needs to know about its issuer.
type Config struct {
	IssuerMSP string // the issuer's ledger identity
	// ClaimKey is the consortium's claim key: claims are HMAC-SHA256 of the
	// canonical evidence id under it, identical at every issuer.
	ClaimKey []byte
	Now      func() time.Time // nil means time.Now
}

// Service receives partners' evidence and turns it into queued issuances
// and reversals, all in the PostgreSQL transaction that stores the raw
// request: either everything a request implies is recorded, or nothing is.
type Service struct {
	pool     *pgxpool.Pool
	partners *Partners
	policy   *Policy
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	group    *grouper // nil: one transaction per request
}

// NewService returns the intake service.
func NewService(pool *pgxpool.Pool, partners *Partners, policy *Policy, cfg Config, log *slog.Logger) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{pool: pool, partners: partners, policy: policy, cfg: cfg, log: log}
}

// Policy is the issuer's published policy.
func (s *Service) Policy() *Policy { return s.policy }

// Partners is the partner registry.
func (s *Service) Partners() *Partners { return s.partners }

// Request is a verified partner request: the raw body and how it was signed.
type Request struct {
	Partner   *PartnerKeys
	WebhookID string
	Route     string // e.g. "card-transactions"
	Body      []byte
	Signature string
	KeyID     string
	SignedAt  time.Time
}

// Outcomes of one reported event.
const (
	OutcomeAccepted  = "accepted"  // green actions found and queued (or a reversal queued)
	OutcomeRecorded  = "recorded"  // kept as evidence; nothing to issue (e.g. authorised)
	OutcomeRejected  = "rejected"  // nothing will be issued; Reason says why
	OutcomeDuplicate = "duplicate" // the same event was received before; Original tells its outcome
)

// EventResult is the outcome of one event of a request.
type EventResult struct {
	Index         int    `json:"index"`
	TransactionID string `json:"transactionId"`
	Status        string `json:"status,omitempty"`
	Outcome       string `json:"outcome"`
	Reason        string `json:"reason,omitempty"`
	// Original is, for a duplicate, the outcome of the event when first received.
	Original string         `json:"original,omitempty"`
	Actions  []ActionResult `json:"actions,omitempty"`
}

// ActionResult is one green action found in an event.
type ActionResult struct {
	ActionID string `json:"actionId"`
	Kind     string `json:"kind"`
	Line     int    `json:"line,omitempty"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Grams    int64  `json:"grams"`
	Points   int64  `json:"points,omitempty"`
	// NotBefore is when the action becomes due for issuance (hold period,
	// or the end of the local day for transit trips).
	NotBefore time.Time `json:"notBefore"`
}

// Response is what a partner request returns, stored with the request so
// that a replay of its webhook-id returns exactly the same bytes.
type Response struct {
	RequestID string        `json:"requestId"`
	Events    []EventResult `json:"events"`
	body      []byte        // as stored with the request
}

// Body is the response as stored with the request, the bytes a replay of
// its webhook id returns.
func (r *Response) Body() []byte { return r.body }

// DueNow reports whether the request queued work the batcher can do at
// once: an issuance past its hold period, or a reversal.
func (r *Response) DueNow(now time.Time) bool {
	for _, e := range r.Events {
		for _, a := range e.Actions {
			if a.Status == "queued" && !a.NotBefore.After(now) || a.Status == "reversal_queued" {
				return true
			}
		}
	}
	return false
}

// Event is one reported event, as the pipeline handles it.
type event struct {
	kind   string // card | trip
	txID   string
	status string
	at     time.Time
	card   *evidence.CardTransaction
	trip   *evidence.Trip
	source string // api | file
	hash   []byte
	job    *job // the request that reported it
	index  int  // its position in that request
}

// partner is the partner that reported the event.
func (ev *event) partner() *PartnerKeys { return ev.job.req.Partner }

// result is the event's entry in its request's response.
func (ev *event) result() *EventResult { return &ev.job.resp.Events[ev.index] }

func cardEvent(t *evidence.CardTransaction, source string) event {
	c := *t
	c.Time = c.Time.UTC() // the same instant written with another offset is the same event
	return event{kind: "card", txID: t.TransactionID, status: t.Status, at: t.Time, card: t, source: source, hash: canonicalHash(c)}
}

func tripEvent(t *evidence.Trip) event {
	c := *t
	c.BoardedAt, c.AlightedAt = c.BoardedAt.UTC(), c.AlightedAt.UTC()
	return event{kind: "trip", txID: t.TripID, status: "recorded", at: t.BoardedAt, trip: t, source: "api", hash: canonicalHash(c)}
}

func canonicalHash(v any) []byte {
	b, err := json.Marshal(v) // struct fields in declaration order: deterministic
	if err != nil {
		panic("pipeline: marshal evidence: " + err.Error()) // plain structs of strings, ints and times
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// ReceiveCards records a verified request of card transactions. Errors:
// Invalid with field errors (nothing recorded) when an event conflicts with
// an earlier one of the same transaction id and status; Conflict
// (webhook_id_reused) when the webhook id was used for a different body.
func (s *Service) ReceiveCards(ctx context.Context, req Request, txs []evidence.CardTransaction) (*Response, error) {
	evs := make([]event, len(txs))
	for i := range txs {
		evs[i] = cardEvent(&txs[i], "api")
	}
	return s.receive(ctx, req, evs)
}

// ReceiveTrips records a verified request of transit trip records.
func (s *Service) ReceiveTrips(ctx context.Context, req Request, trips []evidence.Trip) (*Response, error) {
	evs := make([]event, len(trips))
	for i := range trips {
		evs[i] = tripEvent(&trips[i])
	}
	return s.receive(ctx, req, evs)
}

// ReceiveFile records a verified settlement file's card transactions: the
// same path as the API, so a payment reported both ways is recognised.
func (s *Service) ReceiveFile(ctx context.Context, req Request, txs []evidence.CardTransaction) (*Response, error) {
	evs := make([]event, len(txs))
	for i := range txs {
		evs[i] = cardEvent(&txs[i], "file")
	}
	return s.receive(ctx, req, evs)
}

// Replayed reports a request whose webhook-id was seen before; the stored
// response is returned as it was.
type Replayed struct {
	Body []byte
}

func (r *Replayed) Error() string { return "replayed webhook id" }

func (s *Service) receive(ctx context.Context, req Request, evs []event) (*Response, error) {
	j := &job{req: req, evs: evs, bodySum: sha256.Sum256(req.Body)}
	if s.group == nil || len(evs) > groupMaxEvents {
		s.process(ctx, []*job{j})
	} else if err := s.group.do(ctx, j); err != nil {
		return nil, err
	}
	if j.err != nil {
		return nil, j.err
	}
	for _, ev := range j.evs {
		s.metrics.event(ev.kind, j.resp.Events[ev.index].Outcome)
	}
	return j.resp, nil
}

// dbtx is what intake's statements run on: a pgx.Tx, or the connection of
// a pipelined transaction (database.PipelinedTx).
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// job is one partner request on its way through intake: alone, or sharing
// one PostgreSQL transaction with other requests (see group.go).
type job struct {
	req     Request
	evs     []event
	bodySum [32]byte
	resp    *Response
	err     error // the request's own outcome: *Replayed, a conflict, or a failure
}

// process records jobs in one transaction. A deadlock or serialization
// failure (two transactions locking the same payments in opposite orders)
// is retried rather than surfacing; a request whose events conflict with
// earlier ones is answered 422 and the others go again without it, since
// nothing of a conflicting request may be recorded; any other failure of a
// shared transaction retries each request alone, so that one request's
// failure is never another's.
func (s *Service) process(ctx context.Context, jobs []*job) {
	for attempt := 1; len(jobs) > 0; attempt++ {
		began := time.Now()
		err := s.processOnce(ctx, jobs)
		var gc groupConflicts
		switch {
		case err == nil:
			s.metrics.intakeTransaction(len(jobs), time.Since(began))
			return
		case errors.As(err, &gc):
			live := jobs[:0:0]
			for _, j := range jobs {
				if fields := gc[j]; len(fields) > 0 {
					j.err = &apperr.Error{Code: apperr.Invalid, Reason: "transaction_conflict", Fields: fields,
						Detail: "an event reuses a transaction id and status received before with a different body; nothing was recorded"}
				} else {
					live = append(live, j)
				}
			}
			jobs, attempt = live, 0
		case attempt < 3 && isRetryable(err):
			s.log.Info("intake transaction retried", "reason", err.Error(), "attempt", attempt, "requests", len(jobs))
		case len(jobs) > 1:
			s.log.Warn("shared intake transaction failed; retrying its requests one by one", "err", err, "requests", len(jobs))
			for _, j := range jobs {
				s.process(ctx, []*job{j})
			}
			return
		default:
			jobs[0].err = err
			return
		}
	}
}

// groupConflicts are the requests of a shared transaction whose events
// conflict with events received before; the transaction is rolled back.
type groupConflicts map[*job][]apperr.FieldError

func (groupConflicts) Error() string { return "transaction conflicts" }

// isRetryable: a deadlock or serialization failure, or a webhook id
// recorded meanwhile by a writer that does not take intake's lock (the
// card-link route); the transaction did nothing, and run again it finds
// what the other one committed.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" ||
		pe.Code == "23505" && pe.ConstraintName == "partner_requests_partner_id_webhook_id_key")
}

func (s *Service) processOnce(ctx context.Context, jobs []*job) error {
	var all []*event
	for _, j := range jobs {
		j.resp, j.err = &Response{RequestID: uuid.Must(uuid.NewV7()).String(), Events: make([]EventResult, len(j.evs))}, nil
		for k := range j.evs {
			ev := &j.evs[k]
			ev.job, ev.index = j, k
			all = append(all, ev)
		}
	}
	// A pipelined transaction: BEGIN travels with the first round trip,
	// COMMIT with the last, two round trips fewer on every request.
	return database.PipelinedTx(ctx, s.pool, func(tx *pgx.Conn) error {
		// First round trip: the locks of the requests' webhook ids and of
		// their events, then what was recorded before under those names.
		// A concurrent request with the same webhook id (or an event of the
		// same payment) waits here until the other transaction ends, so the
		// reads see its outcome: a replay returns the stored response.
		// The facts the decisions need travel in it too.
		b := &pgx.Batch{}
		b.Queue(database.BeginReadCommitted)
		w := &work{s: s, tx: tx, now: s.cfg.Now(), final: &pgx.Batch{}}
		claims := w.claims(all)
		queueLocks(b, slices.Concat(webhookLocks(jobs), eventLocks(all), claimLocks(claims)))
		seen := queueStoredRequests(b, jobs)
		w.queueEarlier(b, all)
		facts := w.queueLookups(b, all, claims)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("lock and read earlier requests: %w", err)
		}
		var live []*job
		var evs []*event
		for _, j := range jobs {
			if st, ok := seen[[2]string{j.req.Partner.ID, j.req.WebhookID}]; ok {
				j.resp, j.err = nil, st.replay(j)
				continue
			}
			live = append(live, j)
			for k := range j.evs {
				evs = append(evs, &j.evs[k])
			}
		}
		if len(live) == 0 {
			return nil
		}
		conflicts, err := w.run(ctx, evs, facts)
		if err != nil {
			return err
		}
		if len(conflicts) > 0 {
			return conflicts
		}
		// The requests' rows, with their responses, go first in the last
		// round trip: their events name them.
		n := len(live)
		ids, partners, hooks, routes, bodies, sums, sigs, keyIDs, signed, resps := make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([][]byte, n), make([][]byte, n), make([]string, n), make([]string, n), make([]time.Time, n), make([][]byte, n)
		for i, j := range live {
			body, err := json.Marshal(j.resp)
			if err != nil {
				return err
			}
			j.resp.body = body
			ids[i], partners[i], hooks[i], routes[i], bodies[i], sums[i], sigs[i], keyIDs[i], signed[i], resps[i] =
				j.resp.RequestID, j.req.Partner.ID, j.req.WebhookID, j.req.Route, j.req.Body, j.bodySum[:], j.req.Signature, j.req.KeyID, j.req.SignedAt, body
		}
		final := &pgx.Batch{}
		final.Queue(`INSERT INTO partner_requests (id, partner_id, webhook_id, route, body, body_sha256,
			signature, key_id, signed_at, response_status, response)
			SELECT u.id, u.p, u.h, u.r, u.b, u.s, u.sig, u.k, u.at, 202, u.resp
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::text[], $8::text[], $9::timestamptz[], $10::bytea[])
				AS u(id, p, h, r, b, s, sig, k, at, resp)`,
			ids, partners, hooks, routes, bodies, sums, sigs, keyIDs, signed, resps)
		final.QueuedQueries = append(final.QueuedQueries, w.final.QueuedQueries...)
		final.Queue(database.Commit)
		if err := tx.SendBatch(ctx, final).Close(); err != nil {
			return fmt.Errorf("record requests and outcomes: %w", err)
		}
		return nil
	})
}

func webhookLockName(partner, webhookID string) string {
	return "greenpoints/webhook/" + partner + "/" + webhookID
}

func webhookLocks(jobs []*job) []string {
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = webhookLockName(j.req.Partner.ID, j.req.WebhookID)
	}
	return names
}

// storedRequest is a request recorded before under a webhook id.
type storedRequest struct{ sum, response []byte }

// replay is the answer to j, whose webhook id was seen before: the stored
// response, or a conflict when the id was used for another body.
func (st storedRequest) replay(j *job) error {
	if !bytes.Equal(st.sum, j.bodySum[:]) {
		return apperr.New(apperr.Conflict, "webhook_id_reused", "webhook-id %q was already used for a different request body", j.req.WebhookID)
	}
	return &Replayed{Body: st.response}
}

// queueStoredRequests queues into b the read of the requests recorded
// before under the jobs' webhook ids; the map is filled when b is sent.
func queueStoredRequests(b *pgx.Batch, jobs []*job) map[[2]string]storedRequest {
	ps, hs := make([]string, len(jobs)), make([]string, len(jobs))
	for i, j := range jobs {
		ps[i], hs[i] = j.req.Partner.ID, j.req.WebhookID
	}
	found := map[[2]string]storedRequest{}
	b.Queue(`SELECT p.partner_id, p.webhook_id, p.body_sha256, p.response FROM partner_requests p
		JOIN unnest($1::text[], $2::text[]) AS u(p, h) ON p.partner_id = u.p AND p.webhook_id = u.h`, ps, hs).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k [2]string
				var st storedRequest
				if err := rows.Scan(&k[0], &k[1], &st.sum, &st.response); err != nil {
					return fmt.Errorf("load earlier requests: %w", err)
				}
				found[k] = st
			}
			return rows.Err()
		})
	return found
}

// outcome is what one event came to.
type outcome struct {
	status  string
	reason  string
	actions []ActionResult
}

func rejected(reason string) outcome { return outcome{status: OutcomeRejected, reason: reason} }

// queueCallback writes a callback row in the caller's transaction, so a
// partner is told exactly what was committed.
func queueCallback(ctx context.Context, tx pgx.Tx, partner, typ string, payload map[string]any) error {
	payload["type"] = typ
	payload["partner"] = partner
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO callbacks (partner_id, event_type, payload) VALUES ($1, $2, $3)`, partner, typ, b); err != nil {
		return fmt.Errorf("queue callback: %w", err)
	}
	return nil
}

package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
}

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
	// A deadlock between two requests locking the same payments in opposite
	// orders aborts one of them; it is retried here rather than surfacing.
	for attempt := 1; ; attempt++ {
		resp, err := s.receiveOnce(ctx, req, evs)
		if attempt < 3 && isRetryable(err) {
			s.log.Info("intake transaction retried", "reason", err.Error(), "attempt", attempt)
			continue
		}
		return resp, err
	}
}

// isRetryable: a deadlock or serialization failure; the transaction did nothing.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func (s *Service) receiveOnce(ctx context.Context, req Request, evs []event) (*Response, error) {
	resp := &Response{RequestID: uuid.Must(uuid.NewV7()).String(), Events: make([]EventResult, len(evs))}
	bodySum := sha256.Sum256(req.Body)
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// Claim the webhook id first: a concurrent replay blocks here until
		// this transaction ends, then finds the stored response. The
		// events' locks travel in the same round trip.
		var claimed int64
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO partner_requests (id, partner_id, webhook_id, route, body, body_sha256,
			signature, key_id, signed_at, response_status, response)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, '') ON CONFLICT (partner_id, webhook_id) DO NOTHING`,
			resp.RequestID, req.Partner.ID, req.WebhookID, req.Route, req.Body, bodySum[:], req.Signature, req.KeyID, req.SignedAt).
			Exec(func(ct pgconn.CommandTag) error { claimed = ct.RowsAffected(); return nil })
		queueLocks(b, eventLocks(req.Partner.ID, evs))
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record request: %w", err)
		}
		if claimed == 0 {
			return s.replay(ctx, tx, req, bodySum[:])
		}
		w := &work{s: s, tx: tx, req: req, requestID: resp.RequestID, now: s.cfg.Now(), final: &pgx.Batch{}}
		conflicts, err := w.run(ctx, evs, resp.Events)
		if err != nil {
			return err
		}
		if len(conflicts) > 0 {
			return &apperr.Error{Code: apperr.Invalid, Reason: "transaction_conflict", Fields: conflicts,
				Detail: "an event reuses a transaction id and status received before with a different body; nothing was recorded"}
		}
		body, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		w.final.Queue(`UPDATE partner_requests SET response_status = 202, response = $2 WHERE id = $1`, resp.RequestID, body)
		if err := tx.SendBatch(ctx, w.final).Close(); err != nil {
			return fmt.Errorf("record outcomes: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, r := range resp.Events {
		s.metrics.event(evs[i].kind, r.Outcome)
	}
	return resp, nil
}

// replay returns the stored response of a webhook id seen before, or a
// conflict when the id was used for another body.
func (s *Service) replay(ctx context.Context, tx pgx.Tx, req Request, bodySum []byte) error {
	var stored, body []byte
	var status int
	err := tx.QueryRow(ctx, `SELECT body_sha256, response_status, response FROM partner_requests
		WHERE partner_id = $1 AND webhook_id = $2`, req.Partner.ID, req.WebhookID).Scan(&stored, &status, &body)
	if err != nil {
		return fmt.Errorf("load replayed request: %w", err)
	}
	if !bytes.Equal(stored, bodySum) {
		return apperr.New(apperr.Conflict, "webhook_id_reused", "webhook-id %q was already used for a different request body", req.WebhookID)
	}
	return &Replayed{Body: body}
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

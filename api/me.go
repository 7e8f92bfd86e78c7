package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/auth"
	"github.com/greenpoints/greenpoints/internal/idempotency"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/projection"
)

// Reasons of the consumer routes (besides the contract's and auth's).
const (
	ReasonNotInFamily     = "not_in_family"
	ReasonNotFamilyHead   = "not_family_head"
	ReasonInvalidQuery    = "invalid_query"
	ReasonLedgerContended = "ledger_contended"
)

func init() {
	// A reused Idempotency-Key is a well-formed request that cannot be
	// processed as sent: 422, as the draft says, like transaction_conflict.
	reasonStatus[idempotency.ReasonKeyReused] = http.StatusUnprocessableEntity
}

// HeaderIdempotencyKey is the draft standard's request header.
const HeaderIdempotencyKey = "Idempotency-Key"

// TokenVerifier authenticates a bearer token (auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// ConsumerReads is the read model the consumer routes serve from: the
// projection (issuer/projection.Projector) plus family lookups.
type ConsumerReads interface {
	Balance(ctx context.Context, account string, now time.Time) (points.Balance, error)
	LotsPage(ctx context.Context, account string, now time.Time, cursor string, limit int) ([]points.Lot, string, error)
	Movements(ctx context.Context, account, cursor string, limit int) ([]projection.Movement, string, error)
	WaitFor(ctx context.Context, txID string) (issuer.Checkpoint, error)
	// Family returns a family as projected. Errors: not_found/family_not_found.
	Family(ctx context.Context, id string) (*points.Family, error)
	// Invitations returns the active families that invited account.
	Invitations(ctx context.Context, account string) ([]points.Family, error)
}

// ConsumerDeps are the collaborators of the consumer routes.
type ConsumerDeps struct {
	Verifier    TokenVerifier
	Ledger      issuer.Ledger
	IssuerMSP   string // the operator identity that submits consumers' actions
	Reads       ConsumerReads
	Idempotency *idempotency.Store
	Preferences PreferencesStore // nil: the preference routes answer 503
	Now         func() time.Time // nil means time.Now
	// CertificateRate and CertificateBurst bound the public certificate
	// route per client IP; 0 means 2 per second with a burst of 20.
	CertificateRate  rate.Limit
	CertificateBurst int
}

// Bounds of the consumer routes.
const (
	// MaxHistoryPage is the largest history page; larger is a 400, not a
	// silent cut, so that a client never thinks it saw everything.
	MaxHistoryPage = projection.MaxMovementsPage
	// submitAttempts bounds re-submissions after MVCC conflicts: concurrent
	// spends of one account conflict by design (the ledger serialises them).
	submitAttempts = 8
	// visibleWait bounds how long a write waits for the projection to show
	// it, so that the consumer's next read sees their own write.
	visibleWait = 20 * time.Second
	// maxIPLimiters bounds the certificate limiters kept in memory.
	maxIPLimiters = 10_000
)

// Context key of the authenticated consumer.
const ctxConsumer = "greenpoints.consumer"

// consumer is the authenticated consumer of a request.
type consumer struct {
	auth.Principal
	tokenHash [32]byte // SHA-256 of the bearer token, bound into request hashes
}

// Consumers mounts the consumers' API: /v1/me/... (bearer JWT; the account
// is always the token's subject, never taken from a path or body), the
// charity list and the public certificate check.
func (s *Server) Consumers(d ConsumerDeps) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.CertificateRate == 0 {
		d.CertificateRate, d.CertificateBurst = 2, 20
	}
	h := &meHandlers{d: d, limits: map[string]*rate.Limiter{}}
	me := s.v1.Group("/me", h.authenticate)
	me.GET("/balance", h.balance)
	me.GET("/history", h.history)
	me.GET("/lots", h.lots)
	me.GET("/family", h.family)
	me.POST("/family", h.createFamily)
	me.POST("/family/invitations", h.invite)
	me.POST("/family/accept", h.accept)
	me.POST("/family/leave", h.leave)
	me.DELETE("/family/members/:account", h.removeMember)
	me.POST("/transfers", h.transfer)
	me.POST("/donations", h.donate)
	h.preferences(me, d.Preferences)
	s.v1.GET("/charities", h.charities)
	s.v1.GET("/certificates/:receiptId", h.certificateLimit, h.certificate)
}

type meHandlers struct {
	d      ConsumerDeps
	mu     sync.Mutex
	limits map[string]*rate.Limiter
}

// authenticate verifies the bearer token and stores the consumer. Every
// failure is a 401 with a WWW-Authenticate challenge (RFC 6750).
func (h *meHandlers) authenticate(c *gin.Context) {
	tok, err := auth.BearerToken(c.GetHeader("Authorization"))
	var p *auth.Principal
	if err == nil {
		p, err = h.d.Verifier.Verify(c, tok)
	}
	if err != nil {
		if apperr.CodeOf(err) == apperr.Unauthorized {
			if apperr.ReasonOf(err) == auth.ReasonTokenMissing {
				c.Header("WWW-Authenticate", `Bearer realm="greenpoints"`)
			} else {
				c.Header("WWW-Authenticate", `Bearer realm="greenpoints", error="invalid_token"`)
			}
		}
		WriteError(c, err)
		return
	}
	c.Set(ctxConsumer, &consumer{Principal: *p, tokenHash: sha256.Sum256([]byte(tok))})
	c.Next()
}

func me(c *gin.Context) *consumer { return c.MustGet(ctxConsumer).(*consumer) }

// requestHash is the hash of the consumer's authenticated request that the
// ledger records with the consumer's action (docs/consumers.md): the
// method, path, subject, the SHA-256 of the bearer token that authorised
// it, and the body, so an auditor holding the request and token can check
// the ledger entry, and no two requests share a hash.
func requestHash(c *gin.Context, who *consumer, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "greenpoints-consumer-request/v1\n%s %s\n%s\n%x\n%d\n", c.Request.Method, c.Request.URL.Path, who.Subject, who.tokenHash, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// mutation runs a consumer's write: read and validate the body into req
// (nil: the body must be empty or {}), honour the Idempotency-Key, run the
// action and answer status with its result as JSON. A request refused
// before anything changed releases its key, so a retry may run again.
func (h *meHandlers) mutation(c *gin.Context, req any, status int, run func(c *gin.Context, who *consumer, reqHash string) (any, error)) {
	var body []byte
	if c.Request.Body != nil {
		var err error
		if body, err = io.ReadAll(c.Request.Body); err != nil {
			WriteError(c, bodyReadError(err))
			return
		}
	}
	if req != nil || len(body) > 0 {
		if err := requireJSON(c.GetHeader("Content-Type")); err != nil {
			WriteError(c, err)
			return
		}
		if req == nil {
			req = &struct{}{}
		}
		if err := decodeJSON(body, req); err != nil {
			WriteError(c, err)
			return
		}
		if err := validateValue(req); err != nil {
			WriteError(c, err)
			return
		}
	}
	who := me(c)
	var key string
	if hv := c.GetHeader(HeaderIdempotencyKey); hv != "" || len(c.Request.Header.Values(HeaderIdempotencyKey)) > 0 {
		var err error
		if key, err = idempotency.ParseKey(hv); err != nil {
			WriteError(c, err)
			return
		}
		route := c.Request.Method + " " + c.FullPath()
		stored, err := h.d.Idempotency.Begin(c, who.Subject, key, route, idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, body))
		if err != nil {
			WriteError(c, err)
			return
		}
		if stored != nil {
			c.Header("Idempotent-Replayed", "true")
			c.Data(stored.Status, "application/json", stored.Body)
			return
		}
	}
	res, err := run(c, who, requestHash(c, who, body))
	var out []byte
	if err == nil {
		out, err = json.Marshal(res)
	}
	if err != nil {
		if key != "" {
			// The key is released even when the outcome is unknown (the
			// ledger unreachable): keeping it would block the consumer's
			// retry for good; docs/consumers.md says so.
			if rerr := h.d.Idempotency.Release(context.WithoutCancel(c), who.Subject, key); rerr != nil {
				Logger(c).Error("releasing idempotency key", "err", rerr)
			}
		}
		WriteError(c, err)
		return
	}
	if key != "" {
		if cerr := h.d.Idempotency.Complete(context.WithoutCancel(c), who.Subject, key, status, out); cerr != nil {
			Logger(c).Error("storing idempotent response", "err", cerr)
		}
	}
	c.Data(status, "application/json", out)
}

// submit sends a consumer's action to the ledger as the issuer's operator,
// re-submitting as a new proposal when it loses an MVCC race, then waits
// until the projection shows it.
func (h *meHandlers) submit(c *gin.Context, fn string, args, out any) (*issuer.TxResult, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	var res *issuer.TxResult
	for attempt := 1; ; attempt++ {
		res, err = h.d.Ledger.Submit(c, issuer.Proposal{Caller: h.d.IssuerMSP, Function: fn, Args: b})
		if err == nil {
			break
		}
		r := apperr.ReasonOf(err)
		if r != "mvcc_read_conflict" && r != "phantom_read_conflict" {
			return nil, err
		}
		if attempt == submitAttempts {
			return nil, apperr.Wrap(err, apperr.Conflict, ReasonLedgerContended,
				"the account is busy with other changes; nothing was changed, retry the request")
		}
		// Jitter so that the losers of one race do not collide again.
		select {
		case <-time.After(time.Duration(rand.IntN(10*attempt)+1) * time.Millisecond):
		case <-c.Done():
			return nil, c.Err()
		}
	}
	if out != nil {
		if err := json.Unmarshal(res.Payload, out); err != nil {
			return nil, fmt.Errorf("decoding %s result: %w", fn, err)
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(c), visibleWait)
	defer cancel()
	if _, err := h.d.Reads.WaitFor(wctx, res.TxID); err != nil {
		// Committed all the same: answer, and let the reads catch up.
		Logger(c).Warn("projection did not show a consumer transaction in time", "tx_id", res.TxID, "err", err)
	}
	return res, nil
}

func (h *meHandlers) evaluate(ctx context.Context, fn string, args, out any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := h.d.Ledger.Evaluate(ctx, issuer.Proposal{Caller: h.d.IssuerMSP, Function: fn, Args: b})
	if err != nil {
		return err
	}
	return json.Unmarshal(res, out)
}

// VersionJSON names a published version.
type VersionJSON struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

func versionJSON(v points.VersionRef) VersionJSON { return VersionJSON{ID: v.ID, Version: v.Version} }

// LotJSON is a lot as the balance shows it.
type LotJSON struct {
	LotID              string      `json:"lotId"`
	Points             int64       `json:"points"` // held
	Grams              int64       `json:"grams"`  // grams CO2e of the actions behind the held points
	Category           string      `json:"category"`
	IssuedAt           time.Time   `json:"issuedAt"`
	ExpiresAt          time.Time   `json:"expiresAt"`
	RuleVersion        VersionJSON `json:"ruleVersion"`
	MethodologyVersion VersionJSON `json:"methodologyVersion"`
	ProfileVersion     VersionJSON `json:"profileVersion"`
	Transferred        bool        `json:"transferred"` // received from a family member
}

// BalanceJSON is the body of GET /v1/me/balance.
type BalanceJSON struct {
	Account      string     `json:"account"`
	Total        int64      `json:"total"`
	ExpiringSoon int64      `json:"expiringSoon"` // part of total expiring within 30 days
	NextExpiry   *time.Time `json:"nextExpiry,omitempty"`
	Debt         int64      `json:"debt"` // points owed from reversals, settled by future issuances
	FamilyID     string     `json:"familyId,omitempty"`
	AsOf         time.Time  `json:"asOf"`
	// Lots are the earliest-expiring BalanceLots lots; LotsNext, when set,
	// is the cursor of GET /v1/me/lots for the rest (an account may hold
	// thousands: one response must stay small and fast).
	Lots     []LotJSON `json:"lots"`
	LotsNext string    `json:"lotsNext,omitempty"`
}

// LotsJSON is the body of GET /v1/me/lots.
type LotsJSON struct {
	Lots       []LotJSON `json:"lots"`
	NextCursor string    `json:"nextCursor,omitempty"` // absent after the last page
}

// BalanceLots is how many lots GET /v1/me/balance lists.
const BalanceLots = 100

// ownBalance reads a balance, rejecting accounts of other issuers sharing the projection:
// this server speaks for its own issuer's consumers only.
func (h *meHandlers) ownBalance(ctx context.Context, account string, now time.Time) (points.Balance, error) {
	b, err := h.d.Reads.Balance(ctx, account, now)
	if err == nil && b.Issuer != h.d.IssuerMSP {
		err = apperr.New(apperr.NotFound, "account_not_found", "account %s is not an account of this issuer", account)
	}
	return b, err
}

func (h *meHandlers) balance(c *gin.Context) {
	who := me(c)
	now := h.d.Now()
	b, err := h.ownBalance(c, who.Subject, now)
	if err != nil {
		WriteError(c, err)
		return
	}
	lots, next, err := h.d.Reads.LotsPage(c, who.Subject, now, "", BalanceLots)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, BalanceJSON{Account: b.Account, Total: b.Total, ExpiringSoon: b.ExpiringSoon, NextExpiry: b.NextExpiry, Debt: b.Debt,
		FamilyID: b.FamilyID, AsOf: b.AsOf, Lots: lotsJSON(lots), LotsNext: next})
}

func lotsJSON(lots []points.Lot) []LotJSON {
	out := make([]LotJSON, 0, len(lots))
	for _, l := range lots {
		out = append(out, LotJSON{LotID: l.ID, Points: l.Remaining, Grams: l.GramsRemaining, Category: l.Category,
			IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, RuleVersion: versionJSON(l.RuleVersion),
			MethodologyVersion: versionJSON(l.MethodologyVersion), ProfileVersion: versionJSON(l.ProfileVersion), Transferred: l.SourceLot != ""})
	}
	return out
}

// lots pages through the consumer's usable lots, earliest expiry first.
func (h *meHandlers) lots(c *gin.Context) {
	who := me(c)
	now := h.d.Now()
	if _, err := h.ownBalance(c, who.Subject, now); err != nil {
		WriteError(c, err)
		return
	}
	limit, cursor, ok := pageQuery(c, projection.MaxLotsPage, 50)
	if !ok {
		return
	}
	lots, next, err := h.d.Reads.LotsPage(c, who.Subject, now, cursor, limit)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, LotsJSON{Lots: lotsJSON(lots), NextCursor: next})
}

// pageQuery reads ?limit (1..maxLimit, default def) and ?cursor, writing
// the problem itself when they are bad.
func pageQuery(c *gin.Context, maxLimit, def int) (int, string, bool) {
	limit := def
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			WriteError(c, &apperr.Error{Code: apperr.Invalid, Reason: ReasonInvalidQuery,
				Detail: fmt.Sprintf("limit must be an integer from 1 to %d", maxLimit),
				Fields: []apperr.FieldError{{Field: "limit", Reason: "max", Detail: fmt.Sprintf("limit must be 1 to %d", maxLimit)}}})
			return 0, "", false
		}
		limit = n
	}
	cursor := c.Query("cursor")
	if len(cursor) > 256 {
		WriteError(c, apperr.New(apperr.Invalid, "invalid_cursor", "the cursor is not one this API returned"))
		return 0, "", false
	}
	return limit, cursor, true
}

// MovementJSON is one entry of the history.
type MovementJSON struct {
	TxID         string    `json:"txId"`
	Block        uint64    `json:"block"`
	Time         time.Time `json:"time"`
	Reason       string    `json:"reason"`      // stable code: the movement's cause
	Description  string    `json:"description"` // the reason in words
	Points       int64     `json:"points"`      // signed: + in, - out
	Grams        int64     `json:"grams"`
	LotID        string    `json:"lotKey"`
	Counterparty string    `json:"counterparty,omitempty"`
	ReceiptID    string    `json:"receiptId,omitempty"`
}

// HistoryJSON is the body of GET /v1/me/history.
type HistoryJSON struct {
	Movements  []MovementJSON `json:"movements"`
	NextCursor string         `json:"nextCursor,omitempty"` // absent after the last page
}

// describe says why points moved, for people.
func describe(m projection.Movement) string {
	switch m.Cause {
	case points.CauseIssue:
		return "earned for a verified green action"
	case points.CauseTransferIn:
		return "received from family member " + m.Counterparty
	case points.CauseTransferOut:
		return "given to family member " + m.Counterparty
	case points.CauseDonate:
		return "donated to " + m.Counterparty
	case points.CauseReverse:
		return "clawed back: the purchase or trip that earned them was refunded or reversed"
	case points.CauseExpire:
		return "expired"
	case points.CauseDebtSettle:
		return "withheld to settle points owed from an earlier reversal"
	}
	return m.Cause
}

func (h *meHandlers) history(c *gin.Context) {
	limit, cursor, ok := pageQuery(c, MaxHistoryPage, 0)
	if !ok {
		return
	}
	ms, next, err := h.d.Reads.Movements(c, me(c).Subject, cursor, limit)
	if err != nil {
		WriteError(c, err)
		return
	}
	out := HistoryJSON{Movements: make([]MovementJSON, 0, len(ms)), NextCursor: next}
	for _, m := range ms {
		out.Movements = append(out.Movements, MovementJSON{TxID: m.TxID, Block: m.Position.Block, Time: m.Time, Reason: m.Cause,
			Description: describe(m), Points: m.Points, Grams: m.Grams, LotID: m.LotKey, Counterparty: m.Counterparty, ReceiptID: m.ReceiptID})
	}
	c.JSON(http.StatusOK, out)
}

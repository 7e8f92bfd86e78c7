package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/settlement"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// Reasons of the partner routes.
const (
	ReasonRateLimited      = "rate_limited"
	ReasonWrongPartnerKind = "wrong_partner_kind"
)

// Request-size bounds of the partner routes.
const (
	MaxTransactionsPerRequest = 500
	MaxTripsPerRequest        = 500
)

// Partners mounts the partner routes: signed intake, status reads and
// settlement files. Every route is owned by the partner named in the path
// and authenticated by its Standard Webhooks signature; a partner can only
// ever act as itself, since its keys are looked up from the path.
func (s *Server) Partners(svc *pipeline.Service, onQueued func()) {
	h := &partnerHandlers{svc: svc, limits: map[string]*rate.Limiter{}, onQueued: onQueued}
	g := s.v1.Group("/partners/:partner", h.authenticate)
	g.POST("/card-transactions", h.kinds(pipeline.KindBank, pipeline.KindRetailer), h.cardTransactions)
	g.GET("/card-transactions/:transactionId", h.kinds(pipeline.KindBank, pipeline.KindRetailer), h.status("card"))
	g.POST("/trips", h.kinds(pipeline.KindTransitOperator), h.trips)
	g.GET("/trips/:transactionId", h.kinds(pipeline.KindTransitOperator), h.status("trip"))
	g.POST("/settlement-files", h.kinds(pipeline.KindBank), h.settlementFile)
	h.cardLinkRoutes(s, g) // api/cardlinks.go
	s.v1.GET("/disclosure", h.disclosure)
	s.v1.GET("/reason-codes", h.reasonCodes)
}

type partnerHandlers struct {
	svc      *pipeline.Service
	mu       sync.Mutex
	limits   map[string]*rate.Limiter
	onQueued func()
}

// Context keys set by authenticate.
const (
	ctxPartner = "greenpoints.partner"
	ctxRequest = "greenpoints.partnerRequest"
)

// authenticate verifies the request's signature with the path partner's
// active keys, then applies the partner's rate limit. The body is read here
// (bounded by LimitBody) because the signature covers it.
func (h *partnerHandlers) authenticate(c *gin.Context) {
	id := c.Param("partner")
	p, err := h.svc.Partners().Get(c, id)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			// Same answer as a bad signature: do not reveal which partner ids exist.
			err = apperr.New(apperr.Unauthorized, "signature_invalid", "the request signature does not verify")
		}
		WriteError(c, err)
		return
	}
	var body []byte
	if c.Request.Body != nil {
		body, err = io.ReadAll(c.Request.Body)
		if err != nil {
			WriteError(c, bodyReadError(err))
			return
		}
	}
	key, err := webhook.Verify(p.Keys, c.Request.Header, body, time.Now(), webhook.DefaultTolerance)
	if err != nil {
		WriteError(c, err)
		return
	}
	if wait, ok := h.allow(p); !ok {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		WriteError(c, apperr.New(apperr.RateLimited, ReasonRateLimited,
			"partner %s exceeded %d requests per second; retry after the Retry-After delay", p.ID, p.RatePerSecond))
		return
	}
	ts, _ := strconv.ParseInt(c.GetHeader(webhook.HeaderTimestamp), 10, 64) // verified above
	c.Set(ctxPartner, p)
	c.Set(ctxRequest, pipeline.Request{Partner: p, WebhookID: c.GetHeader(webhook.HeaderID), Body: body,
		Signature: c.GetHeader(webhook.HeaderSignature), KeyID: key.ID, SignedAt: time.Unix(ts, 0)})
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
}

// allow applies the partner's token bucket (per server instance).
func (h *partnerHandlers) allow(p *pipeline.PartnerKeys) (time.Duration, bool) {
	h.mu.Lock()
	l, ok := h.limits[p.ID]
	if !ok || l.Limit() != rate.Limit(p.RatePerSecond) || l.Burst() != p.RateBurst {
		l = rate.NewLimiter(rate.Limit(p.RatePerSecond), p.RateBurst)
		h.limits[p.ID] = l
	}
	h.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return max(d, time.Second), false
	}
	return 0, true
}

// kinds restricts a route to partners of some kinds: a bank cannot report
// trips, a transit operator cannot report card payments.
func (h *partnerHandlers) kinds(kinds ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := c.MustGet(ctxPartner).(*pipeline.PartnerKeys)
		for _, k := range kinds {
			if p.Kind == k {
				return
			}
		}
		WriteError(c, apperr.New(apperr.Forbidden, ReasonWrongPartnerKind, "a %s partner cannot use this route", p.Kind))
	}
}

// cardTransactionsRequest is the body of POST card-transactions.
type cardTransactionsRequest struct {
	Transactions []cardTransactionJSON `json:"transactions" validate:"required,min=1,max=500,dive"`
}

type cardTransactionJSON struct {
	TransactionID  string         `json:"transactionId" validate:"required"`
	Status         string         `json:"status" validate:"required"`
	CardToken      string         `json:"cardToken" validate:"required"`
	AmountFen      int64          `json:"amountFen" validate:"fen"`
	Currency       string         `json:"currency" validate:"required"`
	MCC            string         `json:"mcc" validate:"required,mcc"`
	MerchantID     string         `json:"merchantId" validate:"required"`
	MerchantName   string         `json:"merchantName" validate:"required"`
	MerchantUSCC   string         `json:"merchantUscc" validate:"required,uscc"`
	Time           time.Time      `json:"time" validate:"required"`
	InvoiceNumber  string         `json:"invoiceNumber,omitempty"`
	OperatorTripID string         `json:"operatorTripId,omitempty"`
	LineItems      []lineItemJSON `json:"lineItems,omitempty" validate:"max=100,dive"`
}

type lineItemJSON struct {
	Line         int    `json:"line" validate:"min=1"`
	Model        string `json:"model" validate:"required"`
	Brand        string `json:"brand" validate:"required"`
	Category     string `json:"category"`
	Quantity     int64  `json:"quantity" validate:"min=1"`
	UnitPriceFen int64  `json:"unitPriceFen" validate:"fen"`
}

func (t cardTransactionJSON) domain() evidence.CardTransaction {
	d := evidence.CardTransaction{TransactionID: t.TransactionID, Status: t.Status, CardToken: t.CardToken, AmountFen: t.AmountFen,
		Currency: t.Currency, MCC: t.MCC, MerchantID: t.MerchantID, MerchantName: t.MerchantName, MerchantUSCC: t.MerchantUSCC,
		Time: t.Time, InvoiceNumber: t.InvoiceNumber, OperatorTripID: t.OperatorTripID}
	for _, li := range t.LineItems {
		d.LineItems = append(d.LineItems, evidence.LineItem{Line: li.Line, Model: li.Model, Brand: li.Brand, Category: li.Category,
			Quantity: li.Quantity, UnitPriceFen: li.UnitPriceFen})
	}
	return d
}

// tripsRequest is the body of POST trips.
type tripsRequest struct {
	Trips []tripJSON `json:"trips" validate:"required,min=1,max=500,dive"`
}

type tripJSON struct {
	TripID         string    `json:"tripId" validate:"required"`
	CardToken      string    `json:"cardToken,omitempty"`
	Account        string    `json:"account,omitempty"`
	Mode           string    `json:"mode" validate:"required"`
	BoardedAt      time.Time `json:"boardedAt" validate:"required"`
	AlightedAt     time.Time `json:"alightedAt" validate:"required"`
	BoardingStop   string    `json:"boardingStop" validate:"required"`
	AlightingStop  string    `json:"alightingStop" validate:"required"`
	DistanceMeters int64     `json:"distanceMeters,omitempty" validate:"min=0"`
}

func (t tripJSON) domain() evidence.Trip {
	return evidence.Trip{TripID: t.TripID, CardToken: t.CardToken, Account: t.Account, Mode: t.Mode, BoardedAt: t.BoardedAt,
		AlightedAt: t.AlightedAt, BoardingStop: t.BoardingStop, AlightingStop: t.AlightingStop, DistanceMeters: t.DistanceMeters}
}

// domainErrors runs the domain's validation of every item and returns one
// Invalid error listing all field problems with their item paths.
func domainErrors[T interface{ Validate() []apperr.FieldError }](list string, items []T) error {
	var fields []apperr.FieldError
	for i, it := range items {
		for _, f := range it.Validate() {
			f.Field = fmt.Sprintf("%s[%d].%s", list, i, f.Field)
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed, Fields: fields,
		Detail: fmt.Sprintf("%d field(s) failed validation; nothing was recorded", len(fields))}
}

func (h *partnerHandlers) cardTransactions(c *gin.Context) {
	var req cardTransactionsRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	txs := make([]evidence.CardTransaction, len(req.Transactions))
	for i, t := range req.Transactions {
		txs[i] = t.domain()
	}
	if err := domainErrors("transactions", txs); err != nil {
		WriteError(c, err)
		return
	}
	r := c.MustGet(ctxRequest).(pipeline.Request)
	r.Route = "card-transactions"
	h.respond(c, func() (*pipeline.Response, error) { return h.svc.ReceiveCards(c, r, txs) })
}

func (h *partnerHandlers) trips(c *gin.Context) {
	var req tripsRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	trips := make([]evidence.Trip, len(req.Trips))
	for i, t := range req.Trips {
		trips[i] = t.domain()
	}
	if err := domainErrors("trips", trips); err != nil {
		WriteError(c, err)
		return
	}
	r := c.MustGet(ctxRequest).(pipeline.Request)
	r.Route = "trips"
	h.respond(c, func() (*pipeline.Response, error) { return h.svc.ReceiveTrips(c, r, trips) })
}

// settlementFile accepts a day's settlement CSV. The whole file is
// validated first; any invalid line rejects it with a per-line report.
func (h *partnerHandlers) settlementFile(c *gin.Context) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "text/csv" {
		WriteError(c, apperr.New(apperr.Invalid, ReasonUnsupportedMediaType, "Content-Type must be text/csv"))
		return
	}
	day := c.Query("businessDay")
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		WriteError(c, &apperr.Error{Code: apperr.Invalid, Reason: ReasonValidationFailed, Detail: "businessDay must be a date YYYY-MM-DD",
			Fields: []apperr.FieldError{{Field: "businessDay", Reason: "date", Detail: "a date YYYY-MM-DD is required"}}})
		return
	}
	r := c.MustGet(ctxRequest).(pipeline.Request)
	f, err := settlement.Parse(bytes.NewReader(r.Body), day, settlement.Options{})
	if err != nil {
		WriteError(c, err)
		return
	}
	r.Route = "settlement-files"
	h.respond(c, func() (*pipeline.Response, error) { return h.svc.ReceiveFile(c, r, f.Transactions) })
}

// respond writes an intake response: 202 with per-event outcomes, or the
// stored response of a replayed webhook id, byte for byte.
func (h *partnerHandlers) respond(c *gin.Context, receive func() (*pipeline.Response, error)) {
	resp, err := receive()
	var rep *pipeline.Replayed
	if errors.As(err, &rep) {
		c.Header("Idempotent-Replayed", "true")
		c.Data(http.StatusAccepted, "application/json", rep.Body)
		return
	}
	if err != nil {
		WriteError(c, err)
		return
	}
	// Wake the batcher only for work it can do now: most purchases wait out
	// a hold period, and waking it for each of a thousand requests a second
	// costs more than the work.
	if h.onQueued != nil && resp.DueNow(time.Now()) {
		h.onQueued()
	}
	c.Data(http.StatusAccepted, "application/json", resp.Body()) // the bytes stored for replays
}

// status returns what became of a partner's transaction or trip: every
// event received and every green action with its status and reason.
func (h *partnerHandlers) status(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := c.MustGet(ctxPartner).(*pipeline.PartnerKeys)
		st, err := h.svc.Status(c, p.ID, kind, c.Param("transactionId"))
		if err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, st)
	}
}

func (h *partnerHandlers) disclosure(c *gin.Context) {
	c.JSON(http.StatusOK, h.svc.Disclosure(time.Now()))
}

func (h *partnerHandlers) reasonCodes(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"reasons": pipeline.ReasonCatalogue()})
}

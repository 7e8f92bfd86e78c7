package api

import (
	"context"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// ReasonCardLinksUnavailable answers the card-link routes of a server that
// was given no CardLinker.
const ReasonCardLinksUnavailable = "card_links_unavailable"

// CardLinker links and unlinks partners' card tokens with consent
// (internal/consumers.Store implements it).
type CardLinker interface {
	LinkCard(ctx context.Context, req consumers.SignedRequest, in consumers.LinkInput) (*consumers.Stored, error)
	UnlinkCard(ctx context.Context, req consumers.SignedRequest, cardToken string) (*consumers.Stored, error)
}

// cardLinkers holds each Server's CardLinker. The routes are mounted in the
// partner group (they share its signature check and rate limit), which the
// Server builds in Partners; the service is given separately by CardLinks,
// before or after, so it is looked up per request.
var cardLinkers sync.Map // *Server -> CardLinker

// CardLinks gives the server the service behind the card-link routes that
// Partners mounts. Until it is called those routes answer 503.
func (s *Server) CardLinks(cl CardLinker) { cardLinkers.Store(s, cl) }

// cardLinkRoutes mounts the card-link routes in the partner group g: banks
// only, and only for their own tokens (the partner is the one whose key
// verified the request; links are keyed by it).
func (h *partnerHandlers) cardLinkRoutes(s *Server, g *gin.RouterGroup) {
	bank := h.kinds(pipeline.KindBank)
	g.POST("/card-links", bank, func(c *gin.Context) { h.linkCard(c, s) })
	g.DELETE("/card-links/:cardToken", bank, func(c *gin.Context) { h.unlinkCard(c, s) })
}

// cardLinkRequest is the body of POST card-links. The domain validation
// (consumers.LinkInput.Validate) checks the members, so that a missing
// consent is reported as consent_required rather than a generic failure.
type cardLinkRequest struct {
	CardToken string           `json:"cardToken"`
	Account   string           `json:"account"`
	Consent   *cardLinkConsent `json:"consent"`
}

type cardLinkConsent struct {
	Version         string    `json:"version"`
	GrantedAt       time.Time `json:"grantedAt"`
	Channel         string    `json:"channel"`
	GuardianConsent bool      `json:"guardianConsent"`
}

func linker(c *gin.Context, s *Server) (CardLinker, bool) {
	v, ok := cardLinkers.Load(s)
	if !ok {
		WriteError(c, apperr.New(apperr.Unavailable, ReasonCardLinksUnavailable, "card links are not enabled on this server"))
		return nil, false
	}
	return v.(CardLinker), true
}

func signedRequest(c *gin.Context, route string) consumers.SignedRequest {
	r := c.MustGet(ctxRequest).(pipeline.Request)
	return consumers.SignedRequest{Partner: r.Partner.ID, WebhookID: r.WebhookID, Route: route, Body: r.Body,
		Signature: r.Signature, KeyID: r.KeyID, SignedAt: r.SignedAt}
}

func (h *partnerHandlers) linkCard(c *gin.Context, s *Server) {
	cl, ok := linker(c, s)
	if !ok {
		return
	}
	var req cardLinkRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	in := consumers.LinkInput{CardToken: req.CardToken, Account: req.Account}
	if req.Consent != nil {
		in.Consent = &consumers.ConsentInput{Version: req.Consent.Version, GrantedAt: req.Consent.GrantedAt,
			Channel: req.Consent.Channel, GuardianConsent: req.Consent.GuardianConsent}
	}
	writeStored(c, func() (*consumers.Stored, error) { return cl.LinkCard(c, signedRequest(c, "card-links"), in) })
}

func (h *partnerHandlers) unlinkCard(c *gin.Context, s *Server) {
	cl, ok := linker(c, s)
	if !ok {
		return
	}
	writeStored(c, func() (*consumers.Stored, error) {
		return cl.UnlinkCard(c, signedRequest(c, "card-links/withdraw"), c.Param("cardToken"))
	})
}

// writeStored writes a stored partner response, marking a replay.
func writeStored(c *gin.Context, do func() (*consumers.Stored, error)) {
	st, err := do()
	if err != nil {
		WriteError(c, err)
		return
	}
	if st.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Data(st.Status, "application/json", st.Body)
}

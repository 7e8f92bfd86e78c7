package consumers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// SignedRequest is a partner's verified request, stored raw in
// partner_requests like intake requests: the bank's signature over the
// consent it asserts is the proof of that consent, and its webhook id makes
// the request idempotent.
type SignedRequest struct {
	Partner   string
	WebhookID string
	Route     string // "card-links" or "card-links/withdraw"
	Body      []byte
	Signature string
	KeyID     string
	SignedAt  time.Time
}

// LinkInput is a bank's request to link one of its card tokens to an
// account. Consent is required: without it nothing is linked.
type LinkInput struct {
	CardToken string        `json:"cardToken"`
	Account   string        `json:"account"`
	Consent   *ConsentInput `json:"consent"`
}

// Validate returns the field problems of in and the reason of the error
// they make: consent_required when the consent is missing or incomplete
// (what a bank must fix first), otherwise validation_failed.
func (in LinkInput) Validate(now time.Time) (string, []apperr.FieldError) {
	var errs []apperr.FieldError
	if evidence.LooksLikePAN(in.CardToken) {
		errs = append(errs, apperr.FieldError{Field: "cardToken", Reason: evidence.FieldPANNotAllowed,
			Detail: "cardToken looks like a card number; send the bank's token, never the card number"})
	} else {
		idField(&errs, "cardToken", in.CardToken)
	}
	idField(&errs, "account", in.Account)
	if in.Consent == nil {
		return ReasonConsentRequired, append(errs, apperr.FieldError{Field: "consent", Reason: FieldRequired,
			Detail: "the consumer's consent (version, grantedAt, channel) is required to link a card"})
	}
	if ce := in.Consent.Validate("consent.", now); len(ce) > 0 {
		return ReasonConsentRequired, append(errs, ce...)
	}
	return ReasonValidationFailed, errs
}

// CardLink is a card token of a partner linked to an account.
type CardLink struct {
	Partner     string      `json:"partner"`
	CardToken   string      `json:"cardToken"`
	Account     string      `json:"account"`
	Consent     LinkConsent `json:"consent"`
	LinkedAt    time.Time   `json:"linkedAt"`
	WithdrawnAt *time.Time  `json:"withdrawnAt,omitempty"`
}

// LinkConsent is the consent a link runs under.
type LinkConsent struct {
	Version         string    `json:"version"`
	GrantedAt       time.Time `json:"grantedAt"`
	Channel         string    `json:"channel"`
	GuardianConsent bool      `json:"guardianConsent"`
}

// Stored is a partner response as stored with its request: what the first
// delivery of a webhook id answered, returned again on a replay.
type Stored struct {
	Status   int
	Body     []byte
	Replayed bool
}

// LinkCard links in.CardToken of the request's partner to in.Account with
// the consent the partner asserts, recording the consent (purpose
// card_link, scope "partner/cardToken") and the signed request. A bank can
// only ever link its own tokens: the partner is the authenticated one, and
// links are keyed by (partner, token), so another partner's intake never
// sees them. Linking again with the same consent changes nothing (200);
// with a new consent version it renews the consent (200); a withdrawn link
// is linked anew (201). Errors: Invalid (consent_required,
// guardian_consent_required, validation_failed), NotFound
// (account_not_found), Conflict (card_already_linked: the token is linked
// to another account; webhook_id_reused).
func (s *Store) LinkCard(ctx context.Context, req SignedRequest, in LinkInput) (*Stored, error) {
	now := s.now()
	if reason, errs := in.Validate(now); len(errs) > 0 {
		return nil, invalid(reason, errs)
	}
	c := *in.Consent
	return s.signed(ctx, req, func(tx pgx.Tx, requestID string) (int, any, error) {
		sp, err := load(ctx, tx, "account", in.Account, true)
		if err != nil {
			return 0, nil, err
		}
		if err := s.checkGuardian(ctx, sp, c); err != nil {
			return 0, nil, err
		}
		l := CardLink{Partner: req.Partner, CardToken: in.CardToken}
		status := http.StatusOK
		err = tx.QueryRow(ctx, `SELECT account, consent_version, consented_at, consent_channel, guardian_consent, linked_at, withdrawn_at
			FROM card_links WHERE partner_id = $1 AND card_token = $2 FOR UPDATE`, req.Partner, in.CardToken).
			Scan(&l.Account, &l.Consent.Version, &l.Consent.GrantedAt, &l.Consent.Channel, &l.Consent.GuardianConsent, &l.LinkedAt, &l.WithdrawnAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			status = http.StatusCreated
			err = tx.QueryRow(ctx, `INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel, guardian_consent)
				VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING linked_at`,
				req.Partner, in.CardToken, in.Account, c.Version, c.GrantedAt, c.Channel, c.GuardianConsent).Scan(&l.LinkedAt)
		case err != nil:
		case l.WithdrawnAt == nil && l.Account != in.Account:
			return 0, nil, apperr.New(apperr.Conflict, ReasonCardAlreadyLinked,
				"card token %q is linked to another account; withdraw that link first", in.CardToken)
		default:
			if l.WithdrawnAt != nil {
				status = http.StatusCreated
			}
			err = tx.QueryRow(ctx, `UPDATE card_links SET account = $3, consent_version = $4, consented_at = $5, consent_channel = $6,
				guardian_consent = $7, withdrawn_at = NULL, linked_at = CASE WHEN withdrawn_at IS NULL THEN linked_at ELSE now() END
				WHERE partner_id = $1 AND card_token = $2 RETURNING linked_at`,
				req.Partner, in.CardToken, in.Account, c.Version, c.GrantedAt, c.Channel, c.GuardianConsent).Scan(&l.LinkedAt)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("link card: %w", err)
		}
		cons, err := grant(ctx, tx, sp.id, PurposeCardLink, req.Partner+"/"+in.CardToken, c, &requestID)
		if err != nil {
			return 0, nil, err
		}
		l.Account, l.WithdrawnAt = in.Account, nil
		l.Consent = LinkConsent{Version: cons.Version, GrantedAt: cons.GrantedAt, Channel: cons.Channel, GuardianConsent: cons.GuardianConsent}
		return status, l, nil
	})
}

// UnlinkCard withdraws the link of the request's partner's cardToken: from
// the commit on, intake rejects the card with consent_withdrawn. The link
// row stays (withdrawn) for its retention period; the card_link consent is
// withdrawn with it. Withdrawing a withdrawn link answers as the first time.
// Errors: NotFound (card_link_not_found), Conflict (webhook_id_reused).
func (s *Store) UnlinkCard(ctx context.Context, req SignedRequest, cardToken string) (*Stored, error) {
	return s.signed(ctx, req, func(tx pgx.Tx, _ string) (int, any, error) {
		l := CardLink{Partner: req.Partner, CardToken: cardToken}
		err := tx.QueryRow(ctx, `UPDATE card_links SET withdrawn_at = coalesce(withdrawn_at, now())
			WHERE partner_id = $1 AND card_token = $2
			RETURNING account, consent_version, consented_at, consent_channel, guardian_consent, linked_at, withdrawn_at`, req.Partner, cardToken).
			Scan(&l.Account, &l.Consent.Version, &l.Consent.GrantedAt, &l.Consent.Channel, &l.Consent.GuardianConsent, &l.LinkedAt, &l.WithdrawnAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, nil, apperr.New(apperr.NotFound, ReasonCardLinkNotFound, "partner %s has no link for card token %q", req.Partner, cardToken)
		case err != nil:
			return 0, nil, fmt.Errorf("withdraw card link: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE consents SET withdrawn_at = now() WHERE purpose = $1 AND scope = $2 AND withdrawn_at IS NULL
			AND person_id = (SELECT id FROM consumers WHERE account = $3)`, PurposeCardLink, req.Partner+"/"+cardToken, l.Account); err != nil {
			return 0, nil, fmt.Errorf("withdraw card-link consent: %w", err)
		}
		return http.StatusOK, l, nil
	})
}

// signed runs fn in a transaction that first claims the request's webhook
// id in partner_requests, then stores fn's response with it. A replay of
// the webhook id with the same body returns the stored response and runs
// nothing; with another body it is a Conflict. When fn fails nothing is
// stored, so the partner may retry under the same id.
func (s *Store) signed(ctx context.Context, req SignedRequest, fn func(tx pgx.Tx, requestID string) (int, any, error)) (*Stored, error) {
	id := uuid.Must(uuid.NewV7()).String()
	sum := sha256.Sum256(req.Body)
	var out Stored
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO partner_requests (id, partner_id, webhook_id, route, body, body_sha256,
			signature, key_id, signed_at, response_status, response)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, '') ON CONFLICT (partner_id, webhook_id) DO NOTHING`,
			id, req.Partner, req.WebhookID, req.Route, req.Body, sum[:], req.Signature, req.KeyID, req.SignedAt)
		if err != nil {
			return fmt.Errorf("record request: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var stored []byte
			if err := tx.QueryRow(ctx, `SELECT body_sha256, response_status, response FROM partner_requests
				WHERE partner_id = $1 AND webhook_id = $2`, req.Partner, req.WebhookID).Scan(&stored, &out.Status, &out.Body); err != nil {
				return fmt.Errorf("load replayed request: %w", err)
			}
			if !bytes.Equal(stored, sum[:]) {
				return apperr.New(apperr.Conflict, ReasonWebhookIDReused, "webhook-id %q was already used for a different request body", req.WebhookID)
			}
			out.Replayed = true
			return nil
		}
		status, v, err := fn(tx, id)
		if err != nil {
			return err
		}
		body, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out.Status, out.Body = status, body
		_, err = tx.Exec(ctx, `UPDATE partner_requests SET response_status = $2, response = $3 WHERE id = $1`, id, status, body)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CardLinks lists the account holder's card links (live and withdrawn), by
// partner and token. Errors: NotFound (account_not_found).
func (s *Store) CardLinks(ctx context.Context, account string) ([]CardLink, error) {
	if _, err := load(ctx, s.pool, "account", account, false); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT partner_id, card_token, account, consent_version, consented_at, consent_channel, guardian_consent,
		linked_at, withdrawn_at FROM card_links WHERE account = $1 ORDER BY partner_id, card_token LIMIT 1000`, account)
	if err != nil {
		return nil, fmt.Errorf("list card links: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CardLink, error) {
		var l CardLink
		err := r.Scan(&l.Partner, &l.CardToken, &l.Account, &l.Consent.Version, &l.Consent.GrantedAt, &l.Consent.Channel,
			&l.Consent.GuardianConsent, &l.LinkedAt, &l.WithdrawnAt)
		return l, err
	})
}

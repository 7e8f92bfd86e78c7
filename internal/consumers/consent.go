package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// Purposes a consumer consents to. Card links and whereabouts (transit
// trips) are sensitive personal information under PIPL Art. 28 and each
// needs its own, separate consent (Art. 29); marketing is never bundled with
// either.
const (
	PurposeCardLink      = "card_link"
	PurposeWhereabouts   = "whereabouts"
	PurposeMarketing     = "marketing"
	PurposeNotifications = "notifications"
)

var purposes = []string{PurposeCardLink, PurposeWhereabouts, PurposeMarketing, PurposeNotifications}

// maxClockSkew is how far in the future a consent's grantedAt may be: a
// partner's clock may run ahead of ours, by as much as a signature may.
const maxClockSkew = 5 * time.Minute

// channelPattern: a channel is a short code, e.g. app, web, branch, phone.
var channelPattern = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// ConsentInput is a consent as the consumer gave it: which version of the
// consent text, when, through which channel, and for a person under 14
// whether their guardian consented.
type ConsentInput struct {
	Version         string    `json:"version"`
	GrantedAt       time.Time `json:"grantedAt"`
	Channel         string    `json:"channel"`
	GuardianConsent bool      `json:"guardianConsent"`
}

// Validate returns every field problem of c, with field names under prefix
// (e.g. "consent.").
func (c ConsentInput) Validate(prefix string, now time.Time) []apperr.FieldError {
	var errs []apperr.FieldError
	add := func(field, reason, detail string) {
		errs = append(errs, apperr.FieldError{Field: prefix + field, Reason: reason, Detail: detail})
	}
	idField(&errs, prefix+"version", c.Version)
	switch {
	case c.GrantedAt.IsZero():
		add("grantedAt", FieldRequired, "grantedAt is required")
	case c.GrantedAt.After(now.Add(maxClockSkew)):
		add("grantedAt", FieldOutOfRange, "grantedAt is in the future")
	case c.GrantedAt.Year() < 2000:
		add("grantedAt", FieldOutOfRange, "grantedAt is before 2000")
	}
	switch {
	case c.Channel == "":
		add("channel", FieldRequired, "channel is required")
	case !channelPattern.MatchString(c.Channel):
		add("channel", FieldInvalidChars, "channel must be 1 to 32 of a-z, 0-9 and _ (e.g. app, web, branch)")
	}
	return errs
}

// idField checks an identifier with the evidence rules: 1..64 of
// [A-Za-z0-9._:-].
func idField(errs *[]apperr.FieldError, field, s string) {
	add := func(reason, detail string) {
		*errs = append(*errs, apperr.FieldError{Field: field, Reason: reason, Detail: detail})
	}
	switch {
	case s == "":
		add(FieldRequired, field+" is required")
		return
	case len(s) > evidence.MaxIDLen:
		add(FieldTooLong, fmt.Sprintf("%s is longer than %d characters", field, evidence.MaxIDLen))
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			add(FieldInvalidChars, field+" may contain only A-Z, a-z, 0-9, '.', '_', ':' and '-'")
			return
		}
	}
}

// Consent is a recorded consent.
type Consent struct {
	ID              string     `json:"id"`
	Purpose         string     `json:"purpose"`
	Scope           string     `json:"scope,omitempty"` // card_link: "partner/cardToken"
	Version         string     `json:"version"`
	GrantedAt       time.Time  `json:"grantedAt"`
	Channel         string     `json:"channel"`
	GuardianConsent bool       `json:"guardianConsent"`
	RecordedAt      time.Time  `json:"recordedAt"`
	WithdrawnAt     *time.Time `json:"withdrawnAt,omitempty"`
}

// minorAt reports whether a person born on birthDate (YYYY-MM-DD, "" when
// unknown) is under GuardianAge at t.
func minorAt(birthDate string, t time.Time) bool {
	d, err := time.Parse(time.DateOnly, birthDate)
	if err != nil {
		return false // unknown: the partner's own age check stands (docs/privacy.md)
	}
	return t.Before(d.AddDate(GuardianAge, 0, 0))
}

// checkGuardian refuses a consent of a person under 14 that their guardian
// did not give.
func (s *Store) checkGuardian(ctx context.Context, sp *sealedPerson, c ConsentInput) error {
	if c.GuardianConsent || sp.birth == nil {
		return nil
	}
	p, err := s.open(ctx, sp)
	if err != nil {
		return err
	}
	if minorAt(p.BirthDate, c.GrantedAt) {
		return &apperr.Error{Code: apperr.Invalid, Reason: ReasonGuardianRequired,
			Detail: fmt.Sprintf("the consumer was under %d when the consent was given; a guardian must consent", GuardianAge),
			Fields: []apperr.FieldError{{Field: "consent.guardianConsent", Reason: ReasonGuardianRequired, Detail: "a guardian's consent is required"}}}
	}
	return nil
}

// grant records a consent in tx: a live consent of the same purpose and
// scope with the same version is kept as it is; one of another version is
// withdrawn and replaced.
func grant(ctx context.Context, tx pgx.Tx, person, purpose, scope string, c ConsentInput, requestID *string) (*Consent, error) {
	var cur Consent
	err := tx.QueryRow(ctx, `SELECT id::text, version, granted_at, channel, guardian_consent, recorded_at FROM consents
		WHERE person_id = $1 AND purpose = $2 AND scope = $3 AND withdrawn_at IS NULL FOR UPDATE`, person, purpose, scope).
		Scan(&cur.ID, &cur.Version, &cur.GrantedAt, &cur.Channel, &cur.GuardianConsent, &cur.RecordedAt)
	switch {
	case err == nil && cur.Version == c.Version && cur.GuardianConsent == c.GuardianConsent:
		cur.Purpose, cur.Scope = purpose, scope
		return &cur, nil
	case err == nil:
		if _, err := tx.Exec(ctx, `UPDATE consents SET withdrawn_at = now() WHERE id = $1`, cur.ID); err != nil {
			return nil, fmt.Errorf("replace consent: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("load consent: %w", err)
	}
	out := Consent{ID: uuid.Must(uuid.NewV7()).String(), Purpose: purpose, Scope: scope, Version: c.Version,
		GrantedAt: c.GrantedAt, Channel: c.Channel, GuardianConsent: c.GuardianConsent}
	if err := tx.QueryRow(ctx, `INSERT INTO consents (id, person_id, purpose, scope, version, granted_at, channel, guardian_consent, request_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING granted_at, recorded_at`,
		out.ID, person, purpose, scope, c.Version, c.GrantedAt, c.Channel, c.GuardianConsent, requestID).Scan(&out.GrantedAt, &out.RecordedAt); err != nil {
		return nil, fmt.Errorf("insert consent: %w", err)
	}
	return &out, nil
}

// GrantConsent records a consent a consumer gave directly (app, web) for
// purpose. Card links are consented through LinkCard, which records the
// card's own card_link consent; here purpose card_link is refused, since a
// consent without a card would link nothing. Errors: Invalid
// (validation_failed), NotFound (account_not_found).
func (s *Store) GrantConsent(ctx context.Context, account, purpose string, c ConsentInput) (*Consent, error) {
	errs := c.Validate("", s.now())
	if purpose == PurposeCardLink || !slices.Contains(purposes, purpose) {
		errs = append(errs, apperr.FieldError{Field: "purpose", Reason: FieldOutOfRange,
			Detail: "purpose must be whereabouts, marketing or notifications (card links are consented with the link)"})
	}
	if len(errs) > 0 {
		return nil, invalid(ReasonValidationFailed, errs)
	}
	var out *Consent
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		sp, err := load(ctx, tx, "account", account, true)
		if err != nil {
			return err
		}
		if err := s.checkGuardian(ctx, sp, c); err != nil {
			return err
		}
		out, err = grant(ctx, tx, sp.id, purpose, "", c, nil)
		return err
	})
	return out, err
}

// WithdrawConsent withdraws the account holder's live consents of purpose
// (all of them when scope is "", else the one of that scope, e.g.
// "demo-bank/tok_1" for a card link) and returns how many it withdrew.
// Withdrawing card_link also withdraws the card links themselves, so intake
// rejects the cards with consent_withdrawn from the commit on, and tells each
// bank with a card_link.withdrawn callback. Errors: NotFound
// (account_not_found), Invalid for an unknown purpose.
func (s *Store) WithdrawConsent(ctx context.Context, account, purpose, scope string) (int64, error) {
	if !slices.Contains(purposes, purpose) {
		return 0, invalid(ReasonValidationFailed, []apperr.FieldError{{Field: "purpose", Reason: FieldOutOfRange, Detail: "unknown purpose"}})
	}
	var n int64
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		sp, err := load(ctx, tx, "account", account, true)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE consents SET withdrawn_at = now()
			WHERE person_id = $1 AND purpose = $2 AND ($3 = '' OR scope = $3) AND withdrawn_at IS NULL`, sp.id, purpose, scope)
		if err != nil {
			return fmt.Errorf("withdraw consents: %w", err)
		}
		n = tag.RowsAffected()
		if purpose != PurposeCardLink {
			return nil
		}
		rows, err := tx.Query(ctx, `UPDATE card_links SET withdrawn_at = now()
			WHERE account = $1 AND withdrawn_at IS NULL AND ($2 = '' OR partner_id || '/' || card_token = $2)
			RETURNING partner_id, card_token`, account, scope)
		if err != nil {
			return fmt.Errorf("withdraw card links: %w", err)
		}
		var links [][2]string
		for rows.Next() {
			var l [2]string
			if err := rows.Scan(&l[0], &l[1]); err != nil {
				rows.Close()
				return err
			}
			links = append(links, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, l := range links {
			if err := queueCallback(ctx, tx, l[0], "card_link.withdrawn", l[1]); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// Consents lists the account holder's consents, live and withdrawn, oldest
// first. Errors: NotFound (account_not_found).
func (s *Store) Consents(ctx context.Context, account string) ([]Consent, error) {
	sp, err := load(ctx, s.pool, "account", account, false)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id::text, purpose, scope, version, granted_at, channel, guardian_consent, recorded_at, withdrawn_at
		FROM consents WHERE person_id = $1 ORDER BY recorded_at, id LIMIT 1000`, sp.id)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Consent, error) {
		var c Consent
		err := r.Scan(&c.ID, &c.Purpose, &c.Scope, &c.Version, &c.GrantedAt, &c.Channel, &c.GuardianConsent, &c.RecordedAt, &c.WithdrawnAt)
		return c, err
	})
}

// queueCallback tells a partner about a card link it can no longer use, in
// the caller's transaction, in the payload shape of the pipeline's callbacks
// (type, partner, then the subject).
func queueCallback(ctx context.Context, tx pgx.Tx, partner, typ, token string) error {
	b, err := json.Marshal(map[string]any{"type": typ, "partner": partner, "cardToken": token})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO callbacks (partner_id, event_type, payload) VALUES ($1, $2, $3)`, partner, typ, b); err != nil {
		return fmt.Errorf("queue callback: %w", err)
	}
	return nil
}

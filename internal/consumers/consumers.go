// Package consumers holds what greenpoints knows about consumers as people:
// their personal data (encrypted per person), their consents, the card links
// banks make with those consents, and their notification preferences. The
// ledger and the rest of the system know a consumer only by a random,
// pseudonymous account id.
//
// Personal fields are sealed with keys.SealData under a data key of that
// person alone, stored only wrapped by the key manager's key-encryption key.
// Erase deletes the wrapped key (crypto-shredding, PIPL Art. 47) together
// with the person's card links and preferences; the pseudonymous ledger
// history stays. docs/privacy.md has the retention schedule that
// EnforceRetention applies.
package consumers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// Reasons of this package's errors.
const (
	ReasonConsumerNotFound  = "consumer_not_found"        // NotFound: no such person, or erased
	ReasonAccountNotFound   = "account_not_found"         // NotFound: no (unerased) consumer holds the account
	ReasonConsentRequired   = "consent_required"          // Invalid: a card link without a complete consent
	ReasonGuardianRequired  = "guardian_consent_required" // Invalid: the person is under 14 and no guardian consented
	ReasonCardAlreadyLinked = "card_already_linked"       // Conflict: the token is linked to another account
	ReasonCardLinkNotFound  = "card_link_not_found"       // NotFound: the partner has no link for the token
	ReasonWebhookIDReused   = "webhook_id_reused"         // Conflict: a webhook id reused for another body
	ReasonValidationFailed  = "validation_failed"         // Invalid: see the field errors
)

// Field-level reasons (besides those of issuer/evidence, reused for ids).
const (
	FieldRequired     = "required"
	FieldTooLong      = "too_long"
	FieldInvalidChars = "invalid_chars"
	FieldPhoneFormat  = "phone_format"
	FieldDateFormat   = "date_format"
	FieldOutOfRange   = "out_of_range"
	FieldTimeZone     = "time_zone"
	FieldTimeOfDay    = "time_of_day"
)

// Bounds of personal fields.
const (
	MaxNameLen = 100 // runes
	// GuardianAge is the age under which a guardian must consent to the
	// processing of a child's personal information (PIPL Art. 31).
	GuardianAge = 14
)

// Store keeps consumers, consents, card links and preferences in
// PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	keys keys.Manager
	now  func() time.Time
}

// NewStore returns a Store over pool, wrapping data keys with km.
func NewStore(pool *pgxpool.Pool, km keys.Manager) *Store {
	return &Store{pool: pool, keys: km, now: time.Now}
}

// NewPerson is what an operator records about a new consumer: only what
// the service needs. A phone number reaches the person (SMS reminders); the
// birth date, optional, tells whether a guardian must consent. No national
// id is collected: nothing we do requires one (docs/privacy.md).
type NewPerson struct {
	Name      string `json:"name"`
	Phone     string `json:"phone"`               // E.164, e.g. +8613800138000
	BirthDate string `json:"birthDate,omitempty"` // YYYY-MM-DD
	// Account, when set, is used instead of a new random account id: for an
	// account that already exists on the ledger (the demo's fixtures, a
	// programme migrated from elsewhere). Never derived from personal data.
	Account string `json:"-"`
}

// phonePattern is E.164: a plus, a country code and at most 15 digits.
var phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Validate returns every field problem of p.
func (p NewPerson) Validate() []apperr.FieldError {
	var errs []apperr.FieldError
	add := func(field, reason, detail string) {
		errs = append(errs, apperr.FieldError{Field: field, Reason: reason, Detail: detail})
	}
	switch {
	case strings.TrimSpace(p.Name) == "":
		add("name", FieldRequired, "name is required")
	case !utf8.ValidString(p.Name) || strings.ContainsFunc(p.Name, unicode.IsControl):
		add("name", FieldInvalidChars, "name must be UTF-8 text without control characters")
	case utf8.RuneCountInString(p.Name) > MaxNameLen:
		add("name", FieldTooLong, fmt.Sprintf("name is longer than %d characters", MaxNameLen))
	}
	switch {
	case p.Phone == "":
		add("phone", FieldRequired, "phone is required")
	case !phonePattern.MatchString(p.Phone):
		add("phone", FieldPhoneFormat, "phone must be in E.164 form, e.g. +8613800138000")
	}
	if p.BirthDate != "" {
		d, err := time.Parse(time.DateOnly, p.BirthDate)
		switch {
		case err != nil:
			add("birthDate", FieldDateFormat, "birthDate must be a date YYYY-MM-DD")
		case d.Year() < 1900 || d.After(time.Now()):
			add("birthDate", FieldOutOfRange, "birthDate must be after 1900 and not in the future")
		}
	}
	return errs
}

// Person is a consumer with their personal data decrypted.
type Person struct {
	ID        string    `json:"id"`
	Account   string    `json:"account"` // pseudonymous ledger account id
	Name      string    `json:"name"`
	Phone     string    `json:"phone"`
	BirthDate string    `json:"birthDate,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// invalid builds the Invalid error of a list of field problems.
func invalid(reason string, fields []apperr.FieldError) error {
	return &apperr.Error{Code: apperr.Invalid, Reason: reason, Fields: fields,
		Detail: fmt.Sprintf("%d field(s) failed validation; nothing was recorded", len(fields))}
}

// NewAccountID returns a fresh pseudonymous account id: "c-" and 128 random
// bits in hex. It is random rather than derived from anything about the
// person, so the ledger's history cannot be linked back to them once their
// record is erased.
func NewAccountID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return "c-" + hex.EncodeToString(b)
}

// keyAAD binds a wrapped data key to its person; fieldAAD binds a sealed
// value to its person and column.
func keyAAD(person string) []byte { return []byte("greenpoints/consumer/" + person) }
func fieldAAD(person, field string) []byte {
	return []byte("greenpoints/consumer/" + person + "/" + field)
}

// Create records a new consumer with a new account id and returns them.
// Errors: Invalid (validation_failed) with field errors. The account is
// opened on the ledger by the batcher with the first issuance to it.
func (s *Store) Create(ctx context.Context, np NewPerson) (*Person, error) {
	if errs := np.Validate(); len(errs) > 0 {
		return nil, invalid(ReasonValidationFailed, errs)
	}
	id := uuid.Must(uuid.NewV7()).String()
	dk, err := keys.NewDataKey()
	if err != nil {
		return nil, err
	}
	wrapped, err := s.keys.WrapKey(ctx, dk, keyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("wrap consumer data key: %w", err)
	}
	seal := func(field, v string) ([]byte, error) {
		if v == "" {
			return nil, nil // absent stays NULL: no ciphertext of nothing
		}
		return keys.SealData(dk, []byte(v), fieldAAD(id, field))
	}
	var name, phone, birth []byte
	for _, f := range []struct {
		dst         *[]byte
		field, text string
	}{{&name, "name", np.Name}, {&phone, "phone", np.Phone}, {&birth, "birth_date", np.BirthDate}} {
		if *f.dst, err = seal(f.field, f.text); err != nil {
			return nil, fmt.Errorf("seal %s: %w", f.field, err)
		}
	}
	account := np.Account
	if account == "" {
		account = NewAccountID()
	}
	p := &Person{ID: id, Account: account, Name: np.Name, Phone: np.Phone, BirthDate: np.BirthDate}
	err = database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO consumers (id, account, name_sealed, phone_sealed, birth_date_sealed)
			VALUES ($1, $2, $3, $4, $5) RETURNING created_at`, id, p.Account, name, phone, birth).Scan(&p.CreatedAt); err != nil {
			return fmt.Errorf("insert consumer: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO consumer_keys (person_id, wrapped_key) VALUES ($1, $2)`, id, wrapped); err != nil {
			return fmt.Errorf("insert consumer key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// sealedPerson is a consumers row with its wrapped key, before decryption.
type sealedPerson struct {
	id, account              string
	name, phone, birth, wkey []byte
	createdAt                time.Time
	erased                   bool
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// load reads a person by id or account. It returns ReasonConsumerNotFound
// or ReasonAccountNotFound (NotFound) for unknown and erased people alike:
// after erasure there is nobody to find.
func load(ctx context.Context, q querier, by, v string, lock bool) (*sealedPerson, error) {
	col, reason := "c.id::text", ReasonConsumerNotFound
	if by == "account" {
		col, reason = "c.account", ReasonAccountNotFound
	}
	sql := `SELECT c.id::text, c.account, c.name_sealed, c.phone_sealed, c.birth_date_sealed, k.wrapped_key, c.created_at, c.erased_at IS NOT NULL
		FROM consumers c LEFT JOIN consumer_keys k ON k.person_id = c.id WHERE ` + col + ` = $1`
	if lock {
		sql += ` FOR UPDATE OF c`
	}
	var sp sealedPerson
	err := q.QueryRow(ctx, sql, v).Scan(&sp.id, &sp.account, &sp.name, &sp.phone, &sp.birth, &sp.wkey, &sp.createdAt, &sp.erased)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || err == nil && sp.erased:
		return nil, apperr.New(apperr.NotFound, reason, "no consumer %s %q", by, v)
	case err != nil:
		return nil, fmt.Errorf("load consumer: %w", err)
	}
	return &sp, nil
}

// open decrypts a loaded person's fields.
func (s *Store) open(ctx context.Context, sp *sealedPerson) (*Person, error) {
	if sp.wkey == nil {
		return nil, fmt.Errorf("consumer %s has no data key but is not erased", sp.id)
	}
	dk, err := s.keys.UnwrapKey(ctx, sp.wkey, keyAAD(sp.id))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of consumer %s: %w", sp.id, err)
	}
	p := &Person{ID: sp.id, Account: sp.account, CreatedAt: sp.createdAt}
	for _, f := range []struct {
		dst    *string
		field  string
		sealed []byte
	}{{&p.Name, "name", sp.name}, {&p.Phone, "phone", sp.phone}, {&p.BirthDate, "birth_date", sp.birth}} {
		if f.sealed == nil {
			continue
		}
		pt, err := keys.OpenData(dk, f.sealed, fieldAAD(sp.id, f.field))
		if err != nil {
			return nil, fmt.Errorf("open %s of consumer %s: %w", f.field, sp.id, err)
		}
		*f.dst = string(pt)
	}
	return p, nil
}

// Get returns a person by id, decrypted. Errors: NotFound
// (consumer_not_found) for unknown or erased people.
func (s *Store) Get(ctx context.Context, id string) (*Person, error) {
	if uuid.Validate(id) != nil {
		return nil, apperr.New(apperr.NotFound, ReasonConsumerNotFound, "no consumer id %q", id)
	}
	sp, err := load(ctx, s.pool, "id", id, false)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, sp)
}

// ByAccount returns the person holding account, decrypted. Errors: NotFound
// (account_not_found) for unknown accounts and erased people.
func (s *Store) ByAccount(ctx context.Context, account string) (*Person, error) {
	sp, err := load(ctx, s.pool, "account", account, false)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, sp)
}

// Erasure is what Erase removed.
type Erasure struct {
	Account           string `json:"account"`
	CardLinks         int64  `json:"cardLinks"`         // card-link rows deleted
	ConsentsWithdrawn int64  `json:"consentsWithdrawn"` // live consents marked withdrawn
	AlreadyErased     bool   `json:"alreadyErased"`
}

// Erase erases a person (PIPL Art. 47): in one transaction it deletes their
// wrapped data key, so their sealed fields can never be decrypted again, and
// clears those fields; deletes their card links (intake for the cards stops:
// no_card_link) and notification preferences; marks their live consents
// withdrawn; and tells each bank whose link was deleted with a
// card_link.erased callback. The pseudonymous account id stays in the
// tombstone row and on the ledger, whose history and conservation are
// untouched. Erasing twice is harmless. Errors: NotFound
// (consumer_not_found) for an unknown id.
func (s *Store) Erase(ctx context.Context, id string) (*Erasure, error) {
	if uuid.Validate(id) != nil {
		return nil, apperr.New(apperr.NotFound, ReasonConsumerNotFound, "no consumer id %q", id)
	}
	var e Erasure
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var erased bool
		err := tx.QueryRow(ctx, `SELECT account, erased_at IS NOT NULL FROM consumers WHERE id = $1 FOR UPDATE`, id).Scan(&e.Account, &erased)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return apperr.New(apperr.NotFound, ReasonConsumerNotFound, "no consumer id %q", id)
		case err != nil:
			return fmt.Errorf("lock consumer: %w", err)
		case erased:
			e.AlreadyErased = true
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM consumer_keys WHERE person_id = $1`, id); err != nil {
			return fmt.Errorf("delete data key: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE consumers SET name_sealed = NULL, phone_sealed = NULL, birth_date_sealed = NULL,
			erased_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("clear consumer: %w", err)
		}
		rows, err := tx.Query(ctx, `DELETE FROM card_links WHERE account = $1 RETURNING partner_id, card_token, withdrawn_at IS NULL`, e.Account)
		if err != nil {
			return fmt.Errorf("delete card links: %w", err)
		}
		type gone struct {
			partner, token string
			live           bool
		}
		var links []gone
		for rows.Next() {
			var g gone
			if err := rows.Scan(&g.partner, &g.token, &g.live); err != nil {
				rows.Close()
				return err
			}
			links = append(links, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete card links: %w", err)
		}
		e.CardLinks = int64(len(links))
		for _, g := range links {
			if g.live {
				if err := queueCallback(ctx, tx, g.partner, "card_link.erased", g.token); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM notification_prefs WHERE person_id = $1`, id); err != nil {
			return fmt.Errorf("delete preferences: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE consents SET withdrawn_at = now() WHERE person_id = $1 AND withdrawn_at IS NULL`, id)
		if err != nil {
			return fmt.Errorf("withdraw consents: %w", err)
		}
		e.ConsentsWithdrawn = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

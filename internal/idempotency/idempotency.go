// Package idempotency stores Idempotency-Key records for creating requests,
// after the IETF draft "The Idempotency-Key HTTP Header Field"
// (draft-ietf-httpapi-idempotency-key-header): the first request with a key
// runs and its response is stored; a retry with the same key and the same
// request gets the stored response; the same key with a different request is
// refused; a retry while the first is still running is told to wait.
//
// Keys are scoped to the authenticated subject, so one client can neither
// replay nor block another's request.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Reasons of Begin's errors.
const (
	ReasonKeyReused     = "idempotency_key_reused"      // invalid (422): same key, different request
	ReasonKeyInProgress = "idempotency_key_in_progress" // conflict (409): the first request is still running
	ReasonKeyInvalid    = "idempotency_key_invalid"     // invalid (400): not a usable key
)

// MaxKeyLen bounds a key: the draft recommends UUIDs; 255 leaves room for
// any client's scheme without letting keys become storage.
const MaxKeyLen = 255

// DefaultLease is how long a request may hold its key in progress. A request
// that has not finished by then is taken to have died with its server (a
// crash between Begin and Complete), and the key can be used again.
const DefaultLease = 2 * time.Minute

// Response is a stored response.
type Response struct {
	Status int
	Body   []byte
}

// Store keeps idempotency records in PostgreSQL (table idempotency_keys).
type Store struct {
	pool  *pgxpool.Pool
	lease time.Duration
}

// New returns a Store over pool (migrated).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, lease: DefaultLease} }

// Fingerprint is the request hash a key is bound to: the route and the body.
// The subject is not in it: it scopes the key itself.
func Fingerprint(method, route string, body []byte) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n", method, route, len(body))
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParseKey reads an Idempotency-Key header value. The draft makes it an RFC
// 8941 sf-string ("\"...\""); a bare token is accepted too, since many
// clients send UUIDs unquoted. Only visible ASCII is allowed.
//
// Errors: invalid/idempotency_key_invalid.
func ParseKey(header string) (string, error) {
	k := header
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" || len(k) > MaxKeyLen {
		return "", apperr.New(apperr.Invalid, ReasonKeyInvalid, "Idempotency-Key must be 1 to %d characters", MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\' {
			return "", apperr.New(apperr.Invalid, ReasonKeyInvalid, "Idempotency-Key must be printable ASCII without quotes or backslashes")
		}
	}
	return k, nil
}

// Begin claims (subject, key) for a request with fingerprint fp on route.
// It returns (nil, nil) when the caller now owns the key and must call
// Complete or Release; a stored *Response when the same request already
// completed (replay it).
//
// Errors: invalid/idempotency_key_reused when the key was used for another
// request (a different body or route); conflict/idempotency_key_in_progress
// while the first request with the key is still running.
func (s *Store) Begin(ctx context.Context, subject, key, route string, fp [32]byte) (*Response, error) {
	for range 3 { // a row deleted or expired between our statements: try again
		tag, err := s.pool.Exec(ctx, `INSERT INTO idempotency_keys (subject, key, route, request_hash, state, locked_until)
			VALUES ($1, $2, $3, $4, 'in_progress', now() + make_interval(secs => $5))
			ON CONFLICT (subject, key) DO NOTHING`, subject, key, route, fp[:], s.lease.Seconds())
		if err != nil {
			return nil, fmt.Errorf("idempotency: claiming key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil, nil
		}
		var (
			gotRoute, state string
			hash, body      []byte
			status          *int
			expired         bool
		)
		err = s.pool.QueryRow(ctx, `SELECT route, request_hash, state, status, body, locked_until < now()
			FROM idempotency_keys WHERE subject = $1 AND key = $2`, subject, key).
			Scan(&gotRoute, &hash, &state, &status, &body, &expired)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: reading key: %w", err)
		}
		if gotRoute != route || string(hash) != string(fp[:]) {
			return nil, apperr.New(apperr.Invalid, ReasonKeyReused,
				"this Idempotency-Key was already used for a different request; use a new key for a new request")
		}
		if state == "done" {
			return &Response{Status: *status, Body: body}, nil
		}
		if !expired {
			return nil, apperr.New(apperr.Conflict, ReasonKeyInProgress,
				"a request with this Idempotency-Key is still being processed; retry later")
		}
		// An abandoned claim: take it over, if nobody else did meanwhile.
		tag, err = s.pool.Exec(ctx, `UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3)
			WHERE subject = $1 AND key = $2 AND state = 'in_progress' AND locked_until < now()`, subject, key, s.lease.Seconds())
		if err != nil {
			return nil, fmt.Errorf("idempotency: taking over key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil, nil
		}
	}
	return nil, apperr.New(apperr.Conflict, ReasonKeyInProgress, "a request with this Idempotency-Key is being processed concurrently; retry later")
}

// Complete stores the response of the request that owns (subject, key).
func (s *Store) Complete(ctx context.Context, subject, key string, status int, body []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET state = 'done', status = $3, body = $4, completed_at = now()
		WHERE subject = $1 AND key = $2 AND state = 'in_progress'`, subject, key, status, body)
	return checkOne(tag, err, "storing the response of")
}

// Release gives the key up without a stored response: the request failed
// before changing anything (the ledger refused it), so a retry with the same
// key may run again.
func (s *Store) Release(ctx context.Context, subject, key string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND state = 'in_progress'`, subject, key)
	return checkOne(tag, err, "releasing")
}

func checkOne(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("idempotency: %s a key: %w", what, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("idempotency: %s a key: it is no longer in progress (its lease expired)", what)
	}
	return nil
}

// DeleteBefore deletes records created before t, for the retention job: a
// client retries within minutes, not months.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1 AND state = 'done'`, t)
	if err != nil {
		return 0, fmt.Errorf("idempotency: deleting old keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

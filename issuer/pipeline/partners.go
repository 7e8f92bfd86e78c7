package pipeline

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/webhook"
)

// Partner kinds.
const (
	KindBank            = "bank"
	KindTransitOperator = "transit_operator"
	KindRetailer        = "retailer"
)

// Partner is a bank, transit operator or retailer that reports evidence.
type Partner struct {
	ID             string
	Kind           string
	Name           string
	USCC           string
	Sandbox        bool
	Status         string // active | suspended
	CallbackURL    string
	RatePerSecond  int
	RateBurst      int
	AvgBusMeters   int64 // transit operators: published average trip distance
	AvgMetroMeters int64
	AvgSource      string
}

// PartnerKeys is a partner with its active verification keys, decrypted.
type PartnerKeys struct {
	Partner
	Keys []webhook.Key
}

// Partners is the partner registry. v1 (HMAC) secrets are sealed under a
// per-secret data key wrapped by the key manager's key-encryption key: the
// database alone never reveals a secret. Active keys are cached for a short
// time so that verifying a request costs no database round trip; a retired
// key stops verifying within CacheTTL.
type Partners struct {
	pool  *pgxpool.Pool
	km    keys.Manager
	ttl   time.Duration
	mu    sync.Mutex
	cache map[string]cachedPartner
}

type cachedPartner struct {
	p   *PartnerKeys
	exp time.Time
}

// CacheTTL bounds how long a retired key or a suspension takes to apply.
const CacheTTL = 15 * time.Second

// NewPartners returns the registry over pool.
func NewPartners(pool *pgxpool.Pool, km keys.Manager) *Partners {
	return &Partners{pool: pool, km: km, ttl: CacheTTL, cache: map[string]cachedPartner{}}
}

// Create registers a partner. Errors: Invalid, Conflict (partner_exists).
func (r *Partners) Create(ctx context.Context, p Partner) error {
	switch p.Kind {
	case KindBank, KindTransitOperator, KindRetailer:
	default:
		return apperr.New(apperr.Invalid, "invalid_partner_kind", "kind must be bank, transit_operator or retailer")
	}
	if p.RatePerSecond <= 0 {
		p.RatePerSecond = 200
	}
	if p.RateBurst <= 0 {
		p.RateBurst = 2 * p.RatePerSecond
	}
	if p.Status == "" {
		p.Status = "active"
	}
	tag, err := r.pool.Exec(ctx, `
		INSERT INTO partners (id, kind, name, uscc, sandbox, status, callback_url, rate_per_second, rate_burst,
		                      avg_bus_meters, avg_metro_meters, avg_source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO NOTHING`,
		p.ID, p.Kind, p.Name, p.USCC, p.Sandbox, p.Status, p.CallbackURL, p.RatePerSecond, p.RateBurst,
		p.AvgBusMeters, p.AvgMetroMeters, p.AvgSource)
	if err != nil {
		return fmt.Errorf("insert partner %s: %w", p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.New(apperr.Conflict, "partner_exists", "partner %q already exists", p.ID)
	}
	return nil
}

// secretAAD binds a sealed secret to its partner and key id, so a sealed
// secret copied to another row does not open.
func secretAAD(partner, keyID string) []byte {
	return []byte("greenpoints/partner-secret/" + partner + "/" + keyID)
}

// AddSecret stores a v1 (HMAC-SHA256) secret for the partner, sealed.
func (r *Partners) AddSecret(ctx context.Context, partner, keyID string, secret []byte) error {
	dek, err := keys.NewDataKey()
	if err != nil {
		return err
	}
	aad := secretAAD(partner, keyID)
	sealed, err := keys.SealData(dek, secret, aad)
	if err != nil {
		return fmt.Errorf("seal partner secret: %w", err)
	}
	wrapped, err := r.km.WrapKey(ctx, dek, aad)
	if err != nil {
		return fmt.Errorf("wrap partner secret key: %w", err)
	}
	return r.insertKey(ctx, partner, keyID, "v1", nil, wrapped, sealed)
}

// AddPublicKey stores a v1a (Ed25519) public key for the partner.
func (r *Partners) AddPublicKey(ctx context.Context, partner, keyID string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return apperr.New(apperr.Invalid, "invalid_public_key", "an Ed25519 public key has %d bytes", ed25519.PublicKeySize)
	}
	return r.insertKey(ctx, partner, keyID, "v1a", pub, nil, nil)
}

// MaxActiveKeys is how many keys a partner may have active at once: the old
// and the new one during a rotation.
const MaxActiveKeys = 2

func (r *Partners) insertKey(ctx context.Context, partner, keyID, scheme string, pub, wrapped, sealed []byte) error {
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Lock the partner row so two concurrent rotations cannot both pass the count.
		var found string
		if err := tx.QueryRow(ctx, `SELECT id FROM partners WHERE id = $1 FOR UPDATE`, partner).Scan(&found); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return apperr.New(apperr.NotFound, "partner_not_found", "no partner %q", partner)
			}
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM partner_keys WHERE partner_id = $1 AND status = 'active'`,
			partner).Scan(&n); err != nil {
			return err
		}
		if n >= MaxActiveKeys {
			return apperr.New(apperr.Conflict, "too_many_active_keys", "partner %q already has %d active keys: retire one first", partner, n)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO partner_keys (partner_id, key_id, scheme, public_key, wrapped_dek, sealed_secret)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, partner, keyID, scheme, pub, wrapped, sealed)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return apperr.New(apperr.Conflict, "key_exists", "partner %q already has a key %q", partner, keyID)
		}
		return nil
	})
	r.forget(partner)
	return err
}

// RetireKey stops a key from verifying (within CacheTTL on every instance).
func (r *Partners) RetireKey(ctx context.Context, partner, keyID string) error {
	tag, err := r.pool.Exec(ctx, `UPDATE partner_keys SET status = 'retired', retired_at = now()
		WHERE partner_id = $1 AND key_id = $2 AND status = 'active'`, partner, keyID)
	if err != nil {
		return fmt.Errorf("retire key: %w", err)
	}
	r.forget(partner)
	if tag.RowsAffected() == 0 {
		return apperr.New(apperr.NotFound, "key_not_found", "partner %q has no active key %q", partner, keyID)
	}
	return nil
}

func (r *Partners) forget(partner string) {
	r.mu.Lock()
	delete(r.cache, partner)
	r.mu.Unlock()
}

// Get returns the partner with its active keys. Errors: NotFound
// (partner_not_found), Forbidden (partner_suspended).
func (r *Partners) Get(ctx context.Context, id string) (*PartnerKeys, error) {
	now := time.Now()
	r.mu.Lock()
	c, ok := r.cache[id]
	r.mu.Unlock()
	if !ok || now.After(c.exp) {
		p, err := r.load(ctx, id)
		if err != nil {
			return nil, err
		}
		c = cachedPartner{p: p, exp: now.Add(r.ttl)}
		r.mu.Lock()
		r.cache[id] = c
		r.mu.Unlock()
	}
	if c.p.Status != "active" {
		return nil, apperr.New(apperr.Forbidden, "partner_suspended", "partner %q is suspended", id)
	}
	return c.p, nil
}

func (r *Partners) load(ctx context.Context, id string) (*PartnerKeys, error) {
	p := &PartnerKeys{}
	err := r.pool.QueryRow(ctx, `SELECT id, kind, name, uscc, sandbox, status, callback_url, rate_per_second,
		rate_burst, avg_bus_meters, avg_metro_meters, avg_source FROM partners WHERE id = $1`, id).Scan(
		&p.ID, &p.Kind, &p.Name, &p.USCC, &p.Sandbox, &p.Status, &p.CallbackURL, &p.RatePerSecond,
		&p.RateBurst, &p.AvgBusMeters, &p.AvgMetroMeters, &p.AvgSource)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "partner_not_found", "no partner %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load partner %s: %w", id, err)
	}
	rows, err := r.pool.Query(ctx, `SELECT key_id, scheme, public_key, wrapped_dek, sealed_secret
		FROM partner_keys WHERE partner_id = $1 AND status = 'active' ORDER BY created_at`, id)
	if err != nil {
		return nil, fmt.Errorf("load partner keys %s: %w", id, err)
	}
	type row struct {
		keyID, scheme        string
		pub, wrapped, sealed []byte
	}
	var ks []row
	for rows.Next() {
		var k row
		if err := rows.Scan(&k.keyID, &k.scheme, &k.pub, &k.wrapped, &k.sealed); err != nil {
			rows.Close()
			return nil, err
		}
		ks = append(ks, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, k := range ks {
		if k.scheme == "v1a" {
			p.Keys = append(p.Keys, webhook.Key{ID: k.keyID, Public: ed25519.PublicKey(k.pub)})
			continue
		}
		aad := secretAAD(id, k.keyID)
		dek, err := r.km.UnwrapKey(ctx, k.wrapped, aad)
		if err != nil {
			return nil, fmt.Errorf("unwrap secret key of partner %s key %s: %w", id, k.keyID, err)
		}
		secret, err := keys.OpenData(dek, k.sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("open secret of partner %s key %s: %w", id, k.keyID, err)
		}
		p.Keys = append(p.Keys, webhook.Key{ID: k.keyID, Secret: secret})
	}
	return p, nil
}

// ByUSCC finds the active transit operator with a unified social credit
// code, for card payments that carry an operator's ride-level trip id.
func (r *Partners) ByUSCC(ctx context.Context, q pgx.Tx, uscc string) (*Partner, error) {
	p := &Partner{}
	err := q.QueryRow(ctx, `SELECT id, kind, uscc, avg_bus_meters, avg_metro_meters, avg_source
		FROM partners WHERE uscc = $1 AND kind = 'transit_operator' AND status = 'active' ORDER BY id LIMIT 1`, uscc).Scan(
		&p.ID, &p.Kind, &p.USCC, &p.AvgBusMeters, &p.AvgMetroMeters, &p.AvgSource)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return p, err
}

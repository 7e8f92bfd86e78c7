package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greenpoints/greenpoints/internal/keys"
)

// DefaultTokenTTL is the lifetime of a development token: long enough to
// try the demo, short enough that a leaked one soon stops working.
const DefaultTokenTTL = time.Hour

// MaxTokenTTL bounds what the development issuer mints.
const MaxTokenTTL = 24 * time.Hour

// Minter mints development tokens: EdDSA JWTs signed by the key manager's
// DevKeyName key. It is the demo's stand-in for an identity provider.
type Minter struct {
	signer   crypto.Signer
	kid      keys.KeyID
	issuer   string
	audience string
}

// NewDevMinter returns a Minter over the key manager's current token key
// (creating it on first use, as the file key manager does).
func NewDevMinter(ctx context.Context, km keys.Manager, issuer, audience string) (*Minter, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("auth: a minter needs an issuer and an audience")
	}
	s, id, err := km.Signer(ctx, DevKeyName)
	if err != nil {
		return nil, fmt.Errorf("development token key: %w", err)
	}
	return &Minter{signer: s, kid: id, issuer: issuer, audience: audience}, nil
}

// KeyID is the kid of the tokens this Minter signs.
func (m *Minter) KeyID() keys.KeyID { return m.kid }

// Mint returns a token for subject valid from now for ttl (0 means
// DefaultTokenTTL; at most MaxTokenTTL). A negative ttl mints an already
// expired token, which tests use.
func (m *Minter) Mint(subject string, now time.Time, ttl time.Duration) (string, error) {
	if !ValidSubject(subject) {
		return "", fmt.Errorf("auth: subject %q is not an account id ([A-Za-z0-9._:-], 1 to 128 characters)", subject)
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > MaxTokenTTL {
		return "", fmt.Errorf("auth: a development token lives at most %s", MaxTokenTTL)
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	iat := now
	if ttl < 0 { // keep iat before exp so only "expired" is wrong with the token
		iat = now.Add(2 * ttl)
	}
	claims := jwt.RegisteredClaims{
		Issuer:    m.issuer,
		Subject:   subject,
		Audience:  jwt.ClaimStrings{m.audience},
		IssuedAt:  jwt.NewNumericDate(iat),
		NotBefore: jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        hex.EncodeToString(jti[:]),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = string(m.kid)
	s, err := t.SignedString(m.signer)
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return s, nil
}

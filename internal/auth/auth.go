// Package auth authenticates consumers: it verifies the bearer JWTs of the
// consumers' API against a configured key set (a JWKS file, a JWKS URL, or,
// for the demo only, the key manager's token key) and mints development
// tokens for the demo users.
//
// The token's subject is the consumer's pseudonymous ledger account id; it is
// the only source of the account a consumer request acts on.
package auth

import (
	"context"
	"crypto"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Reasons of Verify's errors (all with code Unauthorized). Clients may switch
// on them: token_expired means "refresh", the others mean "log in again" or
// "fix the client".
const (
	ReasonTokenMissing          = "token_missing"
	ReasonTokenMalformed        = "token_malformed"
	ReasonTokenExpired          = "token_expired"
	ReasonTokenNotYetValid      = "token_not_yet_valid"
	ReasonTokenSignatureInvalid = "token_signature_invalid"
	ReasonTokenKeyUnknown       = "token_key_unknown"
	ReasonTokenIssuerInvalid    = "token_issuer_invalid"
	ReasonTokenAudienceInvalid  = "token_audience_invalid"
	ReasonTokenSubjectInvalid   = "token_subject_invalid"
	ReasonTokenClaimsInvalid    = "token_claims_invalid"
)

// Defaults of the development issuer, which the demo uses out of the box.
const (
	DefaultIssuer   = "https://greenpoints.dev/demo-issuer"
	DefaultAudience = "greenpoints-consumer-api"
	// DevKeyName is the key manager's name of the development token key.
	DevKeyName = "consumer-tokens"
	// DefaultLeeway absorbs clock skew between the token issuer and us.
	DefaultLeeway = 30 * time.Second
	// MaxTokenBytes bounds what Verify parses: a bearer token is a few hundred
	// bytes; a megabyte header is an attack on the parser.
	MaxTokenBytes = 8 << 10
)

// Algorithms are the signature algorithms accepted: asymmetric only, so that
// holding the verification keys never lets anyone mint tokens, and never
// "none".
var Algorithms = []string{"EdDSA", "ES256", "RS256"}

// KeySet resolves a token's key id (the JWS "kid" header) to a public key.
//
// Errors: a not-found *apperr.Error when kid is unknown; anything else is a
// failure to load keys (an unreachable JWKS URL, for instance).
type KeySet interface {
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Issuer   string           // required "iss"
	Audience string           // required in "aud"
	Keys     KeySet           // required
	Leeway   time.Duration    // clock skew allowed on exp, nbf and iat; 0 means DefaultLeeway
	Now      func() time.Time // nil means time.Now
}

// Verifier verifies consumer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg VerifierConfig
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("auth: no token issuer configured (--jwt-issuer)")
	case cfg.Audience == "":
		return nil, errors.New("auth: no token audience configured (--jwt-audience)")
	case cfg.Keys == nil:
		return nil, errors.New("auth: no token key set configured (--jwt-keys-file or --jwks-url)")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg}, nil
}

// Principal is an authenticated consumer.
type Principal struct {
	Subject   string    // the pseudonymous ledger account id
	TokenID   string    // "jti", if the token has one
	ExpiresAt time.Time // "exp"
}

// Verify checks a compact JWS token: an accepted algorithm, a known key and a
// valid signature, the configured issuer and audience, exp (required), nbf
// and iat, and a subject usable as an account id.
//
// Errors: unauthorized with one of the Reason* codes above; unavailable when
// the key set cannot be loaded.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, apperr.New(apperr.Unauthorized, ReasonTokenMissing, "a bearer token is required")
	}
	if len(token) > MaxTokenBytes {
		return nil, apperr.New(apperr.Unauthorized, ReasonTokenMalformed, "the bearer token is longer than %d bytes", MaxTokenBytes)
	}
	var keyErr error
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = apperr.New(apperr.Unauthorized, ReasonTokenKeyUnknown, "the token names no key (kid)")
			return nil, keyErr
		}
		k, err := v.cfg.Keys.PublicKey(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return k, nil
	},
		jwt.WithValidMethods(Algorithms),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
		jwt.WithStrictDecoding(),
	)
	if err != nil {
		return nil, verifyError(err, keyErr)
	}
	if !ValidSubject(claims.Subject) {
		return nil, apperr.New(apperr.Unauthorized, ReasonTokenSubjectInvalid, "the token's subject is not an account id")
	}
	return &Principal{Subject: claims.Subject, TokenID: claims.ID, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// verifyError turns the JWT library's errors into reasons. The order matters:
// the library joins several errors, and the most actionable one wins.
func verifyError(err, keyErr error) error {
	if keyErr != nil {
		if e := apperr.As(keyErr); e != nil {
			switch e.Code {
			case apperr.Unauthorized:
				return e
			case apperr.NotFound:
				return apperr.Wrap(keyErr, apperr.Unauthorized, ReasonTokenKeyUnknown, "the token is signed with a key we do not know")
			}
		}
		return apperr.Wrap(keyErr, apperr.Unavailable, "token_keys_unavailable", "the token keys could not be loaded; retry later")
	}
	reason, detail := ReasonTokenClaimsInvalid, "the token's claims are invalid"
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason, detail = ReasonTokenMalformed, "the bearer token is not a well-formed JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable),
		errors.Is(err, jwt.ErrInvalidKeyType), errors.Is(err, jwt.ErrInvalidKey):
		reason, detail = ReasonTokenSignatureInvalid, "the token's signature does not verify"
	case errors.Is(err, jwt.ErrTokenExpired):
		reason, detail = ReasonTokenExpired, "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason, detail = ReasonTokenNotYetValid, "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason, detail = ReasonTokenIssuerInvalid, "the token was issued by an issuer we do not trust"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason, detail = ReasonTokenAudienceInvalid, "the token is not meant for this API"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason, detail = ReasonTokenClaimsInvalid, "the token lacks a required claim (exp, iss or aud)"
	}
	return apperr.Wrap(err, apperr.Unauthorized, reason, "%s", detail)
}

// ValidSubject reports whether sub can be a ledger account id: the
// contract's id alphabet [A-Za-z0-9._:-], 1 to 128 characters.
func ValidSubject(sub string) bool {
	if sub == "" || len(sub) > 128 {
		return false
	}
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

// BearerToken extracts the token of an Authorization header value
// ("Bearer <token>", scheme case-insensitive per RFC 9110).
func BearerToken(header string) (string, error) {
	if header == "" {
		return "", apperr.New(apperr.Unauthorized, ReasonTokenMissing, "an Authorization: Bearer token is required")
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", apperr.New(apperr.Unauthorized, ReasonTokenMalformed, "the Authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// errKeyNotFound is what key sets return for an unknown kid.
func errKeyNotFound(kid string) error {
	if len(kid) > 64 {
		kid = kid[:64] + "..."
	}
	return apperr.New(apperr.NotFound, "key_not_found", "no token key %q", kid)
}

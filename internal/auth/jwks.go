package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// Bounds of key sets: a JWKS document is small; anything larger is not one.
const (
	maxJWKSBytes = 256 << 10
	maxJWKSKeys  = 100
	minRSABits   = 2048
)

// JWK is one JSON Web Key (RFC 7517) of the kinds we accept: OKP/Ed25519,
// EC/P-256 and RSA public keys.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// StaticKeys is a fixed key set, from a JWKS document.
type StaticKeys struct {
	keys map[string]crypto.PublicKey
}

// PublicKey implements KeySet.
func (s *StaticKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, errKeyNotFound(kid)
}

// ParseJWKS parses a JWKS document. Keys for other uses than signatures
// ("use" other than "sig") are skipped; a signing key of an unsupported kind
// or without a kid is an error, so a misconfiguration shows at start-up.
func ParseJWKS(data []byte) (*StaticKeys, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS document is larger than %d bytes", maxJWKSBytes)
	}
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS document: %w", err)
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("JWKS document has %d keys; at most %d are accepted", len(set.Keys), maxJWKSKeys)
	}
	s := &StaticKeys{keys: map[string]crypto.PublicKey{}}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("JWKS key %d has no kid", i)
		}
		if _, dup := s.keys[k.Kid]; dup {
			return nil, fmt.Errorf("JWKS key id %q appears twice", k.Kid)
		}
		pub, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %q: %w", k.Kid, err)
		}
		s.keys[k.Kid] = pub
	}
	if len(s.keys) == 0 {
		return nil, errors.New("JWKS document has no signing keys")
	}
	return s, nil
}

// LoadJWKSFile reads a JWKS document from a file.
func LoadJWKSFile(path string) (*StaticKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token keys file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("token keys file: %w", err)
	}
	return ParseJWKS(data)
}

func b64(field, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s is not base64url", field)
	}
	return b, nil
}

func (k JWK) publicKey() (crypto.PublicKey, error) {
	switch {
	case k.Kty == "OKP" && k.Crv == "Ed25519" && (k.Alg == "" || k.Alg == "EdDSA"):
		x, err := b64("x", k.X)
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("an Ed25519 key has 32 bytes")
		}
		return ed25519.PublicKey(x), nil
	case k.Kty == "EC" && k.Crv == "P-256" && (k.Alg == "" || k.Alg == "ES256"):
		x, err := b64("x", k.X)
		if err != nil {
			return nil, err
		}
		y, err := b64("y", k.Y)
		if err != nil {
			return nil, err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("a P-256 key has 32-byte coordinates")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve;
		// a hand-built ecdsa.PublicKey would not be checked.
		return ecdsaFromUncompressed(append(append([]byte{4}, x...), y...))
	case k.Kty == "RSA" && (k.Alg == "" || k.Alg == "RS256"):
		n, err := b64("n", k.N)
		if err != nil {
			return nil, err
		}
		e, err := b64("e", k.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New("RSA exponent too large")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("RSA keys need at least %d bits and an odd exponent >= 3", minRSABits)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported key kind kty=%q crv=%q alg=%q (accepted: OKP/Ed25519, EC/P-256, RSA)", k.Kty, k.Crv, k.Alg)
}

func ecdsaFromUncompressed(raw []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("P-256 key: %w", err)
	}
	return pub, nil
}

// MarshalJWKS writes a JWKS document of Ed25519 public keys: what
// `greenpoints token --jwks` prints so that another deployment can be
// configured to trust the development issuer with --jwt-keys-file.
func MarshalJWKS(keys map[string]ed25519.PublicKey) ([]byte, error) {
	set := JWKS{Keys: []JWK{}}
	for kid, pub := range keys {
		set.Keys = append(set.Keys, JWK{Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: kid,
			X: base64.RawURLEncoding.EncodeToString(pub)})
	}
	return json.MarshalIndent(set, "", "  ")
}

// RemoteJWKS is a key set fetched from a URL (an identity provider's
// jwks_uri). It refreshes after MaxAge, and at once when a token names an
// unknown kid (a key rotation), but at most once per MinRefresh so that
// tokens with made-up kids cannot make us hammer the provider.
type RemoteJWKS struct {
	URL        string
	Client     *http.Client  // nil means a client with a 10 s timeout
	MaxAge     time.Duration // 0 means 1 hour
	MinRefresh time.Duration // 0 means 1 minute

	mu      sync.Mutex
	keys    *StaticKeys
	fetched time.Time
}

// PublicKey implements KeySet.
func (r *RemoteJWKS) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock() // one fetch at a time; others wait for its result
	maxAge, minRefresh := r.MaxAge, r.MinRefresh
	if maxAge <= 0 {
		maxAge = time.Hour
	}
	if minRefresh <= 0 {
		minRefresh = time.Minute
	}
	now := time.Now()
	if r.keys != nil && now.Sub(r.fetched) < maxAge {
		if k, err := r.keys.PublicKey(ctx, kid); err == nil || now.Sub(r.fetched) < minRefresh {
			return k, err
		}
	}
	ks, err := r.fetch(ctx)
	if err != nil {
		if r.keys != nil { // a provider outage must not log every consumer out
			return r.keys.PublicKey(ctx, kid)
		}
		return nil, err
	}
	r.keys, r.fetched = ks, now
	return ks.PublicKey(ctx, kid)
}

func (r *RemoteJWKS) fetch(ctx context.Context) (*StaticKeys, error) {
	client := r.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS URL: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	return ParseJWKS(data)
}

// ManagerKeys is the development issuer's key set: the versions of the key
// manager's signing key name. The token's kid is the key manager's KeyID
// ("consumer-tokens/v2"), so rotated keys keep verifying the tokens they
// signed. Demo only: in production tokens come from an identity provider.
type ManagerKeys struct {
	Manager keys.Manager
	Name    string
}

// PublicKey implements KeySet.
func (m ManagerKeys) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	name, _, ok := cutVersion(kid)
	if !ok || name != m.Name {
		return nil, errKeyNotFound(kid)
	}
	pub, err := m.Manager.PublicKey(ctx, keys.KeyID(kid))
	if errors.Is(err, keys.ErrNotFound) || errors.Is(err, keys.ErrInvalidName) || errors.Is(err, keys.ErrMalformed) {
		return nil, errKeyNotFound(kid)
	}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Unavailable, "token_keys_unavailable", "the token keys could not be loaded")
	}
	return pub, nil
}

// cutVersion splits "name/v3".
func cutVersion(kid string) (name, version string, ok bool) {
	for i := len(kid) - 1; i >= 0; i-- {
		if kid[i] == '/' {
			return kid[:i], kid[i+1:], i > 0 && i < len(kid)-1
		}
	}
	return "", "", false
}

package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// devSetup returns a minter and a verifier over a fresh file key manager.
func devSetup(t *testing.T) (*Minter, *Verifier, keys.Manager) {
	t.Helper()
	km, err := keys.NewFileManager(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDevMinter(t.Context(), km, DefaultIssuer, DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Issuer: DefaultIssuer, Audience: DefaultAudience, Keys: ManagerKeys{Manager: km, Name: DevKeyName}})
	if err != nil {
		t.Fatal(err)
	}
	return m, v, km
}

func TestMintAndVerify(t *testing.T) {
	t.Parallel()
	m, v, _ := devSetup(t)
	now := time.Now()
	tok, err := m.Mint("demo-alice", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "demo-alice" || p.TokenID == "" || p.ExpiresAt.Unix() != now.Add(time.Hour).Unix() {
		t.Errorf("principal = %+v", p)
	}
}

// signWith signs claims with an arbitrary key and method, for the tokens
// the minter would never make.
func signWith(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	m, v, _ := devSetup(t)
	now := time.Now()
	good, err := m.Mint("demo-alice", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := m.Mint("demo-alice", now, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	claims := func(mut func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{Issuer: DefaultIssuer, Subject: "demo-alice", Audience: jwt.ClaimStrings{DefaultAudience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	kid := string(m.KeyID())
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"demo-bob"}`)) + "." + parts[2]
	noneTok := signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil))
	// Algorithm confusion: HMAC keyed with the public key must not verify.
	hsTok := signWith(t, jwt.SigningMethodHS256, []byte(m.signer.Public().(ed25519.PublicKey)), kid, claims(nil))
	tests := []struct {
		name, token, reason string
	}{
		{"empty", "", ReasonTokenMissing},
		{"garbage", "not.a.jwt", ReasonTokenMalformed},
		{"expired", expired, ReasonTokenExpired},
		{"tampered payload", tampered, ReasonTokenSignatureInvalid},
		{"signed by a stranger under our kid", signWith(t, jwt.SigningMethodEdDSA, strangerKey, kid, claims(nil)), ReasonTokenSignatureInvalid},
		{"unknown kid", signWith(t, jwt.SigningMethodEdDSA, strangerKey, "consumer-tokens/v9", claims(nil)), ReasonTokenKeyUnknown},
		{"other key name", signWith(t, jwt.SigningMethodEdDSA, strangerKey, "ledger-blocks/v1", claims(nil)), ReasonTokenKeyUnknown},
		{"no kid", signWith(t, jwt.SigningMethodEdDSA, strangerKey, "", claims(nil)), ReasonTokenKeyUnknown},
		{"alg none", noneTok, ReasonTokenSignatureInvalid},
		{"alg HS256 with the public key", hsTok, ReasonTokenSignatureInvalid},
		{"wrong issuer", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" })), ReasonTokenIssuerInvalid},
		{"wrong audience", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other-api"} })), ReasonTokenAudienceInvalid},
		{"no exp", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })), ReasonTokenClaimsInvalid},
		{"not yet valid", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), ReasonTokenNotYetValid},
		{"subject not an account id", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.Subject = "alice@example.com" })), ReasonTokenSubjectInvalid},
		{"no subject", m.mintClaims(t, claims(func(c *jwt.RegisteredClaims) { c.Subject = "" })), ReasonTokenSubjectInvalid},
		{"oversized", strings.Repeat("a", MaxTokenBytes+1), ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(t.Context(), tt.token)
			if apperr.CodeOf(err) != apperr.Unauthorized || apperr.ReasonOf(err) != tt.reason {
				t.Errorf("Verify = %v, want unauthorized/%s", err, tt.reason)
			}
		})
	}
}

// mintClaims signs arbitrary claims with the minter's key (tests only).
func (m *Minter) mintClaims(t *testing.T, c jwt.RegisteredClaims) string {
	t.Helper()
	return signWith(t, jwt.SigningMethodEdDSA, m.signer, string(m.kid), c)
}

func TestJWKSFileAndES256(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	raw, _ := ec.PublicKey.Bytes() // uncompressed point: 0x04 || X || Y
	doc, _ := json.Marshal(JWKS{Keys: []JWK{
		{Kty: "EC", Crv: "P-256", Kid: "ec-1", Use: "sig", X: base64.RawURLEncoding.EncodeToString(raw[1:33]), Y: base64.RawURLEncoding.EncodeToString(raw[33:])},
		{Kty: "OKP", Crv: "Ed25519", Kid: "ed-1", X: base64.RawURLEncoding.EncodeToString(edPub)},
		{Kty: "oct", Kid: "enc-1", Use: "enc"}, // not for signatures: skipped
	}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadJWKSFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Issuer: "iss", Audience: "aud", Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.RegisteredClaims{Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, Subject: "c-1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	for _, tok := range []string{signWith(t, jwt.SigningMethodES256, ec, "ec-1", c), signWith(t, jwt.SigningMethodEdDSA, edPriv, "ed-1", c)} {
		if p, err := v.Verify(t.Context(), tok); err != nil || p.Subject != "c-1" {
			t.Errorf("Verify = %+v, %v", p, err)
		}
	}
	// An EdDSA token naming the EC key: the key type decides, not the header.
	if _, err := v.Verify(t.Context(), signWith(t, jwt.SigningMethodEdDSA, edPriv, "ec-1", c)); apperr.ReasonOf(err) != ReasonTokenSignatureInvalid {
		t.Errorf("EdDSA token under an EC key: %v", err)
	}

	for name, bad := range map[string]string{
		"no keys":       `{"keys":[]}`,
		"no kid":        `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(edPub) + `"}]}`,
		"short ed25519": `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"AAAA"}]}`,
		"off-curve EC":  `{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`,
		"HMAC key":      `{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}`,
		"not JSON":      `{`,
	} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s: ParseJWKS accepted it", name)
		}
	}
}

func TestRemoteJWKSRefreshesOnUnknownKid(t *testing.T) {
	t.Parallel()
	pub1, priv1, _ := ed25519.GenerateKey(rand.Reader)
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	var fetches atomic.Int32
	var rotated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		k := map[string]ed25519.PublicKey{"k1": pub1}
		if rotated.Load() {
			k["k2"] = pub2
		}
		doc, _ := MarshalJWKS(k)
		w.Write(doc)
	}))
	defer srv.Close()
	// MinRefresh 1ns: every unknown kid may refetch, so the test needs no clock.
	ks := &RemoteJWKS{URL: srv.URL, MinRefresh: time.Nanosecond}
	v, _ := NewVerifier(VerifierConfig{Issuer: "iss", Audience: "aud", Keys: ks})
	c := jwt.RegisteredClaims{Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, Subject: "c-1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	if _, err := v.Verify(t.Context(), signWith(t, jwt.SigningMethodEdDSA, priv1, "k1", c)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), signWith(t, jwt.SigningMethodEdDSA, priv1, "k1", c)); err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for a known kid, want 1 (cached)", n)
	}
	rotated.Store(true)
	if _, err := v.Verify(t.Context(), signWith(t, jwt.SigningMethodEdDSA, priv2, "k2", c)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// Default MinRefresh: a made-up kid right after a fetch does not refetch.
	slow := &RemoteJWKS{URL: srv.URL}
	v2, _ := NewVerifier(VerifierConfig{Issuer: "iss", Audience: "aud", Keys: slow})
	before := fetches.Load()
	for range 5 {
		_, err := v2.Verify(t.Context(), signWith(t, jwt.SigningMethodEdDSA, priv1, "made-up", c))
		if apperr.ReasonOf(err) != ReasonTokenKeyUnknown {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if n := fetches.Load() - before; n != 1 {
		t.Errorf("%d fetches for 5 made-up kids, want 1", n)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc"} {
		if got, err := BearerToken(h); err != nil || got != want {
			t.Errorf("BearerToken(%q) = %q, %v", h, got, err)
		}
	}
	for h, reason := range map[string]string{"": ReasonTokenMissing, "Basic abc": ReasonTokenMalformed, "Bearer": ReasonTokenMalformed, "Bearer  ": ReasonTokenMalformed} {
		if _, err := BearerToken(h); apperr.ReasonOf(err) != reason {
			t.Errorf("BearerToken(%q) = %v, want %s", h, err, reason)
		}
	}
}

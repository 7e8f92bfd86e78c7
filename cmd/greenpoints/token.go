package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"time"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/auth"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/keys"
)

const tokenSynopsis = `Prints a consumer bearer token from the development token issuer, signed
with the 'consumer-tokens' key of the key directory the server uses (the
demo prints it). The subject is the consumer's ledger account id:

  TOKEN=$(greenpoints token --subject demo-alice --keys-dir DIR)
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/me/balance

With --jwks it prints the public key set instead, for a server configured
with --jwt-keys-file. Demo and development only: in production consumer
tokens come from an identity provider.`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", tokenSynopsis, stderr)
	var (
		subject, keysDir, issuer, audience string
		ttl                                time.Duration
		jwks                               bool
	)
	b := config.NewBinder(fs)
	b.String(&subject, "subject", "", "", "the consumer's ledger account id, e.g. demo-alice (required unless --jwks)")
	b.String(&keysDir, "keys-dir", "GREENPOINTS_KEYS_DIR", "data/keys", "directory of the development file key manager (the server's --keys-dir)")
	b.String(&issuer, "jwt-issuer", "GREENPOINTS_JWT_ISSUER", auth.DefaultIssuer, "the token's \"iss\" (the server's --jwt-issuer)")
	b.String(&audience, "jwt-audience", "GREENPOINTS_JWT_AUDIENCE", auth.DefaultAudience, "the token's \"aud\" (the server's --jwt-audience)")
	b.Duration(&ttl, "ttl", "", auth.DefaultTokenTTL, fmt.Sprintf("how long the token is valid, at most %s", auth.MaxTokenTTL))
	b.Bool(&jwks, "jwks", "", false, "print the development issuer's public keys as a JWKS document instead of a token")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if !jwks && subject == "" {
		fmt.Fprintln(stderr, "greenpoints token: --subject is required, e.g. --subject demo-alice")
		return errUsage
	}
	if ttl <= 0 || ttl > auth.MaxTokenTTL {
		fmt.Fprintf(stderr, "greenpoints token: --ttl must be positive and at most %s\n", auth.MaxTokenTTL)
		return errUsage
	}
	km, err := keys.NewFileManager(keysDir)
	if err != nil {
		return fmt.Errorf("open keys (the server's --keys-dir): %w", err)
	}
	m, err := app.NewTokenMinter(ctx, app.Config{JWTIssuer: issuer, JWTAudience: audience}, km)
	if err != nil {
		return err
	}
	if jwks {
		pub, err := km.PublicKey(ctx, m.KeyID())
		if err != nil {
			return err
		}
		doc, err := auth.MarshalJWKS(map[string]ed25519.PublicKey{string(m.KeyID()): pub.(ed25519.PublicKey)})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", doc)
		return nil
	}
	tok, err := m.Mint(subject, time.Now(), ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

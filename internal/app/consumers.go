package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/api"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/auth"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/internal/idempotency"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/projection"
)

// ConsumerTokenKeys builds the key set consumer tokens are verified
// against: a JWKS file, a JWKS URL, or (neither configured: the demo) the
// development issuer's key in the key manager.
func ConsumerTokenKeys(cfg Config, km keys.Manager, log *slog.Logger) (auth.KeySet, error) {
	switch {
	case cfg.JWTKeysFile != "" && cfg.JWKSURL != "":
		return nil, errors.New("set one of --jwt-keys-file and --jwks-url, not both")
	case cfg.JWTKeysFile != "":
		ks, err := auth.LoadJWKSFile(cfg.JWTKeysFile)
		if err != nil {
			return nil, fmt.Errorf("--jwt-keys-file: %w", err)
		}
		return ks, nil
	case cfg.JWKSURL != "":
		return &auth.RemoteJWKS{URL: cfg.JWKSURL}, nil
	}
	log.Warn("consumer tokens are verified against the development token key (greenpoints token mints them); " +
		"set --jwt-keys-file or --jwks-url to trust a real identity provider")
	return auth.ManagerKeys{Manager: km, Name: auth.DevKeyName}, nil
}

// jwtIssuerAudience applies the defaults of the development issuer.
func jwtIssuerAudience(cfg Config) (string, string) {
	iss, aud := cfg.JWTIssuer, cfg.JWTAudience
	if iss == "" {
		iss = auth.DefaultIssuer
	}
	if aud == "" {
		aud = auth.DefaultAudience
	}
	return iss, aud
}

// NewTokenMinter returns the development issuer's minter for cfg (the
// `greenpoints token` command and tests).
func NewTokenMinter(ctx context.Context, cfg Config, km keys.Manager) (*auth.Minter, error) {
	iss, aud := jwtIssuerAudience(cfg)
	return auth.NewDevMinter(ctx, km, iss, aud)
}

// mountConsumers mounts the consumers' API on s: bearer-token
// authentication, reads from the projection, actions submitted to the
// ledger as the issuer's operator.
func mountConsumers(cfg Config, s *api.Server, pool *pgxpool.Pool, km keys.Manager, led issuer.Ledger, proj *projection.Projector, log *slog.Logger) error {
	ks, err := ConsumerTokenKeys(cfg, km, log)
	if err != nil {
		return err
	}
	iss, aud := jwtIssuerAudience(cfg)
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: iss, Audience: aud, Keys: ks})
	if err != nil {
		return err
	}
	msp := cfg.IssuerMSP
	if msp == "" {
		msp = DemoIssuerMSP
	}
	s.Consumers(api.ConsumerDeps{
		Verifier:    v,
		Ledger:      led,
		IssuerMSP:   msp,
		Reads:       consumerReads{Projector: proj, pool: pool},
		Idempotency: idempotency.New(pool),
		Preferences: consumers.NewStore(pool, km),
	})
	return nil
}

// consumerReads adds family lookups to the projection's reads.
//
// The two queries belong in issuer/projection (read.go) next to Balance and
// Lots; they live here until that package grows them.
type consumerReads struct {
	*projection.Projector
	pool *pgxpool.Pool
}

func (r consumerReads) Family(ctx context.Context, id string) (*points.Family, error) {
	fams, err := r.families(ctx, `WHERE family_id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(fams) == 0 {
		return nil, apperr.New(apperr.NotFound, "family_not_found", "family %s does not exist", id)
	}
	return &fams[0], nil
}

func (r consumerReads) Invitations(ctx context.Context, account string) ([]points.Family, error) {
	// A consumer is invited by at most a handful of families; 20 bounds it.
	return r.families(ctx, `WHERE $1 = ANY(invited) AND status = 'active' ORDER BY family_id LIMIT 20`, account)
}

func (r consumerReads) families(ctx context.Context, where string, args ...any) ([]points.Family, error) {
	rows, err := r.pool.Query(ctx, `SELECT family_id, issuer, head, members, invited, status, created_at, updated_at FROM proj_families `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading families: %w", err)
	}
	var (
		out []points.Family
		f   points.Family
	)
	_, err = pgx.ForEachRow(rows, []any{&f.ID, &f.Issuer, &f.Head, &f.Members, &f.Invited, &f.Status, &f.CreatedAt, &f.UpdatedAt}, func() error {
		out = append(out, f)
		f = points.Family{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading families: %w", err)
	}
	return out, nil
}

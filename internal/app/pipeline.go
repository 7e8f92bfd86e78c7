package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// CallbackKeyName is the key manager name of the key that signs partner
// callbacks (v1a): partners verify them with its public key.
const CallbackKeyName = "partner-callbacks"

// startPipeline builds the intake service, the batcher and the callback
// deliverer. The workers start with Run.
func startPipeline(ctx context.Context, cfg Config, pool *pgxpool.Pool, km keys.Manager, led issuer.Ledger, log *slog.Logger, reg prometheus.Registerer) (
	*pipeline.Service, *pipeline.Batcher, *pipeline.Deliverer, error) {
	if cfg.IssuerMSP == "" {
		cfg.IssuerMSP = DemoIssuerMSP
	}
	if cfg.ProfileID == "" {
		cfg.ProfileID = "cn-default"
	}
	if cfg.RulesID == "" {
		cfg.RulesID = "cn-default-rules"
	}
	claimKey, err := loadClaimKey(cfg.KeysDir)
	if err != nil {
		return nil, nil, nil, err
	}
	pol, err := pipeline.NewPolicy(cfg.ProfileID, cfg.RulesID)
	if err != nil {
		return nil, nil, nil, err
	}
	signer, _, err := km.Signer(ctx, CallbackKeyName)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("callback-signing key: %w", err)
	}
	plog := log.With("component", "pipeline")
	svc := pipeline.NewService(pool, pipeline.NewPartners(pool, km), pol, pipeline.Config{IssuerMSP: cfg.IssuerMSP, ClaimKey: claimKey}, plog)
	// The published versions are anchored at every start, so an operator's
	// new rule or profile version reaches the ledger with the release that
	// carries it. Before the regulator has registered this issuer (a fresh
	// ledger; the demo seeds after Start) this fails, and SeedDemo or a
	// later start anchors them.
	if err := pol.Anchor(ctx, led, cfg.IssuerMSP); err != nil {
		log.Warn("published policy not anchored yet", "err", err)
	}
	pipeline.RegisterMetrics(reg, pool, svc)
	bat := pipeline.NewBatcher(pool, led, svc, pipeline.BatcherConfig{MaxItems: cfg.BatchSize, Workers: cfg.BatchWorkers}, plog)
	cbs := svc.Deliverer(webhook.CryptoSigner(signer), pipeline.CallbackConfig{})
	return svc, bat, cbs, nil
}

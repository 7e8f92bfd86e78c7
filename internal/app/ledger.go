package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// Ledger backends selectable with --ledger.
const (
	LedgerEmbedded = "embedded"
	LedgerFabric   = "fabric"
)

// BlockKeyName is the key manager name of the embedded ledger's block-signing key.
const BlockKeyName = "ledger-blocks"

// OpenLedger starts the configured ledger backend.
func OpenLedger(ctx context.Context, cfg Config, pool *pgxpool.Pool, km keys.Manager, log *slog.Logger) (*embedded.Ledger, error) {
	switch cfg.Ledger {
	case "", LedgerEmbedded:
	case LedgerFabric:
		return nil, fmt.Errorf("--ledger fabric is not available in this build yet; use --ledger embedded")
	default:
		return nil, fmt.Errorf("unknown ledger backend %q: use --ledger embedded", cfg.Ledger)
	}
	signer, id, err := km.Signer(ctx, BlockKeyName)
	if err != nil {
		return nil, fmt.Errorf("block-signing key: %w", err)
	}
	led, err := embedded.New(ctx, pool, points.New(), embedded.Options{
		Signer: signer,
		KeyID:  string(id),
		Logger: log.With("component", "ledger"),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded ledger: %w", err)
	}
	return led, nil
}

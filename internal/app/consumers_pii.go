package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/api"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/internal/keys"
)

// RetentionInterval is how often RunRetention enforces the retention
// schedule. Periods are counted in days and years, so daily is precise
// enough, and each run only touches what fell due since the last.
const RetentionInterval = 24 * time.Hour

// mountConsumerPII gives the HTTP server the consumer store behind the
// partner card-link routes (POST/DELETE /v1/partners/{partner}/card-links).
func mountConsumerPII(s *api.Server, pool *pgxpool.Pool, km keys.Manager) {
	s.CardLinks(consumers.NewStore(pool, km))
}

// Consumers is the store of consumers' personal data, consents, card links
// and notification preferences (docs/privacy.md). Consumer-facing routes
// and the notification jobs read preferences through it
// (Preferences/SetPreferences by account).
func (a *App) Consumers() *consumers.Store { return consumers.NewStore(a.pool, a.keys) }

// RunRetention enforces the retention schedule (consumers.DefaultPeriods)
// now and then every RetentionInterval until ctx ends. It is safe on several
// instances at once: every statement only touches rows still due.
func (a *App) RunRetention(ctx context.Context) error {
	t := time.NewTicker(RetentionInterval)
	defer t.Stop()
	for {
		r, err := consumers.EnforceRetention(ctx, a.pool, time.Now(), consumers.DefaultPeriods())
		if err != nil && ctx.Err() == nil {
			a.log.Error("retention", "err", err)
		} else if err == nil {
			a.log.Info("retention enforced", "report", r)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

package pipeline

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/labels"
)

// ImportLabels upserts energy-label registry entries in chunks of 1,000
// (one transaction each: a crash leaves whole chunks, and a re-import is
// harmless), calling progress with the number of entries done.
func ImportLabels(ctx context.Context, pool *pgxpool.Pool, entries []labels.Entry, progress func(done int)) error {
	const chunk = 1000
	for start := 0; start < len(entries); start += chunk {
		end := min(start+chunk, len(entries))
		err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for _, e := range entries[start:end] {
				b.Queue(`INSERT INTO label_registry (brand_key, model_key, brand, model, category, grade, label_value_milli,
					capacity_w, standard, registration_no) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
					ON CONFLICT (brand_key, model_key) DO UPDATE SET brand = EXCLUDED.brand, model = EXCLUDED.model,
					category = EXCLUDED.category, grade = EXCLUDED.grade, label_value_milli = EXCLUDED.label_value_milli,
					capacity_w = EXCLUDED.capacity_w, standard = EXCLUDED.standard, registration_no = EXCLUDED.registration_no,
					imported_at = now()`,
					labels.NormalizeModel(e.Brand), labels.NormalizeModel(e.Model), e.Brand, e.Model, e.Category, e.Grade,
					e.LabelValueMilli, e.CapacityW, e.Standard, e.RegistrationNo)
			}
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return fmt.Errorf("import label entries %d-%d: %w", start+1, end, err)
		}
		if progress != nil {
			progress(end)
		}
	}
	return nil
}

// CardLink is a consented link of a partner's card token to an account.
type CardLink struct {
	Partner, CardToken, Account string
	ConsentVersion              string
	ConsentChannel              string
}

// LinkCard records a consented card link (idempotent for the same link).
// The consumer-facing consent flow is issue 6's; the demo and tests use
// this directly.
func LinkCard(ctx context.Context, pool *pgxpool.Pool, l CardLink) error {
	_, err := pool.Exec(ctx, `INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel)
		VALUES ($1, $2, $3, $4, now(), $5) ON CONFLICT (partner_id, card_token) DO NOTHING`,
		l.Partner, l.CardToken, l.Account, l.ConsentVersion, l.ConsentChannel)
	if err != nil {
		return fmt.Errorf("link card: %w", err)
	}
	return nil
}

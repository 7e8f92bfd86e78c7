package consumers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Periods is the retention schedule: how long rows holding personal or
// evidence data are kept. docs/privacy.md gives the reason for each; change
// both together.
type Periods struct {
	// Evidence: partners' raw signed requests, evidence events and green
	// actions, counted from receipt (actions: from the action's time). It
	// covers a lot's validity (730 days in the default profile) plus the
	// Civil Code's 3-year limitation period (Art. 188) for a dispute about it.
	Evidence time.Duration
	// Callbacks: partner notifications, delivered or given up, from creation.
	Callbacks time.Duration
	// WithdrawnLinks: a withdrawn card link, from its withdrawal. While it
	// exists intake answers consent_withdrawn (the bank learns why) rather
	// than no_card_link.
	WithdrawnLinks time.Duration
	// WithdrawnConsents: a withdrawn consent, from its withdrawal: the proof
	// that past processing was consented, kept for the 3-year limitation
	// period.
	WithdrawnConsents time.Duration
	// IdempotencyKeys: consumers' Idempotency-Key records (007), from
	// creation: a client retries within minutes, and a stored response is
	// a copy of what the client already has.
	IdempotencyKeys time.Duration
}

// Year is 365 days: retention periods are counted in days.
const Year = 365 * 24 * time.Hour

// DefaultPeriods is the schedule of docs/privacy.md.
func DefaultPeriods() Periods {
	return Periods{Evidence: 5 * Year, Callbacks: 90 * 24 * time.Hour, WithdrawnLinks: Year, WithdrawnConsents: 3 * Year,
		IdempotencyKeys: 24 * time.Hour}
}

// RetentionChunk bounds the rows one statement of EnforceRetention deletes
// or redacts, so that no statement holds its locks for long and a run on a
// large backlog makes steady progress.
const RetentionChunk = 1000

// RetentionReport counts what a run deleted or redacted.
type RetentionReport struct {
	Callbacks        int64 `json:"callbacks"`        // deleted
	Consents         int64 `json:"consents"`         // withdrawn ones deleted
	CardLinks        int64 `json:"cardLinks"`        // withdrawn ones deleted
	Actions          int64 `json:"actions"`          // deleted
	Events           int64 `json:"events"`           // deleted
	Requests         int64 `json:"requests"`         // deleted
	RequestsRedacted int64 `json:"requestsRedacted"` // body and response emptied, hash and signature header kept
	IdempotencyKeys  int64 `json:"idempotencyKeys"`  // completed ones deleted
}

// EnforceRetention deletes or redacts every row whose retention period has
// ended at now, in chunks of RetentionChunk rows per statement, and returns
// the counts. Running it again, or on several instances at once, is
// harmless: each statement only touches rows still due. The order respects
// the foreign keys: consents before the requests that proved them, actions
// before their events, events before their requests.
//
// Erasure is not its job: Erase acts at once, on request. Ledger tables
// (pseudonymous, kept for the life of the ledger) and the outbox
// (issuances, reversals: the ledger's pseudonymous mirror, needed to
// reconcile it) are never touched.
func EnforceRetention(ctx context.Context, pool *pgxpool.Pool, now time.Time, p Periods) (RetentionReport, error) {
	var r RetentionReport
	evidenceCut := now.Add(-p.Evidence)
	steps := []struct {
		name  string
		dst   *int64
		sql   string
		until time.Time
	}{
		{"callbacks", &r.Callbacks, `DELETE FROM callbacks WHERE id IN (SELECT id FROM callbacks WHERE created_at < $1
			AND (delivered_at IS NOT NULL OR next_attempt_at = 'infinity') LIMIT $2)`, now.Add(-p.Callbacks)},
		// In-progress keys are left to their lease: deleting one would let
		// a retry run the request a second time.
		{"idempotency keys", &r.IdempotencyKeys, `DELETE FROM idempotency_keys WHERE (subject, key) IN (SELECT subject, key
			FROM idempotency_keys WHERE created_at < $1 AND state = 'done' LIMIT $2)`, now.Add(-p.IdempotencyKeys)},
		{"consents", &r.Consents, `DELETE FROM consents WHERE id IN (SELECT id FROM consents WHERE withdrawn_at < $1 LIMIT $2)`,
			now.Add(-p.WithdrawnConsents)},
		{"card links", &r.CardLinks, `DELETE FROM card_links WHERE (partner_id, card_token) IN (SELECT partner_id, card_token FROM card_links
			WHERE withdrawn_at < $1 LIMIT $2)`, now.Add(-p.WithdrawnLinks)},
		// Only actions in a final state: one still held or queued is work
		// in progress, whatever its age.
		{"actions", &r.Actions, `DELETE FROM actions WHERE id IN (SELECT id FROM actions WHERE occurred_at < $1 AND created_at < $1
			AND status IN ('issued', 'rejected', 'cancelled', 'reversed') LIMIT $2)`, evidenceCut},
		{"evidence events", &r.Events, `DELETE FROM evidence_events WHERE id IN (SELECT e.id FROM evidence_events e WHERE e.received_at < $1
			AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = e.id) LIMIT $2)`, evidenceCut},
		{"partner requests", &r.Requests, `DELETE FROM partner_requests WHERE id IN (SELECT q.id FROM partner_requests q WHERE q.received_at < $1
			AND NOT EXISTS (SELECT 1 FROM evidence_events e WHERE e.request_id = q.id)
			AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.request_id = q.id) LIMIT $2)`, evidenceCut},
		// What is left past the period is still referenced: evidence of
		// unfinished work, or the proof of a consent. Evidence loses its
		// body; the hash and signature header stay, so the row still says
		// which signed request it was. The proof of a consent stays whole
		// as long as the consent's row does.
		{"partner request bodies", &r.RequestsRedacted, `UPDATE partner_requests SET body = '', response = '' WHERE id IN (
			SELECT q.id FROM partner_requests q WHERE q.received_at < $1 AND (q.body <> '' OR q.response <> '')
			AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.request_id = q.id) LIMIT $2)`, evidenceCut},
	}
	for _, st := range steps {
		for {
			tag, err := pool.Exec(ctx, st.sql, st.until, RetentionChunk)
			if err != nil {
				return r, fmt.Errorf("retention of %s: %w", st.name, err)
			}
			*st.dst += tag.RowsAffected()
			if tag.RowsAffected() < RetentionChunk {
				break
			}
		}
	}
	return r, nil
}

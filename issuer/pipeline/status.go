package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// TransactionStatus is what a partner reads about one of its transactions
// (or trips): every event received and every green action found.
type TransactionStatus struct {
	TransactionID string         `json:"transactionId"`
	Events        []EventStatus  `json:"events"`
	Actions       []ActionStatus `json:"actions"`
}

// EventStatus is one received event.
type EventStatus struct {
	Status     string    `json:"status"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// ActionStatus is one green action and what became of it.
type ActionStatus struct {
	ActionID   string     `json:"actionId"`
	Kind       string     `json:"kind"`
	Line       int        `json:"line,omitempty"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Grams      int64      `json:"grams"`
	Points     int64      `json:"points,omitempty"` // of the issuance (a transit grant's whole day)
	NotBefore  time.Time  `json:"notBefore"`
	LotKey     string     `json:"lotKey,omitempty"`
	LedgerTxID string     `json:"ledgerTxId,omitempty"`
	Block      int64      `json:"block,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
}

// Status returns a partner's transaction. Errors: NotFound
// (transaction_not_found) when the partner never reported it.
func (s *Service) Status(ctx context.Context, partner, kind, txID string) (*TransactionStatus, error) {
	st := &TransactionStatus{TransactionID: txID, Events: []EventStatus{}, Actions: []ActionStatus{}}
	rows, err := s.pool.Query(ctx, `SELECT event_status, outcome, reason, source, received_at FROM evidence_events
		WHERE partner_id = $1 AND kind = $2 AND partner_tx_id = $3 ORDER BY received_at, id`, partner, kind, txID)
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	st.Events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (EventStatus, error) {
		var e EventStatus
		err := r.Scan(&e.Status, &e.Outcome, &e.Reason, &e.Source, &e.ReceivedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	if len(st.Events) == 0 {
		return nil, apperr.New(apperr.NotFound, "transaction_not_found", "no %s %q was reported by this partner", kindName(kind), txID)
	}
	rows, err = s.pool.Query(ctx, `SELECT a.id::text, a.kind, a.line, a.status, a.reason, a.grams, coalesce(i.points, 0), a.not_before,
		coalesce(i.lot_key, ''), coalesce(i.tx_id, ''), coalesce(i.block, 0), i.expires_at
		FROM actions a LEFT JOIN issuances i ON i.id = a.issuance_id
		WHERE a.partner_id = $1 AND a.partner_tx_id = $2 AND EXISTS (SELECT 1 FROM evidence_events e WHERE e.id = a.event_id AND e.kind = $3)
		ORDER BY a.line, a.id`, partner, txID, kind)
	if err != nil {
		return nil, fmt.Errorf("load actions: %w", err)
	}
	st.Actions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ActionStatus, error) {
		var a ActionStatus
		err := r.Scan(&a.ActionID, &a.Kind, &a.Line, &a.Status, &a.Reason, &a.Grams, &a.Points, &a.NotBefore,
			&a.LotKey, &a.LedgerTxID, &a.Block, &a.ExpiresAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("load actions: %w", err)
	}
	return st, nil
}

func kindName(kind string) string {
	if kind == "trip" {
		return "trip"
	}
	return "card transaction"
}

// Disclosure is the public statement of earning conditions, accumulation,
// expiry, redemption and methodologies, current and upcoming.
func (s *Service) Disclosure(at time.Time) rules.Disclosure {
	return rules.Disclose(s.policy.Profiles, s.policy.Rules, s.policy.Methods.All(), at)
}

// ReasonCatalogue is every reason code a partner or consumer may read on a
// green action, with its meaning.
func ReasonCatalogue() []evidence.Reason {
	rs := evidence.Reasons()
	return append(rs,
		evidence.Reason{Code: ReasonNoInvoice, Title: "No invoice number", Description: "An itemised purchase without a fapiao number has no canonical evidence id, so it cannot be claimed."},
		evidence.Reason{Code: ReasonUnknownOperator, Title: "Unknown transit operator", Description: "The payment carries a ride-level trip id of an operator that is not a registered partner."},
		evidence.Reason{Code: ReasonNothingToReverse, Title: "Nothing to reverse", Description: "The refunded or charged-back payment earned no points."},
		evidence.Reason{Code: ReasonBelowOnePoint, Title: "Below one point", Description: "The action avoids too little CO2e to earn a whole point under the rule in force."},
		evidence.Reason{Code: ReasonTransitNotReverse, Title: "Transit not reversed", Description: "No longer given: before fare refunds took back their trip's share of the day's transit grant, a refunded fare's trip stayed claimed and granted; older events keep this code."},
		evidence.Reason{Code: ReasonUnknownAccount, Title: "Unknown account", Description: "The trip names an account that has no consented card link and was never opened."},
		evidence.Reason{Code: "sub_claim_taken", Title: "Trip claimed elsewhere", Description: "A trip of a transit grant was claimed by another issuer; the grant was re-issued without it."},
	)
}
